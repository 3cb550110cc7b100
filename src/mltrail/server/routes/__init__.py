"""One router module per resource under ``/api/v1``."""

from __future__ import annotations

import re

# The routes themselves are in the modules beside this one: the app includes them on the first
# /api/v1 request (``server/app.py``), so a server only MLflow clients talk to never imports them.
_UPLOAD_PATH = re.compile(r"^/api/v1/projects/[^/]+/experiments/[^/]+/artifacts/.")


def is_upload(method: str, path: str) -> bool:
    """Whether a request is an artifact upload, which the server's body limit leaves alone."""
    return method == "PUT" and _UPLOAD_PATH.match(path) is not None
