"""The GPU check of issue "Evidence II", as one command for a lent GPU (sized for about 8 minutes on an H200).

1. `bench_gradinit.py` on CUDA at d=512 (the `iwslt14-de-en` width), with PyTorch's SDPA kernels and with the math
   backend: every step kind against a training step, and the finite-difference constraint step's accuracy.
2. `stability_sweep.py --gradinit_once` on the paper's model (`iwslt14-de-en` preset, bf16 autocast, 4096-token
   batches, no warmup except fairseq+warmup): first the published-settings GradInit (780 iterations, tau 2.5e-3,
   gamma 1000 on ||g||_1, eta by the default rule: 2 x lr) once per init, lr and seed, timed on its own; then
   `--steps` updates of fairseq, fairseq+warmup, fairseq+gradinit, hf and hf+gradinit at lr 5e-4 and 1e-3,
   many at a time. Each run records both validation losses (eval mode, and dropout on): the stalled-run anomaly.
Everything lands in `docs/results/<name>/` (and `$OUT` when set, for the device tool); rerunning resumes.

    python scripts/gpu_check.py                          # Ding if installed (or carried: --corpus FILE), else toy
    python scripts/gpu_check.py --steps 1000 --seeds 1   # a smaller check

Not yet run: no GPU was lent to the session that wrote it, so its wall time is an estimate (GradInit: 780
iterations of ~3 passes of a 4096-token batch, ~1 min each alone; training: ten runs sharing the GPU at ~50
updates/s together), not a measurement.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DING = Path("/usr/share/trans/de-en")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="ding-iwslt14-gpu", help="docs/results/<name>/ for the sweep.")
    parser.add_argument("--corpus", default=None, help="train_mt --source (default: ding if installed, else toy).")
    parser.add_argument("--steps", type=int, default=2000, help="Training updates per run.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--jobs", type=int, default=10, help="Runs sharing the GPU.")
    parser.add_argument("--skip_bench", action="store_true")
    args = parser.parse_args()
    corpus = args.corpus or ("ding" if DING.is_file() else "toy")
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    started = time.perf_counter()

    if not args.skip_bench:
        for attention in ("default", "math"):
            command = [
                sys.executable, str(REPO / "scripts" / "bench_gradinit.py"), "--device", "cuda", "--d_model", "512",
                "--batch_size", "64", "--length", "64", "--attention", attention,
            ]  # fmt: skip
            bench = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            print(bench, flush=True)
            if out:
                (out / f"bench-{attention}.md").write_text(bench)

    sweep = [
        sys.executable, str(REPO / "scripts" / "stability_sweep.py"), "--name", args.name, "--corpus", corpus,
        "--preset", "iwslt14-de-en", "--steps", str(args.steps), "--lrs", "5e-4", "1e-3",
        "--seeds", *map(str, args.seeds), "--arms", "fairseq", "fairseq+warmup", "fairseq+gradinit", "hf",
        "hf+gradinit", "--warmup_steps", "400", "--max_tokens", "4096", "--bpe_vocab_size", "8000",
        "--jobs", str(args.jobs), "--threads", "1", "--gradinit_once", "--extra_args", "--mixed_precision bf16",
        "--gradinit_args",
        "--gradinit_iterations 780 --gradinit_scale_lr 2.5e-3 --gradinit_grad_norm_bound 1000",
    ]  # fmt: skip
    subprocess.run(sweep, env=env, check=True)
    print(f"gpu_check: {time.perf_counter() - started:.0f} s", flush=True)
    if out:
        results = REPO / "docs" / "results" / args.name
        shutil.make_archive(str(out / args.name), "gztar", results.parent, results.name)


if __name__ == "__main__":
    main()
