"""Optimisers and learning-rate schedules for `sfnet.SparseFeatureNet`.

``optimizer="adamw"`` (the default) is `torch.optim.AdamW` with PyTorch's
`~torch.optim.lr_scheduler.OneCycleLR`.  ``optimizer="ranger"`` is the paper's
choice: fastai's ``ranger`` (RAdam inside Lookahead) under fastai's
``fit_one_cycle`` schedule, written here from their published definitions
(Liu et al. 2020, arXiv:1908.03265; Zhang et al. 2019, arXiv:1907.08610) with
fastai's defaults, so sfnet does not depend on fastai:

* `Ranger`: RAdam with β = (0.95, 0.99), ε = 1e-5 added to the bias-corrected
  root mean square, decoupled weight decay (``p ← p (1 − lr·wd)``), plain
  momentum steps while the variance rectification is undefined (ρ_t ≤ 5), and
  Lookahead with k = 6, α = 0.5 (every k steps the slow weights move half way
  to the fast ones and the fast weights restart from them).
* `OneCycle`: the learning rate rises on a cosine from ``lr / div`` to ``lr``
  over the first ``pct_start`` of the steps, then falls on a cosine to
  ``lr / div_final``; β₁ (the momentum) goes 0.95 → 0.85 → 0.95 on the same
  cosines.  The value for step ``i`` of ``n`` is taken at ``i / n``.
"""

import math

import torch

__all__ = ["OPTIMIZERS", "OneCycle", "Ranger", "one_cycle_values"]

#: The values of ``SparseFeatureNet(optimizer=...)``.
OPTIMIZERS = ("adamw", "ranger")


class Ranger(torch.optim.Optimizer):
    """RAdam wrapped in Lookahead, with fastai's defaults.

    Parameters
    ----------
    params : iterable
        Parameters or parameter groups.
    lr : float
        Learning rate.
    betas : (float, float)
        Decay of the first and second moment averages; β₁ is the momentum
        that `OneCycle` schedules.
    eps : float
        Added to the bias-corrected root mean square of the gradients.
    weight_decay : float
        Decoupled weight decay: each step multiplies the weights by
        ``1 - lr * weight_decay`` before the update.
    k : int
        Lookahead synchronisation period (steps).
    alpha : float
        Lookahead step: the slow weights move this fraction towards the fast ones.

    Examples
    --------
    >>> import torch
    >>> from sfnet.optim import Ranger
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = Ranger([w], lr=0.1)
    >>> for _ in range(12):
    ...     opt.zero_grad(); (w ** 2).sum().backward(); opt.step()
    >>> bool(abs(w.item()) < 1.0)
    True
    """

    def __init__(self, params, lr=1e-3, betas=(0.95, 0.99), eps=1e-5, weight_decay=0.01,
                 k=6, alpha=0.5):
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas!r}")
        if not eps >= 0 or not weight_decay >= 0:
            raise ValueError(f"eps and weight_decay must be >= 0, got {eps!r}, {weight_decay!r}")
        if int(k) != k or k < 1 or not 0 < alpha <= 1:
            raise ValueError(f"k must be a positive integer and alpha in (0, 1], got {k!r}, "
                             f"{alpha!r}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps,
                    "weight_decay": weight_decay, "k": int(k), "alpha": alpha}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One RAdam step, and a Lookahead synchronisation every ``k`` steps."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2) = group["lr"], group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    state["slow"] = p.detach().clone()
                grad = p.grad
                state["step"] += 1
                t = state["step"]
                if group["weight_decay"]:
                    p.mul_(1 - lr * group["weight_decay"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                debias1 = 1 - beta1 ** t
                debias2 = 1 - beta2 ** t
                rho_inf = 2 / (1 - beta2) - 1
                rho = rho_inf - 2 * t * beta2 ** t / debias2
                if rho > 5:
                    rect = math.sqrt((rho - 4) * (rho - 2) * rho_inf
                                     / ((rho_inf - 4) * (rho_inf - 2) * rho))
                    denom = (v / debias2).sqrt_().add_(group["eps"])
                    p.addcdiv_(m, denom, value=-lr * rect / debias1)
                else:
                    p.add_(m, alpha=-lr / debias1)
                if t % group["k"] == 0:
                    slow = state["slow"]
                    slow.add_(p - slow, alpha=group["alpha"])
                    p.copy_(slow)
        return loss


def _cos(start, end, pos):
    """Cosine from ``start`` (pos 0) to ``end`` (pos 1)."""
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def one_cycle_values(pos, lr_max, *, pct_start=0.25, div=25.0, div_final=1e5,
                     moms=(0.95, 0.85, 0.95)):
    """(learning rate, momentum) of the one-cycle schedule at ``pos`` in [0, 1].

    Examples
    --------
    >>> from sfnet.optim import one_cycle_values
    >>> one_cycle_values(0.0, 0.1)
    (0.004, 0.95)
    >>> [round(v, 6) for v in one_cycle_values(0.25, 0.1)]
    [0.1, 0.85]
    >>> [round(v, 9) for v in one_cycle_values(1.0, 0.1)]
    [1e-06, 0.95]
    """
    if pos < pct_start:
        x = pos / pct_start
        return _cos(lr_max / div, lr_max, x), _cos(moms[0], moms[1], x)
    x = min(1.0, (pos - pct_start) / (1 - pct_start))
    return _cos(lr_max, lr_max / div_final, x), _cos(moms[1], moms[2], x)


class OneCycle(torch.optim.lr_scheduler.LRScheduler):
    """fastai's one-cycle schedule of the learning rate and β₁, one `step` per batch.

    The peak learning rate is each group's learning rate when the scheduler
    is created.  Step ``i`` of ``total_steps`` uses the values of
    `one_cycle_values` at ``i / total_steps``.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Its groups' ``betas`` (Adam family) or ``momentum`` (SGD) are scheduled.
    total_steps : int
    pct_start, div, div_final, moms
        See `one_cycle_values` (fastai's defaults).
    """

    def __init__(self, optimizer, total_steps, *, pct_start=0.25, div=25.0, div_final=1e5,
                 moms=(0.95, 0.85, 0.95), last_epoch=-1):
        if int(total_steps) != total_steps or total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
        if not 0 < pct_start < 1:
            raise ValueError(f"pct_start must be in (0, 1), got {pct_start!r}")
        self.total_steps = int(total_steps)
        self.options = {"pct_start": pct_start, "div": div, "div_final": div_final,
                        "moms": tuple(moms)}
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        pos = min(self.last_epoch, self.total_steps) / self.total_steps
        lrs = []
        for base, group in zip(self.base_lrs, self.optimizer.param_groups):
            lr, mom = one_cycle_values(pos, base, **self.options)
            if "betas" in group:
                group["betas"] = (mom, group["betas"][1])
            elif "momentum" in group:
                group["momentum"] = mom
            lrs.append(lr)
        return lrs
