"""What a translation training run is made of: the label-smoothed loss, the optimizer, `--max-tokens` batches (for
training and for GradInit), and the error a diverged run stops with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from datasets import Dataset
from torch import nn
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from .data import MaxTokensBatchSampler, example_lengths, translation_collator


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or inf; the run stopped without writing a checkpoint of the broken state."""


def translation_loss(model: nn.Module, batch: dict[str, torch.Tensor], label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean label-smoothed cross-entropy over the target tokens of `batch` (labels -100 are padding).

    Marian's own `.loss` has no label smoothing; this is the training loss, and GradInit's loss when passed as its
    `loss_fn`, so the initialisation is tuned for the objective that is then trained.
    """
    logits = model(**batch).logits
    return F.cross_entropy(
        logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=-100, label_smoothing=label_smoothing
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


def max_tokens_loader(
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_tokens: int,
    max_sentences: int | None = None,
    seed: int = 0,
    epoch: int = 0,
    skip_batches: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
    shuffle: bool = True,
    pad_to_multiple_of: int | None = None,
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
        collate_fn=translation_collator(tokenizer, pad_to_multiple_of),
        # A DataLoader draws a seed when iterated; from its own generator, the global one (dropout) is untouched, so
        # a run resumed mid-epoch repeats the uninterrupted run exactly.
        generator=torch.Generator().manual_seed(seed + epoch),
    )


def gradinit_batches(
    train_tokens: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_tokens: int,
    max_sentences: int | None = None,
    seed: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
    pad_to_multiple_of: int | None = None,
) -> DataLoader:
    """GradInit's batches: this rank's training batches of the first epoch (cycled by GradInit when too few).

    Same token budget (and padding) as training by default, so the first step GradInit optimises for is the one
    training takes; every rank draws its own share, and GradInit averages across ranks. One batch per GradInit
    iteration, also when training accumulates several per update.
    """
    return max_tokens_loader(
        train_tokens,
        tokenizer,
        max_tokens=max_tokens,
        max_sentences=max_sentences,
        seed=seed,
        num_replicas=num_replicas,
        rank=rank,
        pad_to_multiple_of=pad_to_multiple_of,
    )
