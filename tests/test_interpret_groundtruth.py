"""Tests of sfnet.interpret.latents and sfnet.interpret.universality.

Features are planted (activations that are known functions of known latents),
so what the scores should find is known without training a network.
"""

import numpy as np
import pytest
from astropy.table import Table

import sfnet.datasets
from sfnet import GalaxySample
from sfnet.interpret import intervention_response, latent_recovery, match_features
from sfnet.interpret._core import spearman


# --------------------------------------------------------------------------- latent_recovery

def _latent_catalog(n=600, seed=0):
    rng = np.random.default_rng(seed)
    return Table({
        "objID": np.arange(n),
        "mock_size": rng.uniform(1.0, 5.0, n),
        "mock_tilt": rng.uniform(0.0, 90.0, n),
        "mock_dust": rng.exponential(0.2, n),
        "mock_star": rng.random(n) < 0.2,
        "petroMag_r": rng.normal(16, 1, n),  # not a latent: ignored by default
    })


def _planted(cat, seed=1):
    """Feature 4 = log(size) (+ a little noise) on a random 40 % of galaxies; 0, 1 noise."""
    rng = np.random.default_rng(seed)
    n = len(cat)
    acts = np.zeros((n, 8))
    on = rng.random(n) < 0.4
    acts[on, 4] = np.log(cat["mock_size"][on]) + 0.5 + rng.normal(0, 0.02, on.sum())
    for j in (0, 1):
        acts[:, j] = np.where(rng.random(n) < 0.3, rng.random(n), 0.0)
    return acts, on


@pytest.mark.parametrize("regressor", ["gbm", "lasso"])
def test_latent_recovery_finds_planted_feature(regressor):
    cat = _latent_catalog()
    acts, on = _planted(cat)
    t = latent_recovery(None, cat, activations=acts, regressor=regressor)
    assert set(t["feature"]) == {0, 1, 4}  # the features that fire; 2, 3, 5-7 are dead
    assert t.meta["latents"] == ["size", "tilt", "dust", "star"]  # petroMag_r is no latent
    row = t[t["feature"] == 4][0]
    assert row["latent"] == "size" and row["spearman"] > 0.97
    assert row["latent_mi"] == "size" and row["mutual_info"] == row["mutual_info_max"] > 0.8
    assert abs(row["runner_up_spearman"]) < 0.2
    assert row["fraction_active"] == pytest.approx(on.mean())
    size = t.meta["per_latent"]["size"]
    assert size["features"][0] == 4 and size["best_feature"] == 4
    # only size can be read from the code (and only where feature 4 fires)
    others = [t.meta["per_latent"][k]["informativeness"] for k in ("tilt", "dust", "star")]
    assert size["informativeness"] > 0.03 > max(others)
    # the noise features track nothing: their best |rho| is small
    for j in (0, 1):
        assert abs(t[t["feature"] == j][0]["spearman"]) < 0.25
    # computed where the feature is active: over all galaxies the zeros hide the relation
    assert spearman(acts[:, 4], cat["mock_size"]) < 0.6


def test_latent_recovery_dci_separates_disentangled_from_mixed_codes():
    rng = np.random.default_rng(2)
    n = 800
    z = rng.uniform(0, 1, (n, 3))
    cat = Table({f"mock_z{i}": z[:, i] for i in range(3)})
    clean = z + 0.1  # feature j = latent j
    mixed = z @ np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 0.5], [0.5, 1.0, -1.0]]) + 2.0
    s_clean = latent_recovery(None, cat, activations=clean, regressor="lasso")
    s_mixed = latent_recovery(None, cat, activations=mixed, regressor="lasso")
    assert s_clean.meta["disentanglement"] > 0.9
    assert s_clean.meta["completeness"] > 0.9
    assert s_clean.meta["informativeness"] > 0.95
    assert list(s_clean["latent"]) == [f"z{j}" for j in s_clean["feature"]]
    assert s_mixed.meta["informativeness"] > 0.95  # the same information ...
    assert s_mixed.meta["disentanglement"] < s_clean.meta["disentanglement"] - 0.3  # ... mixed
    assert s_mixed.meta["completeness"] < s_clean.meta["completeness"] - 0.3
    assert s_clean["disentanglement"].min() > 0.9
    importance = np.array(s_clean.meta["importance"])
    assert importance.shape == (3, 3) and np.sum(s_clean["importance"]) == pytest.approx(1.0)


def test_latent_recovery_runs_the_model_on_a_sample_and_selects_latents():
    cat = _latent_catalog(300)
    acts, _ = _planted(cat)
    sample = GalaxySample(np.zeros((len(cat), 8, 8, 3), np.uint8), cat)

    class Fake:
        def activations(self, X, batch_size=None):
            assert X is sample
            return acts.astype(np.float32)

    t = latent_recovery(Fake(), sample, latents=["mock_size", "tilt", "petroMag_r"],
                        regressor="lasso", features=[4, 0])
    assert t.meta["latents"] == ["size", "tilt", "petroMag_r"]
    assert t.meta["latent_columns"] == ["mock_size", "mock_tilt", "petroMag_r"]
    assert list(t["feature"]) == [4, 0]  # only those asked for, most frequent first
    assert t[t["feature"] == 4][0]["latent"] == "size"


def test_latent_recovery_errors_name_what_is_missing():
    cat = _latent_catalog(50)
    acts, _ = _planted(cat)
    with pytest.raises(ValueError, match="mock_"):
        latent_recovery(None, Table({"oh_p50": np.ones(50)}), activations=acts)
    with pytest.raises(ValueError, match="latents.*'inclination'"):
        latent_recovery(None, cat, activations=acts, latents=["inclination"])
    with pytest.raises(ValueError, match="activations has 49 rows"):
        latent_recovery(None, cat, activations=acts[:49])
    with pytest.raises(TypeError, match="model"):
        latent_recovery(None, cat)
    with pytest.raises(ValueError, match="regressor"):
        latent_recovery(None, cat, activations=acts, regressor="forest")
    with pytest.raises(ValueError, match="fires"):
        latent_recovery(None, cat, activations=np.zeros_like(acts))


# --------------------------------------------------------------------------- match_features

def _sparse_acts(n=1000, f=12, seed=0):
    """Sparse non-negative activations, each feature on a random ~20 % of galaxies."""
    rng = np.random.default_rng(seed)
    acts = rng.exponential(1.0, (n, f)) * (rng.random((n, f)) < 0.2)
    acts[:, -2:] = 0.0  # two dead features
    return acts


def test_match_features_of_a_model_with_itself_is_perfect():
    acts = _sparse_acts()
    t = match_features(acts, acts)
    assert list(t["feature_a"]) == list(t["feature_b"])
    assert set(t["feature_a"]) == set(range(10))  # dead features take no part
    np.testing.assert_allclose(t["correlation"], 1.0)
    assert t["matched"].all()
    assert t.meta["matched_fraction"] == 1.0 and t.meta["matched_fraction_b"] == 1.0
    assert t.meta["unmatched_b"] == [] and t.meta["n_matched"] == 10
    assert np.all(np.diff(t["mass_a"]) <= 0) and np.sum(t["mass_a"]) == pytest.approx(1.0)


def test_match_features_recovers_a_permutation_and_scores_independent_fits_lower():
    rng = np.random.default_rng(3)
    acts = _sparse_acts()
    perm = rng.permutation(12)
    noisy = acts[:, perm] * rng.uniform(0.7, 1.3, acts.shape)  # same galaxies, other scale
    noisy = np.column_stack([noisy, np.where(rng.random(len(acts)) < 0.05, 1.0, 0.0)])
    t = match_features(acts, noisy)
    back = {int(a): int(b) for a, b in zip(t["feature_a"], t["feature_b"])}
    assert all(perm[back[j]] == j for j in range(10))  # column back[j] of noisy is feature j
    assert t["correlation"].min() > 0.8
    assert t.meta["matched_fraction"] == 1.0
    assert t.meta["unmatched_b"] == [12]  # the extra feature of model_b has no partner
    other = match_features(acts, _sparse_acts(seed=9))
    assert other.meta["matched_fraction"] < 0.1 < t.meta["matched_fraction"]
    assert np.nanmax(other["correlation"]) < 0.2
    assert not other["matched"].any()
    # a lower threshold counts weaker partners
    assert match_features(acts, _sparse_acts(seed=9), threshold=-1.0).meta[
        "matched_fraction"] == 1.0


def test_match_features_runs_models_and_checks_inputs():
    acts = _sparse_acts(200)
    images = np.zeros((200, 8, 8, 3), np.uint8)

    class Fake:
        def __init__(self, a):
            self.a = a

        def activations(self, X, batch_size=None):
            assert X is images
            return self.a

    t = match_features(Fake(acts), Fake(acts[:, ::-1].copy()), images)
    assert all(a == 11 - b for a, b in zip(t["feature_a"], t["feature_b"]))
    with pytest.raises(ValueError, match="sample"):
        match_features(Fake(acts), Fake(acts))
    with pytest.raises(ValueError, match="rows"):
        match_features(acts, acts[:100])
    with pytest.raises(ValueError, match="threshold"):
        match_features(acts, acts, threshold=2.0)
    with pytest.raises(ValueError, match="non-negative"):
        match_features(acts, -acts)


# --------------------------------------------------------------------------- interventions

PATCH = (slice(3, 9), slice(3, 9), 0)  # rows, columns, channel the latent brightens


class PatchModel:
    """Feature 0 = gain x patch brightness / 10 (rises with the latent), feature 1 =
    brightness of channel 2 (ignores it), feature 2 = 10 - patch / 10 (falls with it);
    feature 3 never fires.  A linear head like an SFNet's."""

    n_features = 4
    head_weights = np.array([[2.0, 1.0, -0.5, 3.0]])
    head_bias = np.array([0.3])
    target_names = ["oh_p50"]

    def __init__(self, gain, input_shape=(12, 12)):
        self.gain = gain
        self.input_shape_ = input_shape

    def activations(self, X, batch_size=None):
        x = np.asarray(getattr(X, "images", X), dtype=np.float64)
        patch = x[:, PATCH[0], PATCH[1], PATCH[2]].mean(axis=(1, 2)) / 10
        out = np.zeros((len(x), 4))
        out[:, 0] = self.gain[:len(x)] * patch
        out[:, 1] = x[..., 2].mean(axis=(1, 2)) / 100
        out[:, 2] = np.maximum(10 - patch, 0)
        return out

    def predict(self, X, batch_size=None):
        return self.activations(X) @ self.head_weights[0] + self.head_bias[0]


def _counterfactuals(values, n=80, size=12, seed=0, latent="glow", scale=10):
    """The same n noisy uint8 galaxies, with the patch brightened by scale x value."""
    rng = np.random.default_rng(seed)
    base = rng.integers(20, 60, (n, size, size, 3))
    out = []
    for v in values:
        img = base.copy()
        img[:, PATCH[0], PATCH[1], PATCH[2]] += int(round(scale * v))
        img = img.astype(np.uint8)
        cat = Table({"objID": np.arange(n), f"mock_{latent}": np.full(n, float(v))})
        out.append(GalaxySample(img, cat))
    return out


def test_intervention_response_recovers_planted_slopes():
    gain = np.random.default_rng(4).uniform(0.5, 1.5, 80)
    model = PatchModel(gain)
    values = [0.0, 1.0, 2.5, 4.0]
    t = intervention_response(model, "glow", values, samples=_counterfactuals(values))
    assert list(t["feature"]) == [0, 1, 2]  # feature 3 never fires
    slope = dict(zip(t["feature"], t["activation_slope"]))
    lo = dict(zip(t["feature"], t["activation_slope_lo"]))
    hi = dict(zip(t["feature"], t["activation_slope_hi"]))
    assert slope[0] == pytest.approx(gain.mean()) and lo[0] < gain.mean() < hi[0]
    assert 0.05 < hi[0] - lo[0] < 0.5  # galaxies respond differently: a real interval
    assert lo[0] > 0.5  # excludes zero
    assert slope[1] == pytest.approx(0.0, abs=1e-12) and lo[1] <= 0 <= hi[1]
    assert slope[2] == pytest.approx(-1.0) and hi[2] < 0
    assert t["mean_activation"].shape == (3, 4)
    np.testing.assert_allclose(t["on_fraction_slope"], 0.0)
    w = model.head_weights[0, t["feature"]]
    np.testing.assert_allclose(t["contribution_slope"], w * t["activation_slope"])
    pred = t.meta["prediction_slope"]["oh_p50"]
    # a linear head: the prediction moves by the sum of the features' contributions
    assert pred["slope"] == pytest.approx(np.sum(t["contribution_slope"]))
    assert pred["slope"] == pytest.approx(2 * gain.mean() + 0.5)
    assert pred["lo"] < pred["slope"] < pred["hi"]
    assert t.meta["values"] == values and t.meta["latent"] == "glow"


def test_intervention_response_reads_values_from_samples_and_checks_them():
    model = PatchModel(np.ones(80))
    samples = _counterfactuals([1.0, 3.0])
    t = intervention_response(model, "mock_glow", samples=samples, n_boot=50)
    assert t.meta["values"] == [1.0, 3.0]
    assert t[t["feature"] == 0][0]["activation_slope"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one sample per value"):
        intervention_response(model, "glow", [1.0, 2.0, 3.0], samples=samples)
    with pytest.raises(ValueError, match="values"):
        intervention_response(model, "glow", [2.0, 2.0], samples=samples)
    with pytest.raises(ValueError, match="values"):
        intervention_response(model, "size", samples=samples)  # no mock_size column
    with pytest.raises(ValueError, match="same galaxies"):
        intervention_response(model, "glow", [1.0, 3.0],
                              samples=[samples[0], samples[1][:40]])
    with pytest.raises(TypeError, match="model"):
        intervention_response(object(), "glow", samples=samples)


def test_intervention_response_renders_mock_interventions_at_the_model_size(monkeypatch):
    calls = []

    def fake_interventions(n, latent, values, *, seed=0, image_size=64):
        calls.append((n, latent, list(values), seed, image_size))
        return _counterfactuals(values, n=n, size=image_size, seed=seed, latent=latent,
                                scale=100)

    monkeypatch.setattr(sfnet.datasets, "MOCK_LATENTS", ("bt", "inclination"), raising=False)
    monkeypatch.setattr(sfnet.datasets, "make_mock_interventions", fake_interventions,
                        raising=False)
    model = PatchModel(np.ones(30), input_shape=(16, 16))
    t = intervention_response(model, "bt", n=30, seed=2, n_boot=50)
    (n, latent, values, seed, size), = calls
    assert (n, latent, seed, size) == (30, "bt", 2, 16)
    # default values: quantiles of B/T in a reference mock, inside its range [0, 1]
    assert len(values) == 5 and np.all(np.diff(values) > 0)
    assert 0 <= values[0] and values[-1] <= 1
    assert t.meta["values"] == pytest.approx(values)
    assert t[t["feature"] == 0][0]["activation_slope"] == pytest.approx(10.0, rel=0.02)
    with pytest.raises(ValueError, match="MOCK_LATENTS"):
        intervention_response(model, "colour", n=30)


# --------------------------------------------------------------------------- a real model

TINY = "groundtruth_test_tiny"


@pytest.fixture(scope="module")
def tiny_model_and_mock():
    """A SparseFeatureNet with a 3-layer trunk (16 features), 2 epochs on 32-px mock galaxies."""
    import torch
    from torch import nn

    from sfnet import SparseFeatureNet
    from sfnet.datasets import make_mock_galaxies
    from sfnet.nn import BACKBONES, register_backbone

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.relu = nn.ReLU()
            self.maxpool = nn.Identity()
            self.layer1 = self.layer2 = self.layer3 = nn.Identity()
            self.layer4 = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
            self.fc = nn.Identity()

    if TINY not in BACKBONES:
        register_backbone(TINY, lambda weights=None: Tiny(), 16)
    sample = make_mock_galaxies(160, image_size=32, seed=0, progress=False).select("metallicity")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = SparseFeatureNet(k=2, backbone=TINY, epochs=2, batch_size=32, progress=False,
                                 device="cpu", random_state=0).fit(sample)
    finally:
        torch.set_num_threads(threads)
    return model, sample


def test_groundtruth_functions_on_a_fitted_model(tiny_model_and_mock):
    model, sample = tiny_model_and_mock
    same = match_features(model, model, sample)
    assert same.meta["matched_fraction"] == 1.0
    assert list(same["feature_a"]) == list(same["feature_b"])

    t = latent_recovery(model, sample, regressor="lasso")
    assert "inclination" in t.meta["latents"] and "oh_hidden" in t.meta["latents"]
    assert set(t["feature"]) == set(np.flatnonzero(model.activations(sample).any(axis=0)))
    assert 0 <= t.meta["disentanglement"] <= 1 and t.meta["informativeness"] <= 1

    # counterfactuals: the same galaxies, brighter in the red channel
    images = np.asarray(sample.images)[:40]
    samples = []
    for d in (0, 20, 40):
        red = images.astype(np.int16)
        red[..., 0] += d
        samples.append(np.clip(red, 0, 255).astype(np.uint8))
    r = intervention_response(model, "red", [0, 20, 40], samples=samples, n_boot=100)
    pred = r.meta["prediction_slope"][model.target_names[0]]
    # linear head: the prediction's change is the sum of the features' contributions
    assert pred["slope"] == pytest.approx(np.sum(r["contribution_slope"]), rel=1e-3, abs=1e-6)
