"""What training code passes in, normalised: project, hyperparameters, tags, metric values."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from mltrail.core import validation
from mltrail.core.errors import ValidationError


def jsonable(value: Any) -> Any:
    """Hyperparameter values as JSON types: numpy scalars unwrapped, unknown objects as str."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 1) == 0:
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def params_mapping(hyperparams: Any) -> dict[str, Any]:
    if hyperparams is None:
        return {}
    if isinstance(hyperparams, Mapping):
        return dict(hyperparams)
    if hasattr(hyperparams, "__dict__"):  # argparse.Namespace, simple config objects
        return {k: v for k, v in vars(hyperparams).items() if not k.startswith("_")}
    raise ValidationError(
        f"must be a mapping of name to value, got {type(hyperparams).__name__}", "hyperparams"
    )


def tags_tuple(tags: Sequence[str] | None) -> tuple[str, ...]:
    if tags is None:
        return ()
    if isinstance(tags, str):
        tags = [tags]
    validation.sequence_of(list(tags), "tags")
    return tuple(validation.require_text(t, "tags", min_len=1, max_len=100) for t in tags)


def metric_number(value: Any, key: str) -> float:
    """A metric value as float: ints, numpy and 0-d tensor scalars; never bools or strings."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an int past float's range: say which metric, not a traceback
            raise ValidationError(
                "must fit a float (at most about 1.8e308), got a larger integer",
                f"metrics.{str(key)[:50]}",
            ) from None
    if not isinstance(value, (bool, str, bytes)) and hasattr(value, "item"):
        try:
            return metric_number(value.item(), key)
        except (ValueError, RuntimeError):
            pass
    raise ValidationError(
        f"must be a number, got {type(value).__name__}", f"metrics.{str(key)[:50]}"
    )


def metric_items(metrics: Any, known: set[str]) -> dict[str, float]:
    """``exp.log``'s metrics checked, as a new dict of key to float (its slow path). Keys are
    checked once: each new valid key is added to ``known``, and keys in it are trusted."""
    try:
        pairs = metrics.items()
    except AttributeError:
        raise ValidationError(
            f"must be a dict of metric name to number, got {type(metrics).__name__}", "metrics"
        ) from None
    items = {}
    for key, value in pairs:
        if key not in known:
            _check_metric_key(key)
            known.add(key)
        if type(value) is not float:
            value = metric_number(value, key)
        items[key] = value
    return items


def metric_record(metrics: Any, known: set[str]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """``exp.log``'s metrics checked, as a record's keys and values (a value per key, see
    :mod:`mltrail.sdk.buffer`): a dict of known keys to floats read as it is, anything else
    through :func:`metric_items`."""
    if type(metrics) is dict and known.issuperset(metrics):
        keys, values = tuple(metrics), tuple(metrics.values())
        if all(type(value) is float for value in values):
            return keys, values
    checked = metric_items(metrics, known)
    return tuple(checked), tuple(checked.values())


# how exp.log reads a dict of the last call's keys: their count, the keys, and the reader of
# their values in that order (a lone value for one key)
Layout = tuple[int, tuple[str, ...], Callable[[dict[str, float]], Any]]
NO_LAYOUT: Layout = (-1, (), dict.values)


def layout_of(keys: tuple[str, ...]) -> Layout:
    """The layout of calls logging exactly ``keys``, in any order."""
    return (len(keys), keys, itemgetter(*keys)) if keys else NO_LAYOUT


class Layouts:
    """The layouts of the key sets an experiment logged (at most :attr:`LIMIT`), by their
    first key, and the keys checked so far.

    ``exp.log`` reads a call of the last call's keys through that call's layout; a call of
    other keys came here, for the full checks and a new layout (a tuple of keys and an
    ``itemgetter`` made, tracked objects the collector met). A training loop logging a train
    dict and a validation dict in turn, or threads each logging their own keys into one
    experiment, changed keys at every call or every switch: such calls are read through the
    layout kept for their keys instead (8 sets of 4 keys in turn from one thread: 15,700
    instructions a call of the logging thread, against 21,300 through the full checks). A
    set of keys is one tuple whatever the call, so the buffer finds runs of calls by identity
    (:mod:`mltrail.sdk.buffer`).
    """

    LIMIT = 64  # key sets kept: beyond, calls of a new set are checked in full each time

    def __init__(self) -> None:
        self.known: set[str] = set()  # keys checked once, trusted after
        self._by_first: dict[str, Layout] = {}

    def read(self, metrics: Any) -> tuple[Layout, tuple[float, ...]]:
        """The layout of a call's keys and its values in that layout's order, checked: the
        layout kept for its keys when they are all floats, else after the full checks
        (:func:`metric_record`), its layout kept (the last one made for a first key wins)."""
        if type(metrics) is dict and metrics:
            layout = self._by_first.get(next(iter(metrics)))
            if layout is not None and layout[0] == len(metrics):
                values = floats_of(layout, metrics)
                if values is not None:
                    return layout, values
        keys, values = metric_record(metrics, self.known)
        if not keys:
            return NO_LAYOUT, values
        layout = self._by_first.get(keys[0])
        if layout is None or layout[1] != keys:  # the same keys of ints: the same layout
            layout = layout_of(keys)
            if len(self._by_first) < self.LIMIT or keys[0] in self._by_first:
                self._by_first[keys[0]] = layout
        return layout, values


def floats_of(layout: Layout, metrics: dict[str, Any]) -> tuple[float, ...] | None:
    """A dict's values in the order of ``layout``'s keys when it holds exactly those keys
    (``layout``'s count of them), each a float; None otherwise."""
    try:
        values = layout[2](metrics)
    except KeyError:  # other keys
        return None
    if layout[0] == 1:
        values = (values,)
    for value in values:
        if type(value) is not float:
            return None
    return values


def _check_metric_key(key: Any) -> None:
    field = f"metrics.{str(key)[:50]}"
    if isinstance(key, str) and len(key) > validation.MAX_KEY_LEN:
        raise ValidationError(
            f"key must be at most {validation.MAX_KEY_LEN} characters, got {len(key)}", field
        )
    validation.metric_key(key, field)
