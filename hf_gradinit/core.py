"""GradInit: learn one scale per parameter block so that the target optimizer's first step lowers the loss most.

The search never writes to the model: every pass runs through `torch.func.functional_call` with substituted
tensors (`GradInitSearch.substituted`), on the model `isolation.isolated` prepares (unwrapped, fp32, dropout off)
and restores; the scales are folded into the weights only after the last iteration. So an exception or an
interrupt leaves the model exactly as it was.

Cost per iteration:
- objective step: two first-order forward+backward passes (on S at theta, on S~ at the stepped theta');
  the step is detached, so d J / d alpha_i = <dL(S~)/dtheta'_i, w_i> / eta needs no second-order graph.
- constraint step: the gradient-norm gradient is a Hessian-vector product (double backward), run under the math
  attention backend. The graph for it is built speculatively when the previous step was a constraint step,
  otherwise the first pass is redone with it. Whether the model can run it is checked before iteration 1.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
import torch.distributed as dist
from accelerate.utils import convert_to_fp32, send_to_device
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from .batching import cycle_batches, split_batch
from .blocks import Parameter, trainable_parameters
from .config import GradInitConfig
from .isolation import isolated, search_device, unwrap_model
from .result import GradInitResult

logger = logging.getLogger("hf_gradinit")

LossFn = Callable[[nn.Module, Any], torch.Tensor]
_ADAM_EPS = 1e-8  # epsilon of the Adam optimizer on the scales


def default_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """`model(**batch).loss`, the Hugging Face convention (the batch holds `labels`)."""
    return model(**batch).loss


def init_with_gradinit(
    model: nn.Module,
    batches: Iterable[Any],
    config: GradInitConfig | None = None,
    *,
    loss_fn: LossFn | None = None,
    progress_bar: bool | None = None,
    log_every: int = 50,
    **overrides: Any,
) -> GradInitResult:
    """Run GradInit on `model` in place and return the learned scales.

    Args:
        model: any `torch.nn.Module` (e.g. a `PreTrainedModel`) on one device, plain or wrapped in DDP,
            `torch.compile` or `accelerator.prepare` (the plain module is initialised; scales are recorded under its
            parameter names). Weights in bf16/fp16 are searched in fp32 and keep their dtype.
        batches: an iterable of training batches (a DataLoader, a list...), cycled when shorter than the run.
            Dicts, tuples and lists of tensors are split along their first dimension into S and S~.
        config: a `GradInitConfig`; default `GradInitConfig()` (the published IWSLT settings). To follow a
            training run (optimizer, learning rate, length), build it with `hf_gradinit.config_for_run`.
        loss_fn: `loss_fn(model, batch) -> scalar tensor`, called while the model's parameters are temporarily
            the scaled / stepped ones, each time on a shallow copy of the batch (it may pop keys).
            Default: `model(**batch).loss`.
        progress_bar: show a tqdm bar; default only on a terminal and on rank 0.
        log_every: log a progress line every this many iterations (0: only at the end).
        **overrides: `GradInitConfig` fields that replace those of `config`.

    Under `torch.distributed` every rank passes its own batches; gradients and alpha-gradients are averaged
    across ranks, so every rank ends with the same weights (those of rank 0's initialisation, rescaled).
    """
    config = _resolve_config(config, overrides)
    model = unwrap_model(model)
    if loss_fn is None:
        loss_fn = default_loss
        checked = _RequireLabels(batches)
        batches = iter(checked) if isinstance(batches, Iterator) else checked  # a one-shot source stays one-shot
    start = time.perf_counter()
    from .sharded import ShardedGradInitSearch, is_fully_sharded  # it builds on GradInitSearch, defined below

    sharded = is_fully_sharded(model)
    with isolated(model, seed=config.seed, cast_to_fp32=not sharded):
        search = (ShardedGradInitSearch if sharded else GradInitSearch)(model, config, loss_fn)
        if search.rank == 0:
            logger.info("GradInit settings: %s", describe(config))
        source = cycle_batches(batches)
        first_batch = next(source)
        search.check_double_backward(first_batch)
        show_bar = progress_bar if progress_bar is not None else (sys.stderr.isatty() and search.rank == 0)
        with search.running(), tqdm(total=config.iterations, desc="GradInit", disable=not show_bar) as bar:
            for iteration, batch in zip(range(config.iterations), itertools.chain([first_batch], source)):
                record = search.iterate(batch, iteration)
                bar.update()
                bar.set_postfix(loss=record["lookahead_loss"] or record["loss"], gnorm=f"{record['grad_norm']:.3g}")
                if (
                    search.rank == 0
                    and log_every
                    and (iteration + 1) % log_every == 0
                    and iteration + 1 < config.iterations
                ):
                    search.log_progress(iteration)
        result = GradInitResult(
            scales=search.scales(),
            config=config,
            kinds={search.params[i].record_name: search.params[i].kind for i in search.block_index},
            history=search.history,
            wall_time=time.perf_counter() - start,
            world_size=search.world_size,
        )
    # Outside the search: the model has its own dtypes, buffers and modes again; the scales are its only change.
    search.fold_into(model, result)
    if search.rank == 0:
        search.log_progress(config.iterations - 1, final=True)
    return result


def describe(config: GradInitConfig) -> str:
    """The settings that decide what GradInit optimises, in one line (logged before every search)."""
    step = config.target_optimizer
    if config.target_optimizer == "sgd" and config.normalize_sgd_step:
        step += " (normalized)"
    decay = f", weight decay {config.target_weight_decay:g}" if config.target_weight_decay else ""
    bound = f"||g||_{config.grad_norm_order} <= {config.grad_norm_bound:g}"
    excluded = f", excluding {list(config.exclude_parameters)}" if config.exclude_parameters else ""
    return (
        f"first step of {step} at eta = {config.target_lr:g}{decay}; {config.iterations} iterations, "
        f"tau = {config.scale_lr:g}, {bound}, batch split {config.batch_split!r}{excluded}"
    )


def _resolve_config(config: GradInitConfig | None, overrides: dict[str, Any]) -> GradInitConfig:
    if config is not None and not isinstance(config, GradInitConfig):
        raise TypeError(f"config must be a GradInitConfig, got {type(config).__name__}.")
    data = (config or GradInitConfig()).to_dict()
    unknown = sorted(set(overrides) - set(data))
    if unknown:
        raise TypeError(
            f"init_with_gradinit() got unknown argument(s) {unknown}; GradInitConfig fields are {sorted(data)}."
        )
    return GradInitConfig.from_dict({**data, **overrides})


class _RequireLabels:
    """Batches checked, as they come, to suit the default loss `model(**batch).loss`; re-iterable like its source."""

    def __init__(self, batches: Iterable[Any]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[Any]:
        for batch in self.batches:
            if not isinstance(batch, Mapping) or "labels" not in batch:
                kind = f"dict with keys {sorted(batch)}" if isinstance(batch, Mapping) else type(batch).__name__
                raise ValueError(
                    f"The default GradInit loss is model(**batch).loss, which needs dict batches with 'labels'; got "
                    f"a {kind}. Add labels to the batches or pass loss_fn=lambda model, batch: ... returning a "
                    "scalar loss."
                )
            yield batch


class _Substitution(nn.Module):
    """Holds `model` so that `functional_call` can substitute its parameters around any function (not only a
    forward): `functional_call(substitution, {"model.<name>": tensor}, (run,))` runs `run()`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, run: Callable[[], Any]) -> Any:
        return run()


class _ScaleAdam:
    """Adam on the scale vector alpha; one instance per step kind, so the two kinds keep separate moments."""

    def __init__(self, config: GradInitConfig, like: torch.Tensor) -> None:
        self.lr, (self.beta1, self.beta2) = config.scale_lr, config.scale_betas
        self.m, self.v, self.t = torch.zeros_like(like), torch.zeros_like(like), 0

    def step(self, alpha: torch.Tensor, grad: torch.Tensor) -> None:
        self.t += 1
        self.m.mul_(self.beta1).add_(grad, alpha=1 - self.beta1)
        self.v.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        alpha.sub_(self.lr * m_hat / (v_hat.sqrt() + _ADAM_EPS))


class GradInitSearch:
    """The state of one GradInit run; `init_with_gradinit` drives it. Public for benchmarks and tests."""

    def __init__(self, model: nn.Module, config: GradInitConfig, loss_fn: LossFn) -> None:
        self.model, self.config = model, config
        self.params: list[Parameter] = trainable_parameters(model, config.exclude_parameters)
        self.loss_fn, self.substitution = loss_fn, _Substitution(model)
        self.device = search_device(model)
        self.distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.world_size = dist.get_world_size() if self.distributed else 1
        self.rank = dist.get_rank() if self.distributed else 0
        self.weights = self.starting_weights()
        self.block_index = [i for i, p in enumerate(self.params) if p.is_block]
        # fp32 at least (fp64 for a double model, so finite-difference checks are exact to many digits).
        dtype = torch.promote_types(self.params[0].tensor.dtype, torch.float32)
        self.alpha = torch.ones(len(self.block_index), device=self.device, dtype=dtype)
        kinds = [self.params[i].kind for i in self.block_index]
        self.alpha_min = torch.tensor(
            [config.bias_min_scale if kind == "bias" else config.min_scale for kind in kinds],
            device=self.device,
            dtype=dtype,
        )
        no_max = math.inf if config.norm_max_scale is None else config.norm_max_scale
        self.alpha_max = torch.tensor(
            [no_max if kind == "norm_weight" else math.inf for kind in kinds], device=self.device, dtype=dtype
        )
        # d theta'_i / d (alpha_i w_i): 1, or 1 - eta * lambda for the matrices AdamW decays.
        decay = config.target_lr * config.target_weight_decay
        self.shrink = [1.0 - decay if p.tensor.dim() >= 2 else 1.0 for p in self.params]
        self.block_shrink = torch.tensor([self.shrink[i] for i in self.block_index], device=self.device, dtype=dtype)
        self.optimizers = {"objective": _ScaleAdam(config, self.alpha), "constraint": _ScaleAdam(config, self.alpha)}
        self.history: list[dict[str, Any]] = []
        self.expect_constraint = False

    def starting_weights(self) -> list[torch.Tensor]:
        """w: read-only views of the parameters, except under torch.distributed, where they are copies broadcast
        from rank 0 (as DDP would do) so that every rank scales the same weights."""
        weights = [p.tensor.detach() for p in self.params]
        if self.distributed:
            weights = [w.clone() for w in weights]
            for w in weights:
                dist.broadcast(w, src=0)
        return weights

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Around the iterations: nothing to undo here (the model's parameters are never written)."""
        yield

    def fold_into(self, model: nn.Module, result: GradInitResult) -> None:
        """w <- alpha * w, in place: the only write to the model. Under torch.distributed, first every rank takes
        rank 0's starting weights, as DDP would."""
        if self.distributed:
            with torch.no_grad():
                for param, weight in zip(self.params, self.weights):
                    param.tensor.copy_(weight)
        result.apply_to(model)

    # -- one iteration -------------------------------------------------------------------------------------------

    def iterate(self, batch: Any, iteration: int) -> dict[str, Any]:
        """One GradInit iteration on `batch`; appends to and returns the history record."""
        first, second = split_batch(self.on_device(batch), self.config.batch_split)
        autograd_hvp = self.config.constraint_hvp == "autograd"
        build_graph = self.expect_constraint and math.isfinite(self.config.grad_norm_bound) and autograd_hvp
        theta, loss, grads = self.first_pass(first, build_graph)
        global_grads = self.global_gradient([g.detach() for g in grads])
        grad_norm = self.grad_norm(global_grads)
        self._check_finite(iteration, loss=loss, grad_norm=grad_norm)
        constraint = grad_norm > self.config.grad_norm_bound
        lookahead_loss = None
        if constraint and autograd_hvp:
            if not build_graph:
                theta, _, grads = self.first_pass(first, build_graph=True)
            alpha_grad = self.constraint_gradient(theta, grads, global_grads)
            del theta, grads
        elif constraint:
            del grads
            alpha_grad = self.finite_difference_constraint_gradient(first, theta, global_grads)
        else:
            del theta, grads  # free a speculative second-order graph before the look-ahead pass
            lookahead, alpha_grad = self.objective_gradient(second, global_grads)
            lookahead_loss = self._mean_over_ranks(lookahead.detach()).item()
        alpha_grad = self.alpha_gradient_over_ranks(alpha_grad)
        self._check_finite(iteration, alpha_grad=alpha_grad)
        self.update_scales(alpha_grad, "constraint" if constraint else "objective")
        self.expect_constraint = constraint
        record = {
            "iteration": iteration,
            "loss": self._mean_over_ranks(loss.detach()).item(),
            "lookahead_loss": lookahead_loss,
            "grad_norm": grad_norm,
            "constraint_step": constraint,
        }
        self.history.append(record)
        return record

    def first_pass(
        self, batch: Any, build_graph: bool
    ) -> tuple[list[torch.Tensor], torch.Tensor, tuple[torch.Tensor, ...]]:
        """Loss and gradient on S at theta = alpha * w; with the graph for a double backward if asked."""
        theta = self.scaled_weights()
        if not build_graph:
            return (theta, *self.gradient(theta, batch))
        theta = [t.requires_grad_() for t in theta]

        def loss_and_gradient() -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
            with sdpa_kernel(SDPBackend.MATH):
                loss = self.loss_of(batch)
                return loss, torch.autograd.grad(loss, theta, create_graph=True, materialize_grads=True)

        loss, grads = self.substituted(theta, loss_and_gradient)
        return theta, loss, grads

    def gradient(self, theta: list[torch.Tensor], batch: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The loss on `batch` at `theta` and its (first-order) gradient, on this process's batch."""
        theta = [t.detach().requires_grad_() for t in theta]

        def loss_and_gradient() -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
            loss = self.loss_of(batch)
            return loss, torch.autograd.grad(loss, theta, materialize_grads=True)

        loss, grads = self.substituted(theta, loss_and_gradient)
        return loss.detach(), list(grads)

    def objective_gradient(self, batch: Any, grads: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Look-ahead loss L(S~; theta') and its first-order gradient w.r.t. alpha, with the step detached."""
        with torch.no_grad():
            step = self.optimizer_direction(grads)
            theta = self.scaled_weights()
            torch._foreach_mul_(theta, self.shrink)
            torch._foreach_add_(theta, step, alpha=-self.config.target_lr)
        lookahead, outer = self.gradient(theta, batch)
        return lookahead, self.block_dots(outer) * self.block_shrink / self.config.target_lr

    def norm_direction(self, global_grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """v = d||g||_p / dg: sign(g) for the L1 norm, g / ||g||_2 for L2."""
        if self.config.grad_norm_order == 1:
            return [g.sign() for g in global_grads]
        norm = self.total(torch._foreach_norm(global_grads, 2), power=2).sqrt()
        return torch._foreach_div(global_grads, norm)

    def constraint_gradient(
        self, theta: list[torch.Tensor], grads: tuple[torch.Tensor, ...], global_grads: list[torch.Tensor]
    ) -> torch.Tensor:
        """Gradient of ||g||_p w.r.t. alpha: <H v, w_i> per block, v = d||g||_p / dg (a Hessian-vector product
        through a double backward)."""
        v = self.norm_direction(global_grads)
        # Gradient entries that do not depend on the parameters (constants of the graph) contribute nothing.
        live = [i for i, g in enumerate(grads) if g.requires_grad]

        def hessian_vector_product() -> tuple[torch.Tensor, ...]:
            with sdpa_kernel(SDPBackend.MATH):  # as in the first pass: checkpointed layers recompute the same graph
                return torch.autograd.grad(
                    [grads[i] for i in live], theta, grad_outputs=[v[i] for i in live], materialize_grads=True
                )

        return self.block_dots(self.substituted(theta, hessian_vector_product))

    def finite_difference_constraint_gradient(
        self, batch: Any, theta: list[torch.Tensor], global_grads: list[torch.Tensor]
    ) -> torch.Tensor:
        """The constraint step's <H v, w_i> from first-order passes only: H v ~ (g(theta + eps v) - g(theta - eps v))
        / (2 eps), eps = r / ||v|| (DARTS' second-order approximation, so the perturbation has norm r).

        Both perturbed points are built from theta (never by adding and subtracting in place), and the blocks'
        dot products are taken in float64: <(g+ - g-), w> = <g+, w> - <g-, w> exactly, without a third buffer.
        """
        v = self.norm_direction(global_grads)
        eps = self.config.constraint_fd_radius / self.total(torch._foreach_norm(v, 2), power=2).sqrt()
        dots = []
        for sign in (1.0, -1.0):
            perturbed = torch._foreach_add(theta, torch._foreach_mul(v, sign * eps))
            _, grads = self.gradient(perturbed, batch)
            dots.append(self.block_dots(grads, dtype=torch.float64))
            del perturbed, grads
        return ((dots[0] - dots[1]) / (2 * eps.double())).to(self.alpha.dtype)

    def check_double_backward(self, batch: Any) -> None:
        """Fail now, not hundreds of iterations in, if constraint steps are possible (a finite bound) and the model
        cannot run the double backward they need (flash / flex attention, compiled graphs, once-differentiable
        kernels): one constraint step's passes on `batch`, whose result is discarded."""
        if not math.isfinite(self.config.grad_norm_bound) or self.config.constraint_hvp != "autograd":
            return
        first, _ = split_batch(self.on_device(batch), self.config.batch_split)
        try:
            theta, _, grads = self.first_pass(first, build_graph=True)
            # A backward that is not itself differentiable (`once_differentiable` kernels) leaves non-zero
            # gradients without a graph: constraint steps would silently treat them as constants.
            detached = [self.params[i].name for i, g in enumerate(grads) if not g.requires_grad and bool(g.any())]
            if detached:
                raise RuntimeError(
                    f"the gradients of {detached[:3]}{'...' if len(detached) > 3 else ''} do not depend on the "
                    "weights after a backward with create_graph=True: an op in the model has a backward that is "
                    "not differentiable"
                )
            self.constraint_gradient(theta, grads, [g.detach() for g in grads])
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as error:
            attention = getattr(getattr(self.model, "config", None), "_attn_implementation", None)
            hint = f" (attention implementation: {attention!r})" if attention else ""
            raise RuntimeError(
                f"This model cannot run the double backward of GradInit's constraint step{hint}: {error}. Set "
                "constraint_hvp='finite_difference' (first-order passes only), load the model with "
                "attn_implementation='sdpa' or 'eager' for GradInit, or set grad_norm_bound=inf (no constraint "
                "steps). Nothing was changed."
            ) from error

    def on_device(self, batch: Any) -> Any:
        """The batch on the search's device, its bf16/fp16 tensors in fp32 like the model during the search."""
        return convert_to_fp32(send_to_device(batch, self.device, non_blocking=True))

    def update_scales(self, alpha_grad: torch.Tensor, kind: str) -> None:
        """Adam step on alpha with the moments of this step kind, then the clamps."""
        if self.config.scale_grad_clip is not None:
            alpha_grad = alpha_grad.clamp(-self.config.scale_grad_clip, self.config.scale_grad_clip)
        self.optimizers[kind].step(self.alpha, alpha_grad)
        torch.maximum(self.alpha, self.alpha_min, out=self.alpha)
        torch.minimum(self.alpha, self.alpha_max, out=self.alpha)

    # -- pieces ----------------------------------------------------------------------------------------------------

    def substituted(self, theta: list[torch.Tensor], run: Callable[[], Any]) -> Any:
        """`run()` while the model's trainable parameters are `theta`: forward *and* backward passes inside, so a
        layer that checkpoints activations recomputes them with `theta` too."""
        substitutes = {f"model.{p.name}": t for p, t in zip(self.params, theta)}
        return torch.func.functional_call(self.substitution, substitutes, (run,))

    def loss(self, theta: list[torch.Tensor], batch: Any) -> torch.Tensor:
        """The user's loss with the model's trainable parameters replaced by `theta` (forward only)."""
        return self.substituted(theta, lambda: self.loss_of(batch))

    def loss_of(self, batch: Any) -> torch.Tensor:
        """The user's loss on `batch` with the parameters the model has now (inside `substituted`)."""
        # Each call gets its own shallow copy: a loss may pop keys (Trainer.compute_loss pops `labels`), and the
        # same batch is used again (a redone first pass, batch_split='same').
        loss = self.loss_fn(self.model, copy.copy(batch))
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"The GradInit loss must be a scalar tensor, got {shape}: return the mean loss.")
        return loss

    def scaled_weights(self) -> list[torch.Tensor]:
        """Fresh tensors alpha_i * w_i (zero-norm tensors copied unscaled)."""
        theta = [w.clone() for w in self.weights]
        block_theta = [theta[i] for i in self.block_index]
        torch._foreach_mul_(block_theta, list(self.alpha.unbind()))
        return theta

    def grad_norm(self, grads: list[torch.Tensor]) -> float:
        """||g||_p over all trainable parameters: p = 1 for Adam, 2 for SGD."""
        p = self.config.grad_norm_order
        return (self.total(torch._foreach_norm(grads, p), power=p) ** (1 / p)).item()

    def total(self, norms: list[torch.Tensor], power: int) -> torch.Tensor:
        """sum_i norms_i ** power: from per-tensor norms, the `power`-th power of their global norm."""
        return torch.stack(norms).pow(power).sum()

    def optimizer_direction(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """A[g]: Adam's first step g / (|g| + eps), or g (optionally normalised) for SGD."""
        if self.config.target_optimizer == "sgd":
            if not self.config.normalize_sgd_step:
                return grads
            return torch._foreach_div(grads, self.total(torch._foreach_norm(grads, 2), power=2).sqrt())
        return torch._foreach_div(grads, torch._foreach_add(torch._foreach_abs(grads), self.config.target_eps))

    def block_dots(self, tensors: list[torch.Tensor], dtype: torch.dtype | None = None) -> torch.Tensor:
        """Per block i: <tensors_i, w_i>, accumulated in the dtype of alpha (or `dtype`)."""
        dtype = dtype or self.alpha.dtype
        return torch.stack([torch.sum(tensors[i].to(dtype) * self.weights[i].to(dtype)) for i in self.block_index])

    def global_gradient(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """The gradient of the mean loss over all ranks' batches (from each rank's own gradient)."""
        return self._mean_over_ranks_list(grads)

    def alpha_gradient_over_ranks(self, alpha_grad: torch.Tensor) -> torch.Tensor:
        """Each rank's alpha-gradient is that of its own batch: their mean is the gradient of the mean loss."""
        return self._mean_over_ranks(alpha_grad)

    def _mean_over_ranks(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            tensor = tensor.clone()
            dist.all_reduce(tensor)
            tensor /= self.world_size
        return tensor

    def _mean_over_ranks_list(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """The gradient of the mean loss over all ranks' batches (one all-reduce of the flattened gradient)."""
        if not self.distributed:
            return tensors
        flat = self._mean_over_ranks(torch.cat([t.reshape(-1) for t in tensors]))
        return [chunk.view_as(t) for chunk, t in zip(flat.split([t.numel() for t in tensors]), tensors)]

    def _check_finite(self, iteration: int, **values: torch.Tensor | float) -> None:
        for name, value in values.items():
            finite = math.isfinite(value) if isinstance(value, float) else bool(torch.isfinite(value).all())
            if finite:
                continue
            causes = {
                "loss": "the model's loss is already non-finite on this batch (check inputs, labels, padding) or the "
                "scales have grown too large (lower scale_lr)",
                "grad_norm": "the gradient overflows at the current scales (lower scale_lr or grad_norm_bound, "
                "or run in fp32)",
                "alpha_grad": "the look-ahead step diverged (target_lr too large for this model) or the loss "
                "overflows (run in fp32)",
            }
            raise FloatingPointError(
                f"GradInit iteration {iteration}: non-finite {name}. Likely cause: {causes[name]}. "
                "The model was left unchanged."
            )

    def log_progress(self, iteration: int, final: bool = False) -> None:
        recent = self.history[-50:]
        constraint_steps = sum(r["constraint_step"] for r in self.history)
        lookahead = [r["lookahead_loss"] for r in recent if r["lookahead_loss"] is not None]
        logger.info(
            "GradInit %s %d/%d: loss(S) %.4f, look-ahead loss(S~) %s, |g|_%d %.4g, constraint steps %d",
            "done" if final else "iteration",
            iteration + 1,
            self.config.iterations,
            self.history[-1]["loss"],
            f"{sum(lookahead) / len(lookahead):.4f}" if lookahead else "n/a",
            self.config.grad_norm_order,
            self.history[-1]["grad_norm"],
            constraint_steps,
        )

    def scales(self) -> dict[str, float]:
        """The learned scale of each block, by parameter name."""
        return {self.params[i].record_name: float(a) for i, a in zip(self.block_index, self.alpha.tolist())}
