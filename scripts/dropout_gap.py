"""Is a stalled model's high validation loss a data / evaluation-path difference, or its dependence on dropout?

Scores a saved translation model (`train_mt.py`'s `final/`) on the first `--sentences` pairs of the training and of
the validation split, each in eval mode (dropout off, how validation is scored) and in train mode (dropout on, how
the training loss is measured; seeded), optionally under bf16 autocast, and prints the four label-smoothed losses.
Equal losses across splits in the same mode, and a gap between the modes on both, mean the gap is dropout's.

    python scripts/dropout_gap.py runs/stalled/final --source ding --autocast bf16
"""

from __future__ import annotations

import argparse
import contextlib
import json

import torch
from datasets import DatasetDict
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_gradinit.translation import evaluate_translation, load_translation_corpus, tokenize_translation


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="A saved model with its tokenizer (train_mt's final/).")
    parser.add_argument("--source", default="ding", help="The corpus it was trained on (train_mt --source).")
    parser.add_argument("--sentences", type=int, default=1000, help="Pairs scored from each split.")
    parser.add_argument("--label_smoothing", type=float, default=0.1)
    parser.add_argument("--autocast", choices=("no", "bf16"), default="no", help="Score under bf16 autocast.")
    args = parser.parse_args(argv)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model_dir)
    corpus, _ = load_translation_corpus(args.source)
    losses = {}
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if args.autocast == "bf16" else contextlib.nullcontext()
    for split in ("train", "validation"):
        pairs = corpus[split].select(range(min(args.sentences, len(corpus[split]))))
        tokens = tokenize_translation(DatasetDict({split: pairs}), tokenizer)[split]
        references = [pair["en"] for pair in pairs["translation"]]
        with autocast:
            scores = evaluate_translation(
                model, tokens, references, tokenizer, label_smoothing=args.label_smoothing, bleu_sentences=0,
                dropout_loss=True,
            )  # fmt: skip
        losses[f"{split}_eval_mode"], losses[f"{split}_dropout_on"] = scores["loss"], scores["loss_dropout"]
    print(json.dumps({key: round(value, 4) for key, value in losses.items()}))
    return losses


if __name__ == "__main__":
    main()
