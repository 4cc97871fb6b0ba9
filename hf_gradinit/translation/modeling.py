"""Post-LN translation models from a preset and a tokenizer (or a source and a target tokenizer), initialised as the
comparison needs."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn
from transformers import MarianMTModel, PreTrainedTokenizerBase

from .presets import deepnet_init_, fairseq_init_, post_ln_config, tfixup_init_

#: `init` names: fairseq's Xavier init, Hugging Face's N(0, 0.02), and two depth-scaled variants of fairseq's init.
TRANSLATION_INITS = ("fairseq", "hf", "tfixup", "deepnet")
_INITIALISERS = {"fairseq": fairseq_init_, "tfixup": tfixup_init_, "deepnet": deepnet_init_}


def apply_translation_init_(model: nn.Module, init: Literal["fairseq", "hf", "tfixup", "deepnet"]) -> nn.Module:
    """Re-initialise `model` in place with one of `TRANSLATION_INITS` ('hf': keep Hugging Face's init); returns it."""
    if init not in TRANSLATION_INITS:
        raise ValueError(f"init must be one of {', '.join(TRANSLATION_INITS)}, got {init!r}.")
    return _INITIALISERS[init](model) if init in _INITIALISERS else model


def build_translation_model(
    preset: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    target_tokenizer: PreTrainedTokenizerBase | None = None,
    init: Literal["fairseq", "hf", "tfixup", "deepnet"] = "fairseq",
    **overrides: Any,
) -> MarianMTModel:
    """A Post-LN `MarianMTModel` of `preset`, with vocabulary sizes and special ids from the tokenizer(s).

    One `tokenizer`: a joint vocabulary, one embedding for encoder, decoder and output. With `target_tokenizer`
    too: separate vocabularies (fairseq's IWSLT'14 layout), the encoder embedding sized by `tokenizer`, the decoder's
    by `target_tokenizer` and tied to the output projection. `init='fairseq'` re-initialises the model as fairseq
    does (the init under which Post-LN without warmup fails, and the one GradInit was published with); `'hf'` keeps
    Hugging Face's N(0, 0.02); `'tfixup'` and `'deepnet'` are fairseq's init with T-Fixup's or DeepNet's depth-scaled
    factors (`tfixup_init_`, `deepnet_init_`: variants on Post-LN, LayerNorm kept). Seed torch beforehand for a
    reproducible model. `overrides` are `MarianConfig` fields (e.g. `dropout`).
    """
    if init not in TRANSLATION_INITS:
        raise ValueError(f"init must be one of {', '.join(TRANSLATION_INITS)}, got {init!r}.")
    separate = target_tokenizer is not None and target_tokenizer is not tokenizer
    if separate and (target_tokenizer.pad_token_id, target_tokenizer.eos_token_id) != (
        tokenizer.pad_token_id,
        tokenizer.eos_token_id,
    ):
        raise ValueError(
            "The source and target tokenizers must give <pad> and </s> the same ids (one MarianConfig holds them); "
            "build both with train_separate_bpe."
        )
    config = post_ln_config(
        preset,
        vocab_size=len(tokenizer),
        decoder_vocab_size=len(target_tokenizer) if separate else None,
        shared_vocab=not separate,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **overrides,
    )
    return apply_translation_init_(MarianMTModel(config), init)
