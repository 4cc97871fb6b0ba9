"""hf_gradinit.vision: the convnets (shapes, save/load, BatchNorm on/off, init, GradInit on each, bad configs), the
image data (IDX reading on generated files, splits, the synthetic source, clear errors) and the recipe."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForImageClassification

from hf_gradinit import GradInitConfig, init_with_gradinit
from hf_gradinit.vision import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    CifarResNetConfig,
    CifarResNetForImageClassification,
    ImageCollator,
    ImageDataUnavailableError,
    VGGConfig,
    VGGForImageClassification,
    build_image_classifier,
    generate_synthetic_images,
    load_image_dataset,
    published_max_grad_norm,
    published_scale_lr,
    read_idx,
)

# Small enough for a CPU test: VGG-11 at 1/8 width, ResNet-8 at 1/4 width.
TINY = {"vgg": dict(depth=11, width_multiplier=0.125), "resnet": dict(depth=8, width_multiplier=0.25)}
ARMS = [(model, batch_norm) for model in TINY for batch_norm in (False, True)]


def tiny_model(model: str, batch_norm: bool) -> VGGForImageClassification | CifarResNetForImageClassification:
    return build_image_classifier(model, batch_norm=batch_norm, **TINY[model])


def convs(model: nn.Module) -> list[nn.Conv2d]:
    return [module for module in model.modules() if isinstance(module, nn.Conv2d)]


@pytest.fixture(scope="module")
def synthetic() -> dict:
    dataset = load_image_dataset("synthetic", synthetic_sizes=(300, 100))
    return {"dataset": dataset, "collator": ImageCollator.from_dataset(dataset["train"])}


def batch_of(synthetic: dict, size: int = 16, start: int = 0) -> dict[str, torch.Tensor]:
    train = synthetic["dataset"]["train"]
    return synthetic["collator"]([train[i] for i in range(start, start + size)])


# -- models ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model_name", "batch_norm"), ARMS)
def test_forward_backward_shapes_and_loss(model_name: str, batch_norm: bool) -> None:
    model = tiny_model(model_name, batch_norm)
    pixels, labels = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    output = model(pixel_values=pixels, labels=labels)
    assert output.logits.shape == (6, 10)
    assert output.loss.shape == () and torch.isclose(output.loss, nn.functional.cross_entropy(output.logits, labels))
    output.loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    assert model(pixel_values=pixels).loss is None
    assert model(pixel_values=torch.randn(2, 1, 32, 32)).logits.shape == (2, 10)  # CIFAR-sized inputs work too


def test_bad_input_shape_names_the_expected_one() -> None:
    expected = r"pixel_values must have shape \(batch, 1, height, width\), got \(6, 28, 28\)"
    with pytest.raises(ValueError, match=expected):
        tiny_model("vgg", False)(pixel_values=torch.randn(6, 28, 28))


@pytest.mark.parametrize(("model_name", "batch_norm"), ARMS)
def test_batch_norm_changes_module_types_and_biases(model_name: str, batch_norm: bool) -> None:
    model = tiny_model(model_name, batch_norm)
    norms = [module for module in model.modules() if isinstance(module, nn.BatchNorm2d)]
    if batch_norm:
        assert len(norms) == len(convs(model))  # one after every convolution (projections included)
        assert all(conv.bias is None for conv in convs(model))  # BN's shift replaces the bias
    else:
        assert not norms and all(conv.bias is not None for conv in convs(model))
    assert model.classifier.bias is not None


def test_layer_plans_depths_and_width() -> None:
    vgg = build_image_classifier("vgg", depth=19, batch_norm=False, width_multiplier=0.5)
    assert len(convs(vgg)) == 16 and convs(vgg)[0].out_channels == 32 and vgg.classifier.in_features == 256
    assert len(convs(tiny_model("vgg", False))) == 8
    resnet = build_image_classifier("resnet", depth=56, batch_norm=True)
    blocks = (56 - 2) // 6
    assert len(convs(resnet)) == 1 + 3 * 2 * blocks + 2  # stem, two per block, two shortcut projections
    assert [convs(resnet)[0].out_channels, resnet.classifier.in_features] == [16, 64]


@pytest.mark.parametrize(("model_name", "batch_norm"), ARMS)
def test_he_init_without_zeroed_branches(model_name: str, batch_norm: bool) -> None:
    torch.manual_seed(0)
    model = build_image_classifier(model_name, depth=TINY[model_name]["depth"], batch_norm=batch_norm)
    for conv in convs(model):
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        if conv.weight.numel() >= 4096:  # large enough for a tight estimate of the standard deviation
            assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.1)
        assert conv.weight.abs().sum() > 0  # nothing zero-initialised: scaling is GradInit's job
        assert conv.bias is None or not conv.bias.any()
    assert model.classifier.weight.std().item() == pytest.approx(math.sqrt(2 / model.classifier.in_features), rel=0.2)
    for norm in (module for module in model.modules() if isinstance(module, nn.BatchNorm2d)):
        assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and not norm.bias.any()


@pytest.mark.parametrize(("model_name", "batch_norm"), ARMS)
def test_save_and_load_round_trip(tmp_path: Path, model_name: str, batch_norm: bool) -> None:
    model = tiny_model(model_name, batch_norm).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    assert (loaded.config.depth, loaded.config.batch_norm, loaded.config.width_multiplier) == (
        model.config.depth,
        batch_norm,
        model.config.width_multiplier,
    )
    for (name, tensor), (loaded_name, loaded_tensor) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert name == loaded_name and torch.equal(tensor, loaded_tensor)
    pixels = torch.randn(3, 1, 28, 28)
    assert torch.equal(model(pixels).logits, loaded(pixels).logits)
    assert AutoConfig.from_pretrained(tmp_path).model_type == ("cifar_vgg" if model_name == "vgg" else "cifar_resnet")


@pytest.mark.parametrize(("model_name", "batch_norm"), ARMS)
def test_gradinit_runs_on_each_model_and_changes_the_scales(synthetic: dict, model_name: str, batch_norm: bool) -> None:
    model = tiny_model(model_name, batch_norm)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    batches = [batch_of(synthetic, 16, start) for start in (0, 16, 32)]
    result = init_with_gradinit(model, batches, GradInitConfig.cifar(iterations=3), progress_bar=False)
    assert len(result.history) == 3
    assert any(abs(scale - 1) > 1e-3 for scale in result.scales.values())
    kinds = set(result.kinds.values())
    assert ("norm_weight" in kinds) == batch_norm  # BN weights are blocks; zero biases are not
    assert "bias" not in kinds
    for name, scale in result.scales.items():
        assert torch.allclose(dict(model.named_parameters())[name], scale * before[name], rtol=1e-5, atol=1e-7)


def test_bad_configs_name_the_valid_values() -> None:
    with pytest.raises(ValueError, match=r"VGG depth must be one of \[11, 13, 16, 19\].*got 12"):
        VGGConfig(depth=12)
    for depth in (21, 2):
        with pytest.raises(ValueError, match=r"ResNet depth must be 6n \+ 2 .*\(e\.g\. 20, 56, 110\), got"):
            CifarResNetConfig(depth=depth)
    with pytest.raises(ValueError, match="width_multiplier must be > 0"):
        VGGConfig(width_multiplier=0)
    with pytest.raises(ValueError, match=r"model must be one of \['resnet', 'vgg'\], got 'alexnet'"):
        build_image_classifier("alexnet", depth=8, batch_norm=False)


def test_published_recipe_per_model() -> None:
    assert [published_scale_lr(m, bn) for m, bn in ARMS] == [1e-2, 1e-1, 5e-2, 1e-3]
    assert (published_max_grad_norm(False), published_max_grad_norm(True)) == (1.0, 0.0)
    with pytest.raises(ValueError, match="No published tau for model 'alexnet'; known models: resnet, vgg"):
        published_scale_lr("alexnet", False)


# -- data --------------------------------------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())
    return path


@pytest.fixture
def fashion_fixture(tmp_path: Path) -> Path:
    """A Fashion-MNIST directory in the original format: 40 training and 10 test images, pixel 0 = the label."""
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 40), ("t10k", 10)):
        labels = np.arange(count) % 10
        images = rng.integers(0, 256, (count, 28, 28))
        images[:, 0, 0] = labels
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return tmp_path


def test_read_idx_round_trip_and_bad_files(tmp_path: Path) -> None:
    array = np.arange(24).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.gz", array)), array)
    plain = tmp_path / "plain-idx"
    plain.write_bytes(gzip.decompress((tmp_path / "a.gz").read_bytes()))
    assert np.array_equal(read_idx(plain), array)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)  # float data: not an unsigned-byte IDX file
    with pytest.raises(ValueError, match="not an IDX file of unsigned bytes"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(plain.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"truncated or corrupt: .*shape \(2, 3, 4\) \(24 bytes\), but 19 bytes"):
        read_idx(tmp_path / "short")


def test_fashion_mnist_loads_with_a_fixed_validation_split(fashion_fixture: Path) -> None:
    dataset = load_image_dataset("fashion-mnist", data_dir=fashion_fixture, validation_fraction=0.25)
    assert {split: len(dataset[split]) for split in dataset} == {"train": 30, "validation": 10, "test": 10}
    assert dataset["train"].features["labels"].names == list(FASHION_MNIST_CLASSES)
    row = dataset["train"][0]
    assert row["pixel_values"].shape == (1, 28, 28) and row["pixel_values"][0, 0, 0] == row["labels"]
    again = load_image_dataset("fashion-mnist", data_dir=fashion_fixture, validation_fraction=0.25)
    assert np.array_equal(again["validation"]["pixel_values"][:], dataset["validation"]["pixel_values"][:])
    subset = load_image_dataset("fashion-mnist", data_dir=fashion_fixture, validation_fraction=0.25, train_size=12)
    assert np.array_equal(subset["train"]["pixel_values"][:], dataset["train"]["pixel_values"][:12])
    assert np.array_equal(subset["validation"]["pixel_values"][:], dataset["validation"]["pixel_values"][:])


def test_validation_and_training_images_are_disjoint(fashion_fixture: Path) -> None:
    dataset = load_image_dataset("fashion-mnist", data_dir=fashion_fixture, validation_fraction=0.25)
    keys = [{image.tobytes() for image in dataset[split]["pixel_values"][:]} for split in ("train", "validation")]
    assert not keys[0] & keys[1] and len(keys[0] | keys[1]) == 40


def test_missing_fashion_mnist_names_the_package_and_the_alternative(tmp_path: Path) -> None:
    with pytest.raises(ImageDataUnavailableError) as error:
        load_image_dataset("fashion-mnist", data_dir=tmp_path / "nowhere")
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message and "--source synthetic" in message
    assert "train-images-idx3-ubyte.gz" in message


def test_bad_arguments_are_rejected(fashion_fixture: Path) -> None:
    with pytest.raises(ValueError, match="Unknown image source 'cifar10'; valid sources: fashion-mnist, synthetic"):
        load_image_dataset("cifar10")
    with pytest.raises(ValueError, match=r"train_size must be between 1 and 36 .*got 37"):
        load_image_dataset("fashion-mnist", data_dir=fashion_fixture, train_size=37)
    with pytest.raises(ValueError, match=r"validation_fraction must be in \(0, 1\), got 1.0"):
        load_image_dataset("fashion-mnist", data_dir=fashion_fixture, validation_fraction=1.0)
    write_idx(fashion_fixture / "train-labels-idx1-ubyte.gz", np.arange(39) % 10)
    with pytest.raises(ValueError, match="do not hold matching 28x28 images and labels"):
        load_image_dataset("fashion-mnist", data_dir=fashion_fixture)


def test_synthetic_images_are_seeded_and_learnable() -> None:
    images, labels = generate_synthetic_images(2000, seed=3)
    again, again_labels = generate_synthetic_images(2000, seed=3)
    assert images.shape == (2000, 28, 28) and images.dtype == np.uint8
    assert np.array_equal(images, again) and np.array_equal(labels, again_labels)
    assert not np.array_equal(images, generate_synthetic_images(2000, seed=4)[0])
    assert set(labels.tolist()) == set(range(10))
    # The classes share patterns across seeds: class means of one seed classify the images of another.
    test_images, test_labels = generate_synthetic_images(500, seed=5)
    centroids = np.stack([images[labels == k].reshape(-1, 784).mean(0) for k in range(10)])
    distances = ((test_images.reshape(-1, 1, 784).astype(float) - centroids[None]) ** 2).sum(-1)
    assert (distances.argmin(1) == test_labels).mean() > 0.6


def test_collator_standardises_pixels(synthetic: dict) -> None:
    batch = batch_of(synthetic, 64)
    assert batch["pixel_values"].shape == (64, 1, 28, 28) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].dtype == torch.long
    assert abs(batch["pixel_values"].mean().item()) < 0.1
    assert batch["pixel_values"].std().item() == pytest.approx(1, abs=0.1)
    with pytest.raises(ValueError, match="std must be > 0"):
        ImageCollator(mean=0.5, std=0.0)


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_the_installed_fashion_mnist() -> None:
    dataset = load_image_dataset("fashion-mnist", train_size=100)
    assert {split: len(dataset[split]) for split in dataset} == {"train": 100, "validation": 6000, "test": 10000}
    assert dataset["test"].features["labels"].names[9] == "Ankle boot"
