"""GradInit on models as users hold them: in bf16/fp16, reloaded, wrapped (DDP, accelerate, torch.compile, PEFT),
checkpointing activations, on several devices, or unable to run a double backward."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.distributed as dist
from tiny_models import (
    assert_unchanged,
    causal_lm_batches,
    seq2seq_batches,
    snapshot,
    tiny_gpt2,
    tiny_marian,
)
from transformers import MarianMTModel

from hf_gradinit import GradInitResult, init_with_gradinit


def _search(model, **settings) -> GradInitResult:
    settings = {"iterations": 6, "scale_lr": 0.05, "grad_norm_bound": 300.0, **settings}
    return init_with_gradinit(model, seq2seq_batches(), **settings)


def _max_scale_difference(a: GradInitResult, b: GradInitResult) -> float:
    assert a.scales.keys() == b.scales.keys()
    return max(abs(a.scales[name] - b.scales[name]) for name in a.scales)


@pytest.fixture
def process_group(tmp_path):
    """A one-process gloo group, as DDP and FSDP need one (world size 1: GradInit runs undistributed)."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


# -- low precision -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_weights_are_searched_in_fp32_and_keep_their_dtype(dtype) -> None:
    reference = tiny_marian(dropout=0.0)
    model = copy.deepcopy(reference).to(dtype)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    fp32 = _search(reference)
    low = _search(model)
    # In bf16, 1 - 1e-3 rounds to 1: without an fp32 search the look-ahead step on the norm weights vanishes.
    assert _max_scale_difference(fp32, low) < 0.02
    assert max(abs(scale - 1) for scale in low.scales.values()) > 0.05  # the scales did move
    assert {p.dtype for p in model.parameters()} == {dtype}
    params = dict(model.named_parameters())
    for name, scale in low.scales.items():  # folded once, rounded once, in the model's own dtype
        assert torch.equal(params[name], before[name] * scale)


# -- which tensors are blocks ------------------------------------------------------------------------------------------


def test_reloaded_marian_sinusoidal_tables_are_never_scaled(tmp_path) -> None:
    tiny_marian().save_pretrained(tmp_path)
    model = MarianMTModel.from_pretrained(tmp_path)
    encoder_positions = model.model.encoder.embed_positions.weight
    assert encoder_positions.requires_grad  # transformers 5.x thaws the table on loading
    table = encoder_positions.detach().clone()
    result = _search(model)
    assert not [name for name in result.scales if "embed_positions" in name]
    assert torch.equal(model.model.encoder.embed_positions.weight, table)


def test_parameters_excluded_by_name_are_not_scaled() -> None:
    model = tiny_marian()
    shared = model.model.shared.weight.detach().clone()
    result = _search(model, exclude_parameters=[r"\.shared\.", r"decoder\.layers\.1\.fc"])
    assert "model.shared.weight" not in result.scales and not [n for n in result.scales if "decoder.layers.1.fc" in n]
    assert "model.decoder.layers.0.fc1.weight" in result.scales
    assert torch.equal(model.model.shared.weight, shared)
    assert GradInitResult.from_model(model).config.exclude_parameters == (r"\.shared\.", r"decoder\.layers\.1\.fc")


def test_apply_to_refuses_a_model_whose_blocks_differ() -> None:
    result = _search(tiny_marian(shared=True), iterations=2)
    untied = tiny_marian(shared=False)
    before = snapshot(untied)
    with pytest.raises(ValueError, match="do not fit the model's parameter blocks.*blocks without a scale"):
        result.apply_to(untied)
    assert_unchanged(untied, before)
    fresh = tiny_marian(shared=True)
    result.apply_to(fresh)  # the same architecture replays
    assert GradInitResult.from_model(fresh).scales == result.scales


# -- wrapped models ----------------------------------------------------------------------------------------------------


def test_ddp_wrapped_model_is_initialised_under_its_own_names(process_group) -> None:
    plain, wrapped_inner = tiny_marian(), tiny_marian()
    wrapped_inner.load_state_dict(plain.state_dict())
    ddp = torch.nn.parallel.DistributedDataParallel(wrapped_inner)
    expected = _search(plain)
    result = _search(ddp)
    assert result.scales == expected.scales  # recorded as "model.shared.weight", not "module.model..."
    assert torch.equal(ddp.module.model.shared.weight, plain.model.shared.weight)


@pytest.fixture
def bf16_accelerator():
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    yield Accelerator(cpu=True, mixed_precision="bf16")
    AcceleratorState._reset_state(reset_partial_state=True)  # the state is a process-wide singleton


def test_accelerate_prepared_model_is_searched_without_its_autocast(bf16_accelerator) -> None:
    plain = tiny_marian()
    prepared = bf16_accelerator.prepare(copy.deepcopy(plain))
    wrapped_forward = prepared.forward
    dtypes: set[torch.dtype] = set()
    hooks = [m.register_forward_hook(lambda m, a, out: dtypes.add(out.dtype)) for m in prepared.modules()
             if isinstance(m, torch.nn.Linear)]  # fmt: skip
    result = _search(prepared)
    assert dtypes == {torch.float32}  # the prepared forward would run these in bf16
    assert result.scales == _search(plain).scales
    assert prepared.forward is wrapped_forward  # the autocast wrapper is back for training
    dtypes.clear()
    with torch.no_grad():
        prepared(**seq2seq_batches()[0])
    assert dtypes == {torch.bfloat16}
    for hook in hooks:
        hook.remove()


def test_compiled_model_is_searched_eagerly_under_the_plain_names() -> None:
    plain = tiny_marian()
    compiled = torch.compile(copy.deepcopy(plain))
    result = _search(compiled)
    assert result.scales == _search(plain).scales  # no "_orig_mod." in the names; compiled graphs would fail here
    in_place = copy.deepcopy(tiny_marian())
    in_place.compile()
    call_impl = in_place._compiled_call_impl
    _search(in_place, iterations=1)
    assert in_place._compiled_call_impl is call_impl


def test_peft_wrapped_model_scales_its_adapters_and_replays() -> None:
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=4, target_modules=["c_attn"], lora_dropout=0.1, init_lora_weights="gaussian")
    torch.manual_seed(3)
    model = peft.get_peft_model(tiny_gpt2(), config)
    torch.manual_seed(3)
    twin = peft.get_peft_model(tiny_gpt2(), config)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    result = init_with_gradinit(model, causal_lm_batches(), iterations=4, scale_lr=0.05)
    assert result.scales and all("lora_" in name for name in result.scales)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if not p.requires_grad)
    result.apply_to(twin)
    assert all(torch.equal(p, dict(twin.named_parameters())[n]) for n, p in model.named_parameters())


def test_fsdp1_is_refused_before_the_first_iteration(process_group) -> None:
    from torch.distributed.fsdp import FullyShardedDataParallel

    calls = []
    model = FullyShardedDataParallel(tiny_marian(), device_id=torch.device("cpu"), use_orig_params=True)
    with pytest.raises(ValueError, match="wrapped by FSDP \\(version 1\\).*before wrapping"):
        init_with_gradinit(model, seq2seq_batches(), loss_fn=lambda m, b: calls.append(1) or m(**b).loss)
    assert not calls


def test_a_model_spread_over_devices_is_refused_before_the_first_iteration() -> None:
    model = tiny_marian()
    model.lm_head = torch.nn.Linear(32, 48, bias=False, device="meta")  # as an offloading device_map leaves it
    calls = []
    with pytest.raises(ValueError, match="'meta' device"):
        init_with_gradinit(model, seq2seq_batches(), loss_fn=lambda m, b: calls.append(1) or m(**b).loss)
    assert not calls


# -- double backward and activation checkpointing ----------------------------------------------------------------------


class _NoDoubleBackward(torch.autograd.Function):
    """An op whose backward cannot itself be differentiated, like flash attention's kernels."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


class _Squared(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x):
        return _NoDoubleBackward.apply(self.linear(x)).mean()


def test_a_model_without_double_backward_is_refused_before_the_first_iteration() -> None:
    model, calls = _Squared(), []
    before = snapshot(model)

    def loss_fn(m, batch):
        calls.append(1)
        return m(batch)

    batches = [torch.randn(6, 4)]
    with pytest.raises(RuntimeError, match="cannot run the double backward.*grad_norm_bound=inf"):
        init_with_gradinit(model, batches, iterations=50, grad_norm_bound=10.0, loss_fn=loss_fn)
    assert len(calls) == 1  # the check, not 50 iterations
    assert_unchanged(model, before)
    result = init_with_gradinit(model, batches, iterations=3, grad_norm_bound=math.inf, loss_fn=loss_fn)
    assert len(result.history) == 3  # objective steps are first order: fine


def _saved_bytes_of(run) -> int:
    """Bytes autograd saves for backward while `run()` executes (what bounds activation memory)."""
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = run()
    return total, result


def test_gradient_checkpointing_of_the_model_is_honoured_during_the_search() -> None:
    plain = tiny_marian(dropout=0.0, encoder_layers=2, decoder_layers=2)
    checkpointed = copy.deepcopy(plain)
    # transformers 5.24 renamed it activation_checkpointing_enable; the old name works throughout our range
    getattr(checkpointed, "activation_checkpointing_enable", checkpointed.gradient_checkpointing_enable)()
    checkpointed.train()
    plain_bytes, expected = _saved_bytes_of(lambda: _search(plain))
    checkpointed_bytes, result = _saved_bytes_of(lambda: _search(checkpointed))
    assert checkpointed_bytes < 0.6 * plain_bytes
    assert _max_scale_difference(result, expected) < 1e-5
    assert checkpointed.training and checkpointed.model.encoder.layers[0].gradient_checkpointing
    assert "forward" not in checkpointed.model.encoder.layers[0].__dict__  # our wrapper is gone
