"""Optimiser, learning-rate schedule and gradient clipping.

Enformer's recipe (Avsec et al. 2021, Methods) is Adam at 5e-4 after a 5,000-step linear warm-up, constant
afterwards, with the gradients' global norm clipped at 0.2. :func:`lr_factor` also offers a
cosine decay after the warm-up, common for fine-tuning.

The schedule is counted in optimiser updates: update ``s`` (0-based) uses ``lr · f(s)``
with::

    f(s) = (s + 1) / warmup_steps                         for s < warmup_steps
    f(s) = 1                                              "constant", afterwards
    f(s) = m + (1 - m) · (1 + cos(π · p)) / 2             "cosine", p = (s - W) / (T - W)

where ``W`` is ``warmup_steps``, ``T`` is ``total_steps``, ``m`` is ``min_lr_ratio``, and
``p`` is clipped to ``[0, 1]``. The first update therefore already moves the weights, and
update ``W - 1`` is the first at the full rate.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable

import torch
from torch import nn

__all__ = [
    "build_optimizer",
    "build_scheduler",
    "clip_grad_norm",
    "lr_factor",
    "parameter_groups",
]

SCHEDULES = ("constant", "cosine")
OPTIMIZERS = ("adam", "adamw")


def lr_factor(
    step: int,
    *,
    warmup_steps: int,
    total_steps: int | None = None,
    schedule: str = "constant",
    min_lr_ratio: float = 0.0,
) -> float:
    """Multiplier of the base learning rate for optimiser update ``step`` (0-based).

    Parameters
    ----------
    step
        Number of updates already made.
    warmup_steps
        Length of the linear warm-up; 0 disables it.
    total_steps
        Total number of updates (needed by ``"cosine"``).
    schedule
        ``"constant"`` or ``"cosine"`` after the warm-up.
    min_lr_ratio
        Floor of the cosine decay, as a fraction of the base rate.

    Returns
    -------
    float
        The factor ``f(step)`` of the module docstring.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if total_steps is None:
        raise ValueError("the cosine schedule needs total_steps")
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def parameter_groups(
    model: nn.Module,
    *,
    weight_decay: float = 0.0,
    trunk_lr_scale: float = 1.0,
) -> list[dict[str, object]]:
    """Trainable parameters of ``model`` split into optimiser groups.

    Weight decay applies only to matrices and convolution kernels (``dim >= 2``); biases,
    normalisation parameters and the attention's relative-position biases are never decayed.
    Parameters outside ``model.heads`` (the trunk) get ``lr_scale = trunk_lr_scale``, which
    :func:`build_optimizer` multiplies into their learning rate.

    Parameters
    ----------
    model
        The model (a DDP wrapper is unwrapped).
    weight_decay
        Decoupled (AdamW) or L2 (Adam) weight decay of the decayed group.
    trunk_lr_scale
        Learning-rate multiplier of the trunk relative to the heads.

    Returns
    -------
    list of dict
        Groups with keys ``params``, ``weight_decay`` and ``lr_scale``; empty groups dropped.
    """
    model = getattr(model, "module", model)
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_rel_bias = name.endswith(("r_w_bias", "r_r_bias"))  # (1, H, 1, K): biases
        decay = weight_decay > 0 and param.dim() >= 2 and not is_rel_bias
        in_head = name.startswith("heads.")
        groups.setdefault((decay, in_head), []).append(param)
    out = []
    for (decay, in_head), params in groups.items():
        out.append(
            {
                "params": params,
                "weight_decay": weight_decay if decay else 0.0,
                "lr_scale": 1.0 if in_head else trunk_lr_scale,
            }
        )
    return out


def build_optimizer(
    params: nn.Module | Iterable[nn.Parameter] | list[dict[str, object]],
    *,
    name: str = "adam",
    lr: float = 5e-4,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    trunk_lr_scale: float = 1.0,
) -> torch.optim.Optimizer:
    """Adam or AdamW over the trainable parameters.

    Parameters
    ----------
    params
        A model (grouped by :func:`parameter_groups`), parameters, or ready-made groups (a
        group's optional ``lr_scale`` multiplies ``lr``).
    name
        ``"adam"`` (L2 penalty folded into the gradient) or ``"adamw"`` (decoupled decay).
    lr
        Base (peak) learning rate.
    weight_decay
        Weight decay of matrices and kernels.
    betas, eps
        Adam's moment decay rates and denominator epsilon.
    trunk_lr_scale
        Learning-rate multiplier of the trunk when ``params`` is a model.

    Returns
    -------
    torch.optim.Optimizer
        The optimiser; each group's ``initial_lr`` is its base rate.
    """
    name = name.lower()
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")
    if isinstance(params, nn.Module):
        groups = parameter_groups(params, weight_decay=weight_decay, trunk_lr_scale=trunk_lr_scale)
    else:
        items = list(params)
        if items and isinstance(items[0], dict):
            groups = [dict(g) for g in items]  # type: ignore[arg-type]
        else:
            groups = [{"params": [p for p in items if p.requires_grad]}]
    for group in groups:
        group["lr"] = lr * float(group.pop("lr_scale", 1.0))  # type: ignore[arg-type]
        group.setdefault("weight_decay", weight_decay)
    if not any(group["params"] for group in groups):
        raise ValueError("no trainable parameters: everything is frozen")
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(groups, lr=lr, betas=betas, eps=eps)


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    warmup_steps: int,
    total_steps: int | None = None,
    schedule: str = "constant",
    min_lr_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A :class:`~torch.optim.lr_scheduler.LambdaLR` following :func:`lr_factor`.

    Call ``scheduler.step()`` once after every ``optimizer.step()``.

    Parameters
    ----------
    optimizer
        The optimiser whose groups' rates are scaled.
    warmup_steps, total_steps, schedule, min_lr_ratio
        As for :func:`lr_factor`.

    Returns
    -------
    torch.optim.lr_scheduler.LambdaLR
        The scheduler (its state dict holds no function, so it saves and loads).
    """
    lr_factor(0, warmup_steps=warmup_steps, total_steps=total_steps, schedule=schedule)
    fn = functools.partial(
        lr_factor,
        warmup_steps=warmup_steps,
        total_steps=total_steps,
        schedule=schedule,
        min_lr_ratio=min_lr_ratio,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


def clip_grad_norm(parameters: Iterable[nn.Parameter] | nn.Module, max_norm: float | None) -> float:
    """Clip gradients to a global L2 norm of ``max_norm``; return the norm before clipping.

    Parameters
    ----------
    parameters
        Parameters (or a module); those without a gradient are ignored.
    max_norm
        Largest allowed global norm; ``None`` or ``<= 0`` only measures it.

    Returns
    -------
    float
        Global L2 norm of all gradients before clipping (``nan``/``inf`` if they are).
    """
    if isinstance(parameters, nn.Module):
        parameters = parameters.parameters()
    grads = [p for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    if max_norm is None or max_norm <= 0:
        norms = torch.stack([torch.linalg.vector_norm(p.grad.detach().float()) for p in grads])
        return float(torch.linalg.vector_norm(norms))
    return float(torch.nn.utils.clip_grad_norm_(grads, max_norm))
