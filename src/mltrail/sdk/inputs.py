"""What training code passes in, normalised: project, hyperparameters, tags, metric values."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mltrail.core import validation
from mltrail.core.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from mltrail.store.base import Store


def resolve_project(store: Store, project: int | str, *, create: bool = True) -> int:
    """The id of ``project``, given as an id or a display name.

    Args:
        store: where to look.
        project: an integer id (also as a digit string) or a display name.
        create: create a project with that display name when none exists.

    Returns:
        The project id.

    Raises:
        NotFoundError: an unknown id, or an unknown name with ``create=False``.
        ValidationError: neither an id nor a valid name.
    """
    if isinstance(project, bool):
        raise ValidationError("must be a project id or display name, got bool", "project")
    if isinstance(project, int) or (isinstance(project, str) and project.strip().isdigit()):
        project_id = validation.require_int(project, "project", minimum=1)
        return store.get_project(project_id).id
    if not isinstance(project, str):
        raise ValidationError(
            f"must be a project id or display name, got {type(project).__name__}", "project"
        )
    name = validation.project_name(project)
    found = store.find_project(name)
    if found is not None:
        return found.id
    if not create:
        raise NotFoundError(f"no project named {name!r}", "project")
    return store.create_project(name).id


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
        return float(value)
    if not isinstance(value, (bool, str, bytes)) and hasattr(value, "item"):
        try:
            return metric_number(value.item(), key)
        except (ValueError, RuntimeError):
            pass
    raise ValidationError(
        f"must be a number, got {type(value).__name__}", f"metrics.{str(key)[:50]}"
    )
