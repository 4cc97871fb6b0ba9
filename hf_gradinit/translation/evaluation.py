"""Evaluation of a translation model: loss, and BLEU / chrF (sacrebleu) of beam-search translations; the
averaging of checkpoints that fairseq recipes end with; the training-curve plot."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import sacrebleu
import torch
import torch.nn.functional as F
from accelerate import PartialState
from accelerate.utils import gather_object, reduce, send_to_device
from datasets import Dataset
from safetensors.torch import load_file
from torch import nn
from transformers import MarianMTModel, PreTrainedTokenizerBase

from ..plotting import pyplot
from .data import translation_collator


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
    pad_to_multiple_of: int | None = None,
    target_tokenizer: PreTrainedTokenizerBase | None = None,
    dropout_loss: bool = False,
    dropout_seed: int = 0,
    split_across_processes: bool = True,
) -> dict[str, float]:
    """Loss on every pair of `tokens`, and BLEU/chrF (sacrebleu) of beam-search translations of its first
    `bleu_sentences` pairs (all by default) against `references` (the untokenised targets, in the same order).

    BLEU is sacreBLEU's on detokenised text (its own 13a tokenisation), the score to report. It is not comparable
    with the ~35-36 of the GradInit paper and fairseq's IWSLT'14 recipes, which is tokenised BLEU (fairseq's
    `--scoring bleu` on Moses-tokenised, BPE-removed text). Translations are decoded with `target_tokenizer` when the
    vocabularies are separate, else with `tokenizer` (which always encodes the sources).

    `loss` (and `nll_loss`) are measured in eval mode. With `dropout_loss=True` the result also holds
    `loss_dropout`: the same loss in train mode, dropout on, as the training loss is measured, under a fixed seed
    (`dropout_seed`, in a forked RNG: the caller's random state is untouched). Both tell apart a model that is bad
    from one whose outputs only degrade when dropout is switched off.

    In a multi-process run (accelerate / torchrun) each process scores a strided share and the results are summed
    (`accelerate.utils.reduce`) and gathered (`gather_object`), so every process returns the same numbers.
    With `split_across_processes=False` every process scores everything, in lockstep: what an FSDP2 model needs,
    whose every forward is a collective. Generation length, as fairseq: at most `max_len_a * longest source +
    max_len_b` tokens per batch. Pass the unwrapped model (not DDP): evaluation needs no gradient synchronisation.
    """
    state = PartialState()
    rank, world = (state.process_index, state.num_processes) if split_across_processes else (0, 1)
    device = next(model.parameters()).device
    collate = translation_collator(tokenizer, pad_to_multiple_of)
    was_training = model.training
    source_ids, target_ids = tokens["input_ids"], tokens["labels"]

    def loss_totals() -> list[float]:  # summed over all ranks: smoothed loss sum, nll sum, target tokens
        totals = torch.zeros(3, dtype=torch.float64, device=device)
        mine = list(range(rank, len(tokens), world))
        for start in range(0, len(mine), batch_sentences):
            features = [
                {"input_ids": source_ids[i], "labels": target_ids[i]} for i in mine[start : start + batch_sentences]
            ]
            batch = send_to_device(collate(features), device)
            logits = model(**batch).logits.float().flatten(0, 1)
            labels = batch["labels"].flatten()
            totals[0] += F.cross_entropy(
                logits, labels, ignore_index=-100, label_smoothing=label_smoothing, reduction="sum"
            )
            totals[1] += F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
            totals[2] += (labels != -100).sum()
        return (reduce(totals, reduction="sum") if world > 1 else totals).tolist()

    scores: dict[str, float] = {}
    if dropout_loss:
        model.train()
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(dropout_seed)
            loss_sum, _, target_tokens = loss_totals()
        scores["loss_dropout"] = loss_sum / max(target_tokens, 1)
    model.eval()
    loss_sum, nll_sum, target_tokens = loss_totals()

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
        hypotheses += zip(indices, (target_tokenizer or tokenizer).batch_decode(generated, skip_special_tokens=True))
    if world > 1:
        hypotheses = gather_object(hypotheses)
    hypotheses.sort()
    model.train(was_training)

    texts = [text.strip() for _, text in hypotheses]
    refs = [list(references[:scored])]
    return {
        "loss": loss_sum / max(target_tokens, 1),
        "nll_loss": nll_sum / max(target_tokens, 1),
        **scores,
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
    plt = pyplot()

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
