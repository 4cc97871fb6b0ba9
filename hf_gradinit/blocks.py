"""Which tensors GradInit scales: the model's trainable parameters, each counted once, and what kind each is."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

BlockKind = Literal["weight", "norm_weight", "bias"]

_NORM_CLASS = re.compile(r"Norm(\d[dD])?$")


@dataclass
class Parameter:
    """One trainable tensor. `is_block` is False for zero-norm tensors: they are stepped but not scaled."""

    name: str
    tensor: nn.Parameter
    kind: BlockKind
    is_block: bool


def is_norm_layer(module: nn.Module) -> bool:
    """LayerNorm, RMSNorm, GroupNorm, BatchNorm... and custom classes named like them (`T5LayerNorm`)."""
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._NormBase)) or bool(
        _NORM_CLASS.search(type(module).__name__)
    )


def trainable_parameters(model: nn.Module) -> list[Parameter]:
    """Trainable parameters deduplicated by identity (tied weights appear once, under their first name)."""
    norm_params = {
        id(param) for module in model.modules() if is_norm_layer(module) for param in module.parameters(recurse=False)
    }
    found = []
    for name, param in model.named_parameters():  # removes duplicates (tied weights) by identity
        if not param.requires_grad:
            continue
        if name.rsplit(".", 1)[-1] == "bias":
            kind: BlockKind = "bias"
        elif id(param) in norm_params:
            kind = "norm_weight"
        else:
            kind = "weight"
        with torch.no_grad():
            nonzero = bool(param.detach().abs().sum() > 0)
        found.append(Parameter(name, param, kind, nonzero))
    if not found:
        raise ValueError(
            "The model has no trainable parameters (all have requires_grad=False): GradInit has nothing to scale. "
            "Unfreeze the parameters to initialise, e.g. `for p in model.parameters(): p.requires_grad_(True)`."
        )
    if not any(p.is_block for p in found):
        raise ValueError("Every trainable parameter of the model is zero: GradInit can only rescale non-zero tensors.")
    return found
