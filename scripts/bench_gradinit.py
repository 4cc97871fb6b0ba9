"""Benchmark: the cost of a GradInit iteration relative to a training step, on the same batches.

Each variant runs in a fresh child process (so its peak memory is its own), on the same model and batches:
- train step: forward + backward + AdamW step on the whole batch (dropout off, as during GradInit);
- objective step: GradInit's first-order step (forward+backward on S, then on S~ at the stepped weights);
- constraint step: the gradient-norm step (double backward under the math attention backend), graph built
  speculatively because the previous step was a constraint step; and the same after an objective step, when the
  first pass has to be redone with the graph;
- constraint step, finite difference (`constraint_hvp="finite_difference"`): the same step from three first-order
  passes (the gradient, and the gradients at theta +- eps v), with the model's own attention kernels;
- naive objective step: the gradient taken with `create_graph=True` on every iteration (as the official code
  does) and the look-ahead loss differentiated through the Adam step theta - eta * sign(g) as plain autograd code
  does: sign has zero derivative, but autograd still runs the whole double backward to find that out.
Prints a markdown table: median seconds per step, ratio to the train step, peak memory above the model's; then
how far the finite-difference constraint step's alpha-gradient is from the double backward's on this model, for a
few radii r (relative error, and how many scales would move the other way).

    python scripts/bench_gradinit.py                                # 6+6-layer d=128 Post-LN Marian, CPU
    python scripts/bench_gradinit.py --d_model 256 --device cuda
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import resource
import statistics
import time
from collections.abc import Callable

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import MarianMTModel

from hf_gradinit import GradInitConfig
from hf_gradinit.batching import split_batch
from hf_gradinit.core import GradInitSearch, default_loss
from hf_gradinit.translation import fairseq_init_, post_ln_config

VARIANTS = (
    "train step",
    "objective step",
    "constraint step",
    "constraint step, first pass redone",
    "constraint step, finite difference",
    "naive objective step",
)
RADII = (1e-1, 1e-2, 1e-3, 1e-4)


def build(args: argparse.Namespace) -> tuple[MarianMTModel, list[dict]]:
    """The benchmark model (fairseq-initialised Post-LN Marian, default sdpa attention) and its batches."""
    torch.manual_seed(0)
    config = post_ln_config(
        "small",
        vocab_size=args.vocab_size,
        d_model=args.d_model,
        encoder_ffn_dim=4 * args.d_model,
        decoder_ffn_dim=4 * args.d_model,
    )
    model = fairseq_init_(MarianMTModel(config)).to(args.device).eval()
    generator = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(args.batches):
        source = torch.randint(2, args.vocab_size, (args.batch_size, args.length), generator=generator)
        labels = torch.randint(2, args.vocab_size, (args.batch_size, args.length), generator=generator)
        batches.append({"input_ids": source.to(args.device), "labels": labels.to(args.device)})
    return model, batches


def step_function(variant: str, model: MarianMTModel, args: argparse.Namespace) -> Callable[[dict], None]:
    """One step of `variant` on a batch."""
    if variant == "train step":
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98))

        def train_step(batch: dict) -> None:
            optimizer.zero_grad(set_to_none=True)
            model(**batch).loss.backward()
            optimizer.step()

        return train_step
    # A finite bound that is never reached still allows a speculative graph; a tiny one forces constraint steps.
    bound = 1e-6 if variant.startswith("constraint") else 1e30
    hvp = "finite_difference" if variant.endswith("finite difference") else "autograd"
    config = GradInitConfig(grad_norm_bound=bound, scale_lr=1e-4, constraint_hvp=hvp)
    search = GradInitSearch(model, config, default_loss)
    counter = iter(range(10**9))

    def naive_objective_step(batch: dict) -> None:
        first, second = split_batch(batch, config.batch_split)
        theta, _, grads = search.first_pass(first, build_graph=True)
        stepped = [t - config.target_lr * g.sign() for t, g in zip(theta, grads)]  # not detached
        outer = torch.autograd.grad(search.loss(stepped, second), theta)
        search.update_scales(search.block_dots(outer) / config.target_lr, "objective")

    def gradinit_step(batch: dict) -> None:
        search.expect_constraint = variant == "constraint step"
        search.iterate(batch, next(counter))

    return naive_objective_step if variant == "naive objective step" else gradinit_step


def finite_difference_errors(args: argparse.Namespace) -> list[tuple[float, float, int, int]]:
    """(r, relative error, scales moving the other way, scales) of the finite-difference constraint gradient
    against the double backward's, on the first batch at alpha = 1."""
    model, batches = build(args)
    first, _ = split_batch(batches[0], "overlap")
    exact_search = GradInitSearch(model, GradInitConfig(grad_norm_bound=1e-6), default_loss)
    theta, _, grads = exact_search.first_pass(first, build_graph=True)
    exact = exact_search.constraint_gradient(theta, grads, [g.detach() for g in grads]).double()
    del theta, grads
    rows = []
    for radius in RADII:
        config = GradInitConfig(grad_norm_bound=1e-6, constraint_hvp="finite_difference", constraint_fd_radius=radius)
        search = GradInitSearch(model, config, default_loss)
        theta, _, grads = search.first_pass(first, build_graph=False)
        approximate = search.finite_difference_constraint_gradient(first, theta, grads).double()
        relative = ((approximate - exact).norm() / exact.norm()).item()
        rows.append((radius, relative, int((approximate.sign() != exact.sign()).sum()), exact.numel()))
    return rows


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def measure(variant: str, args: argparse.Namespace, queue: multiprocessing.Queue) -> None:
    """Child process: median time per step and peak memory above the state before the first step."""
    torch.set_num_threads(args.threads)
    model, batches = build(args)
    step = step_function(variant, model, args)
    if args.attention == "math":
        plain_step = step

        def step(batch: dict) -> None:
            with sdpa_kernel(SDPBackend.MATH):
                plain_step(batch)

    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _current_rss_bytes()
    times = []
    for i in range(args.warmup + args.repeats):
        batch = batches[i % len(batches)]
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        step(batch)
        if cuda:
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put((statistics.median(times), max(peak - base, 0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d_model", type=int, default=128)
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--batch_size", type=int, default=48, help="sentences per batch")
    parser.add_argument("--length", type=int, default=32, help="tokens per source and target sentence")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--attention",
        default="default",
        choices=("default", "math"),
        help="SDPA kernels for every pass but the double backward (which always uses math): PyTorch's choice "
        "(flash / memory-efficient on CUDA) or the math backend, to see what the kernels are worth.",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        choices=VARIANTS,
        help="Steps to time (the train step always runs: it is the unit); the finite-difference accuracy table "
        "comes with 'constraint step, finite difference'.",
    )
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    results = {}
    for variant in [v for v in VARIANTS if v == "train step" or v in args.variants]:
        queue = context.Queue()
        child = context.Process(target=measure, args=(variant, args, queue))
        child.start()
        results[variant] = queue.get()
        child.join()
        if child.exitcode:
            raise SystemExit(f"{variant}: child process failed with exit code {child.exitcode}")

    model, _ = build(args)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if args.device.startswith("cuda"):
        device = torch.cuda.get_device_name()
    else:
        device = f"CPU ({platform.machine()}, {args.threads} threads)"
    print(
        f"Post-LN Marian {model.config.encoder_layers}+{model.config.decoder_layers} layers, d={args.d_model}, "
        f"{params / 1e6:.1f}M trainable parameters, batches of {args.batch_size}x{args.length} tokens, "
        f"sdpa attention ({args.attention} kernels), torch {torch.__version__}, {device}\n"
    )
    train_time = results["train step"][0]
    print("| step | median s | × train step | peak memory (MiB) |")
    print("|---|---|---|---|")
    for variant, (seconds, peak) in results.items():
        print(f"| {variant} | {seconds:.3f} | {seconds / train_time:.2f} | {peak / 2**20:.0f} |")
    if "naive objective step" in results and "objective step" in results:
        naive = results["naive objective step"][0] / results["objective step"][0]
        print(f"\nobjective step is {naive:.2f}× faster than the naive scheme.")
    if "constraint step, finite difference" not in results:
        return
    print("\n| finite-difference radius r | relative error of the alpha-gradient | scales moving the other way |")
    print("|---|---|---|")
    for radius, relative, flipped, blocks in finite_difference_errors(args):
        print(f"| {radius:g} | {relative:.1e} | {flipped} of {blocks} |")


if __name__ == "__main__":
    main()
