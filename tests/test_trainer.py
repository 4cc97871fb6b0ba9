"""GradInitTrainer: arguments, when GradInit runs (and when not), DDP, outputs, model card, bad setups."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
import torch
import yaml
from datasets import Dataset
from huggingface_hub import ModelCard
from tiny_models import VOCAB, tiny_bert_classifier, tiny_gpt2, tiny_marian
from transformers import HfArgumentParser, MarianMTModel, Trainer, TrainingArguments
from transformers.trainer_pt_utils import LabelSmoother

import hf_gradinit.integrations.trainer as trainer_module
from hf_gradinit import (
    GradInitArguments,
    GradInitConfig,
    GradInitResult,
    GradInitSeq2SeqTrainer,
    GradInitSeq2SeqTrainingArguments,
    GradInitTrainer,
    GradInitTrainingArguments,
    build_model_card,
    init_with_gradinit,
)

WORKER = Path(__file__).with_name("ddp_trainer_worker.py")


# -- data --------------------------------------------------------------------------------------------------------------


def counting_rows(count: int, length: int = 12, seed: int = 0) -> list[list[int]]:
    """Sequences counting up from a random start (mod VOCAB): learnable in a few dozen steps."""
    starts = torch.randint(0, VOCAB, (count, 1), generator=torch.Generator().manual_seed(seed))
    return ((starts + torch.arange(length)) % VOCAB).tolist()


def lm_dataset(count: int = 48, rows: list[list[int]] | None = None) -> Dataset:
    """Token ids plus a column the model does not take (the Trainer must drop it); labels come from the collator."""
    rows = rows if rows is not None else counting_rows(count)
    return Dataset.from_dict({"input_ids": rows, "note": ["unused"] * len(rows)})


def lm_collate(rows: list[dict]) -> dict[str, torch.Tensor]:
    ids = torch.tensor([row["input_ids"] for row in rows])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def classification_dataset(count: int = 48) -> Dataset:
    rows = counting_rows(count, length=10)
    return Dataset.from_dict({"input_ids": rows, "labels": [row[0] * 3 // VOCAB for row in rows]})


def translation_dataset(count: int = 48) -> Dataset:
    """Source: a counting sequence; target: its continuation, written in a small "target vocabulary" (8 tokens)."""
    rows = counting_rows(count, length=16)
    return Dataset.from_dict(
        {"input_ids": [row[:9] for row in rows], "labels": [[2 + t % 8 for t in row[9:]] for row in rows]}
    )


def tensor_collate(rows: list[dict]) -> dict[str, torch.Tensor]:
    batch = {key: torch.tensor([row[key] for row in rows]) for key in rows[0]}
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    return batch


def training_args(tmp_path: Path, cls: type = GradInitTrainingArguments, **overrides) -> TrainingArguments:
    settings = dict(
        output_dir=str(tmp_path / "out"),
        gradinit=True,
        gradinit_iterations=4,
        use_cpu=True,
        per_device_train_batch_size=6,
        max_steps=4,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    return cls(**{**settings, **overrides})


@pytest.fixture
def gradinit_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Records every init_with_gradinit call the trainer makes: trainer state at that moment, first batch, dtypes."""
    calls: list[dict] = []
    real = trainer_module.init_with_gradinit

    def spy(model, batches, config=None, **kwargs):
        trainer = spy.trainer
        call = {
            "model": model,
            "optimizer_exists": trainer.optimizer is not None,
            "model_is_wrapped": trainer.model_wrapped is not model,
            "first_batch": next(iter(batches)),
            "output_dtypes": set(),
        }
        hooks = record_linear_output_dtypes(model, call["output_dtypes"])
        try:
            call["result"] = real(model, batches, config, **kwargs)
        finally:
            for hook in hooks:
                hook.remove()
        calls.append(call)
        return call["result"]

    run_gradinit = trainer_module.GradInitTrainerMixin.run_gradinit

    def run_and_remember_trainer(self, max_steps=None):
        spy.trainer = self
        return run_gradinit(self, max_steps)

    monkeypatch.setattr(trainer_module, "init_with_gradinit", spy)
    monkeypatch.setattr(trainer_module.GradInitTrainerMixin, "run_gradinit", run_and_remember_trainer)
    return calls


def record_linear_output_dtypes(model: torch.nn.Module, dtypes: set) -> list:
    """Hooks adding the output dtype of every Linear layer (under autocast: the compute dtype) to `dtypes`."""
    linears = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    return [linear.register_forward_hook(lambda module, args, output: dtypes.add(output.dtype)) for linear in linears]


def logged_losses(trainer) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


# -- arguments ---------------------------------------------------------------------------------------------------------


def test_every_config_field_has_an_argument_with_its_type_help_and_no_default() -> None:
    arguments = {f.name: f for f in dataclasses.fields(GradInitTrainingArguments)}
    argument_types = typing.get_type_hints(GradInitArguments)
    for name, hint in typing.get_type_hints(GradInitConfig).items():
        argument = arguments[f"gradinit_{name}"]
        assert argument.default is None
        assert GradInitConfig.__dataclass_fields__[name].metadata["help"] in argument.metadata["help"]
        if typing.get_origin(hint) is tuple:  # argument parsers give lists
            hint = list[typing.get_args(hint)[0]]
        assert argument_types[f"gradinit_{name}"] == hint | None
    for name in ("gradinit", "gradinit_config_preset", "gradinit_batch_size", "gradinit_force"):
        assert arguments[name].metadata["help"]
    seq2seq = {f.name for f in dataclasses.fields(GradInitSeq2SeqTrainingArguments)}
    assert set(arguments) | {"predict_with_generate"} <= seq2seq


def test_command_line_preset_with_explicit_overrides(tmp_path: Path) -> None:
    parser = HfArgumentParser(GradInitTrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        [
            *("--output_dir", str(tmp_path), "--use_cpu", "--report_to", "none", "--gradinit"),
            *("--gradinit_config_preset", "cifar"),
            *("--gradinit_iterations", "780"),  # GradInitConfig's default, given explicitly: must beat the preset
            *("--gradinit_scale_betas", "0.8", "0.9"),
            *("--gradinit_grad_norm_bound", "inf", "--gradinit_scale_grad_clip", "inf"),
        ]
    )
    config = args.gradinit_config()
    expected = GradInitConfig.cifar(
        iterations=780, scale_betas=(0.8, 0.9), grad_norm_bound=math.inf, scale_grad_clip=None
    )
    assert config == expected
    assert args.gradinit_config_preset == "cifar" and args.gradinit is True


def test_json_and_yaml_files(tmp_path: Path) -> None:
    settings = {
        "output_dir": str(tmp_path),
        "use_cpu": True,
        "report_to": "none",
        "gradinit": True,
        "gradinit_target_optimizer": "adamw",
        "gradinit_target_weight_decay": 0.01,
        "gradinit_scale_betas": [0.5, 0.6],
    }
    expected = GradInitConfig(target_optimizer="adamw", target_weight_decay=0.01, scale_betas=(0.5, 0.6))
    parser = HfArgumentParser(GradInitSeq2SeqTrainingArguments)
    (tmp_path / "args.json").write_text(json.dumps(settings))
    (tmp_path / "args.yaml").write_text(yaml.safe_dump(settings))
    (from_json,) = parser.parse_json_file(tmp_path / "args.json")
    (from_yaml,) = parser.parse_yaml_file(tmp_path / "args.yaml")
    assert from_json.gradinit_config() == expected
    assert from_yaml.gradinit_config() == expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gradinit_scale_lr": -1.0}, "scale_lr must be > 0"),
        ({"gradinit_batch_size": 1}, "at least 2"),
        ({"gradinit_config_preset": "cifar", "gradinit_target_optimizer": "adam"}, "normalize_sgd_step"),
        # TrainingArguments' own checks still run
        ({"eval_strategy": "steps", "eval_steps": 2, "save_steps": 3, "load_best_model_at_end": True}, "requires"),
    ],
)
def test_invalid_arguments_fail_when_parsed(tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        training_args(tmp_path, **overrides)


# -- when and how GradInit runs ------------------------------------------------------------------------------------ ---


def test_runs_once_before_wrapping_on_the_trainers_own_batches_in_fp32(tmp_path: Path, gradinit_calls) -> None:
    model = tiny_gpt2()
    args = training_args(tmp_path, bf16=True, gradinit_batch_size=4)
    trainer = GradInitTrainer(model=model, args=args, train_dataset=lm_dataset(), data_collator=lm_collate)
    assert not gradinit_calls  # not at construction
    training_dtypes = set()
    trainer.train()
    (call,) = gradinit_calls
    assert call["model"] is model
    assert not call["optimizer_exists"] and not call["model_is_wrapped"]
    batch = call["first_batch"]
    assert set(batch) == {"input_ids", "attention_mask", "labels"}  # the collator's labels; "note" removed
    assert batch["input_ids"].shape[0] == 4  # gradinit_batch_size, not the training batch size
    assert call["output_dtypes"] == {torch.float32}

    # The run really is mixed precision: the same forward hook sees bf16 in training.
    record_linear_output_dtypes(model, training_dtypes)
    trainer.train()  # the model is recorded as initialised now: trains again without another GradInit
    assert training_dtypes == {torch.bfloat16}
    assert len(gradinit_calls) == 1


def test_records_saves_logs_and_tags(tmp_path: Path) -> None:
    model = tiny_gpt2()
    trainer = GradInitTrainer(
        model=model, args=training_args(tmp_path), train_dataset=lm_dataset(), data_collator=lm_collate
    )
    trainer.train()
    result = trainer.gradinit_result
    output_dir = Path(trainer.args.output_dir)
    assert GradInitResult.load(output_dir / "gradinit_scales.json").scales == result.scales
    assert (output_dir / "gradinit_scales.png").stat().st_size > 0
    assert GradInitResult.from_model(model).scales == result.scales
    assert "gradinit" in model.model_tags
    (logged,) = [entry for entry in trainer.state.log_history if "gradinit/scale_median" in entry]
    assert logged["gradinit/iterations"] == 4 and logged["step"] == 0
    assert logged["gradinit/scale_median"] == pytest.approx(result.summary()["scale_median"])


def test_run_gradinit_leaves_no_active_dataloader_behind(tmp_path: Path) -> None:
    """GradInit stops its dataloader mid-epoch; Accelerate must not keep treating it as the active one."""
    trainer = GradInitTrainer(
        model=tiny_gpt2(), args=training_args(tmp_path), train_dataset=lm_dataset(), data_collator=lm_collate
    )
    gradient_state = trainer.accelerator.gradient_state  # shared by all Accelerators in the process
    active_before = gradient_state.dataloader_references
    trainer.run_gradinit()
    assert gradient_state.dataloader_references == active_before


def test_every_pass_over_the_data_goes_back_to_the_dataloader(tmp_path: Path) -> None:
    """12 examples in batches of 6: 6 iterations are 3 epochs, each collated (and shuffled) anew, none replayed."""
    collated = []

    def counting_collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        collated.append(len(rows))
        return lm_collate(rows)

    args = training_args(tmp_path, gradinit_iterations=6)
    trainer = GradInitTrainer(
        model=tiny_gpt2(), args=args, train_dataset=lm_dataset(12), data_collator=counting_collate
    )
    trainer.run_gradinit()
    assert len(collated) >= 6


def test_custom_gradinit_loss(tmp_path: Path) -> None:
    """Batches without labels need `compute_gradinit_loss`; by default the training loss refuses them clearly."""

    def unlabelled_collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        return {"input_ids": torch.tensor([row["input_ids"] for row in rows])}

    class NextTokenLossTrainer(GradInitTrainer):
        def compute_gradinit_loss(self, model, batch):
            return model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss

    setup = dict(args=training_args(tmp_path), train_dataset=lm_dataset(), data_collator=unlabelled_collate)
    with pytest.raises(ValueError, match="The model did not return a loss from the inputs"):
        GradInitTrainer(model=tiny_gpt2(), **setup).run_gradinit()
    assert len(NextTokenLossTrainer(model=tiny_gpt2(), **setup).run_gradinit().history) == 4


def test_gradinit_loss_is_the_training_loss_label_smoothing_included(tmp_path: Path, gradinit_calls) -> None:
    """Trainer.compute_loss pops `labels` for label smoothing: GradInit optimises that loss on every step kind."""
    rows = counting_rows(1) * 24  # identical examples: the loss on any part of any batch is the same
    model = tiny_gpt2()
    reference = copy.deepcopy(model).eval()
    batch = lm_collate([{"input_ids": rows[0]}])
    with torch.no_grad():
        outputs = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        smoothed = LabelSmoother(0.5)(outputs, batch["labels"], shift_labels=True).item()
        plain = reference(**batch).loss.item()
    # A finite bound: the first pass is redone for constraint steps, on the same batch whose labels were popped.
    args = training_args(tmp_path, gradinit_iterations=3, label_smoothing_factor=0.5, gradinit_grad_norm_bound=1e-3)
    trainer = GradInitTrainer(model=model, args=args, train_dataset=lm_dataset(rows=rows), data_collator=lm_collate)
    trainer.train()
    (call,) = gradinit_calls
    history = call["result"].history
    assert history[0]["loss"] == pytest.approx(smoothed, rel=1e-6) and abs(smoothed - plain) > 1e-3
    assert all(record["constraint_step"] for record in history)
    assert "labels" in call["first_batch"]
    assert len(logged_losses(trainer)) == 4  # and label-smoothed training ran


def test_resume_does_not_rerun_and_keeps_the_record(tmp_path: Path, gradinit_calls) -> None:
    args = training_args(tmp_path, save_strategy="steps", save_steps=2)
    first = GradInitTrainer(model=tiny_gpt2(), args=args, train_dataset=lm_dataset(), data_collator=lm_collate)
    first.train()
    assert len(gradinit_calls) == 1
    resumed_model = tiny_gpt2()  # a fresh model: the checkpoint's weights and record must come back
    resumed = GradInitTrainer(model=resumed_model, args=args, train_dataset=lm_dataset(), data_collator=lm_collate)
    resumed.train(resume_from_checkpoint=str(Path(args.output_dir, "checkpoint-2")))
    assert len(gradinit_calls) == 1
    assert resumed.gradinit_result is None
    assert resumed.state.global_step == 4
    assert GradInitResult.from_model(resumed_model).scales == first.gradinit_result.scales
    assert "gradinit" in resumed_model.model_tags


@pytest.mark.parametrize("force", [False, True])
def test_initialised_model_is_not_initialised_twice_unless_forced(tmp_path: Path, gradinit_calls, force) -> None:
    model = tiny_gpt2()
    init_with_gradinit(model, [lm_collate([{"input_ids": row} for row in counting_rows(6)])], iterations=2)
    args = training_args(tmp_path, gradinit_force=force)
    GradInitTrainer(model=model, args=args, train_dataset=lm_dataset(), data_collator=lm_collate).train()
    assert len(gradinit_calls) == int(force)


def test_model_init_gives_every_trial_a_fresh_gradinit(tmp_path: Path, gradinit_calls) -> None:
    """Trainer re-creates the model with `model_init` at every `train()` (each hyper-parameter search trial)."""
    models = []

    def model_init():
        models.append(tiny_gpt2())
        return models[-1]

    args = training_args(tmp_path, max_steps=2)
    trainer = GradInitTrainer(model_init=model_init, args=args, train_dataset=lm_dataset(), data_collator=lm_collate)
    trainer.train()
    trainer.train()
    assert len(models) == 3  # one built by the constructor, one per train()
    assert [call["model"] for call in gradinit_calls] == models[1:]
    assert all(GradInitResult.from_model(model) is not None for model in models[1:])


def test_short_last_batch_is_skipped(tmp_path: Path) -> None:
    """13 examples in batches of 4 end with a batch of one, which cannot be split into S and S~."""
    args = training_args(tmp_path, gradinit_batch_size=4, gradinit_iterations=8)
    trainer = GradInitTrainer(model=tiny_gpt2(), args=args, train_dataset=lm_dataset(13), data_collator=lm_collate)
    trainer.train()
    assert len(trainer.gradinit_result.history) == 8


def test_ddp_ranks_average_and_end_identical(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    process = subprocess.run(
        [*command, str(WORKER), str(tmp_path)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-4000:]
    rank0, rank1 = (json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1))
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["result_world_size"] == rank1["result_world_size"] == 2
    assert rank0["scales"] == rank1["scales"]
    assert rank0["weights_sha256"] == rank1["weights_sha256"]


# -- what GradInit optimises follows the run ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (
            dict(optim="adamw_torch", learning_rate=3e-4, weight_decay=0.01, adam_epsilon=1e-6),
            dict(target_optimizer="adamw", target_lr=6e-4, target_weight_decay=0.01, target_eps=1e-6),
        ),
        (
            dict(optim="sgd", learning_rate=5e-2),
            dict(target_optimizer="sgd", target_lr=5e-2, normalize_sgd_step=True, grad_norm_bound=1.0),
        ),
        (
            dict(optim="sgd", learning_rate=5e-2, optim_args="momentum=0.9,nesterov=True"),
            dict(target_optimizer="sgd", target_lr=pytest.approx(9.5e-2)),
        ),
        (  # explicit gradinit_* values win
            dict(optim="adamw_torch", learning_rate=3e-4, gradinit_target_lr=1e-3, gradinit_scale_lr=0.05),
            dict(target_optimizer="adamw", target_lr=1e-3, scale_lr=0.05),
        ),
    ],
)
def test_gradinit_follows_the_trainers_optimizer_and_lr(tmp_path: Path, run: dict, expected: dict) -> None:
    args = training_args(tmp_path, max_steps=30, gradinit_iterations=None, **run)
    trainer = GradInitTrainer(model=tiny_gpt2(), args=args, train_dataset=lm_dataset(), data_collator=lm_collate)
    trainer.train()
    config = trainer.gradinit_result.config
    assert {name: getattr(config, name) for name in expected} == expected
    assert config.iterations == 15  # scaled to the run: half of max_steps


def test_gradinit_follows_an_optimizer_given_to_the_trainer(tmp_path: Path) -> None:
    model = tiny_gpt2()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, weight_decay=1e-4)
    args = training_args(tmp_path, learning_rate=1e-3)  # ignored by Trainer when an optimizer is given
    trainer = GradInitTrainer(
        model=model, args=args, train_dataset=lm_dataset(), data_collator=lm_collate, optimizers=(optimizer, None)
    )
    trainer.train()
    config = trainer.gradinit_result.config
    assert (config.target_optimizer, config.target_lr, config.target_weight_decay) == ("sgd", 0.2, 1e-4)


def test_an_optimizer_gradinit_cannot_model_is_a_warning_and_settings_are_logged_first(tmp_path: Path, caplog) -> None:
    args = training_args(tmp_path, optim="adafactor", learning_rate=1e-3, log_level="info")
    trainer = GradInitTrainer(model=tiny_gpt2(), args=args, train_dataset=lm_dataset(), data_collator=lm_collate)
    with caplog.at_level(logging.INFO, logger="hf_gradinit"):
        trainer.run_gradinit(max_steps=4)
    messages = [record.getMessage() for record in caplog.records if record.name == "hf_gradinit"]
    warning = next(i for i, m in enumerate(messages) if "cannot model the first step of the optimizer 'adafactor'" in m)
    follows = next(i for i, m in enumerate(messages) if m.startswith("GradInit follows the run (optimizer 'adafactor'"))
    settings = next(i for i, m in enumerate(messages) if m.startswith("GradInit settings: first step of adamw"))
    done = next(i for i, m in enumerate(messages) if m.startswith("GradInit done"))
    assert warning < follows < settings < done
    assert trainer.gradinit_result.config.target_lr == 2e-3


def test_training_stops_if_trainer_never_calls_the_gradinit_hook(tmp_path: Path, monkeypatch) -> None:
    """As if a transformers release stopped calling `_prepare_for_training`: no silent training without GradInit."""
    monkeypatch.setattr(trainer_module.GradInitTrainerMixin, "_prepare_for_training", Trainer._prepare_for_training)
    model = tiny_gpt2()
    before = copy.deepcopy(model.state_dict())
    trainer = GradInitTrainer(
        model=model, args=training_args(tmp_path), train_dataset=lm_dataset(), data_collator=lm_collate
    )
    with pytest.raises(RuntimeError, match="did not call Trainer._prepare_for_training"):
        trainer.train()
    assert trainer.state.global_step == 0 and trainer.gradinit_result is None
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())


def test_reloaded_marian_position_tables_are_not_scaled_by_the_trainer(tmp_path: Path) -> None:
    tiny_marian().save_pretrained(tmp_path / "saved")
    model = MarianMTModel.from_pretrained(tmp_path / "saved")
    positions = model.model.encoder.embed_positions.weight
    assert positions.requires_grad  # transformers 5.x thaws the sinusoidal table on loading
    table = positions.detach().clone()
    args = training_args(tmp_path, cls=GradInitSeq2SeqTrainingArguments, max_steps=1, learning_rate=1e-9)
    trainer = GradInitSeq2SeqTrainer(
        model=model, args=args, train_dataset=translation_dataset(), data_collator=tensor_collate
    )
    trainer.run_gradinit()
    assert not any("embed_positions" in name for name in trainer.gradinit_result.scales)
    assert torch.equal(model.model.encoder.embed_positions.weight, table)


# -- models: the loss falls --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["causal_lm", "classifier", "seq2seq"])
def test_training_loss_falls_after_gradinit(tmp_path: Path, task: str) -> None:
    if task == "causal_lm":
        model, dataset, collate = tiny_gpt2(), lm_dataset(), lm_collate
    elif task == "classifier":
        model, dataset, collate = tiny_bert_classifier(), classification_dataset(), tensor_collate
    else:
        model, dataset, collate = tiny_marian(), translation_dataset(), tensor_collate
    seq2seq = task == "seq2seq"
    args = training_args(
        tmp_path,
        cls=GradInitSeq2SeqTrainingArguments if seq2seq else GradInitTrainingArguments,
        max_steps=40,
        learning_rate=3e-3,
        **({"predict_with_generate": True, "generation_max_length": 8} if seq2seq else {}),
    )
    trainer_cls = GradInitSeq2SeqTrainer if seq2seq else GradInitTrainer
    trainer = trainer_cls(
        model=model, args=args, train_dataset=dataset, eval_dataset=dataset.select(range(4)), data_collator=collate
    )
    trainer.train()
    losses = logged_losses(trainer)
    assert GradInitResult.from_model(model) is not None
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses
    if seq2seq:
        predictions = trainer.predict(dataset.select(range(4))).predictions
        assert predictions.shape[0] == 4 and predictions.shape[1] > 2  # generated, not teacher-forced logits


# -- model card --------------------------------------------------------------------------------------------------------


def test_model_card_of_a_model_trained_from_scratch(tmp_path: Path) -> None:
    trainer = GradInitTrainer(
        model=tiny_gpt2(), args=training_args(tmp_path), train_dataset=lm_dataset(), data_collator=lm_collate
    )
    trainer.train()
    trainer.create_model_card(language="en", license="apache-2.0")
    text = Path(trainer.args.output_dir, "README.md").read_text()
    card = ModelCard(text)
    assert "gradinit" in card.data.tags and card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "text-generation" and card.data.language == "en"
    assert "fine-tuned version of" not in text and "trained from scratch" in text
    assert "## GradInit initialisation" in text and "arXiv" in text and "2102.08098" in text
    assert "![Learned GradInit scale of every parameter block](gradinit_scales.png)" in text
    assert "learning_rate: 0.001" in text  # the Trainer's hyperparameters are kept
    assert "batches of 6 examples from the training set" in text
    for config_field in dataclasses.fields(GradInitConfig):
        assert f"| `{config_field.name}` |" in text
    for name in trainer.gradinit_result.scales:
        assert f"| `{name}` |" in text


def test_model_card_of_an_initialised_untrained_checkpoint() -> None:
    model = tiny_gpt2()
    init_with_gradinit(model, [lm_collate([{"input_ids": row} for row in counting_rows(6)])], iterations=2)
    card = build_model_card(
        GradInitResult.from_model(model),
        model_name="tiny-gpt2-gradinit",
        architecture="GPT2LMHeadModel",
        pipeline_tag="text-generation",
        datasets="some/dataset",
        tags=["post-ln"],
    )
    assert card.data.tags == ["gradinit", "post-ln"] and card.data.datasets == ["some/dataset"]
    assert "has **not been trained**" in card.text and "`GPT2LMHeadModel`" in card.text
    assert "Training hyperparameters" not in card.text
    assert "Data: not recorded" in card.text


# -- bad setups --------------------------------------------------------------------------------------------------------


def test_gradinit_without_train_dataset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="gradinit=True needs a train_dataset"):
        GradInitTrainer(model=tiny_gpt2(), args=training_args(tmp_path))


def test_plain_training_arguments_are_refused(tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    with pytest.raises(TypeError, match="GradInitTrainingArguments"):
        GradInitTrainer(model=tiny_gpt2(), args=args, train_dataset=lm_dataset(), data_collator=lm_collate)


@pytest.mark.parametrize(
    ("overrides", "engine"),
    [
        ({"fsdp": "full_shard", "fsdp_config": {"version": 1}}, "FSDP version 1"),
        ({"deepspeed": {"zero_optimization": {}}}, "DeepSpeed"),
    ],
)
def test_fsdp1_and_deepspeed_arguments_are_refused(tmp_path: Path, overrides: dict, engine: str) -> None:
    with pytest.raises(ValueError, match=f"not supported with {engine}.*FSDP2.*is"):
        training_args(tmp_path, **overrides)


def test_fsdp2_arguments_are_accepted(tmp_path: Path) -> None:
    assert training_args(tmp_path, fsdp="full_shard").gradinit  # FSDP2 is transformers' default version


def test_fsdp1_from_the_launcher_is_refused(tmp_path: Path) -> None:
    """`accelerate launch` with an FSDP config enables it in the Accelerator, not in the arguments."""

    class LaunchedWithFSDP1(GradInitTrainer):
        def create_accelerator_and_postprocess(self) -> None:
            super().create_accelerator_and_postprocess()
            self.is_fsdp_enabled = True
            self.accelerator.state.fsdp_plugin = types.SimpleNamespace(fsdp_version=1)

    with pytest.raises(ValueError, match="not supported with FSDP version 1"):
        LaunchedWithFSDP1(
            model=tiny_gpt2(), args=training_args(tmp_path), train_dataset=lm_dataset(), data_collator=lm_collate
        )


def test_under_fsdp2_gradinit_runs_on_the_shards_after_accelerate_made_them(tmp_path: Path, monkeypatch) -> None:
    """The order of `_prepare_for_training` under FSDP2 (the sharding itself needs GPUs in accelerate: here a
    stand-in shards with `fully_shard` in a one-process group)."""
    from torch.distributed.fsdp import FSDPModule, fully_shard

    order = []

    def shard_like_accelerate(self, max_steps, train_dataloader, resume_from_checkpoint):
        order.append("prepare")
        fully_shard(self.model)
        return self.model, train_dataloader

    monkeypatch.setattr(Trainer, "_prepare_for_training", shard_like_accelerate)
    run_gradinit = trainer_module.GradInitTrainerMixin.run_gradinit

    def recording_run_gradinit(self, max_steps=None):
        order.append(("gradinit", isinstance(self.model, FSDPModule)))
        return run_gradinit(self, max_steps)

    monkeypatch.setattr(trainer_module.GradInitTrainerMixin, "run_gradinit", recording_run_gradinit)
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        trainer = GradInitTrainer(
            model=tiny_gpt2(), args=training_args(tmp_path), train_dataset=lm_dataset(), data_collator=lm_collate
        )
        trainer.is_fsdp_enabled = True
        trainer._prepare_for_training(4, trainer.get_train_dataloader(), None)
    finally:
        torch.distributed.destroy_process_group()
    assert order == ["prepare", ("gradinit", True)]
    assert trainer.gradinit_result.config.constraint_hvp == "finite_difference"  # FSDP2 has no double backward


def test_without_matplotlib_the_plot_is_skipped_with_a_note(tmp_path: Path, monkeypatch, caplog) -> None:
    """matplotlib is the [plot] extra: GradInit and its outputs work without it."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    trainer = GradInitTrainer(
        model=tiny_gpt2(), args=training_args(tmp_path), train_dataset=lm_dataset(), data_collator=lm_collate
    )
    with caplog.at_level(logging.WARNING, logger="hf_gradinit"):
        trainer.train()
    output_dir = Path(trainer.args.output_dir)
    assert (output_dir / "gradinit_scales.json").is_file() and not (output_dir / "gradinit_scales.png").exists()
    assert 'pip install "hf-gradinit[plot]"' in caplog.text
    trainer.create_model_card()
    assert "gradinit_scales.png" not in (output_dir / "README.md").read_text()
