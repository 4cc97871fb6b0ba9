"""Train a VGG or a CIFAR ResNet, with or without BatchNorm, on Fashion-MNIST with GradInitTrainer.

The paper's CIFAR-10 recipe (Zhu et al. 2021) on real 28x28 grey images: SGD with momentum 0.9, lr 0.1, batch 128,
weight decay 1e-4, cosine decay, no warmup, and gradient clipping at 1 for the models without BatchNorm. With
`--gradinit`, GradInit first learns the initial scale of every weight for the first step of this very run (SGD at
its lr, the CIFAR settings: normalized step, gradient-norm bound 1 on ||g||_2, clip 1, min(390, max_steps / 2)
iterations) with the paper's tau for the model, unless `--gradinit_scale_lr` is given.

    sudo apt-get install dataset-fashion-mnist     # the real images (Debian/Ubuntu); else --source synthetic
    python examples/image_classification/train_classifier.py --output_dir runs/vgg11 --model vgg --depth 11 \
        --batch_norm false --width_multiplier 0.25 --train_size 10000 --num_train_epochs 3 --gradinit
    python examples/image_classification/train_classifier.py --help   # every TrainingArguments / gradinit_* option

Writes to `output_dir`: `gradinit_scales.json` / `.png` (with `--gradinit`), `final/` (model and config: load it with
`hf_gradinit.vision.VGGForImageClassification.from_pretrained`, or `AutoModelForImageClassification` once
`hf_gradinit.vision.modeling` is imported), a README.md model card, and
`results.json`: test accuracy and loss, the training loss of the first epoch (the mean over its steps, as the
Trainer logs it per epoch) and of the last, the settings GradInit used, the optimizer, and wall times.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from transformers import EvalPrediction, HfArgumentParser, set_seed

from hf_gradinit import GradInitTrainer, GradInitTrainingArguments
from hf_gradinit.vision import (
    CIFAR_BATCH_SIZE,
    CIFAR_LEARNING_RATE,
    CIFAR_MOMENTUM,
    CIFAR_WEIGHT_DECAY,
    FASHION_MNIST_DIR,
    ImageCollator,
    build_image_classifier,
    load_image_dataset,
    published_max_grad_norm,
    published_scale_lr,
)

PAPER_DEPTH = {"vgg": 19, "resnet": 110}


@dataclass
class ClassifierArguments:
    source: Literal["fashion-mnist", "synthetic"] = field(
        default="fashion-mnist",
        metadata={
            "help": "Images: 'fashion-mnist' (real, from `apt-get install dataset-fashion-mnist`) or 'synthetic' "
            "(generated, learnable classes; for tests and machines without the package)."
        },
    )
    data_dir: str = field(
        default=str(FASHION_MNIST_DIR), metadata={"help": "Directory with Fashion-MNIST's four IDX files."}
    )
    model: Literal["vgg", "resnet"] = field(default="vgg", metadata={"help": "'vgg' or 'resnet' (CIFAR-style)."})
    depth: int | None = field(
        default=None,
        metadata={"help": "VGG: 11, 13, 16 or 19; ResNet: 6n + 2 (20, 56, 110...). Default: the paper's 19 / 110."},
    )
    batch_norm: bool = field(default=False, metadata={"help": "BatchNorm after every convolution."})
    width_multiplier: float = field(
        default=1.0, metadata={"help": "Channels times this (0.25: a quarter of the published width, for CPUs)."}
    )
    train_size: int | None = field(
        default=None,
        metadata={"help": "Train on only this many training images (the same ones every run). Default: all."},
    )
    validation_fraction: float = field(
        default=0.1, metadata={"help": "Share of the training images held out as the validation split."}
    )


def accuracy(prediction: EvalPrediction) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}


def apply_paper_defaults(args: ClassifierArguments, training_args: GradInitTrainingArguments) -> None:
    """Fill what the user left unset with the paper's per-model choices: depth, GradInit's tau, training clipping."""
    if args.depth is None:
        args.depth = PAPER_DEPTH[args.model]
    if training_args.gradinit_scale_lr is None:
        training_args.gradinit_scale_lr = published_scale_lr(args.model, args.batch_norm)
    if training_args.max_grad_norm is None:
        training_args.max_grad_norm = published_max_grad_norm(args.batch_norm)


def parse_arguments(argv: list[str] | None = None) -> tuple[ClassifierArguments, GradInitTrainingArguments]:
    """The command line (or `argv`) with the paper's recipe as defaults, per-model ones filled in."""
    parser = HfArgumentParser((ClassifierArguments, GradInitTrainingArguments))
    parser.set_defaults(
        output_dir="image-classifier",
        optim="sgd",
        optim_args=f"momentum={CIFAR_MOMENTUM}",
        learning_rate=CIFAR_LEARNING_RATE,
        weight_decay=CIFAR_WEIGHT_DECAY,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        per_device_train_batch_size=CIFAR_BATCH_SIZE,
        per_device_eval_batch_size=512,
        num_train_epochs=3,
        max_grad_norm=None,  # None: the paper's, 1 without BatchNorm and none with it (apply_paper_defaults)
        logging_strategy="epoch",  # a log entry per epoch: the mean training loss over that epoch
        logging_nan_inf_filter=False,  # a diverging run must show its NaN loss
        save_strategy="no",
        report_to="none",
    )
    args, training_args = parser.parse_args_into_dataclasses(args=sys.argv[1:] if argv is None else argv)
    apply_paper_defaults(args, training_args)
    return args, training_args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    args, training_args = parse_arguments(argv)
    dataset = load_image_dataset(
        args.source, validation_fraction=args.validation_fraction, train_size=args.train_size, data_dir=args.data_dir
    )
    label_names = dataset["train"].features["labels"].names
    set_seed(training_args.seed)
    model = build_image_classifier(
        args.model,
        depth=args.depth,
        batch_norm=args.batch_norm,
        width_multiplier=args.width_multiplier,
        id2label=dict(enumerate(label_names)),
        label2id={name: index for index, name in enumerate(label_names)},
    )
    trainer = GradInitTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset["train"],
        eval_dataset=dataset["validation"],
        data_collator=ImageCollator.from_dataset(dataset["train"]),
        compute_metrics=accuracy,
    )
    train_metrics = trainer.train().metrics
    test_metrics = trainer.evaluate(dataset["test"], metric_key_prefix="test")
    final_dir = os.path.join(training_args.output_dir, "final")
    trainer.save_model(final_dir)
    trainer.create_model_card(model_name=os.path.basename(os.path.abspath(training_args.output_dir)))

    epoch_losses = [[entry["epoch"], entry["loss"]] for entry in trainer.state.log_history if "loss" in entry]
    gradinit = trainer.gradinit_result
    optimizer = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    group = optimizer.param_groups[0]
    results = {
        "source": args.source,
        "model": args.model,
        "depth": args.depth,
        "batch_norm": args.batch_norm,
        "width_multiplier": args.width_multiplier,
        "train_images": len(dataset["train"]),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seed": training_args.seed,
        "learning_rate": training_args.learning_rate,
        "batch_size": training_args.per_device_train_batch_size,
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "max_grad_norm": training_args.max_grad_norm,
        "optimizer": {
            "class": type(optimizer).__name__,
            **{key: group[key] for key in ("momentum", "nesterov", "weight_decay") if key in group},
        },
        "gradinit": gradinit is not None,
        "gradinit_config": gradinit.config.to_dict() if gradinit is not None else None,
        "gradinit_summary": gradinit.summary() if gradinit is not None else None,
        "epoch_losses": epoch_losses,
        "first_epoch_loss": epoch_losses[0][1] if epoch_losses else None,
        "final_train_loss": epoch_losses[-1][1] if epoch_losses else None,
        "test_accuracy": test_metrics["test_accuracy"],
        "test_loss": test_metrics["test_loss"],
        "gradinit_time_s": round(gradinit.wall_time, 2) if gradinit is not None else 0.0,
        "train_time_s": round(train_metrics["train_runtime"], 2),  # the training loop, without GradInit
        "seconds_per_step": round(train_metrics["train_runtime"] / max(1, trainer.state.global_step), 4),
        "wall_time_s": round(time.perf_counter() - started, 2),
    }
    with open(os.path.join(training_args.output_dir, "results.json"), "w") as handle:
        json.dump(results, handle, indent=1)  # a diverged run's NaN loss is written as NaN, which json reads back
        handle.write("\n")
    print(
        f"{args.model}-{args.depth} ({'BN' if args.batch_norm else 'no BN'}, GradInit {'on' if gradinit else 'off'}): "
        f"test accuracy {results['test_accuracy']:.4f}, final train loss {results['final_train_loss']}, "
        f"{results['wall_time_s']} s"
    )
    return results


if __name__ == "__main__":
    main()
