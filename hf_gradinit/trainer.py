"""GradInit inside 🤗 `Trainer`: swap the class, set `gradinit=True`, train without warmup.

`GradInitTrainingArguments` is `TrainingArguments` plus the `gradinit_*` arguments of `GradInitArguments` (one per
`GradInitConfig` field, generated from it). `GradInitTrainer` runs GradInit once, on batches from its own training
dataloader, right before `train()` wraps the model and creates the optimizer; the `Seq2Seq` variants do the same for
`Seq2SeqTrainer` (generation-based evaluation).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate.data_loader import DataLoaderStateMixin
from torch import nn
from torch.utils.data import DataLoader
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, Trainer, TrainingArguments
from transformers.modelcard import TrainingSummary

from .arguments import GradInitArguments
from .batching import batch_size, smallest_splittable_batch
from .config import GradInitConfig
from .core import init_with_gradinit
from .model_card import TrainingDetails, build_model_card
from .result import PLOT_FILE, SCALES_FILE, GradInitResult

logger = logging.getLogger("hf_gradinit")

GRADINIT_TAG = "gradinit"


def _sharded_training_error(engine: str) -> ValueError:
    return ValueError(
        f"gradinit=True is not supported with {engine}: GradInit needs the whole, unsharded model. Run "
        "`hf_gradinit.init_with_gradinit(model, batches, config)` on the unsharded model first, `save_pretrained` it, "
        f"then train that checkpoint with {engine} and gradinit=False (its config.gradinit records the "
        "initialisation, so it is never initialised again and the model card still describes it)."
    )


class _TrainingArgumentsChecks:
    """Runs both `TrainingArguments`' checks and `GradInitArguments`' (neither calls the other's)."""

    def __post_init__(self) -> None:
        # Before TrainingArguments' own checks, which fail on a missing DeepSpeed install with a less useful message.
        if self.gradinit and self.fsdp:
            raise _sharded_training_error("FSDP")
        if self.gradinit and self.deepspeed:
            raise _sharded_training_error("DeepSpeed")
        super().__post_init__()
        GradInitArguments.__post_init__(self)


@dataclass
class GradInitTrainingArguments(_TrainingArgumentsChecks, TrainingArguments, GradInitArguments):
    """`TrainingArguments` with the `gradinit_*` arguments of `GradInitArguments`."""


@dataclass
class GradInitSeq2SeqTrainingArguments(_TrainingArgumentsChecks, Seq2SeqTrainingArguments, GradInitArguments):
    """`Seq2SeqTrainingArguments` (`predict_with_generate` evaluation) with the `gradinit_*` arguments."""


class _SplittableBatches:
    """The batches of a DataLoader that can be split into S and S~; re-iterable, so every pass reshuffles.

    A dataset whose size is not a multiple of the batch size ends with a short batch; one example cannot be split.
    """

    def __init__(self, dataloader: DataLoader, min_size: int) -> None:
        self.dataloader, self.min_size = dataloader, min_size

    def __iter__(self) -> Iterator[Any]:
        return (batch for batch in self.dataloader if batch_size(batch) >= self.min_size)


class GradInitTrainerMixin:
    """GradInit for a `Trainer` subclass; the `gradinit_*` training arguments configure it.

    GradInit runs in `_prepare_for_training`, the step of `train()` that wraps the model (DDP, ...) and creates
    the optimizer: there the model is final (`model_init` has built this trial's model, a resumed checkpoint is
    loaded), the `TrainerState` exists (so the summary lands in `log_history`), and nothing is wrapped yet.
    """

    args: GradInitTrainingArguments | GradInitSeq2SeqTrainingArguments
    gradinit_result: GradInitResult | None
    """The result of the GradInit run made by this trainer (the last one), or None."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, GradInitArguments):
            raise TypeError(
                f"{type(self).__name__} needs GradInitTrainingArguments (or GradInitSeq2SeqTrainingArguments), "
                f"got {type(self.args).__name__}."
            )
        self.gradinit_result = None
        if self.args.gradinit:
            if self.train_dataset is None:
                raise ValueError(
                    "gradinit=True needs a train_dataset: GradInit learns the initial scales on training batches. "
                    "Pass train_dataset=..., or set gradinit=False."
                )
            if self.is_fsdp_enabled:
                raise _sharded_training_error("FSDP")
            if self.is_deepspeed_enabled:
                raise _sharded_training_error("DeepSpeed")

    def _prepare_for_training(self, max_steps: int, train_dataloader: DataLoader, resume_from_checkpoint: str | None):
        """GradInit, unless resuming or already done; then Trainer's wrapping and optimizer creation."""
        if resume_from_checkpoint is not None:
            self._restore_gradinit_record(resume_from_checkpoint)
        elif self.args.gradinit:
            if self.args.gradinit_force or GradInitResult.from_model(self.model) is None:
                self.run_gradinit()
            else:
                logger.info(
                    "model.config.gradinit shows the model is already GradInit-initialised: not running GradInit "
                    "again (set gradinit_force=True to run it anyway)."
                )
        return super()._prepare_for_training(max_steps, train_dataloader, resume_from_checkpoint)

    def run_gradinit(self) -> GradInitResult:
        """Run GradInit on `self.model` in place, with batches from the training dataloader; `train()` calls it.

        Saves `gradinit_scales.json` and its plot in `output_dir`, logs the summary as `gradinit/*` and tags the
        model `gradinit`. Under DDP every process passes its own batches and the alpha-gradients are averaged.
        """
        config = self.args.gradinit_config()
        with self._gradinit_batches(config) as batches:
            progress_bar = False if self.args.disable_tqdm else None
            result = init_with_gradinit(
                self.model, batches, config, loss_fn=self.compute_gradinit_loss, progress_bar=progress_bar
            )
        self.gradinit_result = result
        self._tag_model()
        self.log({f"gradinit/{name}": value for name, value in result.summary().items() if value is not None})
        if self.is_world_process_zero():
            os.makedirs(self.args.output_dir, exist_ok=True)
            result.save(os.path.join(self.args.output_dir, SCALES_FILE))
            result.plot(os.path.join(self.args.output_dir, PLOT_FILE))
        return result

    def compute_gradinit_loss(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """GradInit's loss: the model's own, `model(**batch).loss`, without label smoothing.

        Override it when the training loss is computed outside the model (a custom `compute_loss`). It must not
        modify `batch`: GradInit's two sub-batches S and S~ share tensors.
        """
        if "labels" not in batch:
            raise ValueError(
                f"GradInit's loss is model(**batch).loss, which needs 'labels' in the training batches; got keys "
                f"{sorted(batch)}. Add labels in the data collator, or override "
                f"{type(self).__name__}.compute_gradinit_loss."
            )
        return model(**batch).loss

    def _gradinit_batch_size(self) -> int:
        return self.args.gradinit_batch_size or self._train_batch_size

    @contextlib.contextmanager
    def _gradinit_batches(self, config: GradInitConfig) -> Iterator[_SplittableBatches]:
        """Batches of the trainer's own training dataloader (collator, column removal, sampler, sharding across
        processes) at GradInit's batch size."""
        train_batch_size, self._train_batch_size = self._train_batch_size, self._gradinit_batch_size()
        try:
            dataloader = self.get_train_dataloader()
        finally:
            self._train_batch_size = train_batch_size
        try:
            yield _SplittableBatches(dataloader, min_size=smallest_splittable_batch(config.batch_split))
        finally:
            # An Accelerate dataloader registers itself as the active one while iterated and unregisters at the end
            # of an epoch; GradInit stops mid-epoch, and training must not see it as active.
            if isinstance(dataloader, DataLoaderStateMixin):
                dataloader.end()

    def _restore_gradinit_record(self, checkpoint: str) -> None:
        """Resuming loads the checkpoint's weights but not its config: bring back the GradInit record as well."""
        config_path = Path(checkpoint, "config.json")
        record = json.loads(config_path.read_text()).get("gradinit") if config_path.is_file() else None
        if record:
            GradInitResult.from_dict(record).record_in(self.model)
            self._tag_model()

    def _tag_model(self) -> None:
        if hasattr(self.model, "add_model_tags"):
            self.model.add_model_tags([GRADINIT_TAG])

    def create_model_card(
        self,
        language: str | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
    ) -> None:
        """Write `output_dir/README.md`; for a GradInit-initialised model, the card of `build_model_card`.

        It keeps what `Trainer` puts in its card (hyperparameters, results, metadata), adds the GradInit section,
        and describes a model built from a config as trained from scratch (`Trainer` calls it "a fine-tuned version
        of []").
        """
        result = self.gradinit_result or GradInitResult.from_model(self.model)  # the former has the history
        if result is None:
            super().create_model_card(
                language, license, tags, model_name, finetuned_from, tasks, dataset_tags, dataset, dataset_args
            )
            return
        if not self.is_world_process_zero():
            return
        summary = TrainingSummary.from_trainer(
            self,
            language=language,
            license=license,
            tags=[tags] if isinstance(tags, str) else list(tags or []),
            model_name=model_name,
            finetuned_from=finetuned_from,
            tasks=tasks,
            dataset_tags=dataset_tags,
            dataset=dataset,
            dataset_args=dataset_args,
        )
        card = build_model_card(
            result,
            model_name=summary.model_name,
            base_model=summary.finetuned_from or None,  # a model built from a config has _name_or_path ""
            pipeline_tag=summary.tasks if isinstance(summary.tasks, str) else None,
            language=summary.language,
            license=summary.license,
            datasets=summary.dataset_tags,
            tags=[*summary.tags, *(getattr(self.model, "model_tags", None) or [])],
            training=TrainingDetails(summary.hyperparameters, summary.eval_results, summary.eval_lines)
            if self.state.global_step > 0
            else None,
            search_data=self._gradinit_search_data(),
            scales_plot=PLOT_FILE if os.path.isfile(os.path.join(self.args.output_dir, PLOT_FILE)) else None,
        )
        card.save(os.path.join(self.args.output_dir, "README.md"))

    def _gradinit_search_data(self) -> str | None:
        """What GradInit searched on, when this trainer ran it (a pre-initialised model's record does not say)."""
        if self.gradinit_result is None:
            return None
        world_size = self.gradinit_result.world_size
        processes = f", in each of {world_size} processes" if world_size > 1 else ""
        return (
            f"batches of {self._gradinit_batch_size()} examples from the training set{processes}, drawn by the "
            "Trainer's training dataloader (same collator and preprocessing as training)"
        )


class GradInitTrainer(GradInitTrainerMixin, Trainer):
    """`Trainer` that runs GradInit before training when `args.gradinit` is set (see `GradInitTrainerMixin`)."""


class GradInitSeq2SeqTrainer(GradInitTrainerMixin, Seq2SeqTrainer):
    """`Seq2SeqTrainer` that runs GradInit before training when `args.gradinit` is set (see `GradInitTrainerMixin`)."""


__all__ = [
    "GradInitSeq2SeqTrainer",
    "GradInitSeq2SeqTrainingArguments",
    "GradInitTrainer",
    "GradInitTrainerMixin",
    "GradInitTrainingArguments",
]
