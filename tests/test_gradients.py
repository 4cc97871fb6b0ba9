"""The alpha-gradients of both step kinds against central finite differences, in float64."""

import copy

import pytest
import torch
from tiny_models import causal_lm_batches, seq2seq_batches, tiny_gpt2, tiny_marian

from hf_gradinit import GradInitConfig, init_with_gradinit
from hf_gradinit.batching import split_batch
from hf_gradinit.core import GradInitSearch, default_loss

STEP = 1e-5


def _search(config: GradInitConfig, attn: str = "eager") -> GradInitSearch:
    torch.manual_seed(0)
    model = tiny_marian(attn_implementation=attn, dropout=0.0).double().eval()
    search = GradInitSearch(model, config, default_loss)
    generator = torch.Generator().manual_seed(3)
    search.alpha.copy_(0.5 + torch.rand(search.alpha.shape, generator=generator, dtype=torch.float64))
    return search


def _loss_at(search: GradInitSearch, theta: list[torch.Tensor], batch) -> torch.Tensor:
    """The model's loss with parameters theta, computed without GradInitSearch's own loss path."""
    params = {p.name: t for p, t in zip(search.params, theta)}
    return torch.func.functional_call(search.model, params, kwargs=batch).loss


def _theta(search: GradInitSearch, alpha: torch.Tensor) -> list[torch.Tensor]:
    theta = [w.clone() for w in search.weights]
    for j, i in enumerate(search.block_index):
        theta[i] = theta[i] * alpha[j]
    return theta


def _probe_blocks(search: GradInitSearch) -> list[int]:
    """A handful of blocks of every kind: embedding, attention, FFN, norm weight, bias."""
    names = [search.params[i].name for i in search.block_index]
    wanted = ("shared.weight", "q_proj.weight", "fc2.weight", "final_layer_norm.weight", "fc1.bias", "out_proj.bias")
    picked = [j for j, name in enumerate(names) if name.endswith(wanted)]
    assert len(picked) >= 6
    return picked[::2] + [picked[-1]]


@pytest.mark.parametrize(
    "config",
    [
        GradInitConfig(target_optimizer="adam", target_lr=1e-2),
        GradInitConfig(target_optimizer="adamw", target_lr=1e-2, target_weight_decay=0.5),
        GradInitConfig(target_optimizer="sgd", target_lr=0.5, grad_norm_bound=1e9),
        GradInitConfig(target_optimizer="sgd", target_lr=0.5, normalize_sgd_step=True, grad_norm_bound=1e9),
    ],
    ids=["adam", "adamw", "sgd", "sgd-normalized"],
)
def test_objective_gradient_matches_finite_differences(config):
    search = _search(config)
    first, second = split_batch(seq2seq_batches(1)[0], "overlap")
    _, _, grads = search.first_pass(first, build_graph=False)
    step = [s.clone() for s in search.optimizer_direction([g.detach() for g in grads])]  # held fixed (detached)
    _, alpha_grad = search.objective_gradient(second, [g.detach() for g in grads])

    def objective(alpha):
        theta = _theta(search, alpha)
        decayed = [t * (1 - config.target_lr * config.target_weight_decay) if t.dim() >= 2 else t for t in theta]
        stepped = [t - config.target_lr * s for t, s in zip(decayed, step)]
        return _loss_at(search, stepped, second).item() / config.target_lr

    for j in _probe_blocks(search):
        plus, minus = search.alpha.clone(), search.alpha.clone()
        plus[j] += STEP
        minus[j] -= STEP
        finite_difference = (objective(plus) - objective(minus)) / (2 * STEP)
        assert alpha_grad[j].item() == pytest.approx(finite_difference, rel=1e-5, abs=1e-7), search.params[
            search.block_index[j]
        ].name


@pytest.mark.parametrize("order_config", [GradInitConfig(grad_norm_bound=1e-3), GradInitConfig.cifar()])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_constraint_gradient_matches_finite_differences(order_config, attn):
    search = _search(order_config, attn)
    first, _ = split_batch(seq2seq_batches(1)[0], "overlap")
    theta, _, grads = search.first_pass(first, build_graph=True)
    alpha_grad = search.constraint_gradient(theta, grads, [g.detach() for g in grads])

    def grad_norm(alpha):
        theta = [t.requires_grad_() for t in _theta(search, alpha)]
        gradient = torch.autograd.grad(_loss_at(search, theta, first), theta)
        return torch.cat([g.reshape(-1) for g in gradient]).norm(order_config.grad_norm_order).item()

    for j in _probe_blocks(search):
        plus, minus = search.alpha.clone(), search.alpha.clone()
        plus[j] += STEP
        minus[j] -= STEP
        finite_difference = (grad_norm(plus) - grad_norm(minus)) / (2 * STEP)
        assert alpha_grad[j].item() == pytest.approx(finite_difference, rel=1e-4, abs=1e-6)


def test_constraint_and_objective_steps_keep_separate_adam_moments():
    config = GradInitConfig(grad_norm_bound=38.5, scale_lr=1e-2)  # |g|_1 alternates around 38.5 on these batches
    search = _search(config)
    search.alpha.fill_(1.0)
    batches = seq2seq_batches(4)
    kinds = []
    for iteration, batch in enumerate(batches):
        kinds.append(search.iterate(batch, iteration)["constraint_step"])
    assert True in kinds and False in kinds
    objective, constraint = search.optimizers["objective"], search.optimizers["constraint"]
    assert objective.t == kinds.count(False) and constraint.t == kinds.count(True)
    assert not torch.allclose(objective.m, constraint.m)


def test_first_adam_step_moves_every_scale_by_the_scale_lr():
    """Bias-corrected Adam's first step is -tau * g / (|g| + eps): a check of the update rule and of the moments."""
    config = GradInitConfig(grad_norm_bound=float("inf"), scale_lr=1e-2)
    search = _search(config)
    search.alpha.fill_(1.0)
    first, second = split_batch(seq2seq_batches(1)[0], "overlap")
    _, _, grads = search.first_pass(first, build_graph=False)
    _, alpha_grad = search.objective_gradient(second, [g.detach() for g in grads])
    search.update_scales(alpha_grad.clone(), "objective")
    expected = (1.0 - 1e-2 * alpha_grad / (alpha_grad.abs() + 1e-8)).clamp(min=search.alpha_min)
    torch.testing.assert_close(search.alpha, expected, rtol=0, atol=1e-9)


def test_scales_are_clamped():
    config = GradInitConfig(grad_norm_bound=float("inf"), scale_lr=1e3, min_scale=0.05, bias_min_scale=0.0)
    search = _search(config)
    search.alpha.fill_(1.0)
    kinds = [search.params[i].kind for i in search.block_index]
    search.update_scales(
        torch.tensor([1.0 if k != "norm_weight" else -1.0 for k in kinds], dtype=torch.float64), "objective"
    )
    for kind, value in zip(kinds, search.alpha.tolist()):
        assert value == {"weight": 0.05, "bias": 0.0, "norm_weight": 100.0}[kind]


def test_scale_gradient_clip():
    config = GradInitConfig(grad_norm_bound=float("inf"), scale_lr=1e-2, scale_grad_clip=0.5)
    search = _search(config)
    search.update_scales(torch.full_like(search.alpha, 100.0), "objective")
    assert search.optimizers["objective"].m.max().item() == pytest.approx(0.1 * 0.5)


def _constraint_gradients(config: GradInitConfig, model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The constraint step's alpha-gradient by double backward and by finite difference, same model and alpha."""
    results = []
    for hvp in ("autograd", "finite_difference"):
        search = GradInitSearch(copy.deepcopy(model), GradInitConfig(**{**config.to_dict(), "constraint_hvp": hvp}),
                                default_loss)  # fmt: skip
        generator = torch.Generator().manual_seed(3)
        search.alpha.copy_(0.5 + torch.rand(search.alpha.shape, generator=generator, dtype=search.alpha.dtype))
        first, _ = split_batch(batch, "overlap")
        theta, _, grads = search.first_pass(first, build_graph=hvp == "autograd")
        if hvp == "autograd":
            results.append(search.constraint_gradient(theta, grads, [g.detach() for g in grads]))
        else:
            results.append(search.finite_difference_constraint_gradient(first, theta, grads))
    return results[0], results[1]


@pytest.mark.parametrize("bound", [{"grad_norm_bound": 1e-3}, {"target_optimizer": "sgd", "grad_norm_bound": 1e-3}],
                         ids=["L1", "L2"])  # fmt: skip
def test_finite_difference_constraint_gradient_agrees_with_autograd(bound):
    """float64, tiny Post-LN Marian (GELU): every non-negligible scale moves the same way, and the alpha-gradient
    differs by < 5e-4 relative (measured 2.4e-4 for L1, 2.9e-5 for L2). The floor is not the finite difference: an
    embedding with padding_idx uses its pad row in the forward but gives it no gradient, so the gradient is not
    exactly a gradient and the double backward's v^T H differs slightly from the directional derivative H v."""
    torch.manual_seed(0)
    model = tiny_marian(attn_implementation="eager", dropout=0.0).double().eval()
    exact, approximate = _constraint_gradients(GradInitConfig(**bound), model, seq2seq_batches(1)[0])
    relevant = exact.abs() > 1e-6 * exact.abs().max()  # k_proj biases: 0 up to rounding (softmax is shift-invariant)
    assert torch.equal(exact.sign()[relevant], approximate.sign()[relevant])
    assert ((approximate - exact).norm() / exact.norm()).item() < 5e-4


@pytest.mark.parametrize(("radius", "tolerance"), [(1e-2, 2e-2), (1e-4, 2e-5)])
def test_finite_difference_converges_to_the_double_backward_on_a_smooth_model(radius, tolerance):
    """GPT-2 (GELU, no padding_idx): the error is the difference's truncation, shrinking with the radius
    (measured 1.3e-2 at r=1e-2, 4.2e-6 at r=1e-4 for L2)."""
    torch.manual_seed(0)
    model = tiny_gpt2(attn_implementation="eager").double().eval()
    config = GradInitConfig.cifar(constraint_fd_radius=radius)
    exact, approximate = _constraint_gradients(config, model, causal_lm_batches(1)[0])
    assert ((approximate - exact).norm() / exact.norm()).item() < tolerance


def test_finite_difference_mode_needs_no_double_backward():
    """A model with a once-differentiable op (like flash attention's kernels) runs constraint steps this way."""
    from test_model_setups import _Squared

    torch.manual_seed(0)
    model = _Squared()
    batches = [torch.randn(6, 4)]
    result = init_with_gradinit(
        model, batches, iterations=3, grad_norm_bound=1e-6, constraint_hvp="finite_difference",
        loss_fn=lambda m, batch: m(batch),
    )  # fmt: skip
    assert [r["constraint_step"] for r in result.history] == [True] * 3
    assert any(scale != 1.0 for scale in result.scales.values())


def test_finite_difference_mode_keeps_the_models_attention_kernels(monkeypatch):
    """Only the double backward needs the math attention backend; first-order passes use the model's own."""
    import hf_gradinit.core as core

    entered = []
    real = core.sdpa_kernel
    monkeypatch.setattr(core, "sdpa_kernel", lambda *a, **k: entered.append(a) or real(*a, **k))
    settings = dict(iterations=3, grad_norm_bound=1e-3, progress_bar=False)
    result = init_with_gradinit(tiny_marian(), seq2seq_batches(), constraint_hvp="finite_difference", **settings)
    assert result.constraint_steps == 3 and not entered
    init_with_gradinit(tiny_marian(), seq2seq_batches(), **settings)
    assert entered  # the autograd mode does force it
