"""`GradInitArguments`: GradInit's command-line / JSON / YAML arguments, for `HfArgumentParser`.

One `gradinit_<name>` argument per `GradInitConfig` field (default None: "not given"), written out so type checkers
and IDEs see them, with the help text taken from the config field (`_given_as_argument`), so it is written once;
plus the switches of a training integration. `GradInitTrainingArguments`, `train_mt.py` and `hf-gradinit init`
all use it. A test checks that every config field has its argument with the same type.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_type_hints

from ..batching import smallest_splittable_batch
from ..config import GradInitConfig
from ..defaults import PRESETS, TrainingRun, config_for_run

logger = logging.getLogger("hf_gradinit")
_CONFIG_FIELDS = {config_field.name: config_field for config_field in dataclasses.fields(GradInitConfig)}
# Fields where GradInitConfig takes None for "no bound"; on the command line that is spelled `inf`.
_UNBOUNDED_AS_NONE = {name for name, hint in get_type_hints(GradInitConfig).items() if type(None) in get_args(hint)}


def _given_as_argument(name: str) -> Any:
    """The `gradinit_<name>` field: default None (not given), the help of `GradInitConfig.<name>`."""
    config_field = _CONFIG_FIELDS[name]
    unbounded = " (inf: none)" if name in _UNBOUNDED_AS_NONE else ""
    default = (
        config_field.default if config_field.default is not dataclasses.MISSING else config_field.default_factory()
    )
    help_text = f"GradInit: {config_field.metadata['help']} Default: from the run, else the preset's, else {default!r}"
    return field(default=None, metadata={"help": f"{help_text}{unbounded}."})


@dataclass
class GradInitArguments:
    """GradInit arguments: the switches, and one `gradinit_<name>` per `GradInitConfig` field (None: not given).
    Parse with `HfArgumentParser`; `gradinit_config(run)` builds the config."""

    gradinit: bool = field(
        default=False,
        metadata={
            "help": "Run GradInit (Zhu et al., 2021) once before training, on batches of the training set, so that "
            "training can start without learning-rate warmup."
        },
    )
    gradinit_config_preset: Literal["iwslt", "cifar"] | None = field(
        default=None,
        metadata={
            "help": "Published settings to start from: 'iwslt' (Adam, Post-LN Transformers) or 'cifar' (SGD); "
            "gradinit_* arguments given explicitly override it. Default: the one for the run's optimizer."
        },
    )
    gradinit_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Examples per GradInit batch in each process (split into S and S~). Default: the training "
            "batch size of one process."
        },
    )
    gradinit_force: bool = field(
        default=False,
        metadata={
            "help": "Run GradInit even when model.config.gradinit shows the model is already GradInit-initialised. "
            "Resuming from a checkpoint never runs it."
        },
    )
    gradinit_iterations: int | None = _given_as_argument("iterations")
    gradinit_target_optimizer: Literal["adam", "adamw", "sgd"] | None = _given_as_argument("target_optimizer")
    gradinit_target_lr: float | None = _given_as_argument("target_lr")
    gradinit_target_weight_decay: float | None = _given_as_argument("target_weight_decay")
    gradinit_target_eps: float | None = _given_as_argument("target_eps")
    gradinit_scale_lr: float | None = _given_as_argument("scale_lr")
    gradinit_scale_betas: list[float] | None = _given_as_argument("scale_betas")
    gradinit_grad_norm_bound: float | None = _given_as_argument("grad_norm_bound")
    gradinit_min_scale: float | None = _given_as_argument("min_scale")
    gradinit_bias_min_scale: float | None = _given_as_argument("bias_min_scale")
    gradinit_norm_max_scale: float | None = _given_as_argument("norm_max_scale")
    gradinit_scale_grad_clip: float | None = _given_as_argument("scale_grad_clip")
    gradinit_normalize_sgd_step: bool | None = _given_as_argument("normalize_sgd_step")
    gradinit_constraint_hvp: Literal["autograd", "finite_difference"] | None = _given_as_argument("constraint_hvp")
    gradinit_constraint_fd_radius: float | None = _given_as_argument("constraint_fd_radius")
    gradinit_batch_split: Literal["overlap", "disjoint", "same"] | None = _given_as_argument("batch_split")
    gradinit_exclude_parameters: list[str] | None = _given_as_argument("exclude_parameters")
    gradinit_seed: int | None = _given_as_argument("seed")

    def __post_init__(self) -> None:
        config = self.gradinit_config()  # validates every gradinit_* value now, not after the model is loaded
        smallest = smallest_splittable_batch(config.batch_split)
        if self.gradinit_batch_size is not None and self.gradinit_batch_size < smallest:
            raise ValueError(
                f"gradinit_batch_size must be at least 2 to split a batch into S and S~ (batch_split="
                f"{config.batch_split!r}), got {self.gradinit_batch_size}."
            )

    def gradinit_config(self, run: TrainingRun | None = None, *, fully_sharded: bool = False) -> GradInitConfig:
        """The GradInit settings: for a training `run`, the rule of `hf_gradinit.defaults.config_for_run` (what
        GradInit optimises follows the run); without one, the preset (or GradInitConfig's defaults). Every
        explicitly given `gradinit_<name>` wins in both cases. For an FSDP2 model (`fully_sharded`), which has no
        double backward, constraint steps default to the finite-difference product."""
        given = {}
        for name in _CONFIG_FIELDS:
            value = getattr(self, f"gradinit_{name}")
            if value is not None:
                given[name] = None if name in _UNBOUNDED_AS_NONE and value == math.inf else value
        if fully_sharded and "constraint_hvp" not in given:
            logger.info("FSDP2 has no double backward: constraint steps use constraint_hvp='finite_difference'.")
            given["constraint_hvp"] = "finite_difference"
        if run is not None:
            return config_for_run(run, preset=self.gradinit_config_preset, **given)
        return PRESETS.get(self.gradinit_config_preset, GradInitConfig)(**given)
