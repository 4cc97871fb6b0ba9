"""Image classification data: Fashion-MNIST from the Debian package, or generated images for tests.

- `fashion-mnist`: the original IDX files of Zalando's Fashion-MNIST (60k training and 10k test 28x28 grey images of
  10 kinds of clothing, MIT licence), installed by `apt-get install dataset-fashion-mnist` into
  `/usr/share/datasets/fashion-mnist/`. Real images, offline, nothing stored in this repository.
- `synthetic`: seeded generated images with the same shape and a learnable class structure (each class a smooth
  random pattern, shifted, rescaled and noisy per image): for tests and machines without the package.

Both load as a `DatasetDict` (`train`, `validation` carved from the training images with a fixed seed, `test`) with
`pixel_values` (uint8, 1x28x28) and `labels` (`ClassLabel`) columns; `ImageCollator` turns rows into normalised
float batches for the models of `hf_gradinit.vision.modeling`.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Array3D, ClassLabel, Dataset, DatasetDict, Features

IMAGE_SOURCES = ("fashion-mnist", "synthetic")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
IMAGE_SIZE = 28
#: The split seed: every run sees the same train / validation images whatever its training seed.
SPLIT_SEED = 0
_SYNTHETIC_PATTERN_SEED = 1234  # the class patterns, shared by all splits (the images differ per split)
_IDX_UBYTE = 0x08


class ImageDataUnavailableError(OSError):
    """An image source cannot be loaded here (package not installed, unreadable files); the message names the fix."""


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (gzip-compressed or not) of unsigned bytes as a numpy array of its shape (LeCun's MNIST format:
    two zero bytes, the type byte 0x08, the number of dimensions, one big-endian int32 per dimension, the data)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE or data[3] == 0:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (its header is {data[:4].hex() or 'empty'}).")
    dims = data[3]
    shape = tuple(int(size) for size in np.frombuffer(data, dtype=">i4", count=dims, offset=4))
    offset = 4 + 4 * dims
    if len(data) - offset != int(np.prod(shape)):
        raise ValueError(
            f"{path} is truncated or corrupt: its header announces shape {shape} ({int(np.prod(shape))} bytes), "
            f"but {len(data) - offset} bytes follow."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def load_fashion_mnist_split(split: str, data_dir: str | Path = FASHION_MNIST_DIR) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 28, 28) and labels (n,) of Fashion-MNIST's `train` or `test` split, from the IDX files."""
    data_dir = Path(data_dir)
    paths = [data_dir / name for name in FASHION_MNIST_FILES[split]]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise ImageDataUnavailableError(
            f"Fashion-MNIST is not installed: {', '.join(missing)} not found in {data_dir}. Install it with "
            "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), point data_dir (--data_dir) to a "
            "directory holding the four original IDX files, or use source='synthetic' (--source synthetic) for "
            "generated images."
        )
    images, labels = (read_idx(path) for path in paths)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or labels.shape != images.shape[:1]:
        raise ValueError(
            f"{paths[0]} and {paths[1]} do not hold matching 28x28 images and labels: shapes {images.shape} and "
            f"{labels.shape}."
        )
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"{paths[1]} holds label {labels.max()}; Fashion-MNIST has labels 0-9.")
    return images, labels


def generate_synthetic_images(
    num_examples: int, seed: int, num_classes: int = 10, image_size: int = IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """`num_examples` uint8 images (n, size, size) and their labels, a deterministic function of `seed`.

    Each class is a fixed smooth random pattern (the same for every seed); an image is its class pattern, randomly
    shifted by up to 3 pixels, with random contrast and brightness plus pixel noise: learnable by a convnet, not
    solvable by a single pixel.
    """
    pattern_rng = np.random.default_rng(_SYNTHETIC_PATTERN_SEED)
    coarse = pattern_rng.standard_normal((num_classes, 7, 7))
    patterns = np.kron(coarse, np.ones((image_size // 7 + 1,) * 2))[:, :image_size, :image_size]
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_examples)
    shifts = rng.integers(-3, 4, (num_examples, 2))
    images = np.stack([np.roll(patterns[label], tuple(shift), axis=(0, 1)) for label, shift in zip(labels, shifts)])
    contrast = rng.uniform(0.5, 1.5, (num_examples, 1, 1))
    brightness = rng.uniform(-0.5, 0.5, (num_examples, 1, 1))
    noisy = contrast * images + brightness + rng.normal(0.0, 0.8, images.shape)
    return np.clip(96 + 48 * noisy, 0, 255).astype(np.uint8), labels


def _as_dataset(images: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]) -> Dataset:
    features = Features(
        {
            "pixel_values": Array3D(shape=(1, *images.shape[1:]), dtype="uint8"),
            "labels": ClassLabel(names=list(class_names)),
        }
    )
    # Casting after from_dict is 3x faster than from_dict(..., features=) for 60k images.
    return Dataset.from_dict({"pixel_values": images[:, None], "labels": labels.astype(np.int64)}).cast(features)


def load_image_dataset(
    source: str = "fashion-mnist",
    *,
    validation_fraction: float = 0.1,
    train_size: int | None = None,
    data_dir: str | Path = FASHION_MNIST_DIR,
    synthetic_sizes: tuple[int, int] = (6000, 1000),
) -> DatasetDict:
    """`train`, `validation` and `test` splits of `source` ('fashion-mnist' or 'synthetic').

    The validation split is `validation_fraction` of the training images, carved with a fixed seed
    (`SPLIT_SEED`); `train_size` keeps only that many of the remaining training images (the same ones every time),
    for runs on a CPU budget. `synthetic_sizes` are the (train, test) image counts of the synthetic source.
    Rows: `pixel_values` (uint8, 1x28x28) and `labels` (`ClassLabel`), as numpy arrays.
    """
    if source == "fashion-mnist":
        splits = {split: load_fashion_mnist_split(split, data_dir) for split in ("train", "test")}
        class_names = FASHION_MNIST_CLASSES
    elif source == "synthetic":
        splits = {
            split: generate_synthetic_images(size, seed=SPLIT_SEED + offset)
            for offset, (split, size) in enumerate(zip(("train", "test"), synthetic_sizes))
        }
        class_names = tuple(f"pattern {index}" for index in range(10))
    else:
        raise ValueError(f"Unknown image source {source!r}; valid sources: {', '.join(IMAGE_SOURCES)}.")
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}.")
    carved = _as_dataset(*splits["train"], class_names).train_test_split(test_size=validation_fraction, seed=SPLIT_SEED)
    train = carved["train"]
    if train_size is not None:
        if not 0 < train_size <= len(train):
            raise ValueError(
                f"train_size must be between 1 and {len(train)} (the training images left after the validation "
                f"split), got {train_size}."
            )
        train = train.select(range(train_size))  # train_test_split has shuffled them with the fixed seed
    dataset = DatasetDict(train=train, validation=carved["test"], test=_as_dataset(*splits["test"], class_names))
    return dataset.with_format("numpy")


class ImageCollator:
    """Rows of `load_image_dataset` to a batch `{"pixel_values": float (b, c, h, w), "labels": long (b,)}`, pixels
    scaled to [0, 1] and standardised with the training set's mean and standard deviation."""

    def __init__(self, mean: float, std: float) -> None:
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std!r}.")
        self.mean, self.std = mean, std

    @classmethod
    def from_dataset(cls, dataset: Dataset, max_images: int = 2000) -> ImageCollator:
        """Mean and standard deviation of the pixels (in [0, 1]) of the first `max_images` images of `dataset`,
        usually the (shuffled) training split: 2000 images pin both down to well under 1%, in a fraction of the
        time all of them take."""
        rows = dataset.with_format("numpy")[: min(max_images, len(dataset))]
        pixels = np.asarray(rows["pixel_values"], dtype=np.float64) / 255.0
        return cls(mean=float(pixels.mean()), std=float(pixels.std()))

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pixels = torch.from_numpy(np.stack([np.asarray(row["pixel_values"], dtype=np.float32) for row in rows]))
        labels = torch.tensor([int(row["labels"]) for row in rows], dtype=torch.long)
        return {"pixel_values": (pixels / 255.0 - self.mean) / self.std, "labels": labels}
