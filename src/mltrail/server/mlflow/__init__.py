"""The MLflow tracking REST API, under ``/api/2.0/mlflow`` and ``/ajax-api/2.0/mlflow``.

A thin translation of the MLflow client's tracking calls onto the same parse constructors and
Store calls as ``/api/v1``, with mltrail's tokens (``MLFLOW_TRACKING_TOKEN``) and project
membership; run artifacts through the ``mlflow-artifacts`` proxy endpoints. ``docs/mlflow.md``
has the mapping and lists what is not served.
"""

from __future__ import annotations

import re

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACT_PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")

# The routes themselves are in ``routers.py``: the app mounts them on the first MLflow request
# (``server/app.py``), so a server only the mltrail SDK talks to never imports them.
_UPLOAD_PATH = re.compile(r"^/(?:ajax-)?api/2\.0/mlflow-artifacts/artifacts/.")


def is_upload(method: str, path: str) -> bool:
    """Whether a request is an MLflow artifact upload (streamed, not under the body limit)."""
    return method == "PUT" and _UPLOAD_PATH.match(path) is not None
