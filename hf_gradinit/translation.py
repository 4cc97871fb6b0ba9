"""Machine translation with GradInit: the pieces `examples/translation/train_mt.py` and the CLI share.

Building a Post-LN model from a preset and a tokenizer, the data arguments and loading, token-budget batches (for
training and for GradInit), the label-smoothed loss, the optimizer, evaluation (loss, and BLEU /
chrF with sacrebleu on beam-search output, gathered across ranks), checkpoint averaging and the training-curve plot.
Living here rather than in the script means every entry point builds models and batches the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import sacrebleu
import torch
import torch.distributed as dist
import torch.nn.functional as F
from datasets import Dataset, DatasetDict
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader
from transformers import MarianMTModel, PreTrainedTokenizerBase

from .data import MaxTokensBatchSampler, TranslationCollator, example_lengths, load_translation_corpus
from .presets import fairseq_init_, post_ln_config

__all__ = [
    "TRANSLATION_INITS",
    "TrainingDivergedError",
    "TranslationDataArguments",
    "average_checkpoints",
    "build_optimizer",
    "build_translation_model",
    "evaluate_translation",
    "gradinit_batches",
    "load_translation_data",
    "max_tokens_loader",
    "plot_training_curves",
    "translation_loss",
]

TRANSLATION_INITS = ("fairseq", "hf")


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or inf; the run stopped without writing a checkpoint of the broken state."""


@dataclass
class TranslationDataArguments:
    """Where the parallel text comes from and how it is split, tokenised and cut."""

    source: str = field(
        default="auto",
        metadata={
            "help": "Corpus: 'ding' (Ding dictionary sentences, `apt-get install trans-de-en`), 'toy' (generated "
            "grammar, always available), 'auto' (ding if installed, else toy), a local JSONL/TSV/parquet file or "
            "directory with a `translation` column, or a Hub dataset id such as 'wmt/wmt14' (config 'de-en') or "
            "'bbaaaa/iwslt14-de-en' (revision 'refs/convert/parquet')."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset config, e.g. 'de-en'."})
    dataset_revision: str | None = field(
        default=None, metadata={"help": "Hub dataset revision, e.g. 'refs/convert/parquet'."}
    )
    src_lang: str = field(default="de", metadata={"help": "Source language key of the `translation` rows."})
    tgt_lang: str = field(default="en", metadata={"help": "Target language key of the `translation` rows."})
    split_seed: int = field(
        default=0, metadata={"help": "Seed of the fixed train/validation/test split of single-split sources."}
    )
    valid_size: int | None = field(
        default=None,
        metadata={"help": "Validation pairs carved out of train when missing (default: min(1000, 5 percent))."},
    )
    test_size: int | None = field(
        default=None, metadata={"help": "Test pairs carved out of train when missing (default: min(1000, 5 percent))."}
    )
    max_train_pairs: int | None = field(
        default=None, metadata={"help": "Keep a seeded subset of at most this many training pairs."}
    )
    toy_size: int = field(default=50_000, metadata={"help": "Number of pairs of the 'toy' corpus."})
    max_length: int = field(
        default=256, metadata={"help": "Truncate source and target to this many tokens (eos included)."}
    )

    def __post_init__(self) -> None:
        for name in ("valid_size", "test_size", "max_train_pairs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive number of pairs, got {value}.")
        if self.toy_size < 3:
            raise ValueError(f"toy_size must be at least 3 (train, validation, test), got {self.toy_size}.")
        if self.max_length < 2:
            raise ValueError(f"max_length must be at least 2 tokens, got {self.max_length}.")


def load_translation_data(args: TranslationDataArguments) -> tuple[DatasetDict, str]:
    """The corpus named by `args`, with fixed-seed train/validation/test splits, and a description of its source."""
    return load_translation_corpus(
        args.source,
        src_lang=args.src_lang,
        tgt_lang=args.tgt_lang,
        config_name=args.dataset_config_name,
        revision=args.dataset_revision,
        split_seed=args.split_seed,
        valid_size=args.valid_size,
        test_size=args.test_size,
        max_pairs=args.max_train_pairs,
        toy_size=args.toy_size,
    )


def build_translation_model(
    preset: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    init: Literal["fairseq", "hf"] = "fairseq",
    **overrides: Any,
) -> MarianMTModel:
    """A Post-LN `MarianMTModel` of `preset` for a joint vocabulary: sizes and special ids from `tokenizer`.

    `init='fairseq'` re-initialises it as fairseq does (the init under which Post-LN without warmup fails, and the
    one GradInit was published with); `init='hf'` keeps Hugging Face's N(0, 0.02). Seed torch beforehand for a
    reproducible model. `overrides` are `MarianConfig` fields (e.g. `dropout`).
    """
    if init not in TRANSLATION_INITS:
        raise ValueError(f"init must be one of {TRANSLATION_INITS}, got {init!r}.")
    config = post_ln_config(
        preset,
        vocab_size=len(tokenizer),
        shared_vocab=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **overrides,
    )
    model = MarianMTModel(config)
    return fairseq_init_(model) if init == "fairseq" else model


def translation_loss(model: nn.Module, batch: dict[str, torch.Tensor], label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean label-smoothed cross-entropy over the target tokens of `batch` (labels -100 are padding).

    Marian's own `.loss` has no label smoothing; this is the training loss, and GradInit's loss when passed as its
    `loss_fn`, so the initialisation is tuned for the objective that is then trained.
    """
    logits = model(**batch).logits
    return F.cross_entropy(
        logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=-100, label_smoothing=label_smoothing
    )


def max_tokens_loader(
    dataset: Dataset,
    pad_token_id: int,
    *,
    max_tokens: int,
    max_sentences: int | None = None,
    seed: int = 0,
    epoch: int = 0,
    skip_batches: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
    shuffle: bool = True,
) -> DataLoader:
    """This rank's length-bucketed `--max-tokens` batches of one epoch, from batch `skip_batches` on (to resume).

    Sharded here (each rank a disjoint, equally long share), so do not pass the loader to `accelerator.prepare`.
    """
    sampler = MaxTokensBatchSampler(
        example_lengths(dataset),
        max_tokens,
        max_sentences=max_sentences,
        num_replicas=num_replicas,
        rank=rank,
        seed=seed,
        shuffle=shuffle,
    )
    sampler.set_epoch(epoch)
    return DataLoader(
        dataset,
        batch_sampler=sampler.batches()[skip_batches:],
        collate_fn=TranslationCollator(pad_token_id),
        # A DataLoader draws a seed when iterated; from its own generator, the global one (dropout) is untouched, so
        # a run resumed mid-epoch repeats the uninterrupted run exactly.
        generator=torch.Generator().manual_seed(seed + epoch),
    )


def gradinit_batches(
    train_tokens: Dataset,
    pad_token_id: int,
    *,
    max_tokens: int,
    max_sentences: int | None = None,
    seed: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
) -> DataLoader:
    """GradInit's batches: this rank's training batches of the first epoch (cycled by GradInit when too few).

    Same token budget as training by default, so the first step GradInit optimises for is the one training takes;
    every rank draws its own share, and GradInit averages across ranks.
    """
    return max_tokens_loader(
        train_tokens,
        pad_token_id,
        max_tokens=max_tokens,
        max_sentences=max_sentences,
        seed=seed,
        num_replicas=num_replicas,
        rank=rank,
    )


def build_optimizer(
    model: nn.Module,
    kind: Literal["adamw", "adam", "sgd"],
    *,
    lr: float,
    weight_decay: float = 0.0,
    betas: Sequence[float] = (0.9, 0.98),
    momentum: float = 0.0,
) -> torch.optim.Optimizer:
    """The training optimizer, as fairseq's translation recipes use it: weight decay on matrices and embeddings
    only (not on biases and LayerNorm weights). GradInit reads its first step from this object
    (`TrainingRun.from_optimizer`)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = weight_decay if kind != "adam" else 0.0
    groups = [
        {"params": [p for p in trainable if p.dim() >= 2], "weight_decay": decay},
        {"params": [p for p in trainable if p.dim() < 2], "weight_decay": 0.0},
    ]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    optimizer_class = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    return optimizer_class(groups, lr=lr, betas=tuple(betas), eps=1e-8)


@torch.no_grad()
def evaluate_translation(
    model: MarianMTModel,
    tokens: Dataset,
    references: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    *,
    label_smoothing: float = 0.0,
    bleu_sentences: int | None = None,
    num_beams: int = 5,
    max_len_a: float = 1.2,
    max_len_b: int = 10,
    batch_sentences: int = 64,
) -> dict[str, float]:
    """Loss on every pair of `tokens`, and BLEU/chrF (sacrebleu) of beam-search translations of its first
    `bleu_sentences` pairs (all by default) against `references` (the untokenised targets, in the same order).

    Under torch.distributed each rank scores a strided share and the results are summed / gathered, so every rank
    returns the same numbers. Generation length, as fairseq: at most `max_len_a * longest source + max_len_b` tokens
    per batch. Pass the unwrapped model (not DDP): evaluation needs no gradient synchronisation.
    """
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = next(model.parameters()).device
    collate = TranslationCollator(tokenizer.pad_token_id)
    was_training = model.training
    model.eval()

    source_ids, target_ids = tokens["input_ids"], tokens["labels"]
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # smoothed loss sum, nll sum, target tokens
    mine = list(range(rank, len(tokens), world))
    for start in range(0, len(mine), batch_sentences):
        features = [
            {"input_ids": source_ids[i], "labels": target_ids[i]} for i in mine[start : start + batch_sentences]
        ]
        batch = {key: value.to(device) for key, value in collate(features).items()}
        logits = model(**batch).logits.float().flatten(0, 1)
        labels = batch["labels"].flatten()
        totals[0] += F.cross_entropy(
            logits, labels, ignore_index=-100, label_smoothing=label_smoothing, reduction="sum"
        )
        totals[1] += F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
        totals[2] += (labels != -100).sum()
    if distributed:
        dist.all_reduce(totals)

    scored = len(tokens) if bleu_sentences is None else min(bleu_sentences, len(tokens))
    mine = sorted(
        range(rank, scored, world), key=lambda i: len(source_ids[i]), reverse=True
    )  # similar lengths per batch: less padding
    hypotheses: list[tuple[int, str]] = []
    for start in range(0, len(mine), batch_sentences):
        indices = mine[start : start + batch_sentences]
        sources = [source_ids[i] for i in indices]
        batch = collate([{"input_ids": ids} for ids in sources])
        longest = max(len(ids) for ids in sources)
        generated = model.generate(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            num_beams=num_beams,
            max_new_tokens=int(max_len_a * longest + max_len_b),
            do_sample=False,
        )
        hypotheses += zip(indices, tokenizer.batch_decode(generated, skip_special_tokens=True))
    if distributed:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, hypotheses)
        hypotheses = [pair for part in gathered for pair in part]
    hypotheses.sort()
    model.train(was_training)

    texts = [text.strip() for _, text in hypotheses]
    refs = [list(references[:scored])]
    loss_sum, nll_sum, target_tokens = totals.tolist()
    return {
        "loss": loss_sum / max(target_tokens, 1),
        "nll_loss": nll_sum / max(target_tokens, 1),
        "bleu": sacrebleu.corpus_bleu(texts, refs).score if texts else 0.0,
        "chrf": sacrebleu.corpus_chrf(texts, refs).score if texts else 0.0,
        "bleu_sentences": scored,
    }


def average_checkpoints(model: nn.Module, checkpoint_dirs: Sequence[str | Path]) -> nn.Module:
    """Load the element-wise mean of the weights saved by `accelerator.save_state` in `checkpoint_dirs` into `model`.

    Averaging the last few checkpoints is the usual last step of fairseq translation recipes (about +0.5 BLEU).
    Tied tensors are saved once, so loading the mean of the saved ones restores the ties.
    """
    if not checkpoint_dirs:
        raise ValueError("average_checkpoints needs at least one checkpoint directory.")
    total: dict[str, torch.Tensor] = {}
    for directory in checkpoint_dirs:
        state = load_file(str(Path(directory) / "model.safetensors"))
        for name, tensor in state.items():
            total[name] = total[name] + tensor.double() if name in total else tensor.double()
    reference = model.state_dict()
    mean = {name: (tensor / len(checkpoint_dirs)).to(reference[name].dtype) for name, tensor in total.items()}
    unexpected = model.load_state_dict(mean, strict=False).unexpected_keys
    if unexpected:
        raise ValueError(f"The checkpoints hold tensors the model lacks: {unexpected[:5]}.")
    return model


def plot_training_curves(metrics_path: str | Path, path: str | Path) -> Path:
    """Draw the training loss, validation loss and validation BLEU from a metrics JSON-lines file to an image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    train = [(r["step"], r["train_loss"]) for r in records if "train_loss" in r and math.isfinite(r["train_loss"])]
    valid = [(r["step"], r["valid_loss"], r["valid_bleu"]) for r in records if "valid_loss" in r]
    fig, (loss_ax, bleu_ax) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        loss_ax.plot(*zip(*train), label="train (label-smoothed)", color="tab:blue")
    if valid:
        steps, losses, bleus = zip(*valid)
        loss_ax.plot(steps, losses, "o-", label="validation", color="tab:orange")
        bleu_ax.plot(steps, bleus, "o-", color="tab:green")
    loss_ax.set(xlabel="step", ylabel="loss", title="Loss")
    loss_ax.legend()
    bleu_ax.set(xlabel="step", ylabel="BLEU", title="Validation BLEU (beam search)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
