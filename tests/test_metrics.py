"""The regression metrics shared by evaluate, the baselines and the demo."""

import numpy as np
import pytest

from sfnet._utils import regression_metrics


def test_metrics_of_known_residuals():
    rng = np.random.default_rng(0)
    truth = rng.normal(9.0, 0.2, 2000)
    resid = rng.normal(0.01, 0.05, 2000)
    resid[:40] += 3.0  # outliers: RMSE feels them, NMAD hardly does
    m = regression_metrics(truth, truth + resid)
    assert m["n"] == 2000
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(resid**2)))
    assert m["bias"] == pytest.approx(resid.mean())
    assert m["r2"] == pytest.approx(1 - np.sum(resid**2) / np.sum((truth - truth.mean()) ** 2))
    # NMAD (astropy.stats.mad_std) equals the former 1.4826 x MAD to rounding
    old = 1.4826 * np.median(np.abs(resid - np.median(resid)))
    assert m["nmad"] == pytest.approx(old, rel=1e-5)
    assert m["nmad"] == pytest.approx(0.05, rel=0.08) and m["rmse"] > 5 * m["nmad"]


def test_non_finite_pairs_are_left_out():
    t = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    p = np.array([1.5, np.inf, 3.0, 4.0, 4.0])
    m = regression_metrics(t, p)
    assert m["n"] == 3
    d = np.array([0.5, 0.0, -1.0])
    assert m["nmad"] == pytest.approx(1.4826 * np.median(np.abs(d - np.median(d))), rel=1e-5)
    empty = regression_metrics([np.nan], [1.0])
    assert empty["n"] == 0 and np.isnan(empty["nmad"])
