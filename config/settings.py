"""Settings read once from the environment (prefix ``DROPDESK_``), with safe defaults for the embedded mode."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

# Orders in the demo data of a first embedded run; the README's examples name ids from that data.
DEFAULT_DEMO_SEED_ORDERS = 200


class SettingError(ValueError):
    """A setting with a value the process cannot run with; its message is one line for the operator."""

    def __init__(self, name: str, value: str, allowed: str) -> None:
        super().__init__(f"DROPDESK_{name}={value!r} is not valid: {allowed}")
        self.variable = f"DROPDESK_{name}"


def available_cpus() -> int:
    """The CPUs this process may run on (fewer than the machine's under a CPU affinity mask)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _env(name: str, default: str) -> str:
    return os.environ.get(f"DROPDESK_{name}", default)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, "1" if default else "0")
    value = raw.strip().lower()
    if value not in _TRUE | _FALSE:
        raise SettingError(name, raw, "expected 1, true, yes, on or 0, false, no, off")
    return value in _TRUE


def _env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = _env(name, str(default))
    bounds = (
        f"between {minimum} and {maximum}"
        if minimum is not None and maximum is not None
        else f"at least {minimum}"
        if minimum is not None
        else "any"
    )
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingError(name, raw, f"expected a whole number ({bounds})") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise SettingError(name, raw, f"expected a whole number {bounds}")
    return value


_DATABASE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg", "postgresql+psycopg")


def _env_database_url(default: str) -> str:
    raw = _env("DATABASE_URL", default)
    scheme, separator, rest = raw.partition("://")
    allowed = "expected " + ", ".join(f"{driver}://..." for driver in _DATABASE_DRIVERS)
    if not separator or scheme not in _DATABASE_DRIVERS:
        hint = " (add the driver: postgresql+asyncpg://...)" if scheme in ("postgresql", "postgres") else ""
        raise SettingError("DATABASE_URL", raw, allowed + hint)
    if scheme.startswith("postgresql") and not rest.split("/", 1)[0].rpartition("@")[2]:
        raise SettingError(
            "DATABASE_URL", raw, "a PostgreSQL URL needs a host: postgresql+asyncpg://user@host/db"
        )
    return raw


def _env_url(name: str, default: str, schemes: tuple[str, ...]) -> str:
    raw = _env(name, default)
    scheme, separator, rest = raw.partition("://")
    if not separator or scheme.lower() not in schemes or not rest.strip("/"):
        raise SettingError(
            name, raw, "expected a URL starting with " + " or ".join(f"{s}://" for s in schemes)
        )
    return raw


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _env_log_level() -> str:
    raw = _env("LOG_LEVEL", "INFO")
    if raw.strip().upper() not in _LOG_LEVELS:
        raise SettingError("LOG_LEVEL", raw, "expected one of " + ", ".join(_LOG_LEVELS))
    return raw.strip().upper()


def _embedded_secret(data_dir: Path) -> str:
    """In embedded mode the secret key is generated once and kept beside the database."""
    path = data_dir / "secret-key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    path.chmod(0o600)
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: str
    public_url: str
    smtp_url: str
    data_dir: Path
    log_level: str = "INFO"
    run_worker_in_server: bool = True
    max_query_depth: int = 12
    max_aliases: int = 30
    max_query_tokens: int = 2000
    page_size_max: int = 250
    demo_seed_orders: int = DEFAULT_DEMO_SEED_ORDERS
    # How long a supplier has to decide on a cancellation request before it is approved for them.
    cancellation_response_hours: int = 48
    # Disputes: how long after a supplier order finishes one may be opened, and how long the supplier has to
    # respond before it resolves in the merchant's favour.
    dispute_window_days: int = 15
    dispute_response_days: int = 5
    # Evidence uploads: the largest file accepted, where files are kept, and how long a link to one works.
    evidence_max_bytes: int = 20 * 1024 * 1024
    evidence_dir: Path | None = None
    evidence_link_minutes: int = 60

    @property
    def evidence_path(self) -> Path:
        return self.evidence_dir or self.data_dir / "evidence"

    # Exports: files bigger than this go by link only; links (and the files behind them) last this long.
    export_attachment_max_bytes: int = 5 * 1024 * 1024
    export_link_days: int = 7
    export_dir_override: str = ""
    # Orders read per batch while exporting: memory is bounded by one batch, whatever the export's size.
    export_batch_orders: int = 1000
    # Processes that read and format a large line-item CSV export side by side (1: the exporting process alone);
    # each holds a database connection while it works, so the default stops at 4 whatever the CPUs.
    export_processes: int = 1
    smtp_from: str = "Dropdesk <dropdesk@localhost>"
    # Outbound webhooks may target private, loopback and link-local addresses (tests, closed networks).
    webhook_allow_private_urls: bool = False
    # A delivery must be answered with a 2xx within this many seconds (connect, send and headers in all).
    webhook_timeout_seconds: float = 15.0
    # The edge: what one request may send and ask before anything runs.
    max_body_bytes: int = 1_000_000
    # multipart/form-data requests (file uploads) are read up to this size instead.
    max_upload_body_bytes: int = 25_000_000
    max_query_bytes: int = 100_000
    max_variables_bytes: int = 1_000_000
    max_json_depth: int = 64
    max_query_cost: int = 1000
    # Leaky bucket of query cost per token: its size and the points it regains per second.
    cost_bucket_size: int = 2000
    cost_restore_rate: int = 100
    idempotency_key_hours: int = 24
    # Orders handled per transaction by a bulk action: a retry redoes at most one batch's uncommitted work.
    bulk_action_batch_orders: int = 100
    # Order reads answered by compiled plans (schema/plan.py); off runs every query on the standard executor.
    compiled_reads: bool = True

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def export_dir(self) -> Path:
        return Path(self.export_dir_override) if self.export_dir_override else self.data_dir / "exports"

    @property
    def smtp(self) -> SmtpSettings | None:
        """The parsed ``smtp_url``; None when no mail server is configured."""
        return parse_smtp_url(self.smtp_url, self.smtp_from) if self.smtp_url.strip() else None


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    # smtps:// wraps the connection in TLS from the start; ?starttls=1 upgrades a plain one.
    use_tls: bool = False
    starttls: bool = False
    timeout: float = 30.0


def parse_smtp_url(url: str, sender: str) -> SmtpSettings:
    """``smtp://[user[:password]@]host[:port][?starttls=1]`` or ``smtps://...`` (port 465 by default)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ValueError(f"DROPDESK_SMTP_URL must look like smtp://host:port, not {url!r}")
    options = {key.lower(): values[-1].lower() for key, values in parse_qs(parts.query).items()}
    use_tls = parts.scheme == "smtps"
    return SmtpSettings(
        host=parts.hostname,
        port=parts.port or (465 if use_tls else 25),
        sender=sender,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=use_tls,
        starttls=options.get("starttls", "0") in {"1", "true", "yes", "on"},
        timeout=float(options.get("timeout", "30")),
    )


def load_settings() -> Settings:
    data_dir = Path(_env("DATA_DIR", str(Path.cwd() / ".dropdesk")))
    default_db = f"sqlite+aiosqlite:///{data_dir / 'dropdesk.sqlite3'}"
    secret = os.environ.get("DROPDESK_SECRET_KEY")
    if not secret:
        try:
            secret = _embedded_secret(data_dir)
        except OSError as error:
            raise SettingError(
                "DATA_DIR", str(data_dir), f"the secret key cannot be kept there ({error.strerror})"
            ) from None
    return Settings(
        database_url=_env_database_url(default_db),
        secret_key=secret,
        public_url=_env_url("PUBLIC_URL", "http://127.0.0.1:8000", ("http", "https")).rstrip("/"),
        # Empty: no mail is sent (exports still succeed and show their link in GraphQL).
        smtp_url=_env_url("SMTP_URL", "", ("smtp", "smtps")) if _env("SMTP_URL", "") else "",
        data_dir=data_dir,
        log_level=_env_log_level(),
        run_worker_in_server=_env_bool("RUN_WORKER_IN_SERVER", True),
        max_query_depth=_env_int("MAX_QUERY_DEPTH", 12, minimum=1, maximum=100),
        max_aliases=_env_int("MAX_ALIASES", 30, minimum=1, maximum=1000),
        max_query_tokens=_env_int("MAX_QUERY_TOKENS", 2000, minimum=10, maximum=1_000_000),
        demo_seed_orders=_env_int("DEMO_SEED_ORDERS", DEFAULT_DEMO_SEED_ORDERS, minimum=0, maximum=1_000_000),
        cancellation_response_hours=_env_int("CANCELLATION_RESPONSE_HOURS", 48, minimum=1, maximum=24 * 90),
        export_attachment_max_bytes=_env_int("EXPORT_ATTACHMENT_MAX_BYTES", 5 * 1024 * 1024, minimum=0),
        export_link_days=_env_int("EXPORT_LINK_DAYS", 7, minimum=1, maximum=365),
        export_dir_override=_env("EXPORT_DIR", ""),
        export_batch_orders=_env_int("EXPORT_BATCH_ORDERS", 1000, minimum=1, maximum=100_000),
        export_processes=_env_int("EXPORT_PROCESSES", min(available_cpus(), 4), minimum=1, maximum=64),
        smtp_from=_env("SMTP_FROM", "Dropdesk <dropdesk@localhost>"),
        dispute_window_days=_env_int("DISPUTE_WINDOW_DAYS", 15, minimum=0, maximum=365),
        dispute_response_days=_env_int("DISPUTE_RESPONSE_DAYS", 5, minimum=1, maximum=90),
        evidence_max_bytes=_env_int("EVIDENCE_MAX_BYTES", 20 * 1024 * 1024, minimum=1),
        evidence_dir=Path(_env("EVIDENCE_DIR", str(data_dir / "evidence"))),
        evidence_link_minutes=_env_int("EVIDENCE_LINK_MINUTES", 60, minimum=1, maximum=60 * 24 * 30),
        webhook_allow_private_urls=_env_bool("WEBHOOK_ALLOW_PRIVATE_URLS", False),
        webhook_timeout_seconds=float(_env_int("WEBHOOK_TIMEOUT_SECONDS", 15, minimum=1, maximum=60)),
        max_body_bytes=_env_int("MAX_BODY_BYTES", 1_000_000, minimum=1024),
        max_upload_body_bytes=_env_int("MAX_UPLOAD_BODY_BYTES", 25_000_000, minimum=1024),
        max_query_bytes=_env_int("MAX_QUERY_BYTES", 100_000, minimum=100),
        max_variables_bytes=_env_int("MAX_VARIABLES_BYTES", 1_000_000, minimum=100),
        max_json_depth=_env_int("MAX_JSON_DEPTH", 64, minimum=4, maximum=10_000),
        max_query_cost=_env_int("MAX_QUERY_COST", 1000, minimum=1),
        cost_bucket_size=_env_int("COST_BUCKET_SIZE", 2000, minimum=1),
        cost_restore_rate=_env_int("COST_RESTORE_RATE", 100, minimum=1),
        idempotency_key_hours=_env_int("IDEMPOTENCY_KEY_HOURS", 24, minimum=1, maximum=24 * 30),
        bulk_action_batch_orders=_env_int("BULK_ACTION_BATCH_ORDERS", 100, minimum=1, maximum=10_000),
        compiled_reads=_env_bool("COMPILED_READS", True),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
