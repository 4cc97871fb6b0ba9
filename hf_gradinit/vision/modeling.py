"""The paper's convnets as `PreTrainedModel`s: a CIFAR-style VGG and ResNet, each with or without BatchNorm.

GradInit's CIFAR-10 results are on VGG-19 and ResNet-110, with and without BatchNorm. Here both families are sized
for small grey images (Fashion-MNIST's 28x28x1) and have a width multiplier so CPU runs stay cheap. Being
`PreTrainedModel`s, they save and load with `save_pretrained` / `from_pretrained` (also through
`AutoModelForImageClassification` once this module is imported), train with `Trainer` / `GradInitTrainer` and get
model cards and Hub pushes unchanged.

Initialisation is He (Kaiming) normal for every convolution (fan-out, as torchvision's VGG and ResNet) and the
classifier (fan-in), zero biases, BatchNorm 1 / 0: the usual init of these models. Nothing is zero-initialised to
tame depth (no Fixup-style residual branches): finding the scales is GradInit's job. Without BatchNorm every
convolution and the classifier keep a bias, as in the paper's code.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForImageClassification,
    PretrainedConfig,
    PreTrainedModel,
    initialization,
)
from transformers.modeling_outputs import ImageClassifierOutputWithNoAttention

#: Convolution channels ("M": 2x2 max pooling) of the standard VGG configurations A, B, D and E by depth.
VGG_LAYER_PLANS: dict[int, tuple[int | str, ...]] = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}
#: Channels of the three stages of a CIFAR ResNet (He et al. 2016, section 4.2).
RESNET_STAGE_CHANNELS = (16, 32, 64)


def _scaled(channels: int, width_multiplier: float) -> int:
    return max(1, round(channels * width_multiplier))


class _ConvNetConfig(PretrainedConfig):
    """What both families share: depth, BatchNorm on/off, width multiplier, input channels (labels: `num_labels`,
    `id2label`, as every image classifier in transformers)."""

    def __init__(
        self,
        depth: int,
        batch_norm: bool,
        width_multiplier: float = 1.0,
        num_channels: int = 1,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("num_labels", 10)
        if not width_multiplier > 0:
            raise ValueError(f"width_multiplier must be > 0 (1.0 is the published width), got {width_multiplier!r}.")
        if not (isinstance(num_channels, int) and num_channels >= 1):
            raise ValueError(f"num_channels must be a positive integer (1 for grey images), got {num_channels!r}.")
        self.depth = depth
        self.batch_norm = batch_norm
        self.width_multiplier = width_multiplier
        self.num_channels = num_channels
        super().__init__(**kwargs)


class VGGConfig(_ConvNetConfig):
    """A CIFAR-style VGG: the standard convolution plan of `depth` (11, 13, 16 or 19), one linear classifier.

    Max pooling rounds up (`ceil_mode`), so 28x28 inputs end at 1x1 after the five poolings as 32x32 ones do.
    """

    model_type = "cifar_vgg"

    def __init__(
        self,
        depth: int = 19,
        batch_norm: bool = False,
        width_multiplier: float = 1.0,
        num_channels: int = 1,
        **kwargs: Any,
    ) -> None:
        if depth not in VGG_LAYER_PLANS:
            raise ValueError(f"VGG depth must be one of {sorted(VGG_LAYER_PLANS)} (the standard plans), got {depth!r}.")
        super().__init__(depth, batch_norm, width_multiplier, num_channels, **kwargs)


class CifarResNetConfig(_ConvNetConfig):
    """A CIFAR ResNet: a 3x3 stem, three stages of n basic blocks (16, 32, 64 channels, strides 1, 2, 2), global
    average pooling and a linear classifier; depth = 6n + 2 (20, 32, 44, 56, 110). A 1x1 convolution projects the
    shortcut where the shape changes."""

    model_type = "cifar_resnet"

    def __init__(
        self,
        depth: int = 110,
        batch_norm: bool = False,
        width_multiplier: float = 1.0,
        num_channels: int = 1,
        **kwargs: Any,
    ) -> None:
        if not (isinstance(depth, int) and depth >= 8 and (depth - 2) % 6 == 0):
            raise ValueError(
                f"ResNet depth must be 6n + 2 with n >= 1 basic blocks per stage (e.g. 20, 56, 110), got {depth!r}."
            )
        super().__init__(depth, batch_norm, width_multiplier, num_channels, **kwargs)

    @property
    def blocks_per_stage(self) -> int:
        return (self.depth - 2) // 6


def _conv_bn_relu(in_channels: int, out_channels: int, batch_norm: bool) -> list[nn.Module]:
    """3x3 convolution, then BatchNorm (the conv has no bias then: BN's shift replaces it) and ReLU."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=not batch_norm)
    return [conv, nn.BatchNorm2d(out_channels), nn.ReLU()] if batch_norm else [conv, nn.ReLU()]


class _ConvNetPreTrainedModel(PreTrainedModel):
    """The shared parts: He init, and a classifier head on pooled features with a cross-entropy loss."""

    main_input_name = "pixel_values"
    base_model_prefix = "convnet"

    body: nn.Module
    classifier: nn.Linear

    def _init_weights(self, module: nn.Module) -> None:
        # transformers.initialization skips tensors loaded from a checkpoint, so from_pretrained keeps them.
        if isinstance(module, nn.Conv2d):
            initialization.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            initialization.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            initialization.ones_(module.weight)
            initialization.zeros_(module.bias)
            initialization.zeros_(module.running_mean)
            initialization.ones_(module.running_var)
            initialization.zeros_(module.num_batches_tracked)
            return
        else:
            return
        if module.bias is not None:
            initialization.zeros_(module.bias)

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None
    ) -> ImageClassifierOutputWithNoAttention:
        """Logits for `pixel_values` (batch, channels, height, width); with `labels`, the mean cross-entropy too."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values must have shape (batch, {self.config.num_channels}, height, width), got "
                f"{tuple(pixel_values.shape)}."
            )
        logits = self.classifier(self.body(pixel_values).flatten(1))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits)


class VGGForImageClassification(_ConvNetPreTrainedModel):
    """VGG of `VGGConfig`: conv 3x3 (+ BN) + ReLU layers and max poolings, global average pooling, linear."""

    config_class = VGGConfig
    config: VGGConfig

    def __init__(self, config: VGGConfig) -> None:
        super().__init__(config)
        layers: list[nn.Module] = []
        channels = config.num_channels
        for entry in VGG_LAYER_PLANS[config.depth]:
            if entry == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
            else:
                out_channels = _scaled(int(entry), config.width_multiplier)
                layers += _conv_bn_relu(channels, out_channels, config.batch_norm)
                channels = out_channels
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(channels, config.num_labels)
        self.post_init()


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (+ BN) with a shortcut: relu(F(x) + shortcut(x))."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, batch_norm: bool) -> None:
        super().__init__()
        conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=not batch_norm)
        conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=not batch_norm)
        if batch_norm:
            self.residual = nn.Sequential(
                conv1, nn.BatchNorm2d(out_channels), nn.ReLU(), conv2, nn.BatchNorm2d(out_channels)
            )
        else:
            self.residual = nn.Sequential(conv1, nn.ReLU(), conv2)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            projection = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=not batch_norm)
            self.shortcut = nn.Sequential(projection, nn.BatchNorm2d(out_channels)) if batch_norm else projection
        self.activation = nn.ReLU()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.activation(self.residual(hidden) + self.shortcut(hidden))


class CifarResNetForImageClassification(_ConvNetPreTrainedModel):
    """ResNet of `CifarResNetConfig`: stem, 3 stages of basic blocks, global average pooling, linear."""

    config_class = CifarResNetConfig
    config: CifarResNetConfig

    def __init__(self, config: CifarResNetConfig) -> None:
        super().__init__(config)
        stem_channels = _scaled(RESNET_STAGE_CHANNELS[0], config.width_multiplier)
        layers: list[nn.Module] = _conv_bn_relu(config.num_channels, stem_channels, config.batch_norm)
        channels = stem_channels
        for stage, stage_channels in enumerate(RESNET_STAGE_CHANNELS):
            out_channels = _scaled(stage_channels, config.width_multiplier)
            for block in range(config.blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(channels, out_channels, stride, config.batch_norm))
                channels = out_channels
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(channels, config.num_labels)
        self.post_init()


#: `--model` names of the example scripts and their classes.
IMAGE_CLASSIFIERS: dict[str, tuple[type[_ConvNetConfig], type[_ConvNetPreTrainedModel]]] = {
    "vgg": (VGGConfig, VGGForImageClassification),
    "resnet": (CifarResNetConfig, CifarResNetForImageClassification),
}


def build_image_classifier(
    model: str, *, depth: int, batch_norm: bool, width_multiplier: float = 1.0, **config_kwargs: Any
) -> VGGForImageClassification | CifarResNetForImageClassification:
    """A freshly initialised `model` ('vgg' or 'resnet'); seed torch beforehand for a reproducible one.
    `config_kwargs` go to the config (`num_channels`, `id2label`, ...)."""
    if model not in IMAGE_CLASSIFIERS:
        raise ValueError(f"model must be one of {sorted(IMAGE_CLASSIFIERS)}, got {model!r}.")
    config_class, model_class = IMAGE_CLASSIFIERS[model]
    config = config_class(depth=depth, batch_norm=batch_norm, width_multiplier=width_multiplier, **config_kwargs)
    return model_class(config)


for _config_class, _model_class in IMAGE_CLASSIFIERS.values():
    AutoConfig.register(_config_class.model_type, _config_class, exist_ok=True)
    AutoModelForImageClassification.register(_config_class, _model_class, exist_ok=True)
