"""Parse constructors: everything users send is checked here, once, at the entrance.

Each function raises :class:`ValidationError` naming the field at fault, and returns the
normalised value; for the values that travel down the layers (ex_ metrics, weights hashes,
charts, experiment references, targets) that value has a type of its own (``ExMetrics``,
``WeightsHash``, ``ChartSpec``, ``ExperimentRef``), which the layers below trust. The ``as_*``
functions return such a value unchanged and parse anything else, so a direct caller of the
Store still gets the same checks while an entrance that parsed pays nothing twice. No I/O.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from mltrail.core.errors import ValidationError
from mltrail.core.text import as_text
from mltrail.core.types import (
    LOG_LEVELS,
    ChartScope,
    ChartSpec,
    ExMetrics,
    ExperimentRef,
    JsonScalar,
    Phase,
    Status,
    Target,
    WeightsHash,
)
from mltrail.core.types import chart_id as chart_id  # the id rule, next to the chart rules

MAX_KEY_LEN = 250
MAX_PROJECT_NAME_LEN = 140
MAX_PROJECT_DESCRIPTION_LEN = 140
MAX_EXPERIMENT_NAME_LEN = 250
MAX_EXPERIMENT_DESCRIPTION_LEN = 10_000
MAX_EXPERIMENT_NOTES_LEN = 1_000_000
MAX_EX_STRING_LEN = 1_000_000
MAX_LOG_MESSAGE_LEN = 65_536
MAX_STREAM_LEN = 200
MAX_CHART_POINTS = 1_000_000
MAX_CHART_LINES = 256
CHART_TYPES = ("line", "bar")  # how the UI draws the chart
EX_PREFIX = "ex_"

_HASH_RE = re.compile(r"^[0-9a-f]{40}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def parse_json_arg(value: Any, field: str) -> Any:
    """Accept a JSON string (the contract's form) or the equivalent Python object.

    Python's json accepts NaN and Infinity, so non-finite floats round-trip.
    """
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"not valid JSON ({exc.msg} at position {exc.pos})", field
            ) from None
    return value


MAX_INT64 = 2**63 - 1
"""The largest integer any stored column holds (ids and counters are smaller still)."""
MAX_DB_ID = 2**31 - 1
"""Row ids and per-project numbers are 32-bit database integers: a larger one names nothing."""


def require_int(
    value: Any, field: str, *, minimum: int | None = None, maximum: int = MAX_INT64
) -> int:
    """An integer (not a bool) from ``minimum`` to ``maximum`` (64 bits by default, what any
    stored integer holds); numeric strings of up to 20 digits are accepted."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        if len(value.strip()) > 20:
            raise ValidationError(
                f"must be at most {maximum}, got {len(value.strip())} digits", field
            )
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValidationError(f"must be an integer, got {type(value).__name__}", field)
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValidationError(f"must be >= {minimum}, got {value}", field)
    if value > maximum:
        raise ValidationError(f"must be at most {maximum}, got {_short(value)}", field)
    return value


def _short(value: int) -> str:
    """An integer for a message: itself, or its digit count when huge."""
    return str(value) if value.bit_length() < 200 else f"an integer of {value.bit_length()} bits"


def require_text(value: Any, field: str, *, min_len: int = 0, max_len: int) -> str:
    """A string of bounded length without control characters."""
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, got {type(value).__name__}", field)
    if len(value) < min_len:
        raise ValidationError(
            "must not be empty" if min_len == 1 else f"must be at least {min_len} characters", field
        )
    if len(value) > max_len:
        raise ValidationError(f"must be at most {max_len} characters, got {len(value)}", field)
    if _CONTROL_RE.search(value):
        raise ValidationError("must not contain control characters", field)
    if _UNSTORABLE_RE.search(value):  # a lone surrogate (\ud800 in JSON): no database stores it
        raise ValidationError("must not contain unpaired surrogates", field)
    return value


def project_name(value: Any) -> str:
    return require_text(
        value, "display_name", min_len=1, max_len=MAX_PROJECT_NAME_LEN
    ).strip() or _empty("display_name")


def project_description(value: Any) -> str:
    return require_text(value or "", "description", max_len=MAX_PROJECT_DESCRIPTION_LEN)


def experiment_name(value: Any) -> str:
    return require_text(value, "display_name", min_len=1, max_len=MAX_EXPERIMENT_NAME_LEN)


def experiment_description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, got {type(value).__name__}", "description")
    if len(value) > MAX_EXPERIMENT_DESCRIPTION_LEN:
        raise ValidationError(
            f"must be at most {MAX_EXPERIMENT_DESCRIPTION_LEN} characters", "description"
        )
    if _UNSTORABLE_RE.search(value):  # as notes: newlines are fine, NUL and "\ud800" are not
        raise ValidationError("must not contain NUL or unpaired surrogates", "description")
    return value


def experiment_notes(value: Any) -> str:
    """An experiment's notes: markdown text (any line breaks) up to 1,000,000 characters,
    without NUL or unpaired surrogates (which no database stores)."""
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, got {type(value).__name__}", "notes")
    if len(value) > MAX_EXPERIMENT_NOTES_LEN:
        raise ValidationError(f"must be at most {MAX_EXPERIMENT_NOTES_LEN} characters", "notes")
    if _UNSTORABLE_RE.search(value):
        raise ValidationError("must not contain NUL or unpaired surrogates", "notes")
    return value


def _empty(field: str) -> str:
    raise ValidationError("must not be blank", field)


def metric_key(value: Any, field: str = "key") -> str:
    """A metric key: 1-250 characters, no control characters, not blank."""
    key = require_text(value, field, min_len=1, max_len=MAX_KEY_LEN)
    if not key.strip():
        raise ValidationError("must not be blank", field)
    return key


_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def client_run_id(value: Any, field: str = "client_id") -> str:
    """The id a run started offline generated for itself: 1-64 of ``A-Z a-z 0-9 _ -``."""
    if not isinstance(value, str) or not _RUN_ID.fullmatch(value):
        raise ValidationError(f"must be 1-64 letters, digits, '_' or '-', got {value!r}", field)
    return value


def status(value: Any, field: str = "status") -> Status:
    """An experiment status by its value (``"running"``) or as the enum."""
    try:
        return Status(value)
    except ValueError:
        allowed = ", ".join(s.value for s in Status)
        raise ValidationError(f"must be one of {allowed}, got {value!r}", field) from None


def phase(value: Any, field: str = "phase") -> str:
    try:
        return Phase(value).value
    except ValueError:
        allowed = ", ".join(p.value for p in Phase)
        raise ValidationError(f"must be one of {allowed}, got {value!r}", field) from None


def metric_value(value: Any, field: str) -> float:
    """A numeric point value. NaN and infinities are valid; bools and strings are not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(f"must be a number, got {type(value).__name__}", field)
    return float(value)


def weights_hash(value: Any, field: str = "weights_hash") -> WeightsHash:
    """A hexadecimal sha1: 40 hex digits, returned lower-cased."""
    if not isinstance(value, str) or not _HASH_RE.match(value.strip().lower()):
        raise ValidationError("must be a 40-digit hexadecimal sha1", field)
    return WeightsHash(value.strip().lower())


def as_weights_hash(value: Any) -> WeightsHash:
    """``value`` when already checked, else :func:`weights_hash` of it."""
    return value if isinstance(value, WeightsHash) else weights_hash(value)


def experiment_ref(project: Any, experiment: Any) -> ExperimentRef:
    """The address of one experiment: both ids required, integers >= 1."""
    if project is None:
        raise ValidationError("is required", "project")
    if experiment is None:
        raise ValidationError("is required", "experiment")
    return ExperimentRef(
        require_int(project, "project", minimum=1), require_int(experiment, "experiment", minimum=1)
    )


def targets(project: Any, experiment: Any, weights_hash_value: Any) -> tuple[Target, ...]:
    """The contract's way to name experiments to write to: ``project`` and ``experiment``, or
    ``weights_hash`` alone (every experiment holding it)."""
    if project is not None and experiment is not None:
        return (experiment_ref(project, experiment),)
    if project is not None or experiment is not None:
        given, missing = (
            ("project", "experiment") if project is not None else ("experiment", "project")
        )
        raise ValidationError(
            f"is required when {given} is given (or pass weights_hash alone)", missing
        )
    if weights_hash_value is None:
        raise ValidationError("give project and experiment, or weights_hash", "weights_hash")
    return (weights_hash(weights_hash_value),)


def as_targets(values: Iterable[Any]) -> tuple[Target, ...]:
    """Targets as a Store method receives them: checked values pass, strings are parsed as
    weights hashes; at least one is required."""
    result = tuple(
        value if isinstance(value, (ExperimentRef, WeightsHash)) else weights_hash(value)
        for value in values
    )
    if not result:
        raise ValidationError("no experiment given", "experiment")
    return result


def ex_metrics(value: Any, field: str = "metrics") -> ExMetrics:
    """Normalise external metrics: a JSON object of str/float/int/bool, keys get ``ex_``."""
    parsed = parse_json_arg(value, field)
    if not isinstance(parsed, Mapping):
        raise ValidationError(
            f"must be a JSON object of metric name to value, got {type(parsed).__name__}", field
        )
    if not parsed:
        raise ValidationError("must contain at least one metric", field)
    result: dict[str, JsonScalar] = {}
    for raw_key, raw_value in parsed.items():
        key = metric_key(raw_key, f"{field}.{raw_key}")
        if not key.startswith(EX_PREFIX):
            key = EX_PREFIX + key
        if len(key) > MAX_KEY_LEN:
            raise ValidationError(
                f"must be at most {MAX_KEY_LEN} characters with the ex_ prefix",
                f"{field}.{raw_key}",
            )
        result[key] = ex_value(raw_value, f"{field}.{raw_key}")
    return ExMetrics(result)


def as_ex_metrics(value: Any) -> ExMetrics:
    """``value`` when already checked, else :func:`ex_metrics` of it."""
    return value if isinstance(value, ExMetrics) else ex_metrics(value)


def ex_value(value: Any, field: str) -> JsonScalar:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        if len(value) > MAX_EX_STRING_LEN:
            raise ValidationError(
                f"string values must be at most {MAX_EX_STRING_LEN} characters", field
            )
        return value
    raise ValidationError(f"must be a string, number or boolean, got {type(value).__name__}", field)


def chart(
    chart_name: Any,
    *,
    chart_x_name: Any = "X",
    chart_y_name: Any = "Y",
    chart_scope: Any = "test",
    chart_type: Any = "line",
    chart_x: Any = None,
    chart_y: Any = None,
) -> ChartSpec:
    """Validate a custom chart as the contract's ``update_chart`` receives it."""
    name = metric_key(chart_name, "chart_name").strip()
    x_name = require_text(chart_x_name, "chart_x_name", min_len=1, max_len=MAX_KEY_LEN)
    try:
        scope = ChartScope(chart_scope).value
    except ValueError:
        raise ValidationError(
            f"must be one of test, validation, train, got {chart_scope!r}", "chart_scope"
        ) from None
    if chart_type not in CHART_TYPES:
        raise ValidationError(
            f"must be one of {', '.join(CHART_TYPES)}, got {chart_type!r}", "chart_type"
        )
    xs = _chart_x(chart_x)
    ys = _chart_y(chart_y, len(xs))
    y_names = _chart_y_names(chart_y_name, len(ys[0]))
    return ChartSpec(name, scope, chart_type, x_name, y_names, xs, ys)


def _chart_x(raw: Any) -> tuple[JsonScalar, ...]:
    xs = parse_json_arg(raw, "chart_x")
    if xs is None:
        raise ValidationError("is required: a JSON list of x values", "chart_x")
    if not isinstance(xs, list) or not xs:
        raise ValidationError("must be a non-empty JSON list", "chart_x")
    if len(xs) > MAX_CHART_POINTS:
        raise ValidationError(f"must have at most {MAX_CHART_POINTS} values", "chart_x")
    kinds = {_x_kind(v) for v in xs}
    if None in kinds:
        raise ValidationError("values must be strings, integers or floats", "chart_x")
    if len(kinds) > 1:
        names = ", ".join(sorted(k for k in kinds if k is not None))
        raise ValidationError(f"values must all be of one type, got {names}", "chart_x")
    return tuple(xs)


def _x_kind(v: Any) -> str | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    return None


def _chart_y(raw: Any, n_x: int) -> tuple[tuple[float, ...], ...]:
    ys = parse_json_arg(raw, "chart_y")
    if ys is None:
        raise ValidationError("is required: a JSON list with one value or one row per x", "chart_y")
    if not isinstance(ys, list):
        raise ValidationError("must be a JSON list", "chart_y")
    if len(ys) != n_x:
        raise ValidationError(
            f"must have one entry per x value: {len(ys)} for {n_x} x values", "chart_y"
        )
    multi = isinstance(ys[0], list)
    rows: list[tuple[float, ...]] = []
    for i, row in enumerate(ys):
        if isinstance(row, list) != multi:
            raise ValidationError(
                "must be all numbers (single line) or all lists (multi-line)", "chart_y"
            )
        cells = row if multi else [row]
        if not cells or len(cells) > MAX_CHART_LINES:
            raise ValidationError(f"row {i} must have 1 to {MAX_CHART_LINES} values", "chart_y")
        if rows and len(cells) != len(rows[0]):
            raise ValidationError(
                f"every row must have the same width: row {i} has {len(cells)}, row 0 has {len(rows[0])}",
                "chart_y",
            )
        rows.append(tuple(metric_value(c, f"chart_y[{i}]") for c in cells))
    return tuple(rows)


def _chart_y_names(raw: Any, width: int) -> tuple[str, ...]:
    names = raw
    if isinstance(raw, str) and raw.lstrip().startswith("["):
        names = parse_json_arg(raw, "chart_y_name")
    if isinstance(names, str):
        require_text(names, "chart_y_name", min_len=1, max_len=MAX_KEY_LEN)
        return (names,) if width == 1 else tuple(f"{names} {i + 1}" for i in range(width))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValidationError("must be a string or a JSON list of strings", "chart_y_name")
    if len(names) != width:
        raise ValidationError(
            f"must have one name per line: {len(names)} names for {width} lines", "chart_y_name"
        )
    return tuple(require_text(n, "chart_y_name", min_len=1, max_len=MAX_KEY_LEN) for n in names)


def log_level(value: Any) -> str:
    level = str(value).upper()
    if level == "WARN":
        level = "WARNING"
    if level not in LOG_LEVELS:
        raise ValidationError(f"must be one of {', '.join(LOG_LEVELS)}, got {value!r}", "level")
    return level


def log_message(value: Any) -> str:
    """Log messages over the limit are truncated, with a marker saying how much was cut.

    Any text is kept, NUL and lone surrogates included (the store escapes them, see
    :mod:`mltrail.core.text`); bytes are decoded as UTF-8 with invalid bytes kept.
    """
    if isinstance(value, bytes):
        value = as_text(value)
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, got {type(value).__name__}", "message")
    if len(value) > MAX_LOG_MESSAGE_LEN:
        cut = len(value) - MAX_LOG_MESSAGE_LEN
        return value[:MAX_LOG_MESSAGE_LEN] + f" [truncated {cut} characters]"
    return value


def log_stream(value: Any) -> str:
    """A stream or logger name: a name, not content, so NUL and lone surrogates become U+FFFD."""
    if not isinstance(value, str) or not value:
        raise ValidationError("must be a non-empty string", "stream")
    return _UNSTORABLE_RE.sub("\ufffd", value[:MAX_STREAM_LEN])


def is_storable(text: str) -> bool:
    """Whether every database holds ``text`` as it is (no NUL, no unpaired surrogate)."""
    return _UNSTORABLE_RE.search(text) is None


def is_unicode(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8: no unpaired surrogate (JSON's ``"\\ud800"``)."""
    return _SURROGATE_RE.search(text) is None


def is_finite(value: float) -> bool:
    return math.isfinite(value)


def sequence_of(value: Any, field: str) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)):
        raise ValidationError(f"must be a list, got {type(value).__name__}", field)
    return value
