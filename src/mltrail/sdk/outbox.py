"""What one drain of the writer sends, in order: metric batches, log batches, weights links.

Each item pairs a batch with the encoder that spools it (:mod:`mltrail.sdk.records`) and the
store call that delivers it, so the writer's thread sends, retries or spools every kind alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mltrail.core.types import LogBatch, LogLine, SeriesChunk
from mltrail.sdk.buffer import metric_batches
from mltrail.sdk.records import encode_link, encode_logs, encode_metrics

if TYPE_CHECKING:
    from mltrail.store.base import Store

BATCH_LINES = 5_000

Link = tuple[str, int | None, int | None]  # weights hash, iteration, epoch
Item = tuple[Callable[[Any], dict], Any, Callable[..., Any]]  # encode, batch, store call


def build_outbox(
    store: Store,
    client_id: str,
    seq: itertools.count[int],
    chunks: list[SeriesChunk],
    lines: Sequence[LogLine],
    links: Sequence[Link],
    batch_points: int,
) -> list[Item]:
    """The items of one drain; ``seq`` numbers the batches (a retried one is stored once)."""
    outbox: list[Item] = [
        (encode_metrics, batch, store.append_points)
        for batch in metric_batches(client_id, seq, chunks, batch_points)
    ]
    for start in range(0, len(lines), BATCH_LINES):
        log_batch = LogBatch(client_id, next(seq), tuple(lines[start : start + BATCH_LINES]))
        outbox.append((encode_logs, log_batch, store.append_logs))
    for weights_hash, iteration, epoch in links:
        outbox.append(_link_item(store, weights_hash, iteration, epoch))
    return outbox


def _link_item(store: Store, weights_hash: str, iteration: int | None, epoch: int | None) -> Item:
    def call(p: int, e: int, _: Any) -> Any:
        return store.link_weights_hash(p, e, weights_hash, iteration=iteration, epoch=epoch)

    return (lambda _: encode_link(weights_hash, iteration, epoch), None, call)
