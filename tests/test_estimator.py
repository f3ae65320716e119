import json

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Column, Table

from sfnet import SparseFeatureNet
from sfnet.exceptions import NotFittedError

from _synthetic import blobs


@pytest.fixture(scope="module")
def data():
    X, y = blobs(400, seed=0)
    Xt, yt = blobs(200, seed=1)
    return X, y, Xt, yt


@pytest.fixture(scope="module")
def fitted(data):
    X, y, _, _ = data
    model = SparseFeatureNet(k=2, target="radius", epochs=6, batch_size=32,
                             progress=False, random_state=0)
    return model.fit(X, y * u.pix)


def test_learns_synthetic_task(fitted, data):
    _, y, Xt, yt = data
    metrics = fitted.evaluate(Xt, yt)["radius"]
    # held-out RMSE far below the target's scatter (std ~2 px)
    assert metrics["rmse"] < 0.4 * yt.std()
    assert metrics["r2"] > 0.8 and metrics["n"] == 200
    assert fitted.score(Xt, yt) == pytest.approx(metrics["r2"])
    assert fitted.target_names == ["radius"] and fitted.target_units_ == ["pix"]
    assert len(fitted.history_) == 6
    best = min(h["valid_rmse"][0] for h in fitted.history_)
    assert fitted.history_[fitted.best_epoch_ - 1]["valid_rmse"][0] == best


def test_predict_equals_sparse_activations_through_head(fitted, data):
    Xt = data[2]
    a = np.asarray(fitted.activations(Xt))
    assert a.shape == (len(Xt), 512) and a.dtype == np.float32
    assert ((a != 0).sum(axis=1) <= 2).all() and (a >= 0).all()
    recon = a @ fitted.head_weights.T + fitted.head_bias
    np.testing.assert_allclose(fitted.predict(Xt), recon[:, 0], rtol=1e-5, atol=1e-5)
    idx, vals = fitted.activations(Xt, sparse=True)
    assert idx.shape == vals.shape == (len(Xt), 2)
    np.testing.assert_array_equal(fitted.sparse_to_dense(idx, vals, 512), a)
    # channels-first input gives the same predictions
    np.testing.assert_allclose(fitted.predict(Xt.transpose(0, 3, 1, 2)), fitted.predict(Xt))


def test_pooled_features_and_maps_consistent(fitted, data):
    Xt = data[2][:8]
    pooled = fitted.pooled_features(Xt)
    a = fitted.activations(Xt)
    feats = np.flatnonzero(a.any(axis=0))[:3]
    maps = fitted.feature_maps(Xt, feats)
    assert maps.shape[:2] == (8, len(feats))
    np.testing.assert_allclose(maps.mean(axis=(2, 3)), pooled[:, feats], rtol=1e-4, atol=1e-5)
    # top-k keeps the largest pooled features
    kept = np.sort(np.argsort(pooled, axis=1)[:, -2:], axis=1)
    nz = [np.sort(np.flatnonzero(r)) for r in a]
    for row, k_idx in zip(nz, kept):
        assert set(row) <= set(k_idx)
    assert fitted.input_images(Xt).shape == (8, 32, 32, 3)


def test_save_load_round_trip(fitted, data, tmp_path):
    Xt = data[2][:20]
    fitted.save(tmp_path / "m")
    loaded = SparseFeatureNet.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(Xt), fitted.predict(Xt))
    assert loaded.get_params()["k"] == 2 and loaded.target_names == ["radius"]
    assert loaded.history_ == fitted.history_
    meta = json.loads((tmp_path / "m" / "sfnet.json").read_text())
    assert meta["preprocessing"]["mean"] == fitted.preprocessor_.mean


def test_tampered_weights_refused(fitted, tmp_path):
    path = fitted.save(tmp_path / "m")
    weights = path / "weights.pt"
    blob = bytearray(weights.read_bytes())
    blob[-100] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="checksum"):
        SparseFeatureNet.load(path)


def test_load_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="sfnet.json"):
        SparseFeatureNet.load(tmp_path)


def test_not_fitted():
    model = SparseFeatureNet()
    for call in (lambda: model.predict(np.zeros((2, 32, 32, 3), np.uint8)),
                 lambda: model.activations(np.zeros((2, 32, 32, 3), np.uint8)),
                 lambda: model.save("never-written")):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def test_params_sklearn_style():
    model = SparseFeatureNet(k=3, epochs=2)
    assert model.get_params()["k"] == 3
    model.set_params(k=4, backbone="resnet34")
    assert model.k == 4 and "k=4" in repr(model)
    with pytest.raises(ValueError, match="invalid parameter 'kk'"):
        model.set_params(kk=1)


IMG = np.zeros((8, 32, 32, 3), np.uint8)
Y = np.arange(8.0)


@pytest.mark.parametrize("params, X, y, exc, match", [
    ({}, IMG, np.r_[Y[:-1], np.nan], ValueError, "y contains 1 NaN"),
    ({}, IMG, np.r_[Y[:-1], np.inf], ValueError, "y contains 1 NaN/inf"),
    ({}, IMG, Y[:5], ValueError, "y has 5 rows but X has 8"),
    ({}, np.zeros((8, 80, 4, 70), np.uint8), Y, ValueError, "cannot tell the band axis"),
    ({}, IMG[0], Y, ValueError, "4 dimensions"),
    ({}, IMG[:0], Y[:0], ValueError, "X is empty"),
    ({}, IMG.astype(np.int32), Y, TypeError, "uint8"),
    ({}, IMG, None, ValueError, "y is required"),
    ({}, IMG, np.array(["a"] * 8), TypeError, "y must be numeric"),
    ({"k": 0}, IMG, Y, ValueError, "k must be"),
    ({"k": 513}, IMG, Y, ValueError, "k=513 exceeds n_features=512"),
    ({"backbone": "vgg16"}, IMG, Y, ValueError, "unknown backbone 'vgg16'"),
    ({"target": 3}, IMG, Y, TypeError, "target must be"),
    ({"epochs": 0}, IMG, Y, ValueError, "epochs must be"),
    ({"batch_size": 2.5}, IMG, Y, ValueError, "batch_size must be"),
    ({"validation_fraction": 1.0}, IMG, Y, ValueError, "validation_fraction"),
    ({"precision": "fp8"}, IMG, Y, ValueError, "precision must be"),
    ({"device": "warp-drive"}, IMG, Y, ValueError, "device 'warp-drive'"),
    ({"crop_size": 64}, IMG, Y, ValueError, "crop_size=64 is larger"),
])
def test_bad_input_raises_before_writing(tmp_path, params, X, y, exc, match):
    ckpt = tmp_path / "ckpt"
    with pytest.raises(exc, match=match):
        SparseFeatureNet(progress=False, **params).fit(X, y, checkpoint_dir=ckpt)
    assert not ckpt.exists()


def test_y_as_table_and_column_name_outputs(data):
    X, y = data[0][:64], data[1][:64]
    t = Table({"r": y * u.pix, "r2": 2 * y})
    model = SparseFeatureNet(k=1, epochs=1, batch_size=32, progress=False,
                             random_state=1).fit(X, t)
    assert model.target_names == ["r", "r2"] and model.predict(X).shape == (64, 2)
    model2 = SparseFeatureNet(k=1, epochs=1, batch_size=32, progress=False,
                              random_state=1).fit(X, Column(y, name="radius"))
    assert model2.target_names == ["radius"]


def test_predict_rejects_mismatched_images(fitted):
    with pytest.raises(ValueError, match="trained on 32x32"):
        fitted.predict(np.zeros((2, 48, 48, 3), np.uint8))
    with pytest.raises(TypeError, match="float images"):
        fitted.predict(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="features must be integers"):
        fitted.feature_maps(np.zeros((2, 32, 32, 3), np.uint8), [600])


def test_evaluate_applies_the_target_cuts_of_a_sample(fitted, data):
    from sfnet import GalaxySample
    from sfnet.exceptions import DataDroppedWarning

    Xt, yt = data[2], data[3]
    catalog = Table({"objID": np.arange(len(yt), dtype=np.int64) + 1, "radius": yt})
    catalog["radius"][:5] = np.nan  # e.g. missing measurements
    sample = GalaxySample(Xt, catalog)
    with pytest.warns(DataDroppedWarning, match="5 of 200 galaxies fail"):
        metrics = fitted.evaluate(sample)["radius"]
    assert metrics["n"] == 195
    expected = fitted.evaluate(Xt[5:], yt[5:])["radius"]
    assert metrics["rmse"] == pytest.approx(expected["rmse"], rel=1e-6)


def test_resume_refuses_changed_hyperparameters_and_reuses_the_seed(data, tmp_path):
    X, y = data[0][:96], data[1][:96]
    ckpt = tmp_path / "ckpt"
    params = dict(k=2, target="radius", epochs=2, batch_size=32, progress=False)
    first = SparseFeatureNet(**params).fit(X, y, checkpoint_dir=ckpt)  # random_state=None
    # an unseeded resume takes the checkpoint's seed instead of refusing
    again = SparseFeatureNet(**params).fit(X, y, checkpoint_dir=ckpt, resume=True)
    assert again.seed_ == first.seed_
    for change in ({"learning_rate": 0.1}, {"augment": False}, {"image_size": 24}):
        with pytest.raises(ValueError, match="different data or parameters"):
            SparseFeatureNet(**params, **change).fit(X, y, checkpoint_dir=ckpt, resume=True)
    with pytest.raises(ValueError, match="different data or parameters"):
        SparseFeatureNet(**params).fit(X, y + 1, checkpoint_dir=ckpt, resume=True)


def test_numpy_integer_parameters_fit_and_save(data, tmp_path):
    X, y = data[0][:64], data[1][:64]
    model = SparseFeatureNet(k=np.int64(2), epochs=np.int64(1), batch_size=np.int64(32),
                             random_state=np.int64(0), progress=False).fit(X, y)
    loaded = SparseFeatureNet.load(model.save(tmp_path / "m"))
    assert loaded.k == 2 and isinstance(loaded.get_params()["batch_size"], int)


def test_not_fitted_for_every_entry_point(data):
    model = SparseFeatureNet()
    X, y = data[2][:4], data[3][:4]
    for call in (lambda: model.activations(X, sparse=True), lambda: model.evaluate(X, y),
                 lambda: model.score(X, y), lambda: model.pooled_features(X)):
        with pytest.raises(NotFittedError):
            call()


def test_load_keeps_the_cuts_of_a_named_target(data, tmp_path):
    from sfnet.targets import get_target

    X, y = data[0][:32], data[1][:32]
    model = SparseFeatureNet(k=1, target="metallicity", epochs=1, batch_size=16,
                             progress=False, random_state=0).fit(X, y)
    loaded = SparseFeatureNet.load(model.save(tmp_path / "m"))
    assert loaded.target_ == get_target("metallicity") and loaded.target_.cuts


def test_fitted_attributes_are_the_fitted_state(fitted):
    import dataclasses

    from sfnet._io import json_safe
    from sfnet._persistence import FittedState

    fields = [f.name for f in dataclasses.fields(FittedState)]
    public = {name for name in vars(fitted) if name.endswith("_") and not name.startswith("_")}
    assert public == {f"{name}_" for name in fields} | {"network_", "device_", "autocast_dtype_"}
    # the JSON form (with the arrays stored beside the weights) round-trips every field
    state = FittedState(**{name: getattr(fitted, f"{name}_") for name in fields})
    again = FittedState.from_json(json.loads(json.dumps(json_safe(state.to_json()))),
                                  state.arrays())
    for name in fields:
        a, b = getattr(state, name), getattr(again, name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b, name
    assert again.seed == fitted.seed_ == 0 and again.n_train + again.n_valid == 400


def test_validation_split_is_the_sample_split():
    from sfnet import GalaxySample
    from sfnet.datasets._split import split_positions

    images = np.zeros((30, 8, 8, 3), np.uint8)
    sample = GalaxySample(images, Table({"objID": np.arange(30, dtype=np.int64) + 10}))
    train, valid = sample.split(0.2, seed=5)
    pos_train, pos_valid = split_positions(30, 0.2, 5)
    np.testing.assert_array_equal(valid.catalog["objID"], pos_valid + 10)
    np.testing.assert_array_equal(train.catalog["objID"], pos_train + 10)
    # fit's rule keeps at least one validation galaxy for a positive fraction
    assert len(split_positions(30, 0.01, 5)[1]) == 0
    assert len(split_positions(30, 0.01, 5, min_valid=1)[1]) == 1
