import json
import math

import pytest

from hf_gradinit import GradInitConfig


def test_defaults_are_the_published_iwslt_settings():
    config = GradInitConfig.iwslt()
    assert config == GradInitConfig()
    assert (config.iterations, config.target_optimizer, config.target_lr, config.scale_lr) == (
        780,
        "adam",
        1e-3,
        2.5e-3,
    )
    assert (config.grad_norm_bound, config.grad_norm_order, config.scale_betas) == (1000.0, 1, (0.9, 0.98))
    assert (config.min_scale, config.bias_min_scale, config.norm_max_scale, config.scale_grad_clip) == (
        0.01,
        0.0,
        100.0,
        None,
    )
    assert config.batch_split == "overlap"


def test_cifar_preset():
    config = GradInitConfig.cifar()
    assert (config.target_optimizer, config.normalize_sgd_step, config.target_lr) == ("sgd", True, 0.1)
    assert (config.grad_norm_bound, config.grad_norm_order, config.scale_grad_clip, config.iterations) == (
        1.0,
        2,
        1.0,
        390,
    )
    assert GradInitConfig.cifar(scale_lr=5e-2).scale_lr == 5e-2


def test_json_round_trip_with_infinite_bound(tmp_path):
    config = GradInitConfig(grad_norm_bound=math.inf, iterations=7, scale_betas=(0.8, 0.9), batch_split="disjoint")
    path = tmp_path / "config.json"
    config.save(path)
    stored = json.loads(path.read_text())  # strict JSON: no Infinity token
    assert stored["grad_norm_bound"] is None and stored["scale_betas"] == [0.8, 0.9]
    assert GradInitConfig.load(path) == config


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("iterations", 0, "iterations must be a positive integer"),
        ("target_optimizer", "lamb", "target_optimizer must be one of"),
        ("target_lr", -1.0, "target_lr must be > 0"),
        ("scale_lr", 0.0, "scale_lr must be > 0"),
        ("grad_norm_bound", -5.0, "grad_norm_bound must be > 0"),
        ("min_scale", -0.1, "min_scale must be >= 0"),
        ("norm_max_scale", 0.001, "norm_max_scale must be > min_scale"),
        ("scale_grad_clip", 0.0, "scale_grad_clip must be > 0 or None"),
        ("batch_split", "halves", "batch_split must be one of"),
        ("scale_betas", (0.9, 1.0), "scale_betas must be two numbers"),
        ("target_weight_decay", 0.1, "target_weight_decay needs target_optimizer='adamw'"),
        ("normalize_sgd_step", True, "only applies to target_optimizer='sgd'"),
    ],
)
def test_bad_values_name_the_problem(field, value, message):
    with pytest.raises(ValueError, match=message):
        GradInitConfig(**{field: value})


def test_unknown_field_in_json_is_an_error():
    with pytest.raises(ValueError, match="Unknown GradInitConfig field"):
        GradInitConfig.from_dict({"iteratons": 5})
