"""scripts/stability_sweep.py: a tiny grid end to end, resuming, the stalled flag and the plateau."""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import load_script

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
sweep = load_script("stability_sweep")


def tiny_grid(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--name", "tiny", "--results_dir", str(tmp_path / "results"), "--scratch", str(tmp_path / "scratch"),
        "--corpus", "toy", "--toy_size", "300", "--preset", "tiny", "--bpe_vocab_size", "200", "--steps", "3",
        "--lrs", "1e-3", "--seeds", "1", "--arms", "fairseq", "hf+gradinit", "--max_tokens", "256",
        "--max_eval_sentences", "4", "--gradinit_args", "--gradinit_iterations 2 --gradinit_grad_norm_bound inf",
        "--extra_args", "--num_beams 1 --eval_batch_sentences 4", *extra,
    ]  # fmt: skip


ADAMW = "adamw-b0.9-0.98"


def test_tiny_grid_runs_reports_and_resumes(tmp_path, capsys):
    sweep.main(tiny_grid(tmp_path))
    results = tmp_path / "results" / "tiny"
    summaries = {p.stem: json.loads(p.read_text()) for p in (results / "runs").glob("*.json")}
    assert set(summaries) == {f"fairseq_lr0.001_seed1_{ADAMW}", f"hf-gradinit_lr0.001_seed1_{ADAMW}"}
    for summary in summaries.values():
        assert [step for step, _ in summary["train_curve"]] == [3] and summary["valid_loss"] > 0
        assert summary["final_train_loss"] == summary["train_curve"][-1][1]
        assert summary["valid_loss_dropout"] > 0 and summary["valid_chrf"] >= 0 and summary["test_chrf"] >= 0
        assert summary["throughput_wps"] > 0 and summary["stalled"] in (True, False) and not summary["diverged"]
        assert (summary["setting"], summary["optimizer"], summary["adam_betas"]) == (ADAMW, "adamw", [0.9, 0.98])
        assert "--warmup_steps 0" in summary["command"] and "--optimizer adamw" in summary["command"]
        assert "--adam_betas 0.9 0.98" in summary["command"]
    gradinit = summaries[f"hf-gradinit_lr0.001_seed1_{ADAMW}"]
    assert "--gradinit" in gradinit["command"] and "--init hf" in gradinit["command"]
    assert 0 < gradinit["gradinit_wall_time_s"] < gradinit["wall_time_s"]
    assert gradinit["gradinit_share"] == pytest.approx(
        gradinit["gradinit_wall_time_s"] / gradinit["wall_time_s"], rel=0.01
    )
    assert summaries[f"fairseq_lr0.001_seed1_{ADAMW}"]["gradinit_wall_time_s"] is None
    report = (results / "README.md").read_text()
    assert f"2 of 2 runs of the last command (`{ADAMW}`) finished" in report
    assert f"| hf+gradinit | {ADAMW} | 0.001 |" in report
    assert (results / "sweep.png").stat().st_size > 10_000
    assert not any((tmp_path / "scratch" / "tiny").iterdir())  # run directories are removed once summarised
    settings = json.loads((results / "sweep.json").read_text())
    assert 0 < settings["unigram_plateau"] < math.log(200)
    gpu = f"GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "no GPU"
    assert f"{os.cpu_count()} CPU cores, {gpu}" in settings["machine"] and torch.__version__ in settings["machine"]
    assert settings["machine"] in report  # the wall times are labelled with the machine that measured them

    # Rerunning resumes: nothing is redone, and a missing summary is the only run done again.
    before = {p.name: p.read_text() for p in (results / "runs").glob("*.json")}
    (results / "runs" / f"fairseq_lr0.001_seed1_{ADAMW}.json").unlink()
    capsys.readouterr()
    sweep.main(tiny_grid(tmp_path))
    assert "1 runs to do" in capsys.readouterr().out
    after = {p.name: p.read_text() for p in (results / "runs").glob("*.json")}
    assert after[f"hf-gradinit_lr0.001_seed1_{ADAMW}.json"] == before[f"hf-gradinit_lr0.001_seed1_{ADAMW}.json"]
    assert set(after) == set(before)

    # Another optimizer setting is another run, side by side in the same sweep, with its own rows; the report keeps
    # every run and names every command that ran, with the notes a person wrote beside them.
    (results / "notes.md").write_text("The first command shared the machine with the test suite.\n")
    sgd_grid = tiny_grid(tmp_path, "--optimizer", "sgd", "--momentum", "0.9", "--arms", "fairseq")
    sweep.main(sgd_grid)
    sgd = json.loads((results / "runs" / "fairseq_lr0.001_seed1_sgd-m0.9.json").read_text())
    assert "--optimizer sgd" in sgd["command"] and "--momentum 0.9" in sgd["command"] and sgd["adam_betas"] is None
    report = (results / "README.md").read_text()
    assert "| fairseq | sgd-m0.9 | 0.001 |" in report and f"| fairseq | {ADAMW} | 0.001 |" in report
    assert f"| hf+gradinit | {ADAMW} | 0.001 |" in report  # an arm only the first command ran
    assert len(list((results / "runs").glob("*.json"))) == 3
    commands = json.loads((results / "sweep.json").read_text())["commands"]
    assert [shlex.split(command)[2:] for command in commands] == [tiny_grid(tmp_path), sgd_grid]
    assert all(f"    {command}" in report for command in commands) and "shared the machine" in report
    sweep.main([*sgd_grid, "--report_only"])  # a report or a rerun adds no command
    assert json.loads((results / "sweep.json").read_text())["commands"] == commands


def test_each_arm_gets_its_init_warmup_gradinit_and_the_optimizer(tmp_path):
    args = sweep.parse_arguments(["--name", "t", "--optimizer", "adam", "--adam_betas", "0.9", "0.999"])
    assert sweep.optimizer_setting(args) == "adam-b0.9-0.999" and list(args.arms) == list(sweep.ARMS)
    expected = {  # arm: (init, warmup, gradinit)
        "hf": ("hf", "0", False), "hf+gradinit": ("hf", "0", True), "fairseq": ("fairseq", "0", False),
        "fairseq+warmup": ("fairseq", "150", False), "fairseq+gradinit": ("fairseq", "0", True),
        "tfixup": ("tfixup", "0", False), "deepnet": ("deepnet", "0", False),
    }  # fmt: skip
    for arm, (init, warmup, gradinit) in expected.items():
        command = sweep.train_mt_arguments(args, arm, 1e-3, 1, tmp_path)
        option = dict(zip(command[::2], command[1::2]))
        assert (option["--init"], option["--warmup_steps"], "--gradinit" in command) == (init, warmup, gradinit), arm
        assert option["--optimizer"] == "adam" and command[command.index("--adam_betas") + 1 :][:2] == ["0.9", "0.999"]
    sgd = sweep.parse_arguments(["--name", "t", "--optimizer", "sgd", "--momentum", "0.9"])
    assert sweep.optimizer_setting(sgd) == "sgd-m0.9"
    command = sweep.train_mt_arguments(sgd, "fairseq", 0.1, 1, tmp_path)
    assert "--momentum" in command and "--adam_betas" not in command
    with pytest.raises(SystemExit):
        sweep.parse_arguments(["--name", "t", "--momentum", "0.9"])  # momentum without SGD


def _write_run(results: Path, name: str, **fields: object) -> None:
    run = {"run": name, "arm": "fairseq", "lr": 1e-3, "seed": 1, "train_curve": [[10, 6.0]], "valid_loss": 5.5,
           "valid_bleu": 1.0, "valid_chrf": 2.0, "test_bleu": 1.0, "diverged": False, "wall_time_s": 1.0}  # fmt: skip
    run.update(fields)
    (results / "runs").mkdir(parents=True, exist_ok=True)
    (results / "runs" / f"{name}.json").write_text(json.dumps(run))


def test_stalled_and_diverged_counts(tmp_path):
    args = sweep.parse_arguments(["--name", "t", "--lrs", "1e-3", "--arms", "fairseq", "--seeds", "1", "2", "3"])
    results = tmp_path / "t"
    for seed, valid_loss, diverged in ((1, 5.95, False), (2, 5.5, False), (3, None, True)):
        bleu = None if diverged else 1.0
        _write_run(results, f"r{seed}", seed=seed, valid_loss=valid_loss, valid_bleu=bleu, valid_chrf=bleu,
                   test_bleu=bleu, diverged=diverged, setting=ADAMW, gradinit_wall_time_s=2.0 * seed,
                   gradinit_share=0.1 * seed, valid_loss_dropout=6.0, throughput_wps=1000.0)  # fmt: skip
    table = sweep.write_report(args, results, {"unigram_plateau": 6.0, "machine": "m", "command": "c"})
    # plateau 6.0, margin 0.1: 5.95 is stalled, 5.5 is not, the diverged run is counted apart; GradInit's time and
    # share are over all runs, the losses and throughput over the trained ones
    assert (
        f"| fairseq | {ADAMW} | 0.001 | 6.00 ± 0.00 | 5.72 ± 0.32 | 6.00 ± 0.00 | 1.00 ± 0.00 | 1.00 ± 0.00 | "
        "1.00 ± 0.00 | 1 | 1 | 4 ± 2 s (20 ± 10 %) | 1000 ± 0 | 3 |" in table
    )


def test_summaries_from_before_the_optimizer_options_are_read_and_count_as_done(tmp_path, capsys):
    """Old summaries (no setting in the name or the file; none of the new measurements) are AdamW (0.9, 0.98) runs."""
    results = tmp_path / "results" / "old"
    _write_run(results, "fairseq_lr0.001_seed1")
    argv = ["--name", "old", "--results_dir", str(tmp_path / "results"), "--lrs", "1e-3", "--seeds", "1",
            "--arms", "fairseq"]  # fmt: skip
    (results / "sweep.json").write_text(json.dumps({"unigram_plateau": 6.0, "machine": "m", "command": "c"}))
    assert sweep.is_done(results, "fairseq", 1e-3, 1, ADAMW) and not sweep.is_done(
        results, "fairseq", 1e-3, 1, "sgd-m0"
    )
    sweep.main(argv)  # nothing to run: the old summary is this run
    assert "0 runs to do" in capsys.readouterr().out
    table = (results / "README.md").read_text()
    assert f"| fairseq | {ADAMW} | 0.001 | 6.00 | 5.50 | – | 1.00 | 2.00 | 1.00 | 0 | 0 | – | – | 1 |" in table


@pytest.mark.parametrize("name", ["ding-small-1200", "ding-iwslt14-600-h200"])
def test_committed_results_still_report(tmp_path, name):
    """`--report_only` on sweeps committed before this version: the same runs, now with their optimizer setting."""
    results = tmp_path / name
    shutil.copytree(RESULTS / name, results)
    command = shlex.split(sweep.sweep_commands(json.loads((results / "sweep.json").read_text()))[0])[2:]
    sweep.main([*command, "--results_dir", str(tmp_path), "--report_only"])
    runs = [json.loads(path.read_text()) for path in (results / "runs").glob("*.json")]
    rows = [
        line for line in (results / "README.md").read_text().splitlines() if line.startswith("| ") and ADAMW in line
    ]
    assert runs and len(rows) == len({(run["arm"], run["lr"]) for run in runs})  # one row per arm and lr, as before


def test_smoothed_unigram_entropy():
    assert sweep.smoothed_unigram_entropy(Counter({0: 5, 1: 5, 2: 5, 3: 5}), 4, 0.1) == pytest.approx(math.log(4))
    assert sweep.smoothed_unigram_entropy(Counter({0: 1, 1: 3}), 2, 0.0) == pytest.approx(
        -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    )
    # Smoothing moves the target towards uniform: the plateau rises.
    assert sweep.smoothed_unigram_entropy(Counter({0: 1, 1: 3}), 2, 0.2) > sweep.smoothed_unigram_entropy(
        Counter({0: 1, 1: 3}), 2, 0.0
    )


def test_gradinit_once_makes_each_checkpoint_first_and_trains_from_it(tmp_path, monkeypatch):
    args = sweep.parse_arguments(["--name", "t", "--gradinit_once", "--scratch", str(tmp_path), "--steps", "40"])
    calls = []

    def fake_init(command, **kwargs):
        calls.append(command)
        target = Path(command[command.index("--output_dir") + 1])
        target.mkdir(parents=True)
        (target / "gradinit_scales.json").write_text(json.dumps({"wall_time": 1.0}))
        return type("Completed", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr(sweep.subprocess, "run", fake_init)
    checkpoint = sweep.make_gradinit_checkpoint(args, "hf+gradinit", 1e-3, 2)
    assert sweep.make_gradinit_checkpoint(args, "hf+gradinit", 1e-3, 2) == checkpoint and len(calls) == 1  # reused
    init = calls[0]
    assert init[1:4] == ["-m", "hf_gradinit.integrations.cli", "init"]
    for option, value in (("--init", "hf"), ("--lr", "0.001"), ("--seed", "2"), ("--max_steps", "40")):
        assert init[init.index(option) + 1] == value
    assert "--gradinit_grad_norm_bound" in init  # the arm's GradInit settings
    command = sweep.train_mt_arguments(args, "hf+gradinit", 1e-3, 2, tmp_path / "run")
    assert command[command.index("--model_name_or_path") + 1] == str(checkpoint) and "--gradinit" not in command
    assert init[init.index("--shared_vocab") + 1] == "true"
    separate = sweep.parse_arguments(
        ["--name", "t2", "--gradinit_once", "--scratch", str(tmp_path), "--shared_vocab", "false"]
    )
    sweep.make_gradinit_checkpoint(separate, "hf+gradinit", 1e-3, 2)
    assert calls[-1][calls[-1].index("--shared_vocab") + 1] == "false"  # the checkpoint has the run's layout
    sgd = sweep.parse_arguments(["--name", "t", "--gradinit_once", "--scratch", str(tmp_path), "--optimizer", "sgd"])
    assert sweep.make_gradinit_checkpoint(sgd, "hf+gradinit", 1e-3, 2) != checkpoint  # SGD's step is another GradInit
    assert calls[-1][calls[-1].index("--optimizer") + 1] == "sgd"


def test_a_grid_runs_seed_by_seed_with_each_seeds_gradinit_first(tmp_path, monkeypatch):
    """A grid stopped early has whole seeds: seed 2's GradInit waits until seed 1's runs are done."""
    results = tmp_path / "t"
    results.mkdir()
    (results / "sweep.json").write_text(json.dumps({"unigram_plateau": 6.0, "machine": "m"}))
    order = []

    def fake_gradinit(args, arm, lr, seed):
        order.append(("gradinit", arm, seed))
        return tmp_path / f"{arm}-{seed}"

    def fake_run(args, results, plateau, arm, lr, seed):
        order.append(("run", arm, seed))
        _write_run(results, f"{arm}-{seed}", arm=arm, seed=seed, setting=ADAMW)
        return {"run": arm, "valid_loss": 5.5, "valid_bleu": 1.0, "diverged": False, "wall_time_s": 1.0}

    monkeypatch.setattr(sweep, "make_gradinit_checkpoint", fake_gradinit)
    monkeypatch.setattr(sweep, "run_one", fake_run)
    sweep.main(["--name", "t", "--results_dir", str(tmp_path), "--gradinit_once", "--lrs", "1e-3", "--seeds", "1",
                "2", "--arms", "fairseq", "hf+gradinit"])  # fmt: skip
    assert order == [
        ("gradinit", "hf+gradinit", 1), ("run", "fairseq", 1), ("run", "hf+gradinit", 1),
        ("gradinit", "hf+gradinit", 2), ("run", "fairseq", 2), ("run", "hf+gradinit", 2),
    ]  # fmt: skip
