"""The GPU check of issue "Evidence II", as one command for a lent GPU, in phases that fit a deadline.

Phases: the short benchmark, then the sweeps and benchmark in order of value; each starts only with time left,
and one still running at `--deadline_s` is stopped:

1. `bench_gradinit.py` on CUDA at d=512 (the `iwslt14-de-en` width), PyTorch's SDPA kernels: every step kind against
   a training step, and the finite-difference constraint step's accuracy.
2. `stability_sweep.py --gradinit_once` on the paper's model (`iwslt14-de-en` preset, bf16 autocast, 4096-token
   batches) at the paper's lr 5e-4: the published-settings GradInit (780 iterations, tau 2.5e-3, gamma 1000 on
   ||g||_1, eta by the default rule: 2 x lr = the paper's 1e-3) once per init and seed, timed on its own; then
   `--steps` updates of fairseq, fairseq+warmup, fairseq+gradinit, hf and hf+gradinit side by side. Each run
   records both validation losses (eval mode, and dropout on): the stalled-run anomaly.
3. The same bench with the math SDPA backend (train, objective and finite-difference constraint steps): what the
   fused attention kernels are worth.
4. The sweep at lr 1e-3, if time is left.

Results land in `docs/results/<name>/` (rerunning resumes) and, when `$OUT` is set (the device tool), in
`$OUT/<name>.tar.gz` with the partial logs of stopped runs (`partial/<run>/metrics.jsonl`: loss curve, throughput).

    python scripts/gpu_check.py                                    # Ding if installed (or --corpus FILE), else toy
    python scripts/gpu_check.py --deadline_s 300 --steps 500       # a smaller check

On the device tool, whose image lacks datasets and has too old a transformers, and which reaches no registry:
first, here, `python scripts/gpu_check.py --prepare` (needs `apt-get install trans-de-en`) puts what the package's
`mt` needs beyond that image (`DEVICE_WHEELS`: pyproject's lower bounds, on which CI's second pass runs the suite)
and Ding's corpus into `.gpu/` (ignored by git), and prints the device command, which carries `.gpu`, installs the
wheels, unpacks Ding to its path and runs this script (`DEVICE_COMMAND`).

Not yet run on a GPU (none was lent to the sessions that wrote it); a CPU smoke run (`--skip_bench --corpus toy
--preset small --steps 4 --gradinit_args "--gradinit_iterations 2"`) checked the phases, the deadline and the archive.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DING = Path("/usr/share/trans/de-en")
ARMS = ("fairseq", "fairseq+warmup", "fairseq+gradinit", "hf", "hf+gradinit")
MATH_VARIANTS = ("train step", "objective step", "constraint step, finite difference")
KIT = ".gpu"  # what the device run carries (`--prepare`), relative to the repository root
DEVICE_WHEELS = ("transformers==5.18.0", "datasets==4.0.0", "dill==0.3.8", "multiprocess==0.70.16", "fsspec==2025.3.0")
DEVICE_PYTHON = "3.12"  # the device image's
DEVICE_COMMAND = (
    f"python3 -m pip install -q --no-index --no-deps {KIT}/wheels/*.whl && mkdir -p {DING.parent} && "
    f"gunzip -c {KIT}/de-en.gz > {DING} && PYTHONPATH=. python3 scripts/gpu_check.py"
)


def prepare(kit: Path = REPO / KIT, ding: Path = DING) -> None:
    """Put the wheels the device image lacks and Ding's corpus into `kit`, for the device run to carry."""
    if not ding.is_file():
        raise SystemExit(f"{ding} is missing: `apt-get install trans-de-en` puts Ding's De-En sentences there.")
    wheels = kit / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    kit.mkdir(parents=True, exist_ok=True)
    download = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    subprocess.run([*download, "--python-version", DEVICE_PYTHON, "--dest", str(wheels), *DEVICE_WHEELS], check=True)
    with ding.open("rb") as source, gzip.open(kit / "de-en.gz", "wb") as target:
        shutil.copyfileobj(source, target)


def run_until(command: list[str], deadline: float, log: Path) -> None:
    """Run `command` (in its own process group, output to `log`) until it ends or `deadline` passes; print the log
    and how it ended."""
    left = deadline - time.monotonic()
    if left < 30:
        print(f"skipped (only {left:.0f} s left): {log.name}", flush=True)
        return
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with log.open("w") as output:
        child = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            child.wait(timeout=left)
            ended = f"exit {child.returncode}"
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            ended = "stopped at the deadline"
    print(log.read_text(), f"-> {log.name}: {ended}", sep="\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="ding-iwslt14-gpu", help="docs/results/<name>/ for the sweep.")
    parser.add_argument("--corpus", default=None, help="train_mt --source (default: ding if installed, else toy).")
    parser.add_argument("--preset", default="iwslt14-de-en")
    parser.add_argument("--d_model", type=int, default=512, help="Width of the benchmarked model.")
    parser.add_argument("--steps", type=int, default=2000, help="Training updates per run.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument(
        "--gradinit_args",
        default="--gradinit_iterations 780 --gradinit_scale_lr 2.5e-3 --gradinit_grad_norm_bound 1000",
        help="The +gradinit arms' settings (default: the published ones; eta by the default rule).",
    )
    parser.add_argument("--deadline_s", type=float, default=450, help="Stop everything this long after the start.")
    parser.add_argument("--skip_bench", action="store_true")
    parser.add_argument("--prepare", action="store_true", help="Here, not on the GPU: fill .gpu/ for the device run.")
    args = parser.parse_args()
    if args.prepare:
        prepare()
        print(f"Ready. The device tool's call: run(carry=[{KIT!r}], timeout_s=540, command={DEVICE_COMMAND!r})")
        return
    corpus = args.corpus or ("ding" if DING.is_file() else "toy")
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    logs = out or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    deadline = time.monotonic() + args.deadline_s
    results = REPO / "docs" / "results" / args.name
    scratch = REPO / "runs" / "sweep" / args.name

    def bench(attention: str, variants: tuple[str, ...] | None = None) -> None:
        command = [
            sys.executable, str(REPO / "scripts" / "bench_gradinit.py"), "--device", "cuda", "--d_model",
            str(args.d_model), "--batch_size", "64", "--length", "64", "--attention", attention,
        ]  # fmt: skip
        if variants:
            command += ["--variants", *variants]
        run_until(command, deadline, logs / f"bench-{attention}.md")

    def sweep_command(*lrs: str) -> list[str]:
        return [
            sys.executable, str(REPO / "scripts" / "stability_sweep.py"), "--name", args.name, "--corpus", corpus,
            "--preset", args.preset, "--steps", str(args.steps), "--lrs", *lrs, "--seeds", *map(str, args.seeds),
            "--arms", *ARMS, "--warmup_steps", str(args.steps // 5), "--max_tokens", "4096",
            "--bpe_vocab_size", "8000", "--jobs", str(len(ARMS)), "--threads", "1", "--gradinit_once",
            "--extra_args", "--mixed_precision bf16", "--gradinit_args", args.gradinit_args,
        ]  # fmt: skip

    if not args.skip_bench:
        bench("default")
    run_until(sweep_command("5e-4"), deadline, logs / "sweep-lr5e-4.log")
    if not args.skip_bench:
        bench("math", MATH_VARIANTS)
    run_until(sweep_command("1e-3"), deadline, logs / "sweep-lr1e-3.log")
    if results.exists():  # the table of whatever finished, over both learning rates
        report = [*sweep_command("5e-4", "1e-3"), "--report_only"]
        subprocess.run(report, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
    if out and results.exists():
        with tarfile.open(out / f"{args.name}.tar.gz", "w:gz") as archive:
            archive.add(results, arcname=args.name)
            for metrics in scratch.glob("*/metrics.jsonl"):  # runs stopped at the deadline
                archive.add(metrics, arcname=f"{args.name}/partial/{metrics.parent.name}/metrics.jsonl")
            for scales in scratch.glob("gradinit/*/gradinit_scales.json"):
                archive.add(scales, arcname=f"{args.name}/gradinit/{scales.parent.name}/gradinit_scales.json")


if __name__ == "__main__":
    main()
