"""A failed or interrupted GradInit leaves the model bit-for-bit unchanged; bad input gets a clear error."""

import logging
import math

import pytest
import torch
from tiny_models import assert_unchanged, seq2seq_batches, snapshot, tiny_marian
from transformers.models.marian.modeling_marian import shift_tokens_right

from hf_gradinit import GradInitConfig, init_with_gradinit
from hf_gradinit.batching import split_batch


class _FailAt:
    """A loss_fn that raises `error` at its n-th call."""

    def __init__(self, calls: int, error: BaseException) -> None:
        self.calls, self.error, self.seen = calls, error, 0

    def __call__(self, model, batch):
        self.seen += 1
        if self.seen == self.calls:
            raise self.error
        return model(**batch).loss


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
@pytest.mark.parametrize("calls", [1, 4, 11])
def test_exception_or_interrupt_leaves_model_unchanged(error, calls):
    model = tiny_marian()
    model.train()
    model.model.encoder.eval()  # a mixed mode that must come back exactly
    before = snapshot(model)
    loss_fn = _FailAt(calls, error)
    with pytest.raises(type(error)):
        init_with_gradinit(model, seq2seq_batches(), iterations=10, grad_norm_bound=50.0, loss_fn=loss_fn)
    assert loss_fn.seen == calls
    assert_unchanged(model, before)
    assert model.training and not model.model.encoder.training and model.model.decoder.training
    assert not hasattr(model.config, "gradinit")


def test_nan_loss_is_a_clear_error_and_model_unchanged():
    model = tiny_marian()
    before = snapshot(model)

    def nan_at_third_call(model, batch, calls=[]):  # noqa: B006 - a call counter
        calls.append(1)
        loss = model(**batch).loss
        return loss * float("nan") if len(calls) == 3 else loss

    with pytest.raises(FloatingPointError, match=r"GradInit iteration 1: non-finite loss.*left unchanged"):
        init_with_gradinit(model, seq2seq_batches(), iterations=5, grad_norm_bound=math.inf, loss_fn=nan_at_third_call)
    assert_unchanged(model, before)


def test_diverging_lookahead_is_a_clear_error():
    model = tiny_marian()
    before = snapshot(model)

    def inf_on_lookahead(model, batch, calls=[]):  # noqa: B006 - a call counter
        calls.append(1)
        loss = model(**batch).loss
        return loss * float("inf") if len(calls) % 2 == 0 else loss

    with pytest.raises(FloatingPointError, match="iteration 0: non-finite alpha_grad.*target_lr too large"):
        init_with_gradinit(model, seq2seq_batches(), iterations=5, grad_norm_bound=math.inf, loss_fn=inf_on_lookahead)
    assert_unchanged(model, before)


def test_dropout_is_off_during_the_search_and_mode_restored():
    model = tiny_marian(dropout=0.5)
    model.train()
    batches = seq2seq_batches()
    with torch.no_grad():
        eval_loss = model.eval()(**split_batch(batches[0], "overlap")[0]).loss.item()
    model.train()
    modes = []

    def recording_loss(model, batch):
        modes.append(model.training)
        return model(**batch).loss

    result = init_with_gradinit(model, batches, iterations=3, grad_norm_bound=1e9, loss_fn=recording_loss)
    assert modes == [False] * 7  # the double-backward check before iteration 1, then two passes per iteration
    assert model.training
    assert result.history[0]["loss"] == pytest.approx(eval_loss, rel=1e-6)  # no dropout noise in the first loss


def test_batchnorm_uses_batch_statistics_and_its_buffers_are_restored():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    model.eval()
    before = snapshot(model)
    seen = []

    def loss_fn(model, batch):
        seen.append(model[1].training)
        x, y = batch
        return torch.nn.functional.cross_entropy(model(x), y)

    batches = [(torch.randn(6, 4), torch.randint(0, 2, (6,))) for _ in range(2)]
    result = init_with_gradinit(model, batches, iterations=2, grad_norm_bound=1e9, loss_fn=loss_fn)
    assert all(seen) and not model.training and not model[1].training
    for name in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):
        assert torch.equal(model.state_dict()[name], before[name]), name
    assert result.scales


def test_same_seed_same_batches_give_identical_scales():
    def run(seed):
        torch.manual_seed(0)
        return init_with_gradinit(tiny_marian(), seq2seq_batches(), iterations=6, grad_norm_bound=40.0, seed=seed)

    first, second = run(0), run(0)
    assert first.scales == second.scales
    assert [r["grad_norm"] for r in first.history] == [r["grad_norm"] for r in second.history]


def test_user_random_state_is_not_disturbed():
    model, batches = tiny_marian(), seq2seq_batches()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    init_with_gradinit(model, batches, iterations=2, grad_norm_bound=1e9)
    assert torch.equal(torch.rand(3), expected)


def test_empty_batches():
    with pytest.raises(ValueError, match="yielded no batch"):
        init_with_gradinit(tiny_marian(), [], iterations=2)


def test_batches_without_labels_and_no_loss_fn():
    batches = [{k: v for k, v in b.items() if k != "labels"} for b in seq2seq_batches()]
    with pytest.raises(ValueError, match="needs dict batches with 'labels'.*pass loss_fn"):
        init_with_gradinit(tiny_marian(), batches, iterations=2)
    with pytest.raises(ValueError, match="needs dict batches with 'labels'"):
        init_with_gradinit(tiny_marian(), [(torch.ones(2, 3), torch.ones(2))], iterations=2)


def test_model_without_trainable_parameters():
    model = tiny_marian().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters.*requires_grad_"):
        init_with_gradinit(model, seq2seq_batches(), iterations=2)


def test_bad_config_values_and_unknown_overrides():
    with pytest.raises(ValueError, match="target_lr must be > 0"):
        init_with_gradinit(tiny_marian(), seq2seq_batches(), target_lr=0.0)
    with pytest.raises(TypeError, match="unknown argument.*'iteratons'"):
        init_with_gradinit(tiny_marian(), seq2seq_batches(), iteratons=3)
    with pytest.raises(TypeError, match="config must be a GradInitConfig"):
        init_with_gradinit(tiny_marian(), seq2seq_batches(), config={"iterations": 3})


def test_loss_must_be_a_scalar():
    model = tiny_marian()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"scalar tensor, got \(4, 7, 48\)"):
        init_with_gradinit(model, seq2seq_batches(), iterations=2, loss_fn=lambda m, b: m(**b).logits)
    assert_unchanged(model, before)


def test_overrides_apply_on_top_of_config():
    config = GradInitConfig(iterations=50, scale_lr=1e-2)
    result = init_with_gradinit(tiny_marian(), seq2seq_batches(), config, iterations=2)
    assert (result.config.iterations, result.config.scale_lr, len(result.history)) == (2, 1e-2, 2)


def test_logging_and_progress_bar(caplog, capsys):
    with caplog.at_level(logging.INFO, logger="hf_gradinit"):
        init_with_gradinit(tiny_marian(), seq2seq_batches(), iterations=4, grad_norm_bound=40.0, log_every=2)
    lines = [r.getMessage() for r in caplog.records if r.name == "hf_gradinit"]
    assert len(lines) == 3 and lines[0].startswith("GradInit settings: first step of adam at eta = 0.001")
    assert lines[1].startswith("GradInit iteration 2/4") and lines[2].startswith("GradInit done 4/4")
    assert "look-ahead loss(S~)" in lines[2] and "|g|_1" in lines[2] and "constraint steps" in lines[2]
    assert "GradInit" not in capsys.readouterr().err  # stderr is not a terminal under pytest: no bar
    init_with_gradinit(tiny_marian(), seq2seq_batches(), iterations=2, progress_bar=True)
    assert "GradInit: 100%" in capsys.readouterr().err


def test_reiterable_batches_are_iterated_again_not_cached():
    class CountingBatches:
        def __init__(self):
            self.passes = 0

        def __iter__(self):
            self.passes += 1
            return iter(seq2seq_batches(count=2))

    batches = CountingBatches()
    init_with_gradinit(tiny_marian(), batches, iterations=5, grad_norm_bound=1e9)
    assert batches.passes == 3  # 2 + 2 + 1 batches: a shuffling DataLoader would reshuffle each pass


def test_generator_batches_are_replayed_and_checked():
    result = init_with_gradinit(tiny_marian(), (b for b in seq2seq_batches(count=2)), iterations=5, grad_norm_bound=1e9)
    assert len(result.history) == 5
    with pytest.raises(ValueError, match="needs dict batches with 'labels'"):
        init_with_gradinit(tiny_marian(), (b for b in [torch.ones(2, 3)]), iterations=2)


@pytest.mark.parametrize("split", ["overlap", "same"])
def test_a_loss_that_consumes_its_batch_works_on_every_step_kind(split):
    """Trainer.compute_loss pops `labels`: every call gets its own shallow copy of the batch."""

    def popping_loss(model, batch):
        labels = batch.pop("labels")
        decoder_input_ids = shift_tokens_right(labels, model.config.pad_token_id, model.config.decoder_start_token_id)
        logits = model(**batch, decoder_input_ids=decoder_input_ids).logits
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)

    batches = seq2seq_batches()
    result = init_with_gradinit(
        tiny_marian(), batches, iterations=4, grad_norm_bound=1.0, batch_split=split, loss_fn=popping_loss
    )
    assert [r["constraint_step"] for r in result.history] == [True] * 4  # the first pass is redone each time
    assert all("labels" in batch for batch in batches)  # the caller's batches are untouched


class _CountingMarian(torch.nn.Module):
    """A model whose forward updates buffers: a call counter and a running mean of its loss."""

    def __init__(self):
        super().__init__()
        self.inner = tiny_marian()
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("loss_mean", torch.zeros(()))

    def forward(self, **batch):
        self.calls += 1
        output = self.inner(**batch)
        self.loss_mean.mul_(0.9).add_(0.1 * output.loss.detach())
        return output


def test_the_model_differs_afterwards_only_by_the_folded_scales():
    model = _CountingMarian()
    model.train()
    model.inner.model.decoder.eval()
    before = snapshot(model)
    rng = torch.get_rng_state()
    result = init_with_gradinit(model, seq2seq_batches(), iterations=5, grad_norm_bound=300.0)
    after = snapshot(model)
    assert after["calls"] == 0 and after["loss_mean"] == 0  # buffers as they were, not as 11 forwards left them
    params = dict(model.named_parameters())
    scale_of = {id(params[name]): scale for name, scale in result.scales.items()}  # tied names: one tensor
    for name, tensor in model.state_dict(keep_vars=True).items():
        assert torch.equal(after[name], before[name] * scale_of.get(id(tensor), 1.0)), name
    assert model.training and model.inner.model.encoder.training and not model.inner.model.decoder.training
    assert torch.equal(torch.get_rng_state(), rng)
