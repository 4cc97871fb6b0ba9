"""A joint source/target BPE tokenizer (the fairseq/Marian set-up for related languages), its per-language
restrictions (separate vocabularies from joint BPE codes), and dataset tokenisation.

One vocabulary for both languages lets the model tie source, target and output embeddings. fairseq's IWSLT'14 de-en
recipe (the GradInit paper's) instead learns joint BPE codes but keeps one dictionary per language: the tokens each
side's training text uses; `train_separate_bpe` builds that pair. Special-token ids are fixed: ``<pad>`` = 0,
``</s>`` (eos) = 1, ``<unk>`` = 2 in every vocabulary, so a `MarianConfig` can use ``pad_token_id=0``,
``eos_token_id=1`` and ``decoder_start_token_id=0`` (Marian starts decoding from the pad token). Every encoded
sequence, source or target, ends with ``</s>``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator

from datasets import Dataset, DatasetDict
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "</s>", "<unk>"
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
SPECIAL_TOKENS = (PAD_TOKEN, EOS_TOKEN, UNK_TOKEN)  # trained in this order, hence the ids above
#: Where a model directory with separate vocabularies keeps its target-side tokenizer (the source one is at the top).
TARGET_TOKENIZER_DIR = "target_tokenizer"


def translation_texts(
    corpus: Dataset | DatasetDict, splits: Iterable[str] = ("train",), *, lang: str | None = None
) -> Iterator[str]:
    """Sentences of a translation corpus (``{"translation": {...}}`` rows): all languages, or only `lang`."""
    parts = [corpus[name] for name in splits] if isinstance(corpus, DatasetDict) else [corpus]
    for part in parts:
        for batch in part.iter(batch_size=1000):
            for pair in batch["translation"]:
                yield from pair.values() if lang is None else (pair[lang],)


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


def restrict_bpe_vocabulary(tokenizer: PreTrainedTokenizerFast, texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """The BPE tokenizer of one language from joint BPE codes: same merges, a vocabulary of that language only.

    The vocabulary is the special tokens (same ids), every token the joint tokenizer produces on `texts`, and every
    token the BPE model needs to build those (the parts of their merges, recursively); the merges are the joint ones
    that build these tokens, in the same order. So on `texts` (and any text made of the same words) it splits exactly
    as the joint tokenizer does, only with its own, smaller id space: fairseq's per-language dictionaries over joint
    BPE codes. Characters or tokens the language never used become ``<unk>``.
    """
    backend = tokenizer.backend_tokenizer
    joint_ids = backend.get_vocab()
    state = json.loads(backend.to_str())
    if state["model"].get("type") != "BPE" or [joint_ids.get(t) for t in SPECIAL_TOKENS] != [PAD_ID, EOS_ID, UNK_ID]:
        raise ValueError(
            "restrict_bpe_vocabulary needs a BPE tokenizer with <pad>, </s>, <unk> = 0, 1, 2 (from train_joint_bpe)."
        )
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["model"]["merges"]]
    built_by: dict[str, list[tuple[str, ...]]] = {}
    for merge in merges:
        built_by.setdefault("".join(merge), []).append(merge)

    todo = list(SPECIAL_TOKENS)
    for batch in _batches(texts, 1000):
        for encoding in backend.encode_batch(batch, add_special_tokens=False):
            todo += encoding.tokens
    needed: set[str] = set()
    while todo:  # a needed token needs the parts of every merge that can build it
        token = todo.pop()
        if token not in needed:
            needed.add(token)
            todo += [part for merge in built_by.get(token, ()) for part in merge]
    order = [*SPECIAL_TOKENS, *sorted(needed - set(SPECIAL_TOKENS), key=joint_ids.__getitem__)]
    state["model"]["vocab"] = {token: index for index, token in enumerate(order)}
    state["model"]["merges"] = [list(merge) for merge in merges if "".join(merge) in needed]
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(state)),
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=tokenizer.model_max_length,
        padding_side="right",
    )


def train_separate_bpe(
    corpus: Dataset | DatasetDict,
    vocab_size: int = 8000,
    *,
    src_lang: str = "de",
    tgt_lang: str = "en",
    min_frequency: int = 2,
    lowercase: bool = False,
    model_max_length: int = 1024,
) -> tuple[PreTrainedTokenizerFast, PreTrainedTokenizerFast]:
    """Source and target tokenizers with separate vocabularies over joint BPE codes (fairseq's IWSLT'14 set-up).

    One BPE of `vocab_size` tokens is learnt on both languages of the training split (`train_joint_bpe`); each side
    then keeps the tokens its own training text uses (`restrict_bpe_vocabulary`), so the two vocabularies are smaller
    than `vocab_size` and differ in size. Save the target one inside the model directory under
    `TARGET_TOKENIZER_DIR` (as `train_mt.py` does) and decode translations with it.
    """
    joint = train_joint_bpe(
        corpus, vocab_size, min_frequency=min_frequency, lowercase=lowercase, model_max_length=model_max_length
    )
    source = restrict_bpe_vocabulary(joint, translation_texts(corpus, lang=src_lang))
    return source, restrict_bpe_vocabulary(joint, translation_texts(corpus, lang=tgt_lang))


def _batches(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def load_tokenizer(path: str | os.PathLike[str], subfolder: str | None = None) -> PreTrainedTokenizerBase:
    """Load a tokenizer saved with `save_pretrained` (or a Hub id; `subfolder`, e.g. `TARGET_TOKENIZER_DIR`, for one
    saved inside it), checking it has the pad and eos tokens the collator and `MarianMTModel` need."""
    where = os.fspath(path) + (f"/{subfolder}" if subfolder else "")
    try:
        tokenizer = AutoTokenizer.from_pretrained(os.fspath(path), **({"subfolder": subfolder} if subfolder else {}))
    except (OSError, ValueError) as error:
        # A mistyped local path otherwise reads as a bare Hub error ("Repo id must be in the form ...").
        missing = "" if os.path.isdir(path) else " (not a local directory, so it was read as a Hub id: check the path)"
        raise ValueError(f"No tokenizer could be loaded from {where!r}{missing}: {error}") from error
    if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
        raise ValueError(f"The tokenizer at {where!r} has no pad or eos token; translation needs both.")
    return tokenizer


def load_tokenizers(
    path: str | os.PathLike[str], shared_vocab: bool
) -> tuple[PreTrainedTokenizerBase, PreTrainedTokenizerBase]:
    """The source and target tokenizers saved in `path`: the same object for a shared vocabulary, else the target one
    from its `TARGET_TOKENIZER_DIR` subfolder (as `train_mt.py` and `hf-gradinit init` save them)."""
    source = load_tokenizer(path)
    return source, source if shared_vocab else load_tokenizer(path, subfolder=TARGET_TOKENIZER_DIR)


def tokenize_translation(
    corpus: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    *,
    target_tokenizer: PreTrainedTokenizerBase | None = None,
    src_lang: str = "de",
    tgt_lang: str = "en",
    max_length: int = 256,
    num_proc: int | None = None,
) -> DatasetDict:
    """Replace the ``translation`` column by ``input_ids`` (source) and ``labels`` (target) token ids.

    Targets use `target_tokenizer` when given (separate vocabularies), else `tokenizer`. Both sides are truncated to
    `max_length` tokens, eos included (truncation keeps the final ``</s>``). Pairs with an empty side are kept;
    filter them beforehand if needed.
    """
    target_tokenizer = target_tokenizer or tokenizer

    def encode(batch: dict[str, list[dict[str, str]]]) -> dict[str, list[list[int]]]:
        sources = [pair[src_lang] for pair in batch["translation"]]
        targets = [pair[tgt_lang] for pair in batch["translation"]]
        kwargs = {"truncation": True, "max_length": max_length, "add_special_tokens": True}
        return {
            "input_ids": tokenizer(sources, **kwargs)["input_ids"],
            "labels": target_tokenizer(targets, **kwargs)["input_ids"],
        }

    return corpus.map(
        encode,
        batched=True,
        num_proc=num_proc,
        remove_columns=corpus[next(iter(corpus))].column_names,
        desc="Tokenising",
    )
