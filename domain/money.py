"""Currencies and exact amounts."""

from __future__ import annotations

from decimal import Decimal

# ISO 4217 codes a store can sell in, with their minor-unit exponent.
CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        [
            "AED",
            "AUD",
            "BGN",
            "BRL",
            "CAD",
            "CHF",
            "CNY",
            "CZK",
            "DKK",
            "EGP",
            "EUR",
            "GBP",
            "HKD",
            "HUF",
            "IDR",
            "ILS",
            "INR",
            "KES",
            "MAD",
            "MXN",
            "MYR",
            "NGN",
            "NOK",
            "NZD",
            "PEN",
            "PHP",
            "PKR",
            "PLN",
            "RON",
            "RUB",
            "SAR",
            "SEK",
            "SGD",
            "THB",
            "TRY",
            "TWD",
            "UAH",
            "USD",
            "ZAR",
            "COP",
            "ARS",
        ],
        2,
    ),
    **dict.fromkeys(["JPY", "KRW", "CLP", "VND", "ISK"], 0),
    **dict.fromkeys(["BHD", "JOD", "KWD", "OMR", "TND"], 3),
}


def is_currency(code: str) -> bool:
    return code in CURRENCY_EXPONENTS


def exponent(currency: str) -> int:
    return CURRENCY_EXPONENTS[currency]


def has_valid_precision(amount: Decimal, currency: str) -> bool:
    """True when the amount has no more decimals than the currency's minor unit allows."""
    exponent_of_amount = amount.normalize().as_tuple().exponent
    assert isinstance(exponent_of_amount, int)
    return -exponent_of_amount <= exponent(currency)


def quantize(amount: Decimal, currency: str) -> Decimal:
    """The amount written with exactly the currency's number of decimals (12.5 USD → 12.50)."""
    return amount.quantize(Decimal(1).scaleb(-exponent(currency)))


def format_money(amount: Decimal, currency: str) -> str:
    """Money as a person reads it, with the currency's decimals: "48.90 USD", "1200 JPY", "5.125 KWD"."""
    return f"{quantize(amount, currency)} {currency}"
