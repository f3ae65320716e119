"""The `SparseFeatureNet` estimator: fit, predict, activations, evaluate, save, load.

It follows scikit-learn conventions: ``__init__`` only stores parameters (all
after ``k`` keyword-only); `SparseFeatureNet.validate_params` checks them
against the declarative ``_parameter_constraints``; ``fit`` validates, trains
(`sfnet.training`) and sets the fitted attributes, which end in ``_`` and are
set in one place (``_set_fitted``), also by ``load`` and
``from_seed_checkpoint``.  Input coercion lives in `sfnet._inputs`, the file
formats in `sfnet._persistence`.
"""

import hashlib
import inspect
import os
import weakref
from collections import namedtuple
from pathlib import Path

import numpy as np
import torch

from . import _params
from ._inputs import inference_source, scoring_truth, training_data
from ._persistence import (IMAGENET_MEAN, IMAGENET_STD, load_model, model_from_seed_checkpoint,
                           save_model)
from ._utils import regression_metrics
from ._validation import check_bool
from .exceptions import NotFittedError
from .nn import BACKBONES, SparseFeatureNetwork
from .targets import get_target
from .training import (CHECKPOINT_NAME, CompiledNetwork, DeviceImages, ImageSource, Preprocessor,
                       TrainConfig,
                       autocast, load_checkpoint, resolve_device, resolve_precision,
                       train_network)

__all__ = ["SparseFeatureNet", "ResolvedParams"]

#: What `SparseFeatureNet.validate_params` returns: the training ``device``
#: (`torch.device`), the autocast ``dtype`` (None for float32) and the `~sfnet.targets.Target`.
ResolvedParams = namedtuple("ResolvedParams", "device dtype target")

#: Compiled wrappers of fitted networks (``compile=True``), kept out of the
#: estimator so that it pickles and copies as before.
_COMPILED = weakref.WeakKeyDictionary()


def _k_fits_backbone(k, resolved):
    n_features = BACKBONES[resolved["backbone"]][1]
    if k > n_features:
        raise ValueError(f"k={k} exceeds n_features={n_features} of {resolved['backbone']}")
    return k


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
        "image_size": [_params.Integer(8, allow_none=True)],
        "crop_size": [_params.Integer(8, allow_none=True), _params.AtMost("image_size")],
        "validation_fraction": [_params.Real(0, below=1)],
        "weights": [_params.Choice((None, "imagenet"))],
        "random_state": [_params.Integer(0, allow_none=True)],
        "device": [_params.Resolve(lambda device, _: resolve_device(device))],
        "precision": [_params.Resolve(lambda precision, r: resolve_precision(precision,
                                                                             r["device"]))],
        "target": [_params.Resolve(lambda target, _: get_target(target))],
        "augment": [],
        "progress": [],
        "compile": [_params.Resolve(lambda value, _: check_bool(value, "compile"))],
    }

    def __init__(self, k=2, *, target="metallicity", backbone="resnet18", weights=None,
                 epochs=20, batch_size=64, learning_rate=3e-3, weight_decay=1e-2,
                 image_size=None, crop_size=None, validation_fraction=0.2, augment=True,
                 device="auto", precision="auto", random_state=None, progress=True,
                 compile=False):
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
        self.compile = compile

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
        resolved = _params.validate(self._parameter_constraints, self.get_params())
        return ResolvedParams(resolved["device"], resolved["precision"], resolved["target"])

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
        device, dtype, target = self.validate_params()
        if resume and checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        data = training_data(X, y, target)
        seed = self._training_seed(checkpoint_dir, resume)
        train_pos, valid_pos = self._split(len(data.rows), seed)
        train_src = ImageSource(data.images, data.rows[train_pos], data.channels_last)
        prep = self._fit_preprocessor(train_src, seed)
        y_mean = data.values[train_pos].mean(axis=0)
        y_std = data.values[train_pos].std(axis=0)
        y_std = np.where(y_std > 0, y_std, 1.0)

        torch.manual_seed(seed)
        network = SparseFeatureNetwork(int(self.k), data.values.shape[1], self.backbone,
                                       self.weights)
        network.to(device).to(memory_format=torch.channels_last)
        if checkpoint_dir is not None:
            os.makedirs(checkpoint_dir, exist_ok=True)
        history, best_epoch = self._train(
            network, data, train_pos, valid_pos, prep, y_mean=y_mean, y_std=y_std, seed=seed,
            device=device, dtype=dtype, checkpoint_dir=checkpoint_dir, resume=resume)
        self._set_fitted(
            network, target=target, device=device, autocast_dtype=dtype, preprocessor=prep,
            y_mean=y_mean, y_std=y_std, target_names=data.names,
            target_units=data.units or [""] * len(data.names),
            input_kind="uint8" if data.images.dtype == np.uint8 else "float",
            input_shape=tuple(int(s) for s in train_src.image_shape), history=history,
            best_epoch=best_epoch, seed=seed, n_train=len(train_pos), n_valid=len(valid_pos))
        return self

    def _training_seed(self, checkpoint_dir, resume):
        """``random_state``, or the seed of the checkpoint being resumed, or a fresh one."""
        if self.random_state is not None:
            return int(self.random_state)
        if resume:
            path = Path(checkpoint_dir) / CHECKPOINT_NAME
            if path.is_file():
                return int(load_checkpoint(path)["extra"]["seed"])
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("random_state must be set when training under torchrun, so "
                             "that every process draws the same split and shuffling")
        return int(np.random.default_rng().integers(2**31 - 1))

    def _split(self, n, seed):
        """Sorted (training, validation) positions of ``n`` galaxies, drawn with ``seed``."""
        n_valid = int(round(n * self.validation_fraction))
        if self.validation_fraction > 0:
            n_valid = max(n_valid, 1)
        if n - n_valid < 2:
            raise ValueError(f"X has {n} usable images: too few to train with "
                             f"validation_fraction={self.validation_fraction}")
        perm = np.random.default_rng(seed).permutation(n)
        return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])

    def _fit_preprocessor(self, train_src, seed):
        """The `Preprocessor` of ``image_size``/``crop_size`` with statistics of ``train_src``."""
        shape = train_src.image_shape
        if (self.crop_size or self.image_size) is None and shape[0] != shape[1]:
            raise ValueError(f"images must be square (got {shape[0]}x{shape[1]}); set image_size")
        return Preprocessor(self.image_size, self.crop_size).fit_stats(train_src, seed=seed)

    def _train(self, network, data, train_pos, valid_pos, prep, *, y_mean, y_std, seed,
               device, dtype, checkpoint_dir, resume):
        """Run `train_network` on ``data`` split into train/valid; (history, best_epoch)."""
        def images(pos):
            return DeviceImages(ImageSource(data.images, data.rows[pos], data.channels_last),
                                prep, device)

        def standardised(pos):
            return torch.as_tensor((data.values[pos] - y_mean) / y_std, dtype=torch.float32,
                                   device=device)

        has_valid = len(valid_pos) > 0
        cfg = TrainConfig(int(self.epochs), int(self.batch_size), float(self.learning_rate),
                          float(self.weight_decay), bool(self.augment), seed,
                          bool(self.progress), dtype)
        cfg.compile = bool(self.compile)
        return train_network(
            network, images(train_pos), standardised(train_pos),
            images(valid_pos) if has_valid else None,
            standardised(valid_pos) if has_valid else None, prep, cfg, device,
            checkpoint_dir=checkpoint_dir, resume=resume,
            extra_state=self._resume_key(data, len(train_pos), len(valid_pos), seed, prep, dtype),
            y_scale=y_std)

    def _resume_key(self, data, n_train, n_valid, seed, prep, dtype):
        """Everything a resumed run must share with the interrupted one."""
        fingerprint = hashlib.sha256()
        for part in (data.rows, data.values, np.asarray(data.images.shape), np.asarray(prep.mean)):
            fingerprint.update(np.ascontiguousarray(part).tobytes())
        return {"n_train": int(n_train), "n_valid": int(n_valid), "seed": seed,
                "k": int(self.k), "backbone": self.backbone, "weights": self.weights,
                "epochs": int(self.epochs), "batch_size": int(self.batch_size),
                "learning_rate": float(self.learning_rate),
                "weight_decay": float(self.weight_decay), "augment": bool(self.augment),
                "image_size": self.image_size and int(self.image_size),
                "crop_size": self.crop_size and int(self.crop_size),
                "precision": "bf16" if dtype == torch.bfloat16 else "fp32",
                "targets": data.names, "data_sha256": fingerprint.hexdigest()}

    def _set_fitted(self, network, *, target, device, autocast_dtype, preprocessor, y_mean,
                    y_std, target_names, target_units, input_kind, input_shape, history=(),
                    best_epoch=None, seed=None, n_train=None, n_valid=None):
        """Set every fitted attribute: the one place that does, for fit, load and seed files."""
        self.network_ = network.to(device).to(memory_format=torch.channels_last).eval()
        self.device_ = device
        self.autocast_dtype_ = autocast_dtype
        self.preprocessor_ = preprocessor
        self.y_mean_ = np.asarray(y_mean, dtype=np.float64)
        self.y_std_ = np.asarray(y_std, dtype=np.float64)
        self.target_ = target
        self.target_names_ = list(target_names)
        self.target_units_ = list(target_units)
        self.history_ = list(history)
        self.best_epoch_ = best_epoch
        self.seed_ = seed
        self.input_kind_ = input_kind
        self.input_shape_ = tuple(input_shape)
        self.n_train_ = None if n_train is None else int(n_train)
        self.n_valid_ = None if n_valid is None else int(n_valid)

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
        prep, device, net = self.preprocessor_, self.device_, self._inference_network()
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

    def _inference_network(self):
        """The fitted network, or its `~sfnet.training.CompiledNetwork` with ``compile=True``."""
        if not check_bool(self.compile, "compile"):
            return self.network_
        compiled = _COMPILED.get(self.network_)
        if compiled is None:
            compiled = _COMPILED[self.network_] = CompiledNetwork(self.network_)
        return compiled

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
        are left out with a warning.
        """
        self._check_fitted()
        truth, rows = scoring_truth(X, y, self.target_)
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

        Returns
        -------
        pathlib.Path
        """
        self._check_fitted()
        return save_model(self, path)

    @classmethod
    def load(cls, path, *, device="auto", precision="auto"):
        """Load a model written by `save`.

        Only tensors are read from the weights file (``torch.load(weights_only=True)``)
        and its SHA-256 must match the metadata; otherwise `ValueError`.
        """
        return load_model(cls, path, device=device, precision=precision)

    @classmethod
    def from_seed_checkpoint(cls, path, k=None, *, target=None, device="auto",
                             precision="auto", image_size=160, crop_size=144,
                             mean=IMAGENET_MEAN, std=IMAGENET_STD, stats_from=None):
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
        return model_from_seed_checkpoint(
            cls, path, k, target=target, device=device, precision=precision,
            image_size=image_size, crop_size=crop_size, mean=mean, std=std,
            stats_from=stats_from)


def _same(a, b):
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return False
