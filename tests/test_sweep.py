"""``sfnet sweep``: one SFNet per k, the sweep table and its figure."""

import numpy as np
import pytest
from astropy.table import Table

from sfnet.cli import main
from sfnet.datasets import make_mock_galaxies
from sfnet.interpret import plot_k_sweep
from sfnet.sweep import (INTERPRETABILITY_COLUMNS, SWEEP_COLUMNS, TOP_FEATURES,
                         interpretability, run_k_sweep, write_sweep)

N_GALAXIES = 400


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    rc = main(["sweep", "--k", "3", "1", "--epochs", "1", "--image-size", "32",
               "--n-galaxies", str(N_GALAXIES), "--batch-size", "32", "--output", str(out),
               "--no-progress", "--device", "cpu"])
    return rc, out


def test_sweep_writes_a_table_that_round_trips(swept, capsys):
    rc, out = swept
    assert rc == 0
    table = Table.read(out / "sweep.ecsv", format="ascii.ecsv")
    assert tuple(table.colnames) == SWEEP_COLUMNS
    assert list(table["k"]) == [1, 3]
    assert str(table["rmse"].unit) == "dex" and str(table["seconds"].unit) == "s"
    meta = table.meta
    for key in ("mean_rmse", "photometric_gbm_rmse", "photometric_linear_rmse", "oracle_rmse",
                "n_train", "n_valid", "target", "target_std"):
        assert key in meta, key
    assert meta["target"] == "metallicity" and meta["epochs"] == 1 and meta["image_size"] == 32
    assert 0.05 < meta["oracle_rmse"] < 0.12
    assert meta["oracle_rmse"] < meta["photometric_gbm_rmse"]
    assert np.all(np.isfinite(table["rmse"])) and np.all(table["rmse"] > 0)
    assert np.all(table["seconds"] > 0)
    assert (out / "k_sweep.png").stat().st_size > 1000


def test_sweep_sparsity_counts_respect_k(swept):
    _, out = swept
    table = Table.read(out / "sweep.ecsv", format="ascii.ecsv")
    n_valid = table.meta["n_valid"]
    for row in table:
        k = row["k"]
        assert 1 <= row["max_active_per_galaxy"] <= k
        # at most k features per galaxy: the distinct active features are at most k * N
        assert 1 <= row["n_active"] <= min(k * n_valid, table.meta["n_features"])
        assert row["n_frequent"] <= row["n_active"]
    # with fewer than 100 held-out galaxies, every active feature is active in > 1% of them
    assert n_valid < 100
    assert list(table["n_frequent"]) == list(table["n_active"])


def test_sweep_on_a_data_folder(tmp_path):
    sample = make_mock_galaxies(300, image_size=32, seed=4, progress=False)
    sample.save(tmp_path / "data")
    rc = main(["sweep", str(tmp_path / "data"), "--k", "2", "--epochs", "1",
               "--output", str(tmp_path / "out"), "--no-progress", "--device", "cpu"])
    assert rc == 0
    table = Table.read(tmp_path / "out" / "sweep.ecsv", format="ascii.ecsv")
    assert list(table["k"]) == [2] and table["max_active_per_galaxy"][0] <= 2


@pytest.mark.parametrize("ks, exc, match", [
    ([], ValueError, "at least one"),
    ([0, 2], ValueError, ">= 1"),
    ([2, 2], ValueError, "duplicates"),
    ([1.5], TypeError, "integers"),
    ("four", TypeError, "integers"),
])
def test_bad_ks_are_named(ks, exc, match):
    sample = make_mock_galaxies(20, image_size=16, seed=0, progress=False)
    with pytest.raises(exc, match=match):
        run_k_sweep(sample, ks, epochs=1, progress=False)


def test_bad_sample_and_output(tmp_path):
    with pytest.raises(TypeError, match="sample"):
        run_k_sweep(np.zeros((5, 16, 16, 3)), [1])
    (tmp_path / "file").write_text("x")
    assert main(["sweep", "--k", "1", "--output", str(tmp_path / "file"),
                 "--no-progress"]) == 1


def test_plot_k_sweep_draws_the_curve_and_the_references():
    from matplotlib.figure import Figure

    table = Table({"k": [512, 1, 4], "rmse": [0.09, 0.12, 0.10], "nmad": [0.08, 0.1, 0.09],
                   "n_active": [300, 3, 11], "n_frequent": [200, 2, 8]},
                  meta={"mean_rmse": 0.2, "photometric_gbm_rmse": 0.14,
                        "photometric_linear_rmse": float("nan"), "oracle_rmse": 0.08})
    fig = plot_k_sweep(table)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    acc, spars = fig.axes
    labels = [line.get_label() for line in acc.get_lines()]
    assert labels == ["SFNet", "mean predictor", "photometric GBM", "floor (hidden scatter)"]
    sfnet_line = acc.get_lines()[0]
    assert list(sfnet_line.get_xdata()) == [1, 4, 512]           # sorted by k
    assert list(sfnet_line.get_ydata()) == [0.12, 0.10, 0.09]
    floor = acc.get_lines()[3]
    assert list(floor.get_ydata()) == [0.08, 0.08]
    assert acc.get_xscale() == "log"
    slabels = [line.get_label() for line in spars.get_lines()]
    assert slabels == ["active in any galaxy", "active in > 1% of galaxies", "n = k"]
    assert list(spars.get_lines()[0].get_ydata()) == [3, 11, 300]
    # explicit references replace the table's
    fig = plot_k_sweep(table, references={"oracle_rmse": 0.05})
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["SFNet",
                                                                     "floor (hidden scatter)"]


def test_plot_k_sweep_bad_input():
    with pytest.raises(TypeError, match="table"):
        plot_k_sweep([1, 2, 3])
    with pytest.raises(ValueError, match="n_active"):
        plot_k_sweep(Table({"k": [1], "rmse": [0.1]}))
    with pytest.raises(TypeError, match="references"):
        plot_k_sweep(Table({"k": [1], "rmse": [0.1], "n_active": [1]}), references=[0.1])


@pytest.fixture(scope="module")
def swept_seeds(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep_seeds")
    rc = main(["sweep", "--k", "2", "512", "--seeds", "2", "--epochs", "1",
               "--image-size", "16", "--n-galaxies", "600", "--batch-size", "32",
               "--output", str(out), "--no-progress", "--device", "cpu"])
    return rc, out


def test_sweep_with_seeds_measures_interpretability(swept_seeds):
    from sfnet.cli import _format_sweep

    rc, out = swept_seeds
    assert rc == 0
    table = Table.read(out / "sweep.ecsv", format="ascii.ecsv")
    assert list(table["k"]) == [2, 512]
    for column in INTERPRETABILITY_COLUMNS + ("rmse_std",):
        assert column in table.colnames, column
    assert table.meta["seeds"] == 2 and table.meta["top_features"] == TOP_FEATURES
    for column in INTERPRETABILITY_COLUMNS:
        values = np.asarray(table[column], dtype=float)
        assert np.all(np.isfinite(values)), column
        assert np.all((values >= 0) & (values <= 1)), (column, values)
    assert np.all(np.asarray(table["rmse_std"]) >= 0)
    # the table round-trips through sweep.ecsv
    again_path = out / "again"
    write_sweep(table, again_path)
    again = Table.read(again_path / "sweep.ecsv", format="ascii.ecsv")
    assert again.colnames == table.colnames and again.meta.keys() == table.meta.keys()
    for key, value in table.meta.items():
        assert again.meta[key] == value or (value != value and again.meta[key] != again.meta[key])
    for column in table.colnames:
        assert np.allclose(np.asarray(again[column], float), np.asarray(table[column], float),
                           equal_nan=True), column
    # the figure gains the interpretability panel
    fig = plot_k_sweep(table)
    assert len(fig.axes) == 3
    labels = [line.get_label() for line in fig.axes[2].get_lines()]
    assert labels == ["disentanglement (D)", "completeness (C)", "informativeness (I)",
                      "seed match"]
    printed = _format_sweep(table, out)
    assert "match" in printed and "seed(s)" in printed and " - " not in printed


def test_one_seed_has_no_seed_match(swept):
    _, out = swept
    table = Table.read(out / "sweep.ecsv", format="ascii.ecsv")
    assert table.meta["seeds"] == 1
    assert np.all(np.isnan(np.asarray(table["seed_match"], float)))
    assert np.all(np.isnan(np.asarray(table["rmse_std"], float)))


def test_interpretability_scores_of_planted_activations():
    # two "seeds" with the same features, permuted: a perfect seed match; DCI in [0, 1]
    sample = make_mock_galaxies(300, image_size=16, seed=3, progress=False)
    z = np.asarray(sample.catalog["mock_inclination"], float)
    rng = np.random.default_rng(0)
    acts = np.zeros((300, 6))
    acts[:, 1] = (z - z.min()) / np.ptp(z)
    acts[:, 4] = rng.exponential(1.0, 300) * (rng.random(300) < 0.3)
    scores = interpretability([acts, acts[:, ::-1]], sample, top_features=2)
    assert scores["seed_match"] == pytest.approx(1.0)
    for name in ("disentanglement", "completeness", "informativeness"):
        assert 0 <= scores[name] <= 1
    # without mock_* columns only the seed match is measured
    no_latents = interpretability([acts], sample.catalog["objID", "ra"])
    assert all(np.isnan(v) for v in no_latents.values())


@pytest.mark.parametrize("seeds, exc", [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_seeds_are_named(seeds, exc):
    sample = make_mock_galaxies(20, image_size=16, seed=0, progress=False)
    with pytest.raises(exc, match="seeds"):
        run_k_sweep(sample, [1], seeds=seeds, epochs=1, progress=False)
