"""GradInit under torch.distributed: 2 CPU processes with gloo."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_gradinit_worker import SETTINGS
from tiny_models import classification_batches, tiny_bert_classifier

from hf_gradinit import init_with_gradinit

WORKER = Path(__file__).with_name("ddp_gradinit_worker.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _single_process(batches):
    torch.manual_seed(100)  # rank 0's initial weights
    model = tiny_bert_classifier(hidden_dropout_prob=0.0)
    return model, init_with_gradinit(model, batches, **SETTINGS)


def test_two_ranks_average_and_end_bit_identical(tmp_path):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), str(WORKER), str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2] and [r["result_world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["scales"] == ranks[1]["scales"]
    for name, tensor in ranks[0]["state"].items():
        assert torch.equal(tensor, ranks[1]["state"][name]), name

    # The same search in one process on each iteration's two rank batches concatenated ("same" split, mean loss
    # over equal-sized halves): averaging gradients and alpha-gradients over ranks is exactly this.
    per_rank = [classification_batches(count=3, size=4, seed=10 + r) for r in range(2)]
    joint = [{k: torch.cat([a[k], b[k]]) for k in a} for a, b in zip(*per_rank)]
    model, reference = _single_process(joint)
    assert 0 < reference.constraint_steps < len(reference.history)  # both step kinds are exercised
    for name, scale in reference.scales.items():
        assert ranks[0]["scales"][name] == pytest.approx(scale, rel=1e-4, abs=1e-6), name
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(ranks[0]["state"][name], tensor, rtol=1e-4, atol=1e-6)
    # ... and not what rank 0 would have found on its own batches alone.
    _, alone = _single_process(per_rank[0])
    assert any(abs(alone.scales[n] - s) > 1e-3 for n, s in ranks[0]["scales"].items())
