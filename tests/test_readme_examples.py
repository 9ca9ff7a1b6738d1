"""Every example in README.md runs as written against the demo data, with the tokens the first run prints.

The test reads README.md, takes every ```graphql block, every shell example (the curl requests, signed webhook
included, and the `dropdesk export` command) and the Python signature verifiers, and runs each against a
fresh demo database (seed 1, the default number of orders), exactly as a new user would after
`python3 run.py serve`. Which token a block runs with is said by an HTML comment on the line before it
(invisible on GitHub); see "Examples in this README" in README.md:

    <!-- example: merchant -->      the first demo shop's merchant token (also the default without a comment)
    <!-- example: merchant 2 -->    the second demo shop's merchant token
    <!-- example: supplier 3 -->    the token of demo supplier 3 (gid://dropdesk/Supplier/3)
    <!-- example: admin -->         the platform admin token
    <!-- example: supplier 1 variables={"id": "gid://dropdesk/SupplierOrder/138"} -->
                                    a block that takes variables gets them from the comment (JSON)

A block passes when its answer has no `errors`, no non-empty `userErrors` anywhere, and no root field that
is null; every demo id it names (gid://dropdesk/<Type>/<n>) must be visible to its token beforehand, so that a
change in the demo data is reported as such. Subscriptions are validated against the schema only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
import uvicorn
from graphql import OperationType, parse, validate
from sqlalchemy import text
from standardwebhooks.webhooks import WebhookVerificationError

from api.app import create_app
from api.outbound_webhooks import signed_headers
from config.settings import DEFAULT_DEMO_SEED_ORDERS, load_settings
from db.engine import Database
from db.models import Base
from demo.generator import DemoSeed, seed_demo
from schema.root import build_schema

README = Path(__file__).resolve().parent.parent / "README.md"
SECRET_KEY = "readme-examples-secret-key"
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*example:\s*(?P<spec>.*?)\s*-->$")
TOKEN_SPEC = re.compile(
    r"^(?P<kind>merchant|supplier|admin)(?:\s+(?P<number>\d+))?(?:\s+variables=(?P<variables>\{.*\}))?$"
)
NOT_RUN = re.compile(r"^not run \(.+\)$")
GLOBAL_ID = re.compile(r"gid://dropdesk/[A-Za-z]+/\d+")


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # where the block's code starts, for messages
    spec: str

    def __str__(self) -> str:
        return f"README.md line {self.line} ({self.spec})"


def readme_blocks(text: str) -> list[Block]:
    """Fenced blocks with the `<!-- example: ... -->` comment above each (default: merchant)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None or not fence["lang"]:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        before = index - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        directive = DIRECTIVE.match(lines[before].strip()) if before >= 0 else None
        spec = directive["spec"] if directive else "merchant"
        blocks.append(Block(fence["lang"], "\n".join(lines[index + 1 : end]), index + 2, spec))
        index = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text())
GRAPHQL_BLOCKS = [block for block in BLOCKS if block.language == "graphql"]
SHELL_BLOCKS = [
    block for block in BLOCKS if block.language in ("sh", "bash") and not NOT_RUN.match(block.spec)
]
WEBHOOK_BLOCKS = [block for block in SHELL_BLOCKS if "/webhooks/suppliers/" in block.code]
GRAPHQL_CURL_BLOCKS = [block for block in SHELL_BLOCKS if "curl" in block.code and "/graphql" in block.code]
EXPORT_COMMAND_BLOCKS = [
    block for block in SHELL_BLOCKS if block.code.startswith(".venv/bin/dropdesk export ")
]
PYTHON_BLOCKS = [block for block in BLOCKS if block.language == "python"]


def test_the_readme_has_examples_to_run() -> None:
    """Guards the tests below against passing on nothing, and every shell block against being left out."""
    assert len(GRAPHQL_BLOCKS) >= 3
    assert len(WEBHOOK_BLOCKS) == 1
    assert len(GRAPHQL_CURL_BLOCKS) == 2
    assert len(EXPORT_COMMAND_BLOCKS) == 1
    assert len(PYTHON_BLOCKS) == 2
    assert all(TOKEN_SPEC.match(block.spec) for block in GRAPHQL_BLOCKS), [b.spec for b in GRAPHQL_BLOCKS]
    run = WEBHOOK_BLOCKS + GRAPHQL_CURL_BLOCKS + EXPORT_COMMAND_BLOCKS
    assert sorted(block.line for block in run) == sorted(block.line for block in SHELL_BLOCKS), (
        "a shell example that no test runs: mark it <!-- example: not run (why) --> or run it here"
    )


async def fresh_demo(db: Database) -> DemoSeed:
    """The demo data as a first run creates it, ids from 1, in the test database."""
    async with db.write() as session:
        if db.dialect == "postgresql":
            names = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
            await session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                await session.execute(table.delete())
    return await seed_demo(db, orders=DEFAULT_DEMO_SEED_ORDERS, seed=1, secret_key=SECRET_KEY)


def token_for(spec: str, demo: DemoSeed) -> str:
    match = TOKEN_SPEC.match(spec)
    assert match is not None, f"unknown example token {spec!r}: use merchant [N], supplier N or admin"
    number = int(match["number"] or 1)
    if match["kind"] == "admin":
        return demo.admin_token
    if match["kind"] == "merchant":
        shops = list(demo.merchant_tokens.values())
        assert 1 <= number <= len(shops), f"the demo has {len(shops)} shops"
        return shops[number - 1]
    names = {supplier_id: name for name, supplier_id in demo.supplier_ids.items()}
    assert number in names, f"the demo has no supplier {number}"
    return demo.supplier_tokens[names[number]]


def variables_of(spec: str) -> dict[str, Any]:
    match = TOKEN_SPEC.match(spec)
    assert match is not None
    variables: dict[str, Any] = json.loads(match["variables"]) if match["variables"] else {}
    return variables


def problems(value: Any, path: str = "") -> list[str]:
    """Every non-empty userErrors list in an answer."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "userErrors" and item:
                found.append(f"{path}.userErrors: {item}")
            else:
                found += problems(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += problems(item, f"{path}[{index}]")
    return found


@contextlib.asynccontextmanager
async def client_for(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(replace(load_settings(), database_url=db.url, run_worker_in_server=False), db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dropdesk.test") as client:
        yield client


async def post(client: httpx.AsyncClient, token: str, query: str, variables: Any = None) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("block", GRAPHQL_BLOCKS, ids=str)
async def test_graphql_example_runs_as_written(db: Database, block: Block) -> None:
    document = parse(block.code)
    operations = [d for d in document.definitions if hasattr(d, "operation")]
    if any(operation.operation is OperationType.SUBSCRIPTION for operation in operations):
        schema = build_schema(load_settings())._schema
        assert validate(schema, document) == [], block
        return
    demo = await fresh_demo(db)
    token = token_for(block.spec, demo)
    variables = variables_of(block.spec)
    async with client_for(db) as client:
        for global_id in sorted(set(GLOBAL_ID.findall(block.code + json.dumps(variables)))):
            seen = await post(client, token, "query($id: ID!) { node(id: $id) { id } }", {"id": global_id})
            assert seen.get("data", {}).get("node") == {"id": global_id}, (
                f"{block}: {global_id} is not in the demo data or not visible to this token: {seen}"
            )
        body = await post(client, token, block.code, variables)
    assert "errors" not in body, f"{block}: {body['errors']}"
    assert problems(body["data"]) == [], block
    empty = [field for field, value in body["data"].items() if value is None]
    assert empty == [], f"{block}: these root fields answered null: {empty}"


@contextlib.asynccontextmanager
async def serving(db: Database, data_dir: Path) -> AsyncIterator[str]:
    """The app on a real port, for the shell examples, keeping its files (evidence) in data_dir."""
    settings = replace(load_settings(), database_url=db.url, run_worker_in_server=False, data_dir=data_dir)
    app = create_app(settings, db)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.mark.parametrize("block", WEBHOOK_BLOCKS, ids=str)
async def test_signed_webhook_example_runs_as_written(db: Database, block: Block, tmp_path: Path) -> None:
    """The shell example, with the secret the banner prints for its SUPPLIER and the server's address."""
    demo = await fresh_demo(db)
    supplier = re.search(r"^SUPPLIER=(\d+)", block.code, re.MULTILINE)
    assert supplier is not None, f"{block}: the example sets no SUPPLIER=<id>"
    names = {supplier_id: name for name, supplier_id in demo.supplier_ids.items()}
    secret = demo.webhook_secrets[names[int(supplier[1])]]
    script, replaced = re.subn(r"^SECRET='[^']*'", f"SECRET={shlex.quote(secret)}", block.code, flags=re.M)
    assert replaced == 1, f"{block}: the example sets no SECRET='...'"
    assert "http://127.0.0.1:8000" in script
    async with serving(db, tmp_path) as base:
        answer = json.loads(await run_shell(block, script.replace("http://127.0.0.1:8000", base), tmp_path))
    assert "error" not in answer and problems(answer) == [], f"{block}: {answer}"


async def run_shell(block: Block, script: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """What the script prints, run by bash as a user would paste it (failing on its first failure)."""
    completed = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C", **(env or {})},
        cwd=cwd,
        timeout=120,
    )
    assert completed.returncode == 0, f"{block}: {completed.stderr}"
    return completed.stdout


# The smallest file whose first bytes say JPEG, for the upload example's crack.jpg.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


@pytest.mark.parametrize("block", GRAPHQL_CURL_BLOCKS, ids=str)
async def test_graphql_curl_example_runs_as_written(db: Database, block: Block, tmp_path: Path) -> None:
    """With $TOKEN the token the comment above names, any file it uploads beside it; a retry is replayed."""
    demo = await fresh_demo(db)
    (tmp_path / "crack.jpg").write_bytes(JPEG)
    assert "http://127.0.0.1:8000" in block.code
    async with serving(db, tmp_path) as base:
        script = block.code.replace("http://127.0.0.1:8000", base)
        env = {"TOKEN": token_for(block.spec, demo)}
        first = json.loads(await run_shell(block, script, tmp_path, env))
        again = json.loads(await run_shell(block, script, tmp_path, env))
    assert "errors" not in first and problems(first) == [], f"{block}: {first}"
    assert first["data"] and all(value is not None for value in first["data"].values()), f"{block}: {first}"
    if "Idempotency-Key" in block.code:
        assert again["data"] == first["data"], f"{block}: the retry was not given the first answer"
    if "-F 0=@crack.jpg" in block.code:
        attachments = first["data"]["disputeMessageAdd"]["dispute"]["messages"][-1]["attachments"]
        assert [a["contentType"] for a in attachments] == ["image/jpeg"], f"{block}: {first}"


@pytest.mark.parametrize("block", EXPORT_COMMAND_BLOCKS, ids=str)
async def test_export_command_example_runs_as_written(db: Database, block: Block, tmp_path: Path) -> None:
    """The command as written from the checkout, on the demo database, writes a workbook of orders."""
    await fresh_demo(db)
    dropdesk = Path(sys.executable).parent / "dropdesk"
    script = block.code.replace(".venv/bin/dropdesk", shlex.quote(str(dropdesk)), 1)
    env = {
        "DROPDESK_DATABASE_URL": db.url,
        "DROPDESK_DATA_DIR": str(tmp_path),
        "DROPDESK_SECRET_KEY": SECRET_KEY,
    }
    await run_shell(block, script, tmp_path, env)
    out = re.search(r"--out (\S+)", block.code)
    assert out is not None, f"{block}: the example names no --out file"
    sheet = openpyxl.load_workbook(tmp_path / out[1], read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) > 1, f"{block}: the export holds no orders"


def python_example(block: Block, secret: str) -> dict[str, Any]:
    """The names a Python example defines, with the secret it shows as whsec_... replaced by a real one."""
    code = block.code.replace('"whsec_..."', repr(secret))
    namespace: dict[str, Any] = {}
    exec(compile(code, str(block), "exec"), namespace)
    return namespace


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=str)
def test_python_signature_example_accepts_what_dropdesk_signs(block: Block) -> None:
    """Each verifier accepts a delivery signed as Dropdesk signs it, and refuses a changed body or secret."""
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    other_secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    body = json.dumps(
        {"type": "orders/created", "timestamp": "2026-11-27T00:00:00+00:00", "data": {"id": "x"}}
    )
    headers = signed_headers(secret, "msg_readme", body, datetime.now(UTC))
    raw = body.encode()
    namespace = python_example(block, secret)
    if "verify" in namespace and "handle" not in namespace:
        verify = namespace["verify"]
        assert verify(secret, headers, raw) is True, block
        assert verify(secret, headers, raw.replace(b"x", b"y")) is False, block
        assert verify(other_secret, headers, raw) is False, block
        return
    handle = namespace["handle"]
    assert handle(raw, headers) == json.loads(body), block
    with pytest.raises(WebhookVerificationError):
        handle(raw.replace(b"x", b"y"), headers)
    with pytest.raises(WebhookVerificationError):
        python_example(block, other_secret)["handle"](raw, headers)


async def test_graphiql_is_at_the_address_the_readme_gives(db: Database) -> None:
    """`dropdesk serve` prints .../graphql; the README gives the same address, and `/` redirects there."""
    assert "serves GraphiQL\nat http://127.0.0.1:8000/graphql " in README.read_text()
    async with client_for(db) as client:
        home = await client.get("/")
        explorer = await client.get("/graphql", headers={"accept": "text/html"})
    assert (home.status_code, home.headers["location"]) == (302, "/graphql")
    assert explorer.status_code == 200 and "graphiql" in explorer.text.lower()
