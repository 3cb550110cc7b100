"""What one drain of the writer sends, in order: metric batches, log batches, weights links.

Each item pairs a batch with the encoder that spools it (:mod:`mltrail.sdk.records`) and the
store call that delivers it, so the writer's thread sends, retries or spools every kind alike.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mltrail.core.chunk_codec import pack_chunks
from mltrail.core.types import LogBatch, LogLine, MetricBatch, SeriesChunk
from mltrail.sdk.buffer import merge_series, metric_batches
from mltrail.sdk.records import encode_link, encode_logs, encode_metrics

if TYPE_CHECKING:
    from mltrail.sdk.priority import WriterPriority
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
    priority: WriterPriority | None = None,
) -> list[Item]:
    """The items of one drain; ``seq`` numbers the batches (a retried one is stored once).
    ``chunks`` are joined into one per series first (:func:`merge_series`).

    The metric batches are packed as stored when there are several or a lone one has at
    least :data:`PACK_AHEAD_POINTS` (the store keeps the bytes instead of packing the
    columns): the first by the caller, holding its writer's priority (the drain,
    :meth:`Writer._cut`), the others by a :class:`Packer` thread while the drain sends the
    ones before (zlib and numpy release the GIL: one drain of 1M points was 8-10% slower
    packed in turn). The drain waits for a batch's packing with :func:`ready` before its
    store call, so that wait never reads as a stalled store. ``priority`` is the writer's
    when the caller got it, None when it waited for a leaked hold in vain: the packer then
    packs without it rather than wait all over again. A smaller lone batch is left to its store
    call: an embedded store keeps small chunks undeflated for its compaction.
    """
    batches = metric_batches(client_id, seq, merge_series(chunks), batch_points)
    items: list[Any] = list(batches)
    if len(batches) > 1 or (batches and batches[0].point_count >= PACK_AHEAD_POINTS):
        items[0] = _packed(batches[0])
        if len(batches) > 1:
            items[1:] = Packer(batches[1:], priority).pending
    outbox: list[Item] = [(encode_metrics, item, store.append_points) for item in items]
    for start in range(0, len(lines), BATCH_LINES):
        log_batch = LogBatch(client_id, next(seq), tuple(lines[start : start + BATCH_LINES]))
        outbox.append((encode_logs, log_batch, store.append_logs))
    for weights_hash, iteration, epoch in links:
        outbox.append(_link_item(store, weights_hash, iteration, epoch))
    return outbox


def full_batches(
    chunks: list[SeriesChunk], batch_points: int
) -> tuple[list[SeriesChunk], list[SeriesChunk]]:
    """``chunks`` cut in two: those of the whole batches they fill, and the last batch's when
    it would not be full (else nothing). A drain woken by ``batch_points`` points that took
    a few more held them back for the next drain instead of sending a small batch: a server
    spends on each chunk of a batch about as much as on thousands of its points, and merges
    small chunks again later (the bench's ingest, 1 or 4 runs: about 10% less server CPU a
    point once every batch but a run's last was full)."""
    batches = metric_batches("", itertools.count(), merge_series(chunks), batch_points)
    if len(batches) < 2 or batches[-1].point_count >= batch_points:
        return chunks, []
    return [c for b in batches[:-1] for c in b.chunks], list(batches[-1].chunks)


def _link_item(store: Store, weights_hash: str, iteration: int | None, epoch: int | None) -> Item:
    def call(p: int, e: int, _: Any) -> Any:
        return store.link_weights_hash(p, e, weights_hash, iteration=iteration, epoch=epoch)

    return (lambda _: encode_link(weights_hash, iteration, epoch), None, call)


class PackedLater:
    """A metric batch a :class:`Packer` is packing; :func:`ready` waits for it."""

    def __init__(self, batch: MetricBatch) -> None:
        self.batch = batch
        self.done = threading.Event()


def ready(item: Any) -> Any:
    """An outbox item's batch as sent: a :class:`PackedLater` once packed (a packing that
    failed leaves the batch as it was), anything else as it is."""
    if isinstance(item, PackedLater):
        item.done.wait()
        return item.batch
    return item


class Packer:
    """Packs metric batches in order on a thread of its own, each with ``priority`` held
    (logging threads give way), without it when None."""

    def __init__(self, batches: Sequence[MetricBatch], priority: WriterPriority | None) -> None:
        self.pending = [PackedLater(batch) for batch in batches]
        self._priority = priority
        try:
            threading.Thread(target=self._pack_all, name="mltrail-packer", daemon=True).start()
        except RuntimeError:  # no thread to be had (a thread limit): each is sent as it is
            for item in self.pending:  # and packed by its store call, as a failed packing is
                item.done.set()

    def _pack_all(self) -> None:
        for item in self.pending:
            try:
                if self._priority is None:
                    item.batch = _packed(item.batch)
                    continue
                with self._priority.hold() as held:
                    item.batch = _packed(item.batch)
                if not held:  # a leaked hold is waited for once, not once per batch
                    self._priority = None
            finally:
                item.done.set()


def _packed(batch: MetricBatch) -> MetricBatch:
    """The batch with its chunks packed as stored; as it is if packing fails (its store call
    packs it then)."""
    try:
        return MetricBatch(batch.client_id, batch.seq, tuple(pack_chunks(batch.chunks)))
    except Exception:
        return batch
