from collections import namedtuple

import pytest
import torch

from hf_gradinit.batching import cycle_batches, split_batch


def _dict_batch(size):
    return {
        "input_ids": torch.arange(size * 3).view(size, 3),
        "labels": torch.arange(size),
        "scalar": torch.tensor(1.0),
    }


@pytest.mark.parametrize(
    ("mode", "first_rows", "second_rows"),
    [
        ("overlap", [0, 1, 2, 3], [2, 3, 4, 5]),
        ("disjoint", [0, 1, 2], [3, 4, 5]),
        ("same", list(range(6)), list(range(6))),
    ],
)
def test_split_dict_batch(mode, first_rows, second_rows):
    first, second = split_batch(_dict_batch(6), mode)
    assert first["labels"].tolist() == first_rows and second["labels"].tolist() == second_rows
    assert first["input_ids"].shape == (len(first_rows), 3)
    assert first["scalar"].item() == 1.0  # tensors without the batch dimension pass through


def test_split_tuple_and_namedtuple_batches():
    images, labels = torch.randn(9, 2), torch.arange(9)
    first, second = split_batch((images, labels), "overlap")
    assert first[1].tolist() == list(range(6)) and second[1].tolist() == list(range(3, 9))
    Pair = namedtuple("Pair", "x y")
    first, _ = split_batch(Pair(images, labels), "disjoint")
    assert isinstance(first, Pair) and first.y.tolist() == [0, 1, 2, 3]


def test_split_needs_two_examples():
    with pytest.raises(ValueError, match="at least 2 examples"):
        split_batch(_dict_batch(1), "overlap")
    first, second = split_batch(_dict_batch(1), "same")
    assert first["labels"].tolist() == [0]


def test_split_rejects_batches_without_tensors():
    with pytest.raises(ValueError, match="Cannot find a batch dimension"):
        split_batch({"text": "hello"}, "overlap")


def test_cycle_restarts_lists_and_replays_generators():
    from_list = cycle_batches([1, 2])
    assert [next(from_list) for _ in range(5)] == [1, 2, 1, 2, 1]
    from_generator = cycle_batches(x for x in "ab")
    assert [next(from_generator) for _ in range(5)] == ["a", "b", "a", "b", "a"]


def test_cycle_of_nothing_is_a_clear_error():
    with pytest.raises(ValueError, match="yielded no batch"):
        next(cycle_batches([]))
