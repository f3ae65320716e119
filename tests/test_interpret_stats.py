"""Feature statistics, contributions, correlations and ablation on hand-made inputs."""

import numpy as np
import pytest
from astropy.table import Table

from sfnet import interpret

# 6 galaxies x 5 features, at most k = 2 non-zeros per row; feature 3 is dead.
ACTS = np.array([
    [2.0, 0.0, 1.0, 0.0, 0.0],
    [4.0, 0.0, 0.0, 0.0, 3.0],
    [0.0, 1.0, 2.0, 0.0, 0.0],
    [6.0, 0.0, 3.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [1.0, 0.5, 0.0, 0.0, 0.0],
])
W = np.array([[0.1, -0.2, 0.3, 5.0, -0.05],
              [1.0, 2.0, -1.0, 0.0, 0.5]])
B = np.array([8.5, -1.0])


def test_feature_stats_hand_made():
    t = interpret.feature_stats(ACTS)
    assert list(t.colnames) == ["feature", "n_active", "fraction_active",
                                "mean_activation", "max_activation"]
    assert list(t["feature"]) == [0, 2, 1, 4, 3]          # by n_active, ties by index
    assert list(t["n_active"]) == [4, 3, 2, 1, 0]
    np.testing.assert_allclose(t["fraction_active"], [4 / 6, 3 / 6, 2 / 6, 1 / 6, 0])
    np.testing.assert_allclose(t["mean_activation"][:4], [13 / 4, 2.0, 0.75, 3.0])
    assert np.isnan(t["mean_activation"][4])
    np.testing.assert_allclose(t["max_activation"], [6.0, 3.0, 1.0, 3.0, 0.0])
    assert t.meta["n_galaxies"] == 6
    assert t.meta["n_dead"] == 1
    assert t.meta["n_active_features"] == 4
    assert t.meta["max_active_per_galaxy"] == 2
    assert t.meta["mean_active_per_galaxy"] == pytest.approx(10 / 6)
    alive = interpret.feature_stats(ACTS, include_dead=False)
    assert list(alive["feature"]) == [0, 2, 1, 4]


def test_feature_stats_sparse_pair_and_torch():
    import torch

    idx = np.array([[0, 2], [0, 4], [2, 1], [0, 2], [-1, -1], [0, 1]])
    val = np.array([[2.0, 1.0], [4.0, 3.0], [2.0, 1.0], [6.0, 3.0], [0.0, 0.0],
                    [1.0, 0.5]], dtype=np.float32)
    t_sparse = interpret.feature_stats((idx, val), n_features=5)
    t_dense = interpret.feature_stats(torch.from_numpy(ACTS))
    for col in t_dense.colnames:
        np.testing.assert_allclose(t_sparse[col], t_dense[col])
    with pytest.raises(ValueError, match="n_features"):
        interpret.feature_stats((idx, val))


def test_dead_and_active_features():
    assert interpret.dead_features(ACTS).tolist() == [3]
    assert interpret.active_features(ACTS).tolist() == [0, 2, 1, 4]
    assert interpret.active_features(ACTS, min_active=3).tolist() == [0, 2]


def test_bad_activations_are_rejected():
    with pytest.raises(ValueError, match="2-d"):
        interpret.feature_stats(np.zeros(5))
    bad = ACTS.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        interpret.feature_stats(bad)


def test_contributions_sum_exactly_to_predictions():
    t = interpret.contributions((W, B), ACTS)
    pred = ACTS @ W.T + B
    assert t.meta["target_names"] == ["y0", "y1"]
    for j, name in enumerate(["y0", "y1"]):
        total = t[f"bias_{name}"] + np.sum(t[f"contribution_{name}"], axis=1)
        np.testing.assert_allclose(total, pred[:, j], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(t[f"prediction_{name}"], total)
    # features sorted by activation, padded with -1
    assert t["feature"].shape == (6, 2)
    assert t["feature"][1].tolist() == [0, 4]
    assert t["feature"][2].tolist() == [2, 1]
    assert t["feature"][4].tolist() == [-1, -1]
    assert t["n_active"].tolist() == [2, 2, 2, 2, 0, 2]
    np.testing.assert_allclose(t["contribution_y0"][1], [0.4, -0.15])
    np.testing.assert_allclose(t["contribution_y1"][4], [0.0, 0.0])


def test_contributions_from_a_model_like_object_and_ids():
    class Head:
        head_weights = W[:1]
        head_bias = B[:1]
        target_names = ["oh_p50"]
        n_features = 5

    ids = np.arange(6) + 1237648720693755918
    t = interpret.contributions(Head(), ACTS, ids=ids)
    assert t["objID"].tolist() == ids.tolist()
    np.testing.assert_allclose(t["prediction_oh_p50"], ACTS @ W[0] + B[0])
    with pytest.raises(ValueError, match="ids"):
        interpret.contributions(Head(), ACTS, ids=ids[:3])
    with pytest.raises(ValueError, match="features"):
        interpret.contributions(Head(), ACTS[:, :4])


def _catalog():
    t = Table()
    t["objID"] = np.arange(6)
    t["oh_p50"] = [8.6, 8.9, -9999.0, 9.1, 8.4, 8.5]
    t["lgm_tot_p50"] = [9.5, 10.2, 10.8, 10.9, 9.0, 9.4]
    t["sfr_tot_p50"] = [0.1, 0.4, -99.0, 0.8, -0.5, 0.0]
    t["z"] = [0.05, 0.06, 0.07, 0.08, 0.03, 0.1]
    return t


def test_feature_correlations_values_and_valid_rows():
    cat = _catalog()
    t = interpret.feature_correlations(cat, ACTS, model=(W[:1], B[:1]))
    assert list(t["feature"]) == [0, 2, 1, 4]
    # line ratios need flux columns this catalog lacks: skipped, not an error
    assert t.meta["columns"] == ["metallicity", "mass", "sfr", "ssfr", "z"]
    assert set(t.meta["skipped"]) == {"log_nii_ha", "log_oiii_hb"}
    assert t.meta["n_valid"]["metallicity"] == 5          # -9999 excluded
    assert t.meta["n_valid"]["sfr"] == 5                  # -99 excluded
    assert t.meta["n_valid"]["mass"] == 6
    np.testing.assert_allclose(t["weight_y"], W[0, [0, 2, 1, 4]])
    ok = np.array([True, True, False, True, True, True])
    oh = np.asarray(cat["oh_p50"])[ok]
    a0 = ACTS[ok, 0]
    assert t["pearson_metallicity"][0] == pytest.approx(np.corrcoef(a0, oh)[0, 1])
    from scipy.stats import spearmanr
    assert t["spearman_metallicity"][0] == pytest.approx(spearmanr(a0, oh).statistic)
    ssfr = (np.asarray(cat["sfr_tot_p50"]) - np.asarray(cat["lgm_tot_p50"]))[ok]
    assert t["spearman_ssfr"][0] == pytest.approx(spearmanr(a0, ssfr).statistic)


def test_feature_correlations_explicit_columns_and_errors():
    cat = _catalog()
    t = interpret.feature_correlations(cat, ACTS, features=[0, 3], columns=["z", "oh_p50"])
    assert t.meta["columns"] == ["z", "oh_p50"]
    assert np.isnan(t["pearson_z"][1])                    # dead feature: constant
    with pytest.raises(ValueError, match="log_nii_ha"):
        interpret.feature_correlations(cat, ACTS, columns=["log_nii_ha"])
    with pytest.raises(ValueError, match="petroR90_r"):
        interpret.feature_correlations(cat, ACTS, columns=["petroR90_r"])
    with pytest.raises(ValueError, match="rows"):
        interpret.feature_correlations(cat[:4], ACTS)
    with pytest.raises(ValueError, match="out of range"):
        interpret.feature_correlations(cat, ACTS, features=[7])


def test_feature_correlation_matrix():
    m, f = interpret.feature_correlation_matrix(ACTS)
    assert f.tolist() == [0, 2, 1, 4]
    np.testing.assert_allclose(m, np.corrcoef(ACTS[:, f].T), atol=1e-12)
    np.testing.assert_allclose(np.diag(m), 1.0)
    m, f = interpret.feature_correlation_matrix(ACTS, [0, 3])
    assert np.isnan(m[1, 1]) and np.isnan(m[0, 1]) and m[0, 0] == 1.0
    ms, _ = interpret.feature_correlation_matrix(ACTS, [0, 2], method="spearman")
    from scipy.stats import spearmanr
    assert ms[0, 1] == pytest.approx(spearmanr(ACTS[:, 0], ACTS[:, 2]).statistic)
    with pytest.raises(ValueError, match="method"):
        interpret.feature_correlation_matrix(ACTS, method="kendall")


def test_feature_correlation_matrix_l2_normalisation_by_hand():
    # rows (3, 4), (1, 0), (0, 2) become the unit vectors (3/5, 4/5), (1, 0), (0, 1)
    acts = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
    m_l2, f = interpret.feature_correlation_matrix(acts, normalize="l2")
    assert f.tolist() == [0, 1]
    # columns x = (3/5, 1, 0), y = (4/5, 0, 1): sum dx dy = -36/75,
    # sum dx^2 = 114/225, sum dy^2 = 14/25  ->  r = -36 / sqrt(1596)
    assert m_l2[0, 1] == pytest.approx(-36 / np.sqrt(1596), abs=1e-12)
    assert m_l2[1, 0] == m_l2[0, 1]
    np.testing.assert_allclose(np.diag(m_l2), 1.0)
    # without normalisation the same galaxies correlate positively: r = 4 / sqrt(336 / 9)
    m_raw, _ = interpret.feature_correlation_matrix(acts)
    assert m_raw[0, 1] == pytest.approx(4 / np.sqrt(336 / 9), abs=1e-12)
    assert m_raw[0, 1] > 0 > m_l2[0, 1]


def test_feature_correlation_matrix_l2_is_per_galaxy_and_keeps_zero_rows():
    m_l2, f = interpret.feature_correlation_matrix(ACTS, normalize="l2")
    # scaling one galaxy's activations changes nothing after L2 normalisation...
    scaled = ACTS.copy()
    scaled[3] *= 10.0
    m_scaled, _ = interpret.feature_correlation_matrix(scaled, normalize="l2")
    np.testing.assert_allclose(m_scaled, m_l2, atol=1e-12)
    # ...but does change the unnormalised matrix
    assert not np.allclose(interpret.feature_correlation_matrix(scaled)[0],
                           interpret.feature_correlation_matrix(ACTS)[0])
    # galaxy 4 has no active feature: it stays a row of zeros (no NaN)
    assert np.all(np.isfinite(m_l2))
    unit = ACTS / np.maximum(np.linalg.norm(ACTS, axis=1, keepdims=True), 1e-300)
    np.testing.assert_allclose(m_l2, np.corrcoef(unit[:, f].T), atol=1e-12)
    # the sparse pair gives the same matrix
    idx = np.array([[0, 2], [0, 4], [2, 1], [0, 2], [-1, -1], [0, 1]])
    val = np.take_along_axis(ACTS, np.maximum(idx, 0), axis=1) * (idx >= 0)
    m_sparse, _ = interpret.feature_correlation_matrix((idx, val), normalize="l2",
                                                       n_features=5)
    np.testing.assert_allclose(m_sparse, m_l2, atol=1e-12)


@pytest.mark.parametrize("bad", ["L2", "l1", True, 2])
def test_feature_correlation_matrix_rejects_unknown_normalisation(bad):
    with pytest.raises(ValueError, match="normalize"):
        interpret.feature_correlation_matrix(ACTS, normalize=bad)


def test_plot_feature_correlations_says_l2():
    fig = interpret.plot_feature_correlations(ACTS, normalize="l2")
    assert "L2-normalised" in fig.axes[0].get_title()
    fig = interpret.plot_feature_correlations(ACTS)
    assert "L2" not in fig.axes[0].get_title()


def test_ablation_all_kept_equals_full_rmse_and_by_hand():
    rng = np.random.default_rng(1)
    y = ACTS @ W.T + B + rng.normal(0, 0.1, (6, 2))
    y[2, 1] = np.nan                                       # ignored for target 1
    res = interpret.ablation((W, B), None, y, top_n=(1, 2, 10), activations=ACTS)
    pred = ACTS @ W.T + B
    full = [np.sqrt(np.mean((pred[:, 0] - y[:, 0]) ** 2)),
            np.sqrt(np.nanmean((pred[:, 1] - y[:, 1]) ** 2))]
    assert res.full_rmse["y0"] == pytest.approx(full[0])
    assert res.full_rmse["y1"] == pytest.approx(full[1])
    assert res.full_rmse["mean"] == pytest.approx(np.mean(full))
    top = res.top_n
    assert top["n_kept"].tolist() == [1, 2, 4]             # 10 > 4 active: dropped
    assert top["rmse"][-1] == pytest.approx(res.full_rmse["mean"])
    assert top["rmse_y0"][-1] == pytest.approx(full[0])
    # keeping only the most frequent feature (0) by hand
    p1 = ACTS[:, [0]] @ W[:, [0]].T + B
    assert top["rmse_y0"][0] == pytest.approx(np.sqrt(np.mean((p1[:, 0] - y[:, 0]) ** 2)))
    assert top["n_galaxies_changed"].tolist() == [5, 3, 0]
    per = res.per_feature
    assert per["feature"].tolist() == [0, 2, 1, 4]
    p = pred.copy()
    p -= np.outer(ACTS[:, 2], W[:, 2])
    r2 = np.sqrt(np.mean((p[:, 0] - y[:, 0]) ** 2))
    assert per["delta_rmse_y0"][1] == pytest.approx(r2 - full[0])


def test_ablation_validation():
    with pytest.raises(ValueError, match="y"):
        interpret.ablation((W, B), None, np.zeros((4, 2)), activations=ACTS)
    with pytest.raises(ValueError, match="target"):
        interpret.ablation((W, B), None, np.zeros(6), activations=ACTS)
    with pytest.raises(ValueError, match="X"):
        interpret.ablation((W, B), None, np.zeros((6, 2)))
