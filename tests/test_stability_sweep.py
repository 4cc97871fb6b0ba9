"""scripts/stability_sweep.py: a tiny grid end to end, resuming, the stalled flag and the plateau."""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections import Counter
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "stability_sweep.py"
spec = importlib.util.spec_from_file_location("stability_sweep", SCRIPT)
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)


def tiny_grid(tmp_path: Path) -> list[str]:
    return [
        "--name", "tiny", "--results_dir", str(tmp_path / "results"), "--scratch", str(tmp_path / "scratch"),
        "--corpus", "toy", "--toy_size", "300", "--preset", "tiny", "--bpe_vocab_size", "200", "--steps", "3",
        "--lrs", "1e-3", "--seeds", "1", "--arms", "fairseq", "fairseq+gradinit", "--max_tokens", "256",
        "--max_eval_sentences", "4", "--gradinit_args", "--gradinit_iterations 2 --gradinit_grad_norm_bound inf",
        "--extra_args", "--num_beams 1 --eval_batch_sentences 4",
    ]  # fmt: skip


def test_tiny_grid_runs_reports_and_resumes(tmp_path, capsys):
    sweep.main(tiny_grid(tmp_path))
    results = tmp_path / "results" / "tiny"
    summaries = {p.stem: json.loads(p.read_text()) for p in (results / "runs").glob("*.json")}
    assert set(summaries) == {"fairseq_lr0.001_seed1", "fairseq-gradinit_lr0.001_seed1"}
    for summary in summaries.values():
        assert [step for step, _ in summary["train_curve"]] == [3] and summary["valid_loss"] > 0
        assert not summary["diverged"] and "--warmup_steps 0" in summary["command"]
    assert "--gradinit" in summaries["fairseq-gradinit_lr0.001_seed1"]["command"]
    report = (results / "README.md").read_text()
    assert "2 of 2 planned runs finished" in report and "| fairseq+gradinit | 0.001 |" in report
    assert (results / "sweep.png").stat().st_size > 10_000
    assert not any((tmp_path / "scratch" / "tiny").iterdir())  # run directories are removed once summarised
    settings = json.loads((results / "sweep.json").read_text())
    assert 0 < settings["unigram_plateau"] < math.log(200)
    gpu = f"GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "no GPU"
    assert f"{os.cpu_count()} CPU cores, {gpu}" in settings["machine"] and torch.__version__ in settings["machine"]
    assert settings["machine"] in report  # the wall times are labelled with the machine that measured them

    # Rerunning resumes: nothing is redone, and a missing summary is the only run done again.
    before = {p.name: p.read_text() for p in (results / "runs").glob("*.json")}
    (results / "runs" / "fairseq_lr0.001_seed1.json").unlink()
    capsys.readouterr()
    sweep.main(tiny_grid(tmp_path))
    assert "1 runs to do" in capsys.readouterr().out
    after = {p.name: p.read_text() for p in (results / "runs").glob("*.json")}
    assert after["fairseq-gradinit_lr0.001_seed1.json"] == before["fairseq-gradinit_lr0.001_seed1.json"]
    assert set(after) == set(before)


def test_stalled_and_diverged_counts(tmp_path):
    args = sweep.parse_arguments(["--name", "t", "--lrs", "1e-3", "--arms", "fairseq", "--seeds", "1", "2", "3"])
    results = tmp_path / "t"
    (results / "runs").mkdir(parents=True)
    for seed, valid_loss, diverged in ((1, 5.95, False), (2, 5.5, False), (3, None, True)):
        bleu = None if diverged else 1.0
        run = {"run": f"r{seed}", "arm": "fairseq", "lr": 1e-3, "seed": seed, "train_curve": [[10, 6.0]],
               "valid_loss": valid_loss, "valid_bleu": bleu, "test_bleu": bleu, "diverged": diverged,
               "wall_time_s": 1.0}  # fmt: skip
        (results / "runs" / f"r{seed}.json").write_text(json.dumps(run))
    table = sweep.write_report(args, results, {"unigram_plateau": 6.0, "machine": "m", "command": "c"})
    # plateau 6.0, margin 0.1: 5.95 is stalled, 5.5 is not, the diverged run is counted apart
    assert "| fairseq | 0.001 | 6.00 ± 0.00 | 5.72 ± 0.32 | 1.00 ± 0.00 | 1.00 ± 0.00 | 1 | 1 | 3 |" in table


def test_smoothed_unigram_entropy():
    assert sweep.smoothed_unigram_entropy(Counter({0: 5, 1: 5, 2: 5, 3: 5}), 4, 0.1) == pytest.approx(math.log(4))
    assert sweep.smoothed_unigram_entropy(Counter({0: 1, 1: 3}), 2, 0.0) == pytest.approx(
        -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    )
    # Smoothing moves the target towards uniform: the plateau rises.
    assert sweep.smoothed_unigram_entropy(Counter({0: 1, 1: 3}), 2, 0.2) > sweep.smoothed_unigram_entropy(
        Counter({0: 1, 1: 3}), 2, 0.0
    )
