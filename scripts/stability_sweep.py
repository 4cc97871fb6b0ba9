"""Stability sweep: does a Post-LN encoder-decoder train without warmup, per learning rate, initialisation and seed?

Every run is `examples/translation/train_mt.py` (label smoothing, linear decay, **no warmup** unless the arm says
so, the optimizer of `--optimizer` / `--adam_betas` / `--momentum`) with one of these initialisations ("arms"):

- `hf`: Hugging Face's default N(0, 0.02); `hf+gradinit`: the same, GradInit first;
- `fairseq`: fairseq's Xavier init (`fairseq_init_`), the paper's failing baseline;
- `fairseq+warmup`: the same with linear warmup, the usual remedy (the reference arm, the only one with warmup);
- `fairseq+gradinit`: the same, no warmup, GradInit first (settings of both GradInit arms: `--gradinit_args`);
- `tfixup`, `deepnet`: fairseq's init with T-Fixup's or DeepNet's depth-scaled factors (`--init tfixup|deepnet`:
  variants on Post-LN, LayerNorm kept, no residual re-weighting), no warmup.

A run's identity is its arm, lr, seed and optimizer setting: `runs/<arm>_lr<lr>_seed<seed>_<setting>.json`, with
setting `adamw-b0.9-0.98`, `adam-b0.9-0.999`, `sgd-m0.9`, ... (`optimizer_setting`), so grids over beta2 or over SGD
can share one `--name` (the table has a row per setting) or use their own. Summaries written before the optimizer
options (`runs/<arm>_lr<lr>_seed<seed>.json`, no setting) were all AdamW (0.9, 0.98) without weight decay: they read
as `adamw-b0.9-0.98`, and a rerun of that setting skips them.

A run is *diverged* when train_mt stopped it on a NaN/inf loss, and *stalled* when its final validation loss is
within `--stall_margin` nats of the unigram plateau: the lowest label-smoothed loss a model that ignores the source
and the target prefix can reach, i.e. the entropy of (1 - eps) * p + eps / V for the training targets' token
frequencies p. Each finished run is summarised in `docs/results/<name>/runs/*.json` (command, loss curve, final
train loss, validation loss in eval mode and with dropout on, BLEU/chrF, stalled/diverged flags, throughput in
target tokens/s, wall time and GradInit's share of it); rerunning the same command skips those, so a partial grid
resumes. Runs go seed by seed (with `--gradinit_once`, each seed's GradInit checkpoints first), so a grid stopped
early has whole seeds. Then `README.md` (a table of mean ± std per arm x optimizer setting x lr, stalled and diverged
counts) and `sweep.png` (loss curves per arm and lr; final loss and BLEU against lr) are written there, over every
run in the folder whichever command ran it; the report lists those commands (kept in `sweep.json`) and copies
`notes.md`, if a person wrote one there (what the script cannot know, such as what else shared the machine).

    python scripts/stability_sweep.py --name ding --corpus ding --jobs 2              # the grid in the foreground
    python scripts/stability_sweep.py --name ding --corpus ding --jobs 2 --detach     # in the background (log file)
    python scripts/stability_sweep.py --name ding --corpus ding --report_only         # table + plot of what is done

On a GPU with internet, the paper's model on IWSLT'14 (bf16 autocast; GradInit itself runs in fp32):

    python scripts/stability_sweep.py --name iwslt14 --preset iwslt14-de-en --corpus bbaaaa/iwslt14-de-en \
        --dataset_revision refs/convert/parquet --shared_vocab false --bpe_vocab_size 10000 --max_tokens 4096 \
        --steps 4000 --lrs 5e-4 7e-4 1e-3 --warmup_steps 4000 --max_eval_sentences 1000 \
        --gradinit_args "--gradinit_iterations 780 --gradinit_scale_lr 2.5e-3 --gradinit_grad_norm_bound 1000" \
        --extra_args "--mixed_precision bf16"

Its wall time is not measured. For scale: on an H200 with ten runs sharing the GPU, 600 steps of this model on
Ding took 160-220 s per run, and the published 780 GradInit iterations did not finish in 400 s (docs/results/
ding-iwslt14-600-h200/). Extrapolated from that, not measured: an hour or more for 4000-step runs with `--jobs 8`
(7 arms x 3 learning rates = 21 runs per seed and optimizer setting).
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
ARMS = ("hf", "hf+gradinit", "fairseq", "fairseq+warmup", "fairseq+gradinit", "tfixup", "deepnet")
INITS = {"hf": "hf", "hf+gradinit": "hf", "tfixup": "tfixup", "deepnet": "deepnet"}  # the other arms: fairseq
LEGACY_SETTING = "adamw-b0.9-0.98"  # what every run summarised before the optimizer options trained with


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
    parser.add_argument(
        "--optimizer", default="adamw", choices=("adamw", "adam", "sgd"), help="train_mt --optimizer of every run."
    )
    parser.add_argument("--adam_betas", type=float, nargs=2, default=[0.9, 0.98], help="Adam(W) betas.")
    parser.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (with --optimizer sgd).")
    parser.add_argument(
        "--shared_vocab", default="true", choices=("true", "false"), help="train_mt --shared_vocab of every run."
    )
    parser.add_argument("--steps", type=int, default=600, help="Training steps per run.")
    parser.add_argument("--warmup_steps", type=int, default=150, help="Warmup of the fairseq+warmup arm.")
    parser.add_argument("--max_tokens", type=int, default=2048, help="Padded tokens per batch.")
    parser.add_argument("--bpe_vocab_size", type=int, default=4000)
    parser.add_argument("--label_smoothing", type=float, default=0.1)
    parser.add_argument("--max_eval_sentences", type=int, default=200, help="Sentences translated for BLEU.")
    parser.add_argument(
        "--gradinit_args",
        default="--gradinit_iterations 150 --gradinit_scale_lr 1e-2 --gradinit_grad_norm_bound inf",
        help="train_mt GradInit arguments of the +gradinit arms (eta defaults to 2 x lr for Adam(W), lr for SGD).",
    )
    parser.add_argument(
        "--gradinit_once",
        action="store_true",
        help="Make each +gradinit arm's GradInit checkpoint first, once per (init, lr, seed), with `hf-gradinit init` "
        "(same data, tokenizer, batches and rule), and train from it: GradInit then never shares the machine with "
        "training runs, and reruns reuse it.",
    )
    parser.add_argument("--extra_args", default="", help="More train_mt arguments for every run.")
    parser.add_argument("--stall_margin", type=float, default=0.1, help="Nats above the unigram plateau = stalled.")
    parser.add_argument("--jobs", type=int, default=1, help="Runs at the same time.")
    parser.add_argument("--threads", type=int, default=None, help="Torch threads per run (default: cores / jobs).")
    parser.add_argument("--scratch", default=str(REPO / "runs" / "sweep"), help="Where runs write checkpoints.")
    parser.add_argument("--keep_scratch", action="store_true", help="Keep each run's output directory.")
    parser.add_argument("--detach", action="store_true", help="Run the grid in the background; print the log path.")
    parser.add_argument("--report_only", action="store_true", help="Only (re)write the table and the plot.")
    args = parser.parse_args(argv)
    if args.momentum and args.optimizer != "sgd":
        parser.error("--momentum applies to --optimizer sgd only.")
    return args


def optimizer_setting(args: argparse.Namespace) -> str:
    """The optimizer part of a run's identity: `adamw-b0.9-0.98`, `adam-b0.9-0.999`, `sgd-m0.9`, ..."""
    if args.optimizer == "sgd":
        return f"sgd-m{args.momentum:g}"
    return f"{args.optimizer}-b{args.adam_betas[0]:g}-{args.adam_betas[1]:g}"


def run_id(arm: str, lr: float, seed: int, setting: str | None = None) -> str:
    """A run's file name (without .json); without `setting`, the name summaries had before the optimizer options."""
    legacy = f"{arm.replace('+', '-')}_lr{lr:g}_seed{seed}"
    return legacy if setting is None else f"{legacy}_{setting}"


def is_done(results: Path, arm: str, lr: float, seed: int, setting: str) -> bool:
    runs = results / "runs"
    legacy = setting == LEGACY_SETTING and (runs / f"{run_id(arm, lr, seed)}.json").exists()
    return legacy or (runs / f"{run_id(arm, lr, seed, setting)}.json").exists()


def train_mt_arguments(args: argparse.Namespace, arm: str, lr: float, seed: int, output_dir: Path) -> list[str]:
    """The train_mt command line of one run."""
    command = [
        "--source", args.corpus, "--toy_size", str(args.toy_size), "--preset", args.preset,
        "--init", INITS.get(arm, "fairseq"), "--shared_vocab", args.shared_vocab,
        "--bpe_vocab_size", str(args.bpe_vocab_size), "--optimizer", args.optimizer,
        "--max_tokens", str(args.max_tokens), "--label_smoothing", str(args.label_smoothing), "--lr", str(lr),
        "--lr_scheduler", "linear", "--max_steps", str(args.steps), "--seed", str(seed), "--log_every", "25",
        "--save_every", str(args.steps), "--keep_checkpoints", "1", "--max_eval_sentences",
        str(args.max_eval_sentences), "--output_dir", str(output_dir),
        "--warmup_steps", str(args.warmup_steps if arm == "fairseq+warmup" else 0),
    ]  # fmt: skip
    if args.optimizer == "sgd":
        command += ["--momentum", str(args.momentum)]
    else:
        command += ["--adam_betas", *map(str, args.adam_betas)]
    for option in ("dataset_config_name", "dataset_revision"):
        if getattr(args, option):
            command += [f"--{option}", getattr(args, option)]
    if arm.endswith("+gradinit") and args.gradinit_once:
        command += ["--model_name_or_path", str(gradinit_checkpoint(args, arm, lr, seed))]
    elif arm.endswith("+gradinit"):
        command += ["--gradinit", *shlex.split(args.gradinit_args)]
    return command + shlex.split(args.extra_args)


def gradinit_checkpoint(args: argparse.Namespace, arm: str, lr: float, seed: int) -> Path:
    """Where --gradinit_once keeps the GradInit checkpoint of an arm's (init, optimizer, lr, seed); Adam's betas do not
    enter GradInit's first step (the sign step), so settings that differ only in them share it."""
    name = f"{INITS.get(arm, 'fairseq')}_{args.optimizer}_lr{lr:g}_seed{seed}"
    return Path(args.scratch) / args.name / "gradinit" / name


def make_gradinit_checkpoint(args: argparse.Namespace, arm: str, lr: float, seed: int) -> Path:
    """`hf-gradinit init` for the run train_mt would make (same corpus, BPE, batches, optimizer, length, seed)."""
    target = gradinit_checkpoint(args, arm, lr, seed)
    if (target / "gradinit_scales.json").exists():
        return target
    command = [
        sys.executable, "-m", "hf_gradinit.integrations.cli", "init", "--output_dir", str(target), "--overwrite",
        "--model", args.preset, "--init", INITS.get(arm, "fairseq"), "--source", args.corpus,
        "--toy_size", str(args.toy_size), "--bpe_vocab_size", str(args.bpe_vocab_size),
        "--shared_vocab", args.shared_vocab,
        "--max_tokens", str(args.max_tokens), "--optimizer", args.optimizer, "--lr", str(lr),
        "--max_steps", str(args.steps), "--label_smoothing", str(args.label_smoothing), "--seed", str(seed),
        *shlex.split(args.gradinit_args),
    ]  # fmt: skip
    for option in ("dataset_config_name", "dataset_revision"):
        if getattr(args, option):
            command += [f"--{option}", getattr(args, option)]
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"GradInit checkpoint {target.name} failed:\n{completed.stderr[-3000:]}")
    return target


def run_one(args: argparse.Namespace, results: Path, plateau: float, arm: str, lr: float, seed: int) -> dict[str, Any]:
    """Train one run with train_mt in a subprocess and store its summary."""
    setting = optimizer_setting(args)
    name = run_id(arm, lr, seed, setting)
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
    wall_time = time.perf_counter() - started
    final = {key: value for r in records for key, value in r.items()}  # later records win
    logged = [r for r in records if "train_loss" in r]
    scales = output_dir / "gradinit_scales.json"
    separate = arm.endswith("+gradinit") and args.gradinit_once  # GradInit ran before, in its checkpoint
    if separate:
        scales = gradinit_checkpoint(args, arm, lr, seed) / "gradinit_scales.json"
    gradinit_time = json.loads(scales.read_text())["wall_time"] if scales.exists() else None

    def score(key: str) -> float | None:
        return None if diverged else final.get(key)

    summary = {
        "run": name,
        "arm": arm,
        "lr": lr,
        "seed": seed,
        "setting": setting,
        "optimizer": args.optimizer,
        "adam_betas": None if args.optimizer == "sgd" else args.adam_betas,
        "momentum": args.momentum if args.optimizer == "sgd" else None,
        "train_curve": [[r["step"], r["train_loss"]] for r in logged],
        "final_train_loss": logged[-1]["train_loss"] if logged else None,
        "valid_loss": score("valid_loss"),
        "valid_loss_dropout": score("valid_loss_dropout"),
        "valid_bleu": score("valid_bleu"),
        "valid_chrf": score("valid_chrf"),
        "test_bleu": score("test_bleu"),
        "test_chrf": score("test_chrf"),
        "diverged": diverged,
        "stalled": is_stalled(score("valid_loss"), diverged, plateau, args.stall_margin),
        "throughput_wps": statistics.mean(r["wps"] for r in logged) if logged else None,
        "wall_time_s": round(wall_time, 1),
        "gradinit_wall_time_s": gradinit_time,
        # GradInit's share of the run's time (with --gradinit_once it ran before the training run, not inside it)
        "gradinit_share": None if gradinit_time is None else gradinit_time / (wall_time + gradinit_time * separate),
        "command": shlex.join(["python", str(TRAIN_MT.relative_to(REPO)), *command[2:]]),
    }
    (results / "runs" / f"{name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    if not args.keep_scratch:
        shutil.rmtree(output_dir, ignore_errors=True)
    return summary


def is_stalled(valid_loss: float | None, diverged: bool, plateau: float, margin: float) -> bool:
    return not diverged and valid_loss is not None and valid_loss >= plateau - margin


def unigram_plateau(args: argparse.Namespace) -> float:
    """The plateau of the runs' corpus: target-token frequencies under the target tokenizer every run trains (same
    data, size, vocabulary layout)."""
    from hf_gradinit.translation import load_translation_corpus, train_joint_bpe, train_separate_bpe

    corpus, _ = load_translation_corpus(
        args.corpus, config_name=args.dataset_config_name, revision=args.dataset_revision, toy_size=args.toy_size
    )
    if args.shared_vocab == "true":
        tokenizer = train_joint_bpe(corpus, args.bpe_vocab_size)
    else:
        tokenizer = train_separate_bpe(corpus, args.bpe_vocab_size)[1]
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


def mean_std(values: list[float | None], digits: int = 2) -> str:
    values = [value for value in values if value is not None]  # None: not measured (older summaries)
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def load_runs(results: Path) -> list[dict[str, Any]]:
    """Every run summary, older ones completed with what they lack: their setting, and None for what they did not
    measure."""
    runs = []
    for path in sorted((results / "runs").glob("*.json")):
        run = json.loads(path.read_text())
        run.setdefault("setting", LEGACY_SETTING)
        if "final_train_loss" not in run:
            run["final_train_loss"] = run["train_curve"][-1][1] if run["train_curve"] and not run["diverged"] else None
        runs.append(run)
    return runs


def gradinit_cost(group: list[dict[str, Any]]) -> str:
    """GradInit's wall time and its share of the run's wall time, mean ± std: "120 ± 5 s (31 ± 2 %)"."""
    seconds = [r.get("gradinit_wall_time_s") for r in group]
    if all(value is None for value in seconds):
        return "–"
    shares = [None if r.get("gradinit_share") is None else 100 * r["gradinit_share"] for r in group]
    return f"{mean_std(seconds, 0)} s ({mean_std(shares, 0)} %)"


def sweep_commands(settings: dict[str, Any]) -> list[str]:
    """The commands that ran this sweep's runs, oldest first (sweeps before this list kept only their first one)."""
    return settings.get("commands", [settings["command"]] if "command" in settings else [])


def write_report(args: argparse.Namespace, results: Path, settings: dict[str, Any]) -> str:
    """The markdown table (mean ± std over seeds per arm, optimizer setting and lr; stalled and diverged counts;
    GradInit's cost; throughput) of every run in the sweep, whichever command ran it, and the plot."""
    runs = load_runs(results)
    arms = [arm for arm in ARMS if any(r["arm"] == arm for r in runs)]
    lrs = sorted({r["lr"] for r in runs})
    plateau, margin = settings["unigram_plateau"], args.stall_margin
    for run in runs:
        run["stalled"] = is_stalled(run["valid_loss"], run["diverged"], plateau, margin)
    lines = [
        "| arm | optimizer | lr | final train loss | valid loss | valid loss, dropout on | valid BLEU | valid chrF | "
        "test BLEU | stalled | diverged | GradInit (share of run) | target tokens/s | runs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in arms:
        for setting in sorted({r["setting"] for r in runs}):
            for lr in lrs:
                group = [r for r in runs if (r["arm"], r["setting"], r["lr"]) == (arm, setting, lr)]
                if not group:
                    continue
                trained = [r for r in group if not r["diverged"]]
                columns = ("final_train_loss", "valid_loss", "valid_loss_dropout", "valid_bleu", "valid_chrf",
                           "test_bleu")  # fmt: skip
                lines.append(
                    f"| {arm} | {setting} | {lr:g} | "
                    + " | ".join(mean_std([r.get(key) for r in trained]) for key in columns)
                    + f" | {sum(r['stalled'] for r in group)} | {sum(r['diverged'] for r in group)} | "
                    f"{gradinit_cost(group)} | {mean_std([r.get('throughput_wps') for r in trained], 0)} | "
                    f"{len(group)} |"
                )
    table = "\n".join(lines)
    setting = optimizer_setting(args)
    planned = len(args.arms) * len(args.lrs) * len(args.seeds)
    finished = sum(
        r["setting"] == setting and r["arm"] in args.arms and r["lr"] in args.lrs and r["seed"] in args.seeds
        for r in runs
    )
    wall = sum(r["wall_time_s"] for r in runs)
    vocabulary = "one shared vocabulary" if args.shared_vocab == "true" else "joint codes, separate vocabularies"
    commands = "\n\n".join(f"    {command}" for command in sweep_commands(settings))
    notes = results / "notes.md"  # what the script cannot know, e.g. what else shared the machine
    notes_text = f"\n{notes.read_text().strip()}\n" if notes.is_file() else ""
    body = f"""# Stability sweep `{args.name}`

{finished} of {planned} runs of the last command (`{setting}`) finished ({len(runs)} runs in all). Post-LN
`{args.preset}` encoder-decoder, corpus `{args.corpus}`, {args.steps} steps, linear decay, label smoothing
{args.label_smoothing}, batches of {args.max_tokens} tokens, BPE {args.bpe_vocab_size} ({vocabulary}); no warmup except
`fairseq+warmup` ({args.warmup_steps} steps); `+gradinit` arms: `{args.gradinit_args}`. Optimizer setting:
`adamw-b0.9-0.98` is AdamW with betas (0.9, 0.98), `sgd-m0.9` SGD with momentum 0.9, and so on (weight decay only
if `--extra_args` gives one). Seeds {args.seeds}. BLEU: sacreBLEU on detokenised text, beam 5 on the first
{args.max_eval_sentences} sentences. Mean ± std over seeds. Valid loss in eval mode (dropout off) and, at the same
final validation, in train mode (dropout on, seeded), as the
training loss is measured; "–" where a run did not record it (summaries from before it was measured).

Unigram plateau (lowest label-smoothed loss that ignores the source and the prefix): {plateau:.3f}. A run is
**stalled** when its final validation loss is above {plateau - margin:.3f} (within {margin} nats of the plateau),
**diverged** when training stopped on a NaN/inf loss. GradInit: its wall time in seconds and its share of the run's
wall time; target tokens/s: the training throughput train_mt logged, averaged over the run.

{table}

![loss curves and final metrics against the learning rate](sweep.png)

Machine: {settings["machine"]}. Sum of run wall times: {wall / 3600:.2f} h ({args.jobs} run(s) at a time in the
last command). Commands, in the order they ran (rerunning one resumes it):

{commands}
{notes_text}
Each run's exact train_mt command, loss curve and metrics are in `runs/`.
"""
    (results / "README.md").write_text(body)
    plot(runs, arms, lrs, plateau, results / "sweep.png")
    return table


def plot(runs: list[dict[str, Any]], arms: list[str], lrs: list[float], plateau: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(ARMS, ("tab:gray", "tab:olive", "tab:red", "tab:blue", "tab:green", "tab:purple", "tab:brown")))
    markers = dict(zip(sorted({r["setting"] for r in runs}), "os^vD<>"))  # one marker per optimizer setting
    fig, axes = plt.subplots(1, len(lrs) + 2, figsize=(4.2 * (len(lrs) + 2), 3.8), squeeze=False)
    for ax, lr in zip(axes[0], lrs):
        for run in (r for r in runs if r["lr"] == lr):
            steps, losses = zip(*run["train_curve"]) if run["train_curve"] else ((), ())
            ax.plot(steps, losses, color=colors[run["arm"]], alpha=0.7, linewidth=1)
        ax.axhline(plateau, color="black", linestyle=":", linewidth=0.8)
        ax.set(title=f"lr {lr:g}: training loss", xlabel="step", ylabel="loss")
    for ax, key, label in ((axes[0][-2], "valid_loss", "final validation loss"), (axes[0][-1], "valid_bleu", "BLEU")):
        for arm in arms:
            for setting, marker in markers.items():
                points = [
                    (r["lr"], r[key]) for r in runs if (r["arm"], r["setting"]) == (arm, setting) and r[key] is not None
                ]
                if points:
                    label_text = arm if len(markers) == 1 else f"{arm}, {setting}"
                    ax.plot(*zip(*points), marker, color=colors[arm], alpha=0.7, label=label_text)
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
        settings = {"unigram_plateau": unigram_plateau(args), "machine": machine_description()}
    command = shlex.join(["python", "scripts/stability_sweep.py", *[a for a in argv if a != "--report_only"]])
    if not args.report_only and command not in sweep_commands(settings):
        settings = {**settings, "commands": [*sweep_commands(settings), command]}
    settings.pop("command", None)
    settings_path.write_text(json.dumps(settings, indent=1) + "\n")
    if not args.report_only:
        setting = optimizer_setting(args)
        todo = [
            (arm, lr, seed)
            for seed in args.seeds
            for lr in args.lrs
            for arm in args.arms
            if not is_done(results, arm, lr, seed, setting)
        ]
        print(f"{len(todo)} runs to do", flush=True)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for seed in args.seeds:  # seed by seed, so that a grid stopped early has whole seeds
                jobs = [job for job in todo if job[2] == seed]
                if args.gradinit_once:  # the seed's GradInit checkpoints first, then its training runs
                    needed = [job for job in jobs if job[0].endswith("+gradinit")]
                    for target in pool.map(lambda job: make_gradinit_checkpoint(args, *job), needed):
                        print(f"GradInit checkpoint {target.name} ready", flush=True)
                for summary in pool.map(lambda job: run_one(args, results, settings["unigram_plateau"], *job), jobs):
                    print(
                        f"{summary['run']}: valid loss {summary['valid_loss']}, BLEU {summary['valid_bleu']}, "
                        f"diverged {summary['diverged']}, {summary['wall_time_s']} s",
                        flush=True,
                    )
    print(write_report(args, results, settings))


if __name__ == "__main__":
    main()
