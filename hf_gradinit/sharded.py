"""GradInit on a model sharded with FSDP2 (`torch.distributed.fsdp.fully_shard`, accelerate's `fsdp_version=2`).

FSDP2 runs forward and backward on parameters it all-gathers from each rank's shard, and cannot run a double
backward. So this search works differently from `GradInitSearch` in three places, and is otherwise the same:
- it writes theta into the local shards in place (from a snapshot of the starting shards, never by adding and
  subtracting) and takes gradients with `loss.backward()`, which FSDP2 reduce-scatters: each rank receives its
  shard of the gradient of the mean loss over all ranks' batches;
- norms and per-block dot products are summed over the shards (one all-reduce), so every rank sees the global
  values, and alpha-gradients need no further averaging;
- constraint steps use the finite-difference Hessian-vector product (first-order passes only).
It needs, per rank, the snapshot of its shards and the gradient shards: no second copy of the whole model. On exit,
even on an exception or an interrupt, every shard and every `.grad` is as it was; the scales are then folded into
the shards in place. The result equals the data-parallel search (`GradInitSearch` on unsharded replicas) up to the
order of floating-point sums.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .blocks import local_tensor
from .config import GradInitConfig
from .core import GradInitSearch, LossFn
from .result import GradInitResult


def is_fully_sharded(model: nn.Module) -> bool:
    """Whether FSDP2 (`fully_shard`) manages any part of `model`."""
    if not dist.is_available():
        return False
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(module, FSDPModule) for module in model.modules())


class ShardedGradInitSearch(GradInitSearch):
    """`GradInitSearch` on this rank's shards of an FSDP2 model, in place; `init_with_gradinit` picks it."""

    def __init__(self, model: nn.Module, config: GradInitConfig, loss_fn: LossFn) -> None:
        if config.constraint_hvp != "finite_difference" and config.grad_norm_bound != float("inf"):
            raise ValueError(
                "FSDP2 cannot run the double backward of constraint_hvp='autograd': set "
                "constraint_hvp='finite_difference' (first-order passes only), or grad_norm_bound=inf."
            )
        super().__init__(model, config, loss_fn)

    def starting_weights(self) -> list[torch.Tensor]:
        """A snapshot of this rank's shards: w, and what every shard is restored from."""
        return [local_tensor(p.tensor.detach()).clone() for p in self.params]

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The iterations write theta into the shards and gradients into `.grad`: put both back afterwards."""
        grads = [p.tensor.grad for p in self.params]
        try:
            yield
        finally:
            with torch.no_grad():
                for p, weight, grad in zip(self.params, self.weights, grads):
                    local_tensor(p.tensor).copy_(weight)
                    p.tensor.grad = grad

    def fold_into(self, model: nn.Module, result: GradInitResult) -> None:
        """alpha * w into each shard (the shards hold w again, `running` saw to that)."""
        result.apply_to(model)

    def gradient(self, theta: list[torch.Tensor], batch: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Loss of this rank's batch at theta, and this rank's shard of the gradient of the mean loss over ranks."""
        with torch.no_grad():
            for p, t in zip(self.params, theta):
                local_tensor(p.tensor).copy_(t)
                p.tensor.grad = None
        loss = self.loss_of(batch)
        loss.backward()
        grads = [
            torch.zeros_like(t) if p.tensor.grad is None else local_tensor(p.tensor.grad).detach().clone()
            for p, t in zip(self.params, theta)
        ]
        for p in self.params:
            p.tensor.grad = None
        return loss.detach(), grads

    def first_pass(self, batch: Any, build_graph: bool) -> tuple[list[torch.Tensor], torch.Tensor, list[torch.Tensor]]:
        theta = self.scaled_weights()
        return (theta, *self.gradient(theta, batch))

    def global_gradient(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        return grads  # FSDP2's reduce-scatter has averaged them over the ranks already

    def total(self, norms: list[torch.Tensor], power: int) -> torch.Tensor:
        return self._sum_over_ranks(super().total(norms, power))

    def block_dots(self, tensors: list[torch.Tensor], dtype: torch.dtype | None = None) -> torch.Tensor:
        return self._sum_over_ranks(super().block_dots(tensors, dtype))

    def alpha_gradient_over_ranks(self, alpha_grad: torch.Tensor) -> torch.Tensor:
        return alpha_grad  # from globally averaged gradients and summed over the shards: the same on every rank

    def _sum_over_ranks(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            tensor = tensor.clone()
            dist.all_reduce(tensor)
        return tensor
