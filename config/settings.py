"""Settings read once from the environment (prefix ``DROPDESK_``), with safe defaults for the embedded mode."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


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

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings() -> Settings:
    data_dir = Path(_env("DATA_DIR", str(Path.cwd() / ".dropdesk")))
    default_db = f"sqlite+aiosqlite:///{data_dir / 'dropdesk.sqlite3'}"
    secret = os.environ.get("DROPDESK_SECRET_KEY") or _embedded_secret(data_dir)
    return Settings(
        database_url=_env("DATABASE_URL", default_db),
        secret_key=secret,
        public_url=_env("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
        smtp_url=_env("SMTP_URL", "smtp://127.0.0.1:25"),
        data_dir=data_dir,
        log_level=_env("LOG_LEVEL", "INFO"),
        run_worker_in_server=_env_bool("RUN_WORKER_IN_SERVER", True),
        max_query_depth=_env_int("MAX_QUERY_DEPTH", 12),
        max_aliases=_env_int("MAX_ALIASES", 30),
        max_query_tokens=_env_int("MAX_QUERY_TOKENS", 2000),
        demo_seed_orders=_env_int("DEMO_SEED_ORDERS", 200),
        cancellation_response_hours=_env_int("CANCELLATION_RESPONSE_HOURS", 48),
        max_body_bytes=_env_int("MAX_BODY_BYTES", 1_000_000),
        max_upload_body_bytes=_env_int("MAX_UPLOAD_BODY_BYTES", 25_000_000),
        max_query_bytes=_env_int("MAX_QUERY_BYTES", 100_000),
        max_variables_bytes=_env_int("MAX_VARIABLES_BYTES", 1_000_000),
        max_json_depth=_env_int("MAX_JSON_DEPTH", 64),
        max_query_cost=_env_int("MAX_QUERY_COST", 1000),
        cost_bucket_size=_env_int("COST_BUCKET_SIZE", 2000),
        cost_restore_rate=_env_int("COST_RESTORE_RATE", 100),
        idempotency_key_hours=_env_int("IDEMPOTENCY_KEY_HOURS", 24),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
