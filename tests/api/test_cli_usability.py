"""The command line as a new operator meets it: help on every flag, one-line errors, no port surprises,
tokens that say whose they are and when they expire, demo secrets that can be shown again."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from api.cli import build_parser, check_port, main
from config.settings import SettingError, get_settings, load_settings
from db.engine import Database
from db.models import AccessToken, Base
from db.types import utcnow
from tests.factories import Api, Tenant

DROPDESK = [sys.executable, "-m", "api.cli"]
Cli = Callable[..., tuple[int, str, str]]


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A real process, for what only a process shows: what reaches the terminal, and nothing else."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("DROPDESK_")}
    return subprocess.run(
        [*DROPDESK, *args],
        env={**clean, "DROPDESK_DATA_DIR": str(tmp_path), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    """Runs ``dropdesk`` in this process (a process costs seconds of imports): (exit code, stdout, stderr)."""

    def run(*args: str, **env: str) -> tuple[int, str, str]:
        for key in [key for key in os.environ if key.startswith("DROPDESK_")]:
            monkeypatch.delenv(key)
        for key, value in {"DROPDESK_DATA_DIR": str(tmp_path), **env}.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exit:
            code = int(exit.code or 0)
        finally:
            get_settings.cache_clear()
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _parsers(
    parser: argparse.ArgumentParser, name: str = "dropdesk"
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child_name, child in action.choices.items():
                found += _parsers(child, f"{name} {child_name}")
    return found


def test_every_command_and_flag_has_help() -> None:
    parsers = _parsers(build_parser())
    missing = []
    for name, parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{name} {choice.dest}" for choice in action._choices_actions if not choice.help]
            elif not (action.help or "").strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert len(parsers) >= 12
    assert missing == []


def test_bad_settings_stop_with_one_line_naming_variable_value_and_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cases = {
        "DROPDESK_CANCELLATION_RESPONSE_HOURS": ("1.5", "whole number"),
        "DROPDESK_MAX_QUERY_DEPTH": ("0", "between 1 and 100"),
        "DROPDESK_RUN_WORKER_IN_SERVER": ("maybe", "1, true, yes, on"),
        "DROPDESK_DATABASE_URL": ("mysql://db/dropdesk", "postgresql+asyncpg://"),
        "DROPDESK_LOG_LEVEL": ("LOUD", "INFO"),
        "DROPDESK_PUBLIC_URL": ("dropdesk.example", "http://"),
    }
    monkeypatch.setenv("DROPDESK_DATA_DIR", str(tmp_path))
    for variable, (value, allowed) in cases.items():
        with monkeypatch.context() as patch:
            patch.setenv(variable, value)
            with pytest.raises(SettingError) as refused:
                load_settings()
        message = str(refused.value)
        assert message.startswith(f"{variable}={value!r} is not valid: ") and allowed in message
        assert "\n" not in message

    # As the operator sees it: one line, no traceback, nothing else done.
    result = _run(tmp_path, "serve", DROPDESK_CANCELLATION_RESPONSE_HOURS="0")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "error: DROPDESK_CANCELLATION_RESPONSE_HOURS='0' is not valid: expected a whole number between 1 and 2160\n"
    )


def test_an_unreachable_database_is_one_line_without_the_password(cli: Cli) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql+asyncpg://dropdesk:hunter2@127.0.0.1:{port}/dropdesk"
    code, out, err = cli("migrate", DROPDESK_DATABASE_URL=url)
    assert code == 1 and out == ""
    [line] = err.splitlines()
    assert line.startswith(
        f"error: cannot use the database at postgresql+asyncpg://dropdesk:***@127.0.0.1:{port}"
    )
    assert "hunter2" not in err


def test_serve_refuses_a_taken_or_invalid_port_before_printing_anything(tmp_path: Path, cli: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = _run(tmp_path, "serve", "--port", str(port))
    assert busy.returncode == 2 and busy.stdout == ""
    assert busy.stderr.strip() == (
        f"error: port {port} on 127.0.0.1 is already in use: stop what listens there or pass --port"
    )
    assert not (tmp_path / "dropdesk.sqlite3").exists(), "nothing happens before the port is known to be free"
    code, out, err = cli("serve", "--port", "99999")
    assert code == 2 and out == "" and "'99999' is not a port: use a number from 1 to 65535" in err
    code, out, err = cli("serve", "--workers", "0")
    assert code == 2 and out == "" and "'0' is not a whole number of at least 1" in err
    assert "cannot listen on host 'no-such-host.invalid'" in (check_port("no-such-host.invalid", 8000) or "")
    assert check_port("127.0.0.1", 0) == "port 0 is not valid: use a number from 1 to 65535"


async def test_token_list_shows_kind_shop_supplier_and_full_names_and_expiry(
    api: Api, db: Database, tenant: Tenant, cli: Cli
) -> None:
    async def run(*args: str) -> tuple[int, str, str]:
        return await asyncio.to_thread(cli, *args, DROPDESK_DATABASE_URL=db.url)

    long_name = "integration for the warehouse team in Valencia (nightly sync)"
    supplier_id = str(tenant.supplier_ids[1])
    code, out, err = await run(
        "token", "create", "--supplier", supplier_id, "--name", long_name, "--expires-in", "30d"
    )
    assert code == 0, err
    raw = out.strip()
    assert re.fullmatch(r"dds_\w{40}", raw)
    assert err.startswith("expires ")
    viewer = (await api.data(raw, "{ viewer { name expiresAt supplier { name } } }"))["viewer"]
    assert viewer["name"] == long_name and viewer["expiresAt"] is not None

    code, listed, _ = await run("token", "list")
    assert code == 0
    header, *rows = listed.splitlines()
    assert header.split()[:5] == ["id", "kind", "shop", "supplier", "prefix"]
    row = next(line for line in rows if raw[:8] in line)
    assert long_name in row and row.split()[1] == "supplier"
    assert f"{supplier_id} {viewer['supplier']['name']}" in row
    assert f"{tenant.shop_id} Shop " in row
    assert (utcnow() + timedelta(days=30)).strftime("%Y-%m-%d") in row
    merchant_rows = [line for line in rows if line.split()[1] == "merchant"]
    assert merchant_rows and all("read_orders" in line for line in merchant_rows)

    # Past its expiry the token is refused with a message that says so.
    async with db.write() as session:
        await session.execute(
            update(AccessToken)
            .where(AccessToken.prefix == raw[:8])
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    refused = await api.post(raw, "{ viewer { name } }")
    assert refused.status_code == 401 and "token expired at" in refused.json()["errors"][0]["message"]
    _, relisted, _ = await run("token", "list")
    assert "(expired)" in next(line for line in relisted.splitlines() if raw[:8] in line)

    for bad in ("0d", "30", "soon", "100000w"):
        code, _, err = await run("token", "create", "--admin", "--expires-in", bad)
        assert code == 2 and "--expires-in" in err, bad


async def test_demo_suppliers_show_their_ids_and_webhook_secrets(db: Database, cli: Cli) -> None:
    async def run(*args: str, key: str = "first-installation-key") -> str:
        code, out, err = await asyncio.to_thread(
            cli, *args, DROPDESK_DATABASE_URL=db.url, DROPDESK_SECRET_KEY=key
        )
        assert code == 0, err
        return out

    seeded = await run("seed", "--orders", "5")
    banner = re.findall(r"supplier\s+(.+?) \(supplier (\d+)\)\s+(dds_\w+)", seeded)
    assert len(banner) == 8
    secrets = dict(re.findall(r"^  supplier (\d+)\s+.+?\s+(whsec_\S+)$", seeded, re.MULTILINE))
    assert sorted(secrets) == sorted(supplier_id for _, supplier_id, _ in banner)

    hidden = await run("supplier", "list")
    shown = await run("supplier", "list", "--secrets")
    assert "whsec_" not in hidden and len(hidden.splitlines()) == 9
    for supplier_id, secret in secrets.items():
        [line] = [row for row in shown.splitlines() if row.split()[0] == supplier_id]
        assert line.endswith(secret)

    # Derived from the installation's secret key: another key, other secrets.
    async with db.write() as session:
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(table.delete())
    other = await run("seed", "--orders", "5", key="second-installation-key")
    other_secrets = set(re.findall(r"whsec_\S+", other))
    assert len(other_secrets) == 8 and not other_secrets & set(secrets.values())
