"""hf_gradinit: GradInit (Zhu et al., NeurIPS 2021) for the Hugging Face stack."""

from .config import GradInitConfig
from .core import init_with_gradinit
from .defaults import TrainingRun, config_for_run
from .hub import HubPushError, init_checkpoint, push_checkpoint, save_gradinit_checkpoint
from .model_card import TrainingDetails, build_model_card, render_gradinit_section
from .presets import POST_LN_PRESETS, fairseq_init_, freeze_sinusoidal_positions_, post_ln_config
from .result import GradInitResult
from .trainer import (
    GradInitSeq2SeqTrainer,
    GradInitSeq2SeqTrainingArguments,
    GradInitTrainer,
    GradInitTrainingArguments,
)

__version__ = "0.1.0"

__all__ = [
    "POST_LN_PRESETS",
    "GradInitConfig",
    "GradInitResult",
    "GradInitSeq2SeqTrainer",
    "GradInitSeq2SeqTrainingArguments",
    "GradInitTrainer",
    "GradInitTrainingArguments",
    "HubPushError",
    "TrainingDetails",
    "TrainingRun",
    "build_model_card",
    "config_for_run",
    "fairseq_init_",
    "freeze_sinusoidal_positions_",
    "init_checkpoint",
    "init_with_gradinit",
    "post_ln_config",
    "push_checkpoint",
    "render_gradinit_section",
    "save_gradinit_checkpoint",
]
