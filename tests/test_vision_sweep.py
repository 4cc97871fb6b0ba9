"""scripts/vision_sweep.py: two tiny runs end to end, resuming, and the pre-registered flags in the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

from conftest import load_script

sweep = load_script("vision_sweep")


def tiny_grid(tmp_path: Path) -> list[str]:
    return [
        "--name", "tiny", "--results_dir", str(tmp_path / "results"), "--scratch", str(tmp_path / "scratch"),
        "--source", "synthetic", "--models", "vgg", "--vgg_width", "0.125", "--train_size", "64",
        "--batch_size", "16", "--max_steps", "4", "--lrs", "0.1", "--seeds", "1", "--jobs", "2", "--threads", "1",
        "--gradinit_args", "--gradinit_iterations 2",
    ]  # fmt: skip


def test_tiny_grid_runs_reports_and_resumes(tmp_path: Path, capsys) -> None:
    sweep.main(tiny_grid(tmp_path))
    results = tmp_path / "results" / "tiny"
    summaries = {p.stem: json.loads(p.read_text()) for p in (results / "runs").glob("*.json")}
    assert set(summaries) == {"vgg_kaiming_lr0.1_seed1", "vgg_gradinit_lr0.1_seed1"}
    for summary in summaries.values():
        assert "error" not in summary and summary["steps"] == 4 and 0 <= summary["test_accuracy"] <= 1
        assert summary["max_grad_norm"] == 1.0 and "--batch_norm false" in summary["command"]
    gradinit = summaries["vgg_gradinit_lr0.1_seed1"]
    assert "--gradinit --gradinit_iterations 2" in gradinit["command"]
    assert gradinit["gradinit_config"]["target_lr"] == 0.1
    assert summaries["vgg_kaiming_lr0.1_seed1"]["gradinit_config"] is None
    report = (results / "README.md").read_text()
    assert "2 of 2 planned runs finished" in report
    assert report.index("**diverged**") < report.index("| model | init | lr |")  # definitions before results
    for init in ("kaiming", "gradinit"):
        assert f"| VGG-11 without BN, width 0.125 | {init} | 0.1 |" in report
    settings = json.loads((results / "sweep.json").read_text())
    assert settings["machine"] in report and "transformers" in settings["machine"] and settings["elapsed_s"] > 0
    assert (results / "sweep.png").stat().st_size > 10_000
    assert not any((tmp_path / "scratch" / "tiny").iterdir())  # run directories are removed once summarised

    # Rerunning the same command redoes nothing.
    before = {p.name: p.read_text() for p in (results / "runs").glob("*.json")}
    capsys.readouterr()
    sweep.main(tiny_grid(tmp_path))
    assert "0 runs to do" in capsys.readouterr().out
    assert {p.name: p.read_text() for p in (results / "runs").glob("*.json")} == before


def fake_run(seed: int, first: float, final: float, accuracy: float, **extra) -> dict:
    return {
        "run": f"vgg_kaiming_lr0.5_seed{seed}", "model": "vgg", "init": "kaiming", "lr": 0.5, "seed": seed,
        "first_epoch_loss": first, "final_train_loss": final, "test_accuracy": accuracy, "epoch_losses": [[1, first]],
        "gradinit_time_s": 0.0, "train_time_s": 10.0, "wall_time_s": 12.0, **extra,
    }  # fmt: skip


def test_diverged_failed_and_crashed_counts(tmp_path: Path) -> None:
    args = sweep.parse_arguments(["--name", "t", "--models", "vgg", "--inits", "kaiming", "--lrs", "0.5",
                                  "--seeds", "1", "2", "3", "4"])  # fmt: skip
    results = tmp_path / "t"
    (results / "runs").mkdir(parents=True)
    runs = [
        fake_run(1, 1.0, 0.5, 0.80),
        fake_run(2, 2.0, math.log(10) + 0.2, 0.15),  # above ln(10) + 0.1: diverged, and below 20%: failed
        fake_run(3, float("nan"), float("nan"), 0.10),  # NaN: diverged (left out of the loss columns), failed
        {**fake_run(4, 0, 0, 0), "error": "exit 1: boom"},  # crashed: counted apart, in no mean
    ]
    for run in runs:
        (results / "runs" / f"{run['run']}.json").write_text(json.dumps(run))
    table = sweep.write_report(args, results, {"machine": "m", "command": "c", "elapsed_s": 60})
    assert "| VGG-11 without BN, width 0.25 | kaiming | 0.5 | 1.50 ± 0.71 | 1.50 ± 1.42 | 35.00 ± 39.05 | – |" in table
    assert table.endswith("| 2 | 2 | 1 | 4 |")
    assert [sweep.classify(run, args) for run in runs] == [
        {"crashed": False, "diverged": False, "failed": False},
        {"crashed": False, "diverged": True, "failed": True},
        {"crashed": False, "diverged": True, "failed": True},
        {"crashed": True, "diverged": False, "failed": False},
    ]
    # The definitions name the thresholds in force.
    report = (results / "README.md").read_text()
    assert "above ln(10) + 0.1\n  = 2.403" in report and "test accuracy below 20%" in report
