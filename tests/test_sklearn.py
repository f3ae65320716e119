"""SparseFeatureNet as a scikit-learn estimator: params, clone, tags, model selection."""

import numpy as np
import pytest
import sklearn.exceptions
from sklearn.base import clone, is_regressor
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_is_fitted

from sfnet import SparseFeatureNet
from sfnet.datasets import make_mock_galaxies
from sfnet.exceptions import NotFittedError

from _synthetic import blobs

TINY = dict(epochs=1, batch_size=8, progress=False, random_state=0)


@pytest.fixture(scope="module")
def sample():
    return make_mock_galaxies(40, image_size=16, seed=3, progress=False).select("metallicity")


@pytest.fixture(scope="module")
def arrays():
    return blobs(32, size=16, seed=0)


@pytest.fixture(scope="module")
def fitted(arrays):
    return SparseFeatureNet(k=2, **TINY).fit(*arrays)


def test_is_a_regressor_with_inherited_params_and_repr():
    model = SparseFeatureNet(k=3, epochs=2)
    assert is_regressor(model)
    assert list(model.get_params()) == sorted(model.get_params())  # BaseEstimator's
    assert repr(model) == "SparseFeatureNet(epochs=2, k=3)"  # changed parameters only
    assert repr(SparseFeatureNet()) == "SparseFeatureNet()"
    with pytest.raises(ValueError, match="invalid parameter 'kk'"):
        model.set_params(kk=1)
    assert model.k == 3  # nothing was set


def test_clone_copies_parameters_not_the_fit(arrays, fitted):
    X = arrays[0]
    twin = clone(fitted)
    assert twin.get_params() == fitted.get_params() and twin is not fitted
    assert not hasattr(twin, "network_")
    with pytest.raises(NotFittedError):
        twin.predict(X)
    check_is_fitted(fitted)
    with pytest.raises(sklearn.exceptions.NotFittedError):
        check_is_fitted(twin)


def test_not_fitted_error_is_scikit_learns():
    assert issubclass(NotFittedError, sklearn.exceptions.NotFittedError)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    with pytest.raises(sklearn.exceptions.NotFittedError, match="not fitted"):
        SparseFeatureNet().predict(np.zeros((2, 16, 16, 3), np.uint8))


def test_sample_indexes_like_an_array_for_cross_validation(sample):
    assert sample.shape == (len(sample),)
    rows = np.array([5, 1, 7])
    for sub in (sample[rows, ...], _safe_indexing(sample, rows)):
        assert type(sub) is type(sample)
        np.testing.assert_array_equal(sub.catalog["objID"], sample.catalog["objID"][rows])
        np.testing.assert_array_equal(sub.images, sample.images[rows])


def test_cross_val_score_on_a_sample_and_its_targets(sample):
    y = np.asarray(sample.catalog["oh_p50"], dtype=float)
    model = SparseFeatureNet(k=2, **TINY)
    cv = KFold(2, shuffle=True, random_state=0)
    scores = cross_val_score(model, sample, y, cv=cv)
    assert scores.shape == (2,) and np.isfinite(scores).all()
    # the first fold by hand: the same rows of the sample, the same R^2
    train, test = next(cv.split(np.arange(len(sample))))
    by_hand = clone(model).fit(sample[train], y[train])
    assert scores[0] == pytest.approx(by_hand.score(sample[test], y[test]), rel=1e-6)
    assert by_hand.n_train_ + by_hand.n_valid_ == len(train)


def test_grid_search_over_k(arrays):
    X, y = arrays
    search = GridSearchCV(SparseFeatureNet(**TINY), {"k": [1, 3]}, cv=2).fit(X, y)
    assert list(search.cv_results_["param_k"]) == [1, 3]
    best = search.best_params_["k"]
    scores = search.cv_results_["mean_test_score"]
    assert best == [1, 3][int(np.argmax(scores))]
    assert search.best_estimator_.network_.k == best
    assert (np.count_nonzero(search.best_estimator_.activations(X), axis=1) <= best).all()


def test_score_is_r2_with_optional_sample_weight(arrays, fitted):
    from sklearn.metrics import r2_score

    X, y = arrays
    model = fitted
    pred = model.predict(X)
    assert model.score(X, y) == pytest.approx(r2_score(y, pred), rel=1e-9)
    w = np.linspace(0.5, 2, len(y))
    assert model.score(X, y, sample_weight=w) == pytest.approx(
        r2_score(y, pred, sample_weight=w), rel=1e-9)
    with pytest.raises(ValueError, match="sample_weight"):
        model.score(X, y, sample_weight=w[:3])


def test_random_state_accepts_a_generator(arrays, tmp_path):
    X, y = arrays[0][:16], arrays[1][:16]
    params = dict(k=1, epochs=1, batch_size=8, progress=False)
    model = SparseFeatureNet(**params, random_state=np.random.default_rng(7))
    first = model.fit(X, y).seed_
    assert first == int(np.random.default_rng(7).integers(2**31 - 1))  # drawn from it
    pred = model.predict(X)
    loaded = SparseFeatureNet.load(model.save(tmp_path / "m"))
    assert loaded.random_state is None and loaded.seed_ == first
    assert model.fit(X, y).seed_ != first  # the generator moved on, as in scikit-learn
    again = SparseFeatureNet(**params, random_state=first).fit(X, y)
    np.testing.assert_array_equal(again.predict(X), pred)
    with pytest.raises(ValueError, match="random_state"):
        SparseFeatureNet(random_state="seven").validate_params()
    with pytest.raises(TypeError, match="random_state must be None, an integer >= 0 or"):
        SparseFeatureNet(random_state=object()).validate_params()


@pytest.mark.parametrize("param, value, guess", [
    ("optimizer", "adamx", "adamw"),
    ("backbone", "resnet19", "resnet18"),
    ("preprocessing", "crop_resize", "crop-resize"),
    ("keep_epoch", "Last", "last"),
])
def test_misspelt_choice_suggests_the_closest(param, value, guess):
    with pytest.raises(ValueError, match=f"{param}.*did you mean '{guess}'") as err:
        SparseFeatureNet(**{param: value}).validate_params()
    assert repr(value) in str(err.value)


def test_far_off_choice_has_no_suggestion():
    with pytest.raises(ValueError, match="optimizer") as err:
        SparseFeatureNet(optimizer="sgd-with-nesterov").validate_params()
    assert "did you mean" not in str(err.value)
