"""Streaming spreadsheet writers: one csv writer or one openpyxl write-only workbook for a whole export.

Rows arrive in batches and go straight to the file, so memory stays flat however many rows there are (the
write-only workbook spools its sheet to a temporary file). Every text cell is neutralised against formula
injection (OWASP "CSV injection"): a cell a spreadsheet would evaluate gets a leading apostrophe.
"""

from __future__ import annotations

import csv
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Protocol

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from domain.money import CURRENCY_EXPONENTS, quantize

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
_MINOR_UNIT_STEPS: dict[str, Decimal] = {}


def _step(currency: str) -> Decimal:
    step = _MINOR_UNIT_STEPS[currency] = quantize(Decimal(0), currency)
    return step


def _csv_time(value: datetime) -> str:
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # str() of a UTC datetime starts "YYYY-MM-DD HH:MM:SS", several times faster than strftime.
    return f"{str(value)[:19]} +0000"


def neutralise(text: str) -> str:
    """The text as a spreadsheet shows it, never as a formula it would run."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)
SECONDS_PER_DAY = 86_400


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


class SheetWriter(Protocol):
    def write_rows(self, rows: Iterable[Sequence[Any]]) -> None: ...

    def finish(self, summary: Sequence[SummaryLine]) -> None: ...

    def abort(self) -> None: ...


class CsvWriter:
    """UTF-8 with a byte order mark (so Excel reads it as UTF-8), RFC 4180 quoting, CRLF line ends."""

    def __init__(self, path: Path, columns: Sequence[Column], currency_index: int) -> None:
        self._file: IO[str] = path.open("w", encoding="utf-8-sig", newline="")
        self._writer = csv.writer(self._file, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        self._texts = [i for i, column in enumerate(columns) if column.kind is Kind.TEXT]
        self._moneys = [i for i, column in enumerate(columns) if column.kind is Kind.MONEY]
        self._dates = [i for i, column in enumerate(columns) if column.kind is Kind.DATETIME]
        self._currency_index = currency_index
        self._writer.writerow([neutralise(column.name) for column in columns])

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        # The hot loop of every CSV export: column positions are grouped by kind once, so each row costs a
        # list copy and a few index lookups (the csv module writes None as an empty field by itself).
        texts, moneys, dates = self._texts, self._moneys, self._dates
        currency_index = self._currency_index
        steps = _MINOR_UNIT_STEPS
        out = []
        for row in rows:
            cells = list(row)
            for index in texts:
                value = cells[index]
                if value and value[0] in _FORMULA_FIRST:
                    cells[index] = "'" + value
            step = steps.get(cells[currency_index]) or _step(cells[currency_index])
            for index in moneys:
                value = cells[index]
                if value is not None:
                    cells[index] = value.quantize(step)
            for index in dates:
                value = cells[index]
                if value is not None:
                    cells[index] = _csv_time(value)
            out.append(cells)
        self._writer.writerows(out)

    def finish(self, summary: Sequence[SummaryLine]) -> None:
        self._file.close()

    def abort(self) -> None:
        self._file.close()


class XlsxWriter:
    """One write-only workbook: an Orders sheet with typed cells, then a Summary sheet with a bar chart."""

    def __init__(self, path: Path, columns: Sequence[Column], currency_index: int) -> None:
        self._path = path
        self._workbook = Workbook(write_only=True)
        self._sheet = self._workbook.create_sheet("Orders")
        self._columns = list(columns)
        self._texts = [i for i, column in enumerate(columns) if column.kind is Kind.TEXT]
        self._moneys = [i for i, column in enumerate(columns) if column.kind is Kind.MONEY]
        self._dates = [i for i, column in enumerate(columns) if column.kind is Kind.DATETIME]
        self._currency_index = currency_index
        self._rows = 1
        # One styled template cell per currency (and one for dates); each value cell takes its style array,
        # which costs far less than looking the number format up again for every cell.
        self._money_styles: dict[str, Any] = {}
        date_template = WriteOnlyCell(self._sheet, None)
        date_template.number_format = XLSX_DATETIME
        self._date_style = (_cell_class(date_template.style_id), date_template._style)
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

    def _money_style(self, currency: str) -> Any:
        style = self._money_styles.get(currency)
        if style is None:
            template = WriteOnlyCell(self._sheet, None)
            template.number_format = currency_format(currency)
            style = self._money_styles[currency] = (_cell_class(template.style_id), template._style)
        return style

    def _cell(self, value: Any, style: tuple[type[Cell], Any]) -> Cell:
        cell_class, style_array = style
        cell = cell_class(self._sheet, row=1, column=1, value=value)
        # Shared, not copied: a write-only cell is serialised once and never changed afterwards.
        cell._style = style_array
        return cell

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        texts, moneys, dates = self._texts, self._moneys, self._dates
        append = self._sheet.append
        currency_index = self._currency_index
        date_style = self._date_style
        cell = self._cell
        count = 0
        for row in rows:
            cells = list(row)
            for index in texts:
                value = cells[index]
                if value and value[0] in _FORMULA_FIRST:
                    cells[index] = "'" + value
            money_style = self._money_styles.get(cells[currency_index]) or self._money_style(
                cells[currency_index]
            )
            for index in moneys:
                value = cells[index]
                if value is not None:
                    cells[index] = cell(value, money_style)
            for index in dates:
                value = cells[index]
                if value is not None:
                    # Excel has no time zones: a time is its UTC serial day number, shown with a date format.
                    cells[index] = cell((value - EXCEL_EPOCH).total_seconds() / SECONDS_PER_DAY, date_style)
            append(cells)
            count += 1
        self._rows += count

    def finish(self, summary: Sequence[SummaryLine]) -> None:
        last_column = get_column_letter(len(self._columns))
        self._sheet.auto_filter.ref = f"A1:{last_column}{self._rows}"
        self._write_summary(summary)
        self._workbook.save(self._path)

    def abort(self) -> None:
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


def open_writer(kind: str, path: Path, columns: Sequence[Column], currency_index: int) -> SheetWriter:
    """``kind`` is "CSV" or "XLSX"."""
    if kind == "CSV":
        return CsvWriter(path, columns, currency_index)
    if kind == "XLSX":
        return XlsxWriter(path, columns, currency_index)
    raise ValueError(f"unknown spreadsheet format {kind!r}")
