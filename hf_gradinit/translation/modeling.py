"""Post-LN translation models from a preset and a tokenizer, initialised as the comparison needs."""

from __future__ import annotations

from typing import Any, Literal

from transformers import MarianMTModel, PreTrainedTokenizerBase

from .presets import fairseq_init_, post_ln_config

TRANSLATION_INITS = ("fairseq", "hf")


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
