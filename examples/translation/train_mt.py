"""Train a Post-LN Transformer for translation, with or without GradInit, read top to bottom.

    accelerate launch examples/translation/train_mt.py --output_dir runs/demo --gradinit      # one process
    accelerate launch --multi_gpu --num_processes 4 examples/translation/train_mt.py ...       # data parallel
    python examples/translation/train_mt.py --config examples/translation/iwslt14_de_en.yaml   # plain python

Arguments: `--help`, or a YAML file of them (`--config`; command-line arguments override it). The steps: data ->
BPE tokenizer(s) (one joint vocabulary, or with `--shared_vocab false` joint codes and one vocabulary per language)
-> model (preset + fairseq, HF, T-Fixup-style or DeepNet-style init) -> GradInit (optional, before
`accelerator.prepare`, never when resuming) -> training without warmup, with `--max-tokens` batches sharded per rank
(and accumulated over `--gradient_accumulation_steps`) -> validation loss and beam-search BLEU/chrF -> test BLEU of
the final model (and of the best-BLEU one) -> the final model and tokenizer(s) (`save_pretrained`).

BLEU is sacreBLEU on detokenised text. The GradInit paper's ~35-36 on IWSLT'14 is tokenised BLEU (fairseq
`--scoring bleu` on tokenised, BPE-removed text): a different measurement, not comparable.

Output directory: `tokenizer/`, `checkpoints/step_*/` (`accelerator.save_state`, for `--resume`), `metrics.jsonl`,
`training_curves.png`, `gradinit_scales.json`/`.png` (with `--gradinit`), `best/` (with `--eval_every`: the model of
the best validation BLEU) and `final/` (model + tokenizer, loads with `AutoModelForSeq2SeqLM.from_pretrained`; for a
GradInit-initialised model also `gradinit_scales.*` and a `README.md` model card, and `--push_to_hub REPO_ID` uploads
it). With separate vocabularies each of `tokenizer/`, `best/` and `final/` holds the source tokenizer at the top and
the target one in `target_tokenizer/`: `AutoTokenizer.from_pretrained(final)` encodes sources,
`AutoTokenizer.from_pretrained(final, subfolder="target_tokenizer")` decodes translations.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import datasets
import torch
import yaml
from accelerate import Accelerator
from accelerate.optimizer import AcceleratedOptimizer
from accelerate.utils import send_to_device, set_seed
from tqdm.auto import tqdm
from transformers import AutoModelForSeq2SeqLM, HfArgumentParser, get_scheduler

from hf_gradinit import (
    GradInitArguments,
    GradInitResult,
    HubPushError,
    TrainingDetails,
    TrainingRun,
    init_with_gradinit,
    push_checkpoint,
    save_gradinit_checkpoint,
)
from hf_gradinit.result import PLOT_FILE, SCALES_FILE
from hf_gradinit.translation import (
    POST_LN_PRESETS,
    TARGET_TOKENIZER_DIR,
    TRANSLATION_INITS,
    TrainingDivergedError,
    TranslationDataArguments,
    average_checkpoints,
    build_optimizer,
    build_translation_model,
    evaluate_translation,
    freeze_sinusoidal_positions_,
    full_state_dict,
    gradinit_batches,
    load_sharded_state,
    load_tokenizers,
    load_translation_data,
    max_tokens_loader,
    plot_training_curves,
    save_sharded_state,
    shard_translation_model,
    tokenize_translation,
    train_joint_bpe,
    train_separate_bpe,
    translation_loss,
)

logger = logging.getLogger("train_mt")
SCHEDULERS = ("linear", "inverse_sqrt", "constant")
BEST_FILE = "best_validation.json"  # in best/: the step and scores that made it the best


@dataclass
class ModelArguments:
    preset: str = field(
        default="small", metadata={"help": f"Post-LN architecture, one of: {', '.join(POST_LN_PRESETS)}."}
    )
    init: Literal["fairseq", "hf", "tfixup", "deepnet"] = field(
        default="fairseq",
        metadata={
            "help": "Initialisation: 'fairseq' (Xavier, embeddings N(0, d^-1/2)), 'hf' (N(0, 0.02)), or fairseq's "
            "with depth-scaled factors: 'tfixup' (T-Fixup's) or 'deepnet' (DeepNet's beta). The last two are variants "
            "on this Post-LN model (LayerNorm kept, no residual re-weighting), not the published architectures."
        },
    )
    dropout: float | None = field(default=None, metadata={"help": "Dropout; default: the preset's."})
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Start from this saved model (and its tokenizer) instead of a freshly built preset."},
    )
    tokenizer_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Use this saved tokenizer instead of training a BPE (with --shared_vocab false, the target one "
            "is read from its target_tokenizer/ subfolder)."
        },
    )
    shared_vocab: bool = field(
        default=True,
        metadata={
            "help": "true: one joint BPE vocabulary, one embedding for encoder, decoder and output. false: fairseq's "
            "IWSLT'14 layout: joint BPE codes, one vocabulary per language (the tokens its training text uses), the "
            "decoder's input and output embeddings tied, the encoder's separate."
        },
    )
    bpe_vocab_size: int = field(
        default=8000,
        metadata={"help": "Size of the joint BPE to train (with --shared_vocab false each language keeps a part)."},
    )

    def __post_init__(self) -> None:
        if self.preset not in POST_LN_PRESETS:
            raise ValueError(f"--preset must be one of {', '.join(POST_LN_PRESETS)}, got {self.preset!r}.")
        if self.init not in TRANSLATION_INITS:
            raise ValueError(f"--init must be one of {', '.join(TRANSLATION_INITS)}, got {self.init!r}.")
        if self.bpe_vocab_size < 16:
            raise ValueError(f"--bpe_vocab_size must be at least 16, got {self.bpe_vocab_size}.")


@dataclass
class TrainArguments:
    output_dir: str | None = field(
        default=None, metadata={"help": "Directory for the tokenizer, checkpoints, metrics and final model (required)."}
    )
    resume: bool = field(
        default=False, metadata={"help": "Continue from the latest checkpoint in output_dir (never re-runs GradInit)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the model init and the batch order."})
    max_steps: int = field(default=3000, metadata={"help": "Number of optimizer updates."})
    max_tokens: int = field(
        default=4096, metadata={"help": "Padded tokens per batch in each process (fairseq --max-tokens)."}
    )
    gradient_accumulation_steps: int = field(
        default=1,
        metadata={
            "help": "Batches per optimizer update (fairseq --update-freq), accumulated with accelerate. Each batch's "
            "loss is its mean over target tokens, divided by N: an update's gradient is the mean of the N batch means "
            "(each batch weighs the same). fairseq sums the token losses of the whole update and divides by its "
            "target tokens (each token weighs the same); with --max_tokens batches of similar size the two nearly "
            "coincide. --max_steps counts updates; GradInit still takes one batch per iteration."
        },
    )
    optimizer: Literal["adamw", "adam", "sgd"] = field(
        default="adamw",
        metadata={
            "help": "'adamw' (decoupled --weight_decay, what fairseq's adam does), 'adam' (no weight decay) or 'sgd' "
            "(--momentum; --weight_decay as L2). GradInit optimises the first step of this optimizer."
        },
    )
    lr: float = field(default=5e-4, metadata={"help": "Peak learning rate."})
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.98], metadata={"help": "Adam(W) betas."})
    momentum: float = field(default=0.0, metadata={"help": "SGD momentum (with --optimizer sgd)."})
    lr_scheduler: str = field(
        default="linear",
        metadata={
            "help": "'linear' (to 0 at max_steps), 'inverse_sqrt' (transformers': lr/sqrt(step/timescale) with "
            "timescale = warmup_steps or 10000) or 'constant'."
        },
    )
    warmup_steps: int = field(default=0, metadata={"help": "Linear warmup steps; 0 (the GradInit setting): none."})
    weight_decay: float = field(
        default=0.0, metadata={"help": "Decoupled weight decay (AdamW) on matrices and embeddings."}
    )
    label_smoothing: float = field(default=0.1, metadata={"help": "Label smoothing of the cross-entropy."})
    clip_norm: float = field(default=0.0, metadata={"help": "Clip the gradient's L2 norm to this; 0: no clipping."})
    mixed_precision: Literal["no", "bf16", "fp16"] = field(
        default="no",
        metadata={
            "help": "Autocast precision: 'no', 'bf16' or 'fp16' (fp16 needs a GPU; an update its loss scaler skips "
            "on overflowing gradients is not counted and does not step the schedule). Under bf16/fp16 batches are "
            "padded to a multiple of 8 tokens (which can take a batch a little over --max_tokens)."
        },
    )
    log_every: int = field(
        default=50,
        metadata={
            "help": "Every this many updates log the mean training loss, the gradient norm before clipping (gnorm), "
            "target tokens per second (wps) and per update (wpb)."
        },
    )
    eval_every: int = field(
        default=0,
        metadata={
            "help": "Evaluate every this many updates and keep the model with the best validation BLEU in best/ "
            "(its test scores are reported at the end); 0: evaluate only at the end."
        },
    )
    save_every: int = field(
        default=1000, metadata={"help": "Save a checkpoint every this many steps (and always at the end)."}
    )
    keep_checkpoints: int = field(default=5, metadata={"help": "Keep this many most recent checkpoints."})
    fsdp2: bool = field(
        default=False,
        metadata={
            "help": "Shard the model with FSDP2 (torch's fully_shard; CPUs with gloo too): every encoder/decoder "
            "layer its own unit, embeddings and output in the root. GradInit then runs on the shards (constraint "
            "steps by finite differences), checkpoints are distributed checkpoints, and every process evaluates "
            "every sentence (in lockstep)."
        },
    )
    average_last: int = field(
        default=0, metadata={"help": "Final model = mean of the last N checkpoints (0 or 1: the last model)."}
    )
    max_eval_sentences: int | None = field(
        default=None,
        metadata={
            "help": "Translate at most this many validation/test sentences for BLEU (beam search is slow). BLEU is "
            "sacreBLEU on detokenised text, not comparable with the GradInit paper's ~35-36 (tokenised BLEU: fairseq "
            "--scoring bleu on tokenised, BPE-removed text)."
        },
    )
    num_beams: int = field(default=5, metadata={"help": "Beam size; max length is 1.2 * source length + 10."})
    eval_batch_sentences: int = field(default=64, metadata={"help": "Sentences per evaluation batch."})
    push_to_hub: str | None = field(
        default=None,
        metadata={
            "help": "Upload final/ (model, tokenizer, GradInit record, model card) to this Hub repo id at the end; "
            "needs a GradInit-initialised model (--gradinit, or --model_name_or_path of one)."
        },
    )
    hub_private: bool = field(default=False, metadata={"help": "Create the --push_to_hub repo as private."})

    def __post_init__(self) -> None:
        if not self.output_dir:
            raise ValueError("--output_dir is required.")
        if self.lr_scheduler not in SCHEDULERS:
            raise ValueError(f"--lr_scheduler must be one of {', '.join(SCHEDULERS)}, got {self.lr_scheduler!r}.")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"--mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}.")
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}.")
        if self.optimizer == "adam" and self.weight_decay:
            raise ValueError("--optimizer adam takes no --weight_decay: use --optimizer adamw for decoupled decay.")
        if self.momentum and self.optimizer != "sgd":
            raise ValueError("--momentum applies to --optimizer sgd only.")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"--momentum must be in [0, 1), got {self.momentum}.")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"--adam_betas must be two numbers in [0, 1), got {self.adam_betas}.")
        for name in (
            "max_steps",
            "max_tokens",
            "gradient_accumulation_steps",
            "log_every",
            "save_every",
            "keep_checkpoints",
            "num_beams",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"--label_smoothing must be in [0, 1), got {self.label_smoothing}.")
        if self.eval_every < 0:
            raise ValueError(f"--eval_every must be >= 0 (0: only at the end), got {self.eval_every}.")
        if self.hub_private and not self.push_to_hub:
            raise ValueError("--hub_private only applies with --push_to_hub REPO_ID.")
        if self.fsdp2 and self.average_last > 1:
            raise ValueError("--average_last averages unsharded checkpoints: not with --fsdp2.")
        if self.average_last > self.keep_checkpoints:
            raise ValueError(
                f"--average_last {self.average_last} needs --keep_checkpoints >= {self.average_last} "
                f"(got {self.keep_checkpoints})."
            )


def parse_arguments(argv: list[str] | None) -> tuple[ModelArguments, TranslationDataArguments, TrainArguments, Any]:
    """Command-line arguments on top of an optional `--config file.yaml` holding the same names."""
    parser = HfArgumentParser((ModelArguments, TranslationDataArguments, TrainArguments, GradInitArguments))
    parser.add_argument("--config", help="YAML file of arguments; those given on the command line override it.")
    config_file = argparse.ArgumentParser(add_help=False)
    config_file.add_argument("--config")
    path = config_file.parse_known_args(argv)[0].config
    if path:
        values = yaml.safe_load(Path(path).read_text()) or {}
        unknown = sorted(set(values) - {action.dest for action in parser._actions})
        if unknown:
            parser.error(f"{path}: unknown argument(s) {unknown}")
        parser.set_defaults(**values)
    *parsed, _config = parser.parse_args_into_dataclasses(args=argv)
    return tuple(parsed)


def save_tokenizers(directory: Path, tokenizer: Any, target_tokenizer: Any) -> None:
    """The source tokenizer in `directory`, a separate target one in its `target_tokenizer/`."""
    tokenizer.save_pretrained(directory)
    if target_tokenizer is not tokenizer:
        target_tokenizer.save_pretrained(directory / TARGET_TOKENIZER_DIR)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train (or resume) one model; returns a summary of the run (losses, BLEU, wall time, steps)."""
    model_args, data_args, args, gradinit_args = parse_arguments(argv)
    if args.push_to_hub and not (gradinit_args.gradinit or model_args.model_name_or_path):
        raise ValueError("--push_to_hub publishes GradInit-initialised models: add --gradinit.")
    started = time.perf_counter()

    # -------------------------------------------------------------------------------------------- set-up
    # Without CUDA, say so: only then does accelerate treat a torchrun/`accelerate launch` job as multi-CPU (gloo)
    # rather than as several independent single processes.
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        cpu=not torch.cuda.is_available(),
    )
    if args.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        raise ValueError("--mixed_precision fp16 needs a GPU; use 'bf16' or 'no' on CPU.")
    is_main, world, rank = accelerator.is_main_process, accelerator.num_processes, accelerator.process_index
    logging.basicConfig(format="%(asctime)s | %(name)s | %(message)s", datefmt="%H:%M:%S", level=logging.WARNING)
    for name in ("train_mt", "hf_gradinit"):  # progress lines from the main process only
        logging.getLogger(name).setLevel(logging.INFO if is_main else logging.WARNING)
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)  # "Removed shared tensor": tied embeddings
    datasets.disable_progress_bars()
    out = Path(args.output_dir)
    checkpoints_dir, metrics_path, best_dir = out / "checkpoints", out / "metrics.jsonl", out / "best"
    saved = sorted(checkpoints_dir.glob("step_*"))
    if saved and not args.resume:
        raise FileExistsError(f"{out} already holds checkpoints: pass --resume to continue, or a new --output_dir.")
    if args.resume and not saved:
        raise FileNotFoundError(f"--resume: no checkpoint in {checkpoints_dir} to resume from.")
    out.mkdir(parents=True, exist_ok=True)
    logger.info("Processes: %d (%s), device %s", world, accelerator.distributed_type, accelerator.device)
    pad_multiple = 8 if args.mixed_precision != "no" else None  # tensor-core friendly shapes under autocast

    def record(**values: Any) -> None:
        if is_main:
            with metrics_path.open("a") as handle:
                handle.write(json.dumps(values) + "\n")

    # -------------------------------------------------------------------------------------------- data
    corpus, description = load_translation_data(data_args)
    logger.info("Data: %s", description)

    # -------------------------------------------------------------------------------------------- tokenizer(s)
    # One joint BPE vocabulary, or (--shared_vocab false) joint BPE codes with one vocabulary per language; a separate
    # target tokenizer lives in the `target_tokenizer/` subfolder of tokenizer/, best/ and final/.
    tokenizer_dir = out / "tokenizer"
    with accelerator.main_process_first():  # the main process writes tokenizer/, the others then read it
        if args.resume or not is_main:
            tokenizer, target_tokenizer = load_tokenizers(tokenizer_dir, model_args.shared_vocab)
        else:
            given = model_args.tokenizer_name_or_path or model_args.model_name_or_path
            if given:
                tokenizer, target_tokenizer = load_tokenizers(given, model_args.shared_vocab)
            elif model_args.shared_vocab:
                tokenizer = target_tokenizer = train_joint_bpe(corpus, model_args.bpe_vocab_size)
            else:
                tokenizer, target_tokenizer = train_separate_bpe(
                    corpus, model_args.bpe_vocab_size, src_lang=data_args.src_lang, tgt_lang=data_args.tgt_lang
                )
            save_tokenizers(tokenizer_dir, tokenizer, target_tokenizer)
    logger.info(
        "Tokenizer: %s (%s)",
        f"{len(tokenizer)} tokens, shared"
        if model_args.shared_vocab
        else f"{len(tokenizer)} source / {len(target_tokenizer)} target tokens, joint BPE codes",
        "loaded" if args.resume else "saved",
    )
    tokens = tokenize_translation(
        corpus,
        tokenizer,
        target_tokenizer=target_tokenizer,
        src_lang=data_args.src_lang,
        tgt_lang=data_args.tgt_lang,
        max_length=data_args.max_length,
    )
    references = {split: [pair[data_args.tgt_lang] for pair in corpus[split]["translation"]] for split in corpus}

    # -------------------------------------------------------------------------------------------- model
    set_seed(args.seed)
    overrides = {} if model_args.dropout is None else {"dropout": model_args.dropout}
    if model_args.model_name_or_path:
        model = AutoModelForSeq2SeqLM.from_pretrained(model_args.model_name_or_path, **overrides)
        shared = getattr(model.config, "share_encoder_decoder_embeddings", True)
        if shared != model_args.shared_vocab:
            layout = "one shared vocabulary" if shared else "separate vocabularies"
            raise ValueError(
                f"{model_args.model_name_or_path} has {layout}: pass --shared_vocab {str(shared).lower()}."
            )
        freeze_sinusoidal_positions_(model)  # transformers 5.x makes them trainable on loading
        init_used = f"loaded from {model_args.model_name_or_path}"
    else:
        model = build_translation_model(
            model_args.preset, tokenizer, target_tokenizer=target_tokenizer, init=model_args.init, **overrides
        )
        init_used = f"{model_args.init} init, preset {model_args.preset}"
    model.to(accelerator.device)
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if args.fsdp2:
        shard_translation_model(model)
        logger.info("FSDP2: every layer sharded over %d processes", world)
    logger.info("Model: %s, %.2fM trainable parameters", init_used, parameters / 1e6)

    # -------------------------------------------------------------------------------------------- optimizer
    optimizer = build_optimizer(
        model, args.optimizer, lr=args.lr, weight_decay=args.weight_decay, betas=args.adam_betas, momentum=args.momentum
    )

    # -------------------------------------------------------------------------------------------- GradInit
    loss_fn = partial(translation_loss, label_smoothing=args.label_smoothing)
    gradinit_ran = False
    if args.resume:
        if gradinit_args.gradinit:
            logger.info("GradInit: not run again (resuming: the checkpoint holds the initialised weights).")
    elif gradinit_args.gradinit and GradInitResult.from_model(model) and not gradinit_args.gradinit_force:
        logger.info("GradInit: skipped, the model is already GradInit-initialised (--gradinit_force to rerun).")
    elif gradinit_args.gradinit:
        # What GradInit optimises follows this run: the optimizer just built, its lr and decay, the run's length.
        gradinit_config = gradinit_args.gradinit_config(
            TrainingRun.from_optimizer(optimizer, args.max_steps), fully_sharded=args.fsdp2
        )
        batches = gradinit_batches(  # one batch per iteration, also with gradient accumulation
            tokens["train"],
            tokenizer,
            max_tokens=args.max_tokens,
            max_sentences=gradinit_args.gradinit_batch_size,
            seed=args.seed,
            num_replicas=world,
            rank=rank,
            pad_to_multiple_of=pad_multiple,
        )
        result = init_with_gradinit(model, batches, gradinit_config, loss_fn=loss_fn)
        gradinit_ran = True
        logger.info("GradInit: %s", result.summary())
        if is_main:
            result.save(out / SCALES_FILE)
            result.plot(out / PLOT_FILE)
    else:
        logger.info("GradInit: off")

    # -------------------------------------------------------------------------------------------- schedule
    scheduler = get_scheduler(args.lr_scheduler, optimizer, args.warmup_steps, args.max_steps)
    if args.fsdp2:  # FSDP2 already shards and synchronises: no DDP wrapper, and the state is saved by each rank
        optimizer = AcceleratedOptimizer(optimizer, device_placement=False)  # steps once per accumulated update
    else:
        model, optimizer = accelerator.prepare(model, optimizer)  # the loaders are sharded by us, not by accelerate
    # Not prepared: accelerate's scheduler wrapper steps once per process per update; ours steps once per update, in
    # the loop below, and is saved with the state.
    accelerator.register_for_checkpointing(scheduler)

    # -------------------------------------------------------------------------------------------- resume
    # `batch_in_epoch` counts batches (micro-batches), `step` updates; checkpoints are taken after an update, and
    # `accelerator.load_state` restores its micro-batch counter, so accumulation resumes on an update boundary.
    step, epoch, batch_in_epoch, skipped_updates = 0, 0, 0, 0
    if args.resume:
        accelerator.load_state(saved[-1])
        if args.fsdp2:
            load_sharded_state(model, optimizer.optimizer, saved[-1])
        position = json.loads((saved[-1] / "trainer_state.json").read_text())
        step, epoch, batch_in_epoch = position["step"], position["epoch"], position["batch_in_epoch"]
        skipped_updates = position.get("skipped_updates", 0)
        if (out / SCALES_FILE).exists():  # keep config.gradinit in the final model's config
            GradInitResult.load(out / SCALES_FILE).record_in(accelerator.unwrap_model(model))
        logger.info("Resumed from %s at step %d (epoch %d)", saved[-1], step, epoch)
    last_good = saved[-1] if args.resume else None
    best = json.loads((best_dir / BEST_FILE).read_text()) if args.resume and (best_dir / BEST_FILE).exists() else None
    record(event="resume" if args.resume else "start", step=step, world_size=world, init=init_used,
           gradinit_ran=gradinit_ran, data=description, vocab_size=len(tokenizer),
           target_vocab_size=len(target_tokenizer), parameters=parameters,
           gradient_accumulation_steps=args.gradient_accumulation_steps)  # fmt: skip

    def save_checkpoint() -> Path:
        directory = checkpoints_dir / f"step_{step:08d}"
        accelerator.save_state(directory)
        if args.fsdp2:
            save_sharded_state(model, optimizer.optimizer, directory)
        if is_main:
            position = {
                "step": step,
                "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "skipped_updates": skipped_updates,
            }
            (directory / "trainer_state.json").write_text(json.dumps(position) + "\n")
            for old in sorted(checkpoints_dir.glob("step_*"))[: -args.keep_checkpoints]:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()
        return directory

    def evaluate(split: str, scored_model: Any = None, dropout_loss: bool = False) -> dict[str, float]:
        with accelerator.autocast():
            return evaluate_translation(
                accelerator.unwrap_model(model) if scored_model is None else scored_model,
                tokens[split],
                references[split],
                tokenizer,
                target_tokenizer=target_tokenizer,
                label_smoothing=args.label_smoothing,
                bleu_sentences=args.max_eval_sentences,
                num_beams=args.num_beams,
                batch_sentences=args.eval_batch_sentences,
                pad_to_multiple_of=pad_multiple,
                dropout_loss=dropout_loss,
                dropout_seed=args.seed,
                split_across_processes=not args.fsdp2,
            )

    def log_validation(dropout_loss: bool = False) -> dict[str, float]:
        scores = evaluate("validation", dropout_loss=dropout_loss)
        record(step=step, **{f"valid_{name}": value for name, value in scores.items()})
        logger.info(
            "step %d | valid loss %.3f | BLEU %.2f | chrF %.2f (%d sentences)",
            step, scores["loss"], scores["bleu"], scores["chrf"], scores["bleu_sentences"],
        )  # fmt: skip
        return scores

    def unsharded_model() -> Any:
        """The model to save: itself, or under FSDP2 an unsharded copy on the main process (None elsewhere; every
        process must call this, as it all-gathers)."""
        if not args.fsdp2:
            return accelerator.unwrap_model(model)
        state = full_state_dict(model)
        if not is_main:
            return None
        plain = AutoModelForSeq2SeqLM.from_config(model.config)
        plain.load_state_dict(state)
        freeze_sinusoidal_positions_(plain)
        return plain

    def keep_if_best(scores: dict[str, float]) -> None:
        """With --eval_every: the model of the best validation BLEU so far goes to best/ (written aside, then moved)."""
        nonlocal best
        if not args.eval_every or (best is not None and scores["bleu"] <= best["valid_bleu"]):
            return
        best = {"step": step, "valid_bleu": scores["bleu"], "valid_chrf": scores["chrf"], "valid_loss": scores["loss"]}
        best_model = unsharded_model()
        if is_main:
            staging = out / ".best.incomplete"
            shutil.rmtree(staging, ignore_errors=True)
            best_model.generation_config.num_beams = args.num_beams
            best_model.save_pretrained(staging)
            save_tokenizers(staging, tokenizer, target_tokenizer)
            (staging / BEST_FILE).write_text(json.dumps(best) + "\n")
            shutil.rmtree(best_dir, ignore_errors=True)
            staging.rename(best_dir)
        record(event="best", **{f"best_{name}": value for name, value in best.items()})
        accelerator.wait_for_everyone()

    # -------------------------------------------------------------------------------------------- training
    # One iteration per batch; accelerate's `accumulate` syncs gradients and lets the optimizer step only on every
    # --gradient_accumulation_steps-th batch. `step` counts the updates the optimizer took.
    model.train()
    progress = tqdm(total=args.max_steps, initial=step, desc="train", disable=not is_main or not sys.stderr.isatty())
    window = dict.fromkeys(("loss", "batches", "updates", "tokens", "gnorm", "seconds"), 0.0)
    train_loss = math.nan
    tick = time.perf_counter()
    while step < args.max_steps:
        loader = max_tokens_loader(
            tokens["train"],
            tokenizer,
            max_tokens=args.max_tokens,
            seed=args.seed,
            epoch=epoch,
            skip_batches=batch_in_epoch,
            num_replicas=world,
            rank=rank,
            pad_to_multiple_of=pad_multiple,
        )
        for batch in loader:
            batch = send_to_device(batch, accelerator.device)
            with accelerator.accumulate(model):
                loss = loss_fn(model, batch)
                target_tokens = (batch["labels"] != -100).sum().to(loss.dtype)
                # every rank sees every rank's loss (all stop together) and target tokens (for the throughput)
                losses, batch_tokens = accelerator.gather(torch.stack([loss.detach(), target_tokens])[None]).unbind(1)
                if not torch.isfinite(losses).all():
                    record(event="diverged", step=step + 1, losses=losses.tolist())
                    where = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was saved yet"
                    raise TrainingDivergedError(
                        f"Training loss is {losses.tolist()} at step {step + 1}: the run diverged and was stopped; "
                        f"{where}. Try --gradinit, a lower --lr, --warmup_steps or --clip_norm."
                    )
                accelerator.backward(loss)  # divides the loss by --gradient_accumulation_steps
                if accelerator.sync_gradients:  # the norm before clipping; with no limit (inf) it is only measured
                    gnorm = accelerator.clip_grad_norm_(model.parameters(), args.clip_norm or math.inf)
                optimizer.step()  # a no-op until the last batch of the update
                optimizer.zero_grad(set_to_none=True)
            batch_in_epoch += 1
            window["loss"] += losses.mean().item()
            window["batches"] += 1
            window["tokens"] += batch_tokens.sum().item()
            now = time.perf_counter()
            window["seconds"], tick = window["seconds"] + now - tick, now
            if not accelerator.sync_gradients:
                continue
            if accelerator.optimizer_step_was_skipped:  # fp16 overflow: no update, so the schedule waits too
                skipped_updates += 1
                record(event="skipped_update", step=step, skipped_updates=skipped_updates)
                continue
            scheduler.step()
            step += 1
            window["updates"] += 1
            window["gnorm"] += gnorm.item()
            progress.update()
            progress.set_postfix(loss=f"{losses.mean().item():.3f}")

            if step % args.log_every == 0 or step == args.max_steps:
                train_loss = window["loss"] / window["batches"]
                logged = {
                    "train_loss": train_loss,
                    "lr": scheduler.get_last_lr()[0],
                    "gnorm": window["gnorm"] / window["updates"],  # before clipping
                    "wps": window["tokens"] / window["seconds"],  # target tokens per second, all processes
                    "wpb": window["tokens"] / window["updates"],  # target tokens per update, all processes
                }
                record(step=step, epoch=epoch, **logged)
                logger.info(
                    "step %d/%d | train loss %.3f | lr %.2e | gnorm %.3f | wps %.0f | wpb %.0f",
                    step, args.max_steps, *logged.values(),
                )  # fmt: skip
                window = dict.fromkeys(window, 0.0)
            if args.eval_every and step % args.eval_every == 0 and step < args.max_steps:
                keep_if_best(log_validation())
            if step % args.save_every == 0 or step == args.max_steps:
                last_good = save_checkpoint()
            tick = time.perf_counter()  # evaluation and checkpoints are not training time
            if step >= args.max_steps:
                break
        else:
            epoch, batch_in_epoch = epoch + 1, 0
    progress.close()

    # -------------------------------------------------------------------------------------------- final model
    final_model = unsharded_model()
    if args.average_last > 1:
        averaged = sorted(checkpoints_dir.glob("step_*"))[-args.average_last :]
        average_checkpoints(final_model, averaged)
        logger.info("Final model: the mean of %s", ", ".join(path.name for path in averaged))
    ranks_identical = None  # FSDP2: each process holds its own shards, there are no replicas to compare
    if not args.fsdp2:
        fingerprints = accelerator.gather(
            torch.stack([p.detach().double().sum() for p in final_model.parameters()])[None]
        )
        ranks_identical = bool((fingerprints == fingerprints[0]).all())  # DDP kept the replicas in sync
    # Validation loss in eval mode and, with dropout on, as training measures it: a stalled run can show both.
    valid = log_validation(dropout_loss=True)
    keep_if_best(valid)
    test = evaluate("test")
    record(
        step=step,
        **{f"test_{name}": value for name, value in test.items()},
        averaged_checkpoints=max(args.average_last, 1),
        ranks_identical=ranks_identical,
    )
    logger.info("step %d | test loss %.3f | BLEU %.2f | chrF %.2f", step, test["loss"], test["bleu"], test["chrf"])
    best_test = test
    if best is not None and best["step"] != step:  # the best model is an earlier one: test it too
        accelerator.wait_for_everyone()
        best_test = evaluate("test", AutoModelForSeq2SeqLM.from_pretrained(best_dir).to(accelerator.device))
    if best is not None:
        record(
            step=step,
            **{f"best_{name}": value for name, value in best.items()},
            **{f"best_test_{name}": value for name, value in best_test.items()},
        )
        logger.info(
            "best model (step %d, valid BLEU %.2f) | test loss %.3f | BLEU %.2f | chrF %.2f",
            best["step"], best["valid_bleu"], best_test["loss"], best_test["bleu"], best_test["chrf"],
        )  # fmt: skip
    if is_main:
        final_model.generation_config.num_beams = args.num_beams
        # The record of this run's GradInit (with its history), or of the one the loaded model went through.
        gradinit = GradInitResult.load(out / SCALES_FILE) if (out / SCALES_FILE).exists() else None
        gradinit = gradinit or GradInitResult.from_model(final_model)
        if gradinit is None:
            final_model.save_pretrained(out / "final")
            save_tokenizers(out / "final", tokenizer, target_tokenizer)
        else:  # the same checkpoint writer and model card as `hf-gradinit init`, with the training that followed
            training = TrainingDetails(
                hyperparameters={**vars(args), "processes": world, "init": init_used},
                eval_results={
                    **{f"valid_{k}": v for k, v in valid.items()},
                    **{f"test_{k}": v for k, v in test.items()},
                },
            )
            save_gradinit_checkpoint(
                final_model,
                gradinit,
                out / "final",
                tokenizer=tokenizer,
                extra_tokenizers=None if target_tokenizer is tokenizer else {TARGET_TOKENIZER_DIR: target_tokenizer},
                overwrite=True,  # final/ is this run's own output (a resumed run writes it again)
                training=training,
                model_name=args.push_to_hub or out.name,
                pipeline_tag="translation",
                language=[data_args.src_lang, data_args.tgt_lang],
                tags=["post-ln", "translation"],
                search_data=f"training batches of this run; {description}",
            )
        plot_training_curves(metrics_path, out / "training_curves.png")
        logger.info("Saved %s (model + tokenizer), %s, %s", out / "final", metrics_path, out / "training_curves.png")
        if args.push_to_hub:
            commit = push_checkpoint(out / "final", args.push_to_hub, private=args.hub_private)
            logger.info("Pushed %s to %s (%s)", out / "final", args.push_to_hub, commit)
    accelerator.wait_for_everyone()
    return {
        "train_loss": train_loss,
        "valid_loss": valid["loss"],
        "valid_loss_dropout": valid["loss_dropout"],
        "valid_bleu": valid["bleu"],
        "test_bleu": test["bleu"],
        "test_chrf": test["chrf"],
        "best_step": None if best is None else best["step"],
        "best_test_bleu": None if best is None else best_test["bleu"],
        "steps": step,
        "skipped_updates": skipped_updates,
        "world_size": world,
        "gradinit_ran": gradinit_ran,
        "wall_time_s": time.perf_counter() - started,
    }


if __name__ == "__main__":
    try:
        main()
    except (TrainingDivergedError, HubPushError, FileExistsError, FileNotFoundError, ValueError) as error:
        sys.exit(f"train_mt.py: error: {error}")
