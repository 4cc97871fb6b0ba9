"""hf_gradinit: GradInit (Zhu et al., NeurIPS 2021) for the Hugging Face stack.

Three layers; a module only imports from its own layer or the ones below it:
1. the method (this directory): `config`, `core`, `blocks`, `batching`, `isolation`, `defaults`, `result`, and
   `plotting` (diagnostics; matplotlib only when drawing);
2. toolkits: `hf_gradinit.translation` (Post-LN presets, data, training pieces, evaluation) and
   `hf_gradinit.vision` (convnets as PreTrainedModels, image data);
3. the Hugging Face integration, `hf_gradinit.integrations`: Trainer, arguments, model cards, checkpoint writer,
   Hub push, CLI.
Importing the package loads nothing else: each name below loads its module on first use.
"""

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "GradInitConfig": ".config",
    "init_with_gradinit": ".core",
    "GradInitResult": ".result",
    "TrainingRun": ".defaults",
    "config_for_run": ".defaults",
    "GradInitArguments": ".integrations.arguments",
    "GradInitTrainer": ".integrations.trainer",
    "GradInitTrainingArguments": ".integrations.trainer",
    "GradInitSeq2SeqTrainer": ".integrations.trainer",
    "GradInitSeq2SeqTrainingArguments": ".integrations.trainer",
    "TrainingDetails": ".integrations.model_card",
    "build_model_card": ".integrations.model_card",
    "render_gradinit_section": ".integrations.model_card",
    "save_gradinit_checkpoint": ".integrations.checkpoint",
    "load_gradinit_result": ".integrations.checkpoint",
    "HubPushError": ".integrations.hub",
    "push_checkpoint": ".integrations.hub",
    "init_checkpoint": ".integrations.init_checkpoint",
}
# Exported here before the translation toolkit became a subpackage.
_MOVED = {name: "hf_gradinit.translation" for name in
          ("POST_LN_PRESETS", "fairseq_init_", "freeze_sinusoidal_positions_", "post_ln_config")}  # fmt: skip

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _MOVED)

if TYPE_CHECKING:  # what type checkers and IDEs see; tests/test_architecture.py checks it matches _EXPORTS
    from .config import GradInitConfig
    from .core import init_with_gradinit
    from .defaults import TrainingRun, config_for_run
    from .integrations.arguments import GradInitArguments
    from .integrations.checkpoint import load_gradinit_result, save_gradinit_checkpoint
    from .integrations.hub import HubPushError, push_checkpoint
    from .integrations.init_checkpoint import init_checkpoint
    from .integrations.model_card import TrainingDetails, build_model_card, render_gradinit_section
    from .integrations.trainer import (
        GradInitSeq2SeqTrainer,
        GradInitSeq2SeqTrainingArguments,
        GradInitTrainer,
        GradInitTrainingArguments,
    )
    from .result import GradInitResult
