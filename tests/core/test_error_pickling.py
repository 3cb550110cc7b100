"""mltrail errors raised in a worker process reach the parent whole: multiprocessing (and
concurrent.futures) pickle the exception, and unpickling rebuilt it as ``cls(*args)``: a
QueryError (four arguments) could not be rebuilt at all, and any error lost what its
``args`` did not hold."""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from mltrail.core.errors import ERRORS_BY_KIND, MltrailError, TransportError
from mltrail.core.query import QueryError, parse_filter


def _bad_filter() -> None:
    parse_filter("metrics.loss <<< 1")


def _unreachable() -> None:
    raise TransportError("the server is restarting", "server", answered=503, retry_after=2.0)


@pytest.mark.parametrize("work", [_bad_filter, _unreachable])
def test_an_error_raised_in_a_worker_process_arrives_whole(work) -> None:
    with pytest.raises(MltrailError) as raised_here:
        work()
    spawn = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(1, mp_context=spawn) as pool,
        pytest.raises(MltrailError) as raised_there,
    ):
        pool.submit(work).result(timeout=120)
    here, there = raised_here.value, raised_there.value
    assert type(there) is type(here)
    assert vars(there) == vars(here) and str(there) == str(here) and there.args == here.args


def test_every_error_kind_survives_a_pickle() -> None:
    errors = [cls("bad value", "field") for cls in ERRORS_BY_KIND.values()]
    errors.append(QueryError("filter", 7, "<<<", "expected a comparison"))
    for error in errors:
        came = pickle.loads(pickle.dumps(error))
        assert type(came) is type(error) and vars(came) == vars(error), type(error)
        assert str(came) == str(error) and came.to_dict() == error.to_dict()
