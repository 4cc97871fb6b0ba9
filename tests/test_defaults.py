"""The one rule for what GradInit optimises: derived from the training run, explicit settings win, warnings for
what cannot be modelled."""

from __future__ import annotations

import logging

import pytest
import torch

from hf_gradinit.config import GradInitConfig
from hf_gradinit.defaults import SIGN_STEP_ETA_PER_LR, TrainingRun, config_for_run, first_step_kind


def test_adam_runs_get_eta_twice_the_lr_with_their_decay_and_scaled_length() -> None:
    config = config_for_run(TrainingRun("adamw_torch", lr=3e-4, weight_decay=0.01, eps=1e-6, max_steps=300))
    assert SIGN_STEP_ETA_PER_LR == 2.0
    assert (config.target_optimizer, config.target_lr, config.target_weight_decay) == ("adamw", 6e-4, 0.01)
    assert config.target_eps == 1e-6
    assert config.iterations == 150 and config.scale_lr == 1e-2  # half the run, tau raised (capped)
    long = config_for_run(TrainingRun("AdamW", lr=5e-4, max_steps=100_000))
    assert long.iterations == 780 and long.scale_lr == pytest.approx(2.5e-3)  # the published IWSLT run
    assert long.target_lr == pytest.approx(1e-3) and long.grad_norm_bound == 1000


def test_sgd_runs_get_the_published_cifar_settings_at_their_lr() -> None:
    config = config_for_run(TrainingRun("sgd", lr=5e-2, weight_decay=1e-4, max_steps=10_000))
    assert config.target_optimizer == "sgd" and config.target_lr == 5e-2 and config.normalize_sgd_step
    assert config.target_weight_decay == 1e-4  # SGD's L2 term shrinks theta in the first step like AdamW's decay
    assert (config.iterations, config.grad_norm_bound, config.scale_grad_clip) == (390, 1.0, 1.0)
    nesterov = config_for_run(TrainingRun("SGD", lr=0.1, momentum=0.9, nesterov=True))
    assert nesterov.target_lr == pytest.approx(0.19)  # Nesterov's first step is (1 + momentum) * lr * g


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("adamw_torch_fused", "adamw"),
        ("adamw_bnb_8bit", "adamw"),
        ("paged_lion_8bit", "adamw"),
        ("Lion", "adamw"),
        ("adagrad", "adam"),
        ("Adam", "adam"),
        ("SGD", "sgd"),
        ("adafactor", None),
        ("schedule_free_adamw", None),
    ],
)
def test_first_step_kinds(name: str, kind: str | None) -> None:
    assert first_step_kind(name) == kind


def test_an_optimizer_without_a_known_first_step_is_a_warning_naming_the_assumption(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="hf_gradinit"):
        config = config_for_run(TrainingRun("adafactor", lr=1e-3))
    assert config.target_optimizer == "adamw" and config.target_lr == 2e-3
    assert "cannot model the first step of the optimizer 'adafactor'" in caplog.text
    assert "assumes an AdamW step" in caplog.text


def test_coupled_decay_of_adam_is_a_warning_and_not_modelled(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="hf_gradinit"):
        config = config_for_run(TrainingRun("Adam", lr=1e-3, weight_decay=0.1))
    assert config.target_optimizer == "adam" and config.target_weight_decay == 0.0
    assert "coupled L2" in caplog.text


def test_explicit_settings_win_and_a_mismatched_target_is_a_warning(caplog) -> None:
    run = TrainingRun("adamw_torch", lr=3e-4, weight_decay=0.01, max_steps=300)
    with caplog.at_level(logging.INFO, logger="hf_gradinit"):
        config = config_for_run(run, target_lr=1e-3, iterations=7, target_optimizer="sgd")
    assert (config.target_lr, config.iterations, config.target_optimizer) == (1e-3, 7, "sgd")
    assert config.normalize_sgd_step and config.grad_norm_bound == 1.0  # an SGD target gets the SGD base settings
    assert "GradInit optimises a step the run will not take" in caplog.text
    assert "given explicitly: iterations, target_lr, target_optimizer" in caplog.text


def test_a_preset_for_the_other_family_is_a_warning(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="hf_gradinit"):
        config = config_for_run(TrainingRun("adamw_torch", lr=1e-3), preset="cifar")
    assert config.target_optimizer == "adamw" and not config.normalize_sgd_step and config.grad_norm_bound == 1.0
    assert "preset 'cifar' holds the published settings for SGD runs" in caplog.text
    with pytest.raises(ValueError, match="Unknown GradInit preset"):
        config_for_run(TrainingRun("sgd", lr=0.1), preset="imagenet")


def test_a_run_read_from_an_optimizer_object() -> None:
    params = [torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(2))]
    adamw = torch.optim.AdamW(
        [{"params": params[:1], "weight_decay": 0.05}, {"params": params[1:], "weight_decay": 0.0}], lr=2e-4, eps=1e-7
    )
    run = TrainingRun.from_optimizer(adamw, max_steps=40)
    assert run == TrainingRun("AdamW", lr=2e-4, weight_decay=0.05, eps=1e-7, max_steps=40)
    sgd = TrainingRun.from_optimizer(torch.optim.SGD(params, lr=0.1, momentum=0.9))
    assert (sgd.optimizer, sgd.momentum, sgd.nesterov) == ("SGD", 0.9, False)
    assert config_for_run(sgd).target_lr == 0.1


def test_adam_target_with_weight_decay_is_still_rejected_by_the_config() -> None:
    with pytest.raises(ValueError, match="target_weight_decay needs target_optimizer='adamw'"):
        GradInitConfig(target_optimizer="adam", target_weight_decay=0.1)
    assert GradInitConfig(target_optimizer="sgd", target_weight_decay=0.1).target_weight_decay == 0.1
