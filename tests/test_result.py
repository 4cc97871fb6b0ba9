import json

import pytest
import torch
from tiny_models import causal_lm_batches, seq2seq_batches, tiny_gpt2, tiny_marian
from transformers import AutoModelForSeq2SeqLM

from hf_gradinit import GradInitResult, init_with_gradinit


def _fresh_marian():
    torch.manual_seed(7)
    return tiny_marian()


@pytest.fixture(scope="module")
def run():
    model = _fresh_marian()
    result = init_with_gradinit(model, seq2seq_batches(), iterations=6, grad_norm_bound=40.0, scale_lr=0.02)
    return model, result


def test_history_records_every_iteration(run):
    _, result = run
    assert [r["iteration"] for r in result.history] == list(range(6))
    for record in result.history:
        assert record["constraint_step"] == (record["grad_norm"] > 40.0)
        assert (record["lookahead_loss"] is None) == record["constraint_step"]
    assert 0 < result.constraint_steps < 6 and result.wall_time > 0
    assert set(result.kinds.values()) == {"weight", "norm_weight"}  # HF zero-initialises biases: not blocks


def test_save_and_load_round_trip(run, tmp_path):
    _, result = run
    result.save(tmp_path / "scales.json")
    loaded = GradInitResult.load(tmp_path / "scales.json")
    assert loaded == result
    assert json.loads((tmp_path / "scales.json").read_text())["config"]["iterations"] == 6


def test_apply_to_replays_the_init_on_a_fresh_model(run):
    model, result = run
    replay = result.apply_to(_fresh_marian())
    for (name, tensor), (_, expected) in zip(replay.state_dict().items(), model.state_dict().items()):
        assert torch.equal(tensor, expected), name
    assert replay.config.gradinit == model.config.gradinit


def test_record_survives_save_pretrained(run, tmp_path):
    model, result = run
    model.save_pretrained(tmp_path / "checkpoint")
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "checkpoint")
    recorded = GradInitResult.from_model(loaded)
    assert recorded.scales == result.scales and recorded.config == result.config and recorded.history == []
    # config.json keeps no history, but the summary of the run survives.
    assert recorded.summary() == result.summary() and recorded.constraint_steps == result.constraint_steps > 0
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_from_model_without_gradinit():
    assert GradInitResult.from_model(tiny_marian()) is None
    assert GradInitResult.from_model(torch.nn.Linear(2, 2)) is None


def test_apply_to_a_different_architecture_is_an_error(run):
    _, result = run
    with pytest.raises(ValueError, match="different architecture"):
        result.apply_to(tiny_gpt2())


def test_not_a_result():
    with pytest.raises(ValueError, match="Not a GradInit result"):
        GradInitResult.from_dict({"scales": {}})


def test_plot_writes_an_image(run, tmp_path):
    _, result = run
    path = result.plot(tmp_path / "scales.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_plain_module_has_no_config_but_gets_scaled():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    batches = [(torch.randn(6, 4), torch.randint(0, 3, (6,))) for _ in range(2)]
    result = init_with_gradinit(
        model, batches, iterations=2, loss_fn=lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1])
    )
    assert set(result.scales) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_causal_lm_result_plot(tmp_path):
    result = init_with_gradinit(tiny_gpt2(), causal_lm_batches(), iterations=2, grad_norm_bound=1e9)
    assert result.plot(tmp_path / "gpt2.png").exists()
