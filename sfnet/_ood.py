"""How unlike the training set a galaxy is: the out-of-distribution score.

Private module behind `SparseFeatureNet.ood_score`, the ``ood_score`` and
``ood_flag`` columns of `SparseFeatureNet.predict_table` and the report's
"Is this galaxy like the training set?" section.

The score is the **Mahalanobis distance** of a galaxy's pooled features (the
``n_features`` globally averaged ``layer4`` activations, before ReLU and
top-k: `SparseFeatureNet.pooled_features`) from the training galaxies' pooled
features, under a Gaussian with their mean and a Ledoit–Wolf shrinkage
covariance (`sklearn.covariance.LedoitWolf`)::

    score = sqrt((f - mean)^T  C^-1  (f - mean))

Why this and not a k-nearest-neighbour distance: the statistics are a mean and
one ``(d, d)`` matrix (1 MiB for resnet18's 512 features), whatever the
training set's size, and scoring is one matrix product per batch on the
device; a kNN distance would store the training features themselves and search
them for every galaxy.  A shrinkage estimate is needed because the fit uses at
most `MAX_FIT` galaxies for a 512-d (2048-d for resnet50) space: the sample
covariance is then singular or badly conditioned, and its inverse would blow
up directions the training galaxies barely span.  Ledoit–Wolf picks the
shrinkage towards a scaled identity from the data, with no parameter to tune.

The threshold of ``ood_flag`` is the `PERCENTILE` (99th) percentile of the
scores of the fit's **held-out validation galaxies** (``source="validation"``):
about 1 % of new galaxies like the training set are flagged.  Held-out rather
than training galaxies, because the network has fitted its training galaxies
and they lie closer to the mean than new ones do; with
``validation_fraction=0`` the training galaxies' scores set it
(``source="training"``) and more than 1 % of new galaxies are flagged.

`OODStatistics` holds the fitted statistics: `FittedState` stores its numbers
in ``sfnet.json`` and its two arrays in the weights file (tensors, no pickle).
"""

import dataclasses

import numpy as np
import torch

__all__ = ["PERCENTILE", "MAX_FIT", "OODStatistics", "fit_ood", "ood_distance",
           "NO_OOD_STATISTICS"]

#: The percentile of the held-out galaxies' scores above which ``ood_flag`` is set.
PERCENTILE = 99.0

#: At most this many training galaxies (a random subset) estimate the mean and
#: covariance, and at most this many held-out galaxies set the threshold.
MAX_FIT = 2048

#: Prefix of the statistics' arrays in the weights file.
ARRAY_PREFIX = "ood."

#: Why a model without statistics gives no score.
NO_OOD_STATISTICS = (
    "this model has no out-of-distribution statistics: they are fitted by "
    "SparseFeatureNet.fit; the paper's seed checkpoints and models saved by older sfnet "
    "versions have none (refit the model to get ood_score)")


@dataclasses.dataclass(frozen=True, eq=False)
class OODStatistics:
    """The fitted statistics of the out-of-distribution score.

    Parameters
    ----------
    mean : ndarray, shape (d,)
        Mean pooled feature vector of the training galaxies (float32).
    whitener : ndarray, shape (d, d)
        ``W`` with ``W W^T`` the inverse of the shrinkage covariance, so the
        score is ``|| (f - mean) @ W ||`` (float32).
    threshold : float
        ``ood_flag`` is ``score > threshold``.
    percentile : float
        The percentile of the ``source`` galaxies' scores that ``threshold`` is.
    source : {"validation", "training"}
        The galaxies whose scores set the threshold.
    n_fit, n_threshold : int
        Galaxies used for the mean and covariance, and for the threshold.
    shrinkage : float
        The Ledoit–Wolf shrinkage coefficient (0: sample covariance, 1: scaled identity).
    seconds : float
        Wall time the statistics added to ``fit`` (the feature passes and the fit).
    """

    mean: np.ndarray
    whitener: np.ndarray
    threshold: float
    percentile: float = PERCENTILE
    source: str = "validation"
    n_fit: int = 0
    n_threshold: int = 0
    shrinkage: float = 0.0
    seconds: float = 0.0

    def __post_init__(self):
        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1)
        whitener = np.asarray(self.whitener, dtype=np.float32)
        if whitener.shape != (len(mean), len(mean)):
            raise ValueError(f"whitener must be ({len(mean)}, {len(mean)}), got "
                             f"{whitener.shape}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "whitener", whitener)
        for name in ("threshold", "percentile", "shrinkage", "seconds"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("n_fit", "n_threshold"):
            object.__setattr__(self, name, int(getattr(self, name)))

    def __eq__(self, other):
        if not isinstance(other, OODStatistics):
            return NotImplemented
        return self.to_json() == other.to_json() and np.array_equal(self.mean, other.mean) \
            and np.array_equal(self.whitener, other.whitener)

    __hash__ = None

    def score(self, features):
        """The scores ``(N,)`` (float64) of pooled features ``(N, d)``."""
        f = torch.as_tensor(np.asarray(features, dtype=np.float32))
        return ood_distance(f, torch.as_tensor(self.mean),
                            torch.as_tensor(self.whitener)).double().numpy()

    def to_json(self):
        """The numbers (not the arrays) as JSON-ready metadata."""
        return {"method": "mahalanobis-ledoit-wolf", "n_features": len(self.mean),
                "threshold": self.threshold, "percentile": self.percentile,
                "source": self.source, "n_fit": self.n_fit, "n_threshold": self.n_threshold,
                "shrinkage": self.shrinkage, "seconds": self.seconds}

    def arrays(self):
        """The arrays as CPU tensors, keyed for the weights file."""
        return {f"{ARRAY_PREFIX}mean": torch.from_numpy(self.mean.copy()),
                f"{ARRAY_PREFIX}whitener": torch.from_numpy(self.whitener.copy())}

    @classmethod
    def from_parts(cls, meta, arrays):
        """The statistics from `to_json`'s ``meta`` and `arrays`'s ``arrays``."""
        keep = {f.name for f in dataclasses.fields(cls)} - {"mean", "whitener"}
        missing = [k for k in (f"{ARRAY_PREFIX}mean", f"{ARRAY_PREFIX}whitener")
                   if k not in arrays]
        if missing:
            raise ValueError(f"the out-of-distribution statistics lack their arrays {missing} "
                             "(stored in the weights file beside the network's tensors)")
        return cls(mean=arrays[f"{ARRAY_PREFIX}mean"].numpy(),
                   whitener=arrays[f"{ARRAY_PREFIX}whitener"].numpy(),
                   **{k: v for k, v in meta.items() if k in keep})


def ood_distance(features, mean, whitener):
    """Mahalanobis distances ``(N,)`` of ``features`` ``(N, d)`` (tensors on one device).

    Computed in float32 outside any autocast.
    """
    with torch.autocast(device_type=features.device.type, enabled=False):
        z = (features.float() - mean.to(features.device)) @ whitener.to(features.device)
        return torch.linalg.vector_norm(z, dim=1)


def fit_ood(train_features, heldout_features=None, *, percentile=PERCENTILE, seconds=0.0):
    """Fit `OODStatistics` on pooled features.

    Parameters
    ----------
    train_features : array, shape (n, d)
        Pooled features of training galaxies (mean and covariance).
    heldout_features : array, shape (m, d), optional
        Pooled features of held-out galaxies: their scores set the threshold.
        Without them (or with none) the training galaxies' scores do.
    percentile : float
        The percentile of those scores that is the threshold.
    seconds : float
        Recorded as `OODStatistics.seconds`.

    Returns
    -------
    OODStatistics
    """
    from sklearn.covariance import LedoitWolf

    f = np.asarray(train_features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"train_features must be (n >= 2, d), got shape {f.shape}")
    lw = LedoitWolf().fit(f)
    # C = V diag(lam) V^T  ->  W = V diag(lam^-1/2); (f - mean) W has unit covariance
    lam, vec = np.linalg.eigh(lw.covariance_)
    lam = np.maximum(lam, lam.max() * 1e-10)
    whitener = vec / np.sqrt(lam)
    partial = OODStatistics(mean=lw.location_, whitener=whitener, threshold=np.inf)
    held = None if heldout_features is None else np.asarray(heldout_features)
    source, ref = ("validation", held) if held is not None and len(held) else ("training", f)
    scores = partial.score(ref)
    return dataclasses.replace(
        partial, threshold=float(np.percentile(scores, percentile)), percentile=percentile,
        source=source, n_fit=len(f), n_threshold=len(ref), shrinkage=float(lw.shrinkage_),
        seconds=seconds)
