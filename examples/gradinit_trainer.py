"""Train a small causal LM from scratch with GradInitTrainer: GradInit first, then training without warmup.

The data is generated (sequences that count up modulo the vocabulary size), so it runs anywhere, on CPU in about a
minute:

    python examples/gradinit_trainer.py --output_dir gradinit-counting-lm
    python examples/gradinit_trainer.py --help              # every TrainingArguments and gradinit_* option
    python examples/gradinit_trainer.py --gradinit false    # the same run without GradInit, to compare

The output directory gets the model, `gradinit_scales.json`, `gradinit_scales.png` and a README.md model card.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from datasets import Dataset
from transformers import GPT2Config, GPT2LMHeadModel, HfArgumentParser

from hf_gradinit import GradInitTrainer, GradInitTrainingArguments


@dataclass
class ExampleArguments:
    vocab_size: int = field(default=64, metadata={"help": "Vocabulary size (the counting is modulo this)."})
    sequence_length: int = field(default=32, metadata={"help": "Tokens per example."})
    num_examples: int = field(default=2048, metadata={"help": "Generated training examples."})
    hidden_size: int = field(default=64, metadata={"help": "Model width."})
    num_layers: int = field(default=2, metadata={"help": "Transformer layers."})


def counting_dataset(args: ExampleArguments, seed: int) -> Dataset:
    """Each example counts up from a random start, modulo the vocabulary: next token = this token + 1."""
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, args.vocab_size, (args.num_examples, 1), generator=generator)
    ids = (starts + torch.arange(args.sequence_length)) % args.vocab_size
    return Dataset.from_dict({"input_ids": ids.tolist()})


def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
    ids = torch.tensor([row["input_ids"] for row in rows])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def main() -> None:
    parser = HfArgumentParser((ExampleArguments, GradInitTrainingArguments))
    parser.set_defaults(
        output_dir="gradinit-counting-lm",
        gradinit=True,
        gradinit_iterations=100,
        gradinit_target_lr=2e-3,  # GradInit optimises the first step of the optimizer at the training peak lr
        learning_rate=2e-3,
        warmup_steps=0,  # what GradInit is for
        max_steps=300,
        per_device_train_batch_size=32,
        logging_steps=25,
        save_strategy="no",
        report_to="none",
    )
    example_args, training_args = parser.parse_args_into_dataclasses()

    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=example_args.vocab_size,
            n_positions=example_args.sequence_length,
            n_embd=example_args.hidden_size,
            n_layer=example_args.num_layers,
            n_head=4,
            bos_token_id=0,
            eos_token_id=0,
        )
    )
    trainer = GradInitTrainer(
        model=model,
        args=training_args,
        train_dataset=counting_dataset(example_args, training_args.seed),
        data_collator=collate,
    )
    trainer.train()
    trainer.save_model()
    trainer.create_model_card(model_name="gradinit-counting-lm")

    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    print(f"training loss: first logged {losses[0]:.3f}, last logged {losses[-1]:.3f}")
    if trainer.gradinit_result is not None:
        summary = trainer.gradinit_result.summary()
        print(
            f"GradInit: {summary['blocks']} scales from {summary['scale_min']:.3f} to {summary['scale_max']:.3f}; "
            f"saved to {training_args.output_dir}/gradinit_scales.json"
        )


if __name__ == "__main__":
    main()
