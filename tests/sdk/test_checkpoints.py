"""Weights hashes from saved files equal the in-memory hash; unsafe or wrong files are refused."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mltrail.checkpoints import weights_hash_from_file
from mltrail.core.errors import ValidationError
from mltrail.core.weights import weights_hash


def test_npz_hash_follows_the_saved_order_and_matches_by_hand(tmp_path):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([0.5, -1.0], dtype=np.float64)
    path = tmp_path / "model.npz"
    np.savez(path, w=w, b=b)
    by_hand = hashlib.sha1(
        (hashlib.sha1(w.tobytes()).hexdigest() + hashlib.sha1(b.tobytes()).hexdigest()).encode()
    ).hexdigest()
    assert weights_hash_from_file("numpy", path) == by_hand == weights_hash({"w": w, "b": b})
    assert weights_hash_from_file("keras", path) == by_hand  # Keras weights saved as .npz
    npy = tmp_path / "single.npy"
    np.save(npy, w)
    assert weights_hash_from_file("numpy", npy) == weights_hash([w])


@pytest.mark.parametrize(
    ("framework", "name", "field"),
    [
        ("tensorflow", "model.npz", "framework"),
        ("numpy", "missing.npz", "model"),
        ("numpy", "model.txt", "model"),
    ],
)
def test_bad_framework_or_file_names_the_field(tmp_path, framework, name, field):
    (tmp_path / "model.npz").write_bytes(b"")
    (tmp_path / "model.txt").write_text("weights")
    with pytest.raises(ValidationError) as info:
        weights_hash_from_file(framework, tmp_path / name)
    assert info.value.field == field


def test_object_arrays_are_not_unpickled(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValidationError, match=r"objects\.npz"):
        weights_hash_from_file("numpy", path)


@pytest.fixture
def torch_model():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch, torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1)
    )


def test_torch_state_dict_checkpoint_and_torchscript_match_the_module(tmp_path, torch_model):
    torch, model = torch_model
    expected = weights_hash(model)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    torch.save({"epoch": 3, "state_dict": model.state_dict(), "lr": 0.1}, tmp_path / "ckpt.ckpt")
    torch.jit.script(model).save(str(tmp_path / "scripted.pt"))
    # the legacy (pre-zip) format cannot be memory-mapped: it is read whole instead
    torch.save(model.state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("sd.pt", "ckpt.ckpt", "scripted.pt", "legacy.pt"):
        assert weights_hash_from_file("pytorch", tmp_path / name) == expected, name


def test_pickled_torch_module_is_refused(tmp_path, torch_model):
    torch, model = torch_model
    torch.save(model, tmp_path / "whole.pt")
    with pytest.raises(ValidationError, match="state_dict") as info:
        weights_hash_from_file("pytorch", tmp_path / "whole.pt")
    assert info.value.field == "model"


def test_safetensors_hash_in_file_order_including_bfloat16(tmp_path, torch_model):
    torch, model = torch_model
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, tmp_path / "m.safetensors")
    order = sorted(state)  # safetensors keeps no order: names sorted, as documented
    assert weights_hash_from_file("pytorch", tmp_path / "m.safetensors") == weights_hash(
        [state[k] for k in order]
    )

    half = {"w": torch.ones(2, 2, dtype=torch.bfloat16)}
    save_file(half, tmp_path / "bf16.safetensors")
    assert weights_hash_from_file("pytorch", tmp_path / "bf16.safetensors") == weights_hash(half)


def test_models_cli_computes_a_hash_and_finds_where_it_came_from(tmp_path, settings, store):
    from mltrail.sdk.experiment import start

    arrays = {"w": np.ones((2, 2)), "b": np.zeros(2)}
    np.savez(tmp_path / "m.npz", **arrays)
    with start("cli-models", settings=settings, store=store) as exp:
        exp.log({"loss": 1.0}, iteration=41)
        digest = exp.log_weights(arrays, epoch=2)
    env = dict(os.environ)
    got = subprocess.run(
        [
            sys.executable,
            "-m",
            "mltrail",
            "models",
            "get-weights-hash",
            "--framework",
            "numpy",
            "--model",
            str(tmp_path / "m.npz"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == digest
    found = subprocess.run(
        [sys.executable, "-m", "mltrail", "models", "find", "--weights-hash", digest, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    assert '"iteration": 41' in found.stdout and '"epoch": 2' in found.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "mltrail",
            "models",
            "get-weights-hash",
            "--framework",
            "numpy",
            "--model",
            str(tmp_path / "nope.npz"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and bad.stderr.strip().startswith("Error: model: no such file")


_TRUNCATE_BEFORE_HASHING = """
import sys
from pathlib import Path

from mltrail import checkpoints

path = Path(sys.argv[1])
real = checkpoints.weights_hash


def truncating(tensors):  # the training loop starts writing its next checkpoint
    path.write_bytes(b"")
    return real(tensors)


checkpoints.weights_hash = truncating
print(checkpoints.weights_hash_from_file("pytorch", path))
"""


@pytest.mark.parametrize("name", ["sd.pt", "m.safetensors"])
def test_a_file_truncated_after_loading_hashes_what_was_read_not_sigbus(
    tmp_path, torch_model, name
):
    """A memory-mapped file truncated while its tensors are hashed killed the process with
    SIGBUS; the tensors are now read into memory, so the hash is of the version read."""
    torch, model = torch_model
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if name.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(state, tmp_path / name)
        expected = weights_hash([state[k] for k in sorted(state)])
    else:
        torch.save(state, tmp_path / name)
        expected = weights_hash(state)
    done = subprocess.run(
        [sys.executable, "-c", _TRUNCATE_BEFORE_HASHING, str(tmp_path / name)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip() == expected
    assert (tmp_path / name).stat().st_size == 0  # the file did change under the hash


def test_a_file_rewritten_while_it_is_read_is_refused(tmp_path, monkeypatch):
    from mltrail import checkpoints

    path = tmp_path / "model.npz"
    np.savez(path, w=np.arange(4.0))
    real = checkpoints._numpy_tensors

    def rewritten_meanwhile(file):
        tensors = real(file)
        np.savez(path, w=np.arange(5.0))  # the next epoch's checkpoint, in place
        return tensors

    monkeypatch.setattr(checkpoints, "_numpy_tensors", rewritten_meanwhile)
    with pytest.raises(ValidationError, match="changed while it was read") as info:
        weights_hash_from_file("numpy", path)
    assert info.value.field == "model"


def test_a_torch_checkpoint_is_the_same_bytes_whoever_saves_it(tmp_path, torch_model):
    """log_checkpoint saves a PyTorch model on the training thread (``save_model``, to a file
    of a random temporary name) or from its copy in memory (``save_snapshot``), whichever is
    free. torch.save given a path names the archive's records after the file, so the same
    weights made a different file each time: a sha256 of its own, a second blob, and the
    README's artifacts listing could not be reproduced."""
    from mltrail.sdk.checkpoint_files import save_model, save_snapshot, snapshot_state

    _, model = torch_model
    first, second = tmp_path / "3f2a9c-epoch-0001.pt", tmp_path / "b81e07-epoch-0001.pt"
    save_model(model, first)
    save_model(model, second)
    snapshot = snapshot_state(model)
    assert snapshot is not None
    sha256, size = save_snapshot(snapshot, tmp_path / "snapshot.pt")
    assert first.read_bytes() == second.read_bytes()
    assert (hashlib.sha256(first.read_bytes()).hexdigest(), first.stat().st_size) == (sha256, size)


@pytest.mark.parametrize(("module", "suffix"), [("torch", ".pt"), ("safetensors", ".safetensors")])
def test_a_missing_library_names_the_extra_that_installs_it(
    module: str, suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    model = tmp_path / f"model{suffix}"
    model.write_bytes(b"\0" * 16)
    with pytest.raises(ValidationError, match=r"pip install 'mltrail\[torch\]'"):
        weights_hash_from_file("pytorch", model)
