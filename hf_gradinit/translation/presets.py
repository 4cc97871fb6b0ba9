"""Post-LN encoder-decoder presets on the stock `MarianConfig`, and fairseq's initialisation for them.

GradInit's headline result is that a Post-LN Transformer trains without learning-rate warmup once GradInit has
rescaled its initial weights. Marian is the Hugging Face model closest to fairseq's Post-LN `transformer`: LayerNorm
after each residual block, frozen sinusoidal positions, no final encoder/decoder LayerNorm, no `layernorm_embedding`.
Building the paper's models on the stock `MarianConfig`/`MarianMTModel` means every checkpoint loads back with plain
`AutoModelForSeq2SeqLM.from_pretrained`, with no custom code.
"""

from __future__ import annotations

import difflib
from dataclasses import fields
from types import MappingProxyType
from typing import Any

import torch
from torch import nn
from transformers import MarianConfig
from transformers.activations import ACT2FN

from ..blocks import is_norm_layer

__all__ = [
    "POST_LN_PRESETS",
    "deepnet_init_",
    "fairseq_init_",
    "freeze_sinusoidal_positions_",
    "post_ln_config",
    "tfixup_init_",
]


def _preset(
    layers: int,
    d_model: int,
    ffn_dim: int,
    heads: int,
    dropout: float,
    shared_vocab: bool,
    vocab_size: int,
    decoder_vocab_size: int | None = None,
    attention_dropout: float = 0.0,
    activation_dropout: float = 0.0,
) -> MappingProxyType:
    return MappingProxyType(
        {
            "encoder_layers": layers,
            "decoder_layers": layers,
            "d_model": d_model,
            "encoder_ffn_dim": ffn_dim,
            "decoder_ffn_dim": ffn_dim,
            "encoder_attention_heads": heads,
            "decoder_attention_heads": heads,
            "activation_function": "relu",
            "dropout": dropout,
            "attention_dropout": attention_dropout,
            "activation_dropout": activation_dropout,
            "scale_embedding": True,  # fairseq multiplies token embeddings by sqrt(d_model)
            "shared_vocab": shared_vocab,
            "vocab_size": vocab_size,
            "decoder_vocab_size": vocab_size if decoder_vocab_size is None else decoder_vocab_size,
        }
    )


#: Preset name -> settings (read-only). `shared_vocab`, `vocab_size` and `decoder_vocab_size` are defaults that the
#: arguments of `post_ln_config` replace; every other entry is a `MarianConfig` field.
POST_LN_PRESETS: MappingProxyType[str, MappingProxyType[str, Any]] = MappingProxyType(
    {
        # fairseq `transformer_iwslt_de_en`; 8848/6632 are the sizes of fairseq's IWSLT'14 de/en BPE dictionaries.
        "iwslt14-de-en": _preset(
            6, 512, 1024, 4, 0.3, False, 8848, 6632, attention_dropout=0.1, activation_dropout=0.1
        ),
        # Vaswani et al. (2017) base and big (fairseq `transformer_wmt_en_de`, `transformer_vaswani_wmt_en_de_big`).
        "wmt14-en-de-base": _preset(6, 512, 2048, 8, 0.1, True, 32768),
        "wmt14-en-de-big": _preset(6, 1024, 4096, 16, 0.3, True, 32768),
        # CPU scale: `tiny` for unit tests, `small` for benchmarks, the stability sweep and the quickstart.
        "tiny": _preset(2, 32, 64, 4, 0.1, True, 64),
        "small": _preset(6, 128, 512, 4, 0.1, True, 8000),
    }
)

_OVERRIDABLE = frozenset(f.name for f in fields(MarianConfig)) | {"attn_implementation"}
_SET_BY_ARGUMENT = {"share_encoder_decoder_embeddings": "shared_vocab"}


def post_ln_config(
    preset: str,
    *,
    vocab_size: int | None = None,
    decoder_vocab_size: int | None = None,
    shared_vocab: bool | None = None,
    pad_token_id: int = 1,
    eos_token_id: int = 2,
    decoder_start_token_id: int | None = None,
    max_position_embeddings: int = 1024,
    **overrides: Any,
) -> MarianConfig:
    """A `MarianConfig` for one of `POST_LN_PRESETS`: a Post-LN encoder-decoder that loads with stock transformers.

    Vocabularies: with `shared_vocab=True` source and target share one embedding (also the output projection); with
    `False` they are separate and only the decoder's input/output embeddings are tied (fairseq's
    `--share-decoder-input-output-embed`). `None` takes the preset's mode, but a `decoder_vocab_size` different from
    `vocab_size` implies separate vocabularies. Without `vocab_size` the preset's default sizes apply; with only
    `vocab_size`, the target vocabulary has the same size.

    Token ids follow fairseq's dictionary (pad 1, eos 2); the decoder starts from `pad` as in Marian. Any other
    `MarianConfig` field can be set through `overrides` (applied last); an unknown field raises ValueError, so a typo
    cannot pass silently.
    """
    if preset not in POST_LN_PRESETS:
        raise ValueError(f"Unknown Post-LN preset {preset!r}; valid presets: {', '.join(POST_LN_PRESETS)}.")
    for key in overrides:
        if key in _SET_BY_ARGUMENT:
            raise ValueError(f"Set {key!r} through the `{_SET_BY_ARGUMENT[key]}` argument, not as an override.")
        if key not in _OVERRIDABLE:
            close = difflib.get_close_matches(key, sorted(_OVERRIDABLE), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"{key!r} is not a MarianConfig field.{hint}")

    settings = dict(POST_LN_PRESETS[preset])
    preset_shared = settings.pop("shared_vocab")
    preset_vocab, preset_decoder_vocab = settings.pop("vocab_size"), settings.pop("decoder_vocab_size")
    if vocab_size is None and decoder_vocab_size is None:
        vocab_size, decoder_vocab_size = preset_vocab, preset_decoder_vocab
    elif vocab_size is None:
        raise ValueError("Pass `vocab_size` (the source vocabulary) together with `decoder_vocab_size`.")
    if shared_vocab is None:
        shared_vocab = preset_shared and decoder_vocab_size in (None, vocab_size)
    if shared_vocab and decoder_vocab_size not in (None, vocab_size):
        raise ValueError(
            f"shared_vocab=True needs one vocabulary, but vocab_size={vocab_size} and "
            f"decoder_vocab_size={decoder_vocab_size}; pass shared_vocab=False for separate vocabularies."
        )
    if shared_vocab or decoder_vocab_size is None:
        decoder_vocab_size = vocab_size
    if decoder_start_token_id is None:
        decoder_start_token_id = pad_token_id

    settings.update(
        vocab_size=vocab_size,
        decoder_vocab_size=decoder_vocab_size,
        share_encoder_decoder_embeddings=shared_vocab,
        tie_word_embeddings=True,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        forced_eos_token_id=eos_token_id,
        decoder_start_token_id=decoder_start_token_id,
        max_position_embeddings=max_position_embeddings,
    )
    settings.update(overrides)
    _check(settings)
    return MarianConfig(**settings)


def _check(settings: dict[str, Any]) -> None:
    """Reject values that MarianConfig accepts but that fail (or silently misbehave) when the model is built."""
    for key in ("vocab_size", "decoder_vocab_size", "d_model", "max_position_embeddings"):
        if not isinstance(settings[key], int) or settings[key] <= 0:
            raise ValueError(f"{key} must be a positive integer, got {settings[key]!r}.")
    for side in ("encoder", "decoder"):
        heads = settings[f"{side}_attention_heads"]
        if not isinstance(heads, int) or heads <= 0 or settings["d_model"] % heads:
            raise ValueError(f"d_model={settings['d_model']} is not divisible by {side}_attention_heads={heads!r}.")
        for key in (f"{side}_layers", f"{side}_ffn_dim"):
            if not isinstance(settings[key], int) or settings[key] <= 0:
                raise ValueError(f"{key} must be a positive integer, got {settings[key]!r}.")
    for key in ("dropout", "attention_dropout", "activation_dropout"):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ValueError(f"{key} must be in [0, 1), got {settings[key]!r}.")
    if settings["activation_function"] not in ACT2FN:
        raise ValueError(f"Unknown activation_function {settings['activation_function']!r}.")
    smallest_vocab = min(settings["vocab_size"], settings["decoder_vocab_size"])
    for key in ("pad_token_id", "eos_token_id", "decoder_start_token_id"):
        if not isinstance(settings[key], int) or not 0 <= settings[key] < smallest_vocab:
            raise ValueError(f"{key}={settings[key]!r} is outside the vocabulary (size {smallest_vocab}).")


def fairseq_init_(model: nn.Module) -> nn.Module:
    """Re-initialise `model` in place as fairseq initialises its Transformer; returns the model.

    Why: GradInit's "Post-LN without warmup diverges" baseline was measured on fairseq models, whose initialisation
    differs from Hugging Face's (`_init_weights`: N(0, config.init_std=0.02) for every matrix, which is what a model
    has when this function is not called). fairseq uses Xavier-uniform matrices, and token embeddings N(0, d^-1/2)
    so that, scaled by sqrt(d), they have unit variance; with tied output embeddings the logits then start at unit
    scale.

    What: every `nn.Linear` weight Xavier-uniform, every bias zero; every trainable `nn.Embedding` N(0, d^-1/2) with
    its padding row (its `padding_idx`, else `config.pad_token_id`) zero; norm layers weight 1, bias 0. Frozen
    embeddings and sinusoidal position tables are left alone; the latter are recognised by class name too, because
    transformers 5.x's `from_pretrained` makes Marian's `embed_positions.weight` trainable. Embeddings are
    initialised after the Linear layers, so an output projection tied to an embedding keeps the embedding's init; an
    untied output projection (`get_output_embeddings()`) gets N(0, d^-1/2) as in fairseq. Tied tensors stay tied
    (nothing is replaced, only written in place). Other module types (convolutions, GPT-2's `Conv1D`, custom
    parameters) are not touched, so it works on any model made of Linear/Embedding/norm layers, not only Marian.

    Simplification: current fairseq draws q/k/v projections with Xavier gain 2^-1/2 and leaves FFN layers and
    q/k/v biases at PyTorch's `nn.Linear` default; here every Linear is plain Xavier-uniform with zero bias.
    """
    config = getattr(model, "config", None)
    config_pad = getattr(config, "pad_token_id", None)
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    embeddings = [
        m
        for m in model.modules()
        if isinstance(m, nn.Embedding) and m.weight.requires_grad and "Sinusoidal" not in type(m).__name__
    ]
    norms = [m for m in model.modules() if is_norm_layer(m)]

    for linear in linears:
        nn.init.xavier_uniform_(linear.weight)
        if linear.bias is not None:
            nn.init.zeros_(linear.bias)
    if isinstance(output, nn.Linear) and output.weight.requires_grad:
        nn.init.normal_(output.weight, mean=0.0, std=output.in_features**-0.5)
    for embedding in embeddings:
        nn.init.normal_(embedding.weight, mean=0.0, std=embedding.embedding_dim**-0.5)
        pad = embedding.padding_idx if embedding.padding_idx is not None else config_pad
        if isinstance(pad, int) and -embedding.num_embeddings <= pad < embedding.num_embeddings:
            with torch.no_grad():
                embedding.weight[pad].zero_()
    for norm in norms:
        weight, bias = getattr(norm, "weight", None), getattr(norm, "bias", None)
        if isinstance(weight, nn.Parameter):
            nn.init.ones_(weight)
        if isinstance(bias, nn.Parameter):
            nn.init.zeros_(bias)
    final_logits_bias = getattr(model, "final_logits_bias", None)  # Marian's output bias buffer; fairseq has none
    if isinstance(final_logits_bias, torch.Tensor):
        with torch.no_grad():
            final_logits_bias.zero_()
    return model


def tfixup_init_(model: nn.Module) -> nn.Module:
    """fairseq's init (`fairseq_init_`), then T-Fixup's depth-dependent scales (Huang et al., 2020); returns the model.

    Why: a comparator that, like GradInit, changes only the initial weights. It is a *variant* on this Post-LN
    architecture: published T-Fixup also removes every LayerNorm (and the warmup), here LayerNorm stays.

    What, with N encoder and M decoder layers, each a multiplier on the Xavier-initialised weight: encoder `fc1`,
    `fc2`, self-attention `v_proj` and `out_proj` by 0.67 N^(-1/4); decoder `fc1`, `fc2`, self- and cross-attention
    `v_proj` and `out_proj` by (9M)^(-1/4); token embeddings (N(0, d^-1/2)) by (9N)^(-1/4) in the encoder and
    (9M)^(-1/4) in the decoder (and so the output projection tied to it). T-Fixup's `v_proj` scale assumes a Xavier
    gain of 1; fairseq draws `v_proj` with gain 2^(-1/2) and T-Fixup's code multiplies by sqrt(2) to undo it, but
    `fairseq_init_` already uses gain 1, so `v_proj` gets the same factor as `out_proj`. One embedding shared by
    encoder and decoder gets the smaller of the two factors, (9 max(N, M))^(-1/4): the bound of the deeper stack then
    holds for both (the factors are equal when N = M, as in every preset). Biases (zero), q/k projections, LayerNorms
    and positions keep fairseq's init.
    """
    fairseq_init_(model)
    encoder, decoder = _layer_stacks(model, "tfixup_init_")
    n, m = len(encoder), len(decoder)
    _scale_residual_branches(encoder, 0.67 * n**-0.25)
    _scale_residual_branches(decoder, (9 * m) ** -0.25)
    source, target = model.get_encoder().embed_tokens.weight, model.get_decoder().embed_tokens.weight
    with torch.no_grad():
        if source is target:
            source.mul_((9 * max(n, m)) ** -0.25)
        else:
            source.mul_((9 * n) ** -0.25)
            target.mul_((9 * m) ** -0.25)
    return model


def deepnet_init_(model: nn.Module) -> nn.Module:
    """fairseq's init (`fairseq_init_`), then DeepNet's Xavier gain beta (Wang et al., 2022); returns the model.

    Why: the init-only half of DeepNorm, as a comparator for GradInit. It is a *variant* on this Post-LN
    architecture: DeepNorm also multiplies every residual shortcut by alpha (an architecture change), here the
    residual is left as it is.

    What, with N encoder and M decoder layers: `fc1`, `fc2`, and `v_proj` and `out_proj` of every attention (decoder
    cross-attention included) are multiplied by beta, i.e. Xavier-initialised with gain beta: encoder
    beta = 0.87 (N^4 M)^(-1/16), decoder beta = (12M)^(-1/4). Everything else keeps fairseq's init.
    """
    fairseq_init_(model)
    encoder, decoder = _layer_stacks(model, "deepnet_init_")
    n, m = len(encoder), len(decoder)
    _scale_residual_branches(encoder, 0.87 * (n**4 * m) ** (-1 / 16))
    _scale_residual_branches(decoder, (12 * m) ** -0.25)
    return model


def _layer_stacks(model: nn.Module, name: str) -> tuple[list[nn.Module], list[nn.Module]]:
    """The encoder and decoder layers of a BART-family encoder-decoder (Marian, BART, mBART, ...)."""
    try:
        return list(model.get_encoder().layers), list(model.get_decoder().layers)
    except AttributeError as error:
        raise ValueError(
            f"{name} needs an encoder-decoder with get_encoder().layers and get_decoder().layers (Marian, BART); "
            f"{type(model).__name__} has none. Use fairseq_init_ for other models."
        ) from error


def _scale_residual_branches(layers: list[nn.Module], factor: float) -> None:
    """Multiply the weights on each layer's residual branches by `factor`: `v_proj` and `out_proj` of every attention,
    `fc1`, `fc2` (neither method scales q/k)."""
    for layer in layers:
        attentions = [layer.self_attn] + ([layer.encoder_attn] if hasattr(layer, "encoder_attn") else [])
        weights = [a.v_proj.weight for a in attentions] + [a.out_proj.weight for a in attentions]
        with torch.no_grad():
            for weight in [*weights, layer.fc1.weight, layer.fc2.weight]:
                weight.mul_(factor)


def freeze_sinusoidal_positions_(model: nn.Module) -> int:
    """Make every sinusoidal position table frozen again (`requires_grad=False`); returns how many were thawed.

    Why: transformers 5.x's `from_pretrained` leaves Marian's `embed_positions.weight` trainable, so a model loaded
    for further training would learn its fixed position code and GradInit would count it as a block. Call this after
    loading a checkpoint, before GradInit or creating the optimizer.
    """
    thawed = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if "Sinusoidal" in type(module).__name__ and isinstance(weight, nn.Parameter) and weight.requires_grad:
            weight.requires_grad_(False)
            thawed += 1
    return thawed
