"""GradInit-initialised checkpoints on disk: write one atomically, read its scales back.

`save_gradinit_checkpoint` writes weights (safetensors), config with `config.gradinit`, tokenizer,
`gradinit_scales.json`, the scale plot and a `README.md` model card (`build_model_card`) into a hidden temporary
directory next to the target and renames it into place only once complete. An existing non-empty directory is
replaced only with `overwrite=True`, and only after the new one is complete. `load_gradinit_result` and
`format_scale_table` are what `hf-gradinit report` prints.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..plotting import plot_scales_if_possible, short_name
from ..result import PLOT_FILE, SCALES_FILE, GradInitResult
from .model_card import TrainingDetails, build_model_card

logger = logging.getLogger("hf_gradinit")


CARD_FILE = "README.md"


WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json")


class OutputDirectoryExistsError(FileExistsError):
    """The output directory exists and is not empty, and `overwrite` was not given."""


def check_output_dir(output_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """`output_dir` as a Path, if a checkpoint may be written there: absent, an empty directory, or `overwrite`."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise OutputDirectoryExistsError(f"{path} exists and is not a directory.")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise OutputDirectoryExistsError(
            f"{path} exists and is not empty; pass --overwrite (overwrite=True) to replace it, or another directory."
        )
    return path


def save_gradinit_checkpoint(
    model: PreTrainedModel,
    result: GradInitResult,
    output_dir: str | os.PathLike[str],
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    extra_tokenizers: Mapping[str, PreTrainedTokenizerBase] | None = None,
    overwrite: bool = False,
    model_name: str | None = None,
    architecture: str | None = None,
    base_model: str | None = None,
    pipeline_tag: str | None = None,
    language: str | list[str] | None = None,
    license: str | None = None,
    datasets: str | list[str] | None = None,
    tags: list[str] | None = None,
    training: TrainingDetails | None = None,
    search_data: str | None = None,
) -> Path:
    """Write a GradInit-initialised (or -trained) model as a directory that loads with plain transformers.

    Contents: `save_pretrained` weights (safetensors) and config (with `config.gradinit`, set here by
    `result.record_in(model)`), the tokenizer if given, each of `extra_tokenizers` in its subfolder (e.g. a separate
    target vocabulary in `target_tokenizer/`), `gradinit_scales.json` (`GradInitResult.save`, with the
    history), `gradinit_scales.png` (the plot) and `README.md` (`build_model_card` with the remaining keyword
    arguments; `model_name` defaults to the directory's name, `architecture` to the model's class).

    Atomic: everything is written to a hidden `.<name>.incomplete-*` directory next to `output_dir` and renamed into
    place at the end; an error or Ctrl-C removes it and leaves `output_dir` as it was. A non-empty `output_dir` is
    an `OutputDirectoryExistsError` unless `overwrite`, and then it is replaced only after the new one is complete.
    Returns the path of the checkpoint.
    """
    target = check_output_dir(output_dir, overwrite=overwrite)
    missing = sorted(set(result.scales) - {name for name, _ in model.named_parameters()})
    if missing:
        raise ValueError(f"The result's scales name parameters the model lacks ({missing[:3]}): not this model's run.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.incomplete-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        result.record_in(model)
        model.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        for subfolder, extra in (extra_tokenizers or {}).items():
            extra.save_pretrained(staging / subfolder)
        result.save(staging / SCALES_FILE)
        plotted = plot_scales_if_possible(result, staging / PLOT_FILE)
        card = build_model_card(
            result,
            model_name=model_name or target.name,
            architecture=architecture or type(model).__name__,
            base_model=base_model,
            pipeline_tag=pipeline_tag,
            language=language,
            license=license,
            datasets=datasets,
            tags=tags,
            training=training,
            search_data=search_data,
            scales_plot=PLOT_FILE if plotted else None,
            tokenizer_subfolders=list(extra_tokenizers or {}),
        )
        card.save(staging / CARD_FILE)
        _move_into_place(staging, target, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("Wrote %s", target)
    return target


def _move_into_place(staging: Path, target: Path, *, overwrite: bool) -> None:
    """Rename the complete `staging` directory to `target`; an old `target` is set aside first and removed last."""
    check_output_dir(target, overwrite=overwrite)  # again: something may have appeared during the run
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if not target.exists():
        os.rename(staging, target)
        return
    old = target.parent / f".{target.name}.replaced-{uuid.uuid4().hex[:8]}"
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def check_complete(folder: Path) -> None:
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a directory: write the checkpoint first (`hf-gradinit init`).")
    missing = [name for name in ("config.json", CARD_FILE) if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in WEIGHTS_FILES):
        missing.append(WEIGHTS_FILES[0])
    if missing:
        raise ValueError(f"{folder} is not a complete checkpoint: missing {', '.join(missing)}.")


def load_gradinit_result(path: str | os.PathLike[str]) -> tuple[GradInitResult, Path]:
    """The GradInit result at `path`, and the file it came from.

    `path` is a checkpoint directory (its `gradinit_scales.json`, else the `gradinit` record of its `config.json`,
    which has no per-iteration history), a `gradinit_scales.json` file, or a `config.json` file.
    """
    path = Path(path)
    if path.is_dir():
        for candidate in (path / SCALES_FILE, path / "config.json"):
            if candidate.is_file():
                return load_gradinit_result(candidate)
        raise FileNotFoundError(f"{path} holds neither {SCALES_FILE} nor config.json.")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a JSON file: {error}") from error
    if isinstance(data, dict) and "scales" not in data and "gradinit" in data:
        data = data["gradinit"]
    if not isinstance(data, dict) or "scales" not in data:
        raise ValueError(f"{path} holds no GradInit result (no scales, no `gradinit` record in a config).")
    return GradInitResult.from_dict(data), path


def format_scale_table(result: GradInitResult) -> str:
    """One line per block (parameter name, kind, scale, short name), the run's summary and settings, as text."""
    names = list(result.scales)
    width = max([len("parameter"), *(len(name) for name in names)])
    lines = [f"{'parameter':<{width}}  {'kind':<11}  {'scale':>10}  short name", "-" * (width + 37)]
    for name in names:
        kind = result.kinds.get(name, "weight")
        lines.append(f"{name:<{width}}  {kind:<11}  {result.scales[name]:>10.4g}  {short_name(name)}")
    lines += ["", "summary:"]
    for key, value in result.summary().items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"  {key}: {shown}")
    lines += ["", "config:"]
    lines += [f"  {key}: {value}" for key, value in dataclasses.asdict(result.config).items()]
    return "\n".join(lines)
