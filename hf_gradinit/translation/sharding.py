"""FSDP2 for the translation models: shard a Post-LN Marian with `fully_shard`, checkpoint it, gather it.

`shard_translation_model` makes every encoder and decoder layer its own FSDP2 unit and puts the rest (the tied
embeddings, the output projection) in the root unit, the layout accelerate's transformer-based wrapping gives.
FSDP2 runs on CPUs (gloo) as on GPUs; GradInit then works on each rank's shards (`hf_gradinit.sharded`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

_SHARDED_DIR = "sharded"  # inside a checkpoint directory: the distributed checkpoint of model and optimizer


def shard_translation_model(model: nn.Module) -> nn.Module:
    """`fully_shard` every encoder/decoder layer, then the whole model; in place, returns the model."""
    from torch.distributed.fsdp import fully_shard

    for layer in (*model.get_encoder().layers, *model.get_decoder().layers):
        fully_shard(layer)
    return fully_shard(model)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded weights on CPU (every rank must call it: it all-gathers)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_sharded_state(model: nn.Module, optimizer: torch.optim.Optimizer, directory: str | Path) -> None:
    """Each rank writes its shards of the weights and of the optimizer state (`torch.distributed.checkpoint`)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(Path(directory) / _SHARDED_DIR))


def load_sharded_state(model: nn.Module, optimizer: torch.optim.Optimizer, directory: str | Path) -> None:
    """Inverse of `save_sharded_state`, into the same sharding."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=str(Path(directory) / _SHARDED_DIR))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
