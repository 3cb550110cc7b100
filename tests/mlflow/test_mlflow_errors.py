"""Bad input, missing tokens and other users' runs through the MLflow surface: MLflow's error
shape (``error_code``, a message naming the field) with a 4xx status, so the real MLflow client
raises its usual exceptions; nothing is half-written."""

from __future__ import annotations

import threading

import httpx
import pytest
from mlflow_user import MlflowUser, configure, mlflow

from support.servers import ServerProcess, unique_name

MlflowException = mlflow.exceptions.MlflowException


def raw(user: MlflowUser, method: str, path: str, token: str | None = "mine", **kw: object):
    headers = {} if token is None else {"Authorization": f"Bearer {user.token}"}
    if token not in (None, "mine"):
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(method, f"{user.server.url}{path}", headers=headers, **kw)


def error_of(call) -> tuple[str, str]:
    """The error code and the server's message (without the client's "CODE: " prefix)."""
    with pytest.raises(MlflowException) as raised:
        call()
    code = raised.value.error_code
    return code, raised.value.message.removeprefix(f"{code}: ")


def test_client_errors_carry_mlflows_codes_and_name_the_field(user: MlflowUser) -> None:
    c = user.client
    eid = c.create_experiment(unique_name("errors"))
    rid = c.create_run(eid).info.run_id
    code, message = error_of(lambda: c.get_run("not-a-run"))
    assert code == "INVALID_PARAMETER_VALUE" and message.startswith("run_id:")
    code, _ = error_of(lambda: c.get_run(f"{eid}-999"))
    assert code == "RESOURCE_DOES_NOT_EXIST"
    code, _ = error_of(lambda: c.get_experiment("123456789"))
    assert code == "RESOURCE_DOES_NOT_EXIST"
    code, message = error_of(lambda: c.log_metric(rid, "bad=key", 1.0))
    assert code == "INVALID_PARAMETER_VALUE" and message.startswith("key:")
    c.log_param(rid, "lr", "0.1")
    code, message = error_of(lambda: c.log_param(rid, "lr", "0.2"))
    assert code == "INVALID_PARAMETER_VALUE" and "'0.1'" in message
    answer = raw(user, "POST", "/api/2.0/mlflow/runs/update", json={"run_id": rid, "status": "Z"})
    assert answer.status_code == 400  # the client checks statuses itself: sent raw
    assert answer.json()["message"].startswith("status: must be one of SCHEDULED")
    code, _ = error_of(lambda: c.delete_tag(rid, "never-set"))
    assert code == "RESOURCE_DOES_NOT_EXIST"
    assert c.get_run(rid).data.params == {"lr": "0.1"}


def test_log_batch_limits_refuse_the_whole_batch(user: MlflowUser) -> None:
    c = user.client
    rid = c.create_run(c.create_experiment(unique_name("limits"))).info.run_id
    Metric, Param = mlflow.entities.Metric, mlflow.entities.Param
    body = {"run_id": rid, "metrics": [{"key": "m", "value": 1, "timestamp": 1, "step": i}
                                       for i in range(1001)]}  # fmt: skip
    answer = raw(user, "POST", "/api/2.0/mlflow/runs/log-batch", json=body)
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert answer.json()["message"].startswith("metrics:")
    # the client splits big batches itself, so the limits are sent raw
    params = [{"key": f"p{i}", "value": "v"} for i in range(101)]
    answer = raw(
        user, "POST", "/api/2.0/mlflow/runs/log-batch", json={"run_id": rid, "params": params}
    )
    assert answer.status_code == 400 and answer.json()["message"].startswith("params:")
    mixed = [Metric("ok", 1.0, 1, 0), Metric("ok", 2.0, 1, 1)]
    bad = [Param("good", "1"), Param("bad=key", "1")]
    code, message = error_of(lambda: c.log_batch(rid, metrics=mixed, params=bad))
    assert code == "INVALID_PARAMETER_VALUE" and message.startswith("params[1].key:")
    run = c.get_run(rid)
    assert run.data.metrics == {} and run.data.params == {}  # nothing half-written
    assert c.get_metric_history(rid, "ok") == []


def test_malformed_requests_are_400_in_mlflows_shape(user: MlflowUser) -> None:
    for body in (b"{not json", b"[1, 2]"):
        answer = raw(user, "POST", "/api/2.0/mlflow/runs/log-metric", content=body)
        assert answer.status_code == 400
        assert set(answer.json()) == {"error_code", "message"}
    answer = raw(user, "POST", "/api/2.0/mlflow/runs/log-metric", json={"run_id": "1-1"})
    assert answer.status_code in (400, 403, 404) and "error_code" in answer.json()
    for view in ([], {}, [1]):  # not a name nor a number: unhashable, it was a 500
        body = {"experiment_ids": ["1"], "run_view_type": view}
        answer = raw(user, "POST", "/api/2.0/mlflow/runs/search", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["message"].startswith("run_view_type:")
    answer = raw(user, "GET", "/api/2.0/mlflow/registered-models/search")
    assert answer.status_code == 404
    assert answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


UNAUTHENTICATED_CALLS = [
    ("GET", "/api/2.0/mlflow/experiments/get?experiment_id=1"),
    ("POST", "/api/2.0/mlflow/runs/search"),
    ("POST", "/ajax-api/2.0/mlflow/runs/log-batch"),
    ("GET", "/api/2.0/mlflow/metrics/get-history-bulk-interval?run_ids=1-1&metric_key=m"),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts?path=1/1-1/artifacts"),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/1/1-1/artifacts/x.txt"),
    ("GET", "/api/2.0/mlflow/anything/else"),
]


def test_no_route_answers_without_a_token(user: MlflowUser) -> None:
    for method, path in UNAUTHENTICATED_CALLS:
        for token in (None, "not-a-token"):
            answer = raw(user, method, path, token=token, content=b"{}")
            assert answer.status_code == 401, (path, answer.text)
            assert answer.json()["error_code"] == "UNAUTHENTICATED"


def test_a_body_is_read_only_after_its_token_is_checked(user: MlflowUser) -> None:
    """A call without a valid token is a 401 whatever its body: the JSON is parsed after the
    token check, so a malformed (or a 64 MiB) body from anyone costs no parse and earns no 400
    about its fields."""
    for path in ("/api/2.0/mlflow/runs/log-metric", "/ajax-api/2.0/mlflow/runs/log-batch"):
        for token in (None, "not-a-token"):
            for body in (b"{not json", b"[1, 2]"):
                answer = raw(user, "POST", path, token=token, content=body)
                assert answer.status_code == 401, (path, token, body, answer.text)
                assert answer.json()["error_code"] == "UNAUTHENTICATED"
    answer = raw(user, "POST", "/api/2.0/mlflow/runs/log-metric", content=b"{not json")
    assert answer.status_code == 400  # with a good token the same body is judged


def test_another_users_runs_are_out_of_reach(
    user: MlflowUser, backend: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    eid = user.client.create_experiment(unique_name("private"))
    rid = user.client.create_run(eid).info.run_id
    user.client.log_metric(rid, "secret", 1.0)
    other = configure(backend, monkeypatch)
    for call in (
        lambda: other.client.get_run(rid),
        lambda: other.client.log_metric(rid, "x", 1.0),
        lambda: other.client.get_metric_history(rid, "secret"),
        lambda: other.client.create_run(eid),
        lambda: other.client.search_runs([eid]),
        lambda: other.client.rename_experiment(eid, unique_name("mine-now")),
        lambda: other.client.delete_experiment(eid),
        lambda: other.client.restore_experiment(eid),
    ):
        code, _ = error_of(call)
        assert code == "PERMISSION_DENIED"
    answer = httpx.get(
        f"{backend.url}/api/2.0/mlflow-artifacts/artifacts",
        params={"path": f"{eid}/{rid}/artifacts"},
        headers={"Authorization": f"Bearer {other.token}"},
    )
    assert answer.status_code == 403
    project, number = (int(x) for x in rid.split("-"))
    assert user.api.store.get_experiment(project, number).metrics == {"train/secret": 1.0}
    other.api.close()


def test_a_run_id_naming_a_project_past_32_bits_is_not_found(user: MlflowUser) -> None:
    """Project ids are 32-bit: a run id whose project part is larger names nothing (a 404 in
    MLflow's shape on both backends; PostgreSQL refused the comparison, a 422 in mltrail's
    REST shape through the catch-all handler, which also closed the connection)."""
    for run in ("99999999999-1", "99999999999-99999999999"):
        for method, path, kw in (
            ("GET", "/api/2.0/mlflow/runs/get", {"params": {"run_id": run}}),
            ("POST", "/api/2.0/mlflow/runs/update", {"json": {"run_id": run, "status": "FAILED"}}),
            ("POST", "/api/2.0/mlflow/runs/log-metric",
             {"json": {"run_id": run, "key": "m", "value": 1.0, "timestamp": 1, "step": 0}}),
        ):  # fmt: skip
            answer = raw(user, method, path, **kw)
            assert answer.status_code == 404, (path, run, answer.text)
            assert answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", answer.text


def test_a_negative_step_is_refused_naming_mlflows_field(user: MlflowUser) -> None:
    """MLflow takes negative steps; mltrail's iterations start at 0, so the point is refused,
    naming MLflow's field (not mltrail's ``iteration``), and nothing of the call is stored."""
    c = user.client
    rid = c.create_run(c.create_experiment(unique_name("steps"))).info.run_id
    code, message = error_of(lambda: c.log_metric(rid, "m", 1.0, step=-1))
    assert code == "INVALID_PARAMETER_VALUE" and message.startswith("step: must be >= 0"), message
    Metric, Param = mlflow.entities.Metric, mlflow.entities.Param
    points = [Metric("m", 1.0, 1, 0), Metric("m", 2.0, 1, -3)]
    code, message = error_of(lambda: c.log_batch(rid, metrics=points, params=[Param("p", "1")]))
    assert code == "INVALID_PARAMETER_VALUE", message
    assert message.startswith("metrics[1].step: must be >= 0"), message
    assert c.get_metric_history(rid, "m") == [] and c.get_run(rid).data.params == {}


def test_a_list_field_sent_as_anything_else_is_refused(user: MlflowUser) -> None:
    """MLflow's ``_assert_array``: a repeated field in a JSON body must be a list; a dict was
    read as one item (``metrics[0].key: is required``), a string as a list of one id."""
    c = user.client
    eid = c.create_experiment(unique_name("lists"))
    rid = c.create_run(eid).info.run_id
    item = {"key": "k", "value": "1"}
    for name, value in (("metrics", {"key": "m", "value": 1, "timestamp": 1}),
                        ("params", item), ("tags", item), ("tags", "k")):  # fmt: skip
        answer = raw(user, "POST", "/api/2.0/mlflow/runs/log-batch",
                     json={"run_id": rid, name: value})  # fmt: skip
        assert answer.status_code == 400, answer.text
        assert answer.json() == {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": f"{name}: must be a list, got {type(value).__name__}",
        }
    for ids in (eid, {eid: eid}):
        answer = raw(user, "POST", "/api/2.0/mlflow/runs/search", json={"experiment_ids": ids})
        assert answer.status_code == 400, answer.text
        assert answer.json()["message"].startswith("experiment_ids: must be a list"), answer.text
    answer = raw(user, "POST", "/api/2.0/mlflow/runs/create",
                 json={"experiment_id": eid, "tags": item})  # fmt: skip
    assert answer.status_code == 400 and answer.json()["message"].startswith("tags: must be a list")
    run = c.get_run(rid)
    assert run.data.metrics == {} and run.data.params == {} and "k" not in run.data.tags
    assert [r.info.run_id for r in c.search_runs([eid])] == [rid]  # no run created
    # a query parameter given once is still a repeated field of one (GET calls)
    answer = raw(user, "GET", "/api/2.0/mlflow/metrics/get-history-bulk-interval",
                 params={"run_ids": rid, "metric_key": "m"})  # fmt: skip
    assert answer.status_code == 200 and answer.json() == {"metrics": []}


def test_times_past_what_mltrail_keeps_exactly_are_refused(user: MlflowUser) -> None:
    """Times are kept as float seconds, exact to the millisecond up to +-1e15 ms: a larger
    int64 (2**63-1 came back as 2**63) is refused naming the field, and nothing is stored."""
    c = user.client
    eid = c.create_experiment(unique_name("times"))
    top = 2**63 - 1
    code, message = error_of(lambda: c.create_run(eid, start_time=top))
    assert code == "INVALID_PARAMETER_VALUE" and message.startswith("start_time:"), message
    assert c.search_runs([eid]) == []
    run = c.create_run(eid, start_time=10**15)  # the largest kept: read back exactly
    rid = run.info.run_id
    assert run.info.start_time == 10**15 and c.get_run(rid).info.start_time == 10**15
    code, message = error_of(lambda: c.log_metric(rid, "m", 1.0, timestamp=top))
    assert code == "INVALID_PARAMETER_VALUE" and message.startswith("timestamp:"), message
    Metric = mlflow.entities.Metric
    code, message = error_of(
        lambda: c.log_batch(rid, [Metric("m", 1.0, 1, 0), Metric("m", 2.0, top, 1)])
    )
    assert code == "INVALID_PARAMETER_VALUE" and message.startswith("metrics[1].timestamp:")
    body = {"run_id": rid, "metrics": [{"key": "m", "value": 1, "timestamp": -(2**63), "step": 0}]}
    answer = raw(user, "POST", "/api/2.0/mlflow/runs/log-batch", json=body)
    assert answer.status_code == 400 and answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert answer.json()["message"].startswith("metrics[0].timestamp:"), answer.text
    assert c.get_metric_history(rid, "m") == []
    c.log_metric(rid, "m", 1.0, timestamp=10**15 - 1, step=0)
    assert [p.timestamp for p in c.get_metric_history(rid, "m")] == [10**15 - 1]
    code, message = error_of(lambda: c.set_terminated(rid, end_time=top))
    assert code == "INVALID_PARAMETER_VALUE" and message.startswith("end_time:"), message
    assert c.get_run(rid).info.status == "RUNNING"
    for bad in ("soon", 1.5, True):
        body = {"run_id": rid, "status": "FINISHED", "end_time": bad}
        answer = raw(user, "POST", "/api/2.0/mlflow/runs/update", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert answer.json()["message"].startswith("end_time:"), answer.text
    body = {"run_id": rid, "end_time": 10**15}  # a running run has no end time (yet)
    answer = raw(user, "POST", "/api/2.0/mlflow/runs/update", json=body)
    assert answer.status_code == 400 and answer.json()["message"].startswith("end_time:")
    assert c.get_run(rid).info.status == "RUNNING" and c.get_run(rid).info.end_time is None


def test_a_metric_key_of_the_wrong_type_is_refused_naming_it(user: MlflowUser) -> None:
    """A list or dict key made the column read's set of names raise: a 500, in mltrail's
    error shape instead of MLflow's."""
    c = user.client
    rid = c.create_run(c.create_experiment(unique_name("keys"))).info.run_id
    for key in ([], {"a": 1}, 7, None):
        metric = {"key": key, "value": 1.0, "timestamp": 1, "step": 0}
        answer = raw(user, "POST", "/api/2.0/mlflow/runs/log-batch",
                     json={"run_id": rid, "metrics": [metric]})  # fmt: skip
        assert answer.status_code == 400, answer.text
        assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert answer.json()["message"].startswith("metrics[0].key:"), answer.text
    assert c.get_run(rid).data.metrics == {}


def test_concurrent_batches_logging_a_param_differently_keep_one(user: MlflowUser) -> None:
    """Each request checked the run's params, then merged its own in another transaction: of
    16 concurrent batches giving a new param 16 values, several were answered 200 and the
    param changed after it was logged. Now one is, and the param holds its value."""
    from concurrent.futures import ThreadPoolExecutor

    c = user.client
    rid = c.create_run(c.create_experiment(unique_name("param-race"))).info.run_id
    start = threading.Barrier(16)

    def log(i: int) -> httpx.Response:
        body = {"run_id": rid, "params": [{"key": f"p{j}", "value": str(i)} for j in range(3)]}
        start.wait()
        return raw(user, "POST", "/api/2.0/mlflow/runs/log-batch", json=body)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(log, range(16)))
    assert sorted(a.status_code for a in answers) == [200] + [400] * 15, [a.text for a in answers]
    winner = next(i for i, a in enumerate(answers) if a.status_code == 200)
    for a in answers:
        if a.status_code == 400:
            assert a.json()["error_code"] == "INVALID_PARAMETER_VALUE", a.text
            assert "changing a logged param is not allowed" in a.json()["message"], a.text
    assert c.get_run(rid).data.params == {f"p{j}": str(winner) for j in range(3)}


def test_concurrent_creates_and_renames_leave_one_experiment_of_a_name(user: MlflowUser) -> None:
    """The name was looked up, then the project created in another transaction: on
    PostgreSQL, 16 concurrent creates of one name made up to 9 experiments of that name."""
    from concurrent.futures import ThreadPoolExecutor

    name, start = unique_name("name-race"), threading.Barrier(16)
    others = [user.client.create_experiment(unique_name("rename")) for _ in range(2)]
    target = unique_name("renamed")

    def create(i: int) -> httpx.Response:
        start.wait()
        if i % 2:
            body = {"experiment_id": others[i // 2 % 2], "new_name": target}
            return raw(user, "POST", "/api/2.0/mlflow/experiments/update", json=body)
        return raw(user, "POST", "/api/2.0/mlflow/experiments/create", json={"name": name})

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(create, range(16)))
    created = [a for a in answers[::2] if a.status_code == 200]
    assert len(created) == 1, [a.text for a in answers[::2]]
    for a in answers:
        assert a.status_code in (200, 400), a.text
        if a.status_code == 400:
            assert a.json()["error_code"] == "RESOURCE_ALREADY_EXISTS", a.text
    names = [p["display_name"] for p in raw(user, "GET", "/api/v1/projects").json()]
    assert names.count(target) == 1  # one of the two renamed experiments has the name
    assert names.count(name) == 1
