"""Order search syntax (Shopify style) parsed into a small AST and compiled to one SQLAlchemy WHERE clause.

Grammar, loosest binding first::

    query   := or_expr?                      empty or blank matches every order
    or_expr := and_expr ("OR" and_expr)*
    and_expr:= unary (["AND"] unary)*        juxtaposition is AND
    unary   := "NOT" unary | "-" unary | primary
    primary := "(" or_expr ")" | term
    term    := field ":" [">" | ">=" | "<" | "<="] value | value
    value   := bare word | "double \\" quoted" | 'single \\' quoted'

Keywords are upper case only (as in Shopify), so a lower-case ``or`` is an ordinary word. Field names are
case-insensitive. Every value is checked while parsing, so a query that parses also compiles.

Bare words (no field) match an order when any of these holds:

- its number equals the word, with or without a leading ``#``;
- its customer name or customer email contains the word (case-insensitive);
- one of its lines has a SKU that starts with the word (case-insensitive);
- one of its packages has a tracking number that starts with the word (case-insensitive).

Number and email use equality/containment because people type them whole or in part; SKUs and tracking
numbers are long codes that are usually pasted or typed from the start, so a prefix is the useful match.

Text matching lower-cases both sides with the database's ``lower()`` and uses LIKE with ``/`` as escape
character, so it behaves the same on SQLite and PostgreSQL for ASCII text (SQLite's ``lower()`` leaves
non-ASCII letters alone). Child rows (lines, supplier orders, packages, suppliers) are matched with
correlated EXISTS subqueries, so an order never appears twice in the result.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Generic, Literal, NoReturn, TypeVar

from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    String,
    and_,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from db.models import (
    CancellationRequest,
    FinancialStatus,
    Order,
    OrderLine,
    OrderStatus,
    Package,
    Return,
    ReturnStatus,
    Supplier,
    SupplierOrder,
    SupplierOrderStatus,
)

MAX_QUERY_LENGTH = 1000
MAX_TERMS = 50
# Amounts are stored as BigInteger scaled by 10,000; this keeps a bound value well inside that range.
MAX_AMOUNT = Decimal(10) ** 14
# Relative dates further back than this are almost certainly typos and would overflow datetime arithmetic.
MAX_RELATIVE = timedelta(days=366 * 100)
LIKE_ESCAPE = "/"

Comparator = Literal[":", ">", ">=", "<", "<="]
# Longest first, so that ">=" is not read as ">" followed by a value starting with "=".
ORDERING: tuple[Comparator, ...] = (">=", "<=", ">", "<")
ALL_COMPARATORS: frozenset[Comparator] = frozenset({":", *ORDERING})


class SearchSyntaxError(ValueError):
    """A query that cannot be understood; ``position`` is the 0-based offset of the offending text."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"at position {position}: {reason}")
        self.position = position
        self.reason = reason


# --- AST ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchAll:
    """The empty query."""


@dataclass(frozen=True)
class Term:
    """One ``field:value`` (or a bare word when ``field`` is None) with its value already checked.

    ``text`` is the value as the user wrote it (quotes removed); ``value`` is its parsed form for the field.
    """

    field: str | None
    comparator: Comparator
    text: str
    value: Any
    position: int


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = MatchAll | Term | Not | And | Or


# --- Field definitions -------------------------------------------------------------------------------


class _BadValue(Exception):
    """Raised by a value parser; the parser turns it into a SearchSyntaxError at the value's position."""


V = TypeVar("V")


@dataclass(frozen=True)
class FieldSpec(Generic[V]):
    """How one field's value is checked and turned into SQL."""

    parse: Callable[[str, Comparator], V]
    clause: Callable[[Comparator, V, datetime], ColumnElement[bool]]
    comparators: frozenset[Comparator] = frozenset({":"})


@dataclass(frozen=True)
class TimeValue:
    """A point or a whole UTC day, absolute or relative to the moment the query runs."""

    kind: Literal["instant", "day", "today", "yesterday", "ago"]
    instant: datetime | None = None
    day: date | None = None
    ago: timedelta | None = None

    def resolve(self, now: datetime) -> tuple[datetime, datetime | None]:
        """Start and end of the period, or (instant, None) for a point in time."""
        if self.kind == "instant" and self.instant is not None:
            return self.instant, None
        if self.kind == "ago" and self.ago is not None:
            return now - self.ago, None
        if self.kind == "day" and self.day is not None:
            day = self.day
        else:
            day = now.date() - timedelta(days=1 if self.kind == "yesterday" else 0)
        start = datetime.combine(day, time(), tzinfo=UTC)
        return start, start + timedelta(days=1)


def _lower(expr: SQLColumnExpression[Any]) -> ColumnElement[str]:
    return func.lower(expr, type_=String())


def _escape_like(value: str) -> str:
    return (
        value.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )


def _like(expr: SQLColumnExpression[Any], prefix: str, value: str, suffix: str) -> ColumnElement[bool]:
    """Case-insensitive LIKE with the user's value escaped and lower-cased by the same database function."""
    pattern = literal(prefix + _escape_like(value) + suffix, String())
    return _lower(expr).like(_lower(pattern), escape=LIKE_ESCAPE)


def _contains(expr: SQLColumnExpression[Any], value: str) -> ColumnElement[bool]:
    return _like(expr, "%", value, "%")


def _starts_with(expr: SQLColumnExpression[Any], value: str) -> ColumnElement[bool]:
    return _like(expr, "", value, "%")


def _equals_ci(expr: SQLColumnExpression[Any], value: str) -> ColumnElement[bool]:
    return _lower(expr) == _lower(literal(value, String()))


def _exact_or_prefix(expr: SQLColumnExpression[Any], value: str) -> ColumnElement[bool]:
    """A trailing ``*`` asks for a prefix match; otherwise the whole value must match."""
    if value.endswith("*"):
        return _starts_with(expr, value[:-1])
    return _equals_ci(expr, value)


def _email() -> ColumnElement[str]:
    # NULL emails become '' so that a negated email term still matches orders without an email.
    return func.coalesce(Order.customer_email, "", type_=String())


def _ordered(expr: SQLColumnExpression[Any], comparator: Comparator, value: Any) -> ColumnElement[bool]:
    if comparator == ">":
        return expr > value
    if comparator == ">=":
        return expr >= value
    if comparator == "<":
        return expr < value
    if comparator == "<=":
        return expr <= value
    return expr == value


def _parse_text(text: str, _comparator: Comparator) -> str:
    return text


def _parse_pattern(text: str, _comparator: Comparator) -> str:
    if text.rstrip("*") == "":
        raise _BadValue("a prefix needs at least one character before '*'")
    return text


def _parse_tag(text: str, _comparator: Comparator) -> str:
    if "," in text:
        raise _BadValue("a tag cannot contain ','")
    return text.strip()


def _enum_parser(cls: type[enum.Enum]) -> Callable[[str, Comparator], enum.Enum]:
    allowed = {member.name.lower(): member for member in cls}

    def parse(text: str, _comparator: Comparator) -> enum.Enum:
        member = allowed.get(text.lower())
        if member is None:
            raise _BadValue(f"unknown value '{text}' (allowed values: {', '.join(allowed)})")
        return member

    return parse


def _strip_hash(text: str) -> str:
    return text[1:] if text.startswith("#") else text


def _parse_number(text: str, comparator: Comparator) -> str:
    digits = _strip_hash(text)
    if not digits:
        raise _BadValue(f"bad number '{text}' (expected digits after '#')")
    if comparator != ":" and not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
        raise _BadValue(f"bad number '{text}' (comparators need digits, such as 1001)")
    return digits


def _number_clause(comparator: Comparator, text: str, _now: datetime) -> ColumnElement[bool]:
    if comparator == ":":
        return Order.number.in_([text, "#" + text])
    return _ordered(Order.number_value, comparator, int(text))


_AMOUNT = re.compile(r"-?\d{1,15}(\.\d+)?")


def _parse_amount(text: str, _comparator: Comparator) -> Decimal:
    if not _AMOUNT.fullmatch(text):
        raise _BadValue(f"bad amount '{text}' (expected a number such as 25 or 19.99)")
    amount = Decimal(text)
    if amount != amount.quantize(Decimal("0.0001")):
        raise _BadValue(f"bad amount '{text}' (at most four decimal places)")
    if abs(amount) >= MAX_AMOUNT:
        raise _BadValue(f"bad amount '{text}' (too large)")
    return amount


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*")
_RELATIVE = re.compile(r"-(\d{1,6})([wdh])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours"}
_DATE_FORMATS = "expected YYYY-MM-DD, an ISO-8601 date-time, today, yesterday, or -7d / -24h / -2w"


def _parse_time(text: str, _comparator: Comparator) -> TimeValue:
    lowered = text.lower()
    if lowered in ("today", "yesterday"):
        return TimeValue(kind="today" if lowered == "today" else "yesterday")
    relative = _RELATIVE.fullmatch(lowered)
    if relative:
        ago = timedelta(**{_UNITS[relative[2]]: int(relative[1])})
        if ago > MAX_RELATIVE:
            raise _BadValue(f"bad date '{text}' (at most 100 years back)")
        return TimeValue(kind="ago", ago=ago)
    try:
        if _DAY.fullmatch(text):
            day = date.fromisoformat(text)
            if day == date.max:  # the day's end would not be representable
                raise ValueError(text)
            return TimeValue(kind="day", day=day)
        if _DATETIME.fullmatch(text):
            instant = datetime.fromisoformat(text)
            if instant.tzinfo is None:
                instant = instant.replace(tzinfo=UTC)
            return TimeValue(kind="instant", instant=instant.astimezone(UTC))
    except (ValueError, OverflowError):
        raise _BadValue(f"bad date '{text}' ({_DATE_FORMATS})") from None
    raise _BadValue(f"bad date '{text}' ({_DATE_FORMATS})")


def _time_clause(
    column: SQLColumnExpression[datetime],
) -> Callable[[Comparator, TimeValue, datetime], ColumnElement[bool]]:
    """Days are half-open periods [start, end): ``>`` a day means after it, ``<=`` means up to its end.

    ``field:-7d`` (no comparator) means "since then", the only useful reading of equality with a moment
    relative to now; any other point in time is matched exactly.
    """

    def clause(comparator: Comparator, value: TimeValue, now: datetime) -> ColumnElement[bool]:
        start, end = value.resolve(now)
        if end is None:
            return _ordered(column, ">=" if comparator == ":" and value.kind == "ago" else comparator, start)
        if comparator == ">":
            return column >= end
        if comparator == ">=":
            return column >= start
        if comparator == "<":
            return column < start
        if comparator == "<=":
            return column < end
        return and_(column >= start, column < end)

    return clause


def _supplier_status_exists(status: SupplierOrderStatus) -> ColumnElement[bool]:
    return (
        select(SupplierOrder.id)
        .where(SupplierOrder.order_id == Order.id, SupplierOrder.status == status)
        .exists()
    )


def _open_cancellation_exists() -> ColumnElement[bool]:
    # open_key is set exactly while a request is open (PENDING or INFO_REQUESTED).
    return (
        select(CancellationRequest.id)
        .where(CancellationRequest.order_id == Order.id, CancellationRequest.open_key.is_not(None))
        .exists()
    )


def _open_return_exists() -> ColumnElement[bool]:
    # A return is open until it is closed, declined or canceled.
    return (
        select(Return.id).where(Return.order_id == Order.id, Return.status.in_(OPEN_RETURN_STATUSES)).exists()
    )


OPEN_RETURN_STATUSES = (ReturnStatus.REQUESTED, ReturnStatus.APPROVED, ReturnStatus.RECEIVED)

HAS_FILTERS: dict[str, Callable[[], ColumnElement[bool]]] = {
    "open_cancellation": _open_cancellation_exists,
    "open_dispute": lambda: _supplier_status_exists(SupplierOrderStatus.IN_ISSUE),
    "open_return": _open_return_exists,
}
"""``has:`` values; a subdomain with its own table points its entry at that table."""


def _parse_has(text: str, _comparator: Comparator) -> str:
    name = text.lower()
    if name not in HAS_FILTERS:
        raise _BadValue(f"unknown value '{text}' (allowed values: {', '.join(sorted(HAS_FILTERS))})")
    return name


def _line_exists(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return select(OrderLine.id).where(OrderLine.order_id == Order.id, condition).exists()


def _package_exists(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return (
        select(Package.id)
        .join(SupplierOrder, Package.supplier_order_id == SupplierOrder.id)
        .where(SupplierOrder.order_id == Order.id, condition)
        .exists()
    )


def _supplier_clause(_comparator: Comparator, text: str, _now: datetime) -> ColumnElement[bool]:
    return (
        select(SupplierOrder.id)
        .join(Supplier, SupplierOrder.supplier_id == Supplier.id)
        .where(
            SupplierOrder.order_id == Order.id,
            or_(_contains(Supplier.name, text), Supplier.aliexpress_store_id == text),
        )
        .exists()
    )


def _tag_clause(_comparator: Comparator, tag: str, _now: datetime) -> ColumnElement[bool]:
    wrapped = literal(",", String()).concat(Order.tags).concat(",")
    return _like(wrapped, "%,", tag, ",%")


def _bare_clause(text: str) -> ColumnElement[bool]:
    number = _strip_hash(text)
    return or_(
        Order.number.in_([number, "#" + number]),
        _contains(Order.customer_name, text),
        _contains(_email(), text),
        _line_exists(_starts_with(OrderLine.sku, text)),
        _package_exists(_starts_with(Package.tracking_number, text)),
    )


FIELDS: dict[str, FieldSpec[Any]] = {
    "number": FieldSpec(parse=_parse_number, clause=_number_clause, comparators=ALL_COMPARATORS),
    "email": FieldSpec(parse=_parse_pattern, clause=lambda _c, v, _n: _exact_or_prefix(_email(), v)),
    "customer": FieldSpec(parse=_parse_text, clause=lambda _c, v, _n: _contains(Order.customer_name, v)),
    "status": FieldSpec(parse=_enum_parser(OrderStatus), clause=lambda _c, v, _n: Order.status == v),
    "financial_status": FieldSpec(
        parse=_enum_parser(FinancialStatus), clause=lambda _c, v, _n: Order.financial_status == v
    ),
    "supplier_status": FieldSpec(
        parse=_enum_parser(SupplierOrderStatus), clause=lambda _c, v, _n: _supplier_status_exists(v)
    ),
    "supplier": FieldSpec(parse=_parse_text, clause=_supplier_clause),
    "sku": FieldSpec(
        parse=_parse_pattern, clause=lambda _c, v, _n: _line_exists(_exact_or_prefix(OrderLine.sku, v))
    ),
    "tracking": FieldSpec(
        parse=_parse_text, clause=lambda _c, v, _n: _package_exists(_equals_ci(Package.tracking_number, v))
    ),
    "tag": FieldSpec(parse=_parse_tag, clause=_tag_clause),
    "total": FieldSpec(
        parse=_parse_amount,
        clause=lambda c, v, _n: _ordered(Order.total, c, v),
        comparators=ALL_COMPARATORS,
    ),
    "created_at": FieldSpec(
        parse=_parse_time, clause=_time_clause(Order.created_at), comparators=ALL_COMPARATORS
    ),
    "updated_at": FieldSpec(
        parse=_parse_time, clause=_time_clause(Order.updated_at), comparators=ALL_COMPARATORS
    ),
    "has": FieldSpec(parse=_parse_has, clause=lambda _c, v, _n: HAS_FILTERS[v]()),
}


# --- Tokenizer ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: Literal["term", "(", ")", "-", "AND", "OR", "NOT"]
    position: int
    term: Term | None = None


_KEYWORDS: dict[str, Literal["AND", "OR", "NOT"]] = {"AND": "AND", "OR": "OR", "NOT": "NOT"}


class _Tokenizer:
    """Splits the query into parentheses, negations, keywords and fully checked terms."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.terms = 0

    def _at_boundary(self) -> bool:
        return self.pos >= len(self.text) or self.text[self.pos].isspace() or self.text[self.pos] in "()"

    def tokens(self) -> Iterator[_Token]:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char.isspace():
                self.pos += 1
            elif char in "()":
                yield _Token(kind="(" if char == "(" else ")", position=self.pos)
                self.pos += 1
            elif char == "-":
                start = self.pos
                self.pos += 1
                if self._at_boundary() and not text.startswith("(", self.pos):
                    raise SearchSyntaxError(start, "dangling '-': write it right before the term it negates")
                yield _Token(kind="-", position=start)
            else:
                yield self._word()

    def _word(self) -> _Token:
        start = self.pos
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise SearchSyntaxError(start, f"too many terms (at most {MAX_TERMS})")
        if self.text[start] in "\"'":
            value = self._quoted()
            if not value.strip():
                raise SearchSyntaxError(start, "empty quoted word")
            return _Token(kind="term", position=start, term=Term(None, ":", value, value, start))
        while not self._at_boundary() and self.text[self.pos] != ":":
            self.pos += 1
        word = self.text[start : self.pos]
        if self._at_boundary():
            keyword = _KEYWORDS.get(word)
            if keyword is not None:
                self.terms -= 1
                return _Token(kind=keyword, position=start)
            return _Token(kind="term", position=start, term=Term(None, ":", word, word, start))
        return _Token(kind="term", position=start, term=self._field_term(word, start))

    def _field_term(self, name: str, start: int) -> Term:
        spec = FIELDS.get(name.lower())
        if spec is None:
            if not name:
                raise SearchSyntaxError(start, "missing field name before ':'")
            known = ", ".join(sorted(FIELDS))
            raise SearchSyntaxError(start, f"unknown field '{name}' (known fields: {known})")
        self.pos += 1  # the colon
        comparator_at = self.pos
        comparator: Comparator = ":"
        for candidate in ORDERING:
            if self.text.startswith(candidate, self.pos):
                comparator = candidate
                self.pos += len(candidate)
                break
        if comparator != ":" and comparator not in spec.comparators:
            allowed = ", ".join(
                sorted(name for name, s in FIELDS.items() if s.comparators == ALL_COMPARATORS)
            )
            raise SearchSyntaxError(
                comparator_at,
                f"field '{name.lower()}' does not support '{comparator}' (only {allowed} do)",
            )
        value_at = self.pos
        if self.pos < len(self.text) and self.text[self.pos] in "\"'":
            value = self._quoted()
        else:
            while not self._at_boundary():
                self.pos += 1
            value = self.text[value_at : self.pos]
        if not value.strip():
            raise SearchSyntaxError(
                value_at, f"empty value after '{name}:{'' if comparator == ':' else comparator}'"
            )
        try:
            parsed = spec.parse(value, comparator)
        except _BadValue as error:
            raise SearchSyntaxError(value_at, str(error)) from None
        return Term(name.lower(), comparator, value, parsed, start)

    def _quoted(self) -> str:
        """Reads a quoted value; a backslash escapes the quote character and itself."""
        quote_at = self.pos
        quote = self.text[quote_at]
        chars: list[str] = []
        self.pos += 1
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text) and self.text[self.pos + 1] in (quote, "\\"):
                chars.append(self.text[self.pos + 1])
                self.pos += 2
            elif char == quote:
                self.pos += 1
                if not self._at_boundary():
                    raise SearchSyntaxError(self.pos, "expected a space or ')' after the closing quote")
                return "".join(chars)
            else:
                chars.append(char)
                self.pos += 1
        raise SearchSyntaxError(quote_at, f"unterminated quote: no closing {quote}")


# --- Parser ------------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token list; see the grammar in the module docstring."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def _peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def parse(self) -> Node:
        if not self.tokens:
            return MatchAll()
        node = self._or(None)
        extra = self._peek()
        if extra is not None:  # only a stray ")" can stop the top-level expression early
            raise SearchSyntaxError(extra.position, "unbalanced parenthesis: ')' has no matching '('")
        return node

    def _or(self, operator: _Token | None) -> Node:
        operands = [self._and(operator)]
        while (token := self._peek()) is not None and token.kind == "OR":
            self.index += 1
            operands.append(self._and(token))
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def _and(self, operator: _Token | None) -> Node:
        operands = [self._unary(operator)]
        while (token := self._peek()) is not None and token.kind not in ("OR", ")"):
            if token.kind == "AND":
                self.index += 1
                operands.append(self._unary(token))
            else:
                operands.append(self._unary(None))
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def _unary(self, operator: _Token | None) -> Node:
        """``operator`` is the keyword or '(' that needs this operand, blamed when the operand is missing."""
        token = self._peek()
        if token is None or token.kind in ("AND", "OR", ")"):
            self._missing_operand(operator, token)
        assert token is not None
        self.index += 1
        if token.kind in ("NOT", "-"):
            return Not(self._unary(token))
        if token.kind == "(":
            node = self._or(token)
            closing = self._peek()
            if closing is None or closing.kind != ")":
                raise SearchSyntaxError(token.position, "unbalanced parenthesis: '(' is never closed")
            self.index += 1
            return node
        assert token.term is not None
        return token.term

    @staticmethod
    def _missing_operand(operator: _Token | None, found: _Token | None) -> NoReturn:
        if found is not None and found.kind in ("AND", "OR"):
            raise SearchSyntaxError(found.position, f"dangling '{found.kind}': it needs a term on each side")
        if operator is None or operator.kind == "(":
            assert found is not None  # an empty token list is handled before parsing starts
            if operator is not None:
                raise SearchSyntaxError(operator.position, "empty parentheses")
            raise SearchSyntaxError(found.position, "unbalanced parenthesis: ')' has no matching '('")
        where = "after it" if operator.kind in ("NOT", "-") else "on each side"
        raise SearchSyntaxError(operator.position, f"dangling '{operator.kind}': it needs a term {where}")


def parse_query(text: str) -> Node:
    """Parses and checks a search query; raises SearchSyntaxError saying where and why it is wrong."""
    if len(text) > MAX_QUERY_LENGTH:
        raise SearchSyntaxError(
            MAX_QUERY_LENGTH, f"query too long ({len(text)} characters, at most {MAX_QUERY_LENGTH})"
        )
    return _Parser(list(_Tokenizer(text).tokens())).parse()


def compile_order_filter(node: Node, *, now: datetime | None = None) -> ColumnElement[bool]:
    """A WHERE clause for ``select(Order)``; relative dates are resolved against ``now`` (default: now)."""
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("naive datetime given; use an aware UTC datetime")
    return _compile(node, now.astimezone(UTC))


def _compile(node: Node, now: datetime) -> ColumnElement[bool]:
    if isinstance(node, MatchAll):
        return true()
    if isinstance(node, Not):
        return not_(_compile(node.operand, now))
    if isinstance(node, And):
        return and_(*(_compile(operand, now) for operand in node.operands))
    if isinstance(node, Or):
        return or_(*(_compile(operand, now) for operand in node.operands))
    if node.field is None:
        return _bare_clause(node.text)
    return FIELDS[node.field].clause(node.comparator, node.value, now)


def order_filter(text: str, *, now: datetime | None = None) -> ColumnElement[bool]:
    """Parses and compiles in one step, the way resolvers use it."""
    return compile_order_filter(parse_query(text), now=now)
