"""`hf-gradinit init` as a function: data and tokenizer (as `train_mt.py` loads them), a model (a Post-LN preset
or a seq2seq `AutoConfig`), GradInit for the planned run on the shared translation batches, then the checkpoint
writer and, if asked, the Hub push."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from datasets import DatasetDict
from huggingface_hub import HfApi
from torch import nn
from transformers import AutoConfig, AutoModelForSeq2SeqLM, PreTrainedModel, PreTrainedTokenizerBase, set_seed
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
)

from ..core import init_with_gradinit
from ..defaults import TrainingRun
from ..result import GradInitResult
from ..translation import (
    BUILTIN_SOURCES,
    POST_LN_PRESETS,
    TARGET_TOKENIZER_DIR,
    TRANSLATION_INITS,
    TranslationDataArguments,
    apply_translation_init_,
    build_translation_model,
    gradinit_batches,
    load_tokenizers,
    load_translation_data,
    tokenize_translation,
    train_joint_bpe,
    train_separate_bpe,
    translation_loss,
)
from .arguments import GradInitArguments
from .checkpoint import check_output_dir, save_gradinit_checkpoint
from .hub import push_checkpoint

logger = logging.getLogger("hf_gradinit")

#: `--task` values: which auto class builds a model from a config. Only `seq2seq` has a data pipeline here.
TASKS = ("seq2seq", "causal-lm", "masked-lm")


_TASK_ARCHITECTURES = {
    "seq2seq": MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    "causal-lm": MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    "masked-lm": MODEL_FOR_MASKED_LM_MAPPING_NAMES,
}


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
    init: Literal["fairseq", "hf", "tfixup", "deepnet"] | None = field(
        default=None,
        metadata={
            "help": "Initialisation before GradInit: 'fairseq' (Xavier, embeddings N(0, d^-1/2)), 'hf' "
            "(N(0, 0.02)), or fairseq's with T-Fixup's ('tfixup') or DeepNet's ('deepnet') depth-scaled factors "
            "(variants on Post-LN: LayerNorm kept). Default: 'fairseq' for presets (as train_mt.py), 'hf' for configs."
        },
    )
    tokenizer: str | None = field(
        default=None,
        metadata={
            "help": "Use this saved tokenizer (path or Hub id) instead of training a BPE (with --shared_vocab false, "
            "the target one from its target_tokenizer/ subfolder)."
        },
    )
    shared_vocab: bool = field(
        default=True,
        metadata={
            "help": "One vocabulary for both languages, shared embeddings (true), or joint BPE codes with one "
            "vocabulary per language (false: fairseq's IWSLT'14 layout; the target tokenizer is saved in "
            "target_tokenizer/). As train_mt.py --shared_vocab; presets only."
        },
    )
    bpe_vocab_size: int = field(
        default=8000,
        metadata={"help": "Size of the joint BPE to train (with --shared_vocab false each language keeps a part)."},
    )
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
    target_tokenizer: PreTrainedTokenizerBase  # `tokenizer` itself with a shared vocabulary
    commit_url: str | None = None


def init_checkpoint(
    args: InitCheckpointArguments,
    data_args: TranslationDataArguments | None = None,
    gradinit_args: GradInitArguments | None = None,
    *,
    api: HfApi | None = None,
    progress_bar: bool | None = None,
) -> InitCheckpointOutput:
    """Build a model, run GradInit on training batches, write the checkpoint, and push it if `args.push_to_hub`.

    Data, tokenizer, model and GradInit batches come from `hf_gradinit.translation`, the code
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
    if not (is_preset or args.shared_vocab):
        raise ValueError(
            "--shared_vocab false builds a Post-LN preset with separate vocabularies; for a config, describe the "
            "vocabularies in the config itself (vocab_size, decoder_vocab_size, share_encoder_decoder_embeddings)."
        )
    model_config = None if is_preset else _load_model_config(args.model)
    task = "seq2seq" if is_preset else (args.task or _infer_task(model_config, args.model))
    if task != "seq2seq":
        raise ValueError(
            f"`init` has a data pipeline for translation (seq2seq) models only; {args.model!r} is a {task} model. "
            "For other models run `hf_gradinit.init_with_gradinit(model, batches, config)` on your own batches, then "
            "`hf_gradinit.save_gradinit_checkpoint(model, result, output_dir, tokenizer=...)`."
        )
    run = TrainingRun(args.optimizer, lr=args.lr, weight_decay=args.weight_decay, max_steps=args.max_steps)
    gradinit_config = gradinit_args.gradinit_config(run)
    if gradinit_args.gradinit_seed is None:
        gradinit_config = dataclasses.replace(gradinit_config, seed=args.seed)

    corpus, data_description = load_translation_data(data_args)
    logger.info("Data: %s", data_description)
    if args.tokenizer:
        tokenizer, target_tokenizer = load_tokenizers(args.tokenizer, args.shared_vocab)
        tokenizer_description = f"the tokenizer {args.tokenizer}"
    elif args.shared_vocab:
        tokenizer = target_tokenizer = train_joint_bpe(corpus, args.bpe_vocab_size)
        tokenizer_description = f"a joint BPE of {len(tokenizer)} tokens trained on the training split"
    else:
        tokenizer, target_tokenizer = train_separate_bpe(
            corpus, args.bpe_vocab_size, src_lang=data_args.src_lang, tgt_lang=data_args.tgt_lang
        )
        tokenizer_description = (
            f"joint BPE codes trained on the training split, with {len(tokenizer)} source and "
            f"{len(target_tokenizer)} target tokens"
        )
    tokens = tokenize_translation(
        DatasetDict({"train": corpus["train"]}),  # GradInit needs the training split only
        tokenizer,
        target_tokenizer=target_tokenizer,
        src_lang=data_args.src_lang,
        tgt_lang=data_args.tgt_lang,
        max_length=data_args.max_length,
    )["train"]

    init = args.init or ("fairseq" if is_preset else "hf")
    set_seed(args.seed)
    if is_preset:
        model = build_translation_model(args.model, tokenizer, target_tokenizer=target_tokenizer, init=init)
        built = f"preset `{args.model}`"
    else:
        model = _seq2seq_from_config(model_config, tokenizer, vocab_from_tokenizer=not args.tokenizer)
        apply_translation_init_(model, init)
        built = f"config {args.model}"
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("Model: %s, %s init, %.2fM trainable parameters", built, init, trainable / 1e6)

    batch_limit = gradinit_args.gradinit_batch_size
    batches = gradinit_batches(tokens, tokenizer, max_tokens=args.max_tokens, max_sentences=batch_limit, seed=args.seed)
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
        extra_tokenizers=None if target_tokenizer is tokenizer else {TARGET_TOKENIZER_DIR: target_tokenizer},
        overwrite=args.overwrite,
        model_name=args.model_name or args.push_to_hub or output_dir.name,
        pipeline_tag="translation",
        language=[data_args.src_lang, data_args.tgt_lang],
        license=args.license,
        datasets=[data_args.source] if hub_dataset else None,
        tags=["post-ln", "translation"] if is_preset else [model.config.model_type, "translation"],
        search_data=search_data,
    )
    output = InitCheckpointOutput(
        path=path, result=result, model=model, tokenizer=tokenizer, target_tokenizer=target_tokenizer
    )
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
