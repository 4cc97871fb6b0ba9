"""Translation data for GradInit experiments: corpora, joint BPE tokenizers (one shared vocabulary, or one per
language over joint codes), ``--max-tokens`` batching.

Typical use::

    corpus, description = load_translation_corpus("auto")          # Ding if installed, else the toy grammar
    tokenizer = train_joint_bpe(corpus["train"], vocab_size=8000)
    tokens = tokenize_translation(corpus, tokenizer, max_length=256)
    sampler = MaxTokensBatchSampler(example_lengths(tokens["train"]), max_tokens=4096, num_replicas=world, rank=rank)
    loader = DataLoader(tokens["train"], batch_sampler=sampler, collate_fn=translation_collator(tokenizer))
"""

from .corpus import BUILTIN_SOURCES, SPLITS, load_translation_corpus
from .ding import DING_PATH, extract_ding_pairs, parse_ding_line
from .errors import CorpusUnavailableError
from .sampling import MaxTokensBatchSampler, example_lengths, max_tokens_batches, translation_collator
from .tokenizer import (
    EOS_ID,
    EOS_TOKEN,
    PAD_ID,
    PAD_TOKEN,
    TARGET_TOKENIZER_DIR,
    UNK_ID,
    UNK_TOKEN,
    load_tokenizer,
    load_tokenizers,
    restrict_bpe_vocabulary,
    tokenize_translation,
    train_joint_bpe,
    train_separate_bpe,
    translation_texts,
)
from .toy import generate_toy_pairs

__all__ = [
    "BUILTIN_SOURCES",
    "DING_PATH",
    "EOS_ID",
    "EOS_TOKEN",
    "PAD_ID",
    "PAD_TOKEN",
    "SPLITS",
    "TARGET_TOKENIZER_DIR",
    "UNK_ID",
    "UNK_TOKEN",
    "CorpusUnavailableError",
    "MaxTokensBatchSampler",
    "example_lengths",
    "extract_ding_pairs",
    "generate_toy_pairs",
    "load_tokenizer",
    "load_tokenizers",
    "load_translation_corpus",
    "max_tokens_batches",
    "parse_ding_line",
    "restrict_bpe_vocabulary",
    "tokenize_translation",
    "train_joint_bpe",
    "train_separate_bpe",
    "translation_collator",
    "translation_texts",
]
