"""Training losses on non-negative (softplus) predictions.

Both losses take ``pred`` and ``target`` of shape ``(B, bins, tracks)`` and return a scalar.
They are computed in float32 whatever the autocast dtype of the forward pass.

* :func:`poisson_loss` is Enformer's (Avsec et al. 2021): the Poisson negative log-likelihood
  without the ``log(y!)`` term, ``pred - target * log(pred + eps)``, averaged over batch, bins
  and tracks. Its minimum over ``pred`` is at ``pred == target`` and is *not* zero:
  :func:`poisson_loss_floor` gives that value, so ``loss - floor`` is a non-negative excess.
* :func:`poisson_multinomial_loss` is Borzoi's decomposition (Linder et al., 2025): per
  sequence and track, a multinomial negative log-likelihood of the *shape* of the profile over
  the bins plus a Poisson negative log-likelihood of its *total*, weighted by ``total_weight``
  (Borzoi trains with 0.2). Both terms are divided by the number of bins, so the result has
  the scale of a per-bin loss, and then averaged over batch and tracks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = [
    "LOSSES",
    "get_loss",
    "poisson_loss",
    "poisson_loss_floor",
    "poisson_multinomial_loss",
]

_EPS = 1e-7


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape"
        )


def poisson_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """Poisson negative log-likelihood (without ``log(y!)``), mean over every element.

    Parameters
    ----------
    pred
        Non-negative predictions (softplus outputs), ``(B, bins, tracks)``.
    target
        Non-negative targets of the same shape.
    eps
        Added to ``pred`` inside the logarithm.

    Returns
    -------
    torch.Tensor
        ``mean(pred - target * log(pred + eps))``, a float32 scalar.
    """
    _check(pred, target)
    pred = pred.float()
    target = target.float()
    return (pred - target * torch.log(pred + eps)).mean()


def poisson_loss_floor(target: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """Smallest value :func:`poisson_loss` can take for ``target`` (reached at ``pred == target``).

    Parameters
    ----------
    target
        Non-negative targets.
    eps
        As for :func:`poisson_loss`.

    Returns
    -------
    torch.Tensor
        ``mean(target - target * log(target + eps))``, a float32 scalar.
    """
    target = target.float()
    return (target - target * torch.log(target + eps)).mean()


def poisson_multinomial_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    total_weight: float = 0.2,
    eps: float = _EPS,
) -> torch.Tensor:
    """Borzoi's multinomial (profile shape) + Poisson (total count) loss.

    For each sequence ``b`` and track ``t``, with ``P = Σ_bins pred`` and ``Y = Σ_bins target``
    (``eps`` added to every bin of both first)::

        multinomial = -Σ_bins target · log(pred / P)
        total       = P - Y · log(P)
        loss[b, t]  = (multinomial + total_weight · total) / bins

    and the result is the mean of ``loss`` over ``b`` and ``t``.

    Parameters
    ----------
    pred
        Non-negative predictions, ``(B, bins, tracks)``.
    target
        Non-negative targets of the same shape.
    total_weight
        Weight of the Poisson term on the totals (0.2 in Borzoi's training).
    eps
        Pseudo-count added to every bin of ``pred`` and ``target``.

    Returns
    -------
    torch.Tensor
        A float32 scalar.
    """
    _check(pred, target)
    if pred.dim() != 3:
        raise ValueError(f"expected (batch, bins, tracks), got shape {tuple(pred.shape)}")
    pred = pred.float() + eps
    target = target.float() + eps
    bins = pred.shape[1]
    pred_total = pred.sum(dim=1)  # (B, tracks)
    target_total = target.sum(dim=1)  # (B, tracks)
    log_shape = torch.log(pred) - torch.log(pred_total)[:, None, :]  # (B, bins, tracks)
    multinomial = -(target * log_shape).sum(dim=1)  # (B, tracks)
    total = pred_total - target_total * torch.log(pred_total)  # (B, tracks)
    return ((multinomial + total_weight * total) / bins).mean()


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "poisson": poisson_loss,
    "poisson_multinomial": poisson_multinomial_loss,
}
"""Loss name (as in :class:`~enformer.train.config.TrainConfig`) -> function."""


def get_loss(name: str, *, total_weight: float = 0.2) -> Callable[..., torch.Tensor]:
    """The loss called ``name`` as a function of ``(pred, target)``.

    Parameters
    ----------
    name
        ``"poisson"`` or ``"poisson_multinomial"``.
    total_weight
        Weight of the total-count term of ``"poisson_multinomial"``.

    Returns
    -------
    Callable
        ``loss(pred, target) -> scalar tensor``.
    """
    if name == "poisson":
        return poisson_loss
    if name == "poisson_multinomial":

        def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return poisson_multinomial_loss(pred, target, total_weight=total_weight)

        return loss
    raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
