"""A joint source/target BPE tokenizer (the fairseq/Marian set-up for related languages) and dataset tokenisation.

One vocabulary for both languages lets the model tie source, target and output embeddings, as the GradInit
IWSLT'14 de-en baseline does. Special-token ids are fixed: ``<pad>`` = 0, ``</s>`` (eos) = 1, ``<unk>`` = 2, so a
`MarianConfig` can use ``pad_token_id=0``, ``eos_token_id=1`` and ``decoder_start_token_id=0`` (Marian starts
decoding from the pad token). Every encoded sequence, source or target, ends with ``</s>``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from datasets import Dataset, DatasetDict
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "</s>", "<unk>"
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
SPECIAL_TOKENS = (PAD_TOKEN, EOS_TOKEN, UNK_TOKEN)  # trained in this order, hence the ids above


def translation_texts(corpus: Dataset | DatasetDict, splits: Iterable[str] = ("train",)) -> Iterator[str]:
    """Source and target sentences of a translation corpus (``{"translation": {...}}`` rows), all languages."""
    parts = [corpus[name] for name in splits] if isinstance(corpus, DatasetDict) else [corpus]
    for part in parts:
        for batch in part.iter(batch_size=1000):
            for pair in batch["translation"]:
                yield from pair.values()


def train_joint_bpe(
    texts: Iterable[str] | Dataset | DatasetDict,
    vocab_size: int = 8000,
    *,
    min_frequency: int = 2,
    lowercase: bool = False,
    model_max_length: int = 1024,
) -> PreTrainedTokenizerFast:
    """Train one BPE vocabulary on source and target text together and wrap it for `transformers`.

    `texts` is plain strings, or a translation Dataset/DatasetDict (then both languages of its train split are
    used). Pre-tokenisation is SentencePiece-style (``▁`` marks a word start), so decoding restores the spaces; NFKC
    normalisation. The result saves with `save_pretrained` and loads back with `AutoTokenizer.from_pretrained`.
    """
    if isinstance(texts, (Dataset, DatasetDict)):
        texts = translation_texts(texts)
    normalisation = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tokenizer.normalizer = normalizers.Sequence(normalisation)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS] != [PAD_ID, EOS_ID, UNK_ID]:
        raise RuntimeError("BPE training did not give the special tokens the ids 0, 1, 2.")
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}", pair=f"$A {EOS_TOKEN} $B {EOS_TOKEN}", special_tokens=[(EOS_TOKEN, EOS_ID)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=model_max_length,
        padding_side="right",
    )


def load_tokenizer(path: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """Load a tokenizer saved with `save_pretrained` (or a Hub id), checking it has the pad and eos tokens the
    collator and `MarianMTModel` need."""
    tokenizer = AutoTokenizer.from_pretrained(os.fspath(path))
    if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
        raise ValueError(f"The tokenizer at {os.fspath(path)!r} has no pad or eos token; translation needs both.")
    return tokenizer


def tokenize_translation(
    corpus: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    *,
    src_lang: str = "de",
    tgt_lang: str = "en",
    max_length: int = 256,
    num_proc: int | None = None,
) -> DatasetDict:
    """Replace the ``translation`` column by ``input_ids`` (source) and ``labels`` (target) token ids.

    Both sides use the same tokenizer and are truncated to `max_length` tokens, eos included (truncation keeps the
    final ``</s>``). Pairs with an empty side are kept; filter them beforehand if needed.
    """

    def encode(batch: dict[str, list[dict[str, str]]]) -> dict[str, list[list[int]]]:
        sources = [pair[src_lang] for pair in batch["translation"]]
        targets = [pair[tgt_lang] for pair in batch["translation"]]
        kwargs = {"truncation": True, "max_length": max_length, "add_special_tokens": True}
        return {
            "input_ids": tokenizer(sources, **kwargs)["input_ids"],
            "labels": tokenizer(targets, **kwargs)["input_ids"],
        }

    return corpus.map(
        encode,
        batched=True,
        num_proc=num_proc,
        remove_columns=corpus[next(iter(corpus))].column_names,
        desc="Tokenising",
    )
