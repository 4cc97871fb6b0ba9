"""What GradInit optimises, derived from the training run it initialises for: one rule for every entry point.

GradInit tunes the scales for the *first step of the training run*: the optimizer's kind, its learning rate, its
weight decay. Taking these from the run (rather than from the published IWSLT numbers) is what keeps GradInit from
initialising a model for a run it will not have. `GradInitTrainer`, `train_mt.py` and `hf-gradinit init` all call
`config_for_run`; so can you: `init_with_gradinit(model, batches, config_for_run(TrainingRun("adamw", lr=5e-4)))`.

The rule, in order (each layer replaces the one before):
1. Base settings: the published ones for the run's optimizer family (`GradInitConfig.iwslt()` for Adam-like runs,
   `GradInitConfig.cifar()` for SGD), or the preset the user names.
2. From the run: the target optimizer; eta = 2 x lr for Adam-like steps (the published IWSLT recipe trains at lr
   5e-4 with eta 1e-3, and in our Ding tuning eta = 2 x lr beat eta = lr on each of 4 seeds: docs/results/
   ding-small-400-tuning and ding-small-400-gradinit-eta2x), eta = lr for SGD (the published CIFAR recipe: 0.1 and
   0.1); the weight decay; Adam's epsilon; and for a run of `max_steps` updates, at most max_steps / 2 iterations
   with tau raised to keep the published total movement of the scales.
3. Every setting the user gave explicitly.
What cannot be modelled (Adafactor, schedule-free, Adam's coupled L2 decay, ...) is logged as a warning that says
what GradInit assumed instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .config import GradInitConfig

logger = logging.getLogger("hf_gradinit")

#: eta / lr for optimizers whose first step is a sign step (Adam, AdamW, Lion, Adagrad); SGD uses eta = lr.
SIGN_STEP_ETA_PER_LR = 2.0
PRESETS = {"iwslt": GradInitConfig.iwslt, "cifar": GradInitConfig.cifar}
_MIN_ITERATIONS = 10
_MAX_SCALED_SCALE_LR = 1e-2  # measured to work for 150 iterations on the `small` preset

# First steps GradInit models exactly (up to Adam's epsilon), by optimizer: Trainer `optim` names and optimizer
# class names, lower case. The first Adam step is eta * g / (|g| + eps) whatever the betas; Lion's is eta * sign(g);
# Adagrad's is eta * g / (sqrt(g^2) + eps); quantised (8-bit, 4-bit, paged) states do not change the first step.
_DECOUPLED_SIGN_STEP = {
    *("adamw", "adamw_torch", "adamw_torch_fused", "adamw_torch_xla", "adamw_torch_npu_fused", "adamw_apex_fused"),
    *("adamw_anyprecision", "anyprecisionadamw", "adamw_torch_4bit", "adamw_torch_8bit", "adamw4bit", "adamw8bit"),
    *("adamw_bnb_8bit", "adamw_8bit", "paged_adamw_32bit", "paged_adamw_8bit", "pagedadamw", "pagedadamw8bit"),
    *("pagedadamw32bit", "adamw32bit", "fusedadam"),
    *("lion", "lion_8bit", "lion_32bit", "paged_lion_32bit", "paged_lion_8bit", "lion8bit", "lion32bit"),
    *("pagedlion", "pagedlion8bit", "pagedlion32bit"),
}
_SIGN_STEP = {"adam", "adagrad"}
_SGD = {"sgd"}


@dataclass(frozen=True)
class TrainingRun:
    """The training run GradInit initialises for: enough to know its first step.

    `optimizer` is a Trainer `optim` name (`"adamw_torch"`, `"sgd"`...), an optimizer class name (`"AdamW"`,
    `"SGD"`, `"Lion8bit"`), or one of GradInit's kinds (`"adam"`, `"adamw"`, `"sgd"`). `weight_decay` is the decay
    training applies to matrices; `max_steps` the planned number of updates (None: unknown). SGD's first step from
    zero momentum is lr * g, or (1 + momentum) * lr * g with Nesterov.
    """

    optimizer: str
    lr: float
    weight_decay: float = 0.0
    eps: float = 1e-8
    max_steps: int | None = None
    momentum: float = 0.0
    nesterov: bool = False

    @classmethod
    def from_optimizer(cls, optimizer: Any, max_steps: int | None = None) -> TrainingRun:
        """The run of an already created `torch.optim.Optimizer` (its class, and its first parameter groups)."""
        groups = optimizer.param_groups
        return cls(
            optimizer=type(optimizer).__name__,
            lr=float(groups[0]["lr"]),
            weight_decay=max(float(group.get("weight_decay", 0.0) or 0.0) for group in groups),
            eps=float(groups[0].get("eps", 1e-8)),
            max_steps=max_steps,
            momentum=float(groups[0].get("momentum", 0.0) or 0.0),
            nesterov=bool(groups[0].get("nesterov", False)),
        )


def first_step_kind(optimizer: str) -> str | None:
    """GradInit's model of the run's first step: 'adamw', 'adam' or 'sgd'; None if it has none."""
    name = optimizer.lower()
    if name in _DECOUPLED_SIGN_STEP:
        return "adamw"
    if name in _SIGN_STEP:
        return "adam"
    if name in _SGD:
        return "sgd"
    return None


def run_settings(run: TrainingRun) -> tuple[dict[str, Any], list[str]]:
    """The `GradInitConfig` fields that follow from `run`, and warnings on what GradInit had to assume."""
    warnings = []
    kind = first_step_kind(run.optimizer)
    if kind is None:
        warnings.append(
            f"GradInit cannot model the first step of the optimizer {run.optimizer!r}; it assumes an AdamW step at "
            f"eta = {SIGN_STEP_ETA_PER_LR:g} x lr. Set gradinit_target_optimizer (and gradinit_target_lr) to say "
            "which step to optimise for."
        )
        kind = "adamw"
    decay = run.weight_decay
    if decay and kind == "adam":
        warnings.append(
            f"The optimizer {run.optimizer!r} adds weight decay {decay:g} to the gradient (coupled L2), which "
            "GradInit does not model; it optimises the first step without decay."
        )
        decay = 0.0
    if kind == "sgd":
        eta = run.lr * (1.0 + run.momentum if run.nesterov else 1.0)
    else:
        eta = SIGN_STEP_ETA_PER_LR * run.lr
    settings: dict[str, Any] = {"target_optimizer": kind, "target_lr": eta, "target_weight_decay": decay}
    if kind != "sgd":
        settings["target_eps"] = run.eps
    if run.max_steps is not None:
        published = PRESETS[_preset_for(kind)]()
        iterations = min(published.iterations, max(_MIN_ITERATIONS, run.max_steps // 2))
        settings["iterations"] = iterations
        settings["scale_lr"] = min(
            max(_MAX_SCALED_SCALE_LR, published.scale_lr), published.scale_lr * published.iterations / iterations
        )
    return settings, warnings


def config_for_run(run: TrainingRun, *, preset: str | None = None, **explicit: Any) -> GradInitConfig:
    """GradInit's settings for `run`: base preset, then what follows from the run, then `explicit` (those win).

    Logs where the deciding settings came from, and warns about what GradInit cannot honour.
    """
    derived, warnings = run_settings(run)
    run_kind = derived["target_optimizer"]
    kind = explicit.get("target_optimizer", run_kind)
    if kind != run_kind:
        warnings.append(
            f"gradinit_target_optimizer={kind!r} was given explicitly, but the run trains with {run.optimizer!r} "
            f"(a {run_kind} first step): GradInit optimises a step the run will not take."
        )
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"Unknown GradInit preset {preset!r}; valid presets: {', '.join(PRESETS)}.")
    if preset is not None and preset != _preset_for(kind):
        warnings.append(
            f"The GradInit preset {preset!r} holds the published settings for {_FAMILY[preset]} runs, but GradInit "
            f"optimises a {kind} step here: it uses the preset's other settings (bound, tau, ...) with that step."
        )
    settings = {**derived, **explicit}
    if kind == "adam" and "target_weight_decay" not in explicit:
        settings["target_weight_decay"] = 0.0  # Adam's decay is not decoupled: not part of the modelled step
    if kind != "sgd":
        settings["normalize_sgd_step"] = explicit.get("normalize_sgd_step", False)
    base = preset or _preset_for(kind)
    config = PRESETS[base](**settings)
    for warning in warnings:
        logger.warning(warning)
    logger.info(
        "GradInit follows the run (optimizer %r, lr %g, weight decay %g, max_steps %s): %s settings with %s%s",
        run.optimizer,
        run.lr,
        run.weight_decay,
        run.max_steps,
        base,
        ", ".join(f"{key}={getattr(config, key)!r}" for key in derived),
        f"; given explicitly: {', '.join(sorted(explicit))}" if explicit else "",
    )
    return config


_FAMILY = {"iwslt": "Adam", "cifar": "SGD"}


def _preset_for(kind: str) -> str:
    return "cifar" if kind == "sgd" else "iwslt"
