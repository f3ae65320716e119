"""interpret.activation_stability / feature_stability and the symmetry="d4" estimator."""

import numpy as np
import pytest

from _synthetic import blobs
from sfnet import SparseFeatureNet
from sfnet.interpret import activation_stability, dihedral_images, feature_stability

FAST = {"epochs": 1, "batch_size": 16, "progress": False, "random_state": 0,
        "precision": "fp32", "device": "cpu"}


@pytest.fixture(scope="module")
def data():
    return blobs(48, 32, seed=0)


@pytest.fixture(scope="module")
def plain_model(data):
    images, r = data
    return SparseFeatureNet(k=3, **FAST).fit(images, r)


@pytest.fixture(scope="module")
def d4_model(data):
    images, r = data
    return SparseFeatureNet(k=3, symmetry="d4", **FAST).fit(images, r)


def _symmetrise(images):
    """Images equal to all their dihedral transforms (the mean over the group)."""
    return np.round(np.mean(dihedral_images(images), axis=0)).astype(np.uint8)


def test_dihedral_images():
    x = np.arange(2 * 4 * 4 * 3).reshape(2, 4, 4, 3)
    out = dihedral_images(x)
    assert len(out) == 8 and all(o.shape == x.shape for o in out)
    assert np.array_equal(out[0], x) and np.array_equal(out[4], x.transpose(0, 2, 1, 3))
    assert len({o.tobytes() for o in out}) == 8
    chw = dihedral_images(x.transpose(0, 3, 1, 2), channels_last=False)
    assert all(np.array_equal(a, b.transpose(0, 2, 3, 1)) for a, b in zip(out, chw, strict=True))
    sym = _symmetrise(x.astype(np.uint8))
    assert all(np.array_equal(o, sym) for o in dihedral_images(sym))
    with pytest.raises(ValueError, match="square"):
        dihedral_images(np.zeros((1, 4, 5, 3)))


def test_table_columns_and_types(plain_model, data):
    images, _ = data
    table = activation_stability(plain_model, images[:12], seed=1)
    assert table.colnames == ["n_active", "same_set_dihedral", "jaccard_dihedral",
                              "same_set_noise", "jaccard_noise"]
    assert len(table) == 12
    assert table["same_set_dihedral"].dtype == bool and table["same_set_noise"].dtype == bool
    for col in ("jaccard_dihedral", "jaccard_noise"):
        assert np.all((table[col] >= 0) & (table[col] <= 1))
        # identical sets <=> Jaccard 1
    assert np.array_equal(table["same_set_noise"], table["jaccard_noise"] == 1)
    assert np.all(table["jaccard_dihedral"][table["same_set_dihedral"]] == 1)
    assert np.all(table["n_active"] <= 3)
    assert table.meta["noise_dn"] == 1 and table.meta["seed"] == 1
    # seeded: the same table again
    again = activation_stability(plain_model, images[:12], seed=1)
    assert np.array_equal(again["jaccard_noise"], table["jaccard_noise"])


def test_known_answers(plain_model, d4_model, data):
    images, _ = data
    # A d4 model is invariant: identical active sets under all 8 transforms.
    table = activation_stability(d4_model, images[:16])
    assert table["same_set_dihedral"].all() and np.all(table["jaccard_dihedral"] == 1)
    # Any model gives identical sets for images that are themselves symmetric.
    table = activation_stability(plain_model, _symmetrise(images[:8]))
    assert table["same_set_dihedral"].all()
    # ... but not for the plain model on ordinary images (so the test can fail).
    table = activation_stability(plain_model, images)
    assert not table["same_set_dihedral"].all()
    # Large noise changes the explanation of some galaxies.
    table = activation_stability(plain_model, images, noise_dn=60)
    assert not table["same_set_noise"].all()


def test_feature_stability(plain_model, d4_model, data):
    images, _ = data
    table = feature_stability(d4_model, images[:16])
    assert table.colnames == ["feature", "n_active", "stay_dihedral", "stay_noise"]
    assert np.all(table["stay_dihedral"] == 1)
    assert np.all(np.diff(table["n_active"]) <= 0)  # most often active first
    acts = np.asarray(d4_model.activations(images[:16]))
    assert sorted(table["feature"]) == sorted(np.flatnonzero((acts > 0).any(axis=0)))
    assert int(table["n_active"].sum()) == int((acts > 0).sum())
    plain = feature_stability(plain_model, images)
    assert np.all((plain["stay_dihedral"] >= 0) & (plain["stay_dihedral"] <= 1))
    assert plain["stay_dihedral"].min() < 1
    full = feature_stability(plain_model, images[:4], include_inactive=True)
    assert len(full) == plain_model.n_features and np.isnan(full["stay_noise"]).any()


def test_sample_input_has_objid_and_bad_arguments(plain_model):
    from sfnet.datasets import make_mock_galaxies

    sample = make_mock_galaxies(6, image_size=32, seed=0, progress=False)
    table = activation_stability(plain_model, sample)
    assert table.colnames[0] == "objID" and list(table["objID"]) == list(sample.catalog["objID"])
    with pytest.raises(ValueError, match="noise_dn"):
        activation_stability(plain_model, sample, noise_dn=0)
    with pytest.raises(TypeError, match="noise_dn"):
        activation_stability(plain_model, sample, noise_dn="1")
    with pytest.raises(TypeError, match="seed"):
        activation_stability(plain_model, sample, seed=1.5)
    with pytest.raises(ValueError, match="chunk_size"):
        feature_stability(plain_model, sample, chunk_size=0)
    with pytest.raises(TypeError, match="model"):
        activation_stability(object(), sample)


def test_d4_estimator_is_invariant_and_persisted(d4_model, data, tmp_path):
    images, _ = data
    pred = d4_model.predict(images[:8])
    acts = d4_model.activations(images[:8])
    for version in dihedral_images(images[:8])[1:]:
        np.testing.assert_allclose(d4_model.predict(version), pred, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(d4_model.activations(version) != 0, acts != 0)
    assert "symmetry='d4'" in repr(d4_model)
    d4_model.save(tmp_path / "m")
    loaded = SparseFeatureNet.load(tmp_path / "m", device="cpu", precision="fp32")
    assert loaded.symmetry == "d4" and loaded.network_.symmetry == "d4"
    np.testing.assert_allclose(loaded.predict(images[:8]), pred, rtol=1e-6)
    with pytest.raises(ValueError, match="symmetry"):
        SparseFeatureNet(k=2, symmetry="D4").validate_params()
