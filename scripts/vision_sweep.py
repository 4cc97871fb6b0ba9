"""Vision sweep: does GradInit speed up and stabilise convnets with and without BatchNorm, per learning rate and seed?

The paper's claim (Zhu et al. 2021, CIFAR-10): GradInit accelerates convergence and improves test accuracy of VGG
and ResNet, with or without BatchNorm. Every run here is `examples/image_classification/train_classifier.py` (the
paper's recipe: SGD momentum 0.9, batch 128, weight decay 1e-4, cosine decay, no warmup, gradient clipping 1 without
BatchNorm) on Fashion-MNIST (or generated images), for one model arm x initialisation x learning rate x seed:

- model arms (`--models`): `vgg` (no BN), `resnet` (no BN), `vgg-bn`, `resnet-bn`;
- initialisations (`--inits`): `kaiming` (He init, the models' default) and `gradinit` (He init, then GradInit with
  the settings `train_classifier.py` derives from the run: the CIFAR settings at eta = lr, the paper's tau per model;
  `--gradinit_args` adds explicit ones).

The definitions below are written into the report before the first run finishes (pre-registered):
a run *diverged* when its final training loss (the mean over its last epoch) is NaN/inf or above ln(10) +
`--diverge_margin` (no better than guessing among 10 classes); it *failed to train* when its test accuracy is below
`--fail_accuracy`; its *first-epoch loss* is the mean training loss over the steps of its first epoch. Each finished
run is summarised in `docs/results/<name>/runs/*.json`; rerunning the same command skips those, so a partial grid
resumes. `README.md` (tables of mean ± std per arm) and `sweep.png` are rewritten after every run.

    python scripts/vision_sweep.py --name fmnist --jobs 2 --threads 1               # the grid in the foreground
    python scripts/vision_sweep.py --name fmnist --jobs 2 --threads 1 --detach      # in the background (log file)
    python scripts/vision_sweep.py --name fmnist --report_only                      # table + plot of what is done

The defaults are the grid sized for 2 CPU cores: VGG-11 (width 0.25), ResNet-20 (width 0.5) and VGG-11 with BN,
25,600 training images, 3 epochs (600 steps; GradInit 300 iterations), lr 0.02 / 0.1 / 0.5, seeds 1-3: 54 runs.
Its wall time is not measured; estimated from 60-step runs of each arm (two at a time, one thread each, on a
2-core AMD EPYC shared with other work): about 1.5 h, less on an idle machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stability_sweep import machine_description, mean_std  # noqa: E402  (the sibling sweep's conventions)

REPO = Path(__file__).resolve().parents[1]
TRAIN_CLASSIFIER = REPO / "examples" / "image_classification" / "train_classifier.py"
MODELS = {"vgg": ("vgg", False), "resnet": ("resnet", False), "vgg-bn": ("vgg", True), "resnet-bn": ("resnet", True)}
INITS = ("kaiming", "gradinit")
CHANCE_LOSS = math.log(10)
#: What a run's summary keeps of train_classifier's results.json.
SUMMARY_KEYS = (
    *("depth", "batch_norm", "width_multiplier", "train_images", "parameters", "steps", "epochs", "max_grad_norm"),
    *("epoch_losses", "first_epoch_loss", "final_train_loss", "test_accuracy", "test_loss", "gradinit_config"),
    *("gradinit_summary", "gradinit_time_s", "train_time_s", "seconds_per_step"),
)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="Results go to <results_dir>/<name>/.")
    parser.add_argument("--results_dir", default=str(REPO / "docs" / "results"), help="Where sweeps are stored.")
    parser.add_argument("--source", default="fashion-mnist", choices=("fashion-mnist", "synthetic"), help="Images.")
    parser.add_argument("--models", nargs="+", default=["vgg", "resnet", "vgg-bn"], choices=list(MODELS))
    parser.add_argument("--inits", nargs="+", default=list(INITS), choices=INITS, help="Initialisations to compare.")
    parser.add_argument("--vgg_depth", type=int, default=11, help="Depth of the VGG arms (11, 13, 16, 19).")
    parser.add_argument("--resnet_depth", type=int, default=20, help="Depth of the ResNet arms (6n + 2).")
    parser.add_argument("--vgg_width", type=float, default=0.25, help="Width multiplier of the VGG arms.")
    parser.add_argument("--resnet_width", type=float, default=0.5, help="Width multiplier of the ResNet arms.")
    parser.add_argument("--train_size", type=int, default=25600, help="Training images (a fixed subset).")
    parser.add_argument("--epochs", type=float, default=3, help="Epochs per run.")
    parser.add_argument("--max_steps", type=int, default=None, help="Steps per run instead of --epochs.")
    parser.add_argument("--batch_size", type=int, default=128, help="Training batch size (the paper's 128).")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.02, 0.1, 0.5], help="Learning rates (paper: 0.1).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="Seeds (model init, batch order).")
    parser.add_argument("--gradinit_args", default="", help="More train_classifier arguments for the gradinit runs.")
    parser.add_argument("--extra_args", default="", help="More train_classifier arguments for every run.")
    parser.add_argument(
        "--diverge_margin", type=float, default=0.1, help="Diverged: final train loss above ln(10) + this (or NaN)."
    )
    parser.add_argument("--fail_accuracy", type=float, default=0.2, help="Failed to train: test accuracy below this.")
    parser.add_argument("--jobs", type=int, default=1, help="Runs at the same time.")
    parser.add_argument("--threads", type=int, default=None, help="Torch threads per run (default: cores / jobs).")
    parser.add_argument("--scratch", default=str(REPO / "runs" / "vision_sweep"), help="Where runs write outputs.")
    parser.add_argument("--keep_scratch", action="store_true", help="Keep each run's output directory.")
    parser.add_argument("--detach", action="store_true", help="Run the grid in the background; print the log path.")
    parser.add_argument("--report_only", action="store_true", help="Only (re)write the report and the plot.")
    return parser.parse_args(argv)


def run_id(model: str, init: str, lr: float, seed: int) -> str:
    return f"{model}_{init}_lr{lr:g}_seed{seed}"


def depth_and_width(args: argparse.Namespace, model: str) -> tuple[int, float]:
    return (args.vgg_depth, args.vgg_width) if MODELS[model][0] == "vgg" else (args.resnet_depth, args.resnet_width)


def classifier_arguments(
    args: argparse.Namespace, model: str, init: str, lr: float, seed: int, output_dir: Path
) -> list[str]:
    """The train_classifier command line of one run."""
    family, batch_norm = MODELS[model]
    depth, width = depth_and_width(args, model)
    command = [
        "--source", args.source, "--model", family, "--depth", str(depth),
        "--batch_norm", str(batch_norm).lower(), "--width_multiplier", str(width),
        "--train_size", str(args.train_size), "--per_device_train_batch_size", str(args.batch_size),
        "--learning_rate", str(lr), "--seed", str(seed), "--output_dir", str(output_dir), "--disable_tqdm", "true",
    ]  # fmt: skip
    command += ["--max_steps", str(args.max_steps)] if args.max_steps else ["--num_train_epochs", str(args.epochs)]
    if init == "gradinit":
        command += ["--gradinit", *shlex.split(args.gradinit_args)]
    return command + shlex.split(args.extra_args)


def run_one(args: argparse.Namespace, results: Path, model: str, init: str, lr: float, seed: int) -> dict[str, Any]:
    """Train one run with train_classifier in a subprocess and store its summary (a crash is stored as such)."""
    name = run_id(model, init, lr, seed)
    output_dir = Path(args.scratch) / args.name / name
    shutil.rmtree(output_dir, ignore_errors=True)  # a run interrupted earlier starts again
    command = [sys.executable, str(TRAIN_CLASSIFIER), *classifier_arguments(args, model, init, lr, seed, output_dir)]
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    summary: dict[str, Any] = {"run": name, "model": model, "init": init, "lr": lr, "seed": seed}
    if completed.returncode == 0:
        run = json.loads((output_dir / "results.json").read_text())
        summary.update({key: run[key] for key in SUMMARY_KEYS})
    else:
        summary["error"] = f"exit {completed.returncode}: {completed.stderr[-3000:]}"
    summary["wall_time_s"] = round(time.perf_counter() - started, 1)
    summary["command"] = shlex.join(["python", str(TRAIN_CLASSIFIER.relative_to(REPO)), *command[2:]])
    (results / "runs" / f"{name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    if not args.keep_scratch:
        shutil.rmtree(output_dir, ignore_errors=True)
    return summary


def classify(run: dict[str, Any], args: argparse.Namespace) -> dict[str, bool]:
    """The pre-registered flags of one run."""
    if "error" in run:
        return {"crashed": True, "diverged": False, "failed": False}
    loss = run["final_train_loss"]
    diverged = loss is None or not math.isfinite(loss) or loss > CHANCE_LOSS + args.diverge_margin
    return {"crashed": False, "diverged": diverged, "failed": run["test_accuracy"] < args.fail_accuracy}


def arm_label(model: str, args: argparse.Namespace) -> str:
    family, batch_norm = MODELS[model]
    depth, width = depth_and_width(args, model)
    return f"{'VGG' if family == 'vgg' else 'ResNet'}-{depth} {'with' if batch_norm else 'without'} BN, width {width:g}"


def definitions(args: argparse.Namespace) -> str:
    return f"""Definitions (fixed before the first run):

- **first-epoch loss**: the mean training loss over the steps of the first epoch (the Trainer's per-epoch log);
- **diverged**: the final training loss (mean over the last epoch) is NaN/inf or above ln(10) + {args.diverge_margin}
  = {CHANCE_LOSS + args.diverge_margin:.3f} (no better than guessing among 10 classes);
- **failed to train**: test accuracy below {args.fail_accuracy:.0%} (chance: 10%);
- **crashed**: train_classifier exited with an error (its message is in the run's summary);
- **seeds** {args.seeds}: each seeds the model's initialisation and the batch order; the training subset and the
  validation split are the same for every run (fixed split seed), and so is GradInit's own seed (0).

Means ± standard deviations are over the seeds of runs that did not crash; a diverged run's NaN loss is left out
of the loss columns and counted in `diverged`."""


def write_report(args: argparse.Namespace, results: Path, settings: dict[str, Any]) -> str:
    """README.md (settings, definitions, one table row per arm and lr) and sweep.png."""
    grid = {run_id(*job) for job in itertools.product(args.models, args.inits, args.lrs, args.seeds)}
    runs = [json.loads(path.read_text()) for path in sorted((results / "runs").glob("*.json")) if path.stem in grid]
    for run in runs:
        run.update(classify(run, args))
    lines = [
        "| model | init | lr | first-epoch loss | final train loss | test accuracy (%) | GradInit (s) | "
        "training (s) | diverged | failed | crashed | runs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def finite(values: list[float | None]) -> list[float]:
        return [value for value in values if value is not None and math.isfinite(value)]

    for model in args.models:
        for init in args.inits:
            for lr in args.lrs:
                group = [r for r in runs if (r["model"], r["init"], r["lr"]) == (model, init, lr)]
                if not group:
                    continue
                ran = [r for r in group if not r["crashed"]]
                gradinit_time = mean_std([r["gradinit_time_s"] for r in ran]) if init == "gradinit" else "–"
                lines.append(
                    f"| {arm_label(model, args)} | {init} | {lr:g} | "
                    f"{mean_std(finite([r['first_epoch_loss'] for r in ran]))} | "
                    f"{mean_std(finite([r['final_train_loss'] for r in ran]))} | "
                    f"{mean_std([100 * r['test_accuracy'] for r in ran])} | {gradinit_time} | "
                    f"{mean_std([r['train_time_s'] for r in ran])} | {sum(r['diverged'] for r in group)} | "
                    f"{sum(r['failed'] for r in group)} | {sum(r['crashed'] for r in group)} | {len(group)} |"
                )
    table = "\n".join(lines)
    planned = len(grid)
    length = f"{args.max_steps} steps" if args.max_steps else f"{args.epochs:g} epochs"
    wall = sum(r["wall_time_s"] for r in runs)
    body = f"""# Vision sweep `{args.name}`

{len(runs)} of {planned} planned runs finished. Source `{args.source}`, {args.train_size} training images (a fixed
subset), {length} per run, batch {args.batch_size}; models (width: channel multiplier):
{"; ".join(arm_label(model, args) for model in args.models)}. Training: SGD momentum 0.9, weight decay 1e-4, cosine
decay, no warmup, gradient clipping 1 without BN (the paper's recipe). `gradinit`: He init, then GradInit as
`train_classifier.py --gradinit` derives it from the run (CIFAR settings, eta = lr, the paper's tau per
model){f", plus `{args.gradinit_args}`" if args.gradinit_args else ""}. Test accuracy on the full test split.

{definitions(args)}

{table}

![first-epoch loss and test accuracy against the learning rate; training loss per epoch](sweep.png)

Machine: {settings["machine"]}. Elapsed: {settings.get("elapsed_s", 0) / 60:.0f} min; sum of run wall times:
{wall / 3600:.2f} h ({args.jobs} run(s) at a time, {args.threads or "cores / jobs"} thread(s) each). Command:

    {settings["command"]}

Each run's exact train_classifier command, per-epoch losses, GradInit settings and timings are in `runs/`.
"""
    (results / "README.md").write_text(body)
    if runs:
        plot(args, runs, results / "sweep.png")
    return table


def plot(args: argparse.Namespace, runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(MODELS, ("tab:red", "tab:blue", "tab:orange", "tab:purple")))
    styles = {"kaiming": ("x", "--"), "gradinit": ("o", "-")}
    ran = [r for r in runs if not r["crashed"]]
    fig, axes = plt.subplots(1, 2 + len(args.models), figsize=(4.2 * (2 + len(args.models)), 3.8), squeeze=False)
    for ax, key, title in ((axes[0][0], "first_epoch_loss", "first-epoch loss"), (axes[0][1], "test_accuracy", "")):
        for model in args.models:
            for init in args.inits:
                points = [(r["lr"], r[key]) for r in ran if (r["model"], r["init"]) == (model, init)]
                points = [(lr, value) for lr, value in points if value is not None and math.isfinite(value)]
                if points:
                    ax.plot(*zip(*points), styles[init][0], color=colors[model], alpha=0.7,
                            label=f"{arm_label(model, args)}, {init}")  # fmt: skip
        ax.set(xscale="log", xlabel="learning rate", title=title or "test accuracy")
    axes[0][0].axhline(CHANCE_LOSS, color="black", linestyle=":", linewidth=0.8)
    axes[0][1].legend(fontsize=6)
    lr_colors = {lr: plt.cm.viridis(0.85 * index / max(1, len(args.lrs) - 1)) for index, lr in enumerate(args.lrs)}
    for ax, model in zip(axes[0][2:], args.models):
        for run in (r for r in ran if r["model"] == model and r["epoch_losses"]):
            epochs, losses = zip(*run["epoch_losses"])
            ax.plot(epochs, losses, styles[run["init"]][1], marker=".", color=lr_colors[run["lr"]], alpha=0.7)
        for lr, color in lr_colors.items():
            ax.plot([], [], color=color, label=f"lr {lr:g}")
        ax.legend(fontsize=6)
        ax.axhline(CHANCE_LOSS, color="black", linestyle=":", linewidth=0.8)
        ax.set(title=f"{arm_label(model, args)}\ntrain loss per epoch", xlabel="epoch", ylabel="loss (dashed: kaiming)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def versions() -> str:
    import datasets
    import transformers

    return f"transformers {transformers.__version__}, datasets {datasets.__version__}"


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
    if "command" not in settings:
        settings = {
            "machine": f"{machine_description()}, {versions()}",
            "command": shlex.join(["python", "scripts/vision_sweep.py", *[a for a in argv if a != "--report_only"]]),
            "elapsed_s": 0.0,
        }
        settings_path.write_text(json.dumps(settings, indent=1) + "\n")
    if not args.report_only:
        todo = [
            (model, init, lr, seed)
            for seed in args.seeds
            for lr in args.lrs
            for model in args.models
            for init in args.inits
            if not (results / "runs" / f"{run_id(model, init, lr, seed)}.json").exists()
        ]
        print(f"{len(todo)} runs to do", flush=True)
        write_report(args, results, settings)  # the definitions are in the report before any result
        started, elapsed_before = time.perf_counter(), settings.get("elapsed_s", 0.0)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for summary in pool.map(lambda job: run_one(args, results, *job), todo):
                outcome = summary.get("error") or (
                    f"first-epoch loss {summary['first_epoch_loss']}, test accuracy {summary['test_accuracy']}"
                )
                print(f"{summary['run']}: {outcome}, {summary['wall_time_s']} s", flush=True)
                settings["elapsed_s"] = elapsed_before + time.perf_counter() - started  # kept if interrupted
                settings_path.write_text(json.dumps(settings, indent=1) + "\n")
                write_report(args, results, settings)
    print(write_report(args, results, settings))


if __name__ == "__main__":
    main()
