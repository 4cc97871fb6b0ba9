"""One rank of the 2-process GradInit test (launched by test_distributed.py with torch.distributed.run)."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import classification_batches, tiny_bert_classifier  # noqa: E402

from hf_gradinit import init_with_gradinit  # noqa: E402

SETTINGS = dict(iterations=6, grad_norm_bound=11.2, scale_lr=0.02, batch_split="same", progress_bar=False)


def main(out_dir: str) -> None:
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    assert world_size == 2, f"expected 2 processes, got {world_size}"
    torch.manual_seed(100 + rank)  # different initial weights per rank: rank 0's must win, as under DDP
    model = tiny_bert_classifier(hidden_dropout_prob=0.0)
    batches = classification_batches(count=3, size=4, seed=10 + rank)  # each rank its own batches
    result = init_with_gradinit(model, batches, **SETTINGS)
    torch.save(
        {
            "world_size": world_size,
            "scales": result.scales,
            "result_world_size": result.world_size,
            "state": model.state_dict(),
        },
        Path(out_dir) / f"rank{rank}.pt",
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
