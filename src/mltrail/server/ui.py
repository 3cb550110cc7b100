"""The web UI's static files: ``/`` and every view path answer ``index.html``, assets live
under ``/ui/``. Every UI response carries a strict Content-Security-Policy (no inline script
or style, nothing from other origins), so user text shown by the UI can never run.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",  # artifact previews: images fetched with the token
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


MAX_ASSET_PATH = 255  # the UI's own file names are short; anything longer is a 404

ui_router = APIRouter(include_in_schema=False)


def _file_response(path: Path) -> FileResponse:
    media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
    return FileResponse(path, media_type=media_type, headers=SECURITY_HEADERS)


def resolve_asset(relative: str) -> Path | None:
    """The file under ``UI_DIR`` for a URL path, or None (missing, or outside the folder).

    Args:
        relative: the part of the URL after ``/ui/``.
    """
    if len(relative) > MAX_ASSET_PATH or "\x00" in relative:
        return None  # no UI file has such a name; resolving it would fail (NUL, too long)
    try:
        candidate = (UI_DIR / relative).resolve()
        if not candidate.is_relative_to(UI_DIR) or not candidate.is_file():
            return None
    except (OSError, ValueError, RuntimeError):  # name too long, symlink loop
        return None
    return candidate


@ui_router.get("/ui/{asset:path}")
def ui_asset(asset: str) -> FileResponse:
    """A static file of the UI (JavaScript module, stylesheet, vendored uPlot, icon)."""
    path = resolve_asset(asset)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no UI file {asset!r}")
    return _file_response(path)


@ui_router.get("/")
def ui_index() -> FileResponse:
    """The single-page app; views are hash routes such as ``/#/projects/3/experiments/5``."""
    return _file_response(UI_DIR / "index.html")


@ui_router.get("/{view:path}")
def ui_view(view: str) -> FileResponse:
    """Real paths (``/projects/3/experiments/5``) get the app too; it routes them itself.

    Registered after the API, so it only sees paths no API route matched; those under
    ``/api`` stay JSON 404s.
    """
    if view in ("api", "healthz") or view.startswith("api/"):
        raise HTTPException(status_code=404, detail=f"no route /{view}")
    return _file_response(UI_DIR / "index.html")
