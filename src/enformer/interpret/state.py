"""Running a model for interpretation, and leaving it as it was found.

:func:`model_state` is shared by contribution scores, ISM and attention capture: eval mode,
optionally gradient checkpointing, frozen parameters and another device for the duration
of a call; every setting is restored afterwards, even after an error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from ..runtime import parse_device

if TYPE_CHECKING:
    from ..model.enformer import Enformer

__all__ = ["model_state"]


@contextlib.contextmanager
def model_state(
    model: Enformer,
    *,
    device: torch.device | None = None,
    checkpointing: bool = False,
    freeze: bool = True,
) -> Iterator[Enformer]:
    """Put a model in eval mode (optionally checkpointed, frozen, moved); restore it after.

    Parameters
    ----------
    model : Enformer
        The model; its training flags, device, parameters' ``requires_grad`` and gradient
        checkpointing setting are restored on exit, even after an error.
    device : torch.device, optional
        Device to run on (the model's own by default).
    checkpointing : bool, optional
        Recompute each conv-tower and transformer block in the backward pass, keeping only
        the blocks' inputs (:meth:`~enformer.model.Enformer.set_gradient_checkpointing`).
    freeze : bool, optional
        Set ``requires_grad=False`` on every parameter for the duration.

    Yields
    ------
    Enformer
        The same model object.

    Notes
    -----
    With ``checkpointing`` the trunk recomputes each block's activations in the backward
    pass; every module stays in eval mode (BatchNorm moving averages, no dropout).
    """
    was_training = model.training
    modes = [(m, m.training) for m in model.modules()]
    old_device = model.device
    flags = [(p, p.requires_grad) for p in model.parameters()]
    trunk = getattr(model, "trunk", None)  # Enformer's; other families have no checkpointing
    old_ckpt = trunk.gradient_checkpointing if trunk is not None else False
    if checkpointing and trunk is None:
        raise ValueError(f"gradient checkpointing is implemented for Enformer, not "
                         f"{type(model).__name__}")  # fmt: skip
    try:
        if device is not None and parse_device(device) != old_device:
            model.to(device)
        model.eval()
        if freeze:
            for p, _ in flags:
                p.requires_grad_(False)
        if checkpointing:
            model.set_gradient_checkpointing(True)
        yield model
    finally:
        if trunk is not None:
            model.set_gradient_checkpointing(old_ckpt)
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
        for m, mode in modes:  # also mixed states, e.g. frozen BatchNorms in training
            m.training = mode
        if model.device != old_device:
            model.to(old_device)
