"""The image classification toolkit: the paper's convnets (a CIFAR-style VGG and ResNet, with or without BatchNorm)
as `PreTrainedModel`s, image data (Fashion-MNIST from the Debian package, generated images) and the published CIFAR
recipe. `examples/image_classification/train_classifier.py` and `scripts/vision_sweep.py` are built from these
pieces. Names load their modules on first use.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(
        (
            "IMAGE_CLASSIFIERS",
            "RESNET_STAGE_CHANNELS",
            "VGG_LAYER_PLANS",
            "CifarResNetConfig",
            "CifarResNetForImageClassification",
            "VGGConfig",
            "VGGForImageClassification",
            "build_image_classifier",
        ),
        ".modeling",
    ),
    **dict.fromkeys(
        (
            "FASHION_MNIST_CLASSES",
            "FASHION_MNIST_DIR",
            "IMAGE_SOURCES",
            "ImageCollator",
            "ImageDataUnavailableError",
            "generate_synthetic_images",
            "load_image_dataset",
            "read_idx",
        ),
        ".data",
    ),
    **dict.fromkeys(
        (
            "CIFAR_BATCH_SIZE",
            "CIFAR_LEARNING_RATE",
            "CIFAR_MOMENTUM",
            "CIFAR_WEIGHT_DECAY",
            "PUBLISHED_SCALE_LR",
            "published_max_grad_norm",
            "published_scale_lr",
        ),
        ".recipe",
    ),
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # what type checkers and IDEs see; tests/test_architecture.py checks it matches _EXPORTS
    from .data import (
        FASHION_MNIST_CLASSES,
        FASHION_MNIST_DIR,
        IMAGE_SOURCES,
        ImageCollator,
        ImageDataUnavailableError,
        generate_synthetic_images,
        load_image_dataset,
        read_idx,
    )
    from .modeling import (
        IMAGE_CLASSIFIERS,
        RESNET_STAGE_CHANNELS,
        VGG_LAYER_PLANS,
        CifarResNetConfig,
        CifarResNetForImageClassification,
        VGGConfig,
        VGGForImageClassification,
        build_image_classifier,
    )
    from .recipe import (
        CIFAR_BATCH_SIZE,
        CIFAR_LEARNING_RATE,
        CIFAR_MOMENTUM,
        CIFAR_WEIGHT_DECAY,
        PUBLISHED_SCALE_LR,
        published_max_grad_norm,
        published_scale_lr,
    )
