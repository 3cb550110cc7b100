"""MLflow's filter strings and order_by as mltrail's query tree: each translation printed in
mltrail's own grammar, which parses back to the same tree (one grammar, one executor)."""

from __future__ import annotations

import pytest

from mltrail.core.errors import ValidationError
from mltrail.core.query import parse_filter
from mltrail.core.query_text import order_text, to_text
from mltrail.server.mlflow.search import translate_filter, translate_order_by


@pytest.mark.parametrize(
    ("mlflow_filter", "mltrail_filter"),
    [
        ("metrics.loss < 0.5", "metrics.train/loss < 0.5"),
        ("metric.`validation/acc` >= 0.9", "metrics.validation/acc >= 0.9"),
        ('metrics."my loss" = 1', "metrics.`train/my loss` = 1"),
        ("metrics.ex_cost > 3", "metrics.ex_cost > 3"),
        ("params.optimizer = 'adam'", "params.optimizer = 'adam'"),
        ("params.lr = '0.01'", "(params.lr = '0.01' or params.lr = 0.01)"),
        ("params.layers != '3'", "(params.layers != '3' or params.layers != 3)"),
        ("params.name LIKE 'res%'", "params.name like 'res%'"),
        ("tags.team = 'vision'", "tags = 'team=vision'"),
        ("tags.my_tag != 'x'", "(tags like 'my\\\\_tag=%' and not tags = 'my_tag=x')"),
        ("tags.team ILIKE 'VIS%'", "tags ilike 'team=VIS%'"),
        ("tags.`mlflow.runName` = 'baseline'", "name = 'baseline'"),
        ("tags.\"mlflow.note.content\" LIKE '%try%'", "description like '%try%'"),
        ("attributes.status = 'FINISHED'", "status in ('done')"),
        ("status != 'FAILED'", "status not in ('failed', 'crashed')"),
        ("attributes.run_name = 'a'", "name = 'a'"),
        ("attributes.start_time > 1700000000000", "started > 1700000000.0"),
        ("end_time <= 5", "ended <= 0.005"),
        ("attributes.run_id IN ('3-1', '3-7', '4-2')", "id in (1, 7)"),
        ("run_id = '4-2'", "id < 0"),
        (
            "metrics.loss < 1 AND params.lr = 'x' and tags.a = 'b'",
            "((metrics.train/loss < 1 and params.lr = 'x') and tags = 'a=b')",
        ),
    ],
)
def test_filters_translate_onto_mltrails_grammar(mlflow_filter: str, mltrail_filter: str) -> None:
    expr = translate_filter(mlflow_filter, project_id=3)
    assert to_text(expr) == mltrail_filter
    assert parse_filter(to_text(expr)) == expr


@pytest.mark.parametrize(
    ("bad", "position"),
    [
        ("metrics.loss < 'low'", 15),
        ("metrics.loss > 1 OR metrics.loss < 0", 17),
        ("params.lr = 0.01", 12),
        ("attributes.user_id = 'me'", 21),
        ("metrics.loss", 12),
        ("tags.a = 'unterminated", 9),
    ],
)
def test_filters_mlflow_refuses_name_the_position(bad: str, position: int) -> None:
    with pytest.raises(ValidationError) as refused:
        translate_filter(bad, project_id=1)
    assert refused.value.field == "filter"
    assert f"at position {position}" in str(refused.value)


def test_order_by_translates_with_mlflows_default() -> None:
    keys = translate_order_by(["metrics.`validation/loss` DESC", "params.lr", "start_time asc"])
    assert order_text(keys) == [
        "metrics.validation/loss desc",
        "params.lr asc",
        "started asc",
    ]
    assert order_text(translate_order_by([])) == ["started desc"]
    with pytest.raises(ValidationError) as refused:
        translate_order_by(["tags.team"])
    assert refused.value.field == "order_by[0]"
