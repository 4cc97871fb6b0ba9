"""GradInit on FSDP2-sharded models: 2 CPU processes with gloo, against the data-parallel search."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("fsdp_gradinit_worker.py")


def _run_ranks(tmp_path: Path, case: str) -> list[dict]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(port), str(WORKER), str(tmp_path), case,
    ]  # fmt: skip
    completed = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                               timeout=300)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    return ranks


def test_sharded_search_equals_the_data_parallel_search(tmp_path: Path) -> None:
    ranks = _run_ranks(tmp_path, "search")
    reference, sharded = ranks[0]["replicated"], ranks[0]["sharded"]
    assert ranks[1]["sharded"].scales == sharded.scales  # every rank ends with the same scales
    assert sharded.world_size == 2 and 0 < sharded.constraint_steps < len(sharded.history)  # both step kinds
    assert sharded.scales.keys() == reference.scales.keys()
    for name, scale in reference.scales.items():
        assert sharded.scales[name] == pytest.approx(scale, rel=1e-4, abs=1e-6), name
    for name, tensor in ranks[0]["replicated_state"].items():
        if name in ranks[0]["sharded_state"]:
            torch.testing.assert_close(ranks[0]["sharded_state"][name], tensor, rtol=1e-4, atol=1e-6)
    shapes = [r["local_shapes"]["model.decoder.layers.0.fc1.weight"] for r in ranks]
    assert shapes[0][0] + shapes[1][0] == 64  # really sharded: each rank held half of the rows


def test_an_interrupted_sharded_search_leaves_every_shard_as_it_was(tmp_path: Path) -> None:
    for rank in _run_ranks(tmp_path, "interrupt"):
        assert rank["interrupted"] and rank["unchanged"] and rank["grads_none"]
