"""The data arguments of the translation toolkit, shared by `train_mt.py` and `hf-gradinit init`."""

from __future__ import annotations

from dataclasses import dataclass, field

from datasets import DatasetDict

from .data import load_translation_corpus


@dataclass
class TranslationDataArguments:
    """Where the parallel text comes from and how it is split, tokenised and cut."""

    source: str = field(
        default="auto",
        metadata={
            "help": "Corpus: 'ding' (Ding dictionary sentences, `apt-get install trans-de-en`), 'toy' (generated "
            "grammar, always available), 'auto' (ding if installed, else toy), a local JSONL/TSV/parquet file or "
            "directory with a `translation` column, or a Hub dataset id such as 'wmt/wmt14' (config 'de-en') or "
            "'bbaaaa/iwslt14-de-en' (revision 'refs/convert/parquet')."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset config, e.g. 'de-en'."})
    dataset_revision: str | None = field(
        default=None, metadata={"help": "Hub dataset revision, e.g. 'refs/convert/parquet'."}
    )
    src_lang: str = field(default="de", metadata={"help": "Source language key of the `translation` rows."})
    tgt_lang: str = field(default="en", metadata={"help": "Target language key of the `translation` rows."})
    split_seed: int = field(
        default=0, metadata={"help": "Seed of the fixed train/validation/test split of single-split sources."}
    )
    valid_size: int | None = field(
        default=None,
        metadata={"help": "Validation pairs carved out of train when missing (default: min(1000, 5 percent))."},
    )
    test_size: int | None = field(
        default=None, metadata={"help": "Test pairs carved out of train when missing (default: min(1000, 5 percent))."}
    )
    max_train_pairs: int | None = field(
        default=None, metadata={"help": "Keep a seeded subset of at most this many training pairs."}
    )
    toy_size: int = field(default=50_000, metadata={"help": "Number of pairs of the 'toy' corpus."})
    max_length: int = field(
        default=256, metadata={"help": "Truncate source and target to this many tokens (eos included)."}
    )

    def __post_init__(self) -> None:
        for name in ("valid_size", "test_size", "max_train_pairs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive number of pairs, got {value}.")
        if self.toy_size < 3:
            raise ValueError(f"toy_size must be at least 3 (train, validation, test), got {self.toy_size}.")
        if self.max_length < 2:
            raise ValueError(f"max_length must be at least 2 tokens, got {self.max_length}.")


def load_translation_data(args: TranslationDataArguments) -> tuple[DatasetDict, str]:
    """The corpus named by `args`, with fixed-seed train/validation/test splits, and a description of its source."""
    return load_translation_corpus(
        args.source,
        src_lang=args.src_lang,
        tgt_lang=args.tgt_lang,
        config_name=args.dataset_config_name,
        revision=args.dataset_revision,
        split_seed=args.split_seed,
        valid_size=args.valid_size,
        test_size=args.test_size,
        max_pairs=args.max_train_pairs,
        toy_size=args.toy_size,
    )
