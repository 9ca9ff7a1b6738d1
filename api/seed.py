"""Demo data: two shops, their AliExpress suppliers, split store orders, parcels, timelines and cancellations.

The data is a pure function of ``seed`` and ``now`` so that tests, screenshots and benchmarks see the same
shops every time, and it is written with Core bulk inserts, one transaction per batch of orders, so that
100,000 orders load into SQLite in a minute or two without holding them all in memory.
"""

from __future__ import annotations

import base64
import bisect
import functools
import hashlib
import random
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import Database
from db.jobs import DEFAULT_MAX_ATTEMPTS, Job, JobStatus
from db.models import (
    ActorKind,
    Base,
    CancellationMessage,
    CancellationReason,
    CancellationRequest,
    CancellationStatus,
    FinancialStatus,
    MessageAuthor,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    Package,
    Shop,
    Supplier,
    SupplierOrder,
    SupplierOrderStatus,
    TokenKind,
)
from db.types import utcnow
from domain.actors import Scope
from domain.cancellations import AUTO_APPROVE_KIND
from domain.tokens import derive_token, issue_token

S = SupplierOrderStatus
DAY = 86_400.0
HOUR = 3_600.0
BATCH_SIZE = 1_000
HISTORY = timedelta(days=120)
ACTOR_NAME = "Demo data"
ADMIN_LABEL = "Demo admin"
# The default of Settings.cancellation_response_hours: what a request made through the API would get.
RESPONSE_TIME = timedelta(hours=48)
# Any constant works; it only has to be the same for every process that might seed at the same time.
_ADVISORY_LOCK_KEY = 0x44524F50444553

_ORDERS: Table = Base.metadata.tables[Order.__tablename__]
_SUPPLIER_ORDERS: Table = Base.metadata.tables[SupplierOrder.__tablename__]
_LINES: Table = Base.metadata.tables[OrderLine.__tablename__]
_PACKAGES: Table = Base.metadata.tables[Package.__tablename__]
_EVENTS: Table = Base.metadata.tables[OrderEvent.__tablename__]
_REQUESTS: Table = Base.metadata.tables[CancellationRequest.__tablename__]
_MESSAGES: Table = Base.metadata.tables[CancellationMessage.__tablename__]
_JOBS: Table = Base.metadata.tables[Job.__tablename__]


@dataclass(frozen=True)
class DemoSeed:
    """What `serve` and `seed` print: the demo shops and tokens that open them."""

    shop_ids: dict[str, int]
    merchant_tokens: dict[str, str]
    supplier_tokens: dict[str, str]
    admin_token: str
    created: bool
    orders: int = 0


# ---------------------------------------------------------------------------------------------------------------
# Catalogue: who sells what, who buys it and where it goes.


@dataclass(frozen=True)
class _Product:
    title: str
    code: str
    price: str
    options: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class _SupplierProfile:
    name: str
    store_id: str
    origin: str
    products: tuple[_Product, ...]
    accepts_returns: bool = False
    return_window_days: int = 0


@dataclass(frozen=True)
class _Country:
    code: str
    # city, province, postcode pattern ('#' a digit, '@' a letter), phone area code
    cities: tuple[tuple[str, str, str, str], ...]
    streets: tuple[str, ...]
    street_format: str
    phone: str
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    email_domains: tuple[str, ...]


@dataclass(frozen=True)
class _ShopProfile:
    name: str
    currency: str
    email: str
    share: float
    return_address: dict[str, str]
    countries: tuple[tuple[str, int], ...]
    free_shipping_over: int
    shipping_rates: tuple[int, ...]
    suppliers: tuple[_SupplierProfile, ...]


_COLORS = ("Black", "White", "Navy", "Olive", "Beige", "Grey")
_SIZES = ("XS", "S", "M", "L", "XL", "XXL")
_SHOE_SIZES = ("US 6", "US 7", "US 8", "US 9", "US 10", "US 11")

_OUTFITTERS_SUPPLIERS = (
    _SupplierProfile(
        "Guangzhou Lanyi Apparel Store",
        "1102875431",
        "Guangzhou, CN",
        (
            _Product("Oversized Cotton Crew Neck T-Shirt", "LY-TEE", "19.99", (_COLORS, _SIZES)),
            _Product("Heavyweight Fleece Pullover Hoodie", "LY-HOOD", "44.99", (_COLORS[:4], _SIZES[1:])),
            _Product(
                "Linen Button-Down Summer Shirt", "LY-LIN", "34.99", (("White", "Sand", "Sky Blue"), _SIZES)
            ),
            _Product(
                "High-Waist Wide Leg Cargo Pants", "LY-CRG", "39.99", (("Khaki", "Black", "Olive"), _SIZES)
            ),
            _Product(
                "Ribbed Knit Cropped Cardigan", "LY-CARD", "29.99", (("Cream", "Sage", "Lilac"), _SIZES[:4])
            ),
        ),
    ),
    _SupplierProfile(
        "Yiwu Brightstar Accessories Store",
        "1100493276",
        "Yiwu, CN",
        (
            _Product(
                "Polarized Retro Square Sunglasses",
                "BS-SUN",
                "24.99",
                (("Black Frame / Grey Lens", "Tortoise / Brown Lens", "Gold / Green Lens"),),
            ),
            _Product(
                "Minimalist Stainless Steel Watch", "BS-WAT", "49.99", (("Silver", "Gold", "Rose Gold"),)
            ),
            _Product("Genuine Leather Slim Card Wallet", "BS-WAL", "19.99", (("Black", "Brown", "Tan"),)),
            _Product("Canvas Crossbody Sling Bag", "BS-SLG", "27.99", (("Black", "Khaki", "Army Green"),)),
            _Product("Chunky Knit Beanie Hat", "BS-BEA", "14.99", (_COLORS,)),
        ),
    ),
    _SupplierProfile(
        "Jinjiang Stride Footwear Factory Store",
        "1101638820",
        "Jinjiang, CN",
        (
            _Product(
                "Breathable Mesh Running Sneakers",
                "ST-RUN",
                "54.99",
                (("Black", "White", "Grey"), _SHOE_SIZES),
            ),
            _Product("Chunky Platform Canvas Sneakers", "ST-PLT", "49.99", (("White", "Black"), _SHOE_SIZES)),
            _Product("Waterproof Chelsea Ankle Boots", "ST-CHB", "69.99", (("Black", "Brown"), _SHOE_SIZES)),
            _Product(
                "Memory Foam Slide Sandals", "ST-SLD", "21.99", (("Black", "Beige", "Pink"), _SHOE_SIZES)
            ),
        ),
    ),
    _SupplierProfile(
        "Hangzhou Silkmoon Fashion Store",
        "1102214906",
        "Hangzhou, CN",
        (
            _Product(
                "Floral Print Midi Wrap Dress", "SM-WRP", "45.99", (("Blue Floral", "Red Floral"), _SIZES[:5])
            ),
            _Product(
                "Pleated Satin Midi Skirt", "SM-SKT", "32.99", (("Champagne", "Emerald", "Black"), _SIZES[:5])
            ),
            _Product("Mulberry Silk Square Scarf", "SM-SCF", "26.99", (("Paisley", "Leopard", "Polka Dot"),)),
            _Product("Silk Scrunchie Set (6 pcs)", "SM-SCR", "12.99"),
        ),
        accepts_returns=True,
        return_window_days=15,
    ),
)

_GADGETS_SUPPLIERS = (
    _SupplierProfile(
        "Shenzhen Voltcore Digital Store",
        "1101957732",
        "Shenzhen, CN",
        (
            _Product(
                "65W GaN USB-C Fast Charger", "VC-GAN", "29.99", (("EU Plug", "UK Plug"), ("White", "Black"))
            ),
            _Product(
                "Magnetic Wireless Power Bank 10000mAh", "VC-PWB", "34.99", (("White", "Purple", "Blue"),)
            ),
            _Product("Braided USB-C to USB-C Cable", "VC-CBL", "9.99", (("1 m", "2 m", "3 m"),)),
            _Product("3-in-1 Wireless Charging Stand", "VC-STD", "39.99", (("Black", "White"),)),
        ),
    ),
    _SupplierProfile(
        "Soundwave Audio Official Store",
        "1102331058",
        "Shenzhen, CN",
        (
            _Product("True Wireless ANC Earbuds", "SW-ANC", "49.99", (("Black", "White"),)),
            _Product(
                "Bluetooth 5.3 Over-Ear Headphones",
                "SW-OVR",
                "59.99",
                (("Black", "Silver", "Midnight Blue"),),
            ),
            _Product("Portable Waterproof Bluetooth Speaker", "SW-SPK", "39.99", (("Black", "Red", "Teal"),)),
            _Product("Wireless Clip-On Lavalier Microphone", "SW-MIC", "19.99", (("USB-C", "Lightning"),)),
        ),
    ),
    _SupplierProfile(
        "Lumio Smart Home Store",
        "1100782645",
        "Dongguan, CN",
        (
            _Product("Wi-Fi Smart Plug (4-pack)", "LM-PLG", "24.99", (("EU Type F", "UK Type G"),)),
            _Product("RGB LED Strip Light", "LM-LED", "19.99", (("5 m", "10 m", "20 m"),)),
            _Product("1080p Indoor Security Camera", "LM-CAM", "32.99", (("White",),)),
            _Product("Smart Door and Window Sensor", "LM-SNS", "12.99"),
        ),
    ),
    _SupplierProfile(
        "Dongguan Gearlab Accessories Store",
        "1101120487",
        "Dongguan, CN",
        (
            _Product("Aluminium Adjustable Laptop Stand", "GL-STD", "29.99", (("Silver", "Space Grey"),)),
            _Product(
                "75% Hot-Swap Mechanical Keyboard", "GL-KBD", "69.99", (("Red Switch", "Brown Switch"),)
            ),
            _Product("Ergonomic Vertical Wireless Mouse", "GL-MSE", "24.99", (("Black", "Grey"),)),
            _Product(
                "Tempered Glass Screen Protector (2 pcs)", "GL-GLS", "8.99", (("iPhone 15", "iPhone 16"),)
            ),
            _Product(
                "Magnetic Clear Phone Case", "GL-CSE", "14.99", (("iPhone 15", "iPhone 16", "Pixel 9"),)
            ),
        ),
        accepts_returns=True,
        return_window_days=30,
    ),
)


def _staff_name(shop: str) -> str:
    """The name the demo merchant token acts under, so that seeded requests read as if made through the API."""
    return f"{shop} staff (demo)"


def _supplier_user(supplier: str) -> str:
    """The name the demo supplier token acts under."""
    return f"{supplier} (demo)"


def _words(text: str) -> tuple[str, ...]:
    """A comma-separated list, so that the name tables stay readable."""
    return tuple(text.split(", "))


def _cities(text: str) -> tuple[tuple[str, str, str, str], ...]:
    """'City / province / postcode pattern / phone area; ...' rows."""
    rows = []
    for row in text.split("; "):
        city, province, postcode, area = row.split(" / ")
        rows.append((city, province, postcode, area))
    return tuple(rows)


_EN_FIRST = _words(
    "James, Olivia, Liam, Emma, Noah, Ava, Ethan, Sophia, Mason, Isabella, Lucas, Mia, Logan, Amelia, Jackson, "
    "Harper, Aiden, Evelyn, Elijah, Abigail, Grace, Chloe, Daniel, Zoe, Priya, Mateo, Aaliyah, Hiroshi, Fatima, "
    "Diego, Siobhan, Wei"
)
_EN_LAST = _words(
    "Smith, Johnson, Williams, Brown, Jones, Garcia, Miller, Davis, Rodriguez, Martinez, Hernandez, Lopez, "
    "Wilson, Anderson, Thomas, Taylor, Moore, Jackson, Martin, Lee, Nguyen, Patel, Kim, O'Connor, Walker, Hall, "
    "Young, Allen, Wright, Scott, Chen, Okafor"
)
_EN_DOMAINS = _words("gmail.com, gmail.com, outlook.com, yahoo.com, icloud.com, hotmail.com")
_EN_STREETS = _words(
    "Maple Street, Oak Avenue, Cedar Lane, Park Road, Elm Street, Lakeview Drive, Hillcrest Road, "
    "Washington Avenue, Willow Court, Pine Street, Station Road, High Street, Church Lane"
)
_US_CA_PHONE = "+1 {area}-555-01##"  # 555-0100 to 555-0199 are reserved for fiction

_COUNTRIES = {
    country.code: country
    for country in (
        _Country(
            "US",
            _cities(
                "Austin / TX / 787## / 512; Portland / OR / 972## / 503; Brooklyn / NY / 112## / 718; "
                "Denver / CO / 802## / 303; Seattle / WA / 981## / 206; Chicago / IL / 606## / 312; "
                "San Diego / CA / 921## / 619; Miami / FL / 331## / 305; Atlanta / GA / 303## / 404; "
                "Minneapolis / MN / 554## / 612; Nashville / TN / 372## / 615"
            ),
            _EN_STREETS,
            "{number} {street}",
            _US_CA_PHONE,
            _EN_FIRST,
            _EN_LAST,
            _EN_DOMAINS,
        ),
        _Country(
            "CA",
            _cities(
                "Toronto / ON / M5V #@# / 416; Vancouver / BC / V6B #@# / 604; Montréal / QC / H2X #@# / 514; "
                "Calgary / AB / T2P #@# / 403"
            ),
            _EN_STREETS,
            "{number} {street}",
            _US_CA_PHONE,
            _EN_FIRST,
            _EN_LAST,
            _EN_DOMAINS,
        ),
        _Country(
            "GB",
            _cities(
                "London / England / SW1A #@@ / ; Manchester / England / M1 #@@ / ; "
                "Edinburgh / Scotland / EH1 #@@ / ; Bristol / England / BS1 #@@ / "
            ),
            _EN_STREETS,
            "{number} {street}",
            "+44 7700 900###",  # reserved for drama
            _EN_FIRST,
            _EN_LAST,
            (*_EN_DOMAINS, "btinternet.com"),
        ),
        _Country(
            "AU",
            _cities(
                "Sydney / NSW / 20## / ; Melbourne / VIC / 30## / ; Brisbane / QLD / 40## / ; Perth / WA / 60## / "
            ),
            _EN_STREETS,
            "{number} {street}",
            "+61 491 570 ###",  # reserved for fiction
            _EN_FIRST,
            _EN_LAST,
            (*_EN_DOMAINS, "bigpond.com"),
        ),
        _Country(
            "DE",
            _cities(
                "Berlin / Berlin / 10### / ; München / Bayern / 80### / ; Hamburg / Hamburg / 20### / ; "
                "Köln / Nordrhein-Westfalen / 50### / ; Frankfurt am Main / Hessen / 60### / ; "
                "Leipzig / Sachsen / 04### / "
            ),
            _words("Hauptstraße, Bahnhofstraße, Gartenweg, Lindenallee, Schillerstraße, Goethestraße"),
            "{street} {number}",
            "+49 151 ########",
            _words("Lukas, Leon, Finn, Jonas, Paul, Felix, Emma, Mia, Hannah, Lea, Sophie, Jürgen"),
            _words("Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker, Schulz, Koch"),
            _words("gmx.de, web.de, gmail.com, t-online.de"),
        ),
        _Country(
            "FR",
            _cities(
                "Paris / Île-de-France / 75### / ; Lyon / Auvergne-Rhône-Alpes / 690## / ; "
                "Marseille / Provence-Alpes-Côte d'Azur / 130## / ; Toulouse / Occitanie / 310## / ; "
                "Bordeaux / Nouvelle-Aquitaine / 330## / ; Nantes / Pays de la Loire / 440## / "
            ),
            _words(
                "rue de la République, avenue Victor Hugo, boulevard Voltaire, rue des Lilas, rue du Moulin"
            ),
            "{number} {street}",
            "+33 6 ## ## ## ##",
            _words("Louis, Gabriel, Jules, Hugo, Léa, Chloé, Manon, Camille, Inès, Théo, Élodie"),
            _words("Martin, Bernard, Dubois, Thomas, Robert, Petit, Durand, Leroy, Moreau, Lefèvre"),
            _words("orange.fr, free.fr, gmail.com, laposte.net"),
        ),
        _Country(
            "ES",
            _cities(
                "Madrid / Madrid / 280## / ; Barcelona / Barcelona / 080## / ; Valencia / Valencia / 460## / ; "
                "Sevilla / Sevilla / 410## / ; Bilbao / Bizkaia / 480## / "
            ),
            _words(
                "Calle Mayor, Avenida de la Constitución, Calle del Sol, Paseo de Gracia, Calle de Alcalá"
            ),
            "{street}, {number}",
            "+34 6## ### ###",
            _words("Hugo, Martín, Lucas, Mateo, Lucía, Sofía, María, Paula, Álvaro, Javier, Carmen"),
            _words("García, Fernández, González, Rodríguez, López, Sánchez, Pérez, Gómez, Ruiz, Díaz"),
            _words("gmail.com, hotmail.es, yahoo.es, outlook.es"),
        ),
        _Country(
            "IT",
            _cities(
                "Milano / MI / 201## / ; Roma / RM / 001## / ; Torino / TO / 101## / ; Bologna / BO / 401## / ; "
                "Firenze / FI / 501## / "
            ),
            _words("Via Roma, Corso Garibaldi, Via Dante, Via Giuseppe Verdi, Viale Europa"),
            "{street} {number}",
            "+39 3## ### ####",
            _words("Leonardo, Francesco, Lorenzo, Sofia, Giulia, Aurora, Alice, Matteo, Chiara, Niccolò"),
            _words("Rossi, Russo, Ferrari, Esposito, Bianchi, Romano, Colombo, Ricci, Greco, Bruno"),
            _words("libero.it, gmail.com, virgilio.it, hotmail.it"),
        ),
        _Country(
            "NL",
            _cities(
                "Amsterdam / Noord-Holland / 10## @@ / ; Rotterdam / Zuid-Holland / 30## @@ / ; "
                "Utrecht / Utrecht / 35## @@ / ; Eindhoven / Noord-Brabant / 56## @@ / "
            ),
            _words("Keizersgracht, Prinsengracht, Dorpsstraat, Kerkstraat, Molenweg"),
            "{street} {number}",
            "+31 6 ########",
            _words("Daan, Sem, Lucas, Levi, Julia, Emma, Tess, Sophie, Fenna, Bram, Anouk, Joris"),
            _words("de Jong, Jansen, de Vries, van den Berg, van Dijk, Bakker, Visser, Smit, Meijer"),
            _words("gmail.com, ziggo.nl, hotmail.nl, kpnmail.nl"),
        ),
    )
}

DEMO_SHOPS: tuple[_ShopProfile, ...] = (
    _ShopProfile(
        name="Demo Outfitters",
        currency="USD",
        email="support@demo-outfitters.example",
        share=0.6,
        return_address={
            "name": "Demo Outfitters Returns",
            "address1": "1450 Commerce Way, Unit 7",
            "city": "Reno",
            "province": "NV",
            "zip": "89502",
            "country_code": "US",
        },
        countries=(("US", 70), ("CA", 12), ("GB", 10), ("AU", 8)),
        free_shipping_over=7500,
        shipping_rates=(499, 599, 799),
        suppliers=_OUTFITTERS_SUPPLIERS,
    ),
    _ShopProfile(
        name="Demo Gadgets",
        currency="EUR",
        email="hallo@demo-gadgets.example",
        share=0.4,
        return_address={
            "name": "Demo Gadgets Retouren",
            "address1": "Lagerstraße 12",
            "city": "Hamburg",
            "province": "Hamburg",
            "zip": "20457",
            "country_code": "DE",
        },
        countries=(("DE", 35), ("FR", 25), ("ES", 15), ("IT", 15), ("NL", 10)),
        free_shipping_over=5000,
        shipping_rates=(390, 490, 690),
        suppliers=_GADGETS_SUPPLIERS,
    ),
)

_TAGS = _words(
    "vip, gift, repeat-customer, priority, influencer, wholesale, black-friday, tiktok, instagram, fragile"
)
_NOTES = (
    "Please leave the parcel with a neighbour if I'm not home.",
    "It's a gift, please don't include the invoice.",
    "Can you ship this together with my previous order?",
    "Customer asked twice about delivery times by email.",
    "Wrong size last time, double-check the variant.",
    "Ring the bell twice, the buzzer is broken.",
)

# ---------------------------------------------------------------------------------------------------------------
# How supplier orders move: statuses by order age, end reasons, carriers and parcel scans.

_STATUS_BY_AGE: tuple[tuple[float, tuple[tuple[SupplierOrderStatus, int], ...]], ...] = (
    (
        1.0,
        (
            (S.PLACE_ORDER_SUCCESS, 12),
            (S.PAYMENT_PROCESSING, 8),
            (S.RISK_CONTROL, 4),
            (S.WAIT_SELLER_EXAMINE_MONEY, 12),
            (S.WAIT_SELLER_SEND_GOODS, 60),
            (S.IN_CANCEL, 4),
        ),
    ),
    (
        6.0,
        (
            (S.RISK_CONTROL, 1),
            (S.WAIT_SELLER_SEND_GOODS, 45),
            (S.SELLER_PART_SEND_GOODS, 10),
            (S.WAIT_BUYER_ACCEPT_GOODS, 30),
            (S.IN_CANCEL, 5),
            (S.IN_FROZEN, 2),
            (S.FINISH, 7),
        ),
    ),
    (
        30.0,
        (
            (S.SELLER_PART_SEND_GOODS, 4),
            (S.WAIT_BUYER_ACCEPT_GOODS, 58),
            (S.FUND_PROCESSING, 8),
            (S.IN_ISSUE, 6),
            (S.IN_FROZEN, 2),
            (S.IN_CANCEL, 2),
            (S.FINISH, 20),
        ),
    ),
    (
        float("inf"),
        (
            (S.WAIT_BUYER_ACCEPT_GOODS, 5),
            (S.FUND_PROCESSING, 4),
            (S.IN_ISSUE, 4),
            (S.IN_FROZEN, 1),
            (S.FINISH, 86),
        ),
    ),
)

# Newest first: when every status must appear, the youngest of the chosen orders gets the earliest status.
_LIFECYCLE = (
    S.PLACE_ORDER_SUCCESS,
    S.PAYMENT_PROCESSING,
    S.RISK_CONTROL,
    S.WAIT_SELLER_EXAMINE_MONEY,
    S.WAIT_SELLER_SEND_GOODS,
    S.IN_CANCEL,
    S.SELLER_PART_SEND_GOODS,
    S.IN_FROZEN,
    S.WAIT_BUYER_ACCEPT_GOODS,
    S.IN_ISSUE,
    S.FUND_PROCESSING,
    S.FINISH,
)
_PAID = frozenset(
    {
        S.WAIT_SELLER_EXAMINE_MONEY,
        S.WAIT_SELLER_SEND_GOODS,
        S.SELLER_PART_SEND_GOODS,
        S.WAIT_BUYER_ACCEPT_GOODS,
        S.FUND_PROCESSING,
        S.IN_CANCEL,
        S.IN_ISSUE,
        S.IN_FROZEN,
    }
)
_SHIPPED = frozenset({S.SELLER_PART_SEND_GOODS, S.WAIT_BUYER_ACCEPT_GOODS, S.FUND_PROCESSING})
_STATUS_EVENTS = frozenset({S.RISK_CONTROL, S.IN_CANCEL, S.IN_ISSUE, S.IN_FROZEN, S.FUND_PROCESSING})
_ACCEPT_REASONS = (("buyer_accept_goods", 85), ("buyer_accept_goods_timeout", 15))
_CANCEL_REASONS = (
    ("cancel_order_close_trade", 70),
    ("seller_send_goods_timeout", 20),
    ("buyer_cancel_notpay_order", 10),
)
CANCEL_END_REASONS = frozenset(reason for reason, _ in _CANCEL_REASONS)
_UNPAID_CANCEL = "buyer_cancel_notpay_order"

_CARRIERS = (
    ("AliExpress Standard Shipping", "LP", 55),
    ("YunExpress", "YT", 28),
    ("China Post Registered Air Mail", "S10", 17),
)
_TRANSIT = (
    ("INFO_RECEIVED", "{origin}", "Shipment information received by the carrier"),
    ("IN_TRANSIT", "{origin}", "Accepted at the sorting center"),
    ("IN_TRANSIT", "{origin}", "Departed from the sorting center"),
    ("IN_TRANSIT", "Hong Kong, HK", "Export customs clearance completed"),
    ("IN_TRANSIT", "Hong Kong, HK", "Departed from the origin airport"),
    ("IN_TRANSIT", "{country}", "Arrived in the destination country"),
    ("IN_TRANSIT", "{country}", "Import customs clearance completed"),
    ("OUT_FOR_DELIVERY", "{city}", "Out for delivery"),
)
_DELIVERED = ("DELIVERED", "{city}", "Delivered to the recipient")
_EXCEPTIONS = (
    ("EXCEPTION", "{city}", "Delivery attempt failed: recipient not available"),
    ("EXCEPTION", "{country}", "Held by customs: additional information required"),
    ("EXCEPTION", "{city}", "Parcel damaged in transit, returned to the local depot"),
)

# ---------------------------------------------------------------------------------------------------------------
# Cancellation requests: every IN_CANCEL supplier order is waiting on one, as the domain requires.

R = CancellationReason
_CANCELLATION_REASONS: tuple[tuple[CancellationReason, int, tuple[str, ...]], ...] = (
    (
        R.CUSTOMER_CANCELLED,
        34,
        (
            "The customer cancelled a few hours after paying. Please don't ship this order and refund us.",
            "Our customer changed their mind and asked for a refund. Please cancel before it ships.",
        ),
    ),
    (
        R.CHANGE_SHIPPING_ADDRESS,
        14,
        (
            "The customer gave us the wrong address. We'll place a new order with the right one, please cancel "
            "this one.",
            "The customer is moving next week, so we'll reorder to the new address. Please cancel this order.",
        ),
    ),
    (
        R.WRONG_PRODUCT_ORDERED,
        12,
        (
            "We ordered the wrong size by mistake. Please cancel, we'll reorder the correct variant today.",
            "Wrong colour ordered on our side, sorry. Please cancel so that we can reorder.",
        ),
    ),
    (
        R.DUPLICATE_ORDER,
        10,
        (
            "Our store import placed this order twice. Please cancel this duplicate, the other one is fine.",
            "This duplicates an earlier order for the same customer; please cancel this one only.",
        ),
    ),
    (
        R.SUPPLIER_OUT_OF_STOCK,
        10,
        (
            "Your customer service told us this item is out of stock. Please cancel and refund.",
            "The listing shows this variant as sold out now; we'd rather cancel than wait for a restock.",
        ),
    ),
    (
        R.CANNOT_CONTACT_SUPPLIER,
        6,
        (
            "We asked about the dispatch date three times in chat without an answer. Please cancel.",
            "No reply to our messages for several days, so we would rather cancel this order.",
        ),
    ),
    (
        R.SUPPLIER_REFUSES_TO_SHIP,
        4,
        (
            "You asked us to pay extra shipping before sending. We don't agree to that, please cancel.",
            "The store says it can no longer ship to this country; please cancel and refund.",
        ),
    ),
    (
        R.OTHER,
        10,
        (
            "Our payment provider flagged the customer's payment as fraudulent. Please cancel before shipping.",
            "Import rules for this destination changed and the parcel would be held; we need to cancel.",
        ),
    ),
)
_SUPPLIER_QUESTIONS = (
    "Hello friend, the goods are already packed. Can you tell us why you want to cancel? Maybe we can change "
    "the colour or size for you.",
    "Dear buyer, we can ship within 24 hours. Please confirm you still want to cancel, or send the new address "
    "and we will update it.",
    "Hi, please send a screenshot of the problem so that we can check it with our warehouse.",
    "We checked again and the item is in stock now. Do you still want to cancel?",
)
_INFO_REQUESTED_SHARE = 0.15


def _cumulative(weighted: Sequence[tuple[Any, int]]) -> tuple[list[Any], list[int]]:
    values, totals, running = [], [], 0
    for value, weight in weighted:
        running += weight
        values.append(value)
        totals.append(running)
    return values, totals


_STATUS_TABLES = [(age, _cumulative(weights)) for age, weights in _STATUS_BY_AGE]
_ACCEPT_TABLE = _cumulative(_ACCEPT_REASONS)
_CANCEL_TABLE = _cumulative(_CANCEL_REASONS)
_CARRIER_TABLE = _cumulative([((name, kind), weight) for name, kind, weight in _CARRIERS])
_LINE_COUNTS = _cumulative([(1, 40), (2, 28), (3, 17), (4, 10), (5, 5)])
_SPLITS = _cumulative([(1, 50), (2, 35), (3, 15)])
_QUANTITIES = _cumulative([(1, 72), (2, 19), (3, 6), (4, 3)])
_TAG_COUNTS = _cumulative([(0, 55), (1, 30), (2, 12), (3, 3)])
_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
_REASON_TABLE = _cumulative([((reason, texts), weight) for reason, weight, texts in _CANCELLATION_REASONS])


def _pick(rng: random.Random, table: tuple[list[Any], list[int]]) -> Any:
    """A weighted draw; what ``rng.choices`` does for one item, without its per-call overhead."""
    values, totals = table
    return values[bisect.bisect(totals, rng.random() * totals[-1])]


def _money(cents: int) -> Decimal:
    return Decimal(f"{cents // 100}.{cents % 100:02d}")


def _cents(amount: str) -> int:
    return int(Decimal(amount) * 100)


def _fill(rng: random.Random, pattern: str) -> str:
    """Expand '#' to a digit and '@' to a capital letter."""
    out = []
    for char in pattern:
        if char == "#":
            out.append(str(rng.randrange(10)))
        elif char == "@":
            out.append(chr(65 + rng.randrange(26)))
        else:
            out.append(char)
    return "".join(out)


@functools.cache
def _ascii(value: str) -> str:
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", folded.lower())


def _sku_code(value: str) -> str:
    """A short SKU segment: "Black" -> "BLACK", "Midnight Blue" -> "MID", "iPhone 15" -> "IPH15"."""
    compact = _ascii(value).upper()
    return compact if len(compact) <= 6 else compact[:3] + "".join(char for char in compact if char.isdigit())


def _after(start: datetime, limit: datetime, seconds: float) -> datetime:
    """``start`` plus a duration, squeezed so that the result never passes ``limit`` (usually now)."""
    room = (limit - start).total_seconds()
    return start + timedelta(seconds=int(min(seconds, room * 0.6)))


def _tracking_number(rng: random.Random, kind: str) -> str:
    if kind == "LP":
        return f"LP00{rng.randrange(10**12):012d}"
    if kind == "YT":
        return f"YT{rng.randrange(10**16):016d}"
    # UPU S10 (China Post): two letters, eight digits, a weighted mod-11 check digit, the country.
    serial = f"{rng.randrange(10**8):08d}"
    check = 11 - sum(int(digit) * weight for digit, weight in zip(serial, _S10_WEIGHTS, strict=True)) % 11
    check = 0 if check == 10 else 5 if check == 11 else check
    return f"R{chr(65 + rng.randrange(26))}{serial}{check}CN"


@dataclass(frozen=True)
class _Item:
    title: str
    cents: int
    image_url: str
    variants: tuple[tuple[str | None, str], ...]  # variant title, SKU


def _catalogue(supplier: _SupplierProfile) -> list[_Item]:
    items = []
    for product in supplier.products:
        combos: list[tuple[str, ...]] = [()]
        for values in product.options:
            combos = [(*combo, value) for combo in combos for value in values]
        variants = tuple(
            (" / ".join(combo) or None, "-".join([product.code, *(_sku_code(value) for value in combo)]))
            for combo in combos
        )
        digest = hashlib.md5(product.code.encode(), usedforsecurity=False).hexdigest()
        image = f"https://ae01.alicdn.com/kf/S{digest}.jpg"
        items.append(_Item(product.title, _cents(product.price), image, variants))
    return items


# ---------------------------------------------------------------------------------------------------------------
# Generation: plain dicts for Core inserts, with the foreign keys filled in once the parents have ids.


@dataclass
class _PlannedCancellation:
    """An open request; its own id goes into its messages, events and deadline job once it is inserted."""

    row: dict[str, Any]
    messages: list[dict[str, Any]]
    # Timeline rows (also in the order's events) whose data names the request.
    events: list[dict[str, Any]]


@dataclass
class _PlannedSupplierOrder:
    row: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)
    packages: list[dict[str, Any]] = field(default_factory=list)
    cancellation: _PlannedCancellation | None = None


@dataclass
class _PlannedOrder:
    row: dict[str, Any]
    supplier_orders: list[_PlannedSupplierOrder]
    # (AliExpress order id or None, row), in timeline order
    events: list[tuple[str | None, dict[str, Any]]]


@dataclass
class _Timeline:
    placed: datetime
    last: datetime
    paid: datetime | None = None
    shipped: datetime | None = None
    delivered: datetime | None = None
    finished: datetime | None = None


class _ShopGenerator:
    """Plans one shop's orders in number order, a batch at a time."""

    def __init__(
        self,
        profile: _ShopProfile,
        shop_id: int,
        supplier_ids: dict[str, int],
        count: int,
        rng: random.Random,
        now: datetime,
    ) -> None:
        self.profile = profile
        self.shop_id = shop_id
        self.staff = _staff_name(profile.name)
        self.count = count
        self.rng = rng
        self.now = now
        self.suppliers = [
            (supplier, supplier_ids[supplier.name], _catalogue(supplier)) for supplier in profile.suppliers
        ]
        self.countries = _cumulative([(_COUNTRIES[code], weight) for code, weight in profile.countries])
        self.start = now - HISTORY
        self.slot = (HISTORY - timedelta(minutes=30)).total_seconds() / max(count, 1)
        self.next_aliexpress_id = 8_180_000_000_000_000 + rng.randrange(10**13)
        # So that a small demo still shows every AliExpress status: the older the order, the later the status.
        chosen = sorted(rng.sample(range(count), min(count, len(_LIFECYCLE))), reverse=True)
        self.forced = dict(zip(chosen, _LIFECYCLE, strict=False))

    def batches(self, size: int) -> Iterator[list[_PlannedOrder]]:
        for begin in range(0, self.count, size):
            yield [self._order(index) for index in range(begin, min(begin + size, self.count))]

    def _event(
        self,
        when: datetime,
        type_: str,
        message: str,
        aliexpress_id: str | None = None,
        *,
        actor: tuple[ActorKind, str] = (ActorKind.SYSTEM, ACTOR_NAME),
        **data: Any,
    ) -> tuple[str | None, dict[str, Any]]:
        return aliexpress_id, {
            "shop_id": self.shop_id,
            "order_id": None,
            "supplier_order_id": None,
            "type": type_,
            "actor_kind": actor[0],
            "actor_name": actor[1],
            "message": message,
            "data": data,
            "created_at": when,
        }

    def _status_event(
        self, when: datetime, aliexpress_id: str, status: SupplierOrderStatus
    ) -> tuple[str | None, dict[str, Any]]:
        return self._event(
            when,
            "supplier_order_status_changed",
            f"Supplier order {aliexpress_id} is now {status.value}",
            aliexpress_id,
            status=status.value,
        )

    def _message(self, author: MessageAuthor, name: str, body: str, when: datetime) -> dict[str, Any]:
        return {
            "shop_id": self.shop_id,
            "request_id": None,
            "author": author,
            "author_name": name,
            "body": body,
            "created_at": when,
        }

    def _customer(self) -> tuple[str, str, str, dict[str, str]]:
        rng = self.rng
        country: _Country = _pick(rng, self.countries)
        first, last = rng.choice(country.first_names), rng.choice(country.last_names)
        local = rng.choice(
            (
                f"{_ascii(first)}.{_ascii(last)}",
                f"{_ascii(first)}{_ascii(last)}{rng.randrange(1, 99)}",
                f"{_ascii(first)[0]}{_ascii(last)}",
                f"{_ascii(first)}_{_ascii(last)}{rng.randrange(70, 100)}",
            )
        )
        city, province, postcode, area = rng.choice(country.cities)
        street = country.street_format.format(
            number=rng.randrange(1, 240), street=rng.choice(country.streets)
        )
        address = {
            "name": f"{first} {last}",
            "address1": street,
            "city": city,
            "province": province,
            "zip": _fill(rng, postcode),
            "country_code": country.code,
        }
        phone = _fill(rng, country.phone.format(area=area))
        return f"{first} {last}", f"{local}@{rng.choice(country.email_domains)}", phone, address

    def _status(self, index: int, position: int, age_days: float) -> SupplierOrderStatus:
        if position == 0 and index in self.forced:
            return self.forced[index]
        for max_age, table in _STATUS_TABLES:
            if age_days < max_age:
                return _pick(self.rng, table)  # type: ignore[no-any-return]
        raise AssertionError("the last age band is unbounded")

    def _timeline(self, status: SupplierOrderStatus, reason: str | None, created: datetime) -> _Timeline:
        rng, now = self.rng, self.now
        placed = _after(created, now, rng.uniform(120, 1800))
        times = _Timeline(placed=placed, last=placed)
        if status in _PAID or (status is S.FINISH and reason != _UNPAID_CANCEL):
            times.paid = times.last = _after(placed, now, rng.uniform(60, 3600))
        accepted = status is S.FINISH and reason not in CANCEL_END_REASONS
        if status in _SHIPPED or accepted or (status is S.IN_ISSUE and rng.random() < 0.7):
            assert times.paid is not None
            times.shipped = times.last = _after(times.paid, now, rng.uniform(1, 5) * DAY)
            if status is S.FUND_PROCESSING or accepted or (status is S.IN_ISSUE and rng.random() < 0.5):
                times.delivered = times.last = _after(times.shipped, now, rng.uniform(7, 20) * DAY)
        if status is S.FINISH:
            times.finished = times.last = _after(
                times.last, now, rng.uniform(1, 10) * DAY if accepted else rng.uniform(0.2, 3) * DAY
            )
        elif status is S.IN_CANCEL:
            assert times.paid is not None
            times.last = self._requested_at(times.paid)
        elif status in _STATUS_EVENTS:
            times.last = _after(times.last, now, rng.uniform(0.05, 4) * DAY)
        return times

    def _requested_at(self, paid: datetime) -> datetime:
        """A recent request, so that its deadline is still ahead; never before the payment it wants back."""
        rng, now = self.rng, self.now
        requested = now - timedelta(seconds=int(rng.uniform(1, 40) * HOUR))
        return requested if requested > paid else _after(paid, now, rng.uniform(60, 3600))

    def _cancellation(
        self,
        supplier: _SupplierProfile,
        aliexpress_id: str,
        requested: datetime,
        events: list[tuple[str | None, dict[str, Any]]],
    ) -> _PlannedCancellation:
        """The open request that holds a supplier order IN_CANCEL, recorded as ``request_cancellation`` does.

        A few requests wait on the merchant after the supplier asked a question (INFO_REQUESTED); only the
        PENDING ones get the auto-approval job, as in the domain.
        """
        rng = self.rng
        reason: CancellationReason
        reason, texts = _pick(rng, _REASON_TABLE)
        respond_by = requested + RESPONSE_TIME
        requested_event = self._event(
            requested,
            "cancellation_requested",
            f"Cancellation of AliExpress order {aliexpress_id} requested ({reason})",
            aliexpress_id,
            actor=(ActorKind.MERCHANT, self.staff),
            cancellationRequestId=None,
            status=CancellationStatus.PENDING.value,
            reason=reason.value,
            respondBy=respond_by.isoformat(),
        )
        events += (requested_event, self._status_event(requested, aliexpress_id, S.IN_CANCEL))
        planned = _PlannedCancellation(
            row={},
            messages=[self._message(MessageAuthor.MERCHANT, self.staff, rng.choice(texts), requested)],
            events=[requested_event[1]],
        )
        status, updated = CancellationStatus.PENDING, requested
        if rng.random() < _INFO_REQUESTED_SHARE:
            status = CancellationStatus.INFO_REQUESTED
            updated = _after(requested, self.now, rng.uniform(0.5, 12) * HOUR)
            author = _supplier_user(supplier.name)
            planned.messages.append(
                self._message(MessageAuthor.SUPPLIER, author, rng.choice(_SUPPLIER_QUESTIONS), updated)
            )
            asked = self._event(
                updated,
                "cancellation_info_requested",
                f"The supplier asks for more information about cancelling AliExpress order {aliexpress_id}",
                aliexpress_id,
                actor=(ActorKind.SUPPLIER, author),
                cancellationRequestId=None,
                status=status.value,
            )
            events.append(asked)
            planned.events.append(asked[1])
        planned.row = {
            "shop_id": self.shop_id,
            "order_id": None,
            "supplier_order_id": None,
            "status": status,
            "reason": reason,
            "open_key": None,
            "previous_status": S.WAIT_SELLER_SEND_GOODS,
            "requested_by": self.staff,
            "respond_by": respond_by,
            "decided_at": None,
            "created_at": requested,
            "updated_at": updated,
        }
        return planned

    def _package(
        self,
        status: SupplierOrderStatus,
        times: _Timeline,
        origin: str,
        address: dict[str, str],
    ) -> tuple[dict[str, Any], str, str]:
        rng = self.rng
        assert times.shipped is not None
        carrier, kind = _pick(rng, _CARRIER_TABLE)
        tracking = _tracking_number(rng, kind)
        places = {
            "origin": origin,
            "city": f"{address['city']}, {address['country_code']}",
            "country": address["country_code"],
        }
        if times.delivered is not None:
            middle = sorted(rng.sample(range(1, len(_TRANSIT)), rng.randint(1, 4)))
            steps = [_TRANSIT[0], *(_TRANSIT[i] for i in middle), _DELIVERED]
            end = times.delivered
        else:
            days = (self.now - times.shipped).total_seconds() / DAY
            steps = list(_TRANSIT[: min(6, 2 + int(days // 3))])
            if status is S.IN_ISSUE:
                steps = [*steps[:5], rng.choice(_EXCEPTIONS)]
            end = self.now
        events, when = [], times.shipped
        for number, (scan, location, description) in enumerate(steps):
            if number == len(steps) - 1 and times.delivered is not None:
                when = times.delivered
            elif number:
                when = _after(when, end, rng.uniform(0.3, 2.5) * DAY)
            events.append(
                {
                    "time": when.isoformat(),
                    "status": scan,
                    "location": location.format(**places),
                    "description": description,
                }
            )
        row = {
            "shop_id": self.shop_id,
            "supplier_order_id": None,
            "tracking_number": tracking,
            "carrier": carrier,
            "tracking_status": steps[-1][0],
            "tracking_events": events,
            "created_at": times.shipped,
            "updated_at": when,
        }
        times.last = max(times.last, when)
        return row, tracking, carrier

    def _lines(
        self, catalogue: list[_Item], count: int, position: int
    ) -> tuple[list[dict[str, Any]], int, int]:
        """Lines bought from one supplier, with their retail and cost totals in cents."""
        rng = self.rng
        lines, retail, cost = [], 0, 0
        for offset in range(count):
            item: _Item = rng.choice(catalogue)
            variant_title, sku = rng.choice(item.variants)
            quantity: int = _pick(rng, _QUANTITIES)
            retail += quantity * item.cents
            cost += quantity * max(1, round(item.cents * rng.uniform(0.32, 0.58)))
            lines.append(
                {
                    "shop_id": self.shop_id,
                    "order_id": None,
                    "supplier_order_id": None,
                    "position": position + offset,
                    "title": item.title,
                    "variant_title": variant_title,
                    "sku": sku,
                    "quantity": quantity,
                    "unit_price": _money(item.cents),
                    "image_url": item.image_url,
                }
            )
        return lines, retail, cost

    def _outcome(
        self, index: int, position: int, age_days: float, cancel_all: bool
    ) -> tuple[SupplierOrderStatus, str | None]:
        rng = self.rng
        if cancel_all:
            return S.FINISH, rng.choice(("cancel_order_close_trade", _UNPAID_CANCEL))
        status = self._status(index, position, age_days)
        if status is not S.FINISH:
            return status, None
        if age_days < 6 or rng.random() < 0.04:
            return status, _pick(rng, _CANCEL_TABLE)
        return status, _pick(rng, _ACCEPT_TABLE)

    def _supplier_order(
        self,
        supplier: _SupplierProfile,
        supplier_id: int,
        outcome: tuple[SupplierOrderStatus, str | None],
        created: datetime,
        cost: int,
        lines: list[dict[str, Any]],
        address: dict[str, str],
        events: list[tuple[str | None, dict[str, Any]]],
    ) -> _PlannedSupplierOrder:
        """One AliExpress order with its parcels; its timeline entries go to ``events``."""
        rng = self.rng
        status, reason = outcome
        self.next_aliexpress_id += rng.randint(1, 50_000)
        aliexpress_id = str(self.next_aliexpress_id)
        times = self._timeline(status, reason, created)
        planned = _PlannedSupplierOrder(row={}, lines=lines)
        events.append(
            self._event(
                times.placed,
                "supplier_order_placed",
                f"Supplier order {aliexpress_id} placed with {supplier.name}",
                aliexpress_id,
                aliexpress_order_id=aliexpress_id,
                supplier=supplier.name,
            )
        )
        if times.paid is not None:
            events.append(
                self._event(
                    times.paid, "supplier_order_paid", f"Supplier order {aliexpress_id} paid", aliexpress_id
                )
            )
        if times.shipped is not None:
            partial = status is S.SELLER_PART_SEND_GOODS
            parcels = 2 if not partial and len(lines) > 2 and rng.random() < 0.3 else 1
            for _ in range(parcels):
                package, tracking, carrier = self._package(status, times, supplier.origin, address)
                # A repeated random tracking number would break the (supplier order, tracking) uniqueness.
                if any(existing["tracking_number"] == tracking for existing in planned.packages):
                    continue
                planned.packages.append(package)
                verb = "partially shipped" if partial else "shipped"
                events.append(
                    self._event(
                        times.shipped,
                        "supplier_order_shipped",
                        f"Supplier order {aliexpress_id} {verb} with {carrier}, tracking {tracking}",
                        aliexpress_id,
                        tracking_number=tracking,
                        carrier=carrier,
                    )
                )
                if times.delivered is not None:
                    events.append(
                        self._event(
                            times.delivered,
                            "package_delivered",
                            f"Package {tracking} delivered",
                            aliexpress_id,
                            tracking_number=tracking,
                        )
                    )
        if status is S.IN_CANCEL:
            planned.cancellation = self._cancellation(supplier, aliexpress_id, times.last, events)
        elif status in _STATUS_EVENTS:
            events.append(self._status_event(times.last, aliexpress_id, status))
        if times.finished is not None:
            cancelled = reason in CANCEL_END_REASONS
            events.append(
                self._event(
                    times.finished,
                    "supplier_order_cancelled" if cancelled else "supplier_order_completed",
                    f"Supplier order {aliexpress_id} {'cancelled' if cancelled else 'completed'} ({reason})",
                    aliexpress_id,
                    end_reason=reason,
                )
            )
        planned.row = {
            "shop_id": self.shop_id,
            "order_id": None,
            "supplier_id": supplier_id,
            "aliexpress_order_id": aliexpress_id,
            "status": status,
            "end_reason": reason,
            "currency": self.profile.currency,
            "cost": _money(cost),
            "paid_at": times.paid,
            "shipped_at": times.shipped,
            "finished_at": times.finished,
            "created_at": times.placed,
            "updated_at": times.last,
        }
        return planned

    def _order(self, index: int) -> _PlannedOrder:
        rng, profile = self.rng, self.profile
        number = f"#{1001 + index}"
        created = self.start + timedelta(seconds=int(self.slot * (index + rng.random())))
        age_days = (self.now - created).total_seconds() / DAY
        name, email, phone, address = self._customer()

        line_count: int = _pick(rng, _LINE_COUNTS)
        split = min(line_count, _pick(rng, _SPLITS))
        chosen = rng.sample(self.suppliers, split)
        groups = sorted([*range(split), *(rng.randrange(split) for _ in range(line_count - split))])
        cancel_all = index not in self.forced and rng.random() < 0.03

        events = [self._event(created, "order_imported", f"Order {number} imported from the store")]
        supplier_orders: list[_PlannedSupplierOrder] = []
        subtotal = 0
        for group, (supplier, supplier_id, catalogue) in enumerate(chosen):
            lines, retail, cost = self._lines(catalogue, groups.count(group), groups.index(group))
            subtotal += retail
            outcome = self._outcome(index, group, age_days, cancel_all)
            supplier_orders.append(
                self._supplier_order(supplier, supplier_id, outcome, created, cost, lines, address, events)
            )

        rows = [supplier_order.row for supplier_order in supplier_orders]
        updated = max(created, *(row["updated_at"] for row in rows))
        cancelled_at = None
        if all(row["end_reason"] in CANCEL_END_REASONS for row in rows):
            status, financial = OrderStatus.CANCELLED, FinancialStatus.VOIDED
            cancelled_at = max(row["finished_at"] for row in rows)
            events.append(self._event(cancelled_at, "order_cancelled", f"Order {number} cancelled"))
        elif all(row["status"] is S.FINISH for row in rows):
            status, financial = OrderStatus.CLOSED, FinancialStatus.PAID
            events.append(self._event(updated, "order_closed", f"Order {number} closed"))
        else:
            status, financial = OrderStatus.OPEN, FinancialStatus.PAID
        shipping = 0 if subtotal >= profile.free_shipping_over else rng.choice(profile.shipping_rates)
        tags = rng.sample(_TAGS, _pick(rng, _TAG_COUNTS))
        order_row = {
            "shop_id": self.shop_id,
            "number": number,
            "number_value": 1001 + index,
            "customer_name": name,
            "customer_email": email,
            "customer_phone": phone,
            "shipping_address": address,
            "currency": profile.currency,
            "subtotal": _money(subtotal),
            "shipping": _money(shipping),
            "total": _money(subtotal + shipping),
            "financial_status": financial,
            "status": status,
            "tags": ",".join(tags),
            "note": rng.choice(_NOTES) if rng.random() < 0.08 else None,
            "created_at": created,
            "updated_at": updated,
            "cancelled_at": cancelled_at,
        }
        # Stable sort: events at the same instant keep the order they happened in.
        events.sort(key=lambda event: event[1]["created_at"])
        return _PlannedOrder(order_row, supplier_orders, events)


# ---------------------------------------------------------------------------------------------------------------
# Writing.


async def _insert_batch(session: AsyncSession, batch: list[_PlannedOrder]) -> None:
    """Parents first, mapping returned ids by natural key so that no row order is assumed."""
    result = await session.execute(
        insert(_ORDERS).returning(_ORDERS.c.id, _ORDERS.c.number), [planned.row for planned in batch]
    )
    order_ids = {number: order_id for order_id, number in result}
    supplier_rows = []
    for planned in batch:
        order_id = order_ids[planned.row["number"]]
        for supplier_order in planned.supplier_orders:
            supplier_order.row["order_id"] = order_id
            supplier_rows.append(supplier_order.row)
    result = await session.execute(
        insert(_SUPPLIER_ORDERS).returning(_SUPPLIER_ORDERS.c.id, _SUPPLIER_ORDERS.c.aliexpress_order_id),
        supplier_rows,
    )
    supplier_order_ids = {aliexpress_id: row_id for row_id, aliexpress_id in result}
    lines, packages, events = [], [], []
    cancellations: dict[int, _PlannedCancellation] = {}
    for planned in batch:
        order_id = order_ids[planned.row["number"]]
        for supplier_order in planned.supplier_orders:
            supplier_order_id = supplier_order_ids[supplier_order.row["aliexpress_order_id"]]
            for line in supplier_order.lines:
                line["order_id"] = order_id
                line["supplier_order_id"] = supplier_order_id
                lines.append(line)
            for package in supplier_order.packages:
                package["supplier_order_id"] = supplier_order_id
                packages.append(package)
            if supplier_order.cancellation is not None:
                supplier_order.cancellation.row.update(
                    order_id=order_id, supplier_order_id=supplier_order_id, open_key=supplier_order_id
                )
                cancellations[supplier_order_id] = supplier_order.cancellation
        for aliexpress_id, event in planned.events:
            event["order_id"] = order_id
            event["supplier_order_id"] = supplier_order_ids[aliexpress_id] if aliexpress_id else None
            events.append(event)
    messages, jobs = await _insert_cancellations(session, cancellations)
    for table, rows in ((_LINES, lines), (_PACKAGES, packages), (_EVENTS, events), (_MESSAGES, messages)):
        if rows:
            await session.execute(insert(table), rows)
    if jobs:
        # As ``enqueue`` does: a job already holding one of these keys is kept rather than duplicated.
        dialect_insert = (
            postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        )
        await session.execute(dialect_insert(_JOBS).on_conflict_do_nothing(index_elements=["key"]), jobs)


async def _insert_cancellations(
    session: AsyncSession, cancellations: dict[int, _PlannedCancellation]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Insert the requests (keyed by supplier order id); returns their messages and auto-approval jobs.

    Both, and the timeline rows that name a request, need the request's new id, so they are filled in here.
    """
    if not cancellations:
        return [], []
    result = await session.execute(
        insert(_REQUESTS).returning(_REQUESTS.c.id, _REQUESTS.c.supplier_order_id),
        [planned.row for planned in cancellations.values()],
    )
    request_ids = {supplier_order_id: request_id for request_id, supplier_order_id in result}
    messages, jobs = [], []
    for supplier_order_id, planned in cancellations.items():
        request_id = request_ids[supplier_order_id]
        for message in planned.messages:
            message["request_id"] = request_id
            messages.append(message)
        for event in planned.events:
            event["data"]["cancellationRequestId"] = request_id
        row = planned.row
        if row["status"] is CancellationStatus.PENDING:
            jobs.append(
                {
                    "shop_id": row["shop_id"],
                    "kind": AUTO_APPROVE_KIND,
                    "key": f"{AUTO_APPROVE_KIND}:{request_id}",
                    "payload": {"requestId": request_id},
                    "status": JobStatus.QUEUED,
                    "attempts": 0,
                    "max_attempts": DEFAULT_MAX_ATTEMPTS,
                    "run_at": row["respond_by"],
                    "created_at": row["created_at"],
                }
            )
    return messages, jobs


def _tokens(
    secret_key: str, shops: Sequence[str], suppliers: Sequence[str]
) -> tuple[dict[str, str], dict[str, str], str]:
    merchant = {name: derive_token(secret_key, TokenKind.MERCHANT, name) for name in shops}
    supplier = {name: derive_token(secret_key, TokenKind.SUPPLIER, name) for name in suppliers}
    return merchant, supplier, derive_token(secret_key, TokenKind.ADMIN, ADMIN_LABEL)


async def _existing(session: AsyncSession, secret_key: str) -> DemoSeed | None:
    names = [profile.name for profile in DEMO_SHOPS]
    shops = (
        await session.execute(select(Shop.id, Shop.name).where(Shop.name.in_(names)).order_by(Shop.id))
    ).all()
    if not shops:
        return None
    known = {supplier.name for profile in DEMO_SHOPS for supplier in profile.suppliers}
    suppliers = (
        await session.scalars(
            select(Supplier.name)
            .where(Supplier.shop_id.in_([shop_id for shop_id, _ in shops]))
            .order_by(Supplier.id)
        )
    ).all()
    merchant, supplier, admin = _tokens(
        secret_key, [name for _, name in shops], [n for n in suppliers if n in known]
    )
    return DemoSeed(
        shop_ids={name: shop_id for shop_id, name in shops},
        merchant_tokens=merchant,
        supplier_tokens=supplier,
        admin_token=admin,
        created=False,
    )


async def _create_shops(
    session: AsyncSession, rng: random.Random, secret_key: str, now: datetime
) -> tuple[dict[str, Shop], dict[str, Supplier]]:
    shops = {
        profile.name: Shop(
            name=profile.name,
            currency=profile.currency,
            email=profile.email,
            return_address=dict(profile.return_address),
            created_at=now - HISTORY - timedelta(days=10),
        )
        for profile in DEMO_SHOPS
    }
    session.add_all(shops.values())
    await session.flush()
    suppliers: dict[str, Supplier] = {}
    for profile in DEMO_SHOPS:
        shop = shops[profile.name]
        shop.shop_id = shop.id
        for supplier in profile.suppliers:
            suppliers[supplier.name] = Supplier(
                shop_id=shop.id,
                name=supplier.name,
                aliexpress_store_id=supplier.store_id,
                store_url=f"https://www.aliexpress.com/store/{supplier.store_id}",
                accepts_returns=supplier.accepts_returns,
                return_window_days=supplier.return_window_days,
                webhook_secret="whsec_" + base64.b64encode(rng.randbytes(24)).decode(),
                created_at=now - HISTORY - timedelta(days=5),
            )
    session.add_all(suppliers.values())
    await session.flush()

    merchant, supplier_tokens, admin = _tokens(secret_key, list(shops), list(suppliers))
    issued = [
        issue_token(
            session,
            kind=TokenKind.MERCHANT,
            name=_staff_name(name),
            shop_id=shops[name].id,
            scopes=Scope.ALL,
            raw=raw,
        )
        for name, raw in merchant.items()
    ]
    issued += [
        issue_token(
            session, kind=TokenKind.SUPPLIER, name=_supplier_user(name), supplier=suppliers[name], raw=raw
        )
        for name, raw in supplier_tokens.items()
    ]
    issued.append(issue_token(session, kind=TokenKind.ADMIN, name=ADMIN_LABEL, raw=admin))
    for token in issued:
        token.token.created_at = now
    await session.flush()
    return shops, suppliers


async def seed_demo(
    database: Database,
    *,
    orders: int = 200,
    seed: int = 1,
    secret_key: str,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DemoSeed:
    """Create the demo shops, suppliers, tokens and ``orders`` orders, unless the demo shops already exist.

    The shops and tokens are committed first and the orders in batches, so an interrupted run leaves the shops
    in place with fewer orders; a later call then reports ``created=False`` rather than doubling them.
    """
    if orders < 0:
        raise ValueError("orders must not be negative")
    if now is not None and now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = (now or utcnow()).astimezone(UTC).replace(microsecond=0)
    rng = random.Random(seed)

    async with database.write() as session:
        if database.dialect == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
        existing = await _existing(session, secret_key)
        if existing is not None:
            return existing
        shops, suppliers = await _create_shops(session, rng, secret_key, now)
        shop_ids = {name: shop.id for name, shop in shops.items()}
        supplier_ids = {name: supplier.id for name, supplier in suppliers.items()}

    first = round(orders * DEMO_SHOPS[0].share)
    counts = [first, orders - first]
    generators = [
        _ShopGenerator(
            profile, shop_ids[profile.name], supplier_ids, count, random.Random(rng.getrandbits(64)), now
        )
        for profile, count in zip(DEMO_SHOPS, counts, strict=True)
    ]
    done = 0
    for generator in generators:
        for batch in generator.batches(BATCH_SIZE):
            async with database.write() as session:
                await _insert_batch(session, batch)
            done += len(batch)
            if progress is not None:
                progress(done, orders)

    merchant, supplier_tokens, admin = _tokens(secret_key, list(shops), list(suppliers))
    return DemoSeed(
        shop_ids=shop_ids,
        merchant_tokens=merchant,
        supplier_tokens=supplier_tokens,
        admin_token=admin,
        created=True,
        orders=orders,
    )
