"""Stability sweep: does a Post-LN encoder-decoder train without warmup, per learning rate, initialisation and seed?

Every run is `examples/translation/train_mt.py` (Adam (0.9, 0.98), label smoothing, linear decay, **no warmup**
unless the arm says so) with one of these initialisations ("arms"):

- `hf`: Hugging Face's default N(0, 0.02);
- `fairseq`: fairseq's Xavier init (`fairseq_init_`), the paper's failing baseline;
- `fairseq+warmup`: the same with linear warmup, the usual remedy (the reference arm);
- `fairseq+gradinit`: the same, no warmup, GradInit first (settings: `--gradinit_args`).

A run is *diverged* when train_mt stopped it on a NaN/inf loss, and *stalled* when its final validation loss is
within `--stall_margin` nats of the unigram plateau: the lowest label-smoothed loss a model that ignores the source
and the target prefix can reach, i.e. the entropy of (1 - eps) * p + eps / V for the training targets' token
frequencies p. Each finished run is summarised in `docs/results/<name>/runs/*.json` (settings, loss curve,
validation loss, BLEU/chrF, flags, wall time); rerunning the same command skips those, so a partial grid resumes.
Then `README.md` (a table of mean ± std and stalled counts) and `sweep.png` (loss curves per arm and lr; final
loss and BLEU against lr) are written there.

    python scripts/stability_sweep.py --name ding --corpus ding --jobs 2              # the grid in the foreground
    python scripts/stability_sweep.py --name ding --corpus ding --jobs 2 --detach     # in the background (log file)
    python scripts/stability_sweep.py --name ding --corpus ding --report_only         # table + plot of what is done

On a GPU with internet, the paper's model on IWSLT'14 (bf16 autocast; GradInit itself runs in fp32):

    python scripts/stability_sweep.py --name iwslt14 --preset iwslt14-de-en --corpus bbaaaa/iwslt14-de-en \
        --dataset_revision refs/convert/parquet --bpe_vocab_size 10000 --max_tokens 4096 --steps 4000 \
        --lrs 5e-4 7e-4 1e-3 --warmup_steps 4000 --max_eval_sentences 1000 \
        --gradinit_args "--gradinit_iterations 780 --gradinit_scale_lr 2.5e-3 --gradinit_grad_norm_bound 1000" \
        --extra_args "--mixed_precision bf16"

Its wall time is not measured. For scale: on an H200 with ten runs sharing the GPU, 600 steps of this model on
Ding took 160-220 s per run, and the published 780 GradInit iterations did not finish in 400 s (docs/results/
ding-iwslt14-600-h200/). Extrapolated from that, not measured: an hour or more for the 12 runs of 4000 steps
with `--jobs 8`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TRAIN_MT = REPO / "examples" / "translation" / "train_mt.py"
ARMS = ("hf", "fairseq", "fairseq+warmup", "fairseq+gradinit")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="Results go to <results_dir>/<name>/.")
    parser.add_argument("--results_dir", default=str(REPO / "docs" / "results"), help="Where sweeps are stored.")
    parser.add_argument("--corpus", default="ding", help="train_mt --source: ding, toy, a file, a Hub id.")
    parser.add_argument("--dataset_config_name", default=None, help="Hub dataset config, e.g. de-en.")
    parser.add_argument("--dataset_revision", default=None, help="Hub dataset revision, e.g. refs/convert/parquet.")
    parser.add_argument("--toy_size", type=int, default=50_000, help="Pairs of the toy corpus.")
    parser.add_argument("--preset", default="small", help="Post-LN preset (train_mt --preset).")
    parser.add_argument("--lrs", type=float, nargs="+", default=[5e-4, 1e-3, 2e-3], help="Peak learning rates.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="Seeds (model init, batch order).")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS, help="Initialisations to compare.")
    parser.add_argument("--steps", type=int, default=600, help="Training steps per run.")
    parser.add_argument("--warmup_steps", type=int, default=150, help="Warmup of the fairseq+warmup arm.")
    parser.add_argument("--max_tokens", type=int, default=2048, help="Padded tokens per batch.")
    parser.add_argument("--bpe_vocab_size", type=int, default=4000)
    parser.add_argument("--label_smoothing", type=float, default=0.1)
    parser.add_argument("--max_eval_sentences", type=int, default=200, help="Sentences translated for BLEU.")
    parser.add_argument(
        "--gradinit_args",
        default="--gradinit_iterations 150 --gradinit_scale_lr 1e-2 --gradinit_grad_norm_bound inf",
        help="train_mt GradInit arguments of the fairseq+gradinit arm (eta defaults to the run's lr).",
    )
    parser.add_argument("--extra_args", default="", help="More train_mt arguments for every run.")
    parser.add_argument("--stall_margin", type=float, default=0.1, help="Nats above the unigram plateau = stalled.")
    parser.add_argument("--jobs", type=int, default=1, help="Runs at the same time.")
    parser.add_argument("--threads", type=int, default=None, help="Torch threads per run (default: cores / jobs).")
    parser.add_argument("--scratch", default=str(REPO / "runs" / "sweep"), help="Where runs write checkpoints.")
    parser.add_argument("--keep_scratch", action="store_true", help="Keep each run's output directory.")
    parser.add_argument("--detach", action="store_true", help="Run the grid in the background; print the log path.")
    parser.add_argument("--report_only", action="store_true", help="Only (re)write the table and the plot.")
    return parser.parse_args(argv)


def run_id(arm: str, lr: float, seed: int) -> str:
    return f"{arm.replace('+', '-')}_lr{lr:g}_seed{seed}"


def train_mt_arguments(args: argparse.Namespace, arm: str, lr: float, seed: int, output_dir: Path) -> list[str]:
    """The train_mt command line of one run."""
    command = [
        "--source", args.corpus, "--toy_size", str(args.toy_size), "--preset", args.preset,
        "--init", "hf" if arm == "hf" else "fairseq", "--bpe_vocab_size", str(args.bpe_vocab_size),
        "--max_tokens", str(args.max_tokens), "--label_smoothing", str(args.label_smoothing), "--lr", str(lr),
        "--lr_scheduler", "linear", "--max_steps", str(args.steps), "--seed", str(seed), "--log_every", "25",
        "--save_every", str(args.steps), "--keep_checkpoints", "1", "--max_eval_sentences",
        str(args.max_eval_sentences), "--output_dir", str(output_dir),
        "--warmup_steps", str(args.warmup_steps if arm == "fairseq+warmup" else 0),
    ]  # fmt: skip
    for option in ("dataset_config_name", "dataset_revision"):
        if getattr(args, option):
            command += [f"--{option}", getattr(args, option)]
    if arm == "fairseq+gradinit":
        command += ["--gradinit", *shlex.split(args.gradinit_args)]
    return command + shlex.split(args.extra_args)


def run_one(args: argparse.Namespace, results: Path, arm: str, lr: float, seed: int) -> dict[str, Any]:
    """Train one run with train_mt in a subprocess and store its summary."""
    name = run_id(arm, lr, seed)
    output_dir = Path(args.scratch) / args.name / name
    shutil.rmtree(output_dir, ignore_errors=True)  # a run interrupted earlier starts again
    command = [sys.executable, str(TRAIN_MT), *train_mt_arguments(args, arm, lr, seed, output_dir)]
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    records = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    diverged = any(r.get("event") == "diverged" for r in records)
    if completed.returncode != 0 and not diverged:
        raise RuntimeError(f"{name} failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    final = {key: value for r in records for key, value in r.items()}  # later records win
    summary = {
        "run": name,
        "arm": arm,
        "lr": lr,
        "seed": seed,
        "train_curve": [[r["step"], r["train_loss"]] for r in records if "train_loss" in r],
        "valid_loss": None if diverged else final.get("valid_loss"),
        "valid_bleu": None if diverged else final.get("valid_bleu"),
        "valid_chrf": None if diverged else final.get("valid_chrf"),
        "test_bleu": None if diverged else final.get("test_bleu"),
        "diverged": diverged,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "command": shlex.join(["python", str(TRAIN_MT.relative_to(REPO)), *command[2:]]),
    }
    (results / "runs" / f"{name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    if not args.keep_scratch:
        shutil.rmtree(output_dir, ignore_errors=True)
    return summary


def unigram_plateau(args: argparse.Namespace) -> float:
    """The plateau of the runs' corpus: target-token frequencies under the BPE every run trains (same data, size)."""
    from hf_gradinit.translation import load_translation_corpus, train_joint_bpe

    corpus, _ = load_translation_corpus(
        args.corpus, config_name=args.dataset_config_name, revision=args.dataset_revision, toy_size=args.toy_size
    )
    tokenizer = train_joint_bpe(corpus, args.bpe_vocab_size)
    counts: Counter[int] = Counter()
    for pair in corpus["train"]["translation"]:
        counts.update(tokenizer(pair["en"])["input_ids"])
    return smoothed_unigram_entropy(counts, len(tokenizer), args.label_smoothing)


def smoothed_unigram_entropy(counts: Counter[int], vocab_size: int, label_smoothing: float) -> float:
    """Entropy of (1 - eps) p + eps / V: the lowest label-smoothed cross-entropy of a predictor that sees no context
    (its best prediction is that very distribution)."""
    total = sum(counts.values())
    smoothed = [
        (1 - label_smoothing) * counts.get(t, 0) / total + label_smoothing / vocab_size for t in range(vocab_size)
    ]
    return -sum(q * math.log(q) for q in smoothed if q > 0)


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def write_report(args: argparse.Namespace, results: Path, settings: dict[str, Any]) -> str:
    """The markdown table (mean ± std over seeds per arm and lr, stalled and diverged counts) and the plot."""
    runs = [json.loads(path.read_text()) for path in sorted((results / "runs").glob("*.json"))]
    plateau, margin = settings["unigram_plateau"], args.stall_margin
    for run in runs:
        run["stalled"] = not run["diverged"] and run["valid_loss"] >= plateau - margin
    lines = [
        "| arm | lr | final train loss | valid loss | valid BLEU | test BLEU | stalled | diverged | runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in args.arms:
        for lr in args.lrs:
            group = [r for r in runs if r["arm"] == arm and r["lr"] == lr]
            if not group:
                continue
            trained = [r for r in group if not r["diverged"]]
            lines.append(
                f"| {arm} | {lr:g} | {mean_std([r['train_curve'][-1][1] for r in trained])} | "
                f"{mean_std([r['valid_loss'] for r in trained])} | {mean_std([r['valid_bleu'] for r in trained])} | "
                f"{mean_std([r['test_bleu'] for r in trained])} | {sum(r['stalled'] for r in group)} | "
                f"{sum(r['diverged'] for r in group)} | {len(group)} |"
            )
    table = "\n".join(lines)
    planned = len(args.arms) * len(args.lrs) * len(args.seeds)
    wall = sum(r["wall_time_s"] for r in runs)
    body = f"""# Stability sweep `{args.name}`

{len(runs)} of {planned} planned runs finished. Post-LN `{args.preset}` encoder-decoder, corpus `{args.corpus}`,
{args.steps} steps, Adam (0.9, 0.98), linear decay, label smoothing {args.label_smoothing}, batches of
{args.max_tokens} tokens, joint BPE {args.bpe_vocab_size}; no warmup except `fairseq+warmup`
({args.warmup_steps} steps); `fairseq+gradinit`: `{args.gradinit_args}`. Seeds {args.seeds}. BLEU: beam 5 on the
first {args.max_eval_sentences} sentences. Mean ± std over seeds.

Unigram plateau (lowest label-smoothed loss that ignores the source and the prefix): {plateau:.3f}. A run is
**stalled** when its final validation loss is above {plateau - margin:.3f} (within {margin} nats of the plateau),
**diverged** when training stopped on a NaN/inf loss.

{table}

![loss curves and final metrics against the learning rate](sweep.png)

Machine: {settings["machine"]}. Sum of run wall times: {wall / 3600:.2f} h ({args.jobs} run(s) at a time).
Command:

    {settings["command"]}

Each run's exact train_mt command, loss curve and metrics are in `runs/`.
"""
    (results / "README.md").write_text(body)
    plot(args, runs, plateau, results / "sweep.png")
    return table


def plot(args: argparse.Namespace, runs: list[dict[str, Any]], plateau: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(ARMS, ("tab:gray", "tab:red", "tab:blue", "tab:green")))
    fig, axes = plt.subplots(1, len(args.lrs) + 2, figsize=(4.2 * (len(args.lrs) + 2), 3.8), squeeze=False)
    for ax, lr in zip(axes[0], args.lrs):
        for run in (r for r in runs if r["lr"] == lr):
            steps, losses = zip(*run["train_curve"]) if run["train_curve"] else ((), ())
            ax.plot(steps, losses, color=colors[run["arm"]], alpha=0.7, linewidth=1)
        ax.axhline(plateau, color="black", linestyle=":", linewidth=0.8)
        ax.set(title=f"lr {lr:g}: training loss", xlabel="step", ylabel="loss")
    for ax, key, label in ((axes[0][-2], "valid_loss", "final validation loss"), (axes[0][-1], "valid_bleu", "BLEU")):
        for arm in args.arms:
            points = [(r["lr"], r[key]) for r in runs if r["arm"] == arm and r[key] is not None]
            if points:
                ax.plot(*zip(*points), "o", color=colors[arm], alpha=0.7, label=arm)
        if key == "valid_loss":
            ax.axhline(plateau, color="black", linestyle=":", linewidth=0.8, label="unigram plateau")
        ax.set(xscale="log", xlabel="learning rate", title=label)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine_description() -> str:
    """CPU model and cores, the GPU (if any) and Python: what the report's wall times were measured on."""
    import torch

    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return (
        f"{platform.machine()} ({cpu_model()}), {os.cpu_count()} CPU cores{gpu}, "
        f"{platform.python_implementation()} {platform.python_version()}, torch {torch.__version__}"
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_arguments(argv)
    results = Path(args.results_dir) / args.name
    (results / "runs").mkdir(parents=True, exist_ok=True)
    if args.detach:
        log = results.parent / f"{args.name}.log"
        with log.open("a") as handle:
            child = subprocess.Popen(
                [sys.executable, __file__, *[a for a in argv if a != "--detach"]],
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        print(f"sweep running in the background (pid {child.pid}); log: {log}; rerun without --detach to resume")
        return

    settings_path = results / "sweep.json"
    settings = json.loads(settings_path.read_text()) if settings_path.exists() else {}
    if "unigram_plateau" not in settings:
        settings = {
            "unigram_plateau": unigram_plateau(args),
            "machine": machine_description(),
            "command": shlex.join(["python", "scripts/stability_sweep.py", *[a for a in argv if a != "--report_only"]]),
        }
        settings_path.write_text(json.dumps(settings, indent=1) + "\n")
    if not args.report_only:
        todo = [
            (arm, lr, seed)
            for seed in args.seeds
            for lr in args.lrs
            for arm in args.arms
            if not (results / "runs" / f"{run_id(arm, lr, seed)}.json").exists()
        ]
        print(f"{len(todo)} runs to do", flush=True)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for summary in pool.map(lambda job: run_one(args, results, *job), todo):
                print(
                    f"{summary['run']}: valid loss {summary['valid_loss']}, BLEU {summary['valid_bleu']}, "
                    f"diverged {summary['diverged']}, {summary['wall_time_s']} s",
                    flush=True,
                )
    print(write_report(args, results, settings))


if __name__ == "__main__":
    main()
