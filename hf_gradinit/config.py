"""`GradInitConfig`: every knob of the method, with the paper's symbol in its help text."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

TARGET_OPTIMIZERS = ("adam", "adamw", "sgd")
BATCH_SPLITS = ("overlap", "disjoint", "same")
CONSTRAINT_HVPS = ("autograd", "finite_difference")


@dataclass
class GradInitConfig:
    """Settings of one GradInit run.

    The defaults are the published IWSLT'14 settings (`GradInitConfig.iwslt()`); `GradInitConfig.cifar()` holds
    the CIFAR-10 (SGD) ones. Saves to and loads from JSON; an infinite `grad_norm_bound` is stored as `null`.
    """

    iterations: int = field(default=780, metadata={"help": "Number of GradInit iterations (T)."})
    target_optimizer: Literal["adam", "adamw", "sgd"] = field(
        default="adam",
        metadata={"help": "Optimizer whose first step GradInit optimises for (A): 'adam', 'adamw' or 'sgd'."},
    )
    target_lr: float = field(
        default=1e-3, metadata={"help": "Learning rate of that first step (eta); usually the training peak lr."}
    )
    target_weight_decay: float = field(
        default=0.0,
        metadata={
            "help": "Weight decay of the first step (lambda), on tensors with ndim >= 2: AdamW's decoupled decay, or "
            "SGD's L2 term (for one step from zero momentum both shrink theta by 1 - eta * lambda)."
        },
    )
    target_eps: float = field(default=1e-8, metadata={"help": "Adam epsilon of the first step: A[g] = g/(|g|+eps)."})
    scale_lr: float = field(default=2.5e-3, metadata={"help": "Adam learning rate on the scales alpha (tau)."})
    scale_betas: tuple[float, float] = field(default=(0.9, 0.98), metadata={"help": "Adam betas on the scales alpha."})
    grad_norm_bound: float = field(
        default=1000.0,
        metadata={
            "help": "Bound on the gradient norm (gamma): L1 for adam/adamw, L2 for sgd; inf turns the constraint off."
        },
    )
    min_scale: float = field(
        default=0.01, metadata={"help": "Lower clamp of alpha for weights, norm-layer weights and embeddings."}
    )
    bias_min_scale: float = field(default=0.0, metadata={"help": "Lower clamp of alpha for biases."})
    norm_max_scale: float | None = field(
        default=100.0, metadata={"help": "Upper clamp of alpha for norm-layer weights; None for no clamp."}
    )
    scale_grad_clip: float | None = field(
        default=None, metadata={"help": "Clip each scalar alpha-gradient to [-clip, clip]; None for no clipping."}
    )
    normalize_sgd_step: bool = field(
        default=False, metadata={"help": "For 'sgd': step along g/||g||_2 instead of g (the CIFAR setting)."}
    )
    constraint_hvp: Literal["autograd", "finite_difference"] = field(
        default="autograd",
        metadata={
            "help": "How a constraint step gets its Hessian-vector product: 'autograd' (a double backward: exact, but "
            "needs kernels with a double backward, runs attention on the math backend, not under FSDP2) or "
            "'finite_difference' (a central difference of two first-order gradients: works with any kernel and "
            "with FSDP2)."
        },
    )
    constraint_fd_radius: float = field(
        default=1e-3,
        metadata={
            "help": "For 'finite_difference': the perturbation is theta +- (r / ||v||) v, of L2 norm r (DARTS' "
            "second-order approximation uses r = 0.01; 1e-3 was the most accurate in fp32 in our measurements)."
        },
    )
    batch_split: Literal["overlap", "disjoint", "same"] = field(
        default="overlap",
        metadata={
            "help": "How a batch becomes S and S~: 'overlap' (first and last two thirds, as published), "
            "'disjoint' (halves) or 'same' (both the whole batch)."
        },
    )
    exclude_parameters: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "Regular expressions (re.search on parameter names): matching parameters are not scaled (they "
            "still take the look-ahead step if trainable). Fixed tables (sinusoidal positions) are never scaled."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the random number generator during the search."})

    def __post_init__(self) -> None:
        self.scale_betas = tuple(self.scale_betas)  # JSON and argument parsers give lists
        if isinstance(self.exclude_parameters, str):
            self.exclude_parameters = (self.exclude_parameters,)
        self.exclude_parameters = tuple(self.exclude_parameters)
        if self.grad_norm_bound is None:
            self.grad_norm_bound = math.inf
        problems = []
        if not isinstance(self.iterations, int) or self.iterations < 1:
            problems.append(f"iterations must be a positive integer, got {self.iterations!r}")
        if self.target_optimizer not in TARGET_OPTIMIZERS:
            problems.append(f"target_optimizer must be one of {TARGET_OPTIMIZERS}, got {self.target_optimizer!r}")
        if self.constraint_hvp not in CONSTRAINT_HVPS:
            problems.append(f"constraint_hvp must be one of {CONSTRAINT_HVPS}, got {self.constraint_hvp!r}")
        if self.batch_split not in BATCH_SPLITS:
            problems.append(f"batch_split must be one of {BATCH_SPLITS}, got {self.batch_split!r}")
        for name in ("target_lr", "scale_lr", "grad_norm_bound", "target_eps", "constraint_fd_radius"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("target_weight_decay", "min_scale", "bias_min_scale"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.norm_max_scale is not None and not self.norm_max_scale > self.min_scale:
            problems.append(
                f"norm_max_scale must be > min_scale ({self.min_scale}) or None, got {self.norm_max_scale!r}"
            )
        if self.scale_grad_clip is not None and not self.scale_grad_clip > 0:
            problems.append(f"scale_grad_clip must be > 0 or None, got {self.scale_grad_clip!r}")
        if len(self.scale_betas) != 2 or not all(0 <= b < 1 for b in self.scale_betas):
            problems.append(f"scale_betas must be two numbers in [0, 1), got {self.scale_betas!r}")
        if self.target_weight_decay and self.target_optimizer == "adam":
            problems.append(
                "target_weight_decay needs target_optimizer='adamw' (decoupled decay) or 'sgd'; Adam's L2 term "
                "is not modelled"
            )
        for pattern in self.exclude_parameters:
            try:
                re.compile(pattern)
            except re.error as error:
                problems.append(f"exclude_parameters: {pattern!r} is not a regular expression ({error})")
        if self.normalize_sgd_step and self.target_optimizer != "sgd":
            problems.append("normalize_sgd_step only applies to target_optimizer='sgd'; set one or the other")
        if problems:
            raise ValueError("Invalid GradInitConfig: " + "; ".join(problems) + ".")

    @property
    def grad_norm_order(self) -> int:
        """p of the bounded norm ||g||_p: 1 for Adam-type targets, 2 for SGD."""
        return 2 if self.target_optimizer == "sgd" else 1

    @classmethod
    def iwslt(cls, **overrides: Any) -> GradInitConfig:
        """Published IWSLT'14 De-En setting (Post-LN Transformer, Adam, no warmup afterwards)."""
        return cls(**overrides)

    @classmethod
    def cifar(cls, **overrides: Any) -> GradInitConfig:
        """Published CIFAR-10 setting (SGD with normalized step; tau = 1e-2 is the VGG-19-without-BN value)."""
        settings: dict[str, Any] = dict(
            iterations=390,
            target_optimizer="sgd",
            target_lr=0.1,
            normalize_sgd_step=True,
            scale_lr=1e-2,
            scale_betas=(0.9, 0.999),
            grad_norm_bound=1.0,
            scale_grad_clip=1.0,
            norm_max_scale=None,
        )
        return cls(**{**settings, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (infinite bound as None)."""
        data = dataclasses.asdict(self)
        data["scale_betas"] = list(self.scale_betas)
        data["exclude_parameters"] = list(self.exclude_parameters)
        if math.isinf(self.grad_norm_bound):
            data["grad_norm_bound"] = None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GradInitConfig:
        """Inverse of `to_dict`; unknown keys are an error so typos don't pass silently."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"Unknown GradInitConfig field(s) {unknown}; valid fields are {sorted(names)}.")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        """Write the config as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> GradInitConfig:
        """Read a config written by `save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))
