"""examples/image_classification/train_classifier.py: a tiny run end to end (outputs, GradInit in SGD mode from the
run, the paper's clipping), the per-model defaults and what overrides them, and a missing data set."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForImageClassification

from hf_gradinit import GradInitResult
from hf_gradinit.vision import ImageDataUnavailableError, VGGForImageClassification

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "image_classification"
sys.path.insert(0, str(EXAMPLES))
import train_classifier  # noqa: E402

# 160 images in batches of 16: 10 steps an epoch, 20 steps in all; GradInit gets min(390, 20 / 2) = 10 iterations.
TINY = [
    "--source", "synthetic", "--model", "vgg", "--depth", "11", "--width_multiplier", "0.125", "--train_size", "160",
    "--per_device_train_batch_size", "16", "--max_steps", "20", "--disable_tqdm", "true",
]  # fmt: skip


@pytest.fixture(scope="module")
def gradinit_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("classifier") / "run"
    return out, train_classifier.main([*TINY, "--gradinit", "--output_dir", str(out)])


def test_run_writes_its_outputs(gradinit_run: tuple[Path, dict]) -> None:
    out, results = gradinit_run
    assert json.loads((out / "results.json").read_text()) == results
    assert (out / "gradinit_scales.json").is_file() and (out / "gradinit_scales.png").stat().st_size > 1000
    model = AutoModelForImageClassification.from_pretrained(out / "final")
    assert isinstance(model, VGGForImageClassification) and model.config.id2label[3] == "pattern 3"
    assert GradInitResult.from_model(model) is not None  # the record travels with the saved model
    assert "GradInit" in (out / "README.md").read_text()
    assert results["steps"] == 20 and results["epochs"] == 2 and len(results["epoch_losses"]) == 2
    assert results["first_epoch_loss"] == results["epoch_losses"][0][1] and math.isfinite(results["first_epoch_loss"])
    assert results["final_train_loss"] == results["epoch_losses"][1][1]
    assert 0 <= results["test_accuracy"] <= 1 and results["test_loss"] > 0
    assert results["train_time_s"] > 0 and results["gradinit_time_s"] > 0 and results["wall_time_s"] > 0


def test_gradinit_follows_the_sgd_run_with_the_paper_settings(gradinit_run: tuple[Path, dict]) -> None:
    _, results = gradinit_run
    assert results["optimizer"] == {"class": "SGD", "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4}
    config = results["gradinit_config"]
    assert config["target_optimizer"] == "sgd" and config["normalize_sgd_step"]
    assert config["target_lr"] == results["learning_rate"] == 0.1  # eta = lr, as published for CIFAR
    assert (config["grad_norm_bound"], config["scale_grad_clip"], config["target_weight_decay"]) == (1.0, 1.0, 1e-4)
    assert config["iterations"] == 10 and results["gradinit_summary"]["iterations"] == 10
    assert config["scale_lr"] == 1e-2  # the paper's tau for VGG without BatchNorm
    assert results["max_grad_norm"] == 1.0  # the paper's clipping for models without BatchNorm


@pytest.mark.parametrize(
    ("model", "batch_norm", "depth", "tau", "clip"),
    [("vgg", "false", 19, 1e-2, 1.0), ("vgg", "true", 19, 1e-1, 0.0), ("resnet", "false", 110, 5e-2, 1.0),
     ("resnet", "true", 110, 1e-3, 0.0)],
)  # fmt: skip
def test_paper_defaults_per_model(model: str, batch_norm: str, depth: int, tau: float, clip: float) -> None:
    args, training_args = train_classifier.parse_arguments(["--model", model, "--batch_norm", batch_norm])
    assert (args.depth, training_args.gradinit_scale_lr, training_args.max_grad_norm) == (depth, tau, clip)


def test_explicit_values_win_over_the_paper_defaults() -> None:
    args, training_args = train_classifier.parse_arguments(
        ["--model", "resnet", "--depth", "20", "--gradinit_scale_lr", "0.3", "--max_grad_norm", "5"]
    )
    assert (args.depth, training_args.gradinit_scale_lr, training_args.max_grad_norm) == (20, 0.3, 5.0)


def test_batch_norm_run_without_gradinit_does_not_clip(tmp_path: Path) -> None:
    results = train_classifier.main(
        [*TINY, "--batch_norm", "true", "--max_steps", "2", "--output_dir", str(tmp_path / "bn")]
    )
    assert results["max_grad_norm"] == 0.0 and not results["gradinit"] and results["gradinit_config"] is None
    assert not (tmp_path / "bn" / "gradinit_scales.json").exists() and results["steps"] == 2


def test_missing_fashion_mnist_stops_before_training(tmp_path: Path) -> None:
    argv = ["--source", "fashion-mnist", "--data_dir", str(tmp_path / "nowhere"), "--output_dir", str(tmp_path / "o")]
    with pytest.raises(ImageDataUnavailableError, match="apt-get install dataset-fashion-mnist"):
        train_classifier.main(argv)
    assert not (tmp_path / "o").exists()
