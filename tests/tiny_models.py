"""Tiny models built from configs (d_model 16-32, 1-2 layers) and batches for them."""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    MarianConfig,
    MarianMTModel,
)

VOCAB = 48
PAD = 0


def tiny_marian(shared: bool = True, attn_implementation: str = "sdpa", **overrides) -> MarianMTModel:
    """Post-LN encoder-decoder; `shared=False` gives separate source/target vocabularies (untied encoder)."""
    settings = dict(
        vocab_size=VOCAB,
        decoder_vocab_size=VOCAB if shared else VOCAB + 8,
        share_encoder_decoder_embeddings=shared,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        max_position_embeddings=64,
        pad_token_id=PAD,
        decoder_start_token_id=PAD,
        eos_token_id=1,
        forced_eos_token_id=1,
        dropout=0.3,
        attn_implementation=attn_implementation,
    )
    return MarianMTModel(MarianConfig(**{**settings, **overrides}))


def tiny_gpt2(**overrides) -> GPT2LMHeadModel:
    settings = dict(
        vocab_size=VOCAB,
        n_positions=32,
        n_embd=32,
        n_layer=2,
        n_head=4,
        bos_token_id=1,
        eos_token_id=1,
        attn_implementation="sdpa",
    )
    return GPT2LMHeadModel(GPT2Config(**{**settings, **overrides}))


def tiny_bert_classifier(**overrides) -> BertForSequenceClassification:
    settings = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=3,
        attn_implementation="sdpa",
    )
    return BertForSequenceClassification(BertConfig(**{**settings, **overrides}))


class TinyCNN(nn.Module):
    """A small convolutional classifier without BatchNorm (the CIFAR-without-BN setting)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        )
        self.classifier = nn.Linear(8, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images).flatten(1))


def cnn_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    images, labels = batch
    return nn.functional.cross_entropy(model(images), labels)


def seq2seq_batches(count: int = 4, size: int = 6, seed: int = 1, target_vocab: int = VOCAB) -> list[dict]:
    """Random source/target token batches with some padding."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        source = torch.randint(2, VOCAB, (size, 9), generator=generator)
        mask = torch.ones_like(source)
        source[0, -3:], mask[0, -3:] = PAD, 0
        labels = torch.randint(2, target_vocab, (size, 7), generator=generator)
        labels[1, -2:] = -100
        batches.append({"input_ids": source, "attention_mask": mask, "labels": labels})
    return batches


def causal_lm_batches(count: int = 4, size: int = 6, seed: int = 1) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        ids = torch.randint(0, VOCAB, (size, 12), generator=generator)
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()})
    return batches


def classification_batches(count: int = 4, size: int = 6, seed: int = 1) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        ids = torch.randint(1, VOCAB, (size, 10), generator=generator)
        labels = torch.randint(0, 3, (size,), generator=generator)
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    return batches


def image_batches(count: int = 4, size: int = 6, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, 3, 8, 8, generator=generator), torch.randint(0, 10, (size,), generator=generator))
        for _ in range(count)
    ]


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every parameter and buffer, to compare bit for bit."""
    return {name: t.detach().clone() for name, t in model.state_dict(keep_vars=True).items()}


def assert_unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = snapshot(model)
    assert after.keys() == before.keys()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert not changed, f"tensors changed: {changed}"
