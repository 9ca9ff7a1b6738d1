"""The ``dropdesk`` command: serve, migrate, seed, and the platform admin's shop, supplier and token tools."""

from __future__ import annotations

import argparse
import base64
import errno
import os
import secrets
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from api.cli_support import DatabaseUnreachable, run_with_database
from config.settings import SettingError, Settings, get_settings
from db.engine import Database
from db.migrate import refresh_statistics, upgrade
from db.models import AccessToken, Shop, Supplier, TokenKind
from db.types import utcnow
from demo.catalogue import DEMO_SHOPS
from demo.generator import DemoSeed, seed_demo
from domain.actors import Scope
from domain.errors import DomainError
from domain.money import is_currency
from domain.tokens import issue_token, parse_duration, revoke_token


def _progress_bar(label: str) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        width = 30
        filled = width * done // total if total else width
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _print_demo_tokens(result: DemoSeed) -> None:
    print("\nDemo tokens (derived from this installation's secret key; keep them private):")
    for shop, token in result.merchant_tokens.items():
        print(f"  merchant  {shop:<52} {token}")
    for supplier, token in result.supplier_tokens.items():
        label = f"{supplier} (supplier {result.supplier_ids.get(supplier, '?')})"
        print(f"  supplier  {label:<52} {token}")
    print(f"  admin     {'platform':<52} {result.admin_token}")
    if result.webhook_secrets:
        print("\nDemo suppliers' webhook secrets (sign POST /webhooks/suppliers/<supplier id>):")
        for supplier, secret in result.webhook_secrets.items():
            print(f"  supplier {result.supplier_ids.get(supplier, '?'):<4} {supplier:<40} {secret}")


async def _prepare_embedded(database: Database, settings: Settings, demo: bool, graphiql_url: str) -> None:
    """Migrate, seed demo data on first run (never into a database that holds real shops), print tokens."""
    await upgrade(database.engine)
    if not demo:
        return
    async with database.read() as session:
        shop_names = set((await session.execute(select(Shop.name))).scalars())
    if shop_names and not shop_names & {profile.name for profile in DEMO_SHOPS}:
        return
    result = await seed_demo(
        database,
        orders=settings.demo_seed_orders,
        seed=1,
        secret_key=settings.secret_key,
        progress=_progress_bar("seeding demo data"),
    )
    if result.created:
        await refresh_statistics(database.engine)
    _print_demo_tokens(result)
    print(f"\nGraphiQL: {graphiql_url}  (paste a token into its Token field)\n")


def check_port(host: str, port: int) -> str | None:
    """Why ``serve`` could not listen on host:port, or None when it can; checked before anything is printed."""
    if not 1 <= port <= 65535:
        return f"port {port} is not valid: use a number from 1 to 65535"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return f"cannot listen on host {host!r}: {error.strerror}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As uvicorn does, so that a port in TIME_WAIT is not reported as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use: stop what listens there or pass --port"
            return f"cannot listen on {host}:{port}: {error.strerror}"
    return None


def served_public_url(host: str, port: int) -> str:
    """Where the links a server hands out point when DROPDESK_PUBLIC_URL is not set: the address it listens
    on, a wildcard address as the loopback one."""
    shown = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from config.logs import configure_logging

    problem = check_port(args.host, args.port)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # Set for the server's own processes too (uvicorn's workers read the settings again).
    os.environ.setdefault("DROPDESK_PUBLIC_URL", served_public_url(args.host, args.port))
    settings = get_settings()
    demo = settings.is_sqlite if args.demo is None else args.demo

    async def prepare(database: Database, settings: Settings) -> int:
        await _prepare_embedded(database, settings, demo, f"http://{args.host}:{args.port}/graphql")
        return 0

    run_with_database(prepare)
    configure_logging(settings.log_level)
    uvicorn.run(
        "api.app:create_served_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        ws="websockets-sansio",
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    async def main(database: Database, settings: Settings) -> int:
        await upgrade(database.engine, args.revision)
        print(f"database migrated to {args.revision}")
        return 0

    return run_with_database(main)


def cmd_seed(args: argparse.Namespace) -> int:
    async def main(database: Database, settings: Settings) -> int:
        await upgrade(database.engine)
        result = await seed_demo(
            database,
            orders=args.orders,
            seed=args.seed,
            secret_key=settings.secret_key,
            progress=_progress_bar("seeding"),
        )
        if result.created:
            # Fresh statistics (and, on PostgreSQL, the visibility map) for the rows just loaded.
            await refresh_statistics(database.engine, vacuum=True)
        print(
            f"seeded {result.orders} orders" if result.created else "demo data already present; nothing added"
        )
        _print_demo_tokens(result)
        return 0

    return run_with_database(main)


def cmd_shop_create(args: argparse.Namespace) -> int:
    currency = args.currency.upper()
    if not is_currency(currency):
        print(f"error: {args.currency!r} is not a supported currency", file=sys.stderr)
        return 2

    async def main(database: Database, settings: Settings) -> int:
        async with database.write() as session:
            shop = Shop(name=args.name, currency=currency, email=args.email)
            session.add(shop)
            await session.flush()
            shop.shop_id = shop.id
        print(f"shop {shop.id} created: {shop.name} ({currency})")
        return 0

    return run_with_database(main)


def cmd_supplier_create(args: argparse.Namespace) -> int:
    async def main(database: Database, settings: Settings) -> int:
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        async with database.write() as session:
            if await session.get(Shop, args.shop) is None:
                print(f"error: no shop {args.shop}", file=sys.stderr)
                return 2
            # The unique (shop, store id) index decides, so two admins adding the same store cannot both win.
            insert = postgresql.insert if database.dialect == "postgresql" else sqlite.insert
            supplier_id = await session.scalar(
                insert(Supplier)
                .values(
                    shop_id=args.shop,
                    name=args.name,
                    aliexpress_store_id=args.store_id,
                    store_url=args.store_url or f"https://www.aliexpress.com/store/{args.store_id}",
                    accepts_returns=args.accepts_returns,
                    return_window_days=args.return_window_days,
                    webhook_secret=secret,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=[Supplier.shop_id, Supplier.aliexpress_store_id])
                .returning(Supplier.id)
            )
        if supplier_id is None:
            print(
                f"error: shop {args.shop} already has a supplier with store id {args.store_id}",
                file=sys.stderr,
            )
            return 2
        print(f"supplier {supplier_id} created in shop {args.shop}: {args.name}")
        print(f"webhook secret (shown once): {secret}")
        return 0

    return run_with_database(main)


def cmd_supplier_list(args: argparse.Namespace) -> int:
    async def main(database: Database, settings: Settings) -> int:
        statement = select(Supplier).order_by(Supplier.id)
        if args.shop is not None:
            statement = statement.where(Supplier.shop_id == args.shop)
        async with database.read() as session:
            suppliers = (await session.execute(statement)).scalars().all()
        rows = [
            [
                str(supplier.id),
                str(supplier.shop_id),
                supplier.name,
                supplier.aliexpress_store_id,
                *([supplier.webhook_secret] if args.secrets else []),
            ]
            for supplier in suppliers
        ]
        header = ["id", "shop", "name", "store id", *(["webhook secret"] if args.secrets else [])]
        _print_table(header, rows)
        return 0

    return run_with_database(main)


def cmd_token_create(args: argparse.Namespace) -> int:
    expires_at = utcnow().replace(microsecond=0) + args.expires_in if args.expires_in else None

    async def main(database: Database, settings: Settings) -> int:
        try:
            async with database.write() as session:
                if args.supplier is not None:
                    supplier = await session.get(Supplier, args.supplier)
                    if supplier is None:
                        print(f"error: no supplier {args.supplier}", file=sys.stderr)
                        return 2
                    issued = issue_token(
                        session,
                        kind=TokenKind.SUPPLIER,
                        name=args.name,
                        supplier=supplier,
                        expires_at=expires_at,
                    )
                elif args.admin:
                    issued = issue_token(session, kind=TokenKind.ADMIN, name=args.name, expires_at=expires_at)
                else:
                    if await session.get(Shop, args.shop) is None:
                        print(f"error: no shop {args.shop}", file=sys.stderr)
                        return 2
                    scopes = args.scopes.split(",") if args.scopes else Scope.ALL
                    issued = issue_token(
                        session,
                        kind=TokenKind.MERCHANT,
                        name=args.name,
                        shop_id=args.shop,
                        scopes=scopes,
                        expires_at=expires_at,
                    )
        except DomainError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(issued.raw)
        if expires_at is not None:
            print(f"expires {expires_at.strftime('%Y-%m-%d %H:%M:%S')} UTC", file=sys.stderr)
        return 0

    return run_with_database(main)


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    """Columns as wide as their widest value, so that no name is ever cut."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def cmd_token_list(args: argparse.Namespace) -> int:
    async def main(database: Database, settings: Settings) -> int:
        statement = (
            select(AccessToken, Shop.name, Supplier.name)
            .outerjoin(Shop, Shop.id == AccessToken.shop_id)
            .outerjoin(Supplier, Supplier.id == AccessToken.supplier_id)
            .order_by(AccessToken.id)
        )
        if args.shop is not None:
            statement = statement.where(AccessToken.shop_id == args.shop)
        async with database.read() as session:
            found = (await session.execute(statement)).all()
        now = utcnow()
        rows = []
        for token, shop_name, supplier_name in found:
            expired = token.expires_at is not None and token.expires_at <= now
            rows.append(
                [
                    str(token.id),
                    token.kind.value.lower(),
                    f"{token.shop_id} {shop_name}" if token.shop_id else "-",
                    f"{token.supplier_id} {supplier_name}" if token.supplier_id else "-",
                    token.prefix,
                    token.name,
                    ",".join(token.scopes) or "-",
                    _when(token.created_at),
                    _when(token.last_used_at),
                    _when(token.expires_at) + (" (expired)" if expired else ""),
                    _when(token.revoked_at),
                ]
            )
        header = [
            "id",
            "kind",
            "shop",
            "supplier",
            "prefix",
            "name",
            "scopes",
            "created",
            "last used",
            "expires",
            "revoked",
        ]
        _print_table(header, rows)
        return 0

    return run_with_database(main)


def cmd_token_revoke(args: argparse.Namespace) -> int:
    async def main(database: Database, settings: Settings) -> int:
        async with database.write() as session:
            revoked = await revoke_token(session, args.id)
        if not revoked:
            print(f"error: no active token {args.id}", file=sys.stderr)
            return 1
        print(f"token {args.id} revoked")
        return 0

    return run_with_database(main)


def _lifetime(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: use a number from 1 to 65535")
    return int(text)


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dropdesk", description="Dropdesk back office for dropshipping merchants"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate, seed demo data on first run, and serve the API")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="TCP port to listen on (default 8000)")
    serve.add_argument("--workers", type=_at_least_one, default=1, help="API processes (default 1)")
    serve.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="seed demo data on first run and print its tokens (default: on with SQLite)",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser("migrate", help="bring the database schema to the latest revision")
    migrate.add_argument("--revision", default="head", help="Alembic revision to migrate to (default head)")
    migrate.set_defaults(func=cmd_migrate)

    seed = commands.add_parser("seed", help="insert realistic, deterministic demo data")
    seed.add_argument("--orders", type=int, default=200, help="store orders to create (default 200)")
    seed.add_argument(
        "--seed", type=int, default=1, help="random seed; the same seed gives the same data (default 1)"
    )
    seed.set_defaults(func=cmd_seed)

    shop = commands.add_parser("shop", help="manage shops").add_subparsers(dest="action", required=True)
    shop_create = shop.add_parser("create", help="create a shop and print its id")
    shop_create.add_argument("--name", required=True, help="the shop's name")
    shop_create.add_argument("--currency", default="USD", help="ISO 4217 currency code (default USD)")
    shop_create.add_argument("--email", help="the shop's contact email")
    shop_create.set_defaults(func=cmd_shop_create)

    supplier = commands.add_parser("supplier", help="manage suppliers").add_subparsers(
        dest="action", required=True
    )
    supplier_create = supplier.add_parser(
        "create", help="add a supplier to a shop and print its webhook secret (shown once)"
    )
    supplier_create.add_argument("--shop", type=int, required=True, help="id of the shop it supplies")
    supplier_create.add_argument("--name", required=True, help="the supplier's name")
    supplier_create.add_argument("--store-id", required=True, help="AliExpress store id")
    supplier_create.add_argument(
        "--store-url", help="AliExpress store URL (default: built from the store id)"
    )
    supplier_create.add_argument("--accepts-returns", action="store_true", help="the supplier takes returns")
    supplier_create.add_argument(
        "--return-window-days", type=int, default=0, help="days the supplier accepts returns (default 0)"
    )
    supplier_create.set_defaults(func=cmd_supplier_create)
    supplier_list = supplier.add_parser("list", help="list suppliers with their ids and shops")
    supplier_list.add_argument("--shop", type=int, help="only this shop's suppliers")
    supplier_list.add_argument(
        "--secrets", action="store_true", help="also print each supplier's webhook secret (keep it private)"
    )
    supplier_list.set_defaults(func=cmd_supplier_list)

    token = commands.add_parser("token", help="manage access tokens").add_subparsers(
        dest="action", required=True
    )
    token_create = token.add_parser("create", help="create a token and print it (shown once)")
    owner = token_create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--shop", type=int, help="a merchant token for this shop id")
    owner.add_argument("--supplier", type=int, help="a supplier token for this supplier id")
    owner.add_argument("--admin", action="store_true", help="a platform admin token")
    token_create.add_argument("--name", default="cli", help="shown in the audit trail (default cli)")
    token_create.add_argument(
        "--scopes", help=f"merchant tokens: comma-separated, from {','.join(Scope.ALL)} (default: all)"
    )
    token_create.add_argument(
        "--expires-in",
        type=_lifetime,
        default=None,
        help="lifetime such as 90m, 12h, 30d or 8w (default: never expires)",
    )
    token_create.set_defaults(func=cmd_token_create)
    token_list = token.add_parser(
        "list", help="list tokens (never their values) with when they were last used and revoked"
    )
    token_list.add_argument("--shop", type=int, help="only this shop's merchant and supplier tokens")
    token_list.set_defaults(func=cmd_token_list)
    token_revoke = token.add_parser("revoke", help="revoke a token by its id (see token list)")
    token_revoke.add_argument("id", type=int, help="the token's id, as `token list` shows it")
    token_revoke.set_defaults(func=cmd_token_revoke)

    from api.cli_exports import add_export_command
    from api.cli_jobs import add_worker_commands

    add_worker_commands(commands)
    add_export_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SettingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except DatabaseUnreachable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C: what the command was doing was undone or left whole (see each command); no traceback.
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
