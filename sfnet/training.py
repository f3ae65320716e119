"""The training loop: schedule, optimiser, augmentation draws, checkpoints, DDP.

Everything here works on tensors on the training device; there is no
per-image Python or PIL work inside the epoch loop.  The images come as
`sfnet._imagedata.DeviceImages` (prepared once on the device, or streamed
from a memmap batch by batch), the device, precision and ``torch.compile``
policy from `sfnet._device`, and the fitted geometry and normalisation from
`sfnet.preprocessing.Preprocessor`.
"""

import contextlib
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from ._device import CompiledCall, autocast
from ._io import atomic_path

__all__ = ["TrainConfig", "train_network", "distributed_context", "load_checkpoint",
           "CHECKPOINT_NAME"]

log = logging.getLogger("sfnet")

CHECKPOINT_NAME = "checkpoint.pt"


# ----------------------------------------------------------------------------- distributed
@dataclass
class DistInfo:
    world_size: int = 1
    rank: int = 0
    enabled: bool = False
    created: bool = False

    @property
    def is_main(self):
        return self.rank == 0


@contextlib.contextmanager
def distributed_context(device):
    """Join a torchrun job if ``WORLD_SIZE > 1`` (gloo on CPU, nccl on CUDA)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        yield DistInfo()
        return
    created = False
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group(backend="nccl", device_id=device)
        else:
            dist.init_process_group(backend="gloo")
        created = True
    try:
        yield DistInfo(dist.get_world_size(), dist.get_rank(), True, created)
    finally:
        if created:
            dist.destroy_process_group()


def _all_reduce_sum(t, info):
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


# ----------------------------------------------------------------------------- checkpoints
def _save_checkpoint(path, state):
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path):
    """Load a training checkpoint written by `train_network` (never runs pickled code)."""
    return torch.load(path, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------- the loop
@dataclass
class TrainConfig:
    """The settings of one `train_network` run, already validated and resolved.

    `sfnet.SparseFeatureNet` builds it from its parameters; the meaning of each
    is documented there.

    Parameters
    ----------
    epochs : int
        Passes over the training images.
    batch_size : int
        Images per step, summed over all processes under DDP.
    learning_rate : float
        Peak learning rate of the one-cycle schedule.
    weight_decay : float
        Decoupled weight decay (not applied to biases and norm layers).
    augment : float
        Probability in [0, 1] that an image gets a random dihedral transform
        (flips and 90-degree rotations) in a step; 0 switches augmentation off,
        1 draws one of the 8 transforms for every image.
    seed : int
        Seed of the shuffles and the augmentation draws.
    progress : bool
        Show a progress bar per epoch and print each epoch's summary.
    autocast_dtype : torch.dtype or None
        Autocast dtype (`torch.bfloat16`), or None for float32
        (see `sfnet._device.resolve_precision`).
    optimizer : {"adamw", "ranger"}
        AdamW with PyTorch's one-cycle, or Ranger with fastai's one-cycle
        (`sfnet.optim`), as in the paper.
    keep_epoch : {"best", "last"}
        Keep the weights of the epoch with the lowest validation RMSE, or of
        the last epoch.
    compile : bool
        Run the network through `torch.compile` (falling back to eager mode
        with a warning if compiling fails).
    """

    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    augment: float
    seed: int
    progress: bool
    autocast_dtype: "torch.dtype | None" = None
    optimizer: str = "adamw"
    keep_epoch: str = "best"
    compile: bool = False


def _dihedral_draws(n, augment, gen):
    """``(3, n)`` booleans for `sfnet._imagedata.dihedral`: one of the 8 transforms per
    image or, with a probability ``augment < 1``, a random transform for that fraction
    of images only."""
    draws = torch.randint(0, 2, (3, n), generator=gen).bool()
    if augment < 1:  # a random transform with this probability, else none
        draws &= torch.rand(n, generator=gen) < augment
    return draws


def _accumulator_dtype(device):
    """float64 for running sums, except on MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def _batch_rmse(pred, y):
    return torch.sqrt(F.mse_loss(pred.float(), y))


def _evaluate(network, valid, n_targets, device, dtype, info, batch_size):
    """The network's standardised outputs on every validation image, ``(N, T)`` or, with
    a variance head, ``(N, 2 T)`` (means, then log-variances), and with a correlation
    head the ``T (T - 1) / 2`` upper-triangle correlations after them; float32 on
    ``device``.

    Under DDP each process computes its share and the sum over processes
    fills the rest, so every rank returns the whole array.
    """
    n = len(valid)
    mine = np.arange(info.rank, n, info.world_size)
    variance = getattr(network, "has_variance_head", False)
    correlation = getattr(network, "has_correlation_head", False)
    rows, cols = torch.triu_indices(n_targets, n_targets, offset=1)
    width = n_targets * (2 if variance else 1) + (len(rows) if correlation else 0)
    out = torch.zeros(n, width, dtype=torch.float32, device=device)
    network.eval()
    plan = [mine[start:start + batch_size] for start in range(0, len(mine), batch_size)]
    with torch.inference_mode():
        for idx, x in valid.batches(plan):
            with autocast(device, dtype):
                if correlation:
                    mean, logvar, corr = network(x, return_logvar=True, return_corr=True)
                    res = (mean, logvar, corr[:, rows, cols])
                else:
                    res = network(x, return_logvar=True) if variance else (network(x),)
            out[idx] = torch.cat([r.float() for r in res], dim=1)
    return _all_reduce_sum(out, info)


def _rmse(out, y, positions=None):
    """Per-target RMSE of the means in ``out`` (see `_evaluate`) against ``y``."""
    t = y.shape[1]
    err = out[:, :t].to(_accumulator_dtype(out.device)) - y
    if positions is not None:
        err = err[torch.as_tensor(positions, device=out.device)]
    return torch.sqrt((err ** 2).sum(0) / max(len(err), 1)).cpu().numpy()


def train_network(network, train, y_train, valid, y_valid, prep, cfg, device, *,
                  checkpoint_dir=None, resume=False, extra_state=None, y_scale=None,
                  select=None, outputs=None, label_var=None):
    """Train ``network`` in place; return ``(history, best_epoch)``.

    Parameters
    ----------
    network : SparseFeatureNetwork
    train, valid : sfnet._imagedata.DeviceImages
        ``valid`` may be None (no validation: the last epoch is kept).
    y_train, y_valid : torch.Tensor
        Standardised targets ``(N, T)`` on ``device``.
    prep : sfnet.preprocessing.Preprocessor
    cfg : TrainConfig
    checkpoint_dir : path-like, optional
        Where to write ``checkpoint.pt`` after every epoch (atomically, rank 0 only).
    resume : bool
        Continue from ``checkpoint_dir/checkpoint.pt`` if it exists.
    extra_state : dict, optional
        Stored in the checkpoint and checked on resume (must match).
    y_scale : array, optional
        Target standard deviations, to report validation RMSE in original units.
    select : array of int, optional
        Positions into ``valid`` whose RMSE selects the best epoch (default all);
        the reported ``valid_rmse`` is over all validation images.
    outputs : dict, optional
        Filled with ``outputs["valid"]``: the network's standardised outputs on
        the validation images in the epoch that is kept (see `_evaluate`), as a
        float64 array, taken from the validation passes the loop makes anyway
        -- so a caller can calibrate without another pass over the images.
    label_var : torch.Tensor, optional
        Per-galaxy variances ``(N, T)`` of the training labels (standardised
        units), row-aligned with ``y_train``: the variance and correlation
        heads are then trained with the residual variance
        ``sigma_model**2 + label_var`` (see `SparseFeatureNet`'s ``label_error``).
    """
    with distributed_context(device) as info:
        run = _start_run(network, len(train), cfg, device, info, checkpoint_dir,
                         extra_state, y_scale)
        run.select = select
        run.label_var = label_var
        if resume and run.ckpt_path and os.path.exists(run.ckpt_path):
            _resume(run)
        for epoch in range(run.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            record = _train_epoch(run, epoch, train, y_train, prep)
            if valid is not None and len(valid):
                score = _validate_epoch(run, record, valid, y_valid, prep)
            else:
                score = -float(epoch)  # no validation: keep the last epoch
            if cfg.keep_epoch == "last":
                score = -float(epoch)
            record["seconds"] = time.perf_counter() - t0
            _end_epoch(run, epoch, record, score)
        if outputs is not None and run.kept_outputs is not None:
            outputs["valid"] = run.kept_outputs.double().numpy()
        return _finish(run)


@dataclass
class _Run:
    """The state of one training run, shared by its steps."""

    network: object          # the bare network (its state is what is saved)
    model: object            # what is called: the network or its DDP wrapper
    opt: object
    sched: object
    cfg: TrainConfig
    device: object
    info: DistInfo
    n: int                   # training images
    per_rank: int            # batch size per process
    global_batch: int
    full: bool               # False: one step over all the (few) training images
    steps: int               # steps per epoch
    ckpt_path: object
    extra_state: dict
    scale: object            # target standard deviations or None
    history: list = field(default_factory=list)
    best: float = math.inf
    best_state: object = None
    start_epoch: int = 0
    select: object = None        # validation positions that select the epoch (None: all)
    last_outputs: object = None  # this epoch's validation outputs (CPU tensor)
    kept_outputs: object = None  # those of the epoch that is kept
    label_var: object = None  # per-galaxy label variances (N, T) or None


def _start_run(network, n, cfg, device, info, checkpoint_dir, extra_state, y_scale):
    """Wrap the network for DDP, plan the steps and build the optimiser and schedule."""
    model = network
    if info.enabled:
        if device.type == "cuda":
            network = torch.nn.SyncBatchNorm.convert_sync_batchnorm(network)
        model = torch.nn.parallel.DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        model = CompiledCall(model)
    per_rank = max(1, cfg.batch_size // info.world_size)
    global_batch = per_rank * info.world_size
    if n < max(2, info.world_size):
        raise ValueError(f"need at least {max(2, info.world_size)} training images "
                         f"({info.world_size} process(es)), got {n}")
    full = n >= global_batch  # else one step over all (smaller) training data
    steps = n // global_batch if full else 1
    opt, sched = _optimizer_and_schedule(network, cfg, cfg.epochs * steps)
    ckpt_path = None if checkpoint_dir is None else os.path.join(checkpoint_dir, CHECKPOINT_NAME)
    scale = None if y_scale is None else np.asarray(y_scale, dtype=np.float64)
    return _Run(network, model, opt, sched, cfg, device, info, n, per_rank, global_batch,
                full, steps, ckpt_path, extra_state or {}, scale)


#: Learning-rate multiplier of the variance head: a linear layer on features
#: that keep moving, trained for as few steps as the rest, needs larger steps
#: to follow them (AdamW moves a weight by at most about the learning rate per step).
#: Only with AdamW's small default rate: under Ranger (the paper's lr 0.1) the head
#: trains at the network's rate.
VARIANCE_LR_FACTOR = 10.0


def _optimizer_and_schedule(network, cfg, total_steps):
    """AdamW or Ranger (no decay on biases and norms) with a one-cycle schedule.

    ``"adamw"``: `torch.optim.AdamW` and PyTorch's `OneCycleLR`; ``"ranger"``:
    `sfnet.optim.Ranger` and fastai's one-cycle (`sfnet.optim.OneCycle`), as in the paper.
    The variance head, if any, is its own parameter group with
    `VARIANCE_LR_FACTOR` times the learning rate.
    """
    decay, no_decay, variance = [], [], []
    for name, p in network.named_parameters():
        if name.startswith(("logvar_head.", "corr_head.")):
            variance.append(p)
        else:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    max_lr = [cfg.learning_rate, cfg.learning_rate]
    if variance:
        factor = VARIANCE_LR_FACTOR if cfg.optimizer == "adamw" else 1.0
        groups.append({"params": variance, "weight_decay": 0.0,
                       "lr": cfg.learning_rate * factor})
        max_lr.append(cfg.learning_rate * factor)
    if cfg.optimizer == "ranger":
        from .optim import OneCycle, Ranger

        opt = Ranger(groups, lr=cfg.learning_rate)
        return opt, OneCycle(opt, total_steps)
    opt = torch.optim.AdamW(groups, lr=cfg.learning_rate)
    if total_steps >= 3:  # one-cycle needs a warm-up and an annealing step
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=max_lr, total_steps=total_steps,
            pct_start=min(0.5, max(0.25, 1.5 / total_steps)))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    return opt, sched


def _resume(run):
    """Restore the run from its checkpoint (refused if it was written for other data)."""
    state = load_checkpoint(run.ckpt_path)
    if state.get("extra") != run.extra_state:
        raise ValueError(
            f"checkpoint {run.ckpt_path} was written for different data or parameters "
            f"({state.get('extra')}); use another checkpoint_dir or resume=False")
    run.network.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    run.sched.load_state_dict(state["scheduler"])
    run.history, run.best, run.start_epoch = state["history"], state["best"], state["epoch"] + 1
    run.best_state = state["best_state"]
    run.kept_outputs = state.get("kept_outputs")
    torch.set_rng_state(state["torch_rng"])
    log.info("resumed from %s at epoch %d", run.ckpt_path, run.start_epoch)


def _train_epoch(run, epoch, train, y_train, prep):
    """One pass over the training images; returns the epoch's history record."""
    from tqdm.auto import tqdm

    cfg, info = run.cfg, run.info
    gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
    perm = torch.randperm(run.n, generator=gen).numpy()
    run.model.train()
    total = torch.zeros((), dtype=_accumulator_dtype(run.device), device=run.device)
    seen = 0
    bar = tqdm(range(run.steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
               disable=not (cfg.progress and info.is_main), leave=False)
    mine = slice(info.rank, None, info.world_size)
    globs = [perm[step * run.global_batch:(step + 1) * run.global_batch] if run.full else perm
             for step in range(run.steps)]
    draws = None
    if cfg.augment:  # drawn for the global batch (DDP == one process), step by step
        draws = [_dihedral_draws(len(g), cfg.augment, gen)[:, mine] for g in globs]
    batches = train.batches([g[mine] for g in globs], draws)
    for step, (idx, x) in zip(bar, batches):
        glob = globs[step]
        loss = _train_step(run, x, y_train[idx],
                           None if run.label_var is None else run.label_var[idx])
        n_mine = len(glob[mine])
        total += loss * n_mine  # no host sync per step
        seen += n_mine
        if cfg.progress and info.is_main and (step % 10 == 0 or step == run.steps - 1):
            bar.set_postfix(loss=f"{float(total) / seen:.4f}")
    bar.close()
    batches.close()  # stops the prefetch thread
    return {"epoch": epoch + 1, "train_loss": float(total) / max(seen, 1),
            "lr": float(run.sched.get_last_lr()[0])}


def _gaussian_nll(pred, logvar, y, label_var=None):
    """Mean Gaussian negative log-likelihood (without the constant) of ``y`` given
    the *detached* prediction and ``logvar``: it trains the variance head only.

    With ``label_var`` (per-galaxy label variances, same shape as ``y``) the
    residual variance is ``exp(logvar) + label_var``: the head learns the
    model's part only."""
    r2 = (y - pred.detach().float()) ** 2
    if label_var is None:
        return 0.5 * (logvar + r2 * torch.exp(-logvar)).mean()
    var = torch.exp(logvar) + label_var
    return 0.5 * (torch.log(var) + r2 / var).mean()


def _joint_gaussian_nll(pred, logvar, corr, y, label_var=None):
    """Mean multivariate Gaussian negative log-likelihood (without the constant) of
    ``y`` ``(N, T)`` with covariance ``S corr S (+ diag(label_var))``, where
    ``S = diag(exp(logvar / 2))``; the prediction and ``logvar`` are detached,
    so it trains the correlation head only."""
    r = (y - pred.detach().float()).unsqueeze(-1)
    s = torch.exp(0.5 * logvar.detach().float())
    cov = corr * s.unsqueeze(-1) * s.unsqueeze(-2)
    if label_var is not None:
        cov = cov + torch.diag_embed(label_var)
    # a tiny jitter (standardised units) keeps the factorisation stable
    cov = cov + 1e-6 * torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    chol = torch.linalg.cholesky(cov)
    w = torch.linalg.solve_triangular(chol, r, upper=False)
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (logdet + (w ** 2).sum(dim=(-2, -1))).mean() / y.shape[1]


def _train_step(run, x, y, label_var=None):
    """Forward, backward and update on one batch; returns the (global) batch RMSE.

    A network with a variance head also gets the Gaussian negative
    log-likelihood of its log-variance added to the loss; as the head sees
    detached features and a detached prediction, that term moves the variance
    head alone.
    """
    nll = None
    variance = getattr(run.network, "has_variance_head", False)
    correlation = getattr(run.network, "has_correlation_head", False)
    with autocast(run.device, run.cfg.autocast_dtype):
        if correlation:
            pred, logvar, corr = run.model(x, return_logvar=True, return_corr=True)
        elif variance:
            pred, logvar = run.model(x, return_logvar=True)
        else:
            pred = run.model(x)
    loss = _batch_rmse(pred, y)
    if variance:
        nll = _gaussian_nll(pred, logvar, y, label_var)
    if correlation:
        nll = nll + _joint_gaussian_nll(pred, logvar, corr, y, label_var)
    run.opt.zero_grad(set_to_none=True)
    if run.info.enabled:
        # DDP averages gradients, and the mean of per-process RMSE gradients
        # is not the gradient of the global RMSE; this surrogate's is:
        # d sqrt(m) = d m / (2 sqrt(m)) with m the global mean squared error.
        mse = loss.detach() ** 2
        _all_reduce_sum(mse, run.info)
        global_rmse = torch.sqrt(mse / run.info.world_size)
        surrogate = loss ** 2 / (2 * global_rmse.clamp(min=1e-12))
        (surrogate if nll is None else surrogate + nll).backward()
        loss = global_rmse
    else:
        (loss if nll is None else loss + nll).backward()
    run.opt.step()
    run.sched.step()
    return loss.detach()


def _validate_epoch(run, record, valid, y_valid, prep):
    """Add the validation RMSE to ``record``; return the score that selects the best epoch
    (the RMSE on ``run.select`` only, when set).  Keeps the outputs in ``run.last_outputs``."""
    out = _evaluate(run.network, valid, y_valid.shape[1], run.device, run.cfg.autocast_dtype,
                    run.info, 2 * run.per_rank)
    run.last_outputs = out.cpu()
    rmse = _rmse(out, y_valid)
    record["valid_rmse"] = [float(v) for v in
                            (rmse * run.scale if run.scale is not None else rmse)]
    if run.select is not None:
        rmse = _rmse(out, y_valid, run.select)
    record["valid_score"] = float(np.sqrt(np.mean(rmse ** 2)))
    return record["valid_score"]


def _end_epoch(run, epoch, record, score):
    """Keep the best weights, report the epoch and write the checkpoint.

    With ``keep_epoch="last"``, or without validation, no weights are copied:
    the network at the end is the one kept (`_finish` still reports the best
    epoch).
    """
    from tqdm.auto import tqdm

    run.history.append(record)
    if run.cfg.keep_epoch == "last" or "valid_score" not in record:
        run.kept_outputs = run.last_outputs
    elif score < run.best:
        run.best = score
        run.best_state = _state_copy(run.network)
        run.kept_outputs = run.last_outputs
    if run.info.is_main:
        msg = f"epoch {epoch + 1}/{run.cfg.epochs} loss {record['train_loss']:.4f}"
        if "valid_rmse" in record:
            msg += " valid RMSE " + ", ".join(f"{v:.4f}" for v in record["valid_rmse"])
        log.info(msg)
        if run.cfg.progress:
            tqdm.write(msg, file=sys.stderr)
    if run.ckpt_path and run.info.is_main:
        _save_checkpoint(run.ckpt_path, {
            "model": run.network.state_dict(), "optimizer": run.opt.state_dict(),
            "scheduler": run.sched.state_dict(), "epoch": epoch, "history": run.history,
            "best": run.best, "best_state": run.best_state, "kept_outputs": run.kept_outputs,
            "torch_rng": torch.get_rng_state(), "extra": run.extra_state})
    if run.info.enabled:
        import torch.distributed as dist

        dist.barrier()


def _state_copy(network):
    """A CPU copy of the network's state (the snapshot of the best epoch)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in network.state_dict().items()}


def _finish(run):
    """Load the best weights (on every rank: rank 0's); return ``(history, best_epoch)``."""
    if run.best_state is not None and run.cfg.keep_epoch != "last" \
            and run.history and "valid_score" in run.history[-1]:
        run.network.load_state_dict(run.best_state)
    if run.info.enabled:
        # batch-norm running statistics are per process: make every rank hold
        # exactly rank 0's model
        import torch.distributed as dist

        for tensor in run.network.state_dict().values():
            dist.broadcast(tensor, src=0)
    history = run.history
    if run.cfg.keep_epoch == "last":
        return history, len(history)
    best_epoch = int(np.argmin([h.get("valid_score", -h["epoch"]) for h in history])) + 1
    return history, best_epoch
