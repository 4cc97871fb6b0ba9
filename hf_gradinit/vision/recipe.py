"""The paper's CIFAR-10 recipe for these convnets (Zhu et al. 2021, their launch scripts), as data.

Training: SGD with momentum 0.9, lr 0.1, batch 128, weight decay 1e-4, cosine decay; gradient-norm clipping at 1 for
the models without BatchNorm. GradInit: the CIFAR settings (`GradInitConfig.cifar()`, which follow the run's
optimizer and lr through `hf_gradinit.config_for_run`) with a learning rate on the scales (tau) chosen per model.
"""

from __future__ import annotations

CIFAR_LEARNING_RATE = 0.1
CIFAR_MOMENTUM = 0.9
CIFAR_WEIGHT_DECAY = 1e-4
CIFAR_BATCH_SIZE = 128
#: tau of the published runs by (model, batch_norm): VGG-19 and ResNet-110 on CIFAR-10.
PUBLISHED_SCALE_LR: dict[tuple[str, bool], float] = {
    ("vgg", False): 1e-2,
    ("resnet", False): 5e-2,
    ("vgg", True): 1e-1,
    ("resnet", True): 1e-3,
}
#: Gradient-norm clipping during training: 1 without BatchNorm, none with it (0 turns Trainer's clipping off).
PUBLISHED_MAX_GRAD_NORM = {False: 1.0, True: 0.0}


def published_scale_lr(model: str, batch_norm: bool) -> float:
    """GradInit's tau in the paper's launch script for `model` ('vgg' or 'resnet') with or without BatchNorm."""
    try:
        return PUBLISHED_SCALE_LR[(model, bool(batch_norm))]
    except KeyError:
        models = sorted({name for name, _ in PUBLISHED_SCALE_LR})
        raise ValueError(f"No published tau for model {model!r}; known models: {', '.join(models)}.") from None


def published_max_grad_norm(batch_norm: bool) -> float:
    """The paper's training gradient clipping: 1 for models without BatchNorm, none (0) with it."""
    return PUBLISHED_MAX_GRAD_NORM[bool(batch_norm)]
