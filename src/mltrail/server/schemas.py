"""Request and response models of the REST API (they make the OpenAPI description).

Request models check shapes and types; the rules (lengths, phases, chart shapes ...) live once in
:mod:`mltrail.core.validation`, applied by the route (for the values it parses into checked
types) or the store. Non-finite floats travel as ``{"$float": "NaN" | "Infinity" | "-Infinity"}``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from mltrail.core.types import MAX_BATCH_CHUNKS, Status


class FloatTag(BaseModel):
    """A non-finite float: ``Number(v.$float)`` in JavaScript."""

    model_config = ConfigDict(populate_by_name=True)
    float_: Literal["NaN", "Infinity", "-Infinity"] = Field(alias="$float")


Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
WireFloat = float | FloatTag
WireScalar = bool | int | float | str | FloatTag
_ESCAPED = (
    "true: message is escaped because the text holds NUL or invalid UTF-8: \\\\ is a "
    "backslash, \\0 NUL, \\xHH the invalid byte HH, \\uHHHH a lone surrogate (docs/rest.md)"
)


class ErrorDetail(BaseModel):
    type: str
    field: str | None = None
    message: str


class ErrorBody(BaseModel):
    """Every error the API answers with."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (401, "missing or unknown token"),
        (403, "not a member of the project"),
        (404, "no such object"),
        (409, "conflicts with the current state"),
        (413, "request body over the limit"),
        (422, "invalid input; `error.field` names the field"),
    )
}


# --- responses --------------------------------------------------------------------------------
class UserOut(BaseModel):
    id: int
    name: str
    is_admin: bool


class ProjectOut(BaseModel):
    id: int
    display_name: str
    description: str
    created_at: float
    experiment_count: int
    last_activity: float | None
    deleted_at: float | None = None


class ExperimentOut(BaseModel):
    project_id: int
    experiment_id: int
    display_name: str
    description: str
    status: Status
    created_at: float
    started_at: float | None
    ended_at: float | None
    duration: float | None
    hyperparameters: dict[str, Any]
    environment: dict[str, Any]
    source: dict[str, Any]
    tags: list[str]
    metrics: dict[str, WireFloat]
    ex_metrics: dict[str, WireScalar]
    stop_requested: bool
    last_heartbeat: float | None = Field(
        None, description="unix time the run last heartbeated; null: it never did"
    )
    notes: str = Field("", description="markdown")
    state: str = Field("active", description="active, archived or deleted (in the trash)")
    deleted_at: float | None = Field(None, description="unix time it went to the trash")


class LivenessOut(BaseModel):
    status: Status = Field(description="the stored status after the heartbeat")
    last_heartbeat: float
    crash_after: float = Field(description="seconds without a heartbeat before it reads crashed")


class ExperimentPage(BaseModel):
    items: list[ExperimentOut]
    total: int
    offset: int
    total_exact: bool = Field(
        True,
        description="false: a filtered search stopped counting 1,000 matches past the page; "
        "total is then a lower bound (still more than offset + len(items))",
    )


class SummaryOut(BaseModel):
    key: str
    phase: str
    count: int
    last: WireFloat
    min: WireFloat
    max: WireFloat
    last_iteration: int
    last_epoch: int | None


class SeriesOut(BaseModel):
    key: str
    phase: str
    total: int
    downsampled: bool
    iterations: list[int]
    epochs: list[int | None]
    values: list[WireFloat]
    times: list[float | None] | None = Field(
        None, description="with times=true: unix seconds per point, null where unknown"
    )


class SeriesPackedOut(BaseModel):
    """``format=packed``: columns as base64 of little-endian arrays, exact to the bit."""

    key: str
    phase: str
    total: int
    downsampled: bool
    n: int
    iterations: str = Field(description="base64 of <i8")
    epochs: str = Field(description="base64 of <i8, -1 = no epoch")
    values: str = Field(description="base64 of <f8")
    times: str | None = Field(None, description="with times=true: base64 of <f8 unix seconds")


class StoredOut(BaseModel):
    stored: int


class RemovedOut(BaseModel):
    removed: int


class TouchedOut(BaseModel):
    touched: int


class OkOut(BaseModel):
    ok: bool = True


class IdentityOut(BaseModel):
    store_id: str
    version: str


class RefOut(BaseModel):
    project: int
    experiment: int


class UpdatedOut(BaseModel):
    """The answer of a multi-target write: the experiments written."""

    ok: bool = True
    updated: list[RefOut]


class LinkOut(BaseModel):
    weights_hash: str
    project: int
    experiment: int
    iteration: int | None
    epoch: int | None
    created_at: float
    checkpoint: str | None = None


class ArtifactOut(BaseModel):
    """One file of an experiment's artifact tree."""

    project: int
    experiment: int
    path: str
    sha256: str
    size: int
    media_type: str
    created_at: float
    iteration: int | None
    epoch: int | None
    weights_hash: str | None


class GcOut(BaseModel):
    blobs: int
    bytes: int
    staging: int


class IterationMetricOut(BaseModel):
    key: str
    iteration: int | None
    epoch: int | None
    value: WireScalar
    weights_hash: str


class ChartSpecOut(BaseModel):
    name: str
    scope: str
    type: str
    x_name: str
    y_names: list[str]
    x: list[WireScalar]
    y: list[list[WireFloat]]


class ChartOut(BaseModel):
    chart_id: str
    project: int
    experiment: int
    updated_at: float
    spec: ChartSpecOut


class LogLineOut(BaseModel):
    seq: int
    time: float
    stream: str
    level: str
    message: str
    escaped: bool = Field(False, description=_ESCAPED)


class LogsOut(BaseModel):
    lines: list[LogLineOut]
    status: Status
    last_seq: int
    last_heartbeat: float | None = None


# --- requests ---------------------------------------------------------------------------------
class RequestModel(BaseModel):
    """A request body of /api/v1: a field it does not know is a 422 naming it, not dropped, so
    a client newer than the server learns its flag was not understood (the MLflow surface's
    models stay lenient: its clients send fields mltrail does not model)."""

    model_config = ConfigDict(extra="forbid")


_UNIQUE_NAME = "refuse (409) a name another of your projects has, deleted ones too"


class ProjectIn(RequestModel):
    display_name: str
    description: str = ""
    unique_name: bool = Field(False, description=_UNIQUE_NAME)


class ProjectPatch(RequestModel):
    display_name: str | None = None
    description: str | None = None
    unique_name: bool = Field(False, description=_UNIQUE_NAME)


class MemberIn(RequestModel):
    user_name: str = Field(min_length=1)


class ExperimentIn(RequestModel):
    client_id: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    display_name: str | None = None
    description: str = ""
    hyperparameters: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)
    status: Status = Status.RUNNING
    started_at: float | None = None  # unix seconds; an import's original times
    ended_at: float | None = None


class ExperimentPatch(RequestModel):
    status: Status | None = None
    display_name: str | None = None
    description: str | None = None
    hyperparameters: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    tags: list[str] | None = Field(None, description="replaces the tags")
    notes: str | None = Field(None, description="markdown")
    add_tags: list[str] | None = None
    remove_tags: list[str] | None = None
    resume: bool | None = Field(
        None,
        description="with status running or queued: resume the run, as POST .../resume does",
    )
    ended_at: float | None = Field(  # strict: true is not 1.0 s (the store refuses it too)
        None, strict=True, description="unix seconds: the end time a finished run records"
    )
    keep_hyperparameters: bool | None = Field(
        None,
        description="hyperparameters may only add keys: a key set to another value is a 422",
    )


class PurgeOut(BaseModel):
    project: int
    experiment: int
    blobs_removed: int = Field(description="artifact blobs no other experiment referenced")


class ChunkIn(RequestModel):
    """One series of a batch; columns are base64 of little-endian arrays."""

    key: str
    phase: str
    n: int = Field(ge=1, le=2**40, description="points in the chunk (an empty one is refused)")
    iterations: str = Field(description="base64 of <i8 (int64)")
    epochs: str = Field(description="base64 of <i8, -1 = no epoch")
    values: str = Field(description="base64 of <f8 (float64, NaN/inf allowed)")
    times: str = Field(description="base64 of <f8 unix seconds")


class PointsIn(RequestModel):
    client_id: str = Field(min_length=1, max_length=200)
    seq: int = Field(ge=0, le=2**63 - 1)
    chunks: list[ChunkIn] = Field(max_length=MAX_BATCH_CHUNKS)


class RewindIn(RequestModel):
    iteration: int = Field(ge=0, le=2**63 - 1, description="the last iteration kept")


class SeriesBatchIn(RequestModel):
    """A batched series read: every chart of a view in one request."""

    series: list[dict[str, Any]] = Field(
        description="entries {project, experiment, key?, phase?}: a series, or (no key) every "
        "series of the experiment (of phase, when given)"
    )
    max_points: int = Field(ge=2, le=1_000_000, description="per series, as series/read")
    start: Int64 | None = Field(None, description="first iteration to keep (inclusive)")
    end: Int64 | None = Field(None, description="last iteration to keep (inclusive)")
    times: bool = Field(False, description="add each point's wall-clock time (unix seconds)")
    format: Literal["json", "packed"] = "json"


class TargetIn(RequestModel):
    """One experiment (``project`` and ``experiment``; ``project_id`` / ``experiment_id`` are
    accepted too), or ``weights_hash``: every experiment holding it."""

    project: Id | None = Field(None, validation_alias=AliasChoices("project", "project_id"))
    experiment: Id | None = Field(
        None, validation_alias=AliasChoices("experiment", "experiment_id")
    )
    weights_hash: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> TargetIn:
        if self.weights_hash is None and (self.project is None or self.experiment is None):
            raise ValueError("give project and experiment, or weights_hash")
        return self


ExMetricsBody = Annotated[
    dict[str, Any] | str,
    Field(
        description="An object of ex_ metrics (non-finite floats tagged), or the contract's "
        "JSON text of one"
    ),
]


class ExternalMetricsIn(RequestModel):
    targets: list[TargetIn] = Field(min_length=1)
    metrics: ExMetricsBody


class WeightsLinkIn(RequestModel):
    weights_hash: str
    iteration: Int64 | None = None
    epoch: Int64 | None = None


class IterationMetricsIn(RequestModel):
    metrics: ExMetricsBody


class ChartSpecIn(RequestModel):
    name: str
    scope: str = "test"
    type: str = "line"
    x_name: str = "X"
    y_names: list[str] | str = "Y"
    x: list[Any]
    y: list[Any]


class ChartIn(RequestModel):
    targets: list[TargetIn] = Field(min_length=1)
    chart: ChartSpecIn


class LogLineIn(RequestModel):
    time: float
    stream: str
    level: str
    message: str
    escaped: bool = Field(False, description=_ESCAPED)


class LogsIn(RequestModel):
    client_id: str = Field(min_length=1, max_length=200)
    seq: int = Field(ge=0, le=2**63 - 1)
    lines: list[LogLineIn]
