"""Which tensors GradInit scales: the model's trainable parameters, each counted once, and what kind each is."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

BlockKind = Literal["weight", "norm_weight", "bias"]

_NORM_CLASS = re.compile(r"Norm(\d[dD])?$")
#: Modules holding a fixed (not learned) table, e.g. Marian's sinusoidal positions, which transformers 5.x makes
#: trainable when a checkpoint is reloaded: never scaled, whatever their `requires_grad`.
_FIXED_TABLE_CLASS = re.compile(r"Sinusoidal")
_COMPILED_PREFIX = "_orig_mod."


@dataclass
class Parameter:
    """One trainable tensor. Only blocks are scaled; the others (zero tensors, fixed tables, excluded names) still
    take the look-ahead step, as training would move them."""

    name: str  # the path inside the model (what `functional_call` substitutes)
    tensor: nn.Parameter
    kind: BlockKind
    is_block: bool

    @property
    def record_name(self) -> str:
        """The name the scale is recorded under: the path without `torch.compile` wrappers, so it replays on the
        plain model."""
        return canonical_name(self.name)


def canonical_name(name: str) -> str:
    """`name` without the `_orig_mod.` segments that `torch.compile` inserts."""
    return name.replace(_COMPILED_PREFIX, "")


def is_norm_layer(module: nn.Module) -> bool:
    """LayerNorm, RMSNorm, GroupNorm, BatchNorm... and custom classes named like them (`T5LayerNorm`)."""
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._NormBase)) or bool(
        _NORM_CLASS.search(type(module).__name__)
    )


def is_fixed_table(module: nn.Module) -> bool:
    """A module whose weight is a fixed code rather than learned (sinusoidal position tables)."""
    return bool(_FIXED_TABLE_CLASS.search(type(module).__name__))


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's part of a DTensor (FSDP2's sharded parameters; a view of its storage), or the tensor itself."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _is_nonzero(param: torch.Tensor) -> bool:
    """Whether any entry is non-zero; for a sharded parameter, in any rank's shard."""
    with torch.no_grad():
        total = local_tensor(param).abs().sum()
        if hasattr(param, "device_mesh"):
            torch.distributed.all_reduce(total, group=param.device_mesh.get_group())
    return bool(total > 0)


def trainable_parameters(model: nn.Module, exclude: Sequence[str] = ()) -> list[Parameter]:
    """Trainable parameters deduplicated by identity (tied weights appear once, under their first name).

    Blocks are the non-zero ones, except fixed tables and names matching a pattern of `exclude` (`re.search`).
    """
    norm_params = {
        id(param) for module in model.modules() if is_norm_layer(module) for param in module.parameters(recurse=False)
    }
    fixed = {
        id(param) for module in model.modules() if is_fixed_table(module) for param in module.parameters(recurse=False)
    }
    patterns = [re.compile(pattern) for pattern in exclude]
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
        excluded = id(param) in fixed or any(pattern.search(canonical_name(name)) for pattern in patterns)
        found.append(Parameter(name, param, kind, _is_nonzero(param) and not excluded))
    if not found:
        raise ValueError(
            "The model has no trainable parameters (all have requires_grad=False): GradInit has nothing to scale. "
            "Unfreeze the parameters to initialise, e.g. `for p in model.parameters(): p.requires_grad_(True)`."
        )
    if not any(p.is_block for p in found):
        raise ValueError(
            "No trainable parameter of the model can be scaled: every one is zero, a fixed table or excluded by "
            "exclude_parameters. GradInit can only rescale non-zero learned tensors."
        )
    return found
