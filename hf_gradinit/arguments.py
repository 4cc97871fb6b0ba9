"""`GradInitArguments`: GradInit's command-line / JSON / YAML arguments, generated from `GradInitConfig`.

One `gradinit_<name>` argument per `GradInitConfig` field (same type and help, default None = "the preset's
value"), plus the switches of a training integration. `GradInitTrainingArguments` and the translation script both
use it, so the field list is written once: in `GradInitConfig`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin, get_type_hints

from .batching import smallest_splittable_batch
from .config import GradInitConfig
from .defaults import TrainingRun, config_for_run

_PRESETS = {None: GradInitConfig, "iwslt": GradInitConfig.iwslt, "cifar": GradInitConfig.cifar}
_CONFIG_TYPES = get_type_hints(GradInitConfig)
# Fields where GradInitConfig takes None for "no bound"; on the command line that is spelled `inf`.
_UNBOUNDED_AS_NONE = {name for name, hint in _CONFIG_TYPES.items() if type(None) in get_args(hint)}


def _argument_for(config_field: dataclasses.Field) -> tuple[str, Any, dataclasses.Field]:
    """The `gradinit_<name>` argument for one GradInitConfig field: same type and help; None = not given."""
    hint = _CONFIG_TYPES[config_field.name]
    if get_origin(hint) is tuple:  # argument parsers give lists (`--gradinit_scale_betas 0.9 0.98`)
        hint = list[get_args(hint)[0]]
    unbounded = " (inf: none)" if config_field.name in _UNBOUNDED_AS_NONE else ""
    help_text = (
        f"GradInit: {config_field.metadata['help']} Default: the preset's value, else {config_field.default!r}"
        f"{unbounded}."
    )
    return f"gradinit_{config_field.name}", hint | None, field(default=None, metadata={"help": help_text})


@dataclass
class _GradInitSwitches:
    """The integration-side GradInit arguments; the `gradinit_<config field>` ones are added by `make_dataclass`."""

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
            "gradinit_* arguments given explicitly override the preset. Default: GradInitConfig's defaults, "
            "which are the 'iwslt' settings."
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

    def __post_init__(self) -> None:
        config = self.gradinit_config()  # validates every gradinit_* value now, not after the model is loaded
        smallest = smallest_splittable_batch(config.batch_split)
        if self.gradinit_batch_size is not None and self.gradinit_batch_size < smallest:
            raise ValueError(
                f"gradinit_batch_size must be at least 2 to split a batch into S and S~ (batch_split="
                f"{config.batch_split!r}), got {self.gradinit_batch_size}."
            )

    def gradinit_config(self, run: TrainingRun | None = None) -> GradInitConfig:
        """The GradInit settings: for a training `run`, the rule of `hf_gradinit.defaults.config_for_run` (what
        GradInit optimises follows the run); without one, the preset (or GradInitConfig's defaults). Every
        explicitly given `gradinit_<name>` wins in both cases."""
        given = {}
        for config_field in dataclasses.fields(GradInitConfig):
            value = getattr(self, f"gradinit_{config_field.name}")
            if value is not None:
                unbounded = config_field.name in _UNBOUNDED_AS_NONE and value == math.inf
                given[config_field.name] = None if unbounded else value
        if run is not None:
            return config_for_run(run, preset=self.gradinit_config_preset, **given)
        return _PRESETS[self.gradinit_config_preset](**given)


GradInitArguments = dataclasses.make_dataclass(
    "GradInitArguments",
    [_argument_for(config_field) for config_field in dataclasses.fields(GradInitConfig)],
    bases=(_GradInitSwitches,),
    namespace={
        "__module__": __name__,
        "__doc__": "GradInit arguments: the switches plus one `gradinit_<name>` per `GradInitConfig` field "
        "(None: the preset's value). Parse with `HfArgumentParser`; `gradinit_config()` builds the config.",
    },
)
