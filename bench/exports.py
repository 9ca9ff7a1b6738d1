"""How fast order exports stream from the database, and whether their memory stays flat.

For each database given, seeds the demo data once (enough orders for the largest size), then exports about
10,000 and 100,000 line-item rows of the first demo shop to CSV and XLSX, end to end from the database (the
code path of ``dropdesk export``, with as many processes for a large line-item CSV as the settings give:
one per available CPU, at most 4), each in a fresh process so that its memory is its own: the peak
of the anonymous memory of it and the processes it forks, sampled from outside (see ``run_child``), and its
VmHWM. The
baseline, measured in the same run on the same rows: openpyxl (write-only) appending the export's own cells
from a list already in memory and saving the workbook, as a program that loaded everything first would; its
money and time cells are fresh write-only cells with the same values and number formats.

    .venv/bin/python -m bench.exports --database sqlite+aiosqlite:////tmp/bench-exports.sqlite3 \\
        --database postgresql+asyncpg://postgres@127.0.0.1:5432/bench_exports

Targets: peak (anonymous) memory at 100,000 rows within 30 MB of that at 10,000; XLSX end to end at least
0.8 of the openpyxl figure; CSV end to end at least 50,000 rows per second. Rates are given by the wall clock
and per CPU second of the process and its forked processes: on a shared machine the second says more about
the code.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from config.settings import load_settings
from db.engine import Database
from db.migrate import upgrade
from db.models import ExportFormat, ExportLayout, Order, OrderLine
from demo.generator import seed_demo
from domain import exports
from domain.spreadsheets import XlsxWriter

SIZES = (10_000, 100_000)
# The first demo shop gets 60% of the orders, two lines each on average: 100,000 of its lines need ~84,000.
SEED_ORDERS = 84_000
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _status_mb(pid: int | str, field: str) -> float | None:
    """A memory field of /proc/<pid>/status in MB; None once the process is gone (an exited process that is
    not reaped yet has no memory fields)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def _anon_pss_mb(pid: int) -> float:
    """The process's share of the anonymous memory it maps (Pss_Anon: a page it shares with the process it
    was forked from counts half in each), in MB; 0 once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    for line in text.splitlines():
        if line.startswith("Pss_Anon:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the export's forked processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            # The parent's pid is the second field after the command, which is in parentheses.
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def peak_rss_mb() -> float:
    """The process's peak resident memory. VmHWM, not getrusage: ru_maxrss survives fork and exec, so a
    child would report its parent's peak."""
    peak = _status_mb("self", "VmHWM")
    if peak is None:
        raise RuntimeError("no VmHWM in /proc/self/status (this benchmark measures memory on Linux)")
    return peak


async def _ensure_database(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    admin = create_async_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        exists = await conn.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}
        )
        if not exists:
            await conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    await admin.dispose()


async def prepare(url: str) -> tuple[int, dict[int, str]]:
    """Seed if needed; the first shop's id and, per size, a query selecting about that many line rows."""
    await _ensure_database(url)
    database = Database(url)
    try:
        await upgrade(database.engine)
        async with database.read() as session:
            seeded = int((await session.execute(select(func.count()).select_from(Order))).scalar_one())
        if seeded < SEED_ORDERS:
            started = time.perf_counter()
            result = await seed_demo(database, orders=SEED_ORDERS, secret_key="bench", now=NOW)
            if not result.created:
                raise SystemExit(
                    f"{url} holds {seeded:,} orders, fewer than {SEED_ORDERS:,}: use an empty database"
                )
            print(
                f"  seeded {SEED_ORDERS:,} orders in {time.perf_counter() - started:.0f} s", file=sys.stderr
            )
            # Planner statistics, as autovacuum would gather them in time: without them PostgreSQL plans the
            # figures' subqueries as if the tables were empty (a thousand times slower).
            async with database.write() as session:
                await session.execute(text("ANALYZE"))
        async with database.read() as session:
            shop_id = int((await session.execute(select(func.min(Order.shop_id)))).scalar_one())
            lines = (
                select(Order.number_value, func.count(OrderLine.id).label("lines"))
                .join(OrderLine, OrderLine.order_id == Order.id)
                .where(Order.shop_id == shop_id)
                .group_by(Order.number_value)
                .order_by(Order.number_value)
            )
            cutoffs: dict[int, str] = {}
            running = 0
            for number_value, count in (await session.execute(lines)).all():
                running += count
                for size in SIZES:
                    if size not in cutoffs and running >= size:
                        cutoffs[size] = f"number:<={number_value}"
        return shop_id, cutoffs
    finally:
        await database.dispose()


# --- the measured processes -----------------------------------------------------------------------------------


def _cpu_seconds() -> float:
    """CPU time of this process and of the processes it forked and waited for (an export's helpers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


async def child_export(url: str, shop_id: int, fmt: str, query: str, out: Path) -> dict[str, Any]:
    database = Database(url)
    try:
        started, cpu = time.perf_counter(), _cpu_seconds()
        result = await exports.export_to_file(
            database,
            shop_id=shop_id,
            format=ExportFormat(fmt),
            layout=ExportLayout.LINE_ITEM,
            query=query,
            path=out,
            now=NOW,
            processes=load_settings().export_processes,
            one_shot=True,
        )
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    finally:
        await database.dispose()
    return {
        "rows": result.rows,
        "seconds": seconds,
        "cpu": cpu,
        "peak_mb": peak_rss_mb(),
        "bytes": result.size,
    }


async def child_openpyxl(url: str, shop_id: int, query: str, out: Path) -> dict[str, Any]:
    """openpyxl alone: the same cells, built in memory first (not timed), then appended and saved (timed).

    The rows are the export's own, each money and time cell rebuilt as a fresh write-only cell with the same
    value and number format, as a program that loaded everything first would hand them to openpyxl.
    """
    database = Database(url)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Orders")
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="dropdesk-bench-") as tmp:
        source = XlsxWriter(Path(tmp) / "source.xlsx", exports.columns_for(ExportLayout.LINE_ITEM))
        try:
            clause = exports.scope_clause(shop_id, query, None, NOW)
            async for batch in exports.order_batches(database, clause):
                for row in exports.batch_rows(batch, ExportLayout.LINE_ITEM, source):
                    cells: list[Any] = []
                    for value in (cell for part in row for cell in part):
                        if isinstance(value, Cell):
                            cell = WriteOnlyCell(sheet, value.value)
                            cell.number_format = value.number_format
                            value = cell
                        cells.append(value)
                    rows.append(cells)
        finally:
            source.abort()
            await database.dispose()
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    sheet.append([column.name for column in exports.columns_for(ExportLayout.LINE_ITEM)])
    for cells in rows:
        sheet.append(cells)
    workbook.save(out)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "rows": len(rows),
        "seconds": seconds,
        "cpu": cpu,
        "peak_mb": peak_rss_mb(),
        "bytes": out.stat().st_size,
    }


def run_child(*args: str) -> dict[str, Any]:
    """Run one measurement in a fresh process, sampling the anonymous memory of it and of the processes it
    forks every few milliseconds.

    The export's own memory is its anonymous pages (heap, stacks, the spooled sheet's buffers, SQLite's page
    cache), summed over the process and the processes it forks to format a large CSV, each page shared
    after a fork counted once (Pss_Anon). The process's resident peak (VmHWM) also counts file pages it maps:
    SQLite reads the database through a memory map, and every page of the file it touched is resident in the
    process while the OS keeps it cached, so VmHWM grows with the rows read although nothing is held; both
    are reported, and the flat-memory target is judged on the anonymous peak.
    """
    with subprocess.Popen(
        [sys.executable, "-m", "bench.exports", "--child", *args],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        peak_anon = 0.0
        forked: list[int] = []
        samples = 0
        while child.poll() is None:
            # Reading all of /proc, or a process's smaps_rollup (half a millisecond), every few milliseconds
            # would take a good part of a core from what is measured: forked processes are looked for every
            # 50 ms and, while there are some, the family's memory is summed every 25 ms.
            if samples % 10 == 0:
                forked = _children(child.pid)
            if not forked:
                anon = _status_mb(child.pid, "RssAnon")
                peak_anon = max(peak_anon, anon or 0.0)
            elif samples % 5 == 0:
                peak_anon = max(peak_anon, sum(_anon_pss_mb(pid) for pid in (child.pid, *forked)))
            samples += 1
            time.sleep(0.005)
        assert child.stdout is not None
        output = child.stdout.read()
    if child.returncode:
        raise SystemExit(f"the measured process failed ({child.returncode}): {' '.join(args)}")
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["peak_anon_mb"] = peak_anon
    return result


# --- the run ---------------------------------------------------------------------------------------------------


def describe(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgresql") else "SQLite"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--database", action="append", help="database URL (repeatable); default SQLite in /tmp"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, url, shop, *rest = args.child
        if kind == "export":
            fmt, query, out = rest
            result = asyncio.run(child_export(url, int(shop), fmt, query, Path(out)))
        else:
            query, out = rest
            result = asyncio.run(child_openpyxl(url, int(shop), query, Path(out)))
        print(json.dumps(result))
        return

    urls = args.database or ["sqlite+aiosqlite:////tmp/dropdesk-bench-exports.sqlite3"]
    header = (
        f"{'database':<11} {'what':<34} {'rows':>8} {'seconds':>8} {'rows/s':>8} {'CPU s':>7} {'rows/CPU s':>10} "
        f"{'anon MB':>8} {'VmHWM MB':>8}"
    )
    lines = [header, "-" * len(header)]
    verdicts: list[str] = []
    for url in urls:
        name = describe(url)
        print(f"{name}: preparing", file=sys.stderr, flush=True)
        shop_id, cutoffs = asyncio.run(prepare(url))
        figures: dict[tuple[str, int], dict[str, Any]] = {}
        with tempfile.TemporaryDirectory(prefix="dropdesk-bench-") as tmp:
            for size in SIZES:
                query = cutoffs[size]
                for fmt in ("CSV", "XLSX"):
                    out = Path(tmp) / f"orders-{size}.{fmt.lower()}"
                    figures[(fmt, size)] = run_child("export", url, str(shop_id), fmt, query, str(out))
                figures[("openpyxl", size)] = run_child(
                    "openpyxl", url, str(shop_id), query, str(Path(tmp) / f"baseline-{size}.xlsx")
                )
                for kind, label in (
                    ("CSV", "CSV, end to end from the database"),
                    ("XLSX", "XLSX, end to end from the database"),
                    ("openpyxl", "openpyxl from memory (baseline)"),
                ):
                    figure = figures[(kind, size)]
                    lines.append(
                        f"{name:<11} {label:<34} {figure['rows']:>8,} {figure['seconds']:>8.2f} "
                        f"{figure['rows'] / figure['seconds']:>8,.0f} {figure['cpu']:>7.2f} "
                        f"{figure['rows'] / figure['cpu']:>10,.0f} {figure['peak_anon_mb']:>8.1f} {figure['peak_mb']:>8.1f}"
                    )
                    print(lines[-1], file=sys.stderr, flush=True)

        def rate(
            kind: str, size: int, clock: str, figures: dict[tuple[str, int], dict[str, Any]] = figures
        ) -> float:
            figure = figures[(kind, size)]
            return float(figure["rows"] / figure[clock])

        big, small = SIZES[-1], SIZES[0]
        for fmt in ("CSV", "XLSX"):
            growth = figures[(fmt, big)]["peak_anon_mb"] - figures[(fmt, small)]["peak_anon_mb"]
            mapped = figures[(fmt, big)]["peak_mb"] - figures[(fmt, small)]["peak_mb"]
            verdicts.append(
                f"{name} {fmt}: peak anonymous memory at {big:,} rows is {growth:+.1f} MB over {small:,} rows "
                f"(target ≤ 30; VmHWM, with the mapped database file, {mapped:+.1f} MB)"
            )
        verdicts.append(
            f"{name} XLSX end to end / openpyxl from memory at {big:,} rows: "
            f"{rate('XLSX', big, 'seconds') / rate('openpyxl', big, 'seconds'):.2f} by the wall clock, "
            f"{rate('XLSX', big, 'cpu') / rate('openpyxl', big, 'cpu'):.2f} by CPU time (target ≥ 0.8)"
        )
        verdicts.append(
            f"{name} CSV end to end at {big:,} rows: {rate('CSV', big, 'seconds'):,.0f} rows/s by the wall "
            f"clock, {rate('CSV', big, 'cpu'):,.0f} rows per CPU second (target ≥ 50,000)"
        )
    print("\n".join(lines))
    print()
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
