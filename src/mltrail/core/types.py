"""Domain types shared by every layer: frozen dataclasses and enums, no I/O.

Values that arrive from users (ex_ metrics, weights hashes, charts, experiment references) have
types of their own, made by the parse constructors of :mod:`mltrail.core.validation`: a value of
such a type has been checked once, and every layer below the entrance trusts it.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

import numpy as np

JsonScalar = str | int | float | bool


class Status(str, enum.Enum):
    """Lifecycle of an experiment."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"
    CRASHED = "crashed"  # running, but its heartbeats stopped (see core/liveness.py)

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({Status.DONE, Status.FAILED, Status.STOPPED, Status.CRASHED})


class Phase(str, enum.Enum):
    """Which part of training a metric point belongs to."""

    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"


class ChartScope(str, enum.Enum):
    TEST = "test"
    VALIDATION = "validation"
    TRAIN = "train"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Project:
    id: int
    display_name: str
    description: str
    created_at: float
    experiment_count: int = 0
    last_activity: float | None = None
    deleted_at: float | None = None  # set while the project is deleted (restorable)


@dataclass(frozen=True)
class Invitation:
    """A membership offered to the store's user and not yet accepted.

    Attributes:
        project_id / display_name: the project offered.
        invited_by: the name of the member who offered it (``None`` when that user is gone).
        created_at: when it was offered.
    """

    project_id: int
    display_name: str
    invited_by: str | None
    created_at: float


@dataclass(frozen=True)
class ExperimentRef:
    """The public address of an experiment: project id and per-project number."""

    project_id: int
    experiment_id: int


class WeightsHash(str):
    """A checked weights hash: 40 lower-case hexadecimal digits (``validation.weights_hash``)."""

    __slots__ = ()


Target: TypeAlias = "ExperimentRef | WeightsHash"
"""What a multi-target write names: one experiment, or every experiment holding a hash."""


class ExMetrics(Mapping[str, "JsonScalar"]):
    """Checked external metrics: ``ex_``-prefixed keys to str, int, float or bool values.

    Immutable; made by ``validation.ex_metrics``, which is the only place their rules run.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, JsonScalar]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> JsonScalar:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"ExMetrics({self._values!r})"


SYSTEM_PREFIX = "system/"  # keys of the system-metrics series (CPU, memory, disk, network, GPU)


def is_system_metric(name: str) -> bool:
    """Whether a key (``system/cpu/percent``) or a series name (``train/system/...``) is one
    of the sampled system metrics."""
    return name.startswith(SYSTEM_PREFIX) or name.partition("/")[2].startswith(SYSTEM_PREFIX)


@dataclass(frozen=True)
class MetricSummary:
    """Running summary of one series, kept up to date on ingest."""

    key: str
    phase: str
    count: int
    last: float
    min: float
    max: float
    last_iteration: int
    last_epoch: int | None

    @property
    def name(self) -> str:
        """Column name used in lists and tables: ``train/loss``."""
        return f"{self.phase}/{self.key}"


_Frozen = TypeVar("_Frozen")


def assemble(cls: type[_Frozen], fields: dict[str, Any]) -> _Frozen:
    """An instance of the frozen dataclass ``cls`` holding ``fields`` (each of its fields, by
    name), equal to ``cls(**fields)`` but made with the fields set at once: a frozen
    ``__init__`` sets each through ``object.__setattr__``, which for 1,000 experiments of a
    list cost more than reading their rows. For values a store or the wire decoder already
    holds as typed values (``__init__`` checks nothing either)."""
    made = object.__new__(cls)
    made.__dict__.update(fields)
    return made


@dataclass(frozen=True)
class Experiment:
    project_id: int
    experiment_id: int
    display_name: str
    description: str
    status: Status
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    ex_metrics: dict[str, JsonScalar] = field(default_factory=dict)
    stop_requested: bool = False
    last_heartbeat: float | None = None
    notes: str = ""  # markdown
    state: str = "active"  # core.lifecycle.Lifecycle: active, archived or deleted
    deleted_at: float | None = None  # when it went to the trash

    @property
    def ref(self) -> ExperimentRef:
        return ExperimentRef(self.project_id, self.experiment_id)

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or self.started_at) - self.started_at


@dataclass(frozen=True)
class Page:
    """One page of a listing plus the total, so callers can page to the end."""

    items: tuple[Any, ...]
    total: int
    offset: int
    total_exact: bool = True  # False: a filtered search stopped counting; total is a lower bound


@dataclass(frozen=True, eq=False)
class SeriesChunk:
    """Columnar points of one series (key, phase), as the SDK batches them.

    ``epochs`` uses -1 for "no epoch"; ``times`` are unix seconds. ``packed``, when set, is
    these columns as stored (:func:`mltrail.core.chunk_codec.pack_chunks`, or the bytes a chunk
    was unpacked from): a store keeps it instead of packing the columns again.
    """

    key: str
    phase: str
    iterations: np.ndarray  # int64
    epochs: np.ndarray  # int64, -1 = none
    values: np.ndarray  # float64, NaN and infinities allowed
    times: np.ndarray  # float64
    packed: bytes | None = None

    def __len__(self) -> int:
        return int(self.iterations.shape[0])


# Chunks (series pieces) one batch may hold, each of at least one point. The SDK sends one
# chunk per series logged since the last flush and splits a flush above this; the cap bounds
# what a server spends decoding one body (a header of empty chunks cost seconds of CPU).
MAX_BATCH_CHUNKS = 10_000


@dataclass(frozen=True)
class MetricBatch:
    """What one SDK flush sends. (client_id, seq) makes a retried batch land once; it holds at
    most :data:`MAX_BATCH_CHUNKS` chunks, none empty. ``client_id=None``: a batch nobody will
    send again under the same id (an MLflow request: its client does not number its retries),
    stored without a receipt; the REST surface requires an id."""

    client_id: str | None
    seq: int
    chunks: tuple[SeriesChunk, ...]

    @property
    def point_count(self) -> int:
        return sum(len(c) for c in self.chunks)


@dataclass(frozen=True, eq=False)
class Series:
    """A series as read for a chart or an export.

    ``downsampled`` tells whether min/max bucketing was applied; ``total`` is the number of
    stored points, whatever was returned. ``times`` (unix seconds, kept to the millisecond;
    NaN where unknown) is None unless the read asked for wall-clock times.
    """

    key: str
    phase: str
    iterations: np.ndarray
    epochs: np.ndarray
    values: np.ndarray
    total: int
    downsampled: bool
    times: np.ndarray | None = None


@dataclass(frozen=True)
class SeriesQuery:
    """One entry of a batched series read: a series (``key``; ``phase`` "train" when None),
    or every series of the experiment (``key`` None; of one phase when ``phase`` is given)."""

    project_id: int
    experiment_id: int
    key: str | None = None
    phase: str | None = None


@dataclass(frozen=True)
class SeriesAnswer:
    """One series of a batched read, or why an entry found none: ``error`` is the error's
    kind (``not_found``, ``permission_denied``) and ``message`` says what was missing."""

    project_id: int
    experiment_id: int
    key: str | None
    phase: str | None
    series: Series | None = None
    error: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class WeightsLink:
    """Which point of which experiment produced a weights hash; ``checkpoint`` is the path of
    the experiment's stored checkpoint artifact holding those weights, when one was logged."""

    weights_hash: str
    project_id: int
    experiment_id: int
    iteration: int | None
    epoch: int | None
    created_at: float
    checkpoint: str | None = None


@dataclass(frozen=True)
class IterationMetric:
    """An external metric attached to an (experiment, iteration, epoch) through a hash."""

    key: str
    iteration: int | None
    epoch: int | None
    value: JsonScalar
    weights_hash: str


@dataclass(frozen=True)
class ChartSpec:
    """A validated custom chart. ``y`` rows have one value (single line) or n (multi-line)."""

    name: str
    scope: str
    type: str
    x_name: str
    y_names: tuple[str, ...]
    x: tuple[JsonScalar, ...]
    y: tuple[tuple[float, ...], ...]

    @property
    def chart_id(self) -> str:
        return chart_id(self.name)


def chart_id(name: str) -> str:
    """A chart's id: sha256 of its lower-cased, stripped name."""
    return hashlib.sha256(name.strip().lower().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Chart:
    chart_id: str
    project_id: int
    experiment_id: int
    spec: ChartSpec
    updated_at: float


@dataclass(frozen=True)
class LogLine:
    """One captured line. ``seq`` is assigned by the store, in arrival order."""

    time: float
    stream: str
    level: str
    message: str
    seq: int = 0


@dataclass(frozen=True)
class LogPage:
    """Consecutive log lines as columns, oldest first: what an export of millions of lines
    reads and prints without making an object per line (``lines()`` makes them)."""

    times: Sequence[float]
    streams: Sequence[str]
    levels: Sequence[str]
    messages: Sequence[str]
    seqs: Sequence[int]

    def __len__(self) -> int:
        return len(self.seqs)

    def lines(self) -> list[LogLine]:
        """The page's lines as :class:`LogLine` values, each made as the frozen dataclass's
        ``__init__`` makes it but with its fields set in the instance's ``__dict__`` at once:
        ``__init__``'s ``object.__setattr__`` per field was a fifth of the time of
        ``experiments logs`` of a million lines."""
        new = object.__new__
        lines: list[LogLine] = []
        append = lines.append
        columns = (self.times, self.streams, self.levels, self.messages, self.seqs)
        for time, stream, level, message, seq in zip(*columns, strict=True):
            line = new(LogLine)
            fields = line.__dict__
            fields["time"], fields["stream"], fields["level"] = time, stream, level
            fields["message"], fields["seq"] = message, seq
            append(line)
        return lines

    @classmethod
    def of_lines(cls, lines: Sequence[LogLine]) -> LogPage:
        """The columns of ``lines``."""
        return cls(
            [x.time for x in lines],
            [x.stream for x in lines],
            [x.level for x in lines],
            [x.message for x in lines],
            [x.seq for x in lines],
        )


@dataclass(frozen=True)
class LogTail:
    """A read of an experiment's log lines together with its status, taken so that an empty
    read of an ended experiment means no line will follow (the status is read first).

    Attributes:
        lines: lines after the ``after_seq`` asked for, oldest first.
        status: the experiment's status, read before the lines.
        last_seq: the last line's seq, or the ``after_seq`` asked for when there is none.
        last_heartbeat: when the run last said it was alive (what a crashed run's follower
            reports), ``None`` when it never did.
    """

    lines: tuple[LogLine, ...]
    status: Status
    last_seq: int
    last_heartbeat: float | None = None

    @property
    def ended(self) -> bool:
        """Whether a follower is done: the run had ended and no line was left to read."""
        return not self.lines and Status(self.status).is_final


@dataclass(frozen=True)
class LogBatch:
    client_id: str
    seq: int
    lines: tuple[LogLine, ...]


@dataclass(frozen=True)
class User:
    id: int
    name: str
    is_admin: bool


LOCAL_USER = User(id=0, name="local", is_admin=True)
"""The single user of the embedded store (and of the server's ``require_auth=False`` UI)."""


@dataclass(frozen=True)
class IssuedToken:
    """An API token as the server's database keeps it (never the token itself).

    Attributes:
        id: its row id (tokens the server derives from it name it).
        sha256: the hex digest stored in place of the token.
        user: whom it was issued to.
    """

    id: int
    sha256: str
    user: User


@dataclass(frozen=True)
class JobGrant:
    """What a job's own token may touch: its project (reads) and its experiment (writes).

    Attributes:
        job_id: the job the token was minted for, at its claim.
        project_id: the job's project; nothing outside it is visible.
        experiment_id: the job's experiment (its public number); the only one it may write.
    """

    job_id: int
    project_id: int
    experiment_id: int


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: a user, and the job grant when the token is a job's own."""

    user: User
    grant: JobGrant | None = None
