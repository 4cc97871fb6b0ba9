"""hf_gradinit: GradInit (Zhu et al., NeurIPS 2021) for the Hugging Face stack."""

from .config import GradInitConfig
from .core import init_with_gradinit
from .result import GradInitResult

__version__ = "0.1.0"

__all__ = [
    "GradInitConfig",
    "GradInitResult",
    "init_with_gradinit",
]
