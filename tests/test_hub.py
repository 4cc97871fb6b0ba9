"""hf_gradinit.integrations (checkpoint, hub, init_checkpoint): GradInit checkpoints written atomically, loadable
with stock transformers, pushed to the Hub."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer, MarianConfig, set_seed

from hf_gradinit import (
    GradInitArguments,
    GradInitResult,
    HubPushError,
    init_checkpoint,
    load_gradinit_result,
    push_checkpoint,
    save_gradinit_checkpoint,
)
from hf_gradinit.integrations.checkpoint import OutputDirectoryExistsError, format_scale_table
from hf_gradinit.integrations.init_checkpoint import InitCheckpointArguments
from hf_gradinit.translation import TranslationDataArguments, build_translation_model

REPO = "someone/tiny-gradinit"
EXPECTED_FILES = {
    "README.md",
    "config.json",
    "generation_config.json",
    "gradinit_scales.json",
    "gradinit_scales.png",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
}
# Tiny everything: 200 toy pairs, a 200-token BPE, the `tiny` preset, 3 GradInit iterations.
TINY_DATA = dict(source="toy", toy_size=200)
TINY_INIT = dict(model="tiny", bpe_vocab_size=200, max_tokens=256, max_steps=10)


class FakeHfApi:
    """Records what `push_checkpoint` asks of the Hub; `upload_folder` keeps the bytes it would upload."""

    def __init__(self, fail_with: BaseException | None = None) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self.uploaded: dict[str, bytes] = {}
        self.fail_with = fail_with

    def _record(self, name: str, args: tuple, kwargs: dict) -> None:
        self.calls.append((name, args, kwargs))
        if self.fail_with is not None:
            raise self.fail_with

    def create_repo(self, *args, **kwargs):
        self._record("create_repo", args, kwargs)
        return f"https://huggingface.co/{args[0]}"

    def create_branch(self, *args, **kwargs):
        self._record("create_branch", args, kwargs)

    def create_commit(self, *args, **kwargs):
        self._record("create_commit", args, kwargs)

    def upload_folder(self, *args, **kwargs):
        self._record("upload_folder", args, kwargs)
        folder = Path(kwargs["folder_path"])
        self.uploaded = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        return SimpleNamespace(commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/0123abcd")


def tree_digest(path: Path) -> dict[str, str]:
    """Every file under `path` (hidden ones too) with the hash of its bytes."""
    return {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in path.rglob("*")
        if p.is_file()
    }


def tiny_args(output_dir: Path, **overrides) -> tuple[InitCheckpointArguments, TranslationDataArguments, object]:
    args = InitCheckpointArguments(output_dir=str(output_dir), **{**TINY_INIT, **overrides})
    gradinit = GradInitArguments(gradinit=True, gradinit_iterations=3)
    return args, TranslationDataArguments(**TINY_DATA), gradinit


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """One `init` with a push through a fake HfApi: (output, api)."""
    torch.manual_seed(0)
    api = FakeHfApi()
    args, data, gradinit = tiny_args(tmp_path_factory.mktemp("init") / "tiny-gradinit", push_to_hub=REPO)
    output = init_checkpoint(args, data, gradinit, api=api, progress_bar=False)
    return output, api


def assert_same_tensors(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    assert set(expected) == set(actual)
    different = [name for name in expected if not torch.equal(expected[name], actual[name])]
    assert not different, different


# -- the written directory -----------------------------------------------------------------------------------------


def test_checkpoint_holds_exactly_the_expected_files(pushed) -> None:
    output, _ = pushed
    assert set(tree_digest(output.path)) == EXPECTED_FILES
    assert not [p.name for p in output.path.parent.iterdir() if p.name.startswith(".")]  # no staging left over


def test_checkpoint_loads_with_stock_auto_classes_bit_identical(pushed) -> None:
    output, _ = pushed
    expected = {name: tensor.detach() for name, tensor in output.model.state_dict().items()}
    seq2seq = AutoModelForSeq2SeqLM.from_pretrained(output.path)
    assert type(seq2seq).__name__ == "MarianMTModel"
    assert_same_tensors(expected, seq2seq.state_dict())
    base = AutoModel.from_pretrained(output.path)  # MarianModel: the same weights without the output projection
    assert_same_tensors({k.removeprefix("model."): v for k, v in expected.items() if k.startswith("model.")},
                        base.state_dict())  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(output.path)
    sentence = "der Hund sieht die Katze"
    assert tokenizer(sentence).input_ids == output.tokenizer(sentence).input_ids
    assert len(tokenizer) == seq2seq.config.vocab_size == 200


def test_gradinit_record_and_scales_round_trip(pushed) -> None:
    output, _ = pushed
    result = output.result
    loaded = AutoModelForSeq2SeqLM.from_pretrained(output.path)
    assert loaded.config.gradinit == json.loads(json.dumps(result.to_dict(with_history=False)))
    from_config = GradInitResult.from_model(loaded)
    assert from_config.scales == result.scales and from_config.kinds == result.kinds
    assert from_config.config == result.config and from_config.summary() == result.summary()
    saved = GradInitResult.load(output.path / "gradinit_scales.json")
    assert saved.scales == result.scales and saved.config == result.config
    assert saved.history == result.history and len(saved.history) == 3
    assert result.config.iterations == 3 and result.config.target_lr == 1e-3  # --gradinit_* wins, eta = 2 x lr
    assert any(abs(scale - 1.0) > 1e-4 for scale in result.scales.values())  # GradInit did move the scales


def test_reapplying_saved_scales_to_a_fresh_model_reproduces_the_weights(pushed) -> None:
    output, _ = pushed
    loaded = AutoModelForSeq2SeqLM.from_pretrained(output.path)
    tokenizer = AutoTokenizer.from_pretrained(output.path)
    set_seed(0)  # --seed 0: the model is built right after seeding
    fresh = build_translation_model("tiny", tokenizer, init="fairseq")
    name = next(iter(output.result.scales))
    assert not torch.equal(fresh.state_dict()[name], loaded.state_dict()[name])  # before: unscaled
    GradInitResult.load(output.path / "gradinit_scales.json").apply_to(fresh)
    assert_same_tensors(loaded.state_dict(), fresh.state_dict())
    assert GradInitResult.from_model(fresh).scales == output.result.scales


def test_model_card_describes_the_run(pushed) -> None:
    output, _ = pushed
    card = ModelCard.load(output.path / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "translation"
    assert card.data.tags[0] == "gradinit" and card.data.language == ["de", "en"]
    text = card.text
    assert f"# {REPO}" in text and "has **not been trained**" in text and "`MarianMTModel`" in text
    assert f'AutoModelForSeq2SeqLM.from_pretrained("{REPO}")' in text and "AutoTokenizer" in text
    assert "## How to train without warmup" in text and "warmup_steps=0" in text
    assert "freeze_sinusoidal_positions_" in text  # Marian: re-freeze the position tables after loading
    assert "![Learned GradInit scale of every parameter block](gradinit_scales.png)" in text
    assert "generated toy German-English grammar" in text and "seed 0" in text and "- Seed: 0" in text
    assert "| `target_lr` | 0.001 |" in text and "2102.08098" in text and "@inproceedings{zhu2021gradinit" in text
    for name in output.result.scales:
        assert f"| `{name}` |" in text


# -- pushing -------------------------------------------------------------------------------------------------------


def test_push_through_an_injected_api_uploads_the_checkpoint(pushed, tmp_path: Path) -> None:
    output, api = pushed
    assert [name for name, _, _ in api.calls] == ["create_repo", "upload_folder"]
    _, args, kwargs = api.calls[0]
    assert args == (REPO,) and kwargs == {"private": False, "exist_ok": True, "repo_type": "model"}
    upload = api.calls[1][2]
    assert upload["repo_id"] == REPO and upload["folder_path"] == str(output.path) and upload["revision"] is None
    assert "GradInit" in upload["commit_message"]
    assert set(api.uploaded) == EXPECTED_FILES
    assert output.commit_url == f"https://huggingface.co/{REPO}/commit/0123abcd"
    (tmp_path / "README.md").write_bytes(api.uploaded["README.md"])
    card = ModelCard.load(tmp_path / "README.md")  # the front matter parses back
    assert card.data.library_name == "transformers" and "gradinit" in card.data.tags
    assert card.data.pipeline_tag == "translation" and card.data.language == ["de", "en"]
    assert api.uploaded["model.safetensors"] == (output.path / "model.safetensors").read_bytes()


def test_push_to_a_branch_of_a_private_repo_creates_the_branch_first(pushed) -> None:
    output, _ = pushed
    api = FakeHfApi()
    url = push_checkpoint(output.path, "org/other", private=True, revision="gradinit-init", api=api, commit_message="m")
    assert [name for name, _, _ in api.calls] == ["create_repo", "create_branch", "upload_folder"]
    assert api.calls[0][2]["private"] is True
    assert api.calls[1][1] == ("org/other",)
    assert api.calls[1][2] == {"branch": "gradinit-init", "exist_ok": True, "repo_type": "model"}
    assert api.calls[2][2]["revision"] == "gradinit-init" and api.calls[2][2]["commit_message"] == "m"
    assert url.startswith("https://huggingface.co/org/other/commit/")


def test_offline_push_without_an_api_fails_clearly_and_leaves_the_checkpoint(pushed, monkeypatch) -> None:
    output, _ = pushed
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    before = tree_digest(output.path)
    with pytest.raises(HubPushError) as caught:
        push_checkpoint(output.path, REPO)
    message = str(caught.value)
    assert "offline mode" in message and f"complete at {output.path}" in message
    assert f"hf-gradinit push {output.path} {REPO}" in message
    assert isinstance(caught.value.__cause__, huggingface_hub.errors.OfflineModeIsEnabled)
    assert tree_digest(output.path) == before


@pytest.mark.parametrize(
    "error", [ConnectionError("Connection refused"), huggingface_hub.errors.LocalTokenNotFoundError("no token")]
)
def test_unreachable_hub_or_missing_login_is_a_push_error(pushed, error) -> None:
    output, _ = pushed
    with pytest.raises(HubPushError, match=f"complete at {output.path}"):
        push_checkpoint(output.path, REPO, api=FakeHfApi(fail_with=error))


def test_push_refuses_an_incomplete_directory(pushed, tmp_path: Path) -> None:
    output, _ = pushed
    partial = tmp_path / "partial"
    shutil.copytree(output.path, partial)
    (partial / "model.safetensors").unlink()
    api = FakeHfApi()
    with pytest.raises(ValueError, match="not a complete checkpoint: missing model.safetensors"):
        push_checkpoint(partial, REPO, api=api)
    assert api.calls == []


# -- atomic writes and overwriting ---------------------------------------------------------------------------------


def test_interrupted_save_leaves_no_checkpoint_and_no_staging(pushed, tmp_path: Path, monkeypatch) -> None:
    output, _ = pushed
    written = []

    def interrupt(result, path):  # weights and config are written by then: the point of no return is later
        written.extend(p.name for p in Path(path).parent.iterdir())
        raise KeyboardInterrupt

    monkeypatch.setattr("hf_gradinit.integrations.checkpoint.plot_scales_if_possible", interrupt)
    target = tmp_path / "new"
    with pytest.raises(KeyboardInterrupt):
        save_gradinit_checkpoint(output.model, output.result, target, tokenizer=output.tokenizer)
    assert "model.safetensors" in written and "config.json" in written
    assert list(tmp_path.iterdir()) == []  # neither the target nor the hidden staging directory

    old = tmp_path / "old"
    shutil.copytree(output.path, old)
    before = tree_digest(old)
    with pytest.raises(KeyboardInterrupt):
        save_gradinit_checkpoint(output.model, output.result, old, tokenizer=output.tokenizer, overwrite=True)
    assert tree_digest(old) == before  # --overwrite replaces only once the new one is complete
    assert [p.name for p in tmp_path.iterdir()] == ["old"]


def test_non_empty_directory_is_refused_without_overwrite_and_replaced_with_it(pushed, tmp_path: Path) -> None:
    output, _ = pushed
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirectoryExistsError, match="--overwrite"):
        save_gradinit_checkpoint(output.model, output.result, target, tokenizer=output.tokenizer)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]

    save_gradinit_checkpoint(output.model, output.result, target, tokenizer=output.tokenizer, overwrite=True)
    assert set(tree_digest(target)) == EXPECTED_FILES  # the old contents are gone
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    save_gradinit_checkpoint(output.model, output.result, empty)  # an empty directory is fine without overwrite
    assert (empty / "model.safetensors").is_file() and not (empty / "tokenizer.json").exists()


def test_init_refuses_a_non_empty_directory_before_any_work(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "keep.txt").write_text("x")

    def no_work(*args, **kwargs):
        raise AssertionError("data was loaded although the output directory is taken")

    monkeypatch.setattr("hf_gradinit.integrations.init_checkpoint.load_translation_data", no_work)
    args, data, gradinit = tiny_args(tmp_path)
    with pytest.raises(OutputDirectoryExistsError):
        init_checkpoint(args, data, gradinit)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_save_refuses_a_result_of_another_model(pushed, tmp_path: Path) -> None:
    output, _ = pushed
    other = GradInitResult(scales={"nowhere.weight": 1.0}, config=output.result.config)
    with pytest.raises(ValueError, match="not this model's run"):
        save_gradinit_checkpoint(output.model, other, tmp_path / "x")
    assert not (tmp_path / "x").exists()


# -- models from config files --------------------------------------------------------------------------------------


def test_init_from_a_seq2seq_config_file(tmp_path: Path) -> None:
    config = MarianConfig(
        d_model=16, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=32, decoder_ffn_dim=32,
        encoder_attention_heads=2, decoder_attention_heads=2, vocab_size=99, max_position_embeddings=64,
    )  # fmt: skip
    config.save_pretrained(tmp_path / "config")
    args, data, gradinit = tiny_args(tmp_path / "out", model=str(tmp_path / "config" / "config.json"))
    output = init_checkpoint(args, data, gradinit, progress_bar=False)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(output.path)
    assert loaded.config.d_model == 16 and loaded.config.vocab_size == len(output.tokenizer) == 200  # BPE's vocab
    assert loaded.config.pad_token_id == output.tokenizer.pad_token_id
    assert_same_tensors(output.model.state_dict(), loaded.state_dict())
    assert GradInitResult.from_model(loaded).scales == output.result.scales
    assert ModelCard.load(output.path / "README.md").data.tags == ["gradinit", "marian", "translation"]


def test_init_explains_that_only_seq2seq_models_have_a_data_pipeline(tmp_path: Path) -> None:
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 16, "n_layer": 1, "n_head": 2}
    (tmp_path / "gpt2.json").write_text(json.dumps(config))
    args, data, gradinit = tiny_args(tmp_path / "out", model=str(tmp_path / "gpt2.json"))
    with pytest.raises(ValueError, match="translation \\(seq2seq\\) models only.*causal-lm.*save_gradinit_checkpoint"):
        init_checkpoint(args, data, gradinit)
    with pytest.raises(ValueError, match="neither a preset"):
        init_checkpoint(*tiny_args(tmp_path / "out", model=str(tmp_path / "missing.json")))
    assert not (tmp_path / "out").exists()


# -- reading results back ------------------------------------------------------------------------------------------


def test_load_gradinit_result_from_directory_scales_file_or_config(pushed, tmp_path: Path) -> None:
    output, _ = pushed
    result, source = load_gradinit_result(output.path)
    assert source == output.path / "gradinit_scales.json" and result.history
    record_only = tmp_path / "record"
    record_only.mkdir()
    shutil.copy(output.path / "config.json", record_only)
    result, source = load_gradinit_result(record_only)
    assert source == record_only / "config.json" and result.scales == output.result.scales and not result.history
    with pytest.raises(ValueError, match="no GradInit result"):
        load_gradinit_result(output.path / "generation_config.json")
    table = format_scale_table(output.result)
    for name, scale in output.result.scales.items():
        assert f"{scale:.4g}" in next(line for line in table.splitlines() if line.startswith(name + " "))
