"""`GradInitResult`: the learned scales, a replayable init recipe, and the record of the run."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .blocks import trainable_parameters
from .config import GradInitConfig
from .isolation import unwrap_model

RESULT_FORMAT_VERSION = 1
#: File names of a saved result and its plot, wherever one is written (Trainer output_dir, checkpoints).
SCALES_FILE = "gradinit_scales.json"
PLOT_FILE = "gradinit_scales.png"


@dataclass
class GradInitResult:
    """What a GradInit run learned and how it went.

    Attributes:
        scales: the scale alpha of each parameter block, by parameter name (tied weights: their first name).
        config: the settings of the run.
        kinds: the kind of each block: 'weight' (matrices, embeddings), 'norm_weight' or 'bias'.
        history: one record per iteration: `iteration`, `loss` (on S), `lookahead_loss` (on S~ after the
            target optimizer's step; None on constraint steps), `grad_norm` (||g||_p), `constraint_step`.
        wall_time: seconds the run took.
        world_size: number of processes whose batches were averaged.
        recorded_summary: the summary stored with a record that has no history (`model.config.gradinit`), so
            `summary()` still describes the run after `save_pretrained` / `from_pretrained`.
    """

    scales: dict[str, float]
    config: GradInitConfig
    kinds: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_time: float = 0.0
    world_size: int = 1
    recorded_summary: dict[str, Any] | None = None

    @property
    def constraint_steps(self) -> int:
        """How many iterations were constraint steps (gradient norm above the bound)."""
        if not self.history and self.recorded_summary:
            return int(self.recorded_summary["constraint_steps"])
        return sum(bool(record["constraint_step"]) for record in self.history)

    def summary(self) -> dict[str, Any]:
        """A short account of the run: scale statistics, step counts and the first and last look-ahead losses."""
        if not self.history and self.recorded_summary:
            return dict(self.recorded_summary)
        values = list(self.scales.values())
        lookahead = [r["lookahead_loss"] for r in self.history if r["lookahead_loss"] is not None]
        return {
            "blocks": len(values),
            "scale_min": min(values),
            "scale_median": statistics.median(values),
            "scale_max": max(values),
            "iterations": len(self.history),
            "constraint_steps": self.constraint_steps,
            "first_lookahead_loss": lookahead[0] if lookahead else None,
            "last_lookahead_loss": lookahead[-1] if lookahead else None,
            "wall_time_s": round(self.wall_time, 3),
            "world_size": self.world_size,
        }

    def to_dict(self, with_history: bool = True) -> dict[str, Any]:
        """JSON-safe dict; without the history it is the record kept in `model.config.gradinit`."""
        data: dict[str, Any] = {
            "format_version": RESULT_FORMAT_VERSION,
            "config": self.config.to_dict(),
            "scales": dict(self.scales),
            "kinds": dict(self.kinds),
            "summary": self.summary(),
            "wall_time": self.wall_time,
            "world_size": self.world_size,
        }
        if with_history:
            data["history"] = self.history
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GradInitResult:
        """Inverse of `to_dict` (a record without history gives an empty history)."""
        missing = {"config", "scales"} - set(data)
        if missing:
            raise ValueError(f"Not a GradInit result: missing {sorted(missing)}.")
        return cls(
            scales={name: float(value) for name, value in data["scales"].items()},
            config=GradInitConfig.from_dict(data["config"]),
            kinds=dict(data.get("kinds", {})),
            history=list(data.get("history", [])),
            wall_time=float(data.get("wall_time", 0.0)),
            world_size=int(data.get("world_size", 1)),
            recorded_summary=None if data.get("history") else data.get("summary"),
        )

    def save(self, path: str | Path) -> None:
        """Write the result (scales, config, history) as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> GradInitResult:
        """Read a result written by `save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_model(cls, model: nn.Module) -> GradInitResult | None:
        """The result recorded in `model.config.gradinit`, or None if the model was not GradInit-initialised."""
        record = getattr(getattr(model, "config", None), "gradinit", None)
        return cls.from_dict(record) if record else None

    def apply_to(self, model: nn.Module) -> nn.Module:
        """Multiply each block of `model` by its scale, in place, and record the result in its config.

        Replays the init recipe on a freshly initialised model of the same architecture (wrappers such as DDP or
        `torch.compile` are looked through). The model's blocks must be exactly the recorded ones: a model whose
        blocks differ (tied vs untied embeddings, other frozen or zero tensors) is refused, and left unchanged,
        rather than partly scaled.
        """
        model = unwrap_model(model)
        blocks = {
            p.record_name: p.tensor for p in trainable_parameters(model, self.config.exclude_parameters) if p.is_block
        }
        missing, extra = sorted(set(self.scales) - set(blocks)), sorted(set(blocks) - set(self.scales))
        if missing or extra:
            raise ValueError(
                "These scales do not fit the model's parameter blocks: "
                + "; ".join(
                    f"{label} {names[:5]}{'...' if len(names) > 5 else ''}"
                    for label, names in (
                        ("recorded but not blocks of the model:", missing),
                        ("blocks without a scale:", extra),
                    )
                    if names
                )
                + ". They were learned on a different architecture (or with other tied, frozen or zero tensors); "
                "the model was not changed."
            )
        with torch.no_grad():
            for name, scale in self.scales.items():
                blocks[name].mul_(scale)
        self.record_in(model)
        return model

    def record_in(self, model: nn.Module) -> None:
        """Store the result (without history) in `model.config.gradinit`, so it survives `save_pretrained`."""
        config = getattr(model, "config", None)
        if config is not None:
            config.gradinit = self.to_dict(with_history=False)

    def plot(self, path: str | Path) -> Path:
        """Draw the per-layer scales (bar chart, log scale) to an image file; returns the path."""
        from .plotting import plot_scales

        return plot_scales(self, path)
