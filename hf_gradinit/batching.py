"""Batches for GradInit: cycling any iterable, and splitting a batch into S and S~ along its batch dimension."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch


def cycle_batches(batches: Iterable[Any]) -> Iterator[Any]:
    """Yield batches forever, restarting `batches` when it runs out.

    Re-iterable inputs (lists, DataLoaders) are iterated again, so a shuffling DataLoader reshuffles; one-shot
    iterators (generators) are remembered during the first pass and replayed.
    """
    one_shot = isinstance(batches, Iterator)
    seen: list[Any] = []
    source: Iterable[Any] = batches
    while True:
        empty = True
        for batch in source:
            empty = False
            if one_shot:
                seen.append(batch)
            yield batch
        if empty:
            raise ValueError("`batches` yielded no batch: pass a non-empty list or DataLoader of training batches.")
        if one_shot:
            source, one_shot = seen, False


def batch_size(batch: Any) -> int:
    """Length of the first dimension of the first tensor found in `batch`."""
    if isinstance(batch, torch.Tensor):
        if batch.dim() == 0:
            raise ValueError("A batch holds a 0-dim tensor where a batch dimension was expected.")
        return batch.shape[0]
    if isinstance(batch, Mapping):
        values: Iterable[Any] = batch.values()
    elif isinstance(batch, (list, tuple)):
        values = batch
    else:
        values = ()
    for value in values:
        try:
            return batch_size(value)
        except ValueError:
            continue
    raise ValueError(
        f"Cannot find a batch dimension in a batch of type {type(batch).__name__}: GradInit needs batches that are "
        "tensors, or dicts/tuples/lists holding tensors whose first dimension is the batch."
    )


def slice_batch(batch: Any, start: int, stop: int, size: int) -> Any:
    """Rows [start, stop) of every tensor (or list) whose first dimension is the batch dimension `size`."""
    if isinstance(batch, torch.Tensor):
        return batch[start:stop] if batch.dim() > 0 and batch.shape[0] == size else batch
    if isinstance(batch, Mapping):
        return type(batch)({key: slice_batch(value, start, stop, size) for key, value in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(slice_batch(value, start, stop, size) for value in batch))
    if isinstance(batch, (list, tuple)):
        if len(batch) == size and not any(isinstance(value, torch.Tensor) for value in batch):
            return batch[start:stop]
        return type(batch)(slice_batch(value, start, stop, size) for value in batch)
    return batch


def smallest_splittable_batch(mode: str) -> int:
    """Fewest examples a batch needs for `split_batch`: S and S~ need one each unless both are the whole batch."""
    return 1 if mode == "same" else 2


def split_batch(batch: Any, mode: str) -> tuple[Any, Any]:
    """Split a batch into (S, S~) along the batch dimension.

    'overlap': S = first two thirds, S~ = last two thirds (the published scheme); 'disjoint': halves;
    'same': both are the whole batch.
    """
    if mode == "same":
        return batch, batch
    size = batch_size(batch)
    if size < smallest_splittable_batch(mode):
        raise ValueError(
            f"batch_split={mode!r} needs at least 2 examples per batch, got {size}: use larger batches "
            "or batch_split='same'."
        )
    first = round(2 * size / 3) if mode == "overlap" else size // 2
    second_start = size - first if mode == "overlap" else first
    return slice_batch(batch, 0, first, size), slice_batch(batch, second_start, size, size)
