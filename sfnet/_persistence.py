"""The fitted state of `sfnet.SparseFeatureNet`, its files, and the paper's seed checkpoints.

Private module behind `SparseFeatureNet.fit`, `SparseFeatureNet.save`,
`SparseFeatureNet.load` and `SparseFeatureNet.from_seed_checkpoint`.

* `FittedState` is the one definition of what a fit learns besides the
  weights (target, preprocessing, target scaling, input kind, history, seed,
  split sizes, uncertainty calibration) and its JSON form.  The estimator sets
  one fitted attribute ``name_`` per field.
* The sfnet format is a directory with ``weights.pt`` (a state dict of
  tensors, read back with ``torch.load(weights_only=True)``; the arrays of
  the out-of-distribution statistics are stored in it as ``ood.*``) and
  ``sfnet.json`` (parameters, the network's shape, `FittedState.to_json` and
  the SHA-256 of the weights).  Nothing in it is pickled code.
* The paper's released ``resnet18-topk_{k}-{target}.pth`` files are whole
  pickled modules; they are read through an allow-listed unpickler
  (`restricted_load`) that refuses any class outside a ResNet-18.

The readers return plain parts ``(params, network, state)``; the estimator
builds itself from them, so nothing here touches an estimator's internals.
"""

import collections
import dataclasses
import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from ._imagedata import ImageSource
from ._inputs import image_store
from ._io import atomic_path, atomic_write_json, json_safe
from ._ood import ARRAY_PREFIX, OODStatistics
from .nn import SparseFeatureNetwork
from .preprocessing import PAPER_ORDER, Preprocessor, check_order
from .targets import TARGETS, Target, get_target

__all__ = ["FORMAT", "WEIGHTS", "META", "FittedState", "save_model", "load_model",
           "model_from_seed_checkpoint", "restricted_load", "seed_safe_globals", "sha256"]

FORMAT = "sfnet-model/1"
WEIGHTS = "weights.pt"
META = "sfnet.json"

#: Why `model_from_seed_checkpoint` refuses to guess the normalisation.
MISSING_STATS = (
    "{path} does not store the normalisation its network was trained with: the paper's "
    "fastai pipeline computed per-channel mean and std from one batch of 64 training images "
    "(after the crop and resize) and kept them outside the .pth file. For SDSS cutouts they "
    "are far from ImageNet's (around 0.06-0.09 mean, 0.10-0.13 std on the 0-1 scale), and "
    "a wrong normalisation shifts predictions by up to dex. Pass stats_from= images like the "
    "training set (e.g. the Zenodo release loaded with sfnet.datasets.load_galaxy_folder) to "
    "compute them, or mean= and std= (3 values each, 0-255 scale) if you know them.")


# ---------------------------------------------------------------------- the fitted state
@dataclasses.dataclass(frozen=True)
class FittedState:
    """What a fitted `~sfnet.SparseFeatureNet` knows besides its network weights.

    The estimator exposes each field ``name`` as the fitted attribute
    ``name_``; `fit`, `load` and the seed loader all build one of these.

    Parameters
    ----------
    target : `~sfnet.targets.Target`
        The resolved target (its cuts apply when scoring a sample).
    preprocessor : Preprocessor
        Geometry and per-channel statistics of the inputs (one per band, and
        the stretch: None for uint8 images, ``"asinh"`` for float ones).
    y_mean, y_std : array
        The network predicts ``(y - y_mean) / y_std``, one value per target.
    target_names, target_units : list of str
        Names and units of the predicted columns.
    input_kind : {"uint8", "float"}
        The kind of images the network was trained on.
    input_shape : tuple of int
        ``(H, W)`` of the training images.
    history : list of dict
        Per-epoch training record.
    best_epoch, seed, n_train, n_valid : int or None
        The kept epoch (1-based), the training seed and the split sizes
        (None for a seed checkpoint).
    uncertainty : dict or None
        The calibration of ``predict(X, return_std=True)``.
    ood : `~sfnet._ood.OODStatistics` or None
        The statistics of the out-of-distribution score (None for seed
        checkpoints and older saves).  Its numbers are stored in the JSON
        metadata, its arrays (`arrays`) in the weights file.
    label_error : dict or None
        With ``label_error`` set: ``spec`` (the parameter, JSON-ready; arrays
        as ``"array"``) and ``median_sigma`` (per target, of the training labels).
    """

    target: Target
    preprocessor: Preprocessor
    y_mean: np.ndarray
    y_std: np.ndarray
    target_names: list
    target_units: list
    input_kind: str
    input_shape: tuple
    history: list = ()
    best_epoch: int = None
    seed: int = None
    n_train: int = None
    n_valid: int = None
    uncertainty: dict = None
    ood: OODStatistics = None
    label_error: dict = None

    def __post_init__(self):
        def optional_int(value):
            return None if value is None else int(value)

        normalised = dict(
            y_mean=np.asarray(self.y_mean, dtype=np.float64),
            y_std=np.asarray(self.y_std, dtype=np.float64),
            target_names=list(self.target_names), target_units=list(self.target_units),
            input_shape=tuple(int(s) for s in self.input_shape), history=list(self.history),
            n_train=optional_int(self.n_train), n_valid=optional_int(self.n_valid),
            uncertainty=None if self.uncertainty is None else dict(self.uncertainty))
        for name, value in normalised.items():
            object.__setattr__(self, name, value)

    def to_json(self):
        """The state as JSON-ready metadata (the keys of ``sfnet.json``)."""
        t, p = self.target, self.preprocessor
        return {
            "target_names": self.target_names, "target_units": self.target_units,
            "target": {"name": t.name, "columns": list(t.columns), "units": list(t.units),
                       "labels": list(t.labels), "required": list(t.required)},
            "y_mean": self.y_mean.tolist(), "y_std": self.y_std.tolist(),
            "preprocessing": {"image_size": p.image_size, "crop_size": p.crop_size,
                              "mean": p.mean, "std": p.std, "order": p.order,
                              "stretch": p.stretch},
            "input_kind": self.input_kind, "input_shape": list(self.input_shape),
            "history": self.history, "best_epoch": self.best_epoch, "seed": self.seed,
            "n_train": self.n_train, "n_valid": self.n_valid, "uncertainty": self.uncertainty,
            "ood": None if self.ood is None else self.ood.to_json(),
            "label_error": self.label_error,
        }

    def arrays(self):
        """The state's arrays that go into the weights file beside the network's tensors."""
        return {} if self.ood is None else self.ood.arrays()

    @classmethod
    def from_json(cls, meta, arrays=None):
        """The state stored in metadata ``meta`` (`to_json`; older files lack some keys)
        and the weights file's ``arrays`` (`arrays`)."""
        p = meta["preprocessing"]
        ood = meta.get("ood")
        return cls(
            target=stored_target(meta["target"]),
            preprocessor=Preprocessor(p["image_size"], p["crop_size"], list(p["mean"]),
                                      list(p["std"]), p.get("order", "resize-crop"),
                                      p.get("stretch")),
            y_mean=meta["y_mean"], y_std=meta["y_std"], target_names=meta["target_names"],
            target_units=meta["target_units"], input_kind=meta["input_kind"],
            input_shape=meta["input_shape"], history=meta.get("history", []),
            best_epoch=meta.get("best_epoch"), seed=meta.get("seed"),
            n_train=meta.get("n_train"), n_valid=meta.get("n_valid"),
            uncertainty=meta.get("uncertainty"),
            ood=None if ood is None else OODStatistics.from_parts(ood, arrays or {}),
            label_error=meta.get("label_error"))

    def run_key(self):
        """What a resumed training run must share with the interrupted one, from the state."""
        return {"n_train": self.n_train, "n_valid": self.n_valid, "seed": self.seed,
                "targets": self.target_names}


def stored_target(t):
    """The `~sfnet.targets.Target` stored as ``t``: a named one (with its cuts and derived
    columns) by name, any other from its columns."""
    named = TARGETS.get(t["name"])
    if named is not None and list(named.columns) == list(t["columns"]):
        return named
    return Target(t["name"], tuple(t["columns"]), tuple(t["units"]), tuple(t["labels"]),
                  tuple(t["required"]))


# ---------------------------------------------------------------------- the sfnet format
def save_model(path, params, network, state):
    """Write a fitted model into directory ``path``; see `SparseFeatureNet.save`.

    ``params`` are the estimator's parameters (JSON-ready), ``network`` its
    `SparseFeatureNetwork` and ``state`` its `FittedState`.
    """
    path = Path(path)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) != 0:
        return path
    meta = json_safe({
        "format": FORMAT, "sfnet_version": _version(), "torch_version": torch.__version__,
        "params": params, "backbone": network.backbone, "k": network.k,
        "n_features": network.n_features, **state.to_json()})
    json.dumps(meta)  # fail before anything is written
    path.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    weights.update(state.arrays())
    with atomic_path(path / WEIGHTS) as tmp:
        torch.save(weights, tmp)
    meta["weights_sha256"] = sha256(path / WEIGHTS)
    atomic_write_json(path / META, meta)
    return path


def _read_metadata(path):
    """The checked metadata of model directory ``path``."""
    for name in (META, WEIGHTS):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name} not found: not an sfnet model directory")
    meta = json.loads((path / META).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path / META} is not an sfnet model ({meta.get('format')!r})")
    if sha256(path / WEIGHTS) != meta["weights_sha256"]:
        raise ValueError(f"{path / WEIGHTS} does not match the checksum in {path / META}: "
                         "the file was modified or is corrupt; refusing to load it")
    return meta


def load_model(path):
    """``(params, network, state)`` of model directory ``path``; see `SparseFeatureNet.load`."""
    path = Path(path)
    meta = _read_metadata(path)
    weights = torch.load(path / WEIGHTS, map_location="cpu", weights_only=True)
    arrays = {k: weights.pop(k) for k in list(weights) if k.startswith(ARRAY_PREFIX)}
    net = SparseFeatureNetwork(meta["k"], len(meta["target_names"]), meta["backbone"],
                               symmetry=meta["params"].get("symmetry"),
                               variance_head="logvar_head.weight" in weights,
                               in_channels=int(weights["resnet.conv1.weight"].shape[1]),
                               correlation_head="corr_head.weight" in weights)
    net.load_state_dict(weights)
    return dict(meta["params"]), net, FittedState.from_json(meta, arrays)


# ---------------------------------------------------------------------- seed checkpoints
class _SeedTopKStandIn(torch.nn.Module):
    """Harmless stand-in for the paper's pickled ``ResNet18TopK`` classes.

    Unpickling only restores attributes (``resnet``, ``k``); it has no forward.
    """


def seed_safe_globals():
    """The classes (and class names mapped onto `_SeedTopKStandIn`) a seed file may hold."""
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


def restricted_load(path):
    """``torch.load`` with only `seed_safe_globals` allowed; else `pickle.UnpicklingError`."""
    with torch.serialization.safe_globals(seed_safe_globals()):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise
        except RuntimeError as exc:  # torch wraps some unpickling failures
            raise pickle.UnpicklingError(f"{path}: refused to load: {exc}") from exc


def _read_seed_file(path, k):
    """(the pickled torchvision ResNet, k) of the seed file ``path``; ``k`` overrides the file's."""
    obj = restricted_load(path)
    resnet = getattr(obj, "resnet", None)
    if resnet is None or not hasattr(getattr(resnet, "fc", None), "weight"):
        raise ValueError(f"{path} does not hold a ResNetTopK module with a 'resnet' "
                         "attribute and a linear 'fc'")
    file_k = getattr(obj, "k", None)
    k = int(k if k is not None else file_k if file_k is not None else 0)
    if k < 1:
        raise ValueError(f"{path}: k is not stored in the file; pass k=")
    return resnet, k


def _seed_network(resnet, k):
    """The `SparseFeatureNetwork` holding the weights of the paper's ``resnet``."""
    fc = resnet.fc
    net = SparseFeatureNetwork(k, fc.weight.shape[0], "resnet18")
    state = {f"resnet.{key}": v for key, v in resnet.state_dict().items()
             if not key.startswith("fc.")}
    state["head.weight"] = fc.weight.detach()
    state["head.bias"] = fc.bias.detach()
    net.load_state_dict(state)
    return net


def _checked_stats(path, mean, std, stats_from):
    """Validated ``(mean, std)`` lists (None with ``stats_from``); never a guess."""
    if stats_from is not None:
        if mean is not None or std is not None:
            raise ValueError("pass either stats_from or mean and std, not both")
        return None, None
    if mean is None and std is None:
        raise ValueError(MISSING_STATS.format(path=path))
    if mean is None or std is None:
        raise ValueError(f"mean and std must be given together (got mean={mean!r}, "
                         f"std={std!r})")
    out = []
    for name, values in (("mean", mean), ("std", std)):
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.shape != (3,) or not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be 3 finite numbers (0-255 scale), got {values!r}")
        out.append([float(v) for v in arr])
    if not all(v > 0 for v in out[1]):
        raise ValueError(f"std must be positive, got {std!r}")
    if all(abs(v) <= 1 for v in out[0] + out[1]):
        raise ValueError(f"mean={mean!r} and std={std!r} look like the 0-1 scale; sfnet's "
                         "are on the 0-255 scale of the images (multiply them by 255)")
    return out


def model_from_seed_checkpoint(path, k=None, *, target=None, image_size=160, crop_size=144,
                               mean=None, std=None, stats_from=None,
                               preprocessing=PAPER_ORDER):
    """``(params, network, state)`` of a paper ``.pth`` file.

    See `SparseFeatureNet.from_seed_checkpoint`; ``params`` are the
    estimator's parameters that describe the file (``k``, ``target``, the
    geometry).
    """
    path = Path(path)
    check_order(preprocessing)
    mean, std = _checked_stats(path, mean, std, stats_from)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    resnet, k = _read_seed_file(path, k)
    n_out = resnet.fc.weight.shape[0]
    if target is None:
        target = "bpt_lines" if (n_out == 4 or "bpt" in path.name.lower()) else "metallicity"
    t = get_target(target)
    if len(t.columns) != n_out:
        raise ValueError(f"{path} predicts {n_out} outputs but target {target!r} has "
                         f"{len(t.columns)} columns")
    net = _seed_network(resnet, k)
    params = dict(k=k, target=target, backbone="resnet18", image_size=image_size,
                  crop_size=crop_size, preprocessing=preprocessing)
    prep = Preprocessor(image_size, crop_size, order=preprocessing)
    if stats_from is not None:
        images, rows, channels_last = image_store(stats_from)
        prep.fit_stats(ImageSource(images, rows, channels_last))
    else:
        prep.mean, prep.std = mean, std
    state = FittedState(target=t, preprocessor=prep, y_mean=np.zeros(n_out),
                        y_std=np.ones(n_out), target_names=list(t.columns),
                        target_units=list(t.units), input_kind="uint8",
                        input_shape=(image_size, image_size))
    return params, net, state


# ---------------------------------------------------------------------- helpers
def sha256(path):
    """Hex SHA-256 of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _version():
    from . import __version__

    return __version__
