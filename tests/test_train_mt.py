"""examples/translation/train_mt.py end to end (2 CPU processes with gloo), resume, NaN stop, arguments; and the
library pieces it is built from (hf_gradinit.translation)."""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from conftest import load_script
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

import hf_gradinit.translation.evaluation as evaluation_module
import hf_gradinit.translation.training as training_module
from hf_gradinit import GradInitResult
from hf_gradinit.translation import (
    TARGET_TOKENIZER_DIR,
    average_checkpoints,
    build_translation_model,
    evaluate_translation,
    load_translation_corpus,
    tokenize_translation,
    train_joint_bpe,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "translation"
SCRIPT = EXAMPLES / "train_mt.py"
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
sys.path.insert(0, str(EXAMPLES))
import train_mt  # noqa: E402

# Tiny everything: 400 toy pairs, BPE 300, the `tiny` preset, few steps, 8 sentences of beam-2 BLEU.
TINY = [
    "--preset", "tiny", "--source", "toy", "--toy_size", "400", "--bpe_vocab_size", "300", "--max_tokens", "256",
    "--lr", "2e-3", "--lr_scheduler", "constant", "--log_every", "1", "--save_every", "2",
    "--max_eval_sentences", "8", "--num_beams", "2", "--eval_batch_sentences", "8",
]  # fmt: skip
GRADINIT = ["--gradinit", "--gradinit_iterations", "3", "--gradinit_grad_norm_bound", "inf"]
# fairseq's IWSLT'14 layout, two batches per update, validation (and best/) after every update.
SEPARATE = ["--shared_vocab", "false", "--gradient_accumulation_steps", "2", "--eval_every", "1", "--save_every", "1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_script(*args: str, processes: int = 1, timeout: int = 150) -> subprocess.CompletedProcess:
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_addr", "127.0.0.1",
                     "--master_port", str(_free_port())]  # fmt: skip
    return subprocess.run(
        [*launcher, str(SCRIPT), *args], env=ENV, capture_output=True, text=True, timeout=timeout, cwd=EXAMPLES
    )


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def train_losses(records: list[dict]) -> dict[int, float]:
    return {r["step"]: r["train_loss"] for r in records if "train_loss" in r}


def trainer_state(out: Path, step: int) -> dict:
    return json.loads((out / "checkpoints" / f"step_{step:08d}" / "trainer_state.json").read_text())


ACCUMULATE = ["--gradient_accumulation_steps", "2"]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    """4 updates of 2 batches each with GradInit on 2 processes, checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    completed = run_script(*TINY, *GRADINIT, *ACCUMULATE, "--max_steps", "4", "--output_dir", str(out), processes=2)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def separate_run(tmp_path_factory) -> Path:
    """GradInit, separate vocabularies, 2 batches per update, 3 updates, validation and a checkpoint after each."""
    out = tmp_path_factory.mktemp("separate") / "run"
    train_mt.main([*TINY, *GRADINIT, *SEPARATE, "--max_steps", "3", "--output_dir", str(out)])
    return out


# ---------------------------------------------------------------- end to end


def test_two_process_run_trains_evaluates_and_saves_a_loadable_model(two_process_run: Path) -> None:
    out = two_process_run
    records = metrics(out)
    start = records[0]
    assert start["event"] == "start" and start["world_size"] == 2  # not a silent single-process fallback
    assert start["gradinit_ran"] is True and start["init"].startswith("fairseq")
    assert GradInitResult.load(out / "gradinit_scales.json").world_size == 2  # GradInit averaged over both ranks
    assert sorted(train_losses(records)) == [1, 2, 3, 4]
    assert all(torch.isfinite(torch.tensor(loss)) for loss in train_losses(records).values())
    valid = next(r for r in records if "valid_bleu" in r)
    test = next(r for r in records if "test_bleu" in r)
    assert valid["step"] == test["step"] == 4 and valid["valid_bleu_sentences"] == 8 and 0 <= valid["valid_bleu"]
    assert test["ranks_identical"] is True  # both DDP replicas ended with the same weights (accumulating, no_sync)
    assert trainer_state(out, 4)["batch_in_epoch"] == 8  # each rank: 2 batches per update
    assert {p.name for p in (out / "checkpoints" / "step_00000004").iterdir()} >= {
        "model.safetensors", "optimizer.bin", "random_states_0.pkl", "random_states_1.pkl", "trainer_state.json",
    }  # fmt: skip
    assert (out / "training_curves.png").stat().st_size > 0 and (out / "gradinit_scales.png").stat().st_size > 0

    model = AutoModelForSeq2SeqLM.from_pretrained(out / "final").eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "final")
    assert model.config.gradinit is not None  # the init is recorded in the saved config
    assert model.generation_config.num_beams == 2
    inputs = tokenizer(["Der Hund sieht den Mann .", "Die Frau schläft ."], return_tensors="pt", padding=True)
    generated = model.generate(**inputs, max_new_tokens=12)
    assert generated.shape[0] == 2 and generated.shape[1] > 1
    assert all(isinstance(text, str) for text in tokenizer.batch_decode(generated, skip_special_tokens=True))


def test_resume_continues_from_the_saved_step_without_rerunning_gradinit(two_process_run: Path, tmp_path) -> None:
    resumed = tmp_path / "resumed"
    shutil.copytree(two_process_run, resumed)
    scales_before = (resumed / "gradinit_scales.json").read_text()
    arguments = [*TINY, *GRADINIT, *ACCUMULATE, "--max_steps", "6"]
    completed = run_script(*arguments, "--output_dir", str(resumed), "--resume", processes=2)
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "GradInit: not run again" in completed.stderr and "GradInit done" not in completed.stderr

    records = metrics(resumed)
    resume_at = next(i for i, r in enumerate(records) if r.get("event") == "resume")
    assert records[resume_at]["step"] == 4 and records[resume_at]["gradinit_ran"] is False
    assert records[resume_at]["world_size"] == 2
    assert sorted(train_losses(records[resume_at:])) == [5, 6]  # continues from step 4, not from 0
    assert (resumed / "gradinit_scales.json").read_text() == scales_before
    assert json.loads((resumed / "checkpoints" / "step_00000006" / "trainer_state.json").read_text())["step"] == 6
    assert AutoModelForSeq2SeqLM.from_pretrained(resumed / "final").config.gradinit is not None

    # Model, optimizer, schedule and data position all came back: steps 5-6 match an uninterrupted 6-step run.
    straight = tmp_path / "straight"
    completed = run_script(*arguments, "--output_dir", str(straight), processes=2)
    assert completed.returncode == 0, completed.stderr[-4000:]
    expected, got = train_losses(metrics(straight)), train_losses(records[resume_at:])
    for step in (5, 6):
        assert got[step] == pytest.approx(expected[step], rel=1e-5), step


def test_existing_checkpoints_without_resume_are_refused(two_process_run: Path) -> None:
    before = (two_process_run / "metrics.jsonl").read_text()
    completed = run_script(*TINY, "--max_steps", "4", "--output_dir", str(two_process_run))
    assert completed.returncode == 1
    assert "already holds checkpoints: pass --resume" in completed.stderr
    assert (two_process_run / "metrics.jsonl").read_text() == before


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path) -> None:
    # lr 1e30: the first update is finite but makes the weights ~1e30, so the second forward pass overflows to NaN.
    out = tmp_path / "nan"
    completed = run_script(*TINY, "--lr", "1e30", "--save_every", "1", "--max_steps", "5", "--output_dir", str(out))
    assert completed.returncode == 1
    last_good = out / "checkpoints" / "step_00000001"
    assert "at step 2: the run diverged and was stopped" in completed.stderr
    assert f"the last good checkpoint is {last_good}" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_00000001"]
    assert json.loads((last_good / "trainer_state.json").read_text())["step"] == 1
    weights = load_file(str(last_good / "model.safetensors"))
    assert all(torch.isfinite(tensor).all() for tensor in weights.values())
    assert metrics(out)[-1]["event"] == "diverged" and not (out / "final").exists()


# ---------------------------------------------------------------- arguments


def test_help_lists_the_arguments() -> None:
    completed = run_script("--help")
    assert completed.returncode == 0, completed.stderr
    for argument in ("--config", "--preset", "--init", "--source", "--max_tokens", "--gradinit",
                     "--gradinit_iterations", "--gradinit_target_lr", "--max_eval_sentences", "--resume",
                     "--shared_vocab", "--gradient_accumulation_steps", "--eval_every"):  # fmt: skip
        assert argument in completed.stdout, argument
    help_text = " ".join(completed.stdout.split())
    assert "{fairseq,hf,tfixup,deepnet}" in help_text and "variants on this Post-LN model" in help_text
    assert "fairseq sums the token losses of the whole update" in help_text  # how accumulation normalises
    assert "not comparable with the GradInit paper's ~35-36 (tokenised BLEU" in help_text


def test_invalid_argument_value_exits_with_a_clear_message(tmp_path) -> None:
    completed = run_script("--output_dir", str(tmp_path), "--preset", "huge")
    assert completed.returncode == 1
    assert "train_mt.py: error: --preset must be one of" in completed.stderr and "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "--output_dir is required"),
        (["--output_dir", "x", "--lr_scheduler", "cosine"], "--lr_scheduler must be one of"),
        (["--output_dir", "x", "--max_steps", "0"], "--max_steps must be at least 1"),
        (["--output_dir", "x", "--average_last", "3", "--keep_checkpoints", "2"], "--keep_checkpoints >= 3"),
        (["--output_dir", "x", "--toy_size", "2"], "toy_size must be at least 3"),
        (["--output_dir", "x", "--gradinit", "--gradinit_iterations", "0"], "iterations must be a positive integer"),
        (["--output_dir", "x", "--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be at least"),
        (["--output_dir", "x", "--eval_every", "-1"], "--eval_every must be >= 0"),
    ],
)
def test_bad_arguments_are_rejected_before_anything_runs(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        train_mt.parse_arguments(argv)


def test_yaml_config_gives_defaults_that_the_command_line_overrides(tmp_path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("output_dir: from_yaml\nlr: 0.002\nmax_steps: 70\ngradinit: true\ngradinit_iterations: 9\n")
    model_args, data_args, args, gradinit_args = train_mt.parse_arguments(["--config", str(config), "--lr", "3e-4"])
    assert (args.output_dir, args.lr, args.max_steps) == ("from_yaml", 3e-4, 70)
    assert gradinit_args.gradinit and gradinit_args.gradinit_config().iterations == 9
    assert model_args.init == "fairseq" and data_args.source == "auto"

    config.write_text("output_dir: x\nlearning_rate: 0.1\n")
    with pytest.raises(SystemExit):
        train_mt.parse_arguments(["--config", str(config)])


def test_bundled_yaml_configs_parse() -> None:
    configs = sorted(EXAMPLES.glob("*.yaml"))
    assert configs
    for config in configs:
        train_mt.parse_arguments(["--config", str(config), "--output_dir", "x"])


# ---------------------------------------------------------------- library pieces


def test_build_translation_model_takes_the_vocabulary_from_the_tokenizer() -> None:
    tokenizer = train_joint_bpe(["der Hund schläft", "the dog sleeps", "die Katze", "the cat"] * 5, vocab_size=60)
    fairseq = build_translation_model("tiny", tokenizer, init="fairseq")
    hf = build_translation_model("tiny", tokenizer, init="hf")
    config = fairseq.config
    assert config.vocab_size == config.decoder_vocab_size == len(tokenizer)
    assert (config.pad_token_id, config.eos_token_id) == (tokenizer.pad_token_id, tokenizer.eos_token_id)
    assert fairseq.model.encoder.embed_tokens.weight is fairseq.lm_head.weight  # one joint, tied vocabulary
    # fairseq: embeddings N(0, d^-1/2) = std 0.18 at d 32; Hugging Face: N(0, 0.02).
    assert fairseq.model.shared.weight.std() > 0.1 > 0.03 > hf.model.shared.weight.std()
    with pytest.raises(ValueError, match="init must be one of"):
        build_translation_model("tiny", tokenizer, init="xavier")


def test_average_checkpoints_loads_the_mean_and_keeps_ties(two_process_run: Path) -> None:
    model = AutoModelForSeq2SeqLM.from_pretrained(two_process_run / "final")
    checkpoints = [two_process_run / "checkpoints" / f"step_0000000{step}" for step in (2, 4)]
    states = [load_file(str(path / "model.safetensors")) for path in checkpoints]
    average_checkpoints(model, checkpoints)
    shared = model.model.shared.weight
    torch.testing.assert_close(shared, (states[0]["model.shared.weight"] + states[1]["model.shared.weight"]) / 2)
    assert model.lm_head.weight is shared
    assert not torch.equal(states[0]["model.shared.weight"], states[1]["model.shared.weight"])


# ---------------------------------------------------------------- publishing


def test_push_offline_fails_clearly_and_leaves_a_complete_final_checkpoint(tmp_path) -> None:
    out = tmp_path / "run"
    completed = run_script(*TINY, *GRADINIT, "--max_steps", "2", "--output_dir", str(out), "--push_to_hub", "me/mt")
    assert completed.returncode == 1
    assert "Could not push to the Hub repo 'me/mt'" in completed.stderr
    assert f"The checkpoint is complete at {out / 'final'}" in completed.stderr
    card = (out / "final" / "README.md").read_text()
    assert "## GradInit initialisation" in card and "test_bleu" in card and "from scratch" in card
    assert GradInitResult.load(out / "final" / "gradinit_scales.json").scales == (
        GradInitResult.load(out / "gradinit_scales.json").scales
    )
    assert AutoModelForSeq2SeqLM.from_pretrained(out / "final").config.gradinit is not None


def test_push_uploads_the_final_checkpoint_through_the_hub_api(tmp_path, monkeypatch) -> None:
    from test_hub import FakeHfApi

    api = FakeHfApi()
    monkeypatch.setattr("hf_gradinit.integrations.hub.HfApi", lambda: api)
    out = tmp_path / "run"
    train_mt.main([*TINY, *GRADINIT, "--max_steps", "2", "--output_dir", str(out), "--push_to_hub", "me/mt"])
    assert [name for name, _, _ in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[1][2]["folder_path"] == str(out / "final") and api.calls[1][2]["repo_id"] == "me/mt"
    assert {"README.md", "config.json", "model.safetensors", "gradinit_scales.json"} <= set(api.uploaded)


def test_push_needs_a_gradinit_model(tmp_path) -> None:
    with pytest.raises(ValueError, match="--push_to_hub publishes GradInit-initialised models"):
        train_mt.main([*TINY, "--output_dir", str(tmp_path / "run"), "--push_to_hub", "me/mt"])


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (["--weight_decay", "0.01"], {"target_optimizer": "adamw", "target_lr": 4e-3, "target_weight_decay": 0.01}),
        (
            ["--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05"],
            {"target_optimizer": "sgd", "target_lr": 0.05, "normalize_sgd_step": True},
        ),
    ],
)
def test_gradinit_follows_the_runs_optimizer(tmp_path: Path, run: list[str], expected: dict) -> None:
    """The same rule as GradInitTrainer and `hf-gradinit init`: optimizer, eta (2 x lr for Adam), decay, length."""
    argv = [*TINY, "--gradinit", "--max_steps", "4", "--output_dir", str(tmp_path / "run"), *run]
    train_mt.main(argv)
    config = GradInitResult.load(tmp_path / "run" / "gradinit_scales.json").config
    assert {name: getattr(config, name) for name in expected} == pytest.approx(expected)
    assert config.iterations == 10  # scaled to the run: max(10, max_steps / 2)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--optimizer", "adam", "--weight_decay", "0.1"], "--optimizer adam takes no --weight_decay"),
        (["--momentum", "0.9"], "--momentum applies to --optimizer sgd only"),
        (["--adam_betas", "0.9", "1.0"], "--adam_betas must be two numbers in"),
    ],
)
def test_optimizer_arguments_are_checked(tmp_path: Path, arguments: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        train_mt.main([*TINY, "--output_dir", str(tmp_path / "run"), *arguments])


def test_unknown_init_is_refused_from_yaml_or_python_too() -> None:
    with pytest.raises(ValueError, match="--init must be one of fairseq, hf, tfixup, deepnet, got 'fixup'"):
        train_mt.ModelArguments(init="fixup")


# ---------------------------------------------------------------- separate vocabularies, best model


def test_separate_vocabularies_train_evaluate_and_save_both_tokenizers(separate_run: Path) -> None:
    out = separate_run
    start = metrics(out)[0]
    model = AutoModelForSeq2SeqLM.from_pretrained(out / "final").eval()
    source = AutoTokenizer.from_pretrained(out / "final")
    target = AutoTokenizer.from_pretrained(out / "final", subfolder=TARGET_TOKENIZER_DIR)
    assert (start["vocab_size"], start["target_vocab_size"]) == (len(source), len(target)) and len(source) != len(
        target
    )
    assert (model.config.vocab_size, model.config.decoder_vocab_size) == (len(source), len(target))
    encoder, decoder = model.get_encoder().embed_tokens.weight, model.get_decoder().embed_tokens.weight
    assert encoder.shape[0] == len(source) and decoder.shape[0] == len(target)
    assert model.lm_head.weight is decoder and encoder is not decoder  # decoder in/out tied, encoder separate
    for directory in ("tokenizer", "best"):  # the same pair everywhere a tokenizer is saved
        assert len(AutoTokenizer.from_pretrained(out / directory, subfolder=TARGET_TOKENIZER_DIR)) == len(target)
    assert (
        f'AutoTokenizer.from_pretrained("run", subfolder="{TARGET_TOKENIZER_DIR}")'
        in (out / "final" / "README.md").read_text()
    )
    assert model.config.gradinit is not None  # GradInit ran on the untied encoder and decoder embeddings

    corpus, _ = load_translation_corpus("toy", toy_size=400)
    pair = corpus["train"][0]["translation"]
    for side, tokenizer in (("de", source), ("en", target)):
        ids = tokenizer(pair[side])["input_ids"]
        assert tokenizer.decode(ids, skip_special_tokens=True) == pair[side]
    generated = model.generate(**source([pair["de"]], return_tensors="pt"), max_new_tokens=8, num_beams=1)
    assert int(generated.max()) < len(target)  # translations are target ids, decoded with the target tokenizer
    assert isinstance(target.decode(generated[0], skip_special_tokens=True), str)

    records = metrics(out)
    valid = [r for r in records if "valid_bleu" in r]
    assert [r["step"] for r in valid] == [1, 2, 3] and all(r["valid_bleu"] >= 0 for r in valid)
    final = valid[-1]
    assert final["valid_loss_dropout"] > 0 and "valid_loss_dropout" not in valid[0]  # at the final validation only
    assert trainer_state(out, 3)["batch_in_epoch"] == 6  # 2 batches per update


def test_best_validation_bleu_model_is_kept_and_tested(tmp_path: Path, monkeypatch) -> None:
    """Validation BLEU 1, 3, 3 (scripted): best/ holds the step-2 model (a tie keeps the earlier one), and the end
    reports the test scores of the final model and of that one."""
    scripted = iter([1.0, 3.0, 3.0])
    real = train_mt.evaluate_translation

    def evaluate(*args, **kwargs) -> dict:
        scores = real(*args, **kwargs)
        return {**scores, "bleu": next(scripted, scores["bleu"])}  # the three validations, then the real test BLEU

    monkeypatch.setattr(train_mt, "evaluate_translation", evaluate)
    out = tmp_path / "run"
    summary = train_mt.main(
        [*TINY, "--eval_every", "1", "--save_every", "1", "--max_steps", "3", "--output_dir", str(out)]
    )
    records = metrics(out)
    assert [r["best_step"] for r in records if r.get("event") == "best"] == [1, 2]
    assert json.loads((out / "best" / "best_validation.json").read_text())["step"] == 2 == summary["best_step"]
    best_weights = load_file(str(out / "best" / "model.safetensors"))
    checkpoint = load_file(str(out / "checkpoints" / "step_00000002" / "model.safetensors"))
    assert best_weights.keys() & checkpoint.keys()
    assert all(torch.equal(best_weights[name], checkpoint[name]) for name in best_weights.keys() & checkpoint.keys())
    assert AutoTokenizer.from_pretrained(out / "best")("Der Hund .")["input_ids"]

    final_test = next(r for r in records if "test_loss" in r)
    best_test = records[-1]
    assert best_test["best_step"] == 2 and best_test["best_test_loss"] != final_test["test_loss"]
    model = AutoModelForSeq2SeqLM.from_pretrained(out / "best")
    corpus, _ = load_translation_corpus("toy", toy_size=400)
    tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")
    tokens = tokenize_translation(corpus, tokenizer)["test"]
    expected = real(model, tokens, [p["en"] for p in corpus["test"]["translation"]], tokenizer, label_smoothing=0.1,
                    bleu_sentences=8, num_beams=2, batch_sentences=8)  # fmt: skip
    assert best_test["best_test_loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert best_test["best_test_bleu"] == pytest.approx(expected["bleu"])


def test_resume_with_separate_vocabularies_and_accumulation_repeats_the_run(separate_run: Path, tmp_path) -> None:
    """Interrupted after update 2 (checkpoint 3 lost): the resumed run repeats update 3 and the final model exactly."""
    resumed = tmp_path / "resumed"
    shutil.copytree(separate_run, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step_00000003")
    train_mt.main([*TINY, *GRADINIT, *SEPARATE, "--max_steps", "3", "--output_dir", str(resumed), "--resume"])
    records = metrics(resumed)
    resume_at = next(i for i, r in enumerate(records) if r.get("event") == "resume")
    assert records[resume_at]["step"] == 2
    assert train_losses(records[resume_at:]) == {3: train_losses(metrics(separate_run))[3]}
    expected, got = (load_file(str(run / "final" / "model.safetensors")) for run in (separate_run, resumed))
    assert all(torch.equal(got[name], expected[name]) for name in expected)
    summary = records[-1]
    assert summary["best_step"] == metrics(separate_run)[-1]["best_step"]


def test_loading_a_model_with_the_other_vocabulary_layout_is_refused(separate_run: Path, tmp_path) -> None:
    argv = [*TINY, "--max_steps", "1", "--output_dir", str(tmp_path / "run")]
    with pytest.raises(ValueError, match="has separate vocabularies: pass --shared_vocab false"):
        train_mt.main([*argv, "--model_name_or_path", str(separate_run / "final")])


def test_a_separate_vocabulary_checkpoint_of_hf_gradinit_init_trains_here(tmp_path: Path) -> None:
    """`hf-gradinit init --shared_vocab false` (what the sweep's --gradinit_once runs for fairseq's IWSLT'14 layout)
    writes both tokenizers where train_mt reads them."""
    from hf_gradinit.integrations.cli import main as hf_gradinit_cli

    checkpoint = tmp_path / "init"
    data = ["--source", "toy", "--toy_size", "400", "--bpe_vocab_size", "300", "--max_tokens", "256"]
    assert hf_gradinit_cli(["init", "--output_dir", str(checkpoint), "--model", "tiny", *data, "--shared_vocab",
                            "false", "--max_steps", "10", "--gradinit_iterations", "3"]) == 0  # fmt: skip
    source = AutoTokenizer.from_pretrained(checkpoint)
    target = AutoTokenizer.from_pretrained(checkpoint, subfolder=TARGET_TOKENIZER_DIR)
    model = AutoModelForSeq2SeqLM.from_pretrained(checkpoint)
    assert len(source) != len(target) and not model.config.share_encoder_decoder_embeddings
    assert (model.config.vocab_size, model.config.decoder_vocab_size) == (len(source), len(target))
    assert f'"init", subfolder="{TARGET_TOKENIZER_DIR}")' in (checkpoint / "README.md").read_text()  # the card says so

    out = tmp_path / "run"
    argv = [*TINY, "--shared_vocab", "false", "--max_steps", "1", "--output_dir", str(out)]
    train_mt.main([*argv, "--model_name_or_path", str(checkpoint)])
    assert (metrics(out)[0]["vocab_size"], metrics(out)[0]["target_vocab_size"]) == (len(source), len(target))
    trained_target = AutoTokenizer.from_pretrained(out / "final", subfolder=TARGET_TOKENIZER_DIR)
    assert trained_target.get_vocab() == target.get_vocab()


# ---------------------------------------------------------------- accumulation, logging, mixed precision


def test_gradient_accumulation_takes_one_update_per_n_batches(tmp_path: Path, caplog) -> None:
    linear = ["--lr_scheduler", "linear"]
    with caplog.at_level(logging.INFO, logger="train_mt"):
        train_mt.main([*TINY, *linear, *ACCUMULATE, "--max_steps", "3", "--output_dir", str(tmp_path / "n2")])
    train_mt.main([*TINY, *linear, "--max_steps", "6", "--output_dir", str(tmp_path / "n1")])
    doubled = ["--max_tokens", "512", "--clip_norm", "1e-4"]
    train_mt.main([*TINY, *linear, *doubled, "--max_steps", "3", "--output_dir", str(tmp_path / "doubled")])
    logged = {run: [r for r in metrics(tmp_path / run) if "train_loss" in r] for run in ("n2", "n1", "doubled")}

    # Three updates from six batches, the schedule stepped once per update: as the run with doubled batches.
    assert [r["step"] for r in logged["n2"]] == [r["step"] for r in logged["doubled"]] == [1, 2, 3]
    assert (
        [r["lr"] for r in logged["n2"]]
        == [r["lr"] for r in logged["doubled"]]
        == pytest.approx([2e-3 * 2 / 3, 2e-3 / 3, 0])
    )
    assert trainer_state(tmp_path / "n2", 2)["batch_in_epoch"] == 4
    assert trainer_state(tmp_path / "doubled", 2)["batch_in_epoch"] == 2
    # An update's target tokens (wpb) are those of its two batches: batches 2k-1 and 2k of the same order.
    single = [r["wpb"] for r in logged["n1"]]
    assert [r["wpb"] for r in logged["n2"]] == [single[0] + single[1], single[2] + single[3], single[4] + single[5]]
    for record in logged["n2"] + logged["doubled"]:
        assert record["wps"] > 0 and record["gnorm"] > 0
    assert all(r["gnorm"] > 1e-4 for r in logged["doubled"])  # measured before clipping to 1e-4
    assert "| gnorm " in caplog.text and "| wps " in caplog.text and "| wpb " in caplog.text


def test_an_update_skipped_by_the_loss_scaler_does_not_count(tmp_path: Path, monkeypatch) -> None:
    """fp16's GradScaler skips an update whose gradients overflow: the schedule waits, --max_steps counts updates."""
    skips = itertools.chain([True], itertools.repeat(False))
    monkeypatch.setattr(Accelerator, "optimizer_step_was_skipped", property(lambda self: next(skips)))
    out = tmp_path / "run"
    summary = train_mt.main([*TINY, "--lr_scheduler", "linear", "--max_steps", "3", "--output_dir", str(out)])
    records = metrics(out)
    assert [r for r in records if r.get("event") == "skipped_update"] == [
        {"event": "skipped_update", "step": 0, "skipped_updates": 1}
    ]
    assert [r["lr"] for r in records if "train_loss" in r] == pytest.approx([2e-3 * 2 / 3, 2e-3 / 3, 0])
    assert trainer_state(out, 2)["batch_in_epoch"] == 3 and summary["skipped_updates"] == 1


@pytest.fixture
def fresh_accelerator_state():
    """An in-process run with another mixed precision needs a new accelerate state (a process-wide singleton)."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize(("precision", "multiple"), [("no", None), ("bf16", 8)])
def test_batches_are_padded_to_a_multiple_of_8_under_mixed_precision(
    tmp_path: Path, monkeypatch, fresh_accelerator_state, precision: str, multiple: int | None
) -> None:
    seen: list[tuple[int | None, tuple[int, ...]]] = []

    def recording(original):
        def collator(tokenizer, pad_to_multiple_of=None):
            collate = original(tokenizer, pad_to_multiple_of)

            def padded(features):
                batch = collate(features)
                seen.append((pad_to_multiple_of, tuple(batch["input_ids"].shape)))
                return batch

            return padded

        return collator

    for module in (training_module, evaluation_module):  # training, GradInit and evaluation batches
        monkeypatch.setattr(module, "translation_collator", recording(module.translation_collator))
    argv = [*TINY, *GRADINIT, "--max_steps", "1", "--mixed_precision", precision, "--output_dir", str(tmp_path / "r")]
    train_mt.main(argv)
    assert seen and {requested for requested, _ in seen} == {multiple}
    if multiple:
        assert all(shape[1] % multiple == 0 for _, shape in seen)


def test_evaluation_loss_with_dropout_is_seeded_and_leaves_the_rng_alone() -> None:
    corpus, _ = load_translation_corpus("toy", toy_size=60)
    tokenizer = train_joint_bpe(corpus, vocab_size=120)
    tokens = tokenize_translation(corpus, tokenizer)["validation"]
    references = [pair["en"] for pair in corpus["validation"]["translation"]]
    model = build_translation_model("tiny", tokenizer, dropout=0.3).train()

    def scores(**kwargs) -> dict:
        return evaluate_translation(model, tokens, references, tokenizer, num_beams=1, bleu_sentences=2, **kwargs)

    state = torch.get_rng_state()
    first, again = scores(dropout_loss=True), scores(dropout_loss=True)
    assert torch.equal(torch.get_rng_state(), state) and model.training  # caller's RNG and mode untouched
    assert first["loss_dropout"] == again["loss_dropout"] != first["loss"]  # seeded; dropout changes the loss
    assert scores(dropout_loss=True, dropout_seed=1)["loss_dropout"] != first["loss_dropout"]
    assert "loss_dropout" not in scores() and scores()["loss"] == first["loss"]


def test_fsdp2_launch_shards_runs_gradinit_on_the_shards_and_resumes_exactly(tmp_path: Path) -> None:
    """`--fsdp2` on 2 CPU processes: GradInit on each rank's shards (finite-difference constraint steps), training,
    distributed checkpoints that resume to the same losses and weights, and a final model that loads unsharded."""
    common = [*TINY, "--fsdp2", "--gradinit", "--gradinit_iterations", "3", "--gradinit_grad_norm_bound", "1"]
    full, part = tmp_path / "full", tmp_path / "part"
    for args in (
        ["--max_steps", "4", "--output_dir", str(full)],
        ["--max_steps", "2", "--output_dir", str(part)],
        ["--max_steps", "4", "--output_dir", str(part), "--resume"],
    ):
        completed = run_script(*common, *args, processes=2)
        assert completed.returncode == 0, completed.stderr[-4000:]
    result = GradInitResult.load(full / "gradinit_scales.json")
    assert result.world_size == 2 and result.config.constraint_hvp == "finite_difference"
    assert result.constraint_steps == 3
    assert metrics(full)[0]["world_size"] == 2
    assert (part / "checkpoints" / "step_00000002" / "sharded").is_dir()
    full_losses, resumed_losses = train_losses(metrics(full)), train_losses(metrics(part))
    assert resumed_losses[3] == full_losses[3] and resumed_losses[4] == full_losses[4]
    models = [AutoModelForSeq2SeqLM.from_pretrained(run / "final") for run in (full, part)]
    assert models[0].config.gradinit is not None
    for (name, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values()):
        assert torch.equal(a, b), name


def test_quickstart_translates_with_a_saved_model(two_process_run: Path) -> None:
    """The quickstart prints test translations of each run's final model."""
    import quickstart

    translations = quickstart.translate(two_process_run / "final", ["Der Hund sieht den Mann .", "Die Frau schläft ."])
    assert len(translations) == 2 and all(isinstance(text, str) for text in translations)


def test_quickstart_setting_is_the_grids_pick() -> None:
    """The quickstart runs the setting that plan line 7's rule picks from its committed grid (docs/results/README.md):
    a rate where every `hf+gradinit` run translates (valid BLEU >= 10) and no `hf` run does, the highest mean BLEU."""
    import quickstart

    runs = [json.loads(path.read_text()) for path in (RESULTS / "toy-small-400-1k" / "runs").glob("*.json")]
    bleu: dict[tuple[str, float], list[float]] = {}
    for run in runs:
        bleu.setdefault((run["arm"], run["lr"]), []).append(run["valid_bleu"])
    rates = {lr for _, lr in bleu}
    with_gradinit, alone = f"{quickstart.INIT}+gradinit", quickstart.INIT
    qualifying = [lr for lr in rates if min(bleu[with_gradinit, lr]) >= 10 and max(bleu[alone, lr]) < 10]
    assert len(runs) == 18 and qualifying
    assert quickstart.LEARNING_RATE == max(qualifying, key=lambda lr: sum(bleu[with_gradinit, lr]))
    assert all(f"--max_tokens {quickstart.MAX_TOKENS} " in run["command"] for run in runs)
    assert all(f"--max_steps {quickstart.STEPS} " in run["command"] for run in runs)


def test_dropout_gap_scores_both_splits_in_both_modes(two_process_run: Path) -> None:
    losses = load_script("dropout_gap").main([str(two_process_run / "final"), "--source", "toy", "--sentences", "16"])
    assert set(losses) == {"train_eval_mode", "train_dropout_on", "validation_eval_mode", "validation_dropout_on"}
    assert all(math.isfinite(value) for value in losses.values())
    assert losses["train_eval_mode"] != losses["train_dropout_on"]  # dropout 0.1: the modes differ


def test_source_ablation_keeps_each_target_and_gives_it_another_source() -> None:
    pairs = [{"de": f"q{i}", "en": f"t{i}"} for i in range(3)]
    source_ablation = load_script("source_ablation")
    rolled = source_ablation.with_other_sources(pairs)
    assert rolled == [{"de": "q1", "en": "t0"}, {"de": "q2", "en": "t1"}, {"de": "q0", "en": "t2"}]
    with pytest.raises(ValueError, match="at least 2 pairs"):
        source_ablation.with_other_sources(pairs[:1])


@pytest.mark.parametrize("layout", ["shared", "separate"])
def test_source_ablation_scores_own_and_other_sources(layout: str, request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue("two_process_run" if layout == "shared" else "separate_run")
    shared = "true" if layout == "shared" else "false"
    argv = [str(run / "final"), "--source", "toy", "--sentences", "16", "--shared_vocab", shared]
    losses = load_script("source_ablation").main(argv)
    assert all(math.isfinite(value) for value in losses.values())
    assert losses["another_source"] != losses["own_source"]  # the sources were swapped: the model sees other input
    assert losses["difference"] == pytest.approx(losses["another_source"] - losses["own_source"])
