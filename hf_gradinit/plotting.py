"""Diagnostics kept apart from the core: the per-layer scale chart (in the style of the paper's Figure 2).

matplotlib is an optional dependency (`pip install "hf-gradinit[plot]"`), imported only when drawing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .result import GradInitResult

logger = logging.getLogger("hf_gradinit")

_PANELS = {"weight": "weights and embeddings", "norm_weight": "norm-layer weights", "bias": "biases"}


def short_name(name: str) -> str:
    """`model.encoder.layers.3.self_attn.k_proj.weight` -> `enc.3.self_attn.k_proj`."""
    parts = [p for p in name.split(".") if p not in {"model", "weight", "layers", "layer", "h", "transformer"}]
    replacements = {"encoder": "enc", "decoder": "dec"}
    return ".".join(replacements.get(p, p) for p in parts) or name


def plot_scales(result: GradInitResult, path: str | Path) -> Path:
    """Bar chart of the learned scale of every block (log scale, 1 marked), one panel per kind, and the search
    history (look-ahead loss and gradient norm) below."""
    plt = pyplot()

    panels = [
        (title, [(n, s) for n, s in result.scales.items() if result.kinds.get(n, "weight") == kind])
        for kind, title in _PANELS.items()
    ]
    panels = [(title, items) for title, items in panels if items]
    widest = max(len(items) for _, items in panels)
    fig, axes = plt.subplots(
        len(panels) + 1, 1, figsize=(max(8.0, 0.12 * widest), 3.2 * (len(panels) + 1)), squeeze=False
    )
    for ax, (title, items) in zip(axes[:, 0], panels):
        names, values = zip(*items)
        ax.bar(range(len(values)), values, color="tab:blue")
        ax.axhline(1.0, color="gray", linewidth=0.8, linestyle="--")
        ax.set_yscale("log")
        ax.set_title(f"GradInit scales: {title}")
        ax.set_ylabel("alpha")
        ax.set_xticks(range(len(names)), [short_name(n) for n in names], rotation=90, fontsize=6)
        ax.set_xlim(-0.5, len(values) - 0.5)
    ax = axes[-1, 0]
    steps = [r["iteration"] for r in result.history]
    lookahead = [r["lookahead_loss"] if r["lookahead_loss"] is not None else float("nan") for r in result.history]
    ax.plot(steps, lookahead, color="tab:blue", label="look-ahead loss on S~")
    ax.set_xlabel("GradInit iteration")
    ax.set_ylabel("loss")
    twin = ax.twinx()
    twin.plot(steps, [r["grad_norm"] for r in result.history], color="tab:orange", label="gradient norm")
    twin.set_yscale("log")
    twin.set_ylabel(f"||g||_{result.config.grad_norm_order}")
    ax.set_title(f"Search: {result.constraint_steps} constraint steps of {len(result.history)}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def pyplot() -> Any:
    """`matplotlib.pyplot` on the file-only Agg backend; a clear ImportError when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError('Plots need matplotlib: pip install "hf-gradinit[plot]".') from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_scales_if_possible(result: GradInitResult, path: str | Path) -> Path | None:
    """`plot_scales`, or None with a logged note when matplotlib is missing: for outputs where the plot is extra."""
    try:
        return plot_scales(result, path)
    except ImportError as error:
        logger.warning("%s No %s was drawn.", error, Path(path).name)
        return None
