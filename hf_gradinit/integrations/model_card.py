"""Model cards for GradInit-initialised models: a GradInit section, and a whole card around it.

Both are Jinja templates in `hf_gradinit/integrations/templates/`; this module only prepares the values. The card
serves a checkpoint that was initialised and not yet trained (pass no `training`) as well as one trained afterwards
(`GradInitTrainer.create_model_card` passes the Trainer's hyperparameters and results).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import jinja2
import torch
import transformers
from huggingface_hub import ModelCard, ModelCardData

from ..config import GradInitConfig
from ..result import GradInitResult

_TEMPLATES = files(__package__) / "templates"
_KIND_TITLES = {"weight": "weights and embeddings", "norm_weight": "norm-layer weights", "bias": "biases"}


@dataclass(frozen=True)
class TrainingDetails:
    """How the model was trained after GradInit (what `transformers.modelcard.TrainingSummary` collects)."""

    hyperparameters: dict[str, Any]
    eval_results: dict[str, Any] | None = None
    eval_lines: list[dict[str, Any]] | None = None


def render_gradinit_section(
    result: GradInitResult, *, search_data: str | None = None, scales_plot: str | None = None
) -> str:
    """The "GradInit initialisation" section of a model card (markdown), with the citation.

    Args:
        result: the GradInit run (`GradInitResult.from_model(model)` works: the history is not needed).
        search_data: what GradInit searched on, e.g. "batches of 32 sentence pairs from the IWSLT'14 training set".
        scales_plot: path, relative to the card, of the image `GradInitResult.plot` drew.
    """
    template = jinja2.Template(
        (_TEMPLATES / "gradinit_section.md").read_text(encoding="utf-8"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return template.render(
        result=result,
        summary=_formatted(result.summary()),
        settings=_settings(result.config),
        kind_stats=_kind_stats(result),
        scales=[
            {"name": name, "kind": result.kinds.get(name, "weight"), "scale": _format(scale)}
            for name, scale in result.scales.items()
        ],
        search_data=search_data,
        scales_plot=scales_plot,
    )


def build_model_card(
    result: GradInitResult,
    *,
    model_name: str,
    architecture: str | None = None,
    base_model: str | None = None,
    pipeline_tag: str | None = None,
    language: str | list[str] | None = None,
    license: str | None = None,
    datasets: str | list[str] | None = None,
    tags: list[str] | None = None,
    training: TrainingDetails | None = None,
    search_data: str | None = None,
    scales_plot: str | None = None,
    tokenizer_subfolders: Sequence[str] = (),
) -> ModelCard:
    """A complete model card for a GradInit-initialised model; `card.save(path)` or `card.push_to_hub(repo_id)`.

    Args:
        result: the GradInit run recorded in the model (`GradInitResult.from_model(model)`).
        model_name: the card's title.
        architecture: the model class, e.g. "MarianMTModel" (stated when the checkpoint is not trained yet).
        base_model: the Hub checkpoint the weights came from, if any; None for a model built from a config.
        pipeline_tag, language, license, datasets: card metadata (datasets: Hub dataset ids).
        tags: extra tags; "gradinit" is always added.
        training: the training that followed GradInit; None for a checkpoint that is initialised, not trained.
        search_data, scales_plot: see `render_gradinit_section`.
        tokenizer_subfolders: subfolders holding further tokenizers (e.g. `target_tokenizer` for separate source
            and target vocabularies), shown in the loading example.
    """
    card_data = ModelCardData(
        library_name="transformers",
        base_model=base_model,
        pipeline_tag=pipeline_tag,
        language=language,
        license=license,
        datasets=[name for name in ([datasets] if isinstance(datasets, str) else datasets or []) if name] or None,
        tags=list(dict.fromkeys(["gradinit", *(tags or [])])),
    )
    from .. import __version__

    details = training or TrainingDetails(hyperparameters={})
    return ModelCard.from_template(
        card_data,
        template_path=str(_TEMPLATES / "model_card.md"),
        model_name=model_name,
        architecture=architecture,
        tokenizer_subfolders=list(tokenizer_subfolders),
        trained=training is not None,
        hyperparameters=_formatted(details.hyperparameters),
        eval_results=_formatted(details.eval_results or {}),
        eval_lines=[_formatted(line) for line in details.eval_lines or []],
        gradinit_section=render_gradinit_section(result, search_data=search_data, scales_plot=scales_plot),
        versions={"hf-gradinit": __version__, "Transformers": transformers.__version__, "PyTorch": torch.__version__},
    )


def _settings(config: GradInitConfig) -> list[dict[str, str]]:
    """One row per GradInitConfig field: name, value, meaning."""
    return [
        {
            "name": f.name,
            "value": _format(getattr(config, f.name)),
            "help": f.metadata.get("help", "").replace("|", "\\|"),
        }
        for f in dataclasses.fields(config)
    ]


def _kind_stats(result: GradInitResult) -> list[dict[str, str]]:
    """Count, min, median and max of the scales of each block kind."""
    by_kind: dict[str, list[float]] = {}
    for name, scale in result.scales.items():
        by_kind.setdefault(result.kinds.get(name, "weight"), []).append(scale)
    return [
        {
            "kind": _KIND_TITLES.get(kind, kind),
            "count": str(len(scales)),
            "min": _format(min(scales)),
            "median": _format(statistics.median(scales)),
            "max": _format(max(scales)),
        }
        for kind, scales in by_kind.items()
    ]


def _formatted(values: dict[str, Any]) -> dict[str, str]:
    return {name: _format(value) for name, value in values.items()}


def _format(value: Any) -> str:
    """Floats to 4 significant digits; None (an absent clamp or clip) as "none"."""
    if value is None:
        return "none"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
