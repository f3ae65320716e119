"""The `SparseFeatureNet` estimator: fit, predict, activations, evaluate, save, load.

It follows scikit-learn conventions: ``__init__`` only stores parameters,
``fit`` validates them and sets fitted attributes ending in ``_``.
"""

import hashlib
import inspect
import json
import logging
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch

from ._io import atomic_path, atomic_write_json, json_safe
from ._utils import regression_metrics
from .exceptions import DataDroppedWarning, NotFittedError
from .nn import BACKBONES, SparseFeatureNetwork
from .targets import get_target
from .training import (DeviceImages, ImageSource, Preprocessor, TrainConfig,
                       autocast, resolve_device, resolve_precision, train_network)

__all__ = ["SparseFeatureNet"]

log = logging.getLogger("sfnet")

_FORMAT = "sfnet-model/1"
_WEIGHTS = "weights.pt"
_META = "sfnet.json"


def _is_sample(X):
    return hasattr(X, "images") and hasattr(X, "catalog")


def _image_store(X):
    """(array, rows, channels_last) for a GalaxySample or an image array.

    A lazy subset of a memory-mapped sample is returned as the whole memmap
    plus the rows in use, so nothing is read before a batch needs it.
    """
    if _is_sample(X):
        if hasattr(X, "image_store"):
            array, rows = X.image_store()
        else:
            array, rows = X.images, None
        array, channels_last = _check_images(array, "X.images")
    else:
        array, channels_last = _check_images(X, "X")
        rows = None
    if rows is None:
        rows = np.arange(len(array), dtype=np.int64)
    if len(rows) == 0:
        raise ValueError("X is empty (0 images)")
    return array, np.asarray(rows, dtype=np.int64), channels_last


def _target_rows(target, catalog, purpose):
    """Rows passing ``target``'s quality cuts and their target values.

    Rows that fail are reported in one `DataDroppedWarning`; none passing is an error.
    """
    catalog = target.prepare(catalog)
    keep = target.mask(catalog)
    if not keep.any():
        raise ValueError(f"no galaxy in X passes the quality cuts of target {target.name!r}")
    if not keep.all():
        warnings.warn(
            f"{int((~keep).sum())} of {len(keep)} galaxies fail the quality cuts of target "
            f"{target.name!r} and are not {purpose} (use sample.select({target.name!r}) to "
            "drop them explicitly)", DataDroppedWarning, stacklevel=4)
    rows = np.flatnonzero(keep)
    return rows, target.values(catalog[rows])


def _check_images(images, name="X"):
    """Validate an image array; return (array, channels_last)."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if not hasattr(images, "shape") or not hasattr(images, "dtype"):
        images = np.asarray(images)
    if images.dtype == object or not (np.issubdtype(images.dtype, np.integer)
                                      or np.issubdtype(images.dtype, np.floating)):
        raise TypeError(f"{name} must be a numeric image array, got dtype {images.dtype}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have 4 dimensions (N, H, W, 3) or (N, 3, H, W), "
                         f"got shape {images.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 images)")
    if images.shape[-1] == 3:
        channels_last = True
    elif images.shape[1] == 3:
        channels_last = False
    else:
        raise ValueError(f"{name} must have 3 colour channels, got shape {images.shape}")
    if np.issubdtype(images.dtype, np.integer) and images.dtype != np.uint8:
        raise TypeError(f"{name}: integer images must be uint8 (0-255), got {images.dtype}")
    return images, channels_last


def _target_array(y, n, name="y"):
    """y -> (float64 array (N, T), column names or None, units or None)."""
    names = units = None
    try:
        from astropy.table import Table
    except ImportError:  # pragma: no cover
        Table = ()
    if isinstance(y, Table):
        names = list(y.colnames)
        units = [str(y[c].unit) if getattr(y[c], "unit", None) else "" for c in names]
        cols = []
        for c in names:
            v = getattr(y[c], "value", y[c])
            cols.append(np.ma.filled(np.ma.asarray(v, dtype=np.float64), np.nan))
        arr = np.stack(cols, axis=1) if cols else np.empty((len(y), 0))
    else:
        unit = getattr(y, "unit", None)
        if unit is not None:
            units = [str(unit)]
        if isinstance(getattr(y, "name", None), str) and y.name:
            names = [y.name]
        v = getattr(y, "value", y)
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().numpy()
        if np.ma.isMaskedArray(v):
            v = np.ma.filled(v.astype(np.float64), np.nan)
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be numeric, got {type(y).__name__}") from exc
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N,) or (N, n_targets), got {arr.shape}")
    if len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} rows but X has {n} images")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))[:5].tolist()
        raise ValueError(f"{name} contains {int(bad.sum())} NaN/inf value(s) (rows {rows}...)")
    if units is not None and len(units) != arr.shape[1]:
        units = units * arr.shape[1] if len(units) == 1 else None
    return arr, names, units


class SparseFeatureNet:
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
        Peak learning rate of the one-cycle schedule (AdamW).
    weight_decay : float
        AdamW decoupled weight decay (not applied to biases and norms).
    image_size : int, optional
        Resize images to this size first (the paper: 160).
    crop_size : int, optional
        Then centre-crop to this size (the paper: 144).
    validation_fraction : float
        Fraction of the training galaxies held out to select the best epoch
        (0 disables validation; the last epoch is kept).
    augment : bool
        Random dihedral transforms (flips and 90° rotations) during training.
    device : str
        ``"auto"`` (cuda, then mps, then cpu) or a torch device string.
    precision : {"auto", "fp32", "bf16"}
        ``"auto"`` uses bfloat16 autocast on CUDA and on CPUs with AVX512-BF16/AMX.
    random_state : int, optional
        Seed for initialisation, the validation split, shuffling and augmentation.
    progress : bool
        Show tqdm progress bars.

    Attributes
    ----------
    network_ : SparseFeatureNetwork
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss`` (RMSE of standardised targets),
        ``valid_rmse`` (per target, original units), ``lr``, ``seconds``.
    best_epoch_ : int
    target_names : list of str
    head_weights, head_bias : ndarray

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

    def __init__(self, k=2, target="metallicity", backbone="resnet18", weights=None,
                 epochs=20, batch_size=64, learning_rate=3e-3, weight_decay=1e-2,
                 image_size=None, crop_size=None, validation_fraction=0.2, augment=True,
                 device="auto", precision="auto", random_state=None, progress=True):
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
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.progress = progress

    # ------------------------------------------------------------------ params
    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep=True):
        """Parameters of this estimator (scikit-learn convention)."""
        return {p: getattr(self, p) for p in self._param_names()}

    def set_params(self, **params):
        """Set parameters; unknown names raise `ValueError`."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"invalid parameter {key!r} for SparseFeatureNet; "
                                 f"valid parameters: {valid}")
            setattr(self, key, value)
        return self

    def __repr__(self):
        defaults = {p.name: p.default for p in
                    inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not _same(v, defaults.get(k))]
        return f"SparseFeatureNet({', '.join(changed)})"

    def _validate_params(self):
        def posint(name, value, minimum=1):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")

        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose from {sorted(BACKBONES)}")
        n_features = BACKBONES[self.backbone][1]
        posint("k", self.k)
        if self.k > n_features:
            raise ValueError(f"k={self.k} exceeds n_features={n_features} of {self.backbone}")
        posint("epochs", self.epochs)
        posint("batch_size", self.batch_size)
        for name in ("learning_rate", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0 \
                    or (name == "learning_rate" and v == 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        for name in ("image_size", "crop_size"):
            v = getattr(self, name)
            if v is not None:
                posint(name, v, 8)
        if self.image_size and self.crop_size and self.crop_size > self.image_size:
            raise ValueError(f"crop_size={self.crop_size} exceeds image_size={self.image_size}")
        vf = self.validation_fraction
        if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not 0 <= vf < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {vf!r}")
        if self.weights not in (None, "imagenet"):
            raise ValueError(f"weights must be None or 'imagenet', got {self.weights!r}")
        if self.random_state is not None:
            posint("random_state", self.random_state, 0)
        device = resolve_device(self.device)
        dtype = resolve_precision(self.precision, device)
        target = get_target(self.target)
        return device, dtype, target

    def _training_seed(self, checkpoint_dir, resume):
        """``random_state``, or the seed of the checkpoint being resumed, or a fresh one."""
        if self.random_state is not None:
            return int(self.random_state)
        if resume:
            from .training import CHECKPOINT_NAME, load_checkpoint

            path = Path(checkpoint_dir) / CHECKPOINT_NAME
            if path.is_file():
                return int(load_checkpoint(path)["extra"]["seed"])
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("random_state must be set when training under torchrun, so "
                             "that every process draws the same split and shuffling")
        return int(np.random.default_rng().integers(2**31 - 1))

    # ------------------------------------------------------------------ data
    def _training_data(self, X, y, target):
        """-> (images, channels_last, rows, y (N,T), names, units)."""
        images, store_rows, channels_last = _image_store(X)
        if _is_sample(X):
            if y is None:
                rows, values = _target_rows(target, X.catalog, "used for training")
                return (images, channels_last, store_rows[rows], values, list(target.columns),
                        list(target.units))
        elif y is None:
            raise ValueError("y is required when X is an image array "
                             "(pass a GalaxySample to take targets from its catalog)")
        values, names, units = _target_array(y, len(store_rows))
        if names is None or len(names) != values.shape[1]:
            names = (list(target.columns) if len(target.columns) == values.shape[1]
                     else [f"target_{i}" for i in range(values.shape[1])])
            if units is None and len(target.columns) == values.shape[1]:
                units = list(target.units)
        return images, channels_last, store_rows, values, names, units

    def _source(self, X):
        """An ImageSource over X (a sample or an image array) for inference."""
        self._check_fitted()
        images, rows, channels_last = _image_store(X)
        kind = "uint8" if images.dtype == np.uint8 else "float"
        if kind != self.input_kind_:
            raise TypeError(f"X holds {kind} images but the model was trained on "
                            f"{self.input_kind_} images")
        shape = images.shape[1:3] if channels_last else images.shape[2:4]
        prep = self.preprocessor_
        if prep.image_size is None and prep.crop_size is None and \
                tuple(shape) != tuple(self.input_shape_):
            raise ValueError(f"X has {shape[0]}x{shape[1]} images but the model was trained on "
                             f"{self.input_shape_[0]}x{self.input_shape_[1]}; set image_size")
        return ImageSource(images, rows, channels_last=channels_last)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, *, checkpoint_dir=None, resume=False):
        """Train the network.

        Parameters
        ----------
        X : GalaxySample or array
            A `~sfnet.GalaxySample` (targets from its catalog through ``target``;
            galaxies failing the target's cuts are left out with a warning), or
            images ``(N, H, W, 3)``/``(N, 3, H, W)``, uint8 0–255 or float.
            Memory-mapped images are streamed, never loaded whole, when large.
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
        device, dtype, target = self._validate_params()
        if resume and checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        images, channels_last, rows, values, names, units = self._training_data(X, y, target)
        seed = self._training_seed(checkpoint_dir, resume)
        n = len(rows)
        n_valid = int(round(n * self.validation_fraction))
        if self.validation_fraction > 0:
            n_valid = max(n_valid, 1)
        if n - n_valid < 2:
            raise ValueError(f"X has {n} usable images: too few to train with "
                             f"validation_fraction={self.validation_fraction}")
        perm = np.random.default_rng(seed).permutation(n)
        valid_pos, train_pos = np.sort(perm[:n_valid]), np.sort(perm[n_valid:])

        train_src = ImageSource(images, rows[train_pos], channels_last)
        shape = train_src.image_shape
        prep = Preprocessor(self.image_size, self.crop_size)
        side = self.crop_size or self.image_size
        if side is None and shape[0] != shape[1]:
            raise ValueError(f"images must be square (got {shape[0]}x{shape[1]}); set image_size")
        prep.fit_stats(train_src, seed=seed)
        y_mean = values[train_pos].mean(axis=0)
        y_std = values[train_pos].std(axis=0)
        y_std = np.where(y_std > 0, y_std, 1.0)
        y_std_t = lambda v: torch.as_tensor((v - y_mean) / y_std, dtype=torch.float32,
                                            device=device)  # noqa: E731

        torch.manual_seed(seed)
        network = SparseFeatureNetwork(int(self.k), values.shape[1], self.backbone, self.weights)
        network.to(device).to(memory_format=torch.channels_last)
        if checkpoint_dir is not None:
            os.makedirs(checkpoint_dir, exist_ok=True)
        train = DeviceImages(train_src, prep, device)
        valid = (DeviceImages(ImageSource(images, rows[valid_pos], channels_last), prep, device)
                 if n_valid else None)
        cfg = TrainConfig(int(self.epochs), int(self.batch_size), float(self.learning_rate),
                          float(self.weight_decay), bool(self.augment), seed,
                          bool(self.progress), dtype)
        # everything a resumed run must share with the interrupted one
        fingerprint = hashlib.sha256()
        for part in (rows, values, np.asarray(images.shape), np.asarray(prep.mean)):
            fingerprint.update(np.ascontiguousarray(part).tobytes())
        extra = {"n_train": int(len(train_pos)), "n_valid": int(n_valid), "seed": seed,
                 "k": int(self.k), "backbone": self.backbone, "weights": self.weights,
                 "epochs": int(self.epochs), "batch_size": int(self.batch_size),
                 "learning_rate": float(self.learning_rate),
                 "weight_decay": float(self.weight_decay), "augment": bool(self.augment),
                 "image_size": self.image_size and int(self.image_size),
                 "crop_size": self.crop_size and int(self.crop_size),
                 "precision": "bf16" if dtype == torch.bfloat16 else "fp32",
                 "targets": names, "data_sha256": fingerprint.hexdigest()}
        history, best_epoch = train_network(
            network, train, y_std_t(values[train_pos]), valid,
            y_std_t(values[valid_pos]) if n_valid else None, prep, cfg, device,
            checkpoint_dir=checkpoint_dir, resume=resume, extra_state=extra, y_scale=y_std)
        network.eval()
        self.network_ = network
        self.device_ = device
        self.autocast_dtype_ = dtype
        self.preprocessor_ = prep
        self.y_mean_, self.y_std_ = y_mean, y_std
        self.target_names_ = list(names)
        self.target_units_ = list(units) if units else [""] * len(names)
        self.target_ = target
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.seed_ = seed
        self.input_kind_ = "uint8" if images.dtype == np.uint8 else "float"
        self.input_shape_ = tuple(int(s) for s in shape)
        self.n_train_, self.n_valid_ = int(len(train_pos)), int(n_valid)
        return self

    # ------------------------------------------------------------------ fitted state
    def _check_fitted(self):
        if not hasattr(self, "network_"):
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
        """Stream X through ``fn(network, x_normalised)`` batch by batch."""
        src = self._source(X)
        prep, device, net = self.preprocessor_, self.device_, self.network_
        bs = self._batch_size(batch_size)
        net.eval()
        chunks = []
        with torch.inference_mode():
            for pos, x in src.batches(bs):
                pin = device.type == "cuda"
                if pin:
                    x = x.pin_memory()
                x = prep.normalize(prep.geometry(x.to(device, non_blocking=pin)))
                with autocast(device, self.autocast_dtype_):
                    res = fn(net, x)
                res = res.float().cpu().numpy()
                if out is not None:
                    out(pos, res)
                else:
                    chunks.append(res)
        return None if out is not None else np.concatenate(chunks)

    def predict(self, X, *, batch_size=None):
        """Predict the targets.

        Returns
        -------
        ndarray
            ``(N,)`` for one target, ``(N, n_targets)`` otherwise, in the
            targets' original units.
        """
        z = self._run(X, lambda net, x: net(x), batch_size).astype(np.float64)
        pred = z * self.y_std_ + self.y_mean_
        return pred[:, 0] if pred.shape[1] == 1 else pred

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
        parts_i, parts_v = [], []

        def top(net, x):
            a = net.sparse_features(x)
            vals, idx = torch.topk(a, k, dim=1)
            return torch.cat([idx.float(), vals], dim=1)

        res = self._run(X, top, batch_size)
        idx, vals = res[:, :k].astype(np.int64), res[:, k:].astype(np.float32)
        idx[vals <= 0] = -1
        vals[vals <= 0] = 0
        parts_i.append(idx)
        parts_v.append(vals)
        return parts_i[0], parts_v[0]

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
            raise ValueError(f"features must be integers in [0, {self.n_features}), got {features!r}")
        idx = torch.as_tensor(feats, device=self.device_)
        return self._run(X, lambda net, x: net.feature_maps(x).index_select(1, idx).float(),
                         batch_size)

    def input_images(self, X, *, batch_size=None):
        """Images as the network sees them (resized and cropped), uint8 ``(N, s, s, 3)``."""
        src = self._source(X)
        out = []
        for _, x in src.batches(self._batch_size(batch_size)):
            x = self.preprocessor_.geometry(x)
            if x.dtype != torch.uint8:
                x = x.clamp(0, 255).round().to(torch.uint8)
            out.append(x.permute(0, 2, 3, 1).numpy())
        return np.concatenate(out)

    # ------------------------------------------------------------------ scores
    def _y_true(self, X, y):
        """(truth (N, T), rows of X to score): with a sample, the target's cuts apply."""
        self._check_fitted()
        if y is None:
            if not _is_sample(X):
                raise ValueError("y is required when X is an image array")
            rows, values = _target_rows(self.target_, X.catalog, "scored")
            return values, rows
        truth = _target_array(y, len(X))[0]
        return truth, np.arange(len(truth))

    def evaluate(self, X, y=None, *, batch_size=None):
        """Metrics per target: ``rmse``, ``nmad``, ``bias``, ``r2``, ``n``.

        ``nmad`` is 1.4826 × the median absolute deviation of the residuals,
        ``bias`` the mean residual (prediction − truth).
        """
        truth, rows = self._y_true(X, y)
        if len(rows) < len(X):
            X = X[rows]
        pred = self.predict(X, batch_size=batch_size).reshape(len(truth), -1)
        if pred.shape != truth.shape:
            raise ValueError(f"y has {truth.shape[1]} columns but the model predicts {pred.shape[1]}")
        return {name: regression_metrics(truth[:, j], pred[:, j])
                for j, name in enumerate(self.target_names_)}

    def score(self, X, y=None):
        """Coefficient of determination R², averaged over targets."""
        return float(np.mean([m["r2"] for m in self.evaluate(X, y).values()]))

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Save weights and JSON metadata into directory ``path`` (no pickle).

        The metadata records the SHA-256 of the weights, so a tampered file is
        refused by `load`.  Under ``torchrun`` only rank 0 writes.
        """
        self._check_fitted()
        path = Path(path)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) != 0:
            return path
        params = self.get_params()
        params["target"] = params["target"] if isinstance(params["target"], (str, list)) \
            else list(self.target_.columns)
        meta = {
            "format": _FORMAT, "sfnet_version": _version(), "torch_version": torch.__version__,
            "params": params, "backbone": self.network_.backbone, "k": self.network_.k,
            "n_features": self.network_.n_features,
            "target_names": self.target_names_, "target_units": self.target_units_,
            "target": {"name": self.target_.name, "columns": list(self.target_.columns),
                       "units": list(self.target_.units), "labels": list(self.target_.labels),
                       "required": list(self.target_.required)},
            "y_mean": self.y_mean_.tolist(), "y_std": self.y_std_.tolist(),
            "preprocessing": {"image_size": self.preprocessor_.image_size,
                              "crop_size": self.preprocessor_.crop_size,
                              "mean": self.preprocessor_.mean, "std": self.preprocessor_.std},
            "input_kind": self.input_kind_, "input_shape": list(self.input_shape_),
            "history": self.history_, "best_epoch": self.best_epoch_, "seed": self.seed_,
            "n_train": self.n_train_, "n_valid": self.n_valid_,
        }
        meta = json_safe(meta)
        json.dumps(meta)  # fail before anything is written
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.network_.state_dict().items()}
        with atomic_path(path / _WEIGHTS) as tmp:
            torch.save(state, tmp)
        meta["weights_sha256"] = _sha256(path / _WEIGHTS)
        atomic_write_json(path / _META, meta)
        return path

    @classmethod
    def load(cls, path, *, device="auto", precision="auto"):
        """Load a model written by `save`.

        Only tensors are read from the weights file (``torch.load(weights_only=True)``)
        and its SHA-256 must match the metadata; otherwise `ValueError`.
        """
        from .targets import Target

        path = Path(path)
        for name in (_META, _WEIGHTS):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path / name} not found: not an sfnet model directory")
        meta = json.loads((path / _META).read_text())
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path / _META} is not an sfnet model ({meta.get('format')!r})")
        if _sha256(path / _WEIGHTS) != meta["weights_sha256"]:
            raise ValueError(f"{path / _WEIGHTS} does not match the checksum in {path / _META}: "
                             "the file was modified or is corrupt; refusing to load it")
        params = dict(meta["params"])
        params.update(device=device, precision=precision)
        self = cls(**{k: v for k, v in params.items() if k in cls._param_names()})
        self.device_ = resolve_device(device)
        self.autocast_dtype_ = resolve_precision(precision, self.device_)
        state = torch.load(path / _WEIGHTS, map_location="cpu", weights_only=True)
        net = SparseFeatureNetwork(meta["k"], len(meta["target_names"]), meta["backbone"])
        net.load_state_dict(state)
        t = meta["target"]
        self._set_fitted(net, Target(t["name"], tuple(t["columns"]), tuple(t["units"]),
                                     tuple(t["labels"]), tuple(t["required"])), meta)
        return self

    def _set_fitted(self, net, target, meta):
        p = meta["preprocessing"]
        self.network_ = net.to(self.device_).to(memory_format=torch.channels_last).eval()
        self.preprocessor_ = Preprocessor(p["image_size"], p["crop_size"], list(p["mean"]),
                                          list(p["std"]))
        self.y_mean_ = np.asarray(meta["y_mean"], dtype=np.float64)
        self.y_std_ = np.asarray(meta["y_std"], dtype=np.float64)
        self.target_names_ = list(meta["target_names"])
        self.target_units_ = list(meta["target_units"])
        self.target_ = target
        self.history_ = list(meta.get("history", []))
        self.best_epoch_ = meta.get("best_epoch")
        self.seed_ = meta.get("seed")
        self.input_kind_ = meta["input_kind"]
        self.input_shape_ = tuple(meta["input_shape"])
        self.n_train_, self.n_valid_ = meta.get("n_train"), meta.get("n_valid")

    @classmethod
    def from_seed_checkpoint(cls, path, k=None, *, target=None, device="auto",
                             precision="auto", image_size=160, crop_size=144,
                             mean=(0.485 * 255, 0.456 * 255, 0.406 * 255),
                             std=(0.229 * 255, 0.224 * 255, 0.225 * 255), stats_from=None):
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
        image_size, crop_size, mean, std
            Preprocessing assumed for the released weights: 160 px JPEGs, centre
            crop 144, per-channel mean and std on the 0–255 scale.  The ``.pth``
            files do not store the normalisation the paper's fastai pipeline
            used; the ImageNet statistics here are only a default.
        stats_from : GalaxySample or image array, optional
            Compute ``mean`` and ``std`` from these images instead (after the
            resize and crop), as a data-derived normalisation would have; use
            galaxies like those the model was trained on.
        """
        from .targets import get_target

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found")
        obj = _restricted_load(path)
        resnet = getattr(obj, "resnet", None)
        if resnet is None or not hasattr(getattr(resnet, "fc", None), "weight"):
            raise ValueError(f"{path} does not hold a ResNetTopK module with a 'resnet' "
                             "attribute and a linear 'fc'")
        file_k = getattr(obj, "k", None)
        k = int(k if k is not None else file_k if file_k is not None else 0)
        if k < 1:
            raise ValueError(f"{path}: k is not stored in the file; pass k=")
        fc = resnet.fc
        n_out = fc.weight.shape[0]
        if target is None:
            target = "bpt_lines" if (n_out == 4 or "bpt" in path.name.lower()) else "metallicity"
        t = get_target(target)
        if len(t.columns) != n_out:
            raise ValueError(f"{path} predicts {n_out} outputs but target {target!r} has "
                             f"{len(t.columns)} columns")
        net = SparseFeatureNetwork(k, n_out, "resnet18")
        state = {f"resnet.{key}": v for key, v in resnet.state_dict().items()
                 if not key.startswith("fc.")}
        state["head.weight"] = fc.weight.detach()
        state["head.bias"] = fc.bias.detach()
        net.load_state_dict(state)
        self = cls(k=k, target=target, backbone="resnet18", image_size=image_size,
                   crop_size=crop_size, device=device, precision=precision)
        self.device_ = resolve_device(device)
        self.autocast_dtype_ = resolve_precision(precision, self.device_)
        meta = {"preprocessing": {"image_size": image_size, "crop_size": crop_size,
                                  "mean": list(mean), "std": list(std)},
                "y_mean": [0.0] * n_out, "y_std": [1.0] * n_out,
                "target_names": list(t.columns), "target_units": list(t.units),
                "input_kind": "uint8", "input_shape": [image_size, image_size],
                "history": [], "best_epoch": None, "seed": None}
        self._set_fitted(net, t, meta)
        if stats_from is not None:
            images, rows, channels_last = _image_store(stats_from)
            self.preprocessor_.fit_stats(ImageSource(images, rows, channels_last))
        return self


# ---------------------------------------------------------------------- helpers
class _SeedTopKStandIn(torch.nn.Module):
    """Harmless stand-in for the paper's pickled ``ResNet18TopK`` classes.

    Unpickling only restores attributes (``resnet``, ``k``); it has no forward.
    """


def _seed_safe_globals():
    import collections

    import torchvision
    from torch import nn

    allowed = [
        nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d,
        nn.Sequential, nn.Linear, nn.Identity, collections.OrderedDict,
        torchvision.models.resnet.ResNet, torchvision.models.resnet.BasicBlock,
        torchvision.models.resnet.Bottleneck, set,
        (_SeedTopKStandIn, "model.ResNet18TopK"),
        (_SeedTopKStandIn, "__main__.ResNetTopK"),
        (_SeedTopKStandIn, "__main__.ResNet18TopK"),
        (_SeedTopKStandIn, "src.model.ResNet18TopK"),
    ]
    return allowed


def _restricted_load(path):
    with torch.serialization.safe_globals(_seed_safe_globals()):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise
        except RuntimeError as exc:  # torch wraps some unpickling failures
            raise pickle.UnpicklingError(f"{path}: refused to load: {exc}") from exc


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _version():
    from . import __version__

    return __version__


def _same(a, b):
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return False
