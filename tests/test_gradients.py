"""The alpha-gradients of both step kinds against central finite differences, in float64."""

import pytest
import torch
from tiny_models import seq2seq_batches, tiny_marian

from hf_gradinit import GradInitConfig
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
