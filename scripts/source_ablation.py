"""Does a translation model use its source? Its validation loss with each pair's own source and with another's.

A model that has learnt only the target language (a language model of the target side, whose plateau lies below the
unigram one) scores the same either way; a model that translates scores far worse with the wrong source. Scores a
saved model (`train_mt.py`'s `final/`) on the first `--sentences` validation pairs in eval mode, once as they are and
once with the sources rolled by one (pair i gets pair i+1's source, the targets stay), and prints both label-smoothed
losses and their difference.

    python scripts/source_ablation.py runs/quickstart/gradinit/final --source toy
"""

from __future__ import annotations

import argparse
import json

from datasets import Dataset, DatasetDict
from transformers import AutoModelForSeq2SeqLM

from hf_gradinit.translation import evaluate_translation, load_tokenizers, load_translation_corpus, tokenize_translation


def with_other_sources(pairs: list[dict[str, str]]) -> list[dict[str, str]]:
    """The same targets, each with the next pair's source (the last with the first's)."""
    if len(pairs) < 2:
        raise ValueError(f"Rolling the sources needs at least 2 pairs, got {len(pairs)}; pass a larger --sentences.")
    return [{"de": other["de"], "en": pair["en"]} for pair, other in zip(pairs, pairs[1:] + pairs[:1])]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="A saved model with its tokenizer(s) (train_mt's final/).")
    parser.add_argument("--source", default="ding", help="The corpus it was trained on (train_mt --source).")
    parser.add_argument("--shared_vocab", choices=("true", "false"), default="true", help="As in train_mt.")
    parser.add_argument("--sentences", type=int, default=500, help="Validation pairs scored.")
    parser.add_argument("--label_smoothing", type=float, default=0.1)
    args = parser.parse_args(argv)
    tokenizer, target_tokenizer = load_tokenizers(args.model_dir, args.shared_vocab == "true")
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model_dir)
    validation = load_translation_corpus(args.source)[0]["validation"]
    pairs = validation.select(range(min(args.sentences, len(validation))))["translation"]
    losses = {}
    for name, scored in (("own_source", pairs), ("another_source", with_other_sources(pairs))):
        split = DatasetDict({"validation": Dataset.from_dict({"translation": scored})})
        tokens = tokenize_translation(split, tokenizer, target_tokenizer=target_tokenizer)["validation"]
        references = [pair["en"] for pair in scored]
        losses[name] = evaluate_translation(
            model, tokens, references, tokenizer, label_smoothing=args.label_smoothing, bleu_sentences=0,
            target_tokenizer=target_tokenizer,
        )["loss"]  # fmt: skip
    losses["difference"] = losses["another_source"] - losses["own_source"]
    print(json.dumps({key: round(value, 4) for key, value in losses.items()}))
    return losses


if __name__ == "__main__":
    main()
