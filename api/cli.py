"""The ``dropdesk`` command: serve, migrate, seed, and the platform admin's shop, supplier and token tools."""

from __future__ import annotations

import argparse
import base64
import secrets
import sys
from collections.abc import Callable, Sequence

from sqlalchemy import select

from api.cli_support import run_with_database
from config.settings import Settings, get_settings
from db.engine import Database
from db.migrate import refresh_statistics, upgrade
from db.models import AccessToken, Shop, Supplier, TokenKind
from demo.catalogue import DEMO_SHOPS
from demo.generator import DemoSeed, seed_demo
from domain.actors import Scope
from domain.errors import DomainError
from domain.money import is_currency
from domain.tokens import issue_token, revoke_token


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
        print(f"  merchant  {shop:<40} {token}")
    for supplier, token in result.supplier_tokens.items():
        print(f"  supplier  {supplier:<40} {token}")
    print(f"  admin     {'platform':<40} {result.admin_token}")


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
    print(f"\nGraphiQL: {graphiql_url}  (add the header Authorization: Bearer <token>)\n")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from config.logs import configure_logging

    settings = get_settings()
    demo = settings.is_sqlite if args.demo is None else args.demo

    async def prepare(database: Database, settings: Settings) -> int:
        await _prepare_embedded(database, settings, demo, f"http://{args.host}:{args.port}/graphql")
        return 0

    run_with_database(prepare)
    configure_logging(settings.log_level)
    uvicorn.run(
        "api.app:create_app",
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
            supplier = Supplier(
                shop_id=args.shop,
                name=args.name,
                aliexpress_store_id=args.store_id,
                store_url=args.store_url or f"https://www.aliexpress.com/store/{args.store_id}",
                accepts_returns=args.accepts_returns,
                return_window_days=args.return_window_days,
                webhook_secret=secret,
            )
            session.add(supplier)
            await session.flush()
        print(f"supplier {supplier.id} created in shop {args.shop}: {supplier.name}")
        print(f"webhook secret (shown once): {secret}")
        return 0

    return run_with_database(main)


def cmd_token_create(args: argparse.Namespace) -> int:
    async def main(database: Database, settings: Settings) -> int:
        try:
            async with database.write() as session:
                if args.supplier is not None:
                    supplier = await session.get(Supplier, args.supplier)
                    if supplier is None:
                        print(f"error: no supplier {args.supplier}", file=sys.stderr)
                        return 2
                    issued = issue_token(session, kind=TokenKind.SUPPLIER, name=args.name, supplier=supplier)
                elif args.admin:
                    issued = issue_token(session, kind=TokenKind.ADMIN, name=args.name)
                else:
                    if await session.get(Shop, args.shop) is None:
                        print(f"error: no shop {args.shop}", file=sys.stderr)
                        return 2
                    scopes = args.scopes.split(",") if args.scopes else Scope.ALL
                    issued = issue_token(
                        session, kind=TokenKind.MERCHANT, name=args.name, shop_id=args.shop, scopes=scopes
                    )
        except DomainError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(issued.raw)
        return 0

    return run_with_database(main)


def cmd_token_list(args: argparse.Namespace) -> int:
    async def main(database: Database, settings: Settings) -> int:
        statement = select(AccessToken).order_by(AccessToken.id)
        if args.shop is not None:
            statement = statement.where(AccessToken.shop_id == args.shop)
        async with database.read() as session:
            tokens = (await session.execute(statement)).scalars().all()
        print(f"{'id':>5}  {'kind':<8} {'shop':>5}  {'prefix':<9} {'name':<30} {'created':<20} revoked")
        for token in tokens:
            revoked = token.revoked_at.strftime("%Y-%m-%d %H:%M") if token.revoked_at else "-"
            print(
                f"{token.id:>5}  {token.kind.value:<8} {token.shop_id or '-':>5}  {token.prefix:<9} "
                f"{token.name[:30]:<30} {token.created_at.strftime('%Y-%m-%d %H:%M'):<20} {revoked}"
            )
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dropdesk", description="Dropdesk back office for dropshipping merchants"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="migrate, seed demo data on first run, and serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="API processes")
    serve.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="seed demo data (default on SQLite)",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser("migrate", help="bring the database schema to the latest revision")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(func=cmd_migrate)

    seed = commands.add_parser("seed", help="insert realistic, deterministic demo data")
    seed.add_argument("--orders", type=int, default=200)
    seed.add_argument("--seed", type=int, default=1)
    seed.set_defaults(func=cmd_seed)

    shop = commands.add_parser("shop", help="manage shops").add_subparsers(dest="action", required=True)
    shop_create = shop.add_parser("create")
    shop_create.add_argument("--name", required=True)
    shop_create.add_argument("--currency", default="USD")
    shop_create.add_argument("--email")
    shop_create.set_defaults(func=cmd_shop_create)

    supplier = commands.add_parser("supplier", help="manage suppliers").add_subparsers(
        dest="action", required=True
    )
    supplier_create = supplier.add_parser("create")
    supplier_create.add_argument("--shop", type=int, required=True)
    supplier_create.add_argument("--name", required=True)
    supplier_create.add_argument("--store-id", required=True, help="AliExpress store id")
    supplier_create.add_argument("--store-url")
    supplier_create.add_argument("--accepts-returns", action="store_true")
    supplier_create.add_argument("--return-window-days", type=int, default=0)
    supplier_create.set_defaults(func=cmd_supplier_create)

    token = commands.add_parser("token", help="manage access tokens").add_subparsers(
        dest="action", required=True
    )
    token_create = token.add_parser("create", help="create a token and print it (shown once)")
    owner = token_create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--shop", type=int)
    owner.add_argument("--supplier", type=int)
    owner.add_argument("--admin", action="store_true")
    token_create.add_argument("--name", default="cli")
    token_create.add_argument("--scopes", help=f"comma-separated, from {','.join(Scope.ALL)} (default: all)")
    token_create.set_defaults(func=cmd_token_create)
    token_list = token.add_parser("list", help="list tokens (never their values) with when they were revoked")
    token_list.add_argument("--shop", type=int, help="only this shop's merchant and supplier tokens")
    token_list.set_defaults(func=cmd_token_list)
    token_revoke = token.add_parser("revoke", help="revoke a token by its id (see token list)")
    token_revoke.add_argument("id", type=int)
    token_revoke.set_defaults(func=cmd_token_revoke)

    from api.cli_jobs import add_worker_commands

    add_worker_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
