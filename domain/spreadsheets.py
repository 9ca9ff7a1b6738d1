"""Streaming spreadsheet writers: one csv writer or one openpyxl write-only workbook for a whole export.

Rows arrive in batches and go straight to the file, so memory stays flat however many rows there are (the
write-only workbook spools its sheet to a temporary file). Every text cell is neutralised against formula
injection (OWASP "CSV injection"): a cell a spreadsheet would evaluate gets a leading apostrophe.
"""

from __future__ import annotations

import csv
import enum
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from io import TextIOWrapper
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol, TypeVar

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from db.types import AMOUNT_SCALE
from domain.money import CURRENCY_EXPONENTS

# A cell beginning with one of these is read as a formula (or, for tab and carriage return, hides one).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
XLSX_DATETIME = "yyyy-mm-dd hh:mm:ss"

# Symbols Excel shows in front of the amount; other currencies show their ISO code after it.
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "¥", "INR": "₹", "KRW": "₩"}


class Kind(enum.Enum):
    TEXT = "text"
    INTEGER = "integer"
    MONEY = "money"
    DATETIME = "datetime"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind = Kind.TEXT
    width: float = 14


@dataclass(frozen=True)
class SummaryLine:
    """One bar of the Summary sheet: orders of one status (in one currency) and what they total."""

    status: str
    currency: str
    orders: int
    total: Decimal


_FORMULA_FIRST = frozenset(FORMULA_PREFIXES)
AMOUNT_DIGITS = len(str(AMOUNT_SCALE)) - 1
# Cached cells per currency (and recurring CSV parts) are dropped past this many, so memory stays bounded on
# long exports.
CACHE_LIMIT = 4096
T = TypeVar("T")
K = TypeVar("K")


def _cached_cells(make: Callable[[K], T]) -> Callable[[K | None], T | None]:
    """``make`` once per distinct value (an amount, a part's cells) among the last few thousand, None for
    None."""
    known: dict[K, T] = {}

    def cell(value: K | None) -> T | None:
        if value is None:
            return None
        made = known.get(value)
        if made is None:
            if len(known) >= CACHE_LIMIT:
                known.clear()
            made = known[value] = make(value)
        return made

    return cell


class RecentTexts:
    """Formatted texts by what they were made from, among the last few thousand (so memory stays bounded)."""

    def __init__(self) -> None:
        self._known: dict[Any, str] = {}
        self.get = self._known.get

    def put(self, key: Any, text: str) -> str:
        if len(self._known) >= CACHE_LIMIT:
            self._known.clear()
        self._known[key] = text
        return text


def money_text(units: int, digits: int) -> str:
    """An amount in units of 1/AMOUNT_SCALE as text with the currency's ``digits`` (Decimal's rounding and
    text); an amount that needs no rounding, nearly every one, is cut from the integer (several times faster:
    costs and margins seldom recur, so most are made afresh)."""
    scale = AMOUNT_SCALE // 10**digits if digits <= AMOUNT_DIGITS else 0
    if not scale or units % scale:
        return str((Decimal(units) / AMOUNT_SCALE).quantize(Decimal(1).scaleb(-digits)))
    whole, cents = divmod(abs(units) // scale, 10**digits)
    sign = "-" if units < 0 else ""
    return f"{sign}{whole}.{cents:0{digits}d}" if digits else f"{sign}{whole}"


def neutralise(text: str) -> str:
    """The text as a spreadsheet shows it, never as a formula it would run."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def text_cell(value: str | None) -> str | None:
    """A text cell of either format: None stays empty, a formula-like text is neutralised."""
    return "'" + value if value and value[0] in _FORMULA_FIRST else value


EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)
SECONDS_PER_DAY = 86_400


def _utc(value: datetime) -> datetime:
    """Naive times are UTC already (SQLite gives them so); aware ones are converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _short_repr(cell: Cell) -> str:
    return "<StyledCell>"


def _cell_class(style_id: int) -> type[Cell]:
    """A cell class with its style id fixed: openpyxl would otherwise look the style up again for each cell.

    Its repr is short because the write-only sheet formats one (in an error it then catches) for every
    styled cell it is given; the default repr computes the cell's coordinate.
    """
    return type("StyledCell", (Cell,), {"__slots__": (), "style_id": style_id, "__repr__": _short_repr})


def currency_format(currency: str) -> str:
    """An Excel number format for amounts in ``currency`` with its minor-unit digits."""
    digits = CURRENCY_EXPONENTS.get(currency, 2)
    number = "#,##0" + ("." + "0" * digits if digits else "")
    symbol = CURRENCY_SYMBOLS.get(currency)
    if symbol is not None:
        return f'"{symbol}"{number};-"{symbol}"{number}'
    return f'{number} "{currency}";-{number} "{currency}"'


class Cells(Protocol):
    """Makes a sheet's cells: text through ``text_cell``, integers as they are, amounts through ``money``
    and times through ``time``; a cell may be repeated in any number of rows."""

    def money_in(self, currency: str) -> Callable[[int | None], Any]:
        """Cells for amounts in ``currency`` given in units of 1/AMOUNT_SCALE, as the database keeps them."""
        ...

    def time(self, value: datetime | str | None) -> Any:
        """Times come aware, or as SQLite keeps them: naive UTC text ("YYYY-MM-DD HH:MM:SS.ffffff")."""
        ...

    def part(self, cells: Sequence[Any]) -> Any:
        """Cells that stand side by side in rows, as ``write_rows`` takes them: the csv writer formats them
        at once (a part repeated in many rows is formatted once), the workbook keeps them as they are."""
        ...

    def recurring_part(self, cells: tuple[Any, ...]) -> Any:
        """A part that recurs in the rows of many orders (a line's own columns: the same product at the same
        price): the csv writer keeps the text of those it formatted last."""
        ...


class SheetWriter(Cells, Protocol):
    """Rows go in as parts of cells the writer made."""

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Each row is a sequence of parts."""
        ...

    def finish(self, summary: Sequence[SummaryLine]) -> None: ...

    def abort(self) -> None: ...


class CsvCells:
    """The CSV's cells as text, RFC 4180 quoted: what a CSV file is written from, in this process or in the
    processes that format parts of one export."""

    def __init__(self) -> None:
        self._money: dict[str, Callable[[int | None], str | None]] = {}
        # Rows are written as parts the writer formatted (a part repeated in many rows is formatted once): the
        # csv writer hands each record to a list, and the line end it adds is cut off (it must stay in its
        # dialect: a field holding one of the line end's characters is quoted).
        self._formatted: list[str] = []
        self._part_writer = csv.writer(
            SimpleNamespace(write=self._formatted.append), lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL
        )
        self._recurring = _cached_cells(self.part)
        self.recurring_texts = RecentTexts()

    def money_in(self, currency: str) -> Callable[[int | None], str | None]:
        money = self._money.get(currency)
        if money is None:
            money = self._money[currency] = _cached_cells(
                functools.partial(money_text, digits=CURRENCY_EXPONENTS.get(currency, 2))
            )
        return money

    def time(self, value: datetime | str | None) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            return f"{value[:19]} +0000"
        if value.tzinfo is not None and value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        # str() of a UTC (or naive UTC) datetime starts "YYYY-MM-DD HH:MM:SS", faster than strftime.
        return f"{str(value)[:19]} +0000"

    def part(self, cells: Sequence[Any]) -> str:
        self._part_writer.writerow(cells)
        return self._formatted.pop()[:-2]

    def recurring_part(self, cells: tuple[Any, ...]) -> str | None:
        return self._recurring(cells)


def csv_lines(records: Sequence[str]) -> str:
    """Records already formatted (without their line ends) as the file's lines."""
    return "\r\n".join(records) + "\r\n" if records else ""


class CsvWriter(CsvCells):
    """UTF-8 with a byte order mark (so Excel reads it as UTF-8), RFC 4180 quoting, CRLF line ends."""

    def __init__(self, path: Path, columns: Sequence[Column]) -> None:
        super().__init__()
        self._file: TextIOWrapper = path.open("w", encoding="utf-8-sig", newline="")
        self.write_rows([[self.part([neutralise(column.name) for column in columns])]])

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        self._file.write("".join([",".join(row) + "\r\n" for row in rows]))

    def write_lines(self, lines: str) -> None:
        """Lines as ``csv_lines`` makes them."""
        self._file.write(lines)

    def write_encoded(self, lines: bytes) -> None:
        """Lines as ``csv_lines`` makes them, encoded as UTF-8."""
        self._file.flush()
        self._file.buffer.write(lines)

    def finish(self, summary: Sequence[SummaryLine]) -> None:
        self._file.close()

    def abort(self) -> None:
        self._file.close()


class XlsxWriter:
    """One write-only workbook: an Orders sheet with typed cells, then a Summary sheet with a bar chart."""

    def __init__(self, path: Path, columns: Sequence[Column]) -> None:
        self._path = path
        self._workbook = Workbook(write_only=True)
        self._sheet = self._workbook.create_sheet("Orders")
        self._columns = list(columns)
        self._rows = 1
        # One cell class per number format, and one cell per distinct value: the write-only sheet writes a
        # cell out as soon as its row is appended, so the same cell object can stand in any later row.
        self._money: dict[str, Callable[[int | None], Cell | None]] = {}
        self._date_class = self._styled_class(XLSX_DATETIME)
        sheet = self._sheet
        # Widths and the frozen header must be set before the first row is streamed out.
        for index, column in enumerate(columns, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = column.width
        sheet.freeze_panes = "A2"
        bold = Font(bold=True)
        header = []
        for column in columns:
            cell = WriteOnlyCell(sheet, neutralise(column.name))
            cell.font = bold
            header.append(cell)
        sheet.append(header)

    def _styled_class(self, number_format: str) -> type[Cell]:
        template = WriteOnlyCell(self._sheet, None)
        template.number_format = number_format
        cell_class = _cell_class(template.style_id)
        cell_class._style_template = template._style  # type: ignore[attr-defined]
        return cell_class

    def _cell(self, cell_class: type[Cell], value: float) -> Cell:
        cell = cell_class(self._sheet, row=1, column=1, value=value)
        # Shared, not copied: the style array is never changed once the cell exists.
        cell._style = cell_class._style_template  # type: ignore[attr-defined]
        return cell

    def money_in(self, currency: str) -> Callable[[int | None], Cell | None]:
        money = self._money.get(currency)
        if money is None:
            cell_class = self._styled_class(currency_format(currency))
            money = self._money[currency] = _cached_cells(
                lambda units: self._cell(cell_class, units / AMOUNT_SCALE)
            )
        return money

    def time(self, value: datetime | str | None) -> Cell | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        # Excel has no time zones: a time is its UTC serial day number, shown with a date format.
        return self._cell(self._date_class, (_utc(value) - EXCEL_EPOCH).total_seconds() / SECONDS_PER_DAY)

    def part(self, cells: Sequence[Any]) -> Sequence[Any]:
        return cells

    def recurring_part(self, cells: tuple[Any, ...]) -> tuple[Any, ...]:
        return cells

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        append = self._sheet.append
        count = 0
        for row in rows:
            append([cell for part in row for cell in part])
            count += 1
        self._rows += count

    def finish(self, summary: Sequence[SummaryLine]) -> None:
        last_column = get_column_letter(len(self._columns))
        self._sheet.auto_filter.ref = f"A1:{last_column}{self._rows}"
        self._write_summary(summary)
        self._workbook.save(self._path)

    def abort(self) -> None:
        """Nothing is saved, and the sheet's stream is ended and its temporary file deleted (left open, the
        stream complains when it is collected and the file stays in the temporary directory)."""
        sheet = self._sheet
        if not sheet.closed:
            sheet.close()
        stream = getattr(sheet, "_writer", None)
        if stream is not None and Path(stream.out).exists():
            stream.cleanup()
        self._workbook.close()

    def _write_summary(self, summary: Sequence[SummaryLine]) -> None:
        sheet = self._workbook.create_sheet("Summary")
        for letter, width in zip("ABCD", (22, 10, 12, 18), strict=True):
            sheet.column_dimensions[letter].width = width
        bold = Font(bold=True)
        header = []
        for title in ("Status", "Currency", "Orders", "Total"):
            cell = WriteOnlyCell(sheet, title)
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        for line in summary:
            total = WriteOnlyCell(sheet, line.total)
            total.number_format = currency_format(line.currency)
            sheet.append([line.status, line.currency, line.orders, total])
        if not summary:
            return
        chart = BarChart()
        chart.type = "col"
        chart.title = "Orders by status"
        chart.y_axis.title = "Orders"
        chart.x_axis.title = "Status"
        rows = len(summary) + 1
        chart.add_data(Reference(sheet, min_col=3, min_row=1, max_row=rows), titles_from_data=True)
        chart.set_categories(Reference(sheet, min_col=1, min_row=2, max_row=rows))
        chart.width, chart.height = 18, 9
        sheet.add_chart(chart, "F2")


def open_writer(kind: str, path: Path, columns: Sequence[Column]) -> SheetWriter:
    """``kind`` is "CSV" or "XLSX"."""
    if kind == "CSV":
        return CsvWriter(path, columns)
    if kind == "XLSX":
        return XlsxWriter(path, columns)
    raise ValueError(f"unknown spreadsheet format {kind!r}")
