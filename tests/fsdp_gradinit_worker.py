"""One rank of the 2-process FSDP2 GradInit test (launched by test_sharded.py with torch.distributed.run)."""

import copy
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import seq2seq_batches, tiny_marian  # noqa: E402

from hf_gradinit import init_with_gradinit  # noqa: E402

SETTINGS = dict(
    iterations=6, grad_norm_bound=28.0, scale_lr=0.02, constraint_hvp="finite_difference", progress_bar=False
)


def shard(model):
    """FSDP2 as accelerate applies it: every layer its own unit, the rest (tied embeddings) in the root."""
    for layer in (*model.model.encoder.layers, *model.model.decoder.layers):
        fully_shard(layer)
    return fully_shard(model)


def main(out_dir: str, case: str) -> None:
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    assert world_size == 2, f"expected 2 processes, got {world_size}"
    torch.manual_seed(0)  # the same starting weights on every rank, as FSDP2 expects
    replicated = tiny_marian(dropout=0.0)
    sharded = shard(copy.deepcopy(replicated))
    batches = seq2seq_batches(count=3, size=6, seed=10 + rank)  # each rank its own batches
    out = {"world_size": world_size}
    if case == "search":
        out["replicated"] = init_with_gradinit(replicated, batches, **SETTINGS)
        out["sharded"] = init_with_gradinit(sharded, batches, **SETTINGS)
        out["replicated_state"] = replicated.state_dict()
    else:  # an interrupt in the middle of the search: every shard must come back bit for bit
        before = {name: p.to_local().detach().clone() for name, p in sharded.named_parameters()}
        calls = []

        def interrupted_loss(model, batch):
            calls.append(1)
            if len(calls) == 7:
                raise KeyboardInterrupt
            return model(**batch).loss

        try:
            init_with_gradinit(sharded, batches, loss_fn=interrupted_loss, **SETTINGS)
        except KeyboardInterrupt:
            out["interrupted"] = True
        out["unchanged"] = all(torch.equal(p.to_local(), before[n]) for n, p in sharded.named_parameters())
        out["grads_none"] = all(p.grad is None for p in sharded.parameters())
    out["sharded_state"] = {name: p.full_tensor().detach() for name, p in sharded.named_parameters()}
    out["local_shapes"] = {name: tuple(p.to_local().shape) for name, p in sharded.named_parameters()}
    torch.save(out, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
