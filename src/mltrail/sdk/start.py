"""``mltrail.start()``: open a run's store and experiment record, return the :class:`Experiment`.

Kept apart from :mod:`mltrail.sdk.experiment` so ``import mltrail`` gets the real signature
and docstring without importing the writer, console capture and their dependencies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mltrail.config import Settings
from mltrail.sdk.stop import POLL_SECONDS

if TYPE_CHECKING:
    from mltrail.sdk.experiment import Experiment
    from mltrail.store.base import Store


def start(
    project: int | str | None = None,
    display_name: str | None = None,
    description: str | None = None,
    hyperparams: Mapping[str, Any] | Any | None = None,
    tags: Sequence[str] | None = None,
    *,
    resume: tuple[int | str, int] | None = None,
    settings: Settings | None = None,
    store: Store | None = None,
    on_stop: Callable[[], None] | None = None,
    stop_poll_seconds: float = POLL_SECONDS,
) -> Experiment:
    """Start recording an experiment (``with mltrail.start("mnist") as exp: ...``).

    Args:
        project: project id or display name; a new name creates the project. Defaults to
            ``MLTRAIL_PROJECT``.
        display_name: the experiment's name; ``experiment-<n>`` by default.
        description: free text.
        hyperparams: a mapping (or an ``argparse.Namespace``) of hyperparameters.
        tags: labels to filter by.
        resume: ``(project, experiment)`` of a run to continue (``MLTRAIL_RESUME=P/E`` does
            the same): it reads ``running`` again, its iteration counter continues after the
            last stored iteration, its logs append, and a point logged again at an iteration
            its series already holds is not stored twice (``exp.rewind(iteration)`` replaces
            stored points instead). ``project`` is then ignored.
        settings: defaults to ``Settings.from_env()`` (environment over
            ``~/.mltrail/config.toml``). When ``MLTRAIL_PROJECT`` and ``MLTRAIL_EXPERIMENT``
            are set (the remote agent sets them), the pre-created experiment is attached to.
        store: the store to write to; opened from ``settings`` (and closed at the end) when
            omitted.
        on_stop: called (from a background thread) when someone asks the experiment to stop;
            without it, the next ``exp.log`` raises :class:`ExperimentStopped`.
        stop_poll_seconds: how often the stop request is checked.

    Returns:
        The running :class:`~mltrail.sdk.experiment.Experiment`.

    With the store unreachable, the run starts offline at once: it gets a client-generated
    :attr:`~mltrail.sdk.experiment.Experiment.run_id` (``experiment_id`` is ``None`` until
    then), everything is spooled, and its experiment is created exactly once when the store
    answers (by this run's writer, ``mltrail sync`` or the next run).

    Raises:
        ValidationError: a bad argument, naming it.
        NotFoundError: an unknown project id, or the experiment to attach to or resume does
            not exist.
    """
    from mltrail.core.errors import TransportError
    from mltrail.sdk.console import quiet_library_loggers
    from mltrail.sdk.experiment import Experiment
    from mltrail.sdk.offline import start_offline
    from mltrail.sdk.opening import open_record, open_run_store, run_spec
    from mltrail.sdk.resume import StoredSteps
    from mltrail.sdk.spool import Spool

    settings = settings or Settings.from_env()
    quiet_library_loggers()  # no Alembic steps nor an httpx line per upload at INFO
    spec = run_spec(settings, project, display_name, description, hyperparams, tags, resume)
    resuming = bool(resume or settings.resume)
    owns_store = store is None
    if store is None:
        store = open_run_store(settings)
    try:
        record = open_record(store, settings, spec, resume)
        stored = (
            StoredSteps.read(store, record.project_id, record.experiment_id) if resuming else None
        )
    except TransportError as exc:
        if resuming or settings.experiment:  # a run that exists already: not started offline
            _close(store, owns_store)
            raise
        record, stored = None, None
        start_offline(Spool.from_settings(settings), spec, exc)
    except BaseException:
        _close(store, owns_store)
        raise
    return Experiment(
        store,
        record,
        spec=spec,
        settings=settings,
        owns_store=owns_store,
        on_stop=on_stop,
        stop_poll_seconds=stop_poll_seconds,
        stored=stored,
    )


def _close(store: Store, owns_store: bool) -> None:
    if owns_store:
        store.close()
