"""SparseFeatureNet.predict_table and the writer behind ``sfnet predict``."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import QTable, Table

from sfnet import GalaxySample, SparseFeatureNet
from sfnet._tables import write_prediction_table
from sfnet.catalog import LOG_FLUX_UNIT
from sfnet.datasets import make_mock_galaxies
from sfnet.exceptions import NotFittedError
from sfnet.targets import get_target

TINY = dict(epochs=1, batch_size=16, progress=False, random_state=0)


@pytest.fixture(scope="module")
def mock():
    return make_mock_galaxies(160, image_size=32, seed=3, progress=False)


@pytest.fixture(scope="module")
def metallicity(mock):
    sample = mock.select("metallicity")
    return SparseFeatureNet(k=3, **TINY).fit(sample), sample


def _sum_of_contributions(table, name, k):
    return sum(table[f"{name}_contribution_{i}"].value for i in range(1, k + 1))


def test_columns_ids_units_and_positions(metallicity):
    model, sample = metallicity
    table = model.predict_table(sample)
    assert isinstance(table, QTable) and len(table) == len(sample)
    assert table.colnames == (
        ["objID", "coord", "oh_p50_pred"] + [f"feature_{i}" for i in (1, 2, 3)]
        + [f"activation_{i}" for i in (1, 2, 3)]
        + [f"oh_p50_contribution_{i}" for i in (1, 2, 3)] + ["ood_score", "ood_flag"])
    # 64-bit SDSS ids, exact: many of them are not representable as float64.
    ids = np.asarray(sample.catalog["objID"])
    assert table["objID"].dtype == np.int64 and np.array_equal(table["objID"], ids)
    assert (ids > 2**53).all() and (ids.astype(np.float64).astype(np.int64) != ids).any()
    # The unit is the target's, from sfnet.targets.
    assert table["oh_p50_pred"].unit == u.Unit(get_target("metallicity").units[0]) == u.dex
    assert table["oh_p50_contribution_1"].unit == u.dex
    assert isinstance(table["coord"], SkyCoord)
    assert np.allclose(table["coord"].ra.deg, sample.catalog["ra"])
    assert np.allclose(table["coord"].dec.deg, sample.catalog["dec"])
    np.testing.assert_allclose(table["oh_p50_pred"].value, model.predict(sample))
    assert table.meta["k"] == 3 and table.meta["targets"] == ["oh_p50"]


def test_features_and_contributions_add_up(metallicity):
    model, sample = metallicity
    table = model.predict_table(sample)
    idx, vals = model.activations(sample, sparse=True)
    feats = np.stack([table[f"feature_{i}"] for i in (1, 2, 3)], axis=1)
    acts = np.stack([table[f"activation_{i}"] for i in (1, 2, 3)], axis=1)
    np.testing.assert_array_equal(feats, idx)
    np.testing.assert_array_equal(acts, vals)
    # ranked by activation; unused slots are -1 / 0
    assert (np.diff(acts, axis=1) <= 0).all()
    assert ((feats >= 0) == (acts > 0)).all()
    dense = np.asarray(model.activations(sample))
    assert ((dense > 0).sum(axis=1) == (feats >= 0).sum(axis=1)).all()
    # prediction = head bias + sum of the k contributions
    bias = model.head_bias[0]
    assert table.meta["head_bias"]["oh_p50"] == pytest.approx(bias)
    np.testing.assert_allclose(bias + _sum_of_contributions(table, "oh_p50", 3),
                               table["oh_p50_pred"].value, rtol=1e-5, atol=1e-5)
    # each contribution is head weight x activation of its feature
    w = model.head_weights[0]
    row = int(np.argmax(acts[:, 0]))
    assert table["oh_p50_contribution_1"][row].value == pytest.approx(
        w[feats[row, 0]] * acts[row, 0], rel=1e-6)


def test_log_flux_targets_carry_dex_of_the_flux_unit(mock):
    sample = mock.select("bpt_lines")
    model = SparseFeatureNet(k=2, target="bpt_lines", **TINY).fit(sample)
    table = model.predict_table(sample[:10])
    flux = u.Unit(LOG_FLUX_UNIT)
    for j, name in enumerate(get_target("bpt_lines").columns):
        col = table[f"{name}_pred"]
        assert col.unit == flux and isinstance(col, u.Dex)
        assert table[f"{name}_contribution_1"].unit == u.dex
        total = model.head_bias[j] + _sum_of_contributions(table, name, 2)
        np.testing.assert_allclose(total, col.value, rtol=1e-5, atol=1e-5)


def test_image_array_has_no_ids_or_positions(metallicity):
    model, sample = metallicity
    table = model.predict_table(np.asarray(sample.images[:4]))
    assert table.colnames[0] == "oh_p50_pred" and "objID" not in table.colnames
    # a catalog without ra/dec: objID but no coord
    catalog = Table({"objID": sample.catalog["objID"][:4]})
    table = model.predict_table(GalaxySample(sample.images[:4], catalog))
    assert table.colnames[:2] == ["objID", "oh_p50_pred"]


def test_return_std_columns(metallicity, monkeypatch):
    # Only the table's side: predict(X, return_std=True) gives (mean, std).
    model, sample = metallicity
    plain = model._predict_with_features
    std = np.linspace(0.05, 0.1, len(sample))

    def predict(X, return_std=False, batch_size=None, return_ood=False):
        pred, _, idx, vals, *ood = plain(X, False, batch_size, return_ood=return_ood)
        return (pred, (std[:, None] if return_std else None), idx, vals, *ood)

    monkeypatch.setattr(model, "_predict_with_features", predict)
    table = model.predict_table(sample, return_std=True)
    assert table.colnames[2:4] == ["oh_p50_pred", "oh_p50_std"]
    assert table["oh_p50_std"].unit == u.dex
    np.testing.assert_allclose(table["oh_p50_std"].value, std)
    with pytest.raises(TypeError, match="return_std"):
        model.predict_table(sample, return_std="yes")


def test_not_fitted():
    with pytest.raises(NotFittedError):
        SparseFeatureNet(k=2).predict_table(np.zeros((2, 32, 32, 3), np.uint8))


@pytest.mark.parametrize("ext", [".ecsv", ".fits", ".csv"])
def test_formats_round_trip(metallicity, tmp_path, ext):
    model, sample = metallicity
    table = model.predict_table(sample)
    path = write_prediction_table(table, tmp_path / f"pred{ext}")
    assert not list(tmp_path.glob(".*tmp"))
    back = (Table.read(path, format="ascii.csv") if ext == ".csv" else QTable.read(path))
    assert np.array_equal(np.asarray(back["objID"], dtype=np.int64), table["objID"])
    assert back["objID"].dtype.kind == "i" and back["objID"].dtype.itemsize == 8
    if ext == ".ecsv":
        assert back.colnames == table.colnames and isinstance(back["coord"], SkyCoord)
        assert back.meta["head_bias"] == table.meta["head_bias"]
    else:  # plain ra, dec columns instead of the SkyCoord
        assert back.colnames[:3] == ["objID", "ra", "dec"]
        assert back.colnames[3:] == table.colnames[2:]
    ra = back["coord"].ra.deg if ext == ".ecsv" else np.asarray(back["ra"])
    np.testing.assert_allclose(ra, table["coord"].ra.deg)
    for name in ("oh_p50_pred", "oh_p50_contribution_1"):
        np.testing.assert_allclose(np.asarray(getattr(back[name], "value", back[name])),
                                   table[name].value)
        if ext != ".csv":
            assert back[name].unit == u.dex
    for name in ("feature_1", "feature_3"):
        np.testing.assert_array_equal(back[name], table[name])
    if ext == ".fits":  # flattened metadata
        assert back.meta["head_bias_oh_p50"] == pytest.approx(table.meta["head_bias"]["oh_p50"])


def test_bad_extension_names_the_output(metallicity, tmp_path):
    model, sample = metallicity
    table = model.predict_table(sample[:2])
    bad = tmp_path / "pred.txt"
    with pytest.raises(ValueError, match=r"output .*pred\.txt.*\.ecsv"):
        write_prediction_table(table, bad)
    assert not bad.exists() and not list(tmp_path.iterdir())


def test_qtable_and_dataframe_catalogs_train_and_predict_alike(mock, metallicity):
    # A QTable catalog (Quantity columns) trains and predicts like the Table it came from.
    model, sample = metallicity
    q = GalaxySample(sample.images, QTable(sample.catalog))
    assert isinstance(q.catalog, QTable) and isinstance(q.catalog["oh_p50"], u.Quantity)
    a = model.predict_table(sample)
    b = model.predict_table(q)
    np.testing.assert_array_equal(a["objID"], b["objID"])
    np.testing.assert_allclose(a["oh_p50_pred"].value, b["oh_p50_pred"].value)
    assert model.evaluate(q) == model.evaluate(sample)
    refit = SparseFeatureNet(k=3, **TINY).fit(q)
    np.testing.assert_allclose(refit.predict(sample), model.predict(sample), rtol=1e-4,
                               atol=1e-4)
    pytest.importorskip("pandas")
    df = GalaxySample(sample.images, sample.to_pandas())
    np.testing.assert_allclose(model.predict_table(df)["oh_p50_pred"].value,
                               a["oh_p50_pred"].value)


def test_return_std_matches_the_models_error_bars(metallicity):
    model, sample = metallicity
    mean, std = model.predict(sample, return_std=True)
    table = model.predict_table(sample, return_std=True)
    np.testing.assert_allclose(table["oh_p50_pred"].value, mean, rtol=1e-12)
    np.testing.assert_allclose(table["oh_p50_std"].value, std, rtol=1e-12)
    assert np.all(table["oh_p50_std"].value > 0)
