"""One process of the DDP test in test_trainer.py: `python -m torch.distributed.run --nproc_per_node 2 THIS OUT_DIR`.

Each rank starts from a different random model (seeded by its rank) and trains with GradInitTrainer on CPU (gloo);
it writes what the test compares to OUT_DIR/rank<N>.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from tiny_models import VOCAB, tiny_gpt2

from hf_gradinit import GradInitTrainer, GradInitTrainingArguments


def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
    ids = torch.tensor([row["input_ids"] for row in rows])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def weights_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main(out_dir: Path) -> None:
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    torch.manual_seed(rank)  # different starting weights: GradInit and DDP must both take rank 0's
    model = tiny_gpt2()
    generator = torch.Generator().manual_seed(0)
    dataset = [{"input_ids": row} for row in torch.randint(0, VOCAB, (32, 12), generator=generator).tolist()]
    args = GradInitTrainingArguments(
        output_dir=str(out_dir / "run"),
        gradinit=True,
        gradinit_iterations=4,
        use_cpu=True,
        ddp_backend="gloo",
        per_device_train_batch_size=4,
        max_steps=3,
        learning_rate=1e-3,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    trainer = GradInitTrainer(model=model, args=args, train_dataset=dataset, data_collator=collate)
    trainer.train()
    record = {
        "world_size": dist.get_world_size() if dist.is_initialized() else 1,
        "result_world_size": trainer.gradinit_result.world_size,
        "scales": trainer.gradinit_result.scales,
        "weights_sha256": weights_digest(trainer.model),
    }
    (out_dir / f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
