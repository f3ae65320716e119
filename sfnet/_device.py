"""Device, precision and compile policy, shared by the training loop and inference.

`resolve_device` turns ``SparseFeatureNet(device=...)`` into a `torch.device`
that is available here (checked, so `SparseFeatureNet.validate_params` fails
early with a clear message); `resolve_precision` and `autocast` choose and
apply the autocast dtype; `CompiledCall` and `CompiledNetwork` wrap
`torch.compile` so that ``compile=True`` never stops a run.
"""

import contextlib
import os

import torch

__all__ = ["resolve_device", "resolve_precision", "cpu_has_bf16", "autocast", "CompiledCall",
           "CompiledNetwork"]


def _torch_sees():
    """What this torch build sees: version and accelerators, for error messages."""
    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    return (f"torch {torch.__version__}, {n_cuda} CUDA device(s)"
            + (", MPS available" if has_mps else ""))


def _check_available(dev, device):
    """Raise a ValueError naming ``device`` if torch cannot use ``dev`` here."""
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} requested but CUDA is not available here: "
                             f"torch.cuda.is_available() is False ({_torch_sees()}); "
                             "use device='auto' or 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r} requested but only "
                             f"{torch.cuda.device_count()} CUDA device(s) are visible "
                             f"({_torch_sees()})")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if not (mps and mps.is_available()):
            raise ValueError(f"device={device!r} requested but MPS is not available here: "
                             f"torch.backends.mps.is_available() is False ({_torch_sees()}); "
                             "use device='auto' or 'cpu'")


def resolve_device(device):
    """The `torch.device` for ``device``, checked to be available here.

    Parameters
    ----------
    device : str, torch.device or None
        ``"auto"`` (or None): CUDA if available (the ``LOCAL_RANK`` GPU under
        torchrun), then MPS, then the CPU.  Anything else is passed to
        `torch.device`; a bare ``"cuda"`` under a multi-process torchrun job
        becomes the ``LOCAL_RANK`` GPU.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If ``device`` is not a valid torch device, or names an accelerator
        this machine or this torch build does not have (the message says what
        torch sees).
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a valid torch device") from exc
    _check_available(dev, device)
    if dev.type == "cuda" and dev.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))  # one GPU per rank
    return dev


def cpu_has_bf16():
    """Whether this CPU has AVX512-BF16 or AMX instructions (Linux ``/proc/cpuinfo``)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision, device):
    """Map ``"auto"``/``"fp32"``/``"bf16"`` to the autocast dtype (or None for fp32).

    ``"auto"`` chooses bfloat16 autocast on CUDA devices that support it and on
    CPUs with AVX512-BF16 or AMX instructions, float32 elsewhere.
    """
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_bf16() else None
    return None


def autocast(device, dtype):
    """Autocast context for ``dtype`` (no-op for float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class CompiledCall:
    """``torch.compile(fn)`` that falls back to ``fn``, with a warning, if compiling fails.

    `torch.compile` compiles on the first call (and again for new input
    shapes); without a working C++ compiler, or on a platform TorchDynamo
    does not support, that call raises.  This wrapper then warns once and
    runs ``fn`` eagerly from then on, so ``compile=True`` never stops a run.
    Attributes other than the call (``train``, ``eval``, ``parameters``...) are
    those of ``fn``.
    """

    def __init__(self, fn, what="the network"):
        self.fn, self.what = fn, what
        try:
            self.compiled = torch.compile(fn)
        except RuntimeError as exc:  # e.g. a Python version Dynamo does not support
            self._fall_back(exc)

    def _fall_back(self, exc):
        import warnings

        warnings.warn(f"compile=True: torch.compile of {self.what} failed, running it "
                      f"eagerly instead ({type(exc).__name__}: {str(exc).strip()[:300]})",
                      RuntimeWarning, stacklevel=3)
        self.compiled = None

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            from torch._dynamo.exc import TorchDynamoException

            try:
                return self.compiled(*args, **kwargs)
            except TorchDynamoException as exc:  # backend (compiler) failures end here
                self._fall_back(exc)
        return self.fn(*args, **kwargs)

    def __getattr__(self, name):
        if name in ("fn", "what", "compiled"):
            raise AttributeError(name)
        return getattr(self.fn, name)


class CompiledNetwork:
    """A `~sfnet.nn.SparseFeatureNetwork` whose forward and ``sparse_features``
    run through `CompiledCall`; every other attribute is the network's own."""

    def __init__(self, network):
        self.network = network
        self.forward = CompiledCall(network, "the network's forward")
        self.sparse_features = CompiledCall(network.sparse_features, "sparse_features")

    def __call__(self, x, **kwargs):
        # options such as return_logvar take the eager path (compiled: the plain forward)
        return self.network(x, **kwargs) if kwargs else self.forward(x)

    def __getattr__(self, name):
        if name == "network":
            raise AttributeError(name)
        return getattr(self.network, name)
