"""Dispute evidence: what a file is (by its first bytes, never by its name), and where it is kept.

Files are stored by the SHA-256 of their content, so the same picture sent twice is kept once, and a file
written by a transaction that later rolls back is an unreferenced copy that harms nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# Brands in the ISO base media file header (bytes 8-12) of the video and image formats phones produce.
_ISO_BRANDS = {
    b"qt  ": "video/quicktime",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"avif": "image/avif",
}
_ISO_VIDEO_BRANDS = (b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"dash")


def sniff(data: bytes) -> str | None:
    """The image or video content type the bytes start with, or None when they are neither."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "video/x-msvideo"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _ISO_BRANDS:
            return _ISO_BRANDS[brand]
        if brand in _ISO_VIDEO_BRANDS:
            return "video/mp4"
        if brand.startswith(b"3g"):
            return "video/3gpp"
    return None


def is_media(content_type: str | None) -> bool:
    return content_type is not None and content_type.split("/")[0] in {"image", "video"}


def url_content_type(url: str) -> str | None:
    """What a URL's file name says it is; the content itself is never fetched (no requests on a user's say)."""
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    return guessed


@dataclass(frozen=True)
class EvidenceFile:
    """An uploaded file as received: its name as the client gave it, and its bytes."""

    filename: str | None
    data: bytes


class EvidenceStore:
    """Files under one directory, named by the SHA-256 of their content."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError("not a storage key")
        return self.directory / key[:2] / key

    async def put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write, key, data)
        return key

    def _write(self, key: str, data: bytes) -> None:
        target = self.path(key)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written aside then renamed, so a reader never sees half a file.
        temporary = target.with_name(f"{key}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        temporary.replace(target)


# --- links --------------------------------------------------------------------------------------------

EVIDENCE_ROUTE = "/disputes/evidence"


def audience_of(kind: str, shop_id: int | None, supplier_id: int | None) -> str:
    """Who a link is minted for: the shop, the supplier, or the platform; the route checks it again."""
    if kind == "SUPPLIER":
        return f"supplier-{supplier_id}"
    if kind == "ADMIN":
        return "admin"
    return f"shop-{shop_id}"


def evidence_path(attachment_id: int, audience: str) -> str:
    return f"{EVIDENCE_ROUTE}/{attachment_id}/{audience}"
