"""Dispute evidence downloads: ``GET /disputes/evidence/{attachmentId}/{audience}?expires=…&signature=…``.

The links are minted by the GraphQL ``DisputeAttachment.url`` field, only for a viewer who may see the
dispute, and name that viewer (``shop-<id>``, ``supplier-<id>`` or ``admin``). This route checks the signature
and the expiry, then checks again that the viewer named is still the dispute's shop or its supplier. The file
is sent as an attachment with its checked content type, never sniffed or run by the browser.
"""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from config.settings import Settings
from db.engine import Database
from db.models import Dispute, DisputeAttachment, SupplierOrder
from db.types import utcnow
from domain.evidence import EvidenceStore, evidence_path
from domain.links import LinkCheck, check_link


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _is_party(audience: str, shop_id: int, supplier_id: int) -> bool:
    if audience == "admin":
        return True
    kind, _, raw = audience.partition("-")
    if not raw.isdigit():
        return False
    if kind == "shop":
        return int(raw) == shop_id
    if kind == "supplier":
        return int(raw) == supplier_id
    return False


async def serve_evidence(request: Request) -> Response:
    database: Database = request.app.state.database
    settings: Settings = request.app.state.settings
    raw_id, audience = request.path_params["attachment_id"], request.path_params["audience"]
    if not raw_id.isdigit() or len(raw_id) > 18:
        return _error(404, "NOT_FOUND", "no such evidence")
    path = evidence_path(int(raw_id), audience)
    verdict = check_link(
        settings.secret_key,
        path,
        request.query_params.get("expires"),
        request.query_params.get("signature"),
        utcnow(),
    )
    if verdict is LinkCheck.INVALID:
        return _error(403, "INVALID_LINK", "the link is not valid")
    if verdict is LinkCheck.EXPIRED:
        return _error(410, "LINK_EXPIRED", "the link has expired; ask the API for a fresh one")
    async with database.read() as session:
        row = (
            await session.execute(
                select(DisputeAttachment, SupplierOrder.supplier_id)
                .join(Dispute, Dispute.id == DisputeAttachment.dispute_id)
                .join(SupplierOrder, SupplierOrder.id == Dispute.supplier_order_id)
                .where(DisputeAttachment.id == int(raw_id))
            )
        ).first()
    if row is None:
        return _error(404, "NOT_FOUND", "no such evidence")
    attachment, supplier_id = row
    if attachment.storage_key is None or not _is_party(audience, attachment.shop_id, supplier_id):
        return _error(404, "NOT_FOUND", "no such evidence")
    file = EvidenceStore(settings.evidence_path).path(attachment.storage_key)
    if not file.is_file():
        return _error(404, "NOT_FOUND", "the file is no longer stored")
    return FileResponse(
        file,
        media_type=attachment.content_type or "application/octet-stream",
        filename=attachment.filename or f"evidence-{attachment.id}",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )
