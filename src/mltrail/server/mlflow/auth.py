"""The MLflow surface's token check, in the handler's own worker thread.

:class:`~mltrail.server.mlflow.errors.MlflowRoute` wraps every handler in
:func:`~mltrail.server.deps.authenticating`, which checks the token first thing in the
handler's thread and hands the handler the store as the token's user sees it (the dependency
itself only takes the request and its bearer credentials). A bad token is still answered 401
before any field is read.
"""

from __future__ import annotations

from mltrail.server.deps import PendingStoreDep

StoreDep = PendingStoreDep
"""What a handler declares: it receives the store as the token's user sees it."""
