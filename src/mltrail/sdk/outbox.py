"""What one drain of the writer sends, in order: metric batches, log batches, weights links.

Each item pairs a batch with the encoder that spools it (:mod:`mltrail.sdk.records`) and the
store call that delivers it, so the writer's thread sends, retries or spools every kind alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mltrail.core.chunk_codec import pack_chunks
from mltrail.core.types import LogBatch, LogLine, MetricBatch, SeriesChunk
from mltrail.sdk.buffer import merge_series, metric_batches
from mltrail.sdk.records import encode_link, encode_logs, encode_metrics

if TYPE_CHECKING:
    from mltrail.store.base import Store

BATCH_LINES = 5_000
PACK_AHEAD_POINTS = 4_096  # a lone batch this large is packed by the drain (see build_outbox)

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
    """The items of one drain; ``seq`` numbers the batches (a retried one is stored once).
    ``chunks`` are joined into one per series first (:func:`merge_series`).

    The metric batches are packed as stored here, by the caller holding its writer's priority
    (the drain, :meth:`Writer._cut`: a hold taken here as well would wait for a leaked one
    all over again), when there are several or a lone one has at least
    :data:`PACK_AHEAD_POINTS`: so the store keeps the bytes instead of packing the columns,
    and the packing waits neither for the GIL behind every logging thread (as in its store
    call, once per chunk) nor for another thread (a packer thread of its own waited for the
    GIL and for logging threads' compactions, up to 0.76 s behind 8 logging threads, and
    that wait read as a stalled store: the drain's batches went to the spool). A smaller
    lone batch is left to its store call: an embedded store keeps small chunks undeflated
    for its compaction.
    """
    batches = metric_batches(client_id, seq, merge_series(chunks), batch_points)
    if len(batches) > 1 or (batches and batches[0].point_count >= PACK_AHEAD_POINTS):
        batches = [_packed(batch) for batch in batches]
    outbox: list[Item] = [(encode_metrics, batch, store.append_points) for batch in batches]
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


def _packed(batch: MetricBatch) -> MetricBatch:
    """The batch with its chunks packed as stored; as it is if packing fails (its store call
    packs it then)."""
    try:
        return MetricBatch(batch.client_id, batch.seq, tuple(pack_chunks(batch.chunks)))
    except Exception:
        return batch
