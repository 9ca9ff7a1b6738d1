"""``GET /exports/{id}/download``: streams an export's file to whoever holds its signed, unexpired link."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from db.engine import Database
from db.types import utcnow
from domain import exports as export_cases
from domain.links import LinkCheck, check_link


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def download_export(request: Request) -> Response:
    database: Database = request.app.state.database
    settings = request.app.state.settings
    raw_id = request.path_params["export_id"]
    if not raw_id.isdigit() or len(raw_id) > 18:
        return _error(404, "no such export")
    export_id = int(raw_id)
    # The signature covers the path, so a link made for one export cannot open another.
    verdict = check_link(
        settings.secret_key,
        export_cases.download_path(export_id),
        request.query_params.get("expires"),
        request.query_params.get("signature"),
        utcnow(),
    )
    if verdict is LinkCheck.INVALID:
        return _error(403, "this download link is not valid")
    if verdict is LinkCheck.EXPIRED:
        return _error(410, "this download link has expired; ask for the export again")
    async with database.read() as session:
        download = await export_cases.find_download(session, settings, export_id)
        expired = download is None and await export_cases.is_expired(session, export_id)
    if expired:
        return _error(410, "this export has expired and its file was deleted; ask for the export again")
    if download is None:
        return _error(404, "no such export")
    return FileResponse(
        download.path,
        media_type=download.content_type,
        filename=download.filename,
        headers={"Cache-Control": "private, no-store"},
    )
