"""Ranger (RAdam + Lookahead), fastai's one-cycle schedule and the paper's recipe."""

import copy
import math

import numpy as np
import pytest
import torch

import sfnet
from sfnet import PAPER_RECIPE, SparseFeatureNet
from sfnet.optim import OneCycle, Ranger, one_cycle_values


def _reference_ranger(p0, grads, lr, wd, b1=0.95, b2=0.99, eps=1e-5, k=6, alpha=0.5):
    """RAdam + Lookahead written out step by step in plain floats."""
    p, m, v, slow, out = p0, 0.0, 0.0, p0, []
    rho_inf = 2 / (1 - b2) - 1
    for t, g in enumerate(grads, start=1):
        p *= 1 - lr * wd
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        rho = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
        if rho > 5:
            r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            p -= lr * r * (m / (1 - b1 ** t)) / (math.sqrt(v / (1 - b2 ** t)) + eps)
        else:
            p -= lr * m / (1 - b1 ** t)
        if t % k == 0:
            slow += alpha * (p - slow)
            p = slow
        out.append(p)
    return out


def test_ranger_first_step_by_hand():
    # step 1: rho_1 = 1 <= 5, so a bias-corrected momentum step after the decay:
    # p1 = p0 (1 - lr wd) - lr g
    w = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    opt = Ranger([w], lr=0.1, weight_decay=0.01)
    w.grad = torch.tensor([0.5], dtype=torch.float64)
    opt.step()
    assert w.item() == pytest.approx(2.0 * (1 - 0.1 * 0.01) - 0.1 * 0.5, abs=1e-15)


def test_ranger_matches_reference_through_rectification_and_lookahead():
    grads = [0.5, -0.3, 0.8, 0.1, -0.2, 0.4, 0.6, -0.7, 0.3, 0.2, -0.1, 0.5, 0.9]
    w = torch.nn.Parameter(torch.tensor([1.5], dtype=torch.float64))
    opt = Ranger([w], lr=0.05, weight_decay=0.01)
    got = []
    for g in grads:
        w.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        got.append(w.item())
    np.testing.assert_allclose(got, _reference_ranger(1.5, grads, 0.05, 0.01), rtol=1e-12)
    # Lookahead at step 6: the weights are half way between the start and the fast weights
    fast6 = _reference_ranger(1.5, grads[:6], 0.05, 0.01, k=10**9)[-1]
    assert got[5] == pytest.approx(1.5 + 0.5 * (fast6 - 1.5), rel=1e-12)


def test_ranger_state_round_trips_for_resume():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    x, y = torch.randn(16, 3), torch.randn(16, 1)

    def run(opt, model, n):
        for _ in range(n):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()

    a = torch.nn.Linear(3, 1)
    a.load_state_dict(net.state_dict())
    opt_a = Ranger(a.parameters(), lr=0.05)
    run(opt_a, a, 4)
    b = torch.nn.Linear(3, 1)
    b.load_state_dict(a.state_dict())
    opt_b = Ranger(b.parameters(), lr=0.05)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # as read back from a file
    run(opt_a, a, 5)  # crosses the Lookahead synchronisation at step 6
    run(opt_b, b, 5)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_one_cycle_values_at_start_peak_and_end():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = Ranger([w], lr=0.1)
    sched = OneCycle(opt, total_steps=100)
    lrs, moms = [], []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["betas"][0])
        w.grad = torch.ones(1)
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1 / 25) and moms[0] == pytest.approx(0.95)
    assert int(np.argmax(lrs)) == 25 and lrs[25] == pytest.approx(0.1)
    assert moms[25] == pytest.approx(0.85) and min(moms) == pytest.approx(0.85)
    # cosine: half way through the warm-up the rate is half way
    assert lrs[12] == pytest.approx(one_cycle_values(0.12, 0.1)[0])
    assert one_cycle_values(0.125, 0.1)[0] == pytest.approx((0.1 / 25 + 0.1) / 2)
    # after the last step: lr_max / 1e5 and momentum back to 0.95
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / 1e5)
    assert opt.param_groups[0]["betas"][0] == pytest.approx(0.95)
    assert all(np.diff(lrs[25:]) < 0) and opt.param_groups[0]["betas"][1] == 0.99


def test_paper_recipe_trains_on_small_mock_images():
    from sfnet.datasets import make_mock_galaxies

    assert sfnet.PAPER_RECIPE is PAPER_RECIPE
    assert PAPER_RECIPE["optimizer"] == "ranger" and PAPER_RECIPE["learning_rate"] == 0.1
    assert (PAPER_RECIPE["crop_size"], PAPER_RECIPE["image_size"]) == (144, 160)
    sample = make_mock_galaxies(400, image_size=32, seed=3, progress=False).select("metallicity")
    params = dict(PAPER_RECIPE, weights=None, image_size=32, crop_size=28, epochs=3,
                  batch_size=16, progress=False, random_state=0, precision="fp32")
    model = SparseFeatureNet(k=2, **params).fit(sample)
    losses = [h["train_loss"] for h in model.history_]
    assert losses[-1] < losses[0] - 0.25  # the raw target (~9 dex) is being learnt from 0
    assert model.best_epoch_ == 3  # the last epoch is kept
    assert np.all(model.y_mean_ == 0) and np.all(model.y_std_ == 1)  # raw target
    assert model.preprocessor_.order == "crop-resize"
    assert "valid_rmse" in model.history_[-1]


def test_optimizer_and_augment_are_validated():
    with pytest.raises(ValueError, match="optimizer"):
        SparseFeatureNet(optimizer="sgd").validate_params()
    with pytest.raises(ValueError, match="augment"):
        SparseFeatureNet(augment=1.5).validate_params()
    with pytest.raises(ValueError, match="keep_epoch"):
        SparseFeatureNet(keep_epoch="first").validate_params()


def test_cli_train_recipe_paper_sets_the_recipe_and_options_override():
    from sfnet.cli import _train_params, build_parser

    args = build_parser().parse_args(["train", "data", "--output", "m", "--recipe", "paper",
                                      "--weights", "none", "--epochs", "2"])
    params = _train_params(args)
    for name in ("optimizer", "learning_rate", "batch_size", "crop_size", "image_size",
                 "preprocessing", "augment", "keep_epoch", "standardize_target"):
        assert params[name] == PAPER_RECIPE[name], name
    assert params["epochs"] == 2 and params["weights"] is None
    SparseFeatureNet(**params).validate_params()
    default = _train_params(build_parser().parse_args(["train", "data", "--output", "m"]))
    # without --recipe paper the options are the estimator's own defaults (issue 23)
    assert default["learning_rate"] == 3e-3 and default["optimizer"] == "adamw"
    assert default["weights"] is None and default["epochs"] == 20


def test_paper_recipe_offline_names_the_hub_cache(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.models._api as api

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub-home"))
    images = np.zeros((8, 32, 32, 3), np.uint8)
    model = SparseFeatureNet(k=2, **dict(PAPER_RECIPE, image_size=32, crop_size=28, epochs=1,
                                         progress=False))
    with pytest.raises(RuntimeError, match="torch hub cache") as err:
        model.fit(images, np.arange(8.0))
    assert str(tmp_path / "hub-home") in str(err.value) and "weights=None" in str(err.value)
