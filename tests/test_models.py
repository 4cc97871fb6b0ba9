"""GradInit on different architectures: which tensors are blocks, and what the fold does to them."""

import pytest
import torch
from tiny_models import (
    VOCAB,
    TinyCNN,
    causal_lm_batches,
    classification_batches,
    cnn_loss,
    image_batches,
    seq2seq_batches,
    snapshot,
    tiny_bert_classifier,
    tiny_gpt2,
    tiny_marian,
)

from hf_gradinit import init_with_gradinit
from hf_gradinit.blocks import trainable_parameters

CASES = {
    "marian-shared": (lambda: tiny_marian(shared=True), lambda: seq2seq_batches(), {}),
    "marian-untied": (lambda: tiny_marian(shared=False), lambda: seq2seq_batches(target_vocab=VOCAB + 8), {}),
    "gpt2": (tiny_gpt2, causal_lm_batches, {}),
    "bert-classifier": (tiny_bert_classifier, classification_batches, {}),
    "cnn": (TinyCNN, image_batches, {"loss_fn": cnn_loss}),
}


@pytest.mark.parametrize("case", CASES)
def test_every_block_is_scaled_by_its_learned_scale(case):
    make_model, make_batches, kwargs = CASES[case]
    model = make_model()
    before = snapshot(model)
    # Scale lr large enough that every scale moves visibly in 3 iterations.
    result = init_with_gradinit(model, make_batches(), iterations=3, scale_lr=0.05, grad_norm_bound=1e9, **kwargs)
    params = dict(model.named_parameters())
    assert set(result.scales) == {n for n, p in params.items() if p.requires_grad and before[n].abs().sum() > 0}
    for name, scale in result.scales.items():
        assert scale != 1.0, name
        torch.testing.assert_close(params[name].detach(), before[name] * scale, rtol=0, atol=0)
    scaled = {id(params[name]) for name in result.scales}  # tied aliases of scaled blocks included
    untouched = [(n, t) for n, t in model.state_dict(keep_vars=True).items() if id(t) not in scaled]
    assert untouched or case == "cnn"  # frozen tensors, buffers, zero biases (the CNN has none)
    for name, tensor in untouched:
        assert torch.equal(tensor, before[name]), name


def test_tied_embeddings_are_one_block_and_stay_tied():
    model = tiny_marian(shared=True)
    result = init_with_gradinit(model, seq2seq_batches(), iterations=2, grad_norm_bound=1e9)
    embedding = model.model.shared.weight
    assert model.lm_head.weight is embedding
    assert model.model.encoder.embed_tokens.weight is embedding and model.model.decoder.embed_tokens.weight is embedding
    assert [
        name for name in result.scales if name.endswith(("shared.weight", "embed_tokens.weight", "lm_head.weight"))
    ] == ["model.shared.weight"]


def test_untied_marian_scales_encoder_and_decoder_embeddings_separately():
    model = tiny_marian(shared=False)
    result = init_with_gradinit(model, seq2seq_batches(target_vocab=VOCAB + 8), iterations=2, grad_norm_bound=1e9)
    assert model.lm_head.weight is model.model.decoder.embed_tokens.weight  # decoder in/out embeddings tied
    assert "model.encoder.embed_tokens.weight" in result.scales and "model.decoder.embed_tokens.weight" in result.scales


def test_frozen_parameters_zero_tensors_and_kinds():
    model = tiny_gpt2()
    model.transformer.wpe.weight.requires_grad_(False)
    found = {p.name: p for p in trainable_parameters(model)}
    assert "transformer.wpe.weight" not in found
    assert found["transformer.h.0.ln_1.weight"].kind == "norm_weight"
    assert found["transformer.h.0.attn.c_attn.bias"].kind == "bias"
    assert not found["transformer.h.0.attn.c_attn.bias"].is_block  # HF initialises biases to zero
    assert found["transformer.h.0.mlp.c_fc.weight"].kind == "weight"
    before = model.transformer.wpe.weight.detach().clone()
    result = init_with_gradinit(model, causal_lm_batches(), iterations=2, grad_norm_bound=1e9)
    assert torch.equal(model.transformer.wpe.weight, before)
    assert "transformer.wpe.weight" not in result.scales and "transformer.h.0.attn.c_attn.bias" not in result.scales


def test_marian_frozen_sinusoidal_positions_are_not_blocks():
    names = {p.name for p in trainable_parameters(tiny_marian())}
    assert not any("embed_positions" in name for name in names)


def test_constraint_steps_run_with_default_sdpa_attention():
    model = tiny_marian(attn_implementation="sdpa")
    assert model.config._attn_implementation == "sdpa"
    result = init_with_gradinit(model, seq2seq_batches(), iterations=3, grad_norm_bound=1.0)
    assert result.constraint_steps == 3


def test_trainable_parameter_unused_by_the_loss_keeps_scale_one():
    model = tiny_bert_classifier()
    model.register_parameter("unused_head", torch.nn.Parameter(torch.randn(4, 4)))
    before = model.unused_head.detach().clone()
    result = init_with_gradinit(model, classification_batches(), iterations=3, grad_norm_bound=10.0)
    assert 0 < result.constraint_steps < 3  # both step kinds met the unused parameter
    assert result.scales["unused_head"] == 1.0 and torch.equal(model.unused_head, before)
