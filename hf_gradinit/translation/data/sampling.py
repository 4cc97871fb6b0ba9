"""fairseq-style ``--max-tokens`` batching for translation: length-bucketed batches under a token budget, sharded
so every DDP rank gets the same number of batches, and the collator for `MarianMTModel` (transformers'
`DataCollatorForSeq2Seq`).

Token budget: a batch of examples with lengths ``max(len(input_ids), len(labels))`` costs
``len(batch) * max(lengths)`` tokens, the padded size of the larger of its source and target tensors; batches are
filled greedily over length-sorted examples while that stays ``<= max_tokens``. Sorting by length keeps padding
low; the batch order (and the order among equally long examples) is reshuffled every epoch from ``seed + epoch``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from datasets import Dataset
from torch.utils.data import Sampler
from transformers import DataCollatorForSeq2Seq, PreTrainedTokenizerBase


def example_lengths(dataset: Dataset, columns: Sequence[str] = ("input_ids", "labels")) -> list[int]:
    """Per-example token count used for batching: the longest of the given token-id columns."""
    per_column = [[len(ids) for ids in dataset[column]] for column in columns]
    return [max(lengths) for lengths in zip(*per_column)]


def max_tokens_batches(
    lengths: Sequence[int],
    max_tokens: int,
    *,
    max_sentences: int | None = None,
    seed: int = 0,
    epoch: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
    shuffle: bool = True,
) -> list[list[int]]:
    """The batches (lists of example indices) of one rank for one epoch; see `MaxTokensBatchSampler`."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}.")
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), got {rank}.")
    too_long = [i for i, length in enumerate(lengths) if length > max_tokens]
    if too_long:
        raise ValueError(
            f"{len(too_long)} examples are longer than max_tokens={max_tokens} (longest "
            f"{max(lengths[i] for i in too_long)}): raise max_tokens or truncate with "
            "tokenize_translation(max_length=...)."
        )
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    if shuffle:
        rng.shuffle(order)  # random order among equally long examples, then a stable sort by length
    order.sort(key=lambda i: lengths[i])

    batches: list[list[int]] = []
    batch: list[int] = []
    for index in order:  # ascending lengths: the newest example is always the longest of its batch
        full = max_sentences is not None and len(batch) >= max_sentences
        if batch and (full or (len(batch) + 1) * lengths[index] > max_tokens):
            batches.append(batch)
            batch = []
        batch.append(index)
    if batch:
        batches.append(batch)

    # Equal batch counts per rank without dropping or repeating examples: split the largest batches in two (a half
    # batch is still within the budget) until the count divides by the number of ranks.
    while len(batches) % num_replicas:
        largest = max(range(len(batches)), key=lambda b: (len(batches[b]), -b))
        if len(batches[largest]) < 2:
            raise ValueError(
                f"{len(lengths)} examples cannot be shared out as equally many batches over {num_replicas} ranks."
            )
        half = len(batches[largest]) // 2
        batches[largest : largest + 1] = [batches[largest][:half], batches[largest][half:]]
    if shuffle:
        rng.shuffle(batches)
    return batches[rank::num_replicas]


class MaxTokensBatchSampler(Sampler[list[int]]):
    """Batch sampler for `DataLoader(dataset, batch_sampler=..., collate_fn=translation_collator(tokenizer))`.

    Each batch holds at most `max_tokens` padded tokens (and at most `max_sentences` examples). With
    `num_replicas`/`rank` each DDP rank gets a disjoint share of the epoch's batches, all ranks the same number, and
    together every example exactly once. Call `set_epoch(epoch)` before each epoch, as with `DistributedSampler`;
    the batches depend only on (lengths, max_tokens, seed, epoch, num_replicas, rank). Shard here *or* in
    `accelerate` (whose `prepare` shards a DataLoader's batch sampler itself), not both.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_tokens: int,
        *,
        max_sentences: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        self.lengths = list(lengths)
        self.max_tokens = max_tokens
        self.max_sentences = max_sentences
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle is used next."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """This rank's batches of the current epoch."""
        if self._cache is None or self._cache[0] != self.epoch:
            batches = max_tokens_batches(
                self.lengths,
                self.max_tokens,
                max_sentences=self.max_sentences,
                seed=self.seed,
                epoch=self.epoch,
                num_replicas=self.num_replicas,
                rank=self.rank,
                shuffle=self.shuffle,
            )
            self._cache = (self.epoch, batches)
        return self._cache[1]

    def __iter__(self) -> Iterator[list[int]]:
        return iter([list(batch) for batch in self.batches()])

    def __len__(self) -> int:
        return len(self.batches())


def translation_collator(tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None) -> Any:
    """Pads `input_ids` / `labels` features for `MarianMTModel`: inputs with the pad id and an attention mask,
    labels with -100 (ignored by the loss; the model shifts them right into decoder inputs)."""
    return DataCollatorForSeq2Seq(
        tokenizer, label_pad_token_id=-100, pad_to_multiple_of=pad_to_multiple_of, return_tensors="pt"
    )
