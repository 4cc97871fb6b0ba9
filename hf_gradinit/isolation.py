"""The model during the search, and the model given back: the one place that changes it and restores it.

The search substitutes tensors and never writes to the weights, but running a model changes more than weights:
module modes, buffers that a forward updates (BatchNorm statistics, counters, observers, caches), the random state.
And the model a user hands over may be wrapped (DDP, `torch.compile`, `accelerator.prepare`'s autocast forward),
held in bf16/fp16, or set up for gradient checkpointing. `unwrap_model` finds the plain module whose parameters are
scaled; `isolated` runs the search on it in fp32 with dropout off and then restores all of the above exactly, even
on an exception or an interrupt. After GradInit the model differs from the model before only by the folded scales.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from typing import Any

import torch
from torch import nn

LOW_PRECISION = (torch.float16, torch.bfloat16)
# Keyword arguments of a decoder layer that carry a KV cache: a checkpointed layer must not write to one twice.
_CACHE_ARGUMENTS = ("cache", "layer_past", "past_key_values", "past_key_value")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module GradInit scales: `model` without DDP / DataParallel / `torch.compile` containers.

    Scales are recorded under this module's parameter names, so they replay on the plain model. Sharding engines
    are refused here, before any work: their parameters are not the model's tensors.
    """
    while True:
        name = type(model).__name__
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and "OptimizedModule" in name:
            model = model._orig_mod
        elif name in ("FullyShardedDataParallel", "DeepSpeedEngine"):
            engine = "FSDP (version 1)" if name == "FullyShardedDataParallel" else "DeepSpeed"
            raise ValueError(
                f"The model is wrapped by {engine}, whose flattened, sharded parameters GradInit cannot scale. Run "
                "init_with_gradinit on the model before wrapping it (every rank passes its own batches; the scales "
                "are averaged), then wrap it."
            )
        else:
            return model


def search_device(model: nn.Module) -> torch.device:
    """The one device the model's parameters and buffers are on; a clear error for offloaded or spread models."""
    devices = {t.device for t in (*model.parameters(), *model.buffers())}
    if any(device.type == "meta" for device in devices):
        raise ValueError(
            "Some of the model's tensors are on the 'meta' device (offloaded with device_map, or not materialised): "
            "GradInit needs every weight in memory. Load the model without offloading, run GradInit, then save it."
        )
    if len(devices) > 1:
        listed = ", ".join(sorted(str(device) for device in devices))
        raise ValueError(
            f"The model is spread over several devices ({listed}), e.g. by device_map='auto': GradInit runs on a "
            "model on one device. Load it with device_map={'': 0} (or without device_map), run GradInit, save it, "
            "and load the result with your device_map for training."
        )
    if not devices:
        raise ValueError("The model has no parameters.")
    return devices.pop()


@contextlib.contextmanager
def isolated(model: nn.Module, *, seed: int, cast_to_fp32: bool = True) -> Iterator[None]:
    """Search conditions for `model`, all undone on exit, even on error.

    Inside: every module in eval mode (dropout off) except BatchNorm (batch statistics, as in training);
    bf16/fp16 parameters and buffers in fp32 (in low precision `1 - 1e-3` rounds to 1, so a look-ahead step can
    vanish; the cast back is exact); accelerate's autocast forward and `Module.compile()` bypassed; layers that
    checkpoint activations in training checkpoint here too; autocast off; the random state seeded with `seed`.
    On exit: modes, dtypes, forwards, every buffer's value and the random state are as before.
    """
    device = search_device(model)
    with contextlib.ExitStack() as restore:
        modes = {module: module.training for module in model.modules()}
        restore.callback(_restore_modes, modes)
        model.eval()
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train()

        buffers = _unique_buffers(model)
        saved = [(buffer, buffer.detach().clone()) for buffer in buffers]
        restore.callback(_restore_buffers, saved)
        if cast_to_fp32:  # not FSDP2's sharded parameters: its mixed-precision policy decides the compute dtype
            restore.callback(_restore_dtypes, _cast_to_fp32(model.parameters()))
            _cast_to_fp32(buffers)  # the saved copies bring their dtype back

        for module in model.modules():
            if "_original_forward" in module.__dict__:  # accelerate's autocast wrapper: its forward enters autocast
                restore.enter_context(_instance_attribute(module, "forward", module._original_forward))
            if getattr(module, "_compiled_call_impl", None) is not None:  # `Module.compile()`
                restore.enter_context(_instance_attribute(module, "_compiled_call_impl", None))
            if getattr(module, "gradient_checkpointing", False) is True and callable(
                getattr(module, "_gradient_checkpointing_func", None)
            ):
                restore.enter_context(_instance_attribute(module, "forward", _checkpointed_forward(module)))

        cuda_devices = [device.index or 0] if device.type == "cuda" else []
        restore.enter_context(torch.random.fork_rng(devices=cuda_devices))
        torch.manual_seed(seed)
        restore.enter_context(torch.autocast(device.type, enabled=False))
        yield


def _restore_modes(modes: dict[nn.Module, bool]) -> None:
    for module, training in modes.items():
        module.training = training


def _unique_buffers(model: nn.Module) -> list[torch.Tensor]:
    seen: dict[int, torch.Tensor] = {}
    for buffer in model.buffers():
        seen.setdefault(id(buffer), buffer)
    return list(seen.values())


def _restore_buffers(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    with torch.no_grad():
        for buffer, value in saved:
            if buffer.dtype == value.dtype:
                buffer.copy_(value)  # same storage: views of the buffer stay valid
            else:
                buffer.data = value


def _cast_to_fp32(tensors: Iterator[torch.Tensor] | list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.dtype]]:
    """Cast bf16/fp16 tensors to fp32 in place (same Parameter objects, so ties hold); returns what to cast back."""
    cast = []
    for tensor in tensors:
        if tensor.dtype in LOW_PRECISION:
            cast.append((tensor, tensor.dtype))
            tensor.data = tensor.data.float()
    return cast


def _restore_dtypes(cast: list[tuple[torch.Tensor, torch.dtype]]) -> None:
    for tensor, dtype in cast:
        tensor.data = tensor.data.to(dtype)  # exact: every bf16/fp16 value is an fp32 value


@contextlib.contextmanager
def _instance_attribute(module: nn.Module, name: str, value: Any) -> Iterator[None]:
    """Set `module.<name>` for the duration, then put back the instance attribute it had (or none)."""
    missing = object()
    previous = module.__dict__.get(name, missing)
    object.__setattr__(module, name, value)
    try:
        yield
    finally:
        if previous is missing:
            object.__delattr__(module, name)
        else:
            object.__setattr__(module, name, previous)


def _checkpointed_forward(module: nn.Module) -> Any:
    """The layer's forward through its own checkpoint function (Transformers checkpoints only in train mode)."""
    current = module.forward
    plain = getattr(type(module).forward, "__wrapped__", None)  # transformers' GradientCheckpointingLayer wrapper
    forward = partial(plain, module) if plain is not None and "forward" not in module.__dict__ else current

    def checkpointed(*args: Any, **kwargs: Any) -> Any:
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        if not getattr(module, "_can_checkpoint_with_cache", False):
            kwargs = {key: None if key in _CACHE_ARGUMENTS else value for key, value in kwargs.items()}
        if "use_cache" in kwargs:
            kwargs["use_cache"] = False
        return module._gradient_checkpointing_func(partial(forward, **kwargs), *args)

    return checkpointed
