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
import transformers
from accelerate.data_loader import DataLoaderStateMixin
from torch import nn
from torch.utils.data import DataLoader
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, Trainer, TrainerCallback, TrainingArguments
from transformers.modelcard import TrainingSummary

from ..batching import batch_size, smallest_splittable_batch
from ..config import GradInitConfig
from ..core import init_with_gradinit
from ..defaults import TrainingRun
from ..plotting import plot_scales_if_possible
from ..result import PLOT_FILE, SCALES_FILE, GradInitResult
from ..sharded import is_fully_sharded
from .arguments import GradInitArguments
from .model_card import TrainingDetails, build_model_card

logger = logging.getLogger("hf_gradinit")

GRADINIT_TAG = "gradinit"


def _sharded_training_error(engine: str) -> ValueError:
    return ValueError(
        f"gradinit=True is not supported with {engine}, whose flattened parameters GradInit cannot scale; FSDP2 "
        "(fsdp_config={'version': 2}, the default) is. Or run `hf_gradinit.init_with_gradinit(model, batches, "
        f"config)` on the unsharded model first, `save_pretrained` it, then train that checkpoint with {engine} and "
        "gradinit=False (its config.gradinit records the initialisation, so it is never initialised again and the "
        "model card still describes it)."
    )


class _TrainingArgumentsChecks:
    """Runs both `TrainingArguments`' checks and `GradInitArguments`' (neither calls the other's)."""

    def __post_init__(self) -> None:
        # Before TrainingArguments' own checks, which fail on a missing DeepSpeed install with a less useful message.
        if self.gradinit and self.deepspeed:
            raise _sharded_training_error("DeepSpeed")
        super().__post_init__()
        if self.gradinit and self.fsdp and int((self.fsdp_config or {}).get("version", 2)) != 2:
            raise _sharded_training_error("FSDP version 1")
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


class _GradInitHookGuard(TrainerCallback):
    """Stops training before its first step if `Trainer` never called the hook GradInit runs in.

    GradInit runs in `Trainer._prepare_for_training`, a private method: should a transformers release stop calling
    it, `gradinit=True` must fail loudly rather than train a model that was never initialised.
    """

    def __init__(self, trainer: GradInitTrainerMixin) -> None:
        self.trainer = trainer

    def on_train_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.trainer._gradinit_hook_called:
            raise RuntimeError(
                f"gradinit=True, but this transformers release ({transformers.__version__}) did not call "
                "Trainer._prepare_for_training, where GradInit runs: training was stopped before its first step. "
                "Install a transformers version within hf_gradinit's tested range, or run "
                "hf_gradinit.init_with_gradinit on the model before training it with gradinit=False."
            )
        self.trainer._gradinit_hook_called = False  # the next train() call must pass through the hook again


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
        self._gradinit_hook_called = False
        if self.args.gradinit:
            self.add_callback(_GradInitHookGuard(self))
            if self.train_dataset is None:
                raise ValueError(
                    "gradinit=True needs a train_dataset: GradInit learns the initial scales on training batches. "
                    "Pass train_dataset=..., or set gradinit=False."
                )
            if self.is_fsdp_enabled and self.accelerator.state.fsdp_plugin.fsdp_version != 2:
                raise _sharded_training_error("FSDP version 1")
            if self.is_deepspeed_enabled:
                raise _sharded_training_error("DeepSpeed")

    def _prepare_for_training(self, max_steps: int, train_dataloader: DataLoader, resume_from_checkpoint: str | None):
        """GradInit, unless resuming or already done; then Trainer's wrapping and optimizer creation."""
        self._gradinit_hook_called = True
        if resume_from_checkpoint is not None:
            self._restore_gradinit_record(resume_from_checkpoint)
            return super()._prepare_for_training(max_steps, train_dataloader, resume_from_checkpoint)
        if self.args.gradinit and not (self.args.gradinit_force or GradInitResult.from_model(self.model) is None):
            logger.info(
                "model.config.gradinit shows the model is already GradInit-initialised: not running GradInit "
                "again (set gradinit_force=True to run it anyway)."
            )
        elif self.args.gradinit and self.is_fsdp_enabled:  # FSDP2: on this rank's shards, once accelerate has made them
            prepared = super()._prepare_for_training(max_steps, train_dataloader, resume_from_checkpoint)
            self.run_gradinit(max_steps)
            return prepared
        elif self.args.gradinit:
            self.run_gradinit(max_steps)
        return super()._prepare_for_training(max_steps, train_dataloader, resume_from_checkpoint)

    def gradinit_training_run(self, max_steps: int | None = None) -> TrainingRun:
        """The run GradInit initialises for: the optimizer this trainer will train with, its lr and weight decay.

        An optimizer passed to the Trainer (`optimizers=`, `optimizer_cls_and_kwargs=`) is read directly; otherwise
        the one `args.optim` selects, with `learning_rate`, `weight_decay`, `adam_epsilon` and `optim_args`.
        """
        if self.optimizer is not None:
            return TrainingRun.from_optimizer(self.optimizer, max_steps)
        if self.optimizer_cls_and_kwargs is not None:
            optimizer_class, kwargs = self.optimizer_cls_and_kwargs
            name = optimizer_class.__name__
        else:
            name = str(getattr(self.args.optim, "value", self.args.optim))
            try:
                kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)[1]
            except Exception:  # an optional optimizer package is missing: the name still says which step it takes
                kwargs = {}
        return TrainingRun(
            optimizer=name,
            lr=float(kwargs.get("lr", self.args.learning_rate)),
            weight_decay=float(kwargs.get("weight_decay", self.args.weight_decay)),
            eps=float(kwargs.get("eps", self.args.adam_epsilon)),
            max_steps=max_steps,
            momentum=float(kwargs.get("momentum", 0.0)),
            nesterov=bool(kwargs.get("nesterov", False)),
        )

    def run_gradinit(self, max_steps: int | None = None) -> GradInitResult:
        """Run GradInit on `self.model` in place, with batches from the training dataloader; `train()` calls it.

        What GradInit optimises follows the run (`gradinit_training_run`; explicit `gradinit_*` arguments win), and
        its loss is the training loss (`compute_gradinit_loss`). Saves `gradinit_scales.json` and its plot in
        `output_dir`, logs the summary as `gradinit/*` and tags the model `gradinit`. Under DDP every process passes
        its own batches and the alpha-gradients are averaged.
        """
        config = self.args.gradinit_config(
            self.gradinit_training_run(max_steps), fully_sharded=is_fully_sharded(self.model)
        )
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
            plot_scales_if_possible(result, os.path.join(self.args.output_dir, PLOT_FILE))
        return result

    def compute_gradinit_loss(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """GradInit's loss: the training loss, `self.compute_loss(model, batch)` (label smoothing, a
        `compute_loss_func` or an overridden `compute_loss` included), as a mean over the batch.

        The first step GradInit optimises for is a step of this loss. Each call gets its own shallow copy of the
        batch, so popping keys is fine; tensors are shared, so do not modify them in place.
        """
        return self.compute_loss(model, batch)

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
