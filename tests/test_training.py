"""Checkpoint/resume after SIGKILL, distributed training with 2 CPU processes."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sfnet import SparseFeatureNet
from sfnet._device import resolve_device
from sfnet._imagedata import dihedral
from sfnet.training import CHECKPOINT_NAME, load_checkpoint

SCRIPT = Path(__file__).with_name("_train_script.py")


def _run(*args, env=None, check=True):
    full_env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    _run(SCRIPT, out)
    return out


def test_resume_after_sigkill_matches_uninterrupted(reference, tmp_path):
    killed = _run(SCRIPT, tmp_path, "--kill-after-epoch", "2", check=False)
    assert killed.returncode == -signal.SIGKILL
    state = load_checkpoint(tmp_path / "ckpt" / CHECKPOINT_NAME)
    assert state["epoch"] == 1 and len(state["history"]) == 2
    assert not (tmp_path / "model").exists()
    assert not [p for p in (tmp_path / "ckpt").iterdir() if p.name.endswith(".tmp")]
    _run(SCRIPT, tmp_path, "--resume")
    resumed = SparseFeatureNet.load(tmp_path / "model")
    uninterrupted = SparseFeatureNet.load(reference / "model")
    assert [h["epoch"] for h in resumed.history_] == [1, 2, 3, 4]
    for a, b in zip(resumed.network_.state_dict().values(),
                    uninterrupted.network_.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "pred-rank0.npy"),
                               np.load(reference / "pred-rank0.npy"), rtol=1e-5, atol=1e-5)


def test_resume_refuses_a_foreign_checkpoint(reference, tmp_path):
    from _synthetic import blobs

    X, y = blobs(64, seed=9)
    model = SparseFeatureNet(k=3, epochs=1, batch_size=32, progress=False, random_state=0)
    with pytest.raises(ValueError, match="different data or parameters"):
        model.fit(X, y, checkpoint_dir=reference / "ckpt", resume=True)


def _free_port():
    """A TCP port nothing listens on now (so parallel runs of the suite do not collide)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ddp_two_processes_matches_single_process(tmp_path):
    from _synthetic import register_groupnorm_backbone

    register_groupnorm_backbone()
    single_dir, ddp_dir = tmp_path / "single", tmp_path / "ddp"
    _run(SCRIPT, single_dir, "--backbone", "resnet18_gn")
    _run("-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
         SCRIPT, ddp_dir, "--backbone", "resnet18_gn")
    # both ranks end with the same model
    np.testing.assert_allclose(np.load(ddp_dir / "pred-rank0.npy"),
                               np.load(ddp_dir / "pred-rank1.npy"), rtol=1e-6, atol=1e-6)
    # each process saw half of every global batch; with the global-RMSE gradient the
    # optimisation is the single-process one up to float summation order
    ddp = SparseFeatureNet.load(ddp_dir / "model")
    single = SparseFeatureNet.load(single_dir / "model")
    for a, b in zip(ddp.network_.state_dict().values(), single.network_.state_dict().values()):
        # AdamW amplifies summation-order noise
        torch.testing.assert_close(a, b, rtol=1e-3, atol=2e-3)
    np.testing.assert_allclose(np.load(ddp_dir / "pred-rank0.npy"),
                               np.load(single_dir / "pred-rank0.npy"), rtol=1e-3, atol=1e-3)
    assert [h["valid_rmse"][0] for h in ddp.history_] == pytest.approx(
        [h["valid_rmse"][0] for h in single.history_], rel=1e-3)


def test_dihedral_produces_the_eight_symmetries():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(400, 1, 1, 1)
    out = dihedral(x, torch.Generator().manual_seed(0))
    seen = {tuple(o.flatten().tolist()) for o in out}
    assert len(seen) == 8
    # every output is a rotation/flip of the input: same multiset of values
    assert all(sorted(s) == list(range(16)) for s in seen)


# ----------------------------------------------------------------------------- devices
def _no_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize("device, missing", [
    ("cuda", "torch.cuda.is_available() is False"),
    ("cuda:3", "torch.cuda.is_available() is False"),
    ("mps", "torch.backends.mps.is_available() is False")])
def test_an_unavailable_device_fails_in_validate_params(monkeypatch, device, missing):
    _no_accelerators(monkeypatch)
    model = SparseFeatureNet(k=2, device=device)
    with pytest.raises(ValueError) as err:
        model.validate_params()
    msg = str(err.value)
    assert f"device={device!r}" in msg and missing in msg
    assert f"torch {torch.__version__}, 0 CUDA device(s)" in msg  # what torch sees
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_a_cuda_index_beyond_the_visible_devices_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"device='cuda:3'.*only 2 CUDA device\(s\)"):
        resolve_device("cuda:3")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # available: not touched
    with pytest.raises(ValueError, match="'gpu' is not a valid torch device"):
        resolve_device("gpu")
