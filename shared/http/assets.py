"""The files a service's own pages load (their scripts and styles, vendored libraries among them), each
reachable by a name the page's module lists; nothing else of the disk is served."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse

from shared.errors import NotFound

CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
HEADERS = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}


def asset_response(assets: dict[str, Path], name: str, what: str) -> FileResponse:
    """``assets[name]`` with its content type; a 404 naming ``what`` for a name not listed, and one saying
    how to vendor it for a listed file that is not there."""
    path = assets.get(name)
    if path is None:
        raise NotFound(f"No {what} asset '{name}'.")
    if not path.exists():
        raise NotFound(f"'{name}' is not vendored here; `make install` (deploy/local/vendor_assets.py) fetches it.")
    return FileResponse(path, media_type=CONTENT_TYPES[path.suffix], headers=HEADERS)
