"""The `SparseFeatureNet` estimator: fit, predict, activations, evaluate, save, load.

A scikit-learn estimator (`~sklearn.base.BaseEstimator` and
`~sklearn.base.RegressorMixin`: ``get_params``/``set_params``, `~sklearn.base.clone`,
the repr, ``score`` as R², and the tags that let ``cross_val_score`` and
``GridSearchCV`` use it).  ``__init__`` only stores parameters (all after ``k``
keyword-only); `SparseFeatureNet.validate_params` checks them against the
declarative ``_parameter_constraints``; ``fit`` trains (`sfnet.training`) with
the values they resolve to.  What a fit learns is one
`~sfnet._persistence.FittedState`: ``fit``, ``load`` and
``from_seed_checkpoint`` build one, and ``_set_fitted`` turns each of its
fields into a fitted attribute ending in ``_``.  Input coercion lives in
`sfnet._inputs`, the file formats in `sfnet._persistence`, the prediction
table in `sfnet._tables`.
"""

import dataclasses
import hashlib
import os
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin

from . import _params
from ._params import StrictSetParams
from ._device import CompiledNetwork, autocast, resolve_device, resolve_precision
from ._imagedata import DeviceImages, ImageSource, to_device_with_geometry
from ._inputs import inference_source, n_channels, scoring_truth, training_data
from ._ood import MAX_FIT, NO_OOD_STATISTICS, fit_ood, ood_distance
from ._labelerror import (calibration_sigma, check_label_error, check_training_sigma,
                          fit_std_scale_with_labels, label_error_json, label_sigma)
from ._persistence import FittedState, load_model, model_from_seed_checkpoint, save_model
from ._tables import add_bpt_columns, add_total_std, prediction_table
from ._utils import regression_metrics
from ._validation import check_bool
from .datasets._split import split_positions
from .exceptions import NotFittedError
from .nn import BACKBONES, SYMMETRIES, SparseFeatureNetwork
from .optim import OPTIMIZERS
from .preprocessing import ORDERS, PAPER_ORDER, Preprocessor
from .targets import get_target
from .training import CHECKPOINT_NAME, TrainConfig, load_checkpoint, train_network

__all__ = ["SparseFeatureNet", "ResolvedParams", "PAPER_RECIPE"]

#: What `SparseFeatureNet.validate_params` returns: the training ``device``
#: (`torch.device`), the autocast ``dtype`` (None for float32) and the `~sfnet.targets.Target`.
ResolvedParams = namedtuple("ResolvedParams", "device dtype target")

#: The resolved parameters a resumed training run must share with the interrupted one.
_RESUMED_PARAMS = ("k", "backbone", "weights", "epochs", "batch_size", "learning_rate",
                   "weight_decay", "augment", "optimizer", "preprocessing", "keep_epoch",
                   "standardize_target", "image_size", "crop_size")


def _k_fits_backbone(k, resolved):
    n_features = BACKBONES[resolved["backbone"]][1]
    if k > n_features:
        raise ValueError(f"k={k} exceeds n_features={n_features} of {resolved['backbone']}")
    return k


def _crop_fits(crop_size, resolved):
    """In the "resize-crop" order the crop is cut from the resized image: not larger."""
    image_size = resolved["image_size"]
    if resolved["preprocessing"] == "resize-crop" and crop_size and image_size and \
            crop_size > image_size:
        raise ValueError(f"crop_size={crop_size} exceeds image_size={image_size} (with "
                         "preprocessing='resize-crop' the crop is cut from the resized image)")
    return crop_size


def _augment_probability(augment, resolved):
    """``augment`` as the probability of a random dihedral transform (True: 1, False: 0)."""
    if isinstance(augment, (bool, np.bool_)):
        return 1.0 if augment else 0.0
    if isinstance(augment, (int, float, np.integer, np.floating)) and 0 <= augment <= 1:
        return float(augment)
    raise ValueError(f"augment must be True, False or a probability in [0, 1], got {augment!r}")


def _resume_key(resolved, state, data):
    """Everything a resumed run must share with the interrupted one: the training
    parameters (``_RESUMED_PARAMS``), the split and seed, and a fingerprint of the data."""
    fingerprint = hashlib.sha256()
    for part in (data.rows, data.values, np.asarray(data.images.shape),
                 np.asarray(state.preprocessor.mean)):
        fingerprint.update(np.ascontiguousarray(part).tobytes())
    key = {name: resolved[name] for name in _RESUMED_PARAMS}
    key["standardize_target"] = bool(key["standardize_target"])
    if resolved["symmetry"]:
        key["symmetry"] = resolved["symmetry"]
    return {**key, **state.run_key(),
            "precision": "bf16" if resolved["precision"] == torch.bfloat16 else "fp32",
            "data_sha256": fingerprint.hexdigest()}


def _calibration_split(n_valid, seed, keep_epoch):
    """Split ``n_valid`` held-out positions between epoch selection and calibration.

    With ``keep_epoch="best"`` and at least 4 held-out galaxies, a
    deterministic draw from ``seed`` puts half of them (``n_valid // 2``) in
    half B, which calibrates the error bars, and the rest in half A, which
    selects the epoch -- so the error bars are not scaled on the galaxies
    that picked the weights.  Otherwise (the last epoch is kept, or too few
    held-out galaxies to halve) all held-out galaxies calibrate.

    Returns
    -------
    select : ndarray or None
        Sorted positions (into the held-out galaxies) of half A, or None for all.
    calib : ndarray
        Sorted positions of the calibration galaxies.
    calibrated_on : str
        ``"validation-B"`` or ``"validation"``.
    """
    if keep_epoch == "best" and n_valid >= 4:
        perm = np.random.default_rng([int(seed), 0xB]).permutation(n_valid)
        return np.sort(perm[n_valid // 2:]), np.sort(perm[:n_valid // 2]), "validation-B"
    return None, np.arange(n_valid), "validation"


def _head_outputs(net, a, correlations=True):
    """Standardised means, log-variances and (with ``correlations`` and a correlation
    head) the upper-triangle correlations, concatenated ``(N, 2 T [+ T (T - 1) / 2])``,
    from sparse features ``a``."""
    parts = [net.predict_from_sparse(a), net.logvar_from_sparse(a)]
    if correlations and net.has_correlation_head:
        corr = net.correlation_from_sparse(a)
        rows, cols = torch.triu_indices(corr.shape[1], corr.shape[1], offset=1)
        parts.append(corr[:, rows, cols])
    return torch.cat(parts, dim=1)


def _correlations(upper, t):
    """Correlation matrices ``(N, T, T)`` from upper-triangle values ``(N, T (T-1) / 2)``
    (`_head_outputs`), or None when there are none."""
    if upper.shape[1] == 0:
        return None
    rows, cols = np.triu_indices(t, 1)
    corr = np.repeat(np.eye(t)[None], len(upper), axis=0)
    corr[:, rows, cols] = upper
    corr[:, cols, rows] = upper
    return corr


def _top_k(features, k):
    """The ``k`` largest of each row of ``features`` as columns ``[indices, values]``
    (a float tensor ``(N, 2k)``, decoded by `_decode_top_k`)."""
    values, indices = torch.topk(features, k, dim=1)
    return torch.cat([indices.float(), values], dim=1)


def _decode_top_k(columns):
    """``(indices, values)`` ``(N, k)`` from `_top_k` columns: int64 feature indices and
    float32 activations, inactive slots (activation <= 0) as index -1 and value 0."""
    k = columns.shape[1] // 2
    indices = columns[:, :k].astype(np.int64)
    values = columns[:, k:].astype(np.float32)
    inactive = values <= 0
    indices[inactive] = -1
    values[inactive] = 0
    return indices, values


class SparseFeatureNet(StrictSetParams, RegressorMixin, BaseEstimator):
    """A Sparse Feature Network estimator for galaxy images (Wu 2025, ApJ 980, 183).

    A ResNet whose globally pooled features pass through ReLU and a top-k
    constraint before one linear layer, so every prediction is
    ``head_bias + sum_j head_weights[:, j] * a_j`` over at most ``k`` active
    features ``a_j``.

    Parameters
    ----------
    k : int
        Number of active features per galaxy (the paper uses 2–4).
    target : str or list of str
        ``"metallicity"`` (MPA-JHU ``oh_p50``), ``"bpt_lines"`` (log fluxes of
        [NII], Hα, [OIII], Hβ) or catalog column names.  Used to take the
        targets from a `~sfnet.GalaxySample`; with an explicit ``y`` it only
        names the outputs.
    backbone : {"resnet18", "resnet34", "resnet50"}
        torchvision trunk (``resnet18`` is the paper's).
    weights : {None, "imagenet"}
        Trunk initialisation; ``None`` trains from scratch without network access.
    epochs : int
        Training epochs (one-cycle learning-rate schedule over all of them).
    batch_size : int
        Global batch size (split across processes under ``torchrun``).
    learning_rate : float
        Peak learning rate of the one-cycle schedule.
    weight_decay : float
        Decoupled weight decay (not applied to biases and norms).
    image_size : int, optional
        Size of the images the network sees after ``preprocessing`` (the
        paper: 160).  With ``"resize-crop"`` the images are resized to it
        before the crop.
    crop_size : int, optional
        Side of the central crop (the paper: 144): cut from the resized image
        (``"resize-crop"``) or from the original, then resized to
        ``image_size`` (``"crop-resize"``).
    validation_fraction : float
        Fraction of the training galaxies held out (a random split) to report
        validation RMSE and, with ``keep_epoch="best"``, to select the epoch
        (0 disables validation; the last epoch is kept).
    augment : bool or float
        Random dihedral transforms (flips and 90° rotations) during training:
        ``True`` draws one of the 8 for every image; a probability ``p``
        transforms an image with probability ``p`` (then one of the 8), as
        fastai's ``Dihedral(p)`` (the paper: 0.5).
    symmetry : {None, "d4"}
        ``"d4"`` averages the pooled features over the 8 dihedral transforms
        of each image before ReLU and top-k, in training and inference, so
        the active features and predictions do not change when a galaxy is
        rotated by 90° or flipped; it costs 8 trunk passes per image.
    device : str
        ``"auto"`` (cuda, then mps, then cpu) or a torch device string.
    precision : {"auto", "fp32", "bf16"}
        ``"auto"`` uses bfloat16 autocast on CUDA and on CPUs with AVX512-BF16/AMX.
    random_state : int, `numpy.random.Generator` or None
        Seed for initialisation, the validation split, shuffling and
        augmentation (scikit-learn's convention): an integer gives the same
        model every time; a Generator (or a legacy
        `~numpy.random.RandomState`) draws the seed at each ``fit``; None
        draws a fresh one (or, when resuming, takes the checkpoint's).  The
        seed used is ``seed_``.
    progress : bool
        Show tqdm progress bars.
    optimizer : {"adamw", "ranger"}
        ``"adamw"``: AdamW with PyTorch's one-cycle schedule.  ``"ranger"``:
        RAdam + Lookahead with fastai's defaults under fastai's one-cycle
        schedule, as the paper trained (see `sfnet.optim`).
    preprocessing : {"resize-crop", "crop-resize"}
        Order of resize and centre crop (see `sfnet.preprocessing`).
        ``"crop-resize"`` is the paper's: the crop is resized to
        ``image_size`` exactly as PIL's bilinear resize does.
    keep_epoch : {"best", "last"}
        Keep the weights of the epoch with the lowest validation RMSE, or of the
        last epoch (the paper's).  With ``"best"`` the held-out galaxies are
        split in two (deterministically from the seed): half A selects the
        epoch, half B calibrates the error bars (see ``uncertainty_``).
    standardize_target : bool
        Train on targets standardised with the training mean and standard
        deviation (``True``), or on the raw targets (``False``, the paper's);
        predictions are in the targets' units either way.
    compile : bool
        Run the network through `torch.compile` for training and for
        `predict`/`activations` (default False).  Compiling takes seconds to
        minutes once per process and input shape; whether it pays off depends
        on the hardware (measure it with ``sfnet benchmark --compile``).  If
        compiling fails (no C++ compiler, an unsupported platform) sfnet warns
        and runs eagerly.  A runtime option: the results are those of the
        eager network up to float rounding, it is saved with the other
        parameters (a loaded model compiles too), and ``set_params(compile=...)``
        switches it for a fitted model.
    label_error : str, tuple of str, array or None
        Per-galaxy 1σ errors of the training labels, so that the variance
        head learns the model's own error: the likelihood uses the residual
        variance ``sigma_model**2 + sigma_label**2`` per galaxy.  A catalog
        column of 1σ errors (or one per target), a ``(p16, p84)`` pair of
        columns (``sigma_label = (p84 - p16) / 2``, e.g.
        ``("oh_p16", "oh_p84")``), ``"flux"`` for ``target="bpt_lines"`` (each
        line's flux error propagated to its log10 flux, ``err / (flux ln 10)``),
        or an array ``(N,)``/``(N, n_targets)`` of errors row-aligned with X.
        ``predict(X, return_std=True)`` then gives the model's part;
        ``predict_table`` adds ``{target}_std_total`` (model and label errors in
        quadrature) for galaxies whose catalog has the columns.  See
        :doc:`/uncertainty`.

    See Also
    --------
    sfnet.PAPER_RECIPE : the parameters of the paper's training.

    Attributes
    ----------
    network_ : SparseFeatureNetwork
    uncertainty_ : dict
        How ``predict(X, return_std=True)`` is calibrated: ``scale`` (one
        factor per target multiplying the variance head's standard deviation),
        ``source`` (``"validation"``, ``"training"`` or ``"calibrate"``),
        ``calibrated_on`` (``"validation-B"``: the half of the held-out
        galaxies that did not select the epoch; ``"validation"``: all
        held-out galaxies, when the last epoch is kept or fewer than 4 are
        held out; ``"training"``; ``"calibrate"``), ``n`` (galaxies used),
        ``rows`` (after `fit`: their rows in ``X``), ``n_epoch_selection``
        (after `fit`: held-out galaxies that selected the epoch) and
        ``coverage_68``/``coverage_95`` (per target) on the calibration galaxies.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss`` (RMSE of standardised targets),
        ``valid_rmse`` (per target, original units), ``lr``, ``seconds``.
    best_epoch_ : int
    seed_ : int
        The training seed (see ``random_state``).
    target_names : list of str
    head_weights, head_bias : ndarray

    Notes
    -----
    The fitted attributes are ``network_``, ``device_``,
    ``autocast_dtype_`` and one ``name_`` per field ``name`` of
    `~sfnet._persistence.FittedState` (``target_``, ``preprocessor_``,
    ``history_``, ``seed_``, ``uncertainty_``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> from sfnet import SparseFeatureNet
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 255, size=(16, 32, 32, 3), dtype=np.uint8)
    >>> y = images.mean(axis=(1, 2, 3)) / 255
    >>> model = SparseFeatureNet(k=2, epochs=1, batch_size=8, progress=False,
    ...                          random_state=0).fit(images, y)
    >>> model.predict(images).shape
    (16,)
    >>> int((model.activations(images) != 0).sum(axis=1).max()) <= 2
    True
    """

    #: Constraints of every parameter, checked in this order by `validate_params`
    #: (see `sfnet._params`); each entry may use the parameters resolved before it.
    _parameter_constraints = {
        "backbone": [_params.Choice(BACKBONES,
                                    "unknown backbone {value!r}; choose from {choices}")],
        "k": [_params.Integer(1), _params.Resolve(_k_fits_backbone)],
        "epochs": [_params.Integer(1)],
        "batch_size": [_params.Integer(1)],
        "learning_rate": [_params.Real(0, strict_min=True)],
        "weight_decay": [_params.Real(0)],
        "optimizer": [_params.Choice(OPTIMIZERS)],
        "preprocessing": [_params.Choice(ORDERS)],
        "image_size": [_params.Integer(8, allow_none=True)],
        "crop_size": [_params.Integer(8, allow_none=True), _params.Resolve(_crop_fits)],
        "validation_fraction": [_params.Real(0, below=1)],
        "weights": [_params.Choice((None, "imagenet"))],
        "random_state": [_params.RandomState()],
        "device": [_params.Resolve(lambda device, _: resolve_device(device))],
        "precision": [_params.Resolve(lambda precision, r: resolve_precision(precision,
                                                                             r["device"]))],
        "target": [_params.Resolve(lambda target, _: get_target(target))],
        "augment": [_params.Resolve(_augment_probability)],
        "keep_epoch": [_params.Choice(("best", "last"))],
        "standardize_target": [_params.Choice((True, False))],
        "symmetry": [_params.Choice(SYMMETRIES)],
        "progress": [],
        "compile": [_params.Resolve(lambda value, _: check_bool(value, "compile"))],
        "label_error": [_params.Resolve(lambda value, _: check_label_error(value))],
    }

    def __init__(self, k=2, *, target="metallicity", backbone="resnet18", weights=None,
                 epochs=20, batch_size=64, learning_rate=3e-3, weight_decay=1e-2,
                 image_size=None, crop_size=None, validation_fraction=0.2, augment=True,
                 symmetry=None, device="auto", precision="auto", random_state=None,
                 progress=True, optimizer="adamw", preprocessing="resize-crop",
                 keep_epoch="best", standardize_target=True,
                 compile=False, label_error=None):
        self.k = k
        self.target = target
        self.backbone = backbone
        self.weights = weights
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.image_size = image_size
        self.crop_size = crop_size
        self.validation_fraction = validation_fraction
        self.augment = augment
        self.symmetry = symmetry
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.progress = progress
        self.optimizer = optimizer
        self.preprocessing = preprocessing
        self.keep_epoch = keep_epoch
        self.standardize_target = standardize_target
        self.compile = compile
        self.label_error = label_error

    # ------------------------------------------------------------------ params
    # get_params, clone and the repr come from scikit-learn's BaseEstimator; set_params
    # (refusing unknown names) from sfnet._params.StrictSetParams.
    def validate_params(self):
        """Check every parameter; return the resolved device, precision and target.

        `fit` calls it first; call it yourself to fail early, before reading
        data.  The checks are declared in ``_parameter_constraints``.

        Returns
        -------
        ResolvedParams
            ``(device, dtype, target)``: the `torch.device` to train on, the
            autocast dtype (None for float32) and the `~sfnet.targets.Target`.

        Raises
        ------
        ValueError, TypeError
            The message names the offending parameter.
        """
        resolved = self._resolved_params()
        return ResolvedParams(resolved["device"], resolved["precision"], resolved["target"])

    def _resolved_params(self):
        """Every parameter checked and resolved (`sfnet._params.validate`), as a dict."""
        return _params.validate(self._parameter_constraints, self.get_params(deep=False))

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, *, checkpoint_dir=None, resume=False):
        """Train the network.

        Parameters
        ----------
        X : GalaxySample or array
            A `~sfnet.GalaxySample` (targets from its catalog through ``target``;
            galaxies failing the target's cuts are left out with a warning), or
            images ``(N, H, W, C)``/``(N, C, H, W)`` with ``C >= 1`` bands,
            uint8 0–255 or float (e.g. fluxes; normalised robustly per band,
            see `sfnet.preprocessing`).  With ``weights="imagenet"`` and
            ``C != 3`` the first convolution is adapted by
            `sfnet.nn.adapt_first_conv`.  Memory-mapped images are streamed,
            never loaded whole, when large.
        y : array, Quantity, Column or Table, optional
            Targets ``(N,)`` or ``(N, n_targets)``; overrides the catalog.
        checkpoint_dir : path-like, optional
            Write a checkpoint after every epoch (atomically).
        resume : bool
            Continue from the checkpoint in ``checkpoint_dir`` if there is one.

        Returns
        -------
        self
        """
        resolved = self._resolved_params()
        device, dtype, target = resolved["device"], resolved["precision"], resolved["target"]
        if resume and checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        data = training_data(X, y, target)
        label_sig = label_sigma(resolved["label_error"], X, y, target, data.values.shape[1])
        if label_sig is not None:
            check_training_sigma(label_sig)
        seed = self._training_seed(resolved["random_state"], checkpoint_dir, resume)
        n, fraction = len(data.rows), resolved["validation_fraction"]
        train_pos, valid_pos = split_positions(n, fraction, seed, min_valid=1)
        if len(train_pos) < 2:
            raise ValueError(f"X has {n} usable images: too few to train with "
                             f"validation_fraction={self.validation_fraction}")
        train_src = ImageSource(data.images, data.rows[train_pos], data.channels_last)
        prep = self._fit_preprocessor(train_src, seed, resolved)
        if resolved["standardize_target"]:
            y_mean = data.values[train_pos].mean(axis=0)
            y_std = data.values[train_pos].std(axis=0)
            y_std = np.where(y_std > 0, y_std, 1.0)
        else:  # the network learns the raw targets, as in the paper
            y_mean = np.zeros(data.values.shape[1])
            y_std = np.ones(data.values.shape[1])
        state = FittedState(
            target=target, preprocessor=prep, y_mean=y_mean, y_std=y_std,
            target_names=data.names, target_units=data.units or [""] * len(data.names),
            input_kind="uint8" if data.images.dtype == np.uint8 else "float",
            input_shape=train_src.image_shape, seed=seed, n_train=len(train_pos),
            n_valid=len(valid_pos),
            label_error=None if label_sig is None else {
                "spec": label_error_json(resolved["label_error"]),
                "median_sigma": np.median(label_sig, axis=0).tolist()})

        torch.manual_seed(seed)
        network = SparseFeatureNetwork(resolved["k"], data.values.shape[1], resolved["backbone"],
                                       resolved["weights"], symmetry=resolved["symmetry"],
                                       variance_head=True,
                                       in_channels=n_channels(data.images, data.channels_last),
                                       correlation_head=data.values.shape[1] > 1)
        network.to(device).to(memory_format=torch.channels_last)
        if checkpoint_dir is not None:
            os.makedirs(checkpoint_dir, exist_ok=True)
        select, calib, calibrated_on = _calibration_split(len(valid_pos), seed,
                                                          resolved["keep_epoch"])
        outputs = {}
        history, best_epoch = self._train(network, data, train_pos, valid_pos, state, resolved,
                                          checkpoint_dir=checkpoint_dir, resume=resume,
                                          select=select, outputs=outputs,
                                          label_sigma=label_sig)
        self._set_fitted(network, dataclasses.replace(state, history=history,
                                                      best_epoch=best_epoch), device, dtype)
        if "valid" in outputs:  # from the validation passes of training: no extra pass
            t = data.values.shape[1]
            kept = outputs["valid"][calib]
            self._set_uncertainty(kept[:, :t], np.exp(0.5 * kept[:, t:2 * t]),
                                  data.values[valid_pos[calib]], "validation",
                                  calibrated_on=calibrated_on,
                                  rows=data.rows[valid_pos[calib]],
                                  n_epoch_selection=len(select) if select is not None
                                  else len(valid_pos),
                                  label_sigma=None if label_sig is None
                                  else label_sig[valid_pos[calib]],
                                  corr=_correlations(kept[:, 2 * t:], t))
        else:  # no validation: one pass over the training galaxies, in eval mode, gives
            # the calibration's outputs and the out-of-distribution statistics' features
            start = time.perf_counter()
            heads, ood_pos, feats = self._heads_and_features(data, train_pos)
            t = data.values.shape[1]
            self._set_uncertainty(heads[:, :t], np.exp(0.5 * heads[:, t:2 * t]),
                                  data.values[train_pos], "training", calibrated_on="training",
                                  rows=data.rows[train_pos], n_epoch_selection=0,
                                  label_sigma=None if label_sig is None
                                  else label_sig[train_pos],
                                  corr=_correlations(heads[:, 2 * t:], t))
            return self._set_ood(fit_ood(feats, None, seconds=time.perf_counter() - start))
        self._fit_ood(data, train_pos, valid_pos)
        return self

    @staticmethod
    def _training_seed(random_state, checkpoint_dir, resume):
        """The integer seed of a fit (see ``random_state``).

        An integer ``random_state`` is the seed; otherwise a resumed run takes
        its checkpoint's, and a NumPy generator (or a fresh one for None)
        draws it.
        """
        generator = isinstance(random_state, (np.random.Generator, np.random.RandomState))
        if random_state is not None and not generator:
            return int(random_state)
        if resume:
            path = Path(checkpoint_dir) / CHECKPOINT_NAME
            if path.is_file():
                return int(load_checkpoint(path)["extra"]["seed"])
        if isinstance(random_state, np.random.RandomState):
            return int(random_state.randint(2**31 - 1))
        if isinstance(random_state, np.random.Generator):
            return int(random_state.integers(2**31 - 1))
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("random_state must be set when training under torchrun, so "
                             "that every process draws the same split and shuffling")
        return int(np.random.default_rng().integers(2**31 - 1))

    @staticmethod
    def _fit_preprocessor(train_src, seed, resolved):
        """The `Preprocessor` of ``image_size``/``crop_size`` with statistics of ``train_src``."""
        shape = train_src.image_shape
        image_size, crop_size = resolved["image_size"], resolved["crop_size"]
        if (crop_size or image_size) is None and shape[0] != shape[1]:
            raise ValueError(f"images must be square (got {shape[0]}x{shape[1]}); set image_size")
        return Preprocessor(image_size, crop_size,
                            order=resolved["preprocessing"]).fit_stats(train_src, seed=seed)

    def _train(self, network, data, train_pos, valid_pos, state, resolved, *, checkpoint_dir,
               resume, select=None, outputs=None, label_sigma=None):
        """Run `train_network` on ``data`` split into train/valid; (history, best_epoch)."""
        device, dtype, prep = resolved["device"], resolved["precision"], state.preprocessor

        def images(pos):
            return DeviceImages(ImageSource(data.images, data.rows[pos], data.channels_last),
                                prep, device)

        def standardised(pos):
            return torch.as_tensor((data.values[pos] - state.y_mean) / state.y_std,
                                   dtype=torch.float32, device=device)

        has_valid = len(valid_pos) > 0
        cfg = TrainConfig(resolved["epochs"], resolved["batch_size"], resolved["learning_rate"],
                          resolved["weight_decay"], resolved["augment"], state.seed,
                          bool(resolved["progress"]), dtype, optimizer=resolved["optimizer"],
                          keep_epoch=resolved["keep_epoch"], compile=resolved["compile"])
        return train_network(
            network, images(train_pos), standardised(train_pos),
            images(valid_pos) if has_valid else None,
            standardised(valid_pos) if has_valid else None, prep, cfg, device,
            checkpoint_dir=checkpoint_dir, resume=resume,
            extra_state=_resume_key(resolved, state, data), y_scale=state.y_std,
            select=select if has_valid else None, outputs=outputs,
            label_var=None if label_sigma is None else torch.as_tensor(
                (label_sigma[train_pos] / state.y_std) ** 2, dtype=torch.float32,
                device=device))

    def _set_fitted(self, network, state, device, autocast_dtype):
        """Set every fitted attribute, for fit, load and seed files: the network on
        ``device`` and one ``name_`` per field of the `FittedState` ``state``."""
        self.network_ = network.to(device).to(memory_format=torch.channels_last).eval()
        self.device_ = device
        self.autocast_dtype_ = autocast_dtype
        for field in dataclasses.fields(FittedState):
            setattr(self, f"{field.name}_", getattr(state, field.name))
        return self

    def _fitted_state(self):
        """The `FittedState` of this fitted model (the inverse of `_set_fitted`)."""
        self._check_fitted()
        return FittedState(**{field.name: getattr(self, f"{field.name}_")
                              for field in dataclasses.fields(FittedState)})

    # ------------------------------------------------------------------ fitted state
    def __sklearn_is_fitted__(self):
        return hasattr(self, "network_")

    def _check_fitted(self):
        if not self.__sklearn_is_fitted__():
            raise NotFittedError("this SparseFeatureNet is not fitted yet; call fit() "
                                 "or SparseFeatureNet.load() first")

    @property
    def n_features(self):
        """Number of pooled features (512 for resnet18/34, 2048 for resnet50)."""
        if hasattr(self, "network_"):
            return self.network_.n_features
        if self.backbone in BACKBONES:
            return BACKBONES[self.backbone][1]
        raise ValueError(f"unknown backbone {self.backbone!r}")

    @property
    def target_names(self):
        """Names of the predicted columns."""
        self._check_fitted()
        return list(self.target_names_)

    @property
    def head_weights(self):
        """Linear-head weights ``(n_targets, n_features)`` in the targets' units."""
        self._check_fitted()
        w = self.network_.head.weight.detach().cpu().double().numpy()
        return w * self.y_std_[:, None]

    @property
    def head_bias(self):
        """Linear-head bias ``(n_targets,)`` in the targets' units."""
        self._check_fitted()
        b = self.network_.head.bias.detach().cpu().double().numpy()
        return b * self.y_std_ + self.y_mean_

    # ------------------------------------------------------------------ inference
    def _batch_size(self, batch_size):
        bs = batch_size or 2 * int(self.batch_size)
        if isinstance(bs, bool) or not isinstance(bs, (int, np.integer)) or bs < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        return int(bs)

    def _run(self, X, fn, batch_size=None, out=None):
        """Stream X (or an `ImageSource`) through ``fn(network, x_normalised)`` batch by batch."""
        src = X if isinstance(X, ImageSource) else self._source(X)
        prep, device, net = self.preprocessor_, self.device_, self._inference_network()
        bs = self._batch_size(batch_size)
        net.eval()
        chunks = []
        with torch.inference_mode():
            for pos, x in src.batches(bs):
                x = prep.normalize(to_device_with_geometry(x, prep, device))
                with autocast(device, self.autocast_dtype_):
                    res = fn(net, x)
                res = res.float().cpu().numpy()
                if out is not None:
                    out(pos, res)
                else:
                    chunks.append(res)
        return None if out is not None else np.concatenate(chunks)

    def _inference_network(self):
        """The fitted network, or its ``sfnet._device.CompiledNetwork`` with ``compile=True``."""
        if not check_bool(self.compile, "compile"):
            return self.network_
        cached = self.__dict__.get("_compiled")
        if cached is None or cached[0] is not self.network_:
            cached = self._compiled = (self.network_, CompiledNetwork(self.network_))
        return cached[1]

    def __getstate__(self):
        # the compiled wrapper is rebuilt on demand: it neither pickles nor copies
        state = dict(super().__getstate__())
        state.pop("_compiled", None)
        return state

    def predict(self, X, *, batch_size=None, return_std=False, return_cov=False):
        """Predict the targets, optionally with a calibrated 1σ uncertainty.

        Parameters
        ----------
        X : GalaxySample or array
        batch_size : int, optional
        return_std : bool
            Also return the standard deviation of each prediction.

        Returns
        -------
        mean : ndarray
            ``(N,)`` for one target, ``(N, n_targets)`` otherwise, in the
            targets' original units.
        std : ndarray
            Only with ``return_std``: same shape and units.  The variance head
            (a linear layer on the same k active features, trained with a
            Gaussian likelihood) gives the relative uncertainty of each galaxy;
            one factor per target, fitted on the validation split at the end
            of `fit` (see ``uncertainty_`` and `calibrate_uncertainty`), makes
            ``|truth - mean| <= std`` hold for about 68 % of galaxies like
            those it was calibrated on.  With ``label_error`` it is the
            model's part of the error (the labels' own errors excluded).  See
            :doc:`/uncertainty`.
        return_cov : bool
            Return ``(mean, cov)`` instead: ``mean`` ``(N, T)`` and the
            calibrated covariance ``cov`` ``(N, T, T)`` of the targets'
            errors, ``std_i std_j corr_ij`` with ``std`` as above and the
            correlations of the network's correlation head (models of two or
            more targets, e.g. ``"bpt_lines"``).

        Raises
        ------
        ValueError
            ``return_std=True`` on a model without a variance head (the paper's
            seed checkpoints, models saved before sfnet had one).
        """
        if return_cov:
            return self._predict_cov(X, batch_size)
        if not return_std:
            z = self._run(X, lambda net, x: net(x), batch_size).astype(np.float64)
            pred = z * self.y_std_ + self.y_mean_
            return pred[:, 0] if pred.shape[1] == 1 else pred
        self._check_std()
        z, sigma = self._mean_and_sigma(X, batch_size)
        pred = z * self.y_std_ + self.y_mean_
        std = sigma * self.y_std_ * np.asarray(self.uncertainty_["scale"], dtype=np.float64)
        if pred.shape[1] == 1:
            return pred[:, 0], std[:, 0]
        return pred, std

    def _predict_cov(self, X, batch_size=None):
        """``(mean (N, T), cov (N, T, T))``: ``predict(X, return_cov=True)``."""
        self._check_std()
        if not self.network_.has_correlation_head:
            raise ValueError("return_cov=True needs a model of two or more targets with a "
                             "correlation head (trained by this sfnet version's fit)")
        z, sigma, corr = self._head_values(X, batch_size)
        pred = z * self.y_std_ + self.y_mean_
        std = sigma * self.y_std_ * np.asarray(self.uncertainty_["scale"], dtype=np.float64)
        calibrated = self.uncertainty_.get("correlation")
        if calibrated is not None:  # see _set_uncertainty
            w = float(calibrated["weight"])
            corr = (1 - w) * corr + w * np.asarray(calibrated["held_out"], dtype=np.float64)
        return pred, corr * std[:, :, None] * std[:, None, :]

    def _predict_with_features(self, X, return_std=False, batch_size=None, return_ood=False):
        """``predict(X, return_std=...)`` and ``activations(X, sparse=True)`` in one pass.

        Returns ``(pred, std, idx, vals)``: predictions and 1-sigma uncertainties
        ``(N, T)`` (``std`` None without ``return_std``) and the sparse active
        features ``(N, k)``, the same values the two public methods give; with
        ``return_ood`` also ``ood_score(X)`` ``(N,)`` as a fifth item.
        """
        if return_std:
            self._check_std()
        else:
            self._check_fitted()
        if return_ood:
            self._check_ood()
            ood_mean, ood_whitener = self._ood_tensors()
        k, t = self.network_.k, len(self.target_names_)

        def step(net, x):
            if return_ood:  # the pooled features give the score and the sparse ones
                pooled = net.pooled_features(x)
                a = net.topk(pooled)
            else:
                a = net.sparse_features(x)
            parts = [net.predict_from_sparse(a)]
            if return_std:
                parts.append(net.logvar_from_sparse(a))
            ood = [ood_distance(pooled, ood_mean, ood_whitener)[:, None]] if return_ood else []
            return torch.cat(parts + [_top_k(a, k)] + ood, dim=1)

        res = self._run(X, step, batch_size)
        n_out = t * (2 if return_std else 1)
        pred = res[:, :t].astype(np.float64) * self.y_std_ + self.y_mean_
        std = None
        if return_std:
            std = np.exp(0.5 * res[:, t:n_out].astype(np.float64)) * self.y_std_ \
                * np.asarray(self.uncertainty_["scale"], dtype=np.float64)
        idx, vals = _decode_top_k(res[:, n_out:n_out + 2 * k])
        if return_ood:
            return pred, std, idx, vals, res[:, n_out + 2 * k].astype(np.float64)
        return pred, std, idx, vals

    def _check_std(self):
        self._check_fitted()
        if not self.network_.has_variance_head or self.uncertainty_ is None:
            raise ValueError(
                "return_std=True needs a model with a variance head, trained by "
                "SparseFeatureNet.fit; this one has none (seed checkpoints from the paper and "
                "models saved by older sfnet versions do not predict uncertainties)")

    def _mean_and_sigma(self, X, batch_size=None):
        """Standardised predictions and raw head standard deviations, each ``(N, T)``."""
        z, sigma, _ = self._head_values(X, batch_size, correlations=False)
        return z, sigma

    def _head_values(self, X, batch_size=None, correlations=True):
        """``(z, sigma, corr)``: standardised predictions and raw head standard
        deviations ``(N, T)``, and the predicted correlation matrices ``(N, T, T)``
        (None without a correlation head or ``correlations``)."""
        t = len(self.target_names_)
        res = self._run(X, lambda net, x: _head_outputs(net, net.sparse_features(x),
                                                        correlations),
                        batch_size).astype(np.float64)
        return res[:, :t], np.exp(0.5 * res[:, t:2 * t]), _correlations(res[:, 2 * t:], t)

    def _calibrate(self, X, truth, source, batch_size=None, **record):
        """Fit ``uncertainty_`` on images ``X`` with targets ``truth`` ``(N, T)``."""
        z, sigma, corr = self._head_values(X, batch_size)
        return self._set_uncertainty(z, sigma, truth, source, corr=corr, **record)

    def _set_uncertainty(self, z, sigma, truth, source, *, calibrated_on=None, rows=None,
                         n_epoch_selection=None, label_sigma=None, corr=None):
        """Fit ``uncertainty_`` from standardised means ``z`` and raw head standard
        deviations ``sigma`` ``(N, T)`` of galaxies with targets ``truth`` (and label
        errors ``label_sigma`` ``(N, T)`` in the targets' units); with predicted
        correlation matrices ``corr`` ``(N, T, T)``, their calibration too
        (`sfnet.interpret.fit_correlation_weight`)."""
        from .interpret.calibration import (ONE_SIGMA, coverage, fit_correlation_weight,
                                            fit_std_scale)

        truth = np.asarray(truth, dtype=np.float64).reshape(z.shape)
        resid = (truth - self.y_mean_) / self.y_std_ - z
        if label_sigma is None:
            scale = fit_std_scale(resid, sigma)
            total = sigma * scale
        else:  # the coverage of the total error: model and label errors in quadrature
            lab = np.asarray(label_sigma, dtype=np.float64).reshape(z.shape) / self.y_std_
            scale = fit_std_scale_with_labels(resid, sigma, lab)
            total = np.sqrt((sigma * scale) ** 2 + lab ** 2)
        cov = coverage(resid, 0.0, total, nominal=(ONE_SIGMA, 0.95))
        uncertainty = {"scale": scale.tolist(), "source": source, "n": len(z),
                       "coverage_68": cov[0].tolist(), "coverage_95": cov[1].tolist(),
                       "calibrated_on": calibrated_on or source}
        if rows is not None:
            uncertainty["rows"] = [int(r) for r in rows]
        if n_epoch_selection is not None:
            uncertainty["n_epoch_selection"] = int(n_epoch_selection)
        if corr is not None:
            try:  # the residuals in units of the total error (model and label parts)
                weight, held = fit_correlation_weight(resid / total, corr)
            except ValueError:  # too few galaxies: the head's correlations as they are
                pass
            else:
                uncertainty["correlation"] = {"weight": weight, "held_out": held.tolist()}
        state = dataclasses.replace(self._fitted_state(), uncertainty=uncertainty)
        return self._set_fitted(self.network_, state, self.device_, self.autocast_dtype_)

    # ------------------------------------------------------------------ out of distribution
    def _ood_positions(self, pos):
        """The (sorted) galaxies of ``pos`` whose features fit the OOD statistics: all,
        or `MAX_FIT` drawn with the fit's seed."""
        if len(pos) <= MAX_FIT:
            return pos
        return np.sort(np.random.default_rng(self.seed_).choice(pos, MAX_FIT, replace=False))

    def _heads_and_features(self, data, pos):
        """One inference pass over the galaxies ``pos`` of ``data``: the standardised
        means and log-variances (and correlations, `_head_outputs`) of all, and the
        pooled features of
        ``self._ood_positions(pos)`` (returned too)."""
        chosen = np.isin(pos, self._ood_positions(pos))
        picked = pos[chosen]
        slot = np.full(len(pos), -1)
        slot[chosen] = np.arange(len(picked))
        heads, feats = None, None

        def forward(net, x):
            pooled = net.pooled_features(x)
            a = net.topk(pooled)
            return torch.cat([_head_outputs(net, a), pooled.float()], dim=1)

        def keep(where, res):
            nonlocal heads, feats
            t2 = res.shape[1] - self.network_.n_features
            if heads is None:
                heads = np.empty((len(pos), t2))
                feats = np.empty((len(picked), res.shape[1] - t2), dtype=np.float32)
            heads[where] = res[:, :t2]
            mine = slot[where] >= 0
            feats[slot[where][mine]] = res[mine, t2:]

        self._run(ImageSource(data.images, data.rows[pos], data.channels_last), forward,
                  out=keep)
        return heads, picked, feats

    def _fit_ood(self, data, train_pos, valid_pos):
        """Fit ``ood_`` (`sfnet._ood`): mean and shrinkage covariance of the pooled
        features of up to `MAX_FIT` training galaxies, threshold from up to `MAX_FIT`
        validation galaxies (the training ones without a validation split).

        Costs one inference pass over those galaxies (after training: the features
        of the kept weights, in eval mode, are not those seen during the epochs).
        """
        start = time.perf_counter()

        def features(pos):
            return self.pooled_features(ImageSource(
                data.images, data.rows[self._ood_positions(pos)], data.channels_last))

        train_f = features(train_pos)
        valid_f = features(valid_pos) if len(valid_pos) else None
        return self._set_ood(fit_ood(train_f, valid_f, seconds=time.perf_counter() - start))

    def _set_ood(self, stats):
        state = dataclasses.replace(self._fitted_state(), ood=stats)
        return self._set_fitted(self.network_, state, self.device_, self.autocast_dtype_)

    def _check_ood(self):
        self._check_fitted()
        if getattr(self, "ood_", None) is None:
            raise ValueError(NO_OOD_STATISTICS)

    def ood_score(self, X, *, batch_size=None):
        """How unlike the training galaxies each galaxy of ``X`` is (higher: less alike).

        The Mahalanobis distance of the galaxy's pooled features
        (`pooled_features`) from those of the training galaxies, with a
        Ledoit–Wolf shrinkage covariance; both fitted at the end of `fit`.  A
        score above ``ood_.threshold`` (the 99th percentile of the held-out
        validation galaxies' scores) is flagged ``ood_flag`` in
        `predict_table`.  See :doc:`/uncertainty`, "Is this galaxy like the
        training set?", for what it detects and what it cannot.

        Parameters
        ----------
        X : GalaxySample or array
        batch_size : int, optional

        Returns
        -------
        ndarray
            ``(N,)`` float64 scores.

        Raises
        ------
        ValueError
            For a model without the statistics (the paper's seed checkpoints,
            models saved by older sfnet versions).
        """
        self._check_ood()
        mean, whitener = self._ood_tensors()
        return self._run(X, lambda net, x: ood_distance(net.pooled_features(x), mean,
                                                        whitener)[:, None],
                         batch_size)[:, 0].astype(np.float64)

    def _ood_tensors(self):
        """The mean and whitener of ``ood_`` as tensors on ``device_``."""
        return (torch.as_tensor(self.ood_.mean, device=self.device_),
                torch.as_tensor(self.ood_.whitener, device=self.device_))

    def calibrate_uncertainty(self, X, y=None, *, batch_size=None):
        """Refit the factor that calibrates ``predict(X, return_std=True)``.

        `fit` already calibrates on its validation split (or, with
        ``validation_fraction=0``, on the training galaxies, which
        underestimates the errors of new galaxies).  Call this with labelled
        galaxies the model did not train on, ideally like those you will
        predict (e.g. a labelled subset of real galaxies for a model trained on
        mocks), to recalibrate.  Only the per-target factor changes: the means
        and the variance head do not.

        Parameters
        ----------
        X : GalaxySample or array
        y : array, optional
            Targets; taken from the sample's catalog when omitted.

        Returns
        -------
        self
        """
        self._check_fitted()
        if not self.network_.has_variance_head:
            self._check_std()
        truth, rows = scoring_truth(X, y, self.target_)
        if truth.shape[1] != len(self.target_names_):
            raise ValueError(f"y has {truth.shape[1]} columns but the model predicts "
                             f"{len(self.target_names_)}")
        if len(truth) < 2:
            raise ValueError(f"X has {len(truth)} labelled galaxies: too few to calibrate")
        label_sig = calibration_sigma(self.label_error, X, y, self.target_, truth.shape[1])
        return self._calibrate(X[rows] if len(rows) < len(X) else X, truth, "calibrate",
                               batch_size, label_sigma=label_sig)

    def predict_table(self, X, *, return_std=False, batch_size=None):
        """Predictions with identifiers, positions, units and active features.

        Parameters
        ----------
        X : GalaxySample or array
            The galaxies; the ID and ``coord`` columns need a
            `~sfnet.GalaxySample` whose catalog has them (the ID column is
            ``X.id_column`` when the sample has one, else ``objID``).
        return_std : bool
            Add a ``{target}_std`` column per target (the 1-sigma uncertainty
            of ``predict(X, return_std=True)``); with ``label_error``, also
            ``{target}_std_total``, and for ``"bpt_lines"`` the two line
            ratios, their errors and the BPT class probabilities (see
            `sfnet._tables`).
        batch_size : int, optional
            Inference batch size (default: twice the training batch size).

        Returns
        -------
        `~astropy.table.QTable`
            One row per galaxy: the ID (``objID`` or the sample's ID
            column; integers as exact ``int64``, strings kept), ``coord``
            (`~astropy.coordinates.SkyCoord`), ``{target}_pred`` in the
            target's unit, ``{target}_std`` when asked, the galaxy's active
            features ``feature_1..k``, ``activation_1..k`` and
            ``{target}_contribution_1..k``, with
            ``{target}_pred == head_bias + sum of the contributions``, and
            ``ood_score`` (`ood_score`) and ``ood_flag`` (score above
            ``ood_.threshold``) when the model has out-of-distribution
            statistics (models trained by `fit`; not the paper's seed
            checkpoints nor older saves, whose tables lack the two columns).  The
            columns are described in `sfnet._tables`; ``sfnet predict``
            writes this table.

        Examples
        --------
        >>> from sfnet import SparseFeatureNet
        >>> from sfnet.datasets import make_mock_galaxies
        >>> sample = make_mock_galaxies(60, image_size=32, seed=0,
        ...                             progress=False).select("metallicity")
        >>> model = SparseFeatureNet(k=2, epochs=1, batch_size=8, random_state=0,
        ...                          progress=False).fit(sample)  # doctest: +IGNORE_WARNINGS
        >>> table = model.predict_table(sample[:3])
        >>> table.colnames[:3]
        ['objID', 'coord', 'oh_p50_pred']
        >>> table["oh_p50_pred"].unit
        Unit("dex")
        """
        check_bool(return_std, "return_std")
        self._check_fitted()
        # one pass over the images gives the predictions, the active features and
        # (for a model with the statistics) the out-of-distribution score
        has_ood = getattr(self, "ood_", None) is not None
        pred, std, idx, vals, *score = self._predict_with_features(X, return_std, batch_size,
                                                                   return_ood=has_ood)
        ood = (score[0], self.ood_.threshold) if has_ood else None
        table = prediction_table(X, pred, std, idx, vals, names=self.target_names_,
                                 units=self.target_units_, head_weights=self.head_weights,
                                 head_bias=self.head_bias, ood=ood)
        if return_std:
            self._add_uncertainty_columns(table, X, std, batch_size)
        return table
    def _add_uncertainty_columns(self, table, X, std, batch_size=None):
        """``{target}_std_total`` (``label_error`` from a catalog) and, for
        ``"bpt_lines"``, the line ratios and class probabilities (`sfnet._tables`)."""
        from .targets import BPT_LINES

        spec = check_label_error(self.label_error)
        if spec is not None and not isinstance(spec, np.ndarray) and \
                getattr(X, "catalog", None) is not None:
            try:
                lab = label_sigma(spec, X, None, self.target_, std.shape[1],
                                  rows=np.arange(len(X)))
            except ValueError:  # the catalog lacks the columns: no total
                lab = None
            if lab is not None:
                add_total_std(table, self.target_names_, self.target_units_,
                              np.sqrt(std ** 2 + lab ** 2))
        if list(self.target_names_) == list(BPT_LINES) and \
                self.network_.has_correlation_head:
            mean, cov = self._predict_cov(X, batch_size)
            add_bpt_columns(table, mean, cov)
        return table

    def activations(self, X, *, sparse=False, batch_size=None):
        """Post-top-k features.

        Parameters
        ----------
        X : GalaxySample or array
        sparse : bool
            ``False``: dense float32 ``(N, n_features)`` with at most ``k``
            non-zeros per row.  ``True``: ``(indices, values)``, each ``(N, k)``
            (int64 feature indices and float32 activations; inactive slots hold
            index -1 and value 0) — O(N k) memory for millions of galaxies.

        Notes
        -----
        ``predict(X) == activations(X) @ head_weights.T + head_bias`` to float
        rounding.
        """
        self._check_fitted()
        if not sparse:
            return self._run(X, lambda net, x: net.sparse_features(x), batch_size)
        k = self.network_.k
        return _decode_top_k(self._run(X, lambda net, x: _top_k(net.sparse_features(x), k),
                                       batch_size))

    @staticmethod
    def sparse_to_dense(indices, values, n_features):
        """Dense ``(N, n_features)`` array from ``activations(X, sparse=True)``."""
        indices, values = np.asarray(indices), np.asarray(values)
        if indices.shape != values.shape or indices.ndim != 2:
            raise ValueError(f"indices {indices.shape} and values {values.shape} must be "
                             "equal (N, k) arrays")
        dense = np.zeros((len(indices), n_features), dtype=np.float32)
        rows = np.repeat(np.arange(len(indices)), indices.shape[1])
        keep = indices.ravel() >= 0
        dense[rows[keep], indices.ravel()[keep]] = values.ravel()[keep]
        return dense

    def pooled_features(self, X, *, batch_size=None):
        """Pooled ``layer4`` features before the top-k, float32 ``(N, n_features)``."""
        return self._run(X, lambda net, x: net.pooled_features(x), batch_size)

    def feature_maps(self, X, features, *, batch_size=None):
        """``layer4`` channel maps ``(N, len(features), h, w)`` of the given features.

        Their mean over ``(h, w)`` equals ``pooled_features(X)[:, features]``.
        """
        self._check_fitted()
        feats = np.atleast_1d(np.asarray(features))
        if feats.ndim != 1 or not np.issubdtype(feats.dtype, np.integer) or \
                (feats < 0).any() or (feats >= self.n_features).any():
            raise ValueError(f"features must be integers in [0, {self.n_features}), "
                             f"got {features!r}")
        idx = torch.as_tensor(feats, device=self.device_)
        return self._run(X, lambda net, x: net.feature_maps(x).index_select(1, idx).float(),
                         batch_size)

    def input_images(self, X, *, batch_size=None):
        """Images as the network sees them (resized and cropped), channels last.

        uint8 ``(N, s, s, C)`` for a model trained on uint8 images; float32
        ``(N, s, s, C)`` in the input's units (before normalisation) for one
        trained on float images.
        """
        src = self._source(X)
        out = []
        for _, x in src.batches(self._batch_size(batch_size)):
            x = self.preprocessor_.geometry(x)
            if x.dtype != torch.uint8 and self.input_kind_ == "uint8":
                x = x.clamp(0, 255).round().to(torch.uint8)
            out.append(x.permute(0, 2, 3, 1).numpy())
        return np.concatenate(out)

    def _source(self, X):
        """An ImageSource over X (a sample or an image array) for inference."""
        self._check_fitted()
        return inference_source(X, input_kind=self.input_kind_, input_shape=self.input_shape_,
                                preprocessor=self.preprocessor_)

    # ------------------------------------------------------------------ scores
    def evaluate(self, X, y=None, *, batch_size=None):
        """Metrics per target: ``rmse``, ``nmad``, ``bias``, ``r2``, ``n``.

        ``nmad`` is 1.4826 × the median absolute deviation of the residuals,
        ``bias`` the mean residual (prediction − truth).  With a
        `~sfnet.GalaxySample` and no ``y``, galaxies failing the target's cuts
        are left out with a warning.  `score` is ``r2`` averaged over the
        targets (the number scikit-learn's model selection maximises).
        """
        self._check_fitted()
        truth, rows = scoring_truth(X, y, self.target_)
        if len(rows) < len(X):
            X = X[rows]
        pred = self.predict(X, batch_size=batch_size).reshape(len(truth), -1)
        if pred.shape != truth.shape:
            raise ValueError(f"y has {truth.shape[1]} columns but the model predicts "
                             f"{pred.shape[1]}")
        return {name: regression_metrics(truth[:, j], pred[:, j])
                for j, name in enumerate(self.target_names_)}

    def score(self, X, y=None, sample_weight=None):
        """Coefficient of determination R², averaged over targets (scikit-learn's convention).

        The ``r2`` of `evaluate`, averaged with equal weight per target: what
        `~sklearn.model_selection.cross_val_score` and
        `~sklearn.model_selection.GridSearchCV` use by default.

        Parameters
        ----------
        X : GalaxySample or array
        y : array, optional
            Targets; taken from the sample's catalog (through its cuts) when omitted.
        sample_weight : array, optional
            One weight per galaxy of ``X`` (`sklearn.metrics.r2_score`'s).

        Returns
        -------
        float
        """
        if sample_weight is None:
            return float(np.mean([m["r2"] for m in self.evaluate(X, y).values()]))
        from sklearn.metrics import r2_score

        self._check_fitted()
        truth, rows = scoring_truth(X, y, self.target_)
        weight = np.asarray(sample_weight, dtype=np.float64)
        if weight.shape != (len(X),):
            raise ValueError(f"sample_weight must have shape ({len(X)},), got {weight.shape}")
        if len(rows) < len(X):
            X = X[rows]
        pred = self.predict(X).reshape(len(truth), -1)
        return float(r2_score(truth, pred, sample_weight=weight[rows]))

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Save weights and JSON metadata into directory ``path`` (no pickle).

        The metadata records the SHA-256 of the weights, so a tampered file is
        refused by `load`.  Under ``torchrun`` only rank 0 writes.

        Returns
        -------
        pathlib.Path
        """
        state = self._fitted_state()
        params = self.get_params(deep=False)
        if not isinstance(params["target"], (str, list)):
            params["target"] = list(self.target_.columns)
        if isinstance(params["random_state"], (np.random.Generator, np.random.RandomState)):
            params["random_state"] = None  # the seed it drew is kept as seed_
        spec = label_error_json(check_label_error(params.get("label_error")))
        params["label_error"] = None if spec == "array" else spec  # kept in label_error_
        return save_model(path, params, self.network_, state)

    @classmethod
    def load(cls, path, *, device="auto", precision="auto"):
        """Load a model written by `save`.

        Only tensors are read from the weights file (``torch.load(weights_only=True)``)
        and its SHA-256 must match the metadata; otherwise `ValueError`.
        """
        params, network, state = load_model(path)
        names = cls._get_param_names()
        params.update(device=device, precision=precision)
        if isinstance(params.get("label_error"), list):  # JSON keeps tuples as lists
            params["label_error"] = tuple(params["label_error"])
        model = cls(**{k: v for k, v in params.items() if k in names})
        device = resolve_device(device)
        return model._set_fitted(network, state, device, resolve_precision(precision, device))

    @classmethod
    def from_seed_checkpoint(cls, path, k=None, *, target=None, device="auto",
                             precision="fp32", image_size=160, crop_size=144,
                             mean=None, std=None, stats_from=None,
                             preprocessing=PAPER_ORDER):
        """Load one of the paper's released ``resnet18-topk_{k}-{target}.pth`` files.

        Those files are whole pickled ``ResNet18TopK`` modules (from the
        paper's ``src/model.py``, or ``__main__.ResNetTopK`` from its notebooks)
        holding a torchvision ``resnet`` attribute whose ``fc`` is
        ``Linear(512, n_out)`` and an integer ``k``.  They are read with
        PyTorch's restricted ``weights_only`` unpickler: only tensors, the
        torch/torchvision module classes of a ResNet-18, and those two class
        names (mapped onto a harmless stand-in) are allowed.  Anything else
        raises `pickle.UnpicklingError` before any code from the file runs.
        (A hostile file can still ask for huge allow-listed layers and exhaust
        memory; load files from sources you trust.)

        Parameters
        ----------
        path : path-like
        k : int, optional
            Override the file's ``k`` (the paper's file name carries it too).
        target : str, optional
            ``"metallicity"`` or ``"bpt_lines"``; guessed from the file name and
            the number of outputs when omitted.
        device : str or torch.device
            ``"auto"`` (CUDA, then MPS, then CPU) or any torch device string.
        precision : {"fp32", "bf16", "auto"}
            ``"fp32"`` (default) computes as the paper's pipeline did; ``"bf16"``
            (or ``"auto"``, bf16 where the hardware supports it) is faster but
            moves predictions measurably away from the paper's (see the
            documentation's "Reproducing the paper" page).
        image_size, crop_size : int
            The paper's geometry: centre crop 144 of the 160 px cutouts, resized
            back to 160 px.
        mean, std : sequence of 3 floats
            Per-channel normalisation on the 0–255 scale.  The ``.pth`` files do
            not store it: the paper's fastai pipeline computed it from one batch
            of 64 training images.  Give both, or ``stats_from``; with neither a
            `ValueError` explains what is missing (there is no ImageNet default:
            SDSS cutouts are much darker, and the wrong statistics shift
            predictions by up to dex).
        stats_from : GalaxySample or image array, optional
            Compute ``mean`` and ``std`` from these images (after the crop and
            resize), as the paper's pipeline did from its training images; use
            galaxies like those the model was trained on (for the released
            files: the Zenodo images, read with
            `~sfnet.datasets.load_galaxy_folder`).  sfnet uses up to 2048 of
            them; the paper's values came from one random batch of 64, so
            they differ from these by that batch's sampling noise.
        preprocessing : {"crop-resize", "resize-crop"}
            ``"crop-resize"`` (default) is the paper's order, with the PIL-exact
            bilinear resize (see `sfnet.preprocessing`); with it and the
            pipeline's statistics the predictions match the paper's own
            pipeline on the same JPEGs (measured: see the documentation's
            "Reproducing the paper" page).

        Returns
        -------
        SparseFeatureNet
            A fitted model; `save` and `load` keep its predictions exactly.
        """
        geometry = dict(image_size=image_size, crop_size=crop_size, preprocessing=preprocessing)
        placement = dict(device=device, precision=precision)
        cls(**geometry, **placement).validate_params()  # fail before reading anything
        params, network, state = model_from_seed_checkpoint(
            path, k, target=target, mean=mean, std=std, stats_from=stats_from, **geometry)
        model = cls(**params, **placement)
        device, dtype, _ = model.validate_params()
        return model._set_fitted(network, state, device, dtype)


#: Parameters of `SparseFeatureNet` that train as the paper did (Wu 2025, its
#: ``src/``): ResNet-18 from ImageNet weights, fastai's Ranger (RAdam + Lookahead)
#: under fastai's one-cycle schedule peaking at 0.1, 20 epochs of batches of 64,
#: centre crop 144 then resize to 160 (PIL bilinear), dihedral transforms with
#: probability 0.5, RMSE on the raw target, a random 80/20 split (sfnet's own draw;
#: ``GalaxySample.split(0.2, seed=256, method="paper")`` is the paper's) and the last
#: epoch kept.  A dict to unpack: ``SparseFeatureNet(k=4, **PAPER_RECIPE)``.  To change
#: one of its entries, merge before unpacking -- offline, without the ImageNet weights
#: (read from the torch hub cache): ``SparseFeatureNet(k=4, **{**PAPER_RECIPE,
#: "weights": None})``; passing ``weights=None`` beside ``**PAPER_RECIPE`` is a
#: `TypeError` (the keyword would be given twice).
PAPER_RECIPE = {
    "backbone": "resnet18", "weights": "imagenet", "optimizer": "ranger",
    "learning_rate": 0.1, "weight_decay": 0.01, "epochs": 20, "batch_size": 64,
    "image_size": 160, "crop_size": 144, "preprocessing": PAPER_ORDER, "augment": 0.5,
    "validation_fraction": 0.2, "keep_epoch": "last", "standardize_target": False,
}

