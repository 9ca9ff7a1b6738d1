"""``dropdesk export``: write an order export to a file now, with a progress bar on stderr."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from api.cli_support import run_with_database
from config.settings import Settings
from db.engine import Database
from db.models import ExportFormat, ExportLayout, Shop
from domain.errors import DomainError
from domain.exports import ExportProcessError, export_to_file


def add_export_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = subparsers.add_parser(
        "export", help="write a CSV or Excel file of a shop's orders, with a progress bar on stderr"
    )
    export.add_argument("--shop", type=int, required=True, help="id of the shop whose orders are exported")
    export.add_argument("--format", choices=["csv", "xlsx"], required=True, help="file format")
    export.add_argument(
        "--layout",
        choices=["line-item", "order"],
        default="line-item",
        help="one row per order line (default) or one row per order with its lines joined",
    )
    export.add_argument("--query", help="the search syntax of orders(query:)")
    export.add_argument("--out", type=Path, required=True, help="file to write")
    export.set_defaults(func=_export)


class ProgressBar:
    """``[#####.....] done/total rows  rate rows/s  ETA`` redrawn in place, at most ten times a second."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.started = time.monotonic()
        self.drawn = 0.0

    def __call__(self, done: int, total: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.drawn < 0.1 and done < total:
            return
        self.drawn = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        filled = self.width * done // total if total else self.width
        left = (
            f"{(total - done) / rate:5.1f}s left" if rate > 0 and done < total else "   done" if final else ""
        )
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done:,}/{total:,} rows "
            f"{rate:,.0f} rows/s {left}   "
        )
        if final:
            self.stream.write("\n")
        self.stream.flush()


def _export(args: argparse.Namespace) -> int:
    async def main(database: Database, settings: Settings) -> int:
        async with database.read() as session:
            if await session.get(Shop, args.shop) is None:
                print(f"error: no shop {args.shop}", file=sys.stderr)
                return 2
        bar = ProgressBar()

        async def progress(done: int, total: int) -> None:
            bar(done, total)

        out: Path = args.out
        try:
            result = await export_to_file(
                database,
                shop_id=args.shop,
                format=ExportFormat(args.format.upper()),
                layout=ExportLayout(args.layout.upper().replace("-", "_")),
                query=args.query,
                path=out,
                progress=progress,
                batch_orders=settings.export_batch_orders,
                processes=settings.export_processes,
                one_shot=True,
            )
        except DomainError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except ExportProcessError as error:
            print(f"\nerror: {error}; {out} is unchanged", file=sys.stderr)
            return 1
        bar(result.rows, result.rows, final=True)
        print(f"wrote {result.rows} rows ({result.size:,} bytes) to {out}")
        return 0

    return run_with_database(main)
