"""GradInit-initialised checkpoints on disk and on the Hub: write one atomically, push it, read its scales back.

- `init_checkpoint`: the whole `hf-gradinit init` flow: data and tokenizer (as `train_mt.py` loads them), a model
  (a `POST_LN_PRESETS` preset or a seq2seq `AutoConfig`), GradInit on the shared translation batches, then
  `save_gradinit_checkpoint` and, if asked, `push_checkpoint`.
- `save_gradinit_checkpoint`: weights (safetensors), config with `config.gradinit`, tokenizer, `gradinit_scales.json`,
  the scale plot and a `README.md` model card (`build_model_card`), written into a hidden temporary directory next
  to the target and renamed into place only once complete. An existing non-empty directory is replaced only with
  `overwrite=True`, and only after the new one is complete.
- `push_checkpoint`: `create_repo` + `upload_folder` through an `HfApi` (injectable); network, offline-mode and login
  failures become a `HubPushError` that says the local checkpoint is complete and how to push it later.
- `load_gradinit_result` / `format_scale_table`: what `hf-gradinit report` prints.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from datasets import DatasetDict
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled
from torch import nn
from transformers import AutoConfig, AutoModelForSeq2SeqLM, PreTrainedModel, PreTrainedTokenizerBase, set_seed
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
)

from .arguments import GradInitArguments
from .core import init_with_gradinit
from .data import BUILTIN_SOURCES, load_tokenizer, tokenize_translation, train_joint_bpe
from .defaults import TrainingRun
from .model_card import TrainingDetails, build_model_card
from .plotting import short_name
from .presets import POST_LN_PRESETS, fairseq_init_
from .result import PLOT_FILE, SCALES_FILE, GradInitResult
from .translation import (
    TRANSLATION_INITS,
    TranslationDataArguments,
    build_translation_model,
    gradinit_batches,
    load_translation_data,
    translation_loss,
)

__all__ = [
    "CARD_FILE",
    "TASKS",
    "HubPushError",
    "InitCheckpointArguments",
    "InitCheckpointOutput",
    "OutputDirectoryExistsError",
    "check_output_dir",
    "format_scale_table",
    "init_checkpoint",
    "load_gradinit_result",
    "push_checkpoint",
    "save_gradinit_checkpoint",
]

logger = logging.getLogger("hf_gradinit")

CARD_FILE = "README.md"
WEIGHTS_FILES = ("model.safetensors", "model.safetensors.index.json")
#: `--task` values: which auto class builds a model from a config. Only `seq2seq` has a data pipeline here.
TASKS = ("seq2seq", "causal-lm", "masked-lm")
_TASK_ARCHITECTURES = {
    "seq2seq": MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    "causal-lm": MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    "masked-lm": MODEL_FOR_MASKED_LM_MAPPING_NAMES,
}


def _connection_errors() -> tuple[type[BaseException], ...]:
    """Errors meaning "the Hub cannot be reached": offline mode, sockets, and the HTTP client's transport errors."""
    errors: list[type[BaseException]] = [OfflineModeIsEnabled, ConnectionError, TimeoutError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "ConnectionError")):
        try:
            errors.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):  # the HTTP client huggingface_hub uses depends on its version
            continue
    return tuple(errors)


_CONNECTION_ERRORS = _connection_errors()


class HubPushError(RuntimeError):
    """A push failed (no network, offline mode, not logged in, refused); the local checkpoint is complete."""


class OutputDirectoryExistsError(FileExistsError):
    """The output directory exists and is not empty, and `overwrite` was not given."""


# -- the arguments of `hf-gradinit init` -------------------------------------------------------------------------------


@dataclass
class InitCheckpointArguments:
    """What `init_checkpoint` builds and where it writes it (data: `TranslationDataArguments`; GradInit:
    `GradInitArguments`)."""

    output_dir: str = field(
        metadata={"help": "Directory to write the checkpoint to (created; must be absent or empty, or --overwrite)."}
    )
    model: str = field(
        default="small",
        metadata={
            "help": f"A Post-LN preset ({', '.join(POST_LN_PRESETS)}), or a seq2seq model config: a local config "
            "JSON file, a directory with config.json, or a Hub model id (from the local cache when offline)."
        },
    )
    task: Literal["seq2seq", "causal-lm", "masked-lm"] | None = field(
        default=None,
        metadata={
            "help": "Auto class for a config: 'seq2seq' (AutoModelForSeq2SeqLM), 'causal-lm' or 'masked-lm'. "
            "Default: from the config's architectures / is_encoder_decoder. Only seq2seq (translation) has a data "
            "pipeline in `init`; presets are always seq2seq."
        },
    )
    init: Literal["fairseq", "hf"] | None = field(
        default=None,
        metadata={
            "help": "Initialisation before GradInit: 'fairseq' (Xavier, embeddings N(0, d^-1/2)) or 'hf' "
            "(N(0, 0.02)). Default: 'fairseq' for presets (as train_mt.py), 'hf' for configs."
        },
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "Use this saved tokenizer (path or Hub id) instead of training a joint BPE."}
    )
    bpe_vocab_size: int = field(default=8000, metadata={"help": "Size of the joint BPE vocabulary to train."})
    max_tokens: int = field(
        default=4096, metadata={"help": "Padded tokens per GradInit batch (fairseq --max-tokens), as in training."}
    )
    optimizer: str = field(
        default="adamw",
        metadata={
            "help": "Optimizer the model will be trained with ('adamw', 'adam', 'sgd', or a Trainer `optim` name): "
            "GradInit optimises its first step."
        },
    )
    lr: float = field(
        default=5e-4,
        metadata={
            "help": "Peak learning rate the model will be trained with; GradInit's eta is 2 x lr for Adam-like "
            "optimizers, lr for SGD (hf_gradinit.defaults)."
        },
    )
    weight_decay: float = field(default=0.0, metadata={"help": "Weight decay of that training."})
    max_steps: int = field(
        default=100_000,
        metadata={
            "help": "Planned training updates; sizes GradInit as train_mt.py does (iterations = min(780, "
            "max_steps / 2), scale_lr scaled to match). Explicit --gradinit_* arguments win."
        },
    )
    label_smoothing: float = field(
        default=0.1, metadata={"help": "Label smoothing of the loss GradInit optimises (the training loss)."}
    )
    seed: int = field(
        default=0,
        metadata={"help": "Seed of the model's initialisation, the batch order and (unless --gradinit_seed) GradInit."},
    )
    overwrite: bool = field(
        default=False,
        metadata={"help": "Replace a non-empty output_dir; the old one is removed only once the new one is complete."},
    )
    model_name: str | None = field(
        default=None,
        metadata={
            "help": "Title of the model card and the id in its loading examples. Default: --push_to_hub's repo id, "
            "else the output directory's name."
        },
    )
    license: str | None = field(default=None, metadata={"help": "License id for the model card, e.g. apache-2.0."})
    push_to_hub: str | None = field(
        default=None, metadata={"help": "After writing, upload the checkpoint to this Hub repo id (user/name)."}
    )
    private: bool = field(default=False, metadata={"help": "Create the Hub repo as private (with --push_to_hub)."})
    revision: str | None = field(
        default=None, metadata={"help": "Branch to push to (created if missing; with --push_to_hub). Default: main."}
    )

    def __post_init__(self) -> None:
        if not self.output_dir:
            raise ValueError("output_dir must be a directory path.")
        if self.init is not None and self.init not in TRANSLATION_INITS:
            raise ValueError(f"init must be one of {', '.join(TRANSLATION_INITS)}, got {self.init!r}.")
        if self.task is not None and self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}.")
        if self.bpe_vocab_size < 16:
            raise ValueError(f"bpe_vocab_size must be at least 16, got {self.bpe_vocab_size}.")
        for name in ("max_tokens", "max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}.")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}.")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}.")
        if self.push_to_hub is not None and self.push_to_hub.count("/") > 1:
            raise ValueError(f"push_to_hub must be a repo id 'name' or 'owner/name', got {self.push_to_hub!r}.")
        if (self.private or self.revision) and not self.push_to_hub:
            raise ValueError("private and revision only apply with push_to_hub REPO_ID.")


@dataclass
class InitCheckpointOutput:
    """What `init_checkpoint` made: the directory, the GradInit result, the model and tokenizer, the push."""

    path: Path
    result: GradInitResult
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    commit_url: str | None = None


# -- the `init` flow ---------------------------------------------------------------------------------------------------


def init_checkpoint(
    args: InitCheckpointArguments,
    data_args: TranslationDataArguments | None = None,
    gradinit_args: GradInitArguments | None = None,
    *,
    api: HfApi | None = None,
    progress_bar: bool | None = None,
) -> InitCheckpointOutput:
    """Build a model, run GradInit on training batches, write the checkpoint, and push it if `args.push_to_hub`.

    Data, tokenizer, model and GradInit batches come from `hf_gradinit.translation` and `hf_gradinit.data`, the code
    `train_mt.py` uses, so a checkpoint made here trains there (`--model_name_or_path DIR`) exactly like one made
    with `train_mt.py --gradinit`. The GradInit settings follow the planned run (`config_for_run` of
    `args.optimizer`, `args.lr`, `args.weight_decay` and `args.max_steps`), with GradInit's seed `args.seed`;
    explicit `gradinit_*` arguments win.

    Raises `OutputDirectoryExistsError` before any work if `args.output_dir` is not empty (without `overwrite`), and
    `HubPushError` if the push fails (the checkpoint is then complete on disk: see its message).
    """
    data_args = data_args or TranslationDataArguments()
    gradinit_args = gradinit_args or GradInitArguments(gradinit=True)
    output_dir = check_output_dir(args.output_dir, overwrite=args.overwrite)
    is_preset = args.model in POST_LN_PRESETS
    if is_preset and args.task not in (None, "seq2seq"):
        raise ValueError(f"The preset {args.model!r} is a seq2seq (MarianMTModel) model, not --task {args.task}.")
    model_config = None if is_preset else _load_model_config(args.model)
    task = "seq2seq" if is_preset else (args.task or _infer_task(model_config, args.model))
    if task != "seq2seq":
        raise ValueError(
            f"`init` has a data pipeline for translation (seq2seq) models only; {args.model!r} is a {task} model. "
            "For other models run `hf_gradinit.init_with_gradinit(model, batches, config)` on your own batches, then "
            "`hf_gradinit.hub.save_gradinit_checkpoint(model, result, output_dir, tokenizer=...)`."
        )
    run = TrainingRun(args.optimizer, lr=args.lr, weight_decay=args.weight_decay, max_steps=args.max_steps)
    gradinit_config = gradinit_args.gradinit_config(run)
    if gradinit_args.gradinit_seed is None:
        gradinit_config = dataclasses.replace(gradinit_config, seed=args.seed)

    corpus, data_description = load_translation_data(data_args)
    logger.info("Data: %s", data_description)
    if args.tokenizer:
        tokenizer, tokenizer_description = load_tokenizer(args.tokenizer), f"the tokenizer {args.tokenizer}"
    else:
        tokenizer = train_joint_bpe(corpus, args.bpe_vocab_size)
        tokenizer_description = f"a joint BPE of {len(tokenizer)} tokens trained on the training split"
    tokens = tokenize_translation(
        DatasetDict({"train": corpus["train"]}),  # GradInit needs the training split only
        tokenizer,
        src_lang=data_args.src_lang,
        tgt_lang=data_args.tgt_lang,
        max_length=data_args.max_length,
    )["train"]

    init = args.init or ("fairseq" if is_preset else "hf")
    set_seed(args.seed)
    if is_preset:
        model = build_translation_model(args.model, tokenizer, init=init)
        built = f"preset `{args.model}`"
    else:
        model = _seq2seq_from_config(model_config, tokenizer, vocab_from_tokenizer=not args.tokenizer)
        if init == "fairseq":
            fairseq_init_(model)
        built = f"config {args.model}"
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("Model: %s, %s init, %.2fM trainable parameters", built, init, trainable / 1e6)

    batch_limit = gradinit_args.gradinit_batch_size
    batches = gradinit_batches(
        tokens, tokenizer.pad_token_id, max_tokens=args.max_tokens, max_sentences=batch_limit, seed=args.seed
    )
    loss_fn = partial(translation_loss, label_smoothing=args.label_smoothing)
    result = init_with_gradinit(model, batches, gradinit_config, loss_fn=loss_fn, progress_bar=progress_bar)
    logger.info("GradInit: %s", result.summary())

    sentences = f" and at most {batch_limit} sentences" if batch_limit else ""
    search_data = (
        f"{data_description}. GradInit batches: at most {args.max_tokens} padded tokens{sentences} each, from the "
        f"{len(tokens)} training pairs ({data_args.src_lang}→{data_args.tgt_lang}) tokenised with "
        f"{tokenizer_description}; loss: cross-entropy with label smoothing {args.label_smoothing}. Model: {built}, "
        f"{init} init, seed {args.seed}"
    )
    hub_dataset = data_args.source not in BUILTIN_SOURCES and not Path(data_args.source).exists()
    path = save_gradinit_checkpoint(
        model,
        result,
        output_dir,
        tokenizer=tokenizer,
        overwrite=args.overwrite,
        model_name=args.model_name or args.push_to_hub or output_dir.name,
        pipeline_tag="translation",
        language=[data_args.src_lang, data_args.tgt_lang],
        license=args.license,
        datasets=[data_args.source] if hub_dataset else None,
        tags=["post-ln", "translation"] if is_preset else [model.config.model_type, "translation"],
        search_data=search_data,
    )
    output = InitCheckpointOutput(path=path, result=result, model=model, tokenizer=tokenizer)
    if args.push_to_hub:
        output.commit_url = push_checkpoint(
            path, args.push_to_hub, private=args.private, revision=args.revision, api=api
        )
    return output


def _load_model_config(name: str) -> Any:
    try:
        return AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"--model {name!r} is neither a preset ({', '.join(POST_LN_PRESETS)}) nor a loadable model config (a "
            f"config JSON file with a model_type, a directory with config.json, or a cached Hub id): {error}"
        ) from error


def _infer_task(config: Any, name: str) -> str:
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    for architecture in getattr(config, "architectures", None) or []:
        for task, names in _TASK_ARCHITECTURES.items():
            if architecture in names.values():
                return task
    raise ValueError(
        f"Cannot tell which kind of model the config {name!r} describes (no is_encoder_decoder, no known "
        f"architectures): pass --task ({', '.join(TASKS)})."
    )


def _seq2seq_from_config(config: Any, tokenizer: PreTrainedTokenizerBase, *, vocab_from_tokenizer: bool) -> nn.Module:
    """`AutoModelForSeq2SeqLM.from_config`, with the vocabulary and special ids of `tokenizer`.

    A freshly trained BPE replaces the config's vocabulary (sizes and ids); a given tokenizer must fit in it.
    """
    vocab_keys = [key for key in ("vocab_size", "decoder_vocab_size") if getattr(config, key, None) is not None]
    if vocab_from_tokenizer:
        for key in vocab_keys:
            setattr(config, key, len(tokenizer))
    else:
        too_small = [key for key in vocab_keys if getattr(config, key) < len(tokenizer)]
        if too_small:
            raise ValueError(
                f"The tokenizer has {len(tokenizer)} tokens but the config's {too_small[0]} is "
                f"{getattr(config, too_small[0])}: use a matching tokenizer, or none to train a BPE."
            )
    config.pad_token_id, config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    if vocab_from_tokenizer or getattr(config, "decoder_start_token_id", None) is None:
        config.decoder_start_token_id = tokenizer.pad_token_id
    if getattr(config, "forced_eos_token_id", None) is not None:
        config.forced_eos_token_id = tokenizer.eos_token_id
    return AutoModelForSeq2SeqLM.from_config(config)


# -- writing a checkpoint ----------------------------------------------------------------------------------------------


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
    `result.record_in(model)`), the tokenizer if given, `gradinit_scales.json` (`GradInitResult.save`, with the
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
        result.save(staging / SCALES_FILE)
        result.plot(staging / PLOT_FILE)
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
            scales_plot=PLOT_FILE,
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


# -- pushing -----------------------------------------------------------------------------------------------------------


def push_checkpoint(
    output_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    api: HfApi | None = None,
) -> str | None:
    """Upload a checkpoint directory written by `save_gradinit_checkpoint` to the Hub model repo `repo_id`.

    `api.create_repo(repo_id, private=..., exist_ok=True, repo_type="model")`, then with `revision` `create_branch`
    (exist_ok), then `upload_folder` of the whole directory as one commit. `api` defaults to `HfApi()` (token from
    `hf auth login` / `HF_TOKEN`); pass one to use another endpoint or token, or a fake in tests. Returns the
    commit URL (None if the API returns none). The local directory is only read.

    Raises `ValueError` if the directory is not a complete checkpoint, and `HubPushError` (from the original error)
    when the Hub cannot be reached (offline mode, no network), refuses (not logged in, no access), or fails.
    """
    from . import __version__

    folder = Path(output_dir)
    _check_complete(folder)
    api = api if api is not None else HfApi()
    message = commit_message or f"Upload GradInit-initialised checkpoint (hf-gradinit {__version__})"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        info = api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), revision=revision, commit_message=message, repo_type="model"
        )
    except OfflineModeIsEnabled as error:
        raise _push_error(folder, repo_id, "offline mode is on (HF_HUB_OFFLINE is set)") from error
    except LocalTokenNotFoundError as error:
        raise _push_error(folder, repo_id, "not logged in (run `hf auth login` or set HF_TOKEN)") from error
    except (*_CONNECTION_ERRORS, HfHubHTTPError) as error:
        raise _push_error(folder, repo_id, f"{type(error).__name__}: {error}") from error
    url = getattr(info, "commit_url", None) or (info if isinstance(info, str) else None)
    logger.info("Pushed %s to %s%s", folder, repo_id, f" ({url})" if url else "")
    return url


def _check_complete(folder: Path) -> None:
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a directory: write the checkpoint first (`hf-gradinit init`).")
    missing = [name for name in ("config.json", CARD_FILE) if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in WEIGHTS_FILES):
        missing.append(WEIGHTS_FILES[0])
    if missing:
        raise ValueError(f"{folder} is not a complete checkpoint: missing {', '.join(missing)}.")


def _push_error(folder: Path, repo_id: str, reason: str) -> HubPushError:
    return HubPushError(
        f"Could not push to the Hub repo {repo_id!r}: {reason}. The checkpoint is complete at {folder} and was not "
        f"changed; push it later with `hf-gradinit push {folder} {repo_id}` (or `hf upload {repo_id} {folder}`)."
    )


# -- reading a result back ---------------------------------------------------------------------------------------------


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
