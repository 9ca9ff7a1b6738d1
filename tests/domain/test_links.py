"""Signed links: valid until they expire, refused when any part is changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from domain.links import LinkCheck, check_link, signed_url

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _parts(url: str) -> tuple[str, str, str]:
    split = urlsplit(url)
    query = parse_qs(split.query)
    return split.path, query["expires"][0], query["signature"][0]


def test_a_link_is_valid_until_it_expires_then_expired() -> None:
    path, expires, signature = _parts(
        signed_url("http://x", "k", "/exports/7/download", NOW + timedelta(days=7))
    )
    assert path == "/exports/7/download"
    assert check_link("k", path, expires, signature, NOW) is LinkCheck.VALID
    assert check_link("k", path, expires, signature, NOW + timedelta(days=8)) is LinkCheck.EXPIRED


def test_tampered_or_foreign_links_are_invalid() -> None:
    path, expires, signature = _parts(
        signed_url("http://x", "k", "/exports/7/download", NOW + timedelta(days=1))
    )
    assert check_link("k", "/exports/8/download", expires, signature, NOW) is LinkCheck.INVALID
    assert check_link("k", path, str(int(expires) + 60), signature, NOW) is LinkCheck.INVALID
    assert check_link("other", path, expires, signature, NOW) is LinkCheck.INVALID
    assert check_link("k", path, None, signature, NOW) is LinkCheck.INVALID
    assert check_link("k", path, "soon", signature, NOW) is LinkCheck.INVALID
    assert check_link("k", path, expires, None, NOW) is LinkCheck.INVALID
