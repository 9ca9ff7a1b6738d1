"""Signed, expiring links to files the server streams (export downloads, dispute evidence).

The link carries its expiry and an HMAC of the path and expiry under the installation's secret key, so the
server can check it without storing anything, and a link cannot be stretched or pointed at another file.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import urlencode


class LinkCheck(enum.Enum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"


def _signature(secret_key: str, path: str, expires: int) -> str:
    message = f"{path}\n{expires}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def signed_url(public_url: str, secret_key: str, path: str, expires_at: datetime) -> str:
    """``public_url`` + ``path`` with ``expires`` (Unix seconds) and ``signature`` query parameters."""
    expires = int(expires_at.timestamp())
    query = urlencode({"expires": expires, "signature": _signature(secret_key, path, expires)})
    return f"{public_url.rstrip('/')}{path}?{query}"


def check_link(
    secret_key: str, path: str, expires: str | None, signature: str | None, now: datetime
) -> LinkCheck:
    """INVALID for a missing, malformed or tampered link (checked first), EXPIRED for a genuine old one."""
    if not expires or not signature or not expires.isdigit() or len(expires) > 12:
        return LinkCheck.INVALID
    expected = _signature(secret_key, path, int(expires))
    if not hmac.compare_digest(expected, signature):
        return LinkCheck.INVALID
    if datetime.fromtimestamp(int(expires), UTC) <= now:
        return LinkCheck.EXPIRED
    return LinkCheck.VALID
