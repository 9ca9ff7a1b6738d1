"""Settings read once from the environment (prefix ``DROPDESK_``), with safe defaults for the embedded mode."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


def _env(name: str, default: str) -> str:
    return os.environ.get(f"DROPDESK_{name}", default)


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, "1" if default else "0").strip().lower()
    return raw in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


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
    demo_seed_orders: int = 200
    # How long a supplier has to decide on a cancellation request before it is approved for them.
    cancellation_response_hours: int = 48

    # Exports: files bigger than this go by link only; links (and the files behind them) last this long.
    export_attachment_max_bytes: int = 5 * 1024 * 1024
    export_link_days: int = 7
    export_dir_override: str = ""
    # Orders read per batch while exporting: memory is bounded by one batch, whatever the export's size.
    export_batch_orders: int = 1000
    smtp_from: str = "Dropdesk <dropdesk@localhost>"
    # Orders handled per transaction by a bulk action: a retry redoes at most one batch's uncommitted work.
    bulk_action_batch_orders: int = 100

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
    secret = os.environ.get("DROPDESK_SECRET_KEY") or _embedded_secret(data_dir)
    return Settings(
        database_url=_env("DATABASE_URL", default_db),
        secret_key=secret,
        public_url=_env("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
        smtp_url=_env("SMTP_URL", ""),
        data_dir=data_dir,
        log_level=_env("LOG_LEVEL", "INFO"),
        run_worker_in_server=_env_bool("RUN_WORKER_IN_SERVER", True),
        max_query_depth=_env_int("MAX_QUERY_DEPTH", 12),
        max_aliases=_env_int("MAX_ALIASES", 30),
        max_query_tokens=_env_int("MAX_QUERY_TOKENS", 2000),
        demo_seed_orders=_env_int("DEMO_SEED_ORDERS", 200),
        cancellation_response_hours=_env_int("CANCELLATION_RESPONSE_HOURS", 48),
        export_attachment_max_bytes=_env_int("EXPORT_ATTACHMENT_MAX_BYTES", 5 * 1024 * 1024),
        export_link_days=_env_int("EXPORT_LINK_DAYS", 7),
        export_dir_override=_env("EXPORT_DIR", ""),
        export_batch_orders=_env_int("EXPORT_BATCH_ORDERS", 1000),
        smtp_from=_env("SMTP_FROM", "Dropdesk <dropdesk@localhost>"),
        bulk_action_batch_orders=_env_int("BULK_ACTION_BATCH_ORDERS", 100),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
