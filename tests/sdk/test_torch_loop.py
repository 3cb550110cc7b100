"""A real PyTorch training loop recorded by the SDK (skipped when torch is absent)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import mltrail  # noqa: E402
from mltrail.sdk.experiment import start  # noqa: E402


def test_torch_loop_points_tensor_values_and_hash_of_the_saved_checkpoint(settings, tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    losses = []
    with start("torch", "mlp", hyperparams={"lr": 0.01}, settings=settings) as exp:
        for epoch in range(3):
            for batch in range(4):
                xb, yb = x[batch * 16 : (batch + 1) * 16], y[batch * 16 : (batch + 1) * 16]
                loss = torch.nn.functional.mse_loss(model(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                exp.log({"loss": loss.detach()}, epoch=epoch)  # a 0-d tensor is a number
                losses.append(loss.item())
            digest = exp.epoch_end(model=model)
        torch.save(model.state_dict(), tmp_path / "final.pt")

    with mltrail.as_api() as api:
        series = api.experiments.series(exp.project_id, exp.experiment_id, "loss")
        assert series["values"] == pytest.approx(losses, rel=1e-6)
        assert series["iterations"] == list(range(12))
        assert series["epochs"] == [0] * 4 + [1] * 4 + [2] * 4
        saved = api.models.get_weights_hash("pytorch", str(tmp_path / "final.pt"))
        assert saved == digest == mltrail.weights_hash(model)
        [link] = api.models.find(saved)
        assert (link["experiment"], link["iteration"], link["epoch"]) == (exp.experiment_id, 11, 2)
