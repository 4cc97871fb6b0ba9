"""Post-LN Marian presets (shapes, exact parameter counts, save/load) and fairseq's initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from transformers import AutoModelForSeq2SeqLM, MarianConfig, MarianMTModel

from hf_gradinit.translation import (
    POST_LN_PRESETS,
    TRANSLATION_INITS,
    apply_translation_init_,
    deepnet_init_,
    fairseq_init_,
    freeze_sinusoidal_positions_,
    post_ln_config,
    tfixup_init_,
)


def trainable_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)  # parameters() deduplicates tied tensors


def meta_model(config: MarianConfig) -> MarianMTModel:
    """Shapes only, no memory: enough for counting parameters of the full-size presets."""
    with torch.device("meta"):
        return MarianMTModel(config)


def fairseq_post_ln_count(vocab: int, d: int, ffn: int, layers: int, decoder_vocab: int | None = None) -> int:
    """Trainable parameters of fairseq's Post-LN transformer with tied decoder input/output embeddings.

    Attention: q, k, v, out projections with biases. FFN: two Linear with biases. LayerNorm: weight and bias.
    Sinusoidal positions are not parameters. `decoder_vocab=None` means one shared vocabulary.
    """
    attention = 4 * (d * d + d)
    ffn_block = (d * ffn + ffn) + (ffn * d + d)
    layer_norm = 2 * d
    encoder_layer = attention + ffn_block + 2 * layer_norm
    decoder_layer = 2 * attention + ffn_block + 3 * layer_norm
    embeddings = vocab * d + (0 if decoder_vocab is None else decoder_vocab * d)
    return embeddings + layers * (encoder_layer + decoder_layer)


# ---------------------------------------------------------------- presets


def test_iwslt_preset_matches_fairseq_transformer_iwslt_de_en() -> None:
    config = post_ln_config("iwslt14-de-en", vocab_size=8848, decoder_vocab_size=6632)
    assert (config.encoder_layers, config.decoder_layers, config.d_model) == (6, 6, 512)
    assert (config.encoder_ffn_dim, config.decoder_ffn_dim) == (1024, 1024)
    assert (config.encoder_attention_heads, config.decoder_attention_heads) == (4, 4)
    assert config.activation_function == "relu"
    assert (config.dropout, config.attention_dropout, config.activation_dropout) == (0.3, 0.1, 0.1)
    assert config.scale_embedding is True
    assert config.share_encoder_decoder_embeddings is False and config.tie_word_embeddings is True
    assert (config.vocab_size, config.decoder_vocab_size) == (8848, 6632)
    assert config.max_position_embeddings == 1024
    assert config.decoder_start_token_id == config.pad_token_id == 1 and config.eos_token_id == 2

    model = meta_model(config)
    assert trainable_count(model) == 39_469_056  # fairseq's count for transformer_iwslt_de_en on IWSLT'14 de-en
    assert fairseq_post_ln_count(8848, 512, 1024, 6, decoder_vocab=6632) == 39_469_056
    decoder = model.model.decoder
    assert model.lm_head.weight is decoder.embed_tokens.weight
    assert model.model.encoder.embed_tokens.weight is not decoder.embed_tokens.weight
    assert not decoder.embed_positions.weight.requires_grad


def test_iwslt_default_vocabularies_are_fairseqs() -> None:
    config = post_ln_config("iwslt14-de-en")
    assert (config.vocab_size, config.decoder_vocab_size) == (8848, 6632)
    assert trainable_count(meta_model(config)) == 39_469_056


@pytest.mark.parametrize(
    ("preset", "d", "ffn", "heads", "dropout"),
    [("wmt14-en-de-base", 512, 2048, 8, 0.1), ("wmt14-en-de-big", 1024, 4096, 16, 0.3)],
)
def test_wmt_presets_shapes_and_counts(preset: str, d: int, ffn: int, heads: int, dropout: float) -> None:
    vocab = 32000
    config = post_ln_config(preset, vocab_size=vocab)
    assert (config.encoder_layers, config.decoder_layers, config.d_model) == (6, 6, d)
    assert (config.encoder_ffn_dim, config.decoder_ffn_dim) == (ffn, ffn)
    assert (config.encoder_attention_heads, config.decoder_attention_heads) == (heads, heads)
    assert config.dropout == dropout and config.activation_function == "relu" and config.scale_embedding
    assert config.share_encoder_decoder_embeddings is True and config.decoder_vocab_size == vocab

    model = meta_model(config)
    shared = model.model.shared.weight
    assert model.model.encoder.embed_tokens.weight is shared and model.model.decoder.embed_tokens.weight is shared
    assert model.lm_head.weight is shared
    assert trainable_count(model) == fairseq_post_ln_count(vocab, d, ffn, 6)


@pytest.mark.parametrize(("preset", "d", "layers", "ffn"), [("tiny", 32, 2, 64), ("small", 128, 6, 512)])
def test_cpu_presets(preset: str, d: int, layers: int, ffn: int) -> None:
    config = post_ln_config(preset, vocab_size=100)
    assert (config.d_model, config.encoder_layers, config.decoder_layers, config.encoder_ffn_dim) == (
        d,
        layers,
        layers,
        ffn,
    )
    assert config.encoder_attention_heads == config.decoder_attention_heads == 4
    assert config.activation_function == "relu" and config.share_encoder_decoder_embeddings
    assert trainable_count(meta_model(config)) == fairseq_post_ln_count(100, d, ffn, layers)


def test_presets_mapping_lists_every_preset_and_is_read_only() -> None:
    assert {"iwslt14-de-en", "wmt14-en-de-base", "wmt14-en-de-big", "tiny", "small"} <= set(POST_LN_PRESETS)
    for name in POST_LN_PRESETS:
        assert isinstance(post_ln_config(name), MarianConfig)
    with pytest.raises(TypeError):
        POST_LN_PRESETS["tiny"]["d_model"] = 64  # type: ignore[index]


def test_vocabulary_modes() -> None:
    separate = post_ln_config("tiny", vocab_size=64, decoder_vocab_size=80)  # different sizes imply separate
    assert not separate.share_encoder_decoder_embeddings and separate.decoder_vocab_size == 80
    same_size = post_ln_config("tiny", vocab_size=64, shared_vocab=False)
    assert not same_size.share_encoder_decoder_embeddings and same_size.decoder_vocab_size == 64
    shared = post_ln_config("iwslt14-de-en", vocab_size=10000, shared_vocab=True)
    assert shared.share_encoder_decoder_embeddings and shared.decoder_vocab_size == 10000
    only_source = post_ln_config("iwslt14-de-en", vocab_size=10000)  # preset's mode kept: separate, same size
    assert not only_source.share_encoder_decoder_embeddings and only_source.decoder_vocab_size == 10000
    with pytest.raises(ValueError, match="shared_vocab=True needs one vocabulary"):
        post_ln_config("tiny", vocab_size=64, decoder_vocab_size=80, shared_vocab=True)


def test_token_ids_and_overrides() -> None:
    config = post_ln_config("tiny", pad_token_id=0, eos_token_id=1, max_position_embeddings=64, encoder_layers=3)
    assert (config.pad_token_id, config.decoder_start_token_id, config.eos_token_id) == (0, 0, 1)
    assert config.forced_eos_token_id == 1 and config.max_position_embeddings == 64
    assert (config.encoder_layers, config.decoder_layers) == (3, 2)
    assert post_ln_config("tiny", decoder_start_token_id=2).decoder_start_token_id == 2
    assert post_ln_config("small", dropout=0.0, activation_function="gelu").activation_function == "gelu"
    assert post_ln_config("tiny").init_std == 0.02  # Hugging Face's default init stays the default


def test_unknown_preset_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="Unknown Post-LN preset 'iwslt'") as error:
        post_ln_config("iwslt")
    assert all(name in str(error.value) for name in POST_LN_PRESETS)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"encoder_layer": 3}, "not a MarianConfig field. Did you mean encoder_layers"),
        ({"share_encoder_decoder_embeddings": False}, "`shared_vocab` argument"),
        ({"encoder_attention_heads": 5}, "not divisible by encoder_attention_heads=5"),
        ({"decoder_ffn_dim": 0}, "decoder_ffn_dim must be a positive integer"),
        ({"dropout": 1.5}, r"dropout must be in \[0, 1\)"),
        ({"activation_function": "relux"}, "Unknown activation_function"),
        ({"max_position_embeddings": 0}, "max_position_embeddings must be a positive integer"),
        ({"attention_dropout": "0.1"}, r"attention_dropout must be in \[0, 1\)"),
        ({"pad_token_id": 64}, "pad_token_id=64 is outside the vocabulary"),
        ({"decoder_vocab_size": 10}, "Pass `vocab_size`"),
    ],
)
def test_bad_overrides_raise(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        post_ln_config("tiny", **overrides)


def test_bad_vocabulary_size_raises() -> None:
    with pytest.raises(ValueError, match="vocab_size must be a positive integer"):
        post_ln_config("tiny", vocab_size=-3)


# ---------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("shared", [True, False])
def test_checkpoint_loads_with_stock_auto_class(tmp_path, shared: bool) -> None:
    config = post_ln_config(
        "tiny", vocab_size=64, decoder_vocab_size=None if shared else 80, max_position_embeddings=64
    )
    model = fairseq_init_(MarianMTModel(config)).eval()
    model.save_pretrained(tmp_path)

    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is MarianMTModel
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for name, tensor in original.items():
        assert torch.equal(tensor, restored[name]), name  # includes the (recomputed) sinusoidal positions
    assert loaded.lm_head.weight is loaded.model.decoder.embed_tokens.weight
    assert (loaded.model.encoder.embed_tokens.weight is loaded.model.decoder.embed_tokens.weight) == shared
    assert loaded.config.share_encoder_decoder_embeddings == shared and loaded.config.scale_embedding

    positions = loaded.model.encoder.embed_positions.weight.detach().clone()
    fairseq_init_(loaded)  # must not mistake the (now trainable, see below) sinusoids for token embeddings
    assert torch.equal(loaded.model.encoder.embed_positions.weight, positions)


def test_pinned_transformers_thaws_loaded_sinusoidal_positions(tmp_path) -> None:
    """The quirk `freeze_sinusoidal_positions_` exists for, in the pinned transformers range: `from_pretrained`
    re-creates the (unsaved) positions as trainable parameters. When this fails, transformers has fixed it."""
    model = MarianMTModel(post_ln_config("tiny", max_position_embeddings=64))
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert trainable_count(loaded) == trainable_count(model) + 2 * 64 * 32


def test_freeze_sinusoidal_positions_refreezes_a_loaded_model(tmp_path) -> None:
    model = MarianMTModel(post_ln_config("tiny", max_position_embeddings=64))
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    positions = [loaded.model.encoder.embed_positions.weight, loaded.model.decoder.embed_positions.weight]
    thawed = sum(p.requires_grad for p in positions)  # 2 under the transformers 5.x quirk, 0 once it is fixed

    assert freeze_sinusoidal_positions_(loaded) == thawed
    assert not any(p.requires_grad for p in positions)
    assert trainable_count(loaded) == trainable_count(model)
    assert loaded.model.encoder.embed_tokens.weight.requires_grad  # token embeddings stay trainable
    assert freeze_sinusoidal_positions_(loaded) == 0


# ---------------------------------------------------------------- fairseq_init_


@pytest.fixture(scope="module")
def small_model() -> tuple[MarianMTModel, dict[str, torch.Tensor]]:
    """`small` preset (d 128) with every trainable tensor overwritten, then fairseq-initialised."""
    torch.manual_seed(0)
    model = MarianMTModel(post_ln_config("small", vocab_size=1000))
    positions = {
        "encoder": model.model.encoder.embed_positions.weight.detach().clone(),
        "decoder": model.model.decoder.embed_positions.weight.detach().clone(),
    }
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.fill_(0.5)  # so that nothing below passes by leftover default initialisation
    assert fairseq_init_(model) is model
    return model, positions


def test_fairseq_init_linear_weights_are_xavier_uniform(small_model) -> None:
    model, _ = small_model
    linears = [m for m in model.modules() if isinstance(m, nn.Linear) and m is not model.lm_head]
    assert len(linears) == 6 * 6 + 6 * 10  # encoder layer: q, k, v, out, fc1, fc2; decoder adds cross-attention
    for linear in linears:
        fan_out, fan_in = linear.weight.shape
        variance = 2.0 / (fan_in + fan_out)
        bound = math.sqrt(3.0 * variance)
        weight = linear.weight.detach()
        assert weight.abs().max() <= bound
        assert weight.abs().max() > 0.98 * bound  # uniform: fills the whole interval
        assert weight.var().item() == pytest.approx(variance, rel=0.05)  # >= 16k samples: ~1% standard error
        assert abs(weight.mean().item()) < 0.05 * math.sqrt(variance)
        assert torch.count_nonzero(linear.bias) == 0


def test_fairseq_init_embeddings_and_norms(small_model) -> None:
    model, _ = small_model
    shared = model.model.shared
    pad = model.config.pad_token_id
    assert shared.padding_idx == pad
    assert torch.count_nonzero(shared.weight[pad]) == 0
    rows = torch.cat([shared.weight[:pad], shared.weight[pad + 1 :]]).detach()
    assert rows.std().item() == pytest.approx(128**-0.5, rel=0.03)
    assert abs(rows.mean().item()) < 0.01
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 6 * 2 + 6 * 3
    for norm in norms:
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.count_nonzero(norm.bias) == 0
    assert torch.count_nonzero(model.final_logits_bias) == 0


def test_fairseq_init_keeps_ties_and_embedding_init_wins(small_model) -> None:
    model, _ = small_model
    shared = model.model.shared.weight
    assert model.lm_head.weight is shared
    assert model.model.encoder.embed_tokens.weight is shared and model.model.decoder.embed_tokens.weight is shared
    # Xavier for a 1000 x 128 output projection would give std sqrt(2/1128) = 0.042, not 128^-0.5 = 0.088.
    assert model.lm_head.weight.detach().std().item() == pytest.approx(128**-0.5, rel=0.03)
    assert trainable_count(model) == fairseq_post_ln_count(1000, 128, 512, 6)


def test_fairseq_init_leaves_sinusoidal_positions_alone(small_model) -> None:
    model, positions = small_model
    for side in ("encoder", "decoder"):
        weight = getattr(model.model, side).embed_positions.weight
        assert not weight.requires_grad
        assert torch.equal(weight, positions[side])
    assert positions["encoder"][1, 0].item() == pytest.approx(math.sin(1.0))  # really the sinusoids


def test_fairseq_init_separate_vocabularies_and_untied_output() -> None:
    config = post_ln_config("tiny", vocab_size=300, decoder_vocab_size=400, tie_word_embeddings=False)
    model = fairseq_init_(MarianMTModel(config))
    encoder, decoder = model.model.encoder.embed_tokens, model.model.decoder.embed_tokens
    assert model.lm_head.weight is not decoder.weight and encoder.weight is not decoder.weight
    for weight in (encoder.weight, decoder.weight, model.lm_head.weight):
        assert weight.detach()[2:].std().item() == pytest.approx(32**-0.5, rel=0.1)
    assert torch.count_nonzero(encoder.weight[1]) == 0 and torch.count_nonzero(decoder.weight[1]) == 0
    assert torch.count_nonzero(model.lm_head.weight[1]) > 0  # an output projection has no padding row


def test_fairseq_init_on_a_generic_model_uses_config_pad_token() -> None:
    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = MarianConfig(pad_token_id=3)
            self.embed = nn.Embedding(50, 64)  # no padding_idx: the config's pad token is used
            self.frozen = nn.Embedding(50, 64).requires_grad_(False)
            self.proj = nn.Linear(64, 256)
            self.norm = nn.LayerNorm(256)

    model = Tiny()
    frozen = model.frozen.weight.clone()
    fairseq_init_(model)
    assert torch.count_nonzero(model.embed.weight[3]) == 0
    assert model.embed.weight.detach().std().item() == pytest.approx(64**-0.5, rel=0.1)
    assert model.proj.weight.detach().var().item() == pytest.approx(2 / 320, rel=0.1)
    assert torch.equal(model.frozen.weight, frozen)


def test_without_fairseq_init_the_hugging_face_default_remains() -> None:
    model = MarianMTModel(post_ln_config("small", vocab_size=1000, max_position_embeddings=64))
    weight = model.model.encoder.layers[0].fc1.weight.detach()
    assert weight.std().item() == pytest.approx(model.config.init_std, rel=0.05)
    assert model.model.shared.weight.detach().std().item() == pytest.approx(model.config.init_std, rel=0.05)


# ---------------------------------------------------------------- T-Fixup and DeepNet variants


def _twins(init, **config: object) -> tuple[MarianMTModel, MarianMTModel]:
    """A model initialised with `init` and its fairseq-initialised twin: same config, same seed."""
    models = []
    for initialise in (init, fairseq_init_):
        torch.manual_seed(0)
        models.append(initialise(MarianMTModel(post_ln_config("tiny", **config))))
    return models[0], models[1]


def _scaled_names(side: str, layers: int) -> list[str]:
    attentions = ("self_attn", "encoder_attn") if side == "decoder" else ("self_attn",)
    return [
        f"model.{side}.layers.{i}.{name}.weight"
        for i in range(layers)
        for name in [*(f"{a}.{proj}" for a in attentions for proj in ("v_proj", "out_proj")), "fc1", "fc2"]
    ]


def _expect_scaled(model: nn.Module, twin: nn.Module, factors: dict[str, float]) -> None:
    """Each tensor in `factors` is exactly the twin's times its factor; every other tensor and buffer is the twin's."""
    params, twin_params = dict(model.named_parameters()), dict(twin.named_parameters())
    assert params.keys() == twin_params.keys() and set(factors) <= params.keys()
    for name, tensor in params.items():
        expected = twin_params[name].detach() * factors.get(name, 1.0)
        assert torch.equal(tensor.detach(), expected), name
        if name in factors:  # the std moves by the same factor
            assert tensor.std().item() == pytest.approx(twin_params[name].std().item() * factors[name], rel=1e-5)
    for (name, buffer), (_, twin_buffer) in zip(model.named_buffers(), twin.named_buffers()):
        assert torch.equal(buffer, twin_buffer), name


@pytest.mark.parametrize("layers", [(2, 2), (2, 3)])
def test_tfixup_init_scales_fairseqs_init_exactly(layers: tuple[int, int]) -> None:
    n, m = layers
    model, twin = _twins(tfixup_init_, vocab_size=64, encoder_layers=n, decoder_layers=m)
    encoder, decoder, embedding = 0.67 * n**-0.25, (9 * m) ** -0.25, (9 * max(n, m)) ** -0.25
    if layers == (2, 2):  # the tiny preset: 0.67 * 2^-1/4, 18^-1/4 = 0.5634, 0.4855
        assert (round(encoder, 4), round(decoder, 4)) == (0.5634, 0.4855) and embedding == decoder
    factors = {
        **dict.fromkeys(_scaled_names("encoder", n), encoder),
        **dict.fromkeys(_scaled_names("decoder", m), decoder),
        "model.shared.weight": embedding,  # one tensor for both sides and the output: the deeper side's factor
    }
    _expect_scaled(model, twin, factors)
    assert model.lm_head.weight is model.model.shared.weight


def test_tfixup_init_with_separate_vocabularies_scales_each_side() -> None:
    model, twin = _twins(tfixup_init_, vocab_size=64, decoder_vocab_size=48, encoder_layers=3, decoder_layers=2)
    factors = {
        **dict.fromkeys(_scaled_names("encoder", 3), 0.67 * 3**-0.25),
        **dict.fromkeys(_scaled_names("decoder", 2), 18**-0.25),
        "model.encoder.embed_tokens.weight": 27**-0.25,
        "model.decoder.embed_tokens.weight": 18**-0.25,
    }
    _expect_scaled(model, twin, factors)
    assert model.lm_head.weight is model.model.decoder.embed_tokens.weight  # still tied


@pytest.mark.parametrize("layers", [(2, 2), (3, 2)])
def test_deepnet_init_scales_fairseqs_init_exactly(layers: tuple[int, int]) -> None:
    n, m = layers
    model, twin = _twins(deepnet_init_, vocab_size=64, encoder_layers=n, decoder_layers=m)
    encoder, decoder = 0.87 * (n**4 * m) ** (-1 / 16), (12 * m) ** -0.25
    if layers == (2, 2):  # the tiny preset: 0.87 * 32^-1/16, 24^-1/4 = 0.7006, 0.4518
        assert (round(encoder, 4), round(decoder, 4)) == (0.7006, 0.4518)
    factors = {
        **dict.fromkeys(_scaled_names("encoder", n), encoder),
        **dict.fromkeys(_scaled_names("decoder", m), decoder),
    }
    _expect_scaled(model, twin, factors)  # embeddings, q/k, biases, LayerNorms, positions: fairseq's


def test_translation_inits_dispatch_and_reject_unknown_names() -> None:
    assert TRANSLATION_INITS == ("fairseq", "hf", "tfixup", "deepnet")
    torch.manual_seed(0)
    model = MarianMTModel(post_ln_config("tiny", vocab_size=64))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    assert apply_translation_init_(model, "hf") is model
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())  # 'hf': left as built
    model_t, twin = _twins(lambda m: apply_translation_init_(m, "tfixup"), vocab_size=64)
    torch.manual_seed(0)
    _expect_scaled(model_t, tfixup_init_(MarianMTModel(post_ln_config("tiny", vocab_size=64))), {})
    with pytest.raises(ValueError, match="init must be one of fairseq, hf, tfixup, deepnet, got 'fixup'"):
        apply_translation_init_(model, "fixup")
    with pytest.raises(ValueError, match="tfixup_init_ needs an encoder-decoder .* Use fairseq_init_"):
        tfixup_init_(nn.Sequential(nn.Linear(4, 4)))
