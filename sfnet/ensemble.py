"""`SparseFeatureEnsemble`: a deep ensemble of Sparse Feature Networks.

Deep ensembles (Lakshminarayanan, Pritzel & Blundell 2017) train the same
network several times from different random seeds and average the
predictions.  Their spread measures the *epistemic* uncertainty (what the
training data did not pin down, and what grows away from it); each member's
variance head the *aleatoric* one (the scatter the images cannot explain).

The ensemble is a scikit-learn estimator with the parameters of
`~sfnet.SparseFeatureNet` plus ``n_members``.  Member ``i`` is a
``SparseFeatureNet`` with the same parameters and ``random_state = seed + i``:
another initialisation, another order of the training galaxies, other
augmentation draws and, with ``validation_fraction > 0``, another validation
split (so the members also see slightly different training galaxies).

Costs: training and inference take ``n_members`` times those of one model
(the members are trained one after the other), and a saved ensemble is
``n_members`` model directories.

Explanations are per member: ``ensemble.members_[i].activations(X)`` are the
active features of member ``i``; the members learn different feature
indices, which `sfnet.interpret.match_features` aligns.  The
``feature_*``/``activation_*``/``*_contribution_*`` columns of
`SparseFeatureEnsemble.predict_table` are member 0's explanation of its own
prediction ``{target}_pred_member0``.
"""

import json
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from ._inputs import scoring_truth
from ._io import atomic_write_json, json_safe
from ._labelerror import (calibration_sigma, check_label_error, fit_std_scale_with_labels,
                          label_error_json)
from ._params import StrictSetParams
from ._utils import regression_metrics
from .estimator import SparseFeatureNet
from .exceptions import NotFittedError

__all__ = ["SparseFeatureEnsemble", "ENSEMBLE_FORMAT", "ENSEMBLE_META"]

ENSEMBLE_FORMAT = "sfnet-ensemble/1"
#: The metadata file of a saved ensemble (beside ``member_0/`` ... ``member_{n-1}/``).
ENSEMBLE_META = "sfnet-ensemble.json"

_MEMBER_PARAMS = tuple(SparseFeatureNet._get_param_names())


def _member_dir(i):
    return f"member_{i}"


class SparseFeatureEnsemble(StrictSetParams, RegressorMixin, BaseEstimator):
    """A deep ensemble of `~sfnet.SparseFeatureNet` models with a total uncertainty.

    Parameters
    ----------
    n_members : int
        Number of networks (5 is the usual choice).
    **params
        Parameters of `~sfnet.SparseFeatureNet` (``k``, ``target``, ``epochs``,
        ...), the same for every member; ``random_state`` seeds member ``i``
        with ``random_state + i`` (an integer is drawn first when it is None
        or a generator).

    Attributes
    ----------
    members_ : list of SparseFeatureNet
        The fitted members.
    seed_ : int
        The seed of member 0.
    member_seconds_ : list of float
        Wall-clock training time of each member.

    Notes
    -----
    ``predict(X, return_std=True)`` returns the total standard deviation
    ``sqrt(aleatoric**2 + epistemic**2)``: the aleatoric variance is the mean
    of the members' calibrated variances, the epistemic variance the variance
    (over members, ``ddof=0``) of their means.  Each member calibrates its own
    error bars (see :doc:`/uncertainty`); the epistemic term is added on top,
    uncalibrated.

    Examples
    --------
    >>> import numpy as np
    >>> from sfnet import SparseFeatureEnsemble
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 255, size=(16, 16, 16, 3), dtype=np.uint8)
    >>> y = images.mean(axis=(1, 2, 3)) / 255
    >>> ens = SparseFeatureEnsemble(2, k=2, epochs=1, batch_size=8, progress=False,
    ...                             random_state=0).fit(images, y)
    >>> mean, std = ens.predict(images, return_std=True)
    >>> mean.shape, bool((std > 0).all())
    ((16,), True)
    """

    def __init__(self, n_members=5, **params):
        unknown = sorted(set(params) - set(_MEMBER_PARAMS))
        if unknown:
            raise TypeError(f"SparseFeatureEnsemble got unknown parameter(s) {unknown}; "
                            f"valid: n_members and {list(_MEMBER_PARAMS)}")
        self.n_members = n_members
        defaults = SparseFeatureNet().get_params(deep=False)
        for name in _MEMBER_PARAMS:
            setattr(self, name, params.get(name, defaults[name]))

    @classmethod
    def _get_param_names(cls):
        return sorted(("n_members",) + _MEMBER_PARAMS)

    def member_params(self):
        """The `~sfnet.SparseFeatureNet` parameters shared by the members."""
        return {name: getattr(self, name) for name in _MEMBER_PARAMS}

    def validate_params(self):
        """Check ``n_members`` and the members' parameters (`SparseFeatureNet.validate_params`)."""
        n = self.n_members
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n_members must be a positive integer, got {n!r}")
        return SparseFeatureNet(**self.member_params()).validate_params()

    # ------------------------------------------------------------------ fit
    def _base_seed(self):
        rs = self.random_state
        if isinstance(rs, np.random.RandomState):
            return int(rs.randint(2**31 - 1))
        if isinstance(rs, np.random.Generator):
            return int(rs.integers(2**31 - 1))
        if rs is None:
            return int(np.random.default_rng().integers(2**31 - 1))
        return int(rs)

    def fit(self, X, y=None, *, checkpoint_dir=None, resume=False):
        """Train the members one after the other.

        Parameters
        ----------
        X, y
            As in `SparseFeatureNet.fit`.
        checkpoint_dir : path-like, optional
            Member ``i`` writes its checkpoints to ``checkpoint_dir/member_i``.
        resume : bool
            Continue each member from its checkpoint (finished members are
            restored without training).

        Returns
        -------
        self
        """
        self.validate_params()
        if resume and checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        seed = self._base_seed()
        members, seconds = [], []
        for i in range(int(self.n_members)):
            member = SparseFeatureNet(**{**self.member_params(), "random_state": seed + i})
            t0 = time.perf_counter()
            member.fit(X, y, resume=resume,
                       checkpoint_dir=None if checkpoint_dir is None
                       else Path(checkpoint_dir) / _member_dir(i))
            seconds.append(time.perf_counter() - t0)
            members.append(member)
        self.members_, self.seed_, self.member_seconds_ = members, seed, seconds
        self.std_scale_ = self.calibration_ = None  # see calibrate_uncertainty
        return self

    def calibrate_uncertainty(self, X, y=None, *, batch_size=None):
        """Calibrate the ensemble's total error bar on galaxies no member trained on.

        Each member's error bar is calibrated alone (`SparseFeatureNet.fit`);
        adding the spread of the members' means to it makes the total too large
        (measured on the mock: 68/95 % intervals covering 73/97 %).  This refits every
        member's factor on ``X`` (`SparseFeatureNet.calibrate_uncertainty`),
        then one factor per target for the total (``std_scale_``; the
        aleatoric and epistemic parts are scaled alike), as the members' own
        are: from the coverage of the 68 % and 95 % intervals or, with catalog
        label errors, by maximum likelihood of ``(s total)**2 + label**2``.
        ``sfnet train --members`` calls it on the galaxies it holds out.

        Parameters
        ----------
        X : GalaxySample or array
            Labelled galaxies that no member trained on.
        y : array, optional
            Targets; taken from the sample's catalog when omitted.

        Returns
        -------
        self
        """
        from .interpret.calibration import ONE_SIGMA, coverage, fit_std_scale

        members = self._fitted_members()
        for member in members:
            member.calibrate_uncertainty(X, y, batch_size=batch_size)
        truth, rows = scoring_truth(X, y, members[0].target_)
        label = calibration_sigma(self.label_error, X, y, members[0].target_, truth.shape[1])
        X = X[rows] if len(rows) < len(X) else X
        self.std_scale_ = np.ones(truth.shape[1])
        mean, alea, epi = (a.reshape(len(truth), -1)
                           for a in self.predict_components(X, batch_size=batch_size))
        total = np.hypot(alea, epi)
        resid = truth - mean
        if label is None:
            scale = fit_std_scale(resid, total)
            after = total * scale
        else:
            scale = fit_std_scale_with_labels(resid, total, label)
            after = np.hypot(total * scale, label)
        cov = coverage(resid, 0.0, after, nominal=(ONE_SIGMA, 0.95))
        self.std_scale_ = np.asarray(scale, dtype=np.float64)
        self.calibration_ = {"n": len(truth), "scale": self.std_scale_.tolist(),
                             "coverage_68": cov[0].tolist(), "coverage_95": cov[1].tolist()}
        return self

    def _std_scale(self, n_targets):
        """The total's calibration factor per target (ones until `calibrate_uncertainty`)."""
        scale = getattr(self, "std_scale_", None)
        return np.ones(n_targets) if scale is None else np.asarray(scale, dtype=np.float64)

    # ------------------------------------------------------------------ fitted state
    def __sklearn_is_fitted__(self):
        return hasattr(self, "members_")

    def _fitted_members(self):
        if not self.__sklearn_is_fitted__():
            raise NotFittedError("this SparseFeatureEnsemble is not fitted yet; call fit() "
                                 "or SparseFeatureEnsemble.load() first")
        return self.members_

    @property
    def target_(self):
        return self._fitted_members()[0].target_

    @property
    def target_names_(self):
        return self._fitted_members()[0].target_names_

    @property
    def target_units_(self):
        return self._fitted_members()[0].target_units_

    @property
    def target_names(self):
        """Names of the predicted columns."""
        return list(self.target_names_)

    # ------------------------------------------------------------------ inference
    def _moments(self, X, batch_size=None):
        """Members' means and calibrated standard deviations, each ``(M, N, T)``."""
        means, stds = [], []
        for member in self._fitted_members():
            mean, std = member.predict(X, batch_size=batch_size, return_std=True)
            means.append(np.asarray(mean, dtype=np.float64).reshape(len(mean), -1))
            stds.append(np.asarray(std, dtype=np.float64).reshape(len(mean), -1))
        return np.stack(means), np.stack(stds)

    def predict_components(self, X, *, batch_size=None):
        """Mean and the two parts of its 1σ uncertainty.

        Returns
        -------
        mean, std_aleatoric, std_epistemic : ndarray
            ``(N,)`` for one target, ``(N, T)`` otherwise: the mean of the
            members' means, the square root of the mean of their calibrated
            variances, and the standard deviation of their means (``ddof=0``);
            both parts times ``std_scale_`` after `calibrate_uncertainty`.
        """
        means, stds = self._moments(X, batch_size)
        scale = self._std_scale(means.shape[2])
        out = (means.mean(axis=0), np.sqrt((stds ** 2).mean(axis=0)) * scale,
               means.std(axis=0) * scale)
        return tuple(a[:, 0] for a in out) if means.shape[2] == 1 else out

    def predict(self, X, *, batch_size=None, return_std=False, return_cov=False):
        """The mean of the members' predictions, optionally with its total uncertainty.

        Parameters
        ----------
        X : GalaxySample or array
        batch_size : int, optional
        return_std : bool
            Also return ``sqrt(std_aleatoric**2 + std_epistemic**2)``
            (`predict_components`).
        return_cov : bool
            Return ``(mean (N, T), cov (N, T, T))``: the mean of the members'
            covariances plus the covariance of their means (members of two
            or more targets, see `SparseFeatureNet.predict`).

        Returns
        -------
        mean : ndarray
            ``(N,)`` for one target, ``(N, T)`` otherwise.
        std : ndarray
            Only with ``return_std``; same shape.
        """
        if return_cov:
            parts = [m.predict(X, batch_size=batch_size, return_cov=True)
                     for m in self._fitted_members()]
            means = np.stack([p[0] for p in parts])
            mean = means.mean(axis=0)
            dev = means - mean
            cov = np.mean([p[1] for p in parts], axis=0) \
                + np.einsum("mni,mnj->nij", dev, dev) / len(parts)
            scale = self._std_scale(mean.shape[1])
            return mean, cov * scale[:, None] * scale[None, :]
        if not return_std:
            preds = [np.asarray(m.predict(X, batch_size=batch_size), dtype=np.float64)
                     for m in self._fitted_members()]
            return np.mean(preds, axis=0)
        mean, alea, epi = self.predict_components(X, batch_size=batch_size)
        return mean, np.sqrt(alea ** 2 + epi ** 2)

    def predict_table(self, X, *, return_std=False, batch_size=None):
        """The prediction table of `SparseFeatureNet.predict_table`, for the ensemble.

        ``{target}_pred`` is the ensemble mean; with ``return_std``,
        ``{target}_std`` is the total 1σ and ``{target}_std_aleatoric`` and
        ``{target}_std_epistemic`` follow it (and, for ``"bpt_lines"``, the
        line ratios and class probabilities use the ensemble's covariance,
        and ``{target}_std_total`` adds the label errors to the total).  The
        active-feature columns are member 0's (``table.meta["explained_member"]``),
        which explain ``{target}_pred_member0``: ``head_bias`` plus the
        contributions.  Other members' explanations:
        ``members_[i].predict_table(X)``.
        """
        from ._tables import add_bpt_columns
        from .targets import BPT_LINES

        members = self._fitted_members()
        table = members[0].predict_table(X, return_std=return_std, batch_size=batch_size)
        names = list(self.target_names_)
        if return_std:
            mean, alea, epi = (a.reshape(len(table), -1)
                               for a in self.predict_components(X, batch_size=batch_size))
        else:
            mean = np.asarray(self.predict(X, batch_size=batch_size)).reshape(len(table), -1)
        for j, name in enumerate(names):
            col = f"{name}_pred"
            unit = table[col].unit
            table.add_column(table[col].copy(), name=f"{name}_pred_member0",
                             index=table.colnames.index(col) + 1)
            table[f"{name}_pred_member0"].info.description = (
                f"member 0's prediction of {name} (explained by the feature columns)")
            table[col] = mean[:, j] << unit
            table[col].info.description = f"mean of the {len(members)} members' {name}"
            if not return_std:
                continue
            std_col = f"{name}_std"
            std_unit = table[std_col].unit
            old_std = np.asarray(table[std_col].value)
            total = np.sqrt(alea[:, j] ** 2 + epi[:, j] ** 2)
            table[std_col] = total << std_unit
            table[std_col].info.description = (f"total 1-sigma uncertainty of {name}_pred "
                                               "(aleatoric and epistemic)")
            at = table.colnames.index(std_col) + 1
            for part, values, text in (
                    ("aleatoric", alea[:, j], "root mean of the members' calibrated variances"),
                    ("epistemic", epi[:, j], "standard deviation of the members' means")):
                table.add_column(values << std_unit, name=f"{name}_std_{part}", index=at)
                table[f"{name}_std_{part}"].info.description = text
                at += 1
            if f"{name}_std_total" in table.colnames:  # label errors: member 0's, re-added
                lab2 = np.clip(np.asarray(table[f"{name}_std_total"].value) ** 2
                               - old_std ** 2, 0, None)
                table[f"{name}_std_total"] = np.sqrt(total ** 2 + lab2) << std_unit
        if return_std and names == list(BPT_LINES) and "p_agn" in table.colnames:
            from astropy.table import QTable

            ens_mean, cov = self.predict(X, batch_size=batch_size, return_cov=True)
            bpt = add_bpt_columns(QTable(), ens_mean, cov)  # the ensemble's covariance
            for col in bpt.colnames:
                table[col] = bpt[col]
        table.meta.update({"n_members": len(members), "explained_member": 0})
        return table

    # ------------------------------------------------------------------ scores
    def evaluate(self, X, y=None, *, batch_size=None):
        """Metrics of the ensemble mean per target, as `SparseFeatureNet.evaluate`."""
        members = self._fitted_members()
        truth, rows = scoring_truth(X, y, members[0].target_)
        if len(rows) < len(X):
            X = X[rows]
        pred = np.asarray(self.predict(X, batch_size=batch_size)).reshape(len(truth), -1)
        if pred.shape != truth.shape:
            raise ValueError(f"y has {truth.shape[1]} columns but the model predicts "
                             f"{pred.shape[1]}")
        return {name: regression_metrics(truth[:, j], pred[:, j])
                for j, name in enumerate(self.target_names_)}

    def score(self, X, y=None, sample_weight=None):
        """R² of the ensemble mean averaged over targets (as `SparseFeatureNet.score`)."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by SparseFeatureEnsemble.score")
        return float(np.mean([m["r2"] for m in self.evaluate(X, y).values()]))

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Save the ensemble into directory ``path``: one model directory per member
        (``member_0/`` ...; `SparseFeatureNet.save`) and ``sfnet-ensemble.json``.

        The JSON file is written last, so a directory without it is no ensemble.

        Returns
        -------
        pathlib.Path
        """
        members = self._fitted_members()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for i, member in enumerate(members):
            member.save(path / _member_dir(i))
        params = self.get_params(deep=False)
        if isinstance(params["random_state"], (np.random.Generator, np.random.RandomState)):
            params["random_state"] = None
        spec = label_error_json(check_label_error(params.get("label_error")))
        params["label_error"] = None if spec == "array" else spec
        if not isinstance(params["target"], (str, list)):
            params["target"] = list(self.target_.columns)
        meta = json_safe({"format": ENSEMBLE_FORMAT, "n_members": len(members),
                          "members": [_member_dir(i) for i in range(len(members))],
                          "params": params, "seed": self.seed_,
                          "member_seconds": self.member_seconds_,
                          "std_scale": getattr(self, "std_scale_", None),
                          "calibration": getattr(self, "calibration_", None)})
        json.dumps(meta)
        atomic_write_json(path / ENSEMBLE_META, meta)
        return path

    @classmethod
    def load(cls, path, *, device="auto", precision="auto"):
        """Load an ensemble written by `save` (each member through `SparseFeatureNet.load`,
        which checks its weights' SHA-256)."""
        path = Path(path)
        meta_path = path / ENSEMBLE_META
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} not found: not an sfnet ensemble directory")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != ENSEMBLE_FORMAT:
            raise ValueError(f"{meta_path} is not an sfnet ensemble ({meta.get('format')!r})")
        params = {k: v for k, v in meta["params"].items() if k in cls._get_param_names()}
        params.update(device=device, precision=precision)
        if isinstance(params.get("label_error"), list):
            params["label_error"] = tuple(params["label_error"])
        ens = cls(**params)
        ens.members_ = [SparseFeatureNet.load(path / name, device=device, precision=precision)
                        for name in meta["members"]]
        ens.seed_ = meta.get("seed")
        ens.member_seconds_ = list(meta.get("member_seconds", []))
        if meta.get("std_scale") is not None:
            ens.std_scale_ = np.asarray(meta["std_scale"], dtype=np.float64)
            ens.calibration_ = meta.get("calibration")
        return ens

