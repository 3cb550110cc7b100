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
    """The items of one drain; ``seq`` numbers the batches (a retried one is stored once).
    ``chunks`` are joined into one per series first (:func:`merge_series`)."""
    batches = metric_batches(client_id, seq, merge_series(chunks), batch_points)
    packer = Packer(batches) if len(batches) > 1 else None
    outbox: list[Item] = [
        (encode_metrics, batch, store.append_points if packer is None else packer.sender(store, i))
        for i, batch in enumerate(batches)
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


class Packer:
    """Packs a drain's metric batches as stored (:func:`~mltrail.core.chunk_codec.pack_chunks`),
    in order, on a thread of its own: batch k+1 is packed while batch k is on its way (zlib and
    numpy release the GIL), and the store keeps the bytes instead of packing the columns."""

    def __init__(self, batches: Sequence[MetricBatch]) -> None:
        self._batches = batches
        self._packed: list[MetricBatch | None] = [None] * len(batches)
        self._ready = [threading.Event() for _ in batches]
        threading.Thread(target=self._pack_all, name="mltrail-packer", daemon=True).start()

    def _pack_all(self) -> None:
        for i, batch in enumerate(self._batches):
            try:
                chunks = tuple(pack_chunks(batch.chunks))
                self._packed[i] = MetricBatch(batch.client_id, batch.seq, chunks)
            except Exception:  # the batch goes as it is, packed by its store call
                pass
            finally:
                self._ready[i].set()

    def sender(self, store: Store, index: int) -> Callable[[int, int, MetricBatch], int]:
        """The store call of batch ``index``: the packed batch once packed (the same points)."""

        def send(project_id: int, experiment_id: int, batch: MetricBatch) -> int:
            self._ready[index].wait()
            return store.append_points(project_id, experiment_id, self._packed[index] or batch)

        return send
