"""Recording a run's final status, through the spool when the store is unreachable."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from mltrail.core.errors import TransportError
from mltrail.core.types import Status
from mltrail.sdk.records import encode_status
from mltrail.sdk.spool import is_transient

if TYPE_CHECKING:
    from mltrail.sdk.writer import Writer


def record_final_status(writer: Writer, status: Status) -> None:
    """Record ``status`` on the writer's experiment; spool it when the store is unreachable
    (``mltrail sync`` or the next run sends it). Warns, never raises, when neither works."""
    try:
        ref = writer.address.ref
        if ref is None:  # started offline, never numbered: the status waits in the spool
            raise TransportError("the run started offline has no number yet")
        writer.store.record_status(*ref, status)
    except Exception as exc:
        if not is_transient(exc):
            warnings.warn(
                f"mltrail: could not record status {status.value}: {exc}",
                RuntimeWarning,
                stacklevel=4,
            )
            return
        try:
            writer.spool.write(writer.address, writer.client_id, encode_status(status))
        except OSError as error:  # full or unwritable spool: say so, never fail the run
            warnings.warn(
                f"mltrail: could not record status {status.value} (store unreachable: {exc}) "
                f"nor spool it ({error})",
                RuntimeWarning,
                stacklevel=4,
            )
