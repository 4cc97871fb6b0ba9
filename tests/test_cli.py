"""The `hf-gradinit` command line: help, argument errors, init, push and report."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
import torch
from safetensors.torch import load_file

from hf_gradinit.config import GradInitConfig
from hf_gradinit.integrations.cli import main
from hf_gradinit.translation import TranslationDataArguments

TINY = ["--model", "tiny", "--source", "toy", "--toy_size", "200", "--bpe_vocab_size", "200", "--max_tokens", "256",
        "--max_steps", "10", "--gradinit_iterations", "3"]  # fmt: skip
REPO = "someone/tiny-gradinit"


def exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    return caught.value.code


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, int, str]:
    """`hf-gradinit init ... --push_to_hub` with the Hub offline: (directory, exit code, stderr)."""
    out = tmp_path_factory.mktemp("cli") / "tiny"
    offline = pytest.MonkeyPatch()
    offline.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    stderr = io.StringIO()  # capsys is function-scoped
    try:
        torch.manual_seed(0)
        with contextlib.redirect_stderr(stderr):
            code = main(["init", "--output_dir", str(out), *TINY, "--push_to_hub", REPO])
    finally:
        offline.undo()
    return out, code, stderr.getvalue()


# -- help ----------------------------------------------------------------------------------------------------------


def test_top_level_help_lists_every_command(capsys) -> None:
    assert exit_code(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: hf-gradinit")
    for command in ("init", "push", "report"):
        assert f"    {command} " in out


def test_init_help_has_every_argument_and_no_training_switches(capsys) -> None:
    assert exit_code(["init", "--help"]) == 0
    out = capsys.readouterr().out
    for name in ("output_dir", "model", "task", "init", "tokenizer", "lr", "seed", "overwrite", "push_to_hub",
                 "private", "revision", "model_name", "license"):  # fmt: skip
        assert f"--{name} " in out, name
    for config_field in dataclasses.fields(TranslationDataArguments):
        assert f"--{config_field.name} " in out, config_field.name
    for config_field in dataclasses.fields(GradInitConfig):  # every gradinit_* comes from GradInitArguments
        assert f"--gradinit_{config_field.name} " in out, config_field.name
    assert "--gradinit_force" not in out and "--gradinit " not in out  # init always runs GradInit
    assert "tiny" in out and "iwslt14-de-en" in out  # the presets are named


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("push", ["DIR", "REPO_ID", "--private", "--revision", "--commit_message"]),
        ("report", ["PATH", "--plot", "--no_plot"]),
    ],
)
def test_subcommand_help(capsys, command: str, expected: list[str]) -> None:
    assert exit_code([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: hf-gradinit {command}")
    for text in expected:
        assert text in out


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "hf-gradinit"
    completed = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "usage: hf-gradinit" in completed.stdout and "report" in completed.stdout


# -- argument errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["init"], "the following arguments are required: --output_dir"),
        (["init", "--output_dir", "{tmp}/o", "--init", "xavier"], "argument --init: invalid choice: 'xavier'"),
        (["init", "--output_dir", "{tmp}/o", "--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
        (["init", "--output_dir", "{tmp}/o", "--gradinit_iterations", "0"], "iterations must be a positive integer"),
        (["init", "--output_dir", "{tmp}/o", "--toy_size", "1"], "toy_size must be at least 3"),
        (["init", "--output_dir", "{tmp}/o", "--private"], "only apply with push_to_hub"),
        (["init", "--output_dir", "{tmp}/o", "--gradinit_force"], "unrecognized arguments: --gradinit_force"),
        (["push", "{tmp}/missing"], "the following arguments are required: REPO_ID"),
        (["push", "{tmp}/missing", REPO], "is not a directory"),
        (["report"], "the following arguments are required: PATH"),
        (["report", "{tmp}/missing"], "does not exist"),
        (["report", "{tmp}", "--plot", "a.png", "--no_plot"], "--plot and --no_plot exclude each other"),
    ],
)
def test_bad_arguments_are_argparse_errors(capsys, tmp_path: Path, argv: list[str], message: str) -> None:
    assert exit_code([arg.replace("{tmp}", str(tmp_path)) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert "usage: hf-gradinit" in err and message in err
    assert not (tmp_path / "o").exists()


def test_init_refuses_a_non_empty_output_dir_before_any_work(capsys, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "keep.txt").write_text("x")
    monkeypatch.setattr("hf_gradinit.integrations.cli.init_checkpoint", lambda *a, **k: pytest.fail("work started"))
    assert exit_code(["init", "--output_dir", str(tmp_path), *TINY]) == 2
    err = capsys.readouterr().err
    assert "hf-gradinit init: error:" in err and "is not empty" in err and "--overwrite" in err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_unsupported_model_kind_is_a_clear_runtime_error(capsys, tmp_path: Path) -> None:
    (tmp_path / "gpt2.json").write_text('{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}')
    assert main(["init", "--output_dir", str(tmp_path / "o"), "--model", str(tmp_path / "gpt2.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hf-gradinit init: error:") and "seq2seq" in err and "causal-lm" in err


def test_separate_vocabularies_need_a_preset(capsys, tmp_path: Path) -> None:
    (tmp_path / "marian.json").write_text('{"model_type": "marian"}')
    argv = ["init", "--output_dir", str(tmp_path / "o"), "--model", str(tmp_path / "marian.json")]
    assert main([*argv, "--shared_vocab", "false"]) == 1
    err = capsys.readouterr().err
    assert "--shared_vocab false builds a Post-LN preset" in err and "decoder_vocab_size" in err
    assert not (tmp_path / "o").exists()


# -- init, push, report --------------------------------------------------------------------------------------------


def test_init_writes_the_checkpoint_and_reports_the_offline_push(checkpoint) -> None:
    out, code, err = checkpoint
    assert code == 1
    assert "offline mode" in err and f"The checkpoint is complete at {out}" in err and f"hf-gradinit push {out}" in err
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "config.json", "README.md", "gradinit_scales.json",
                                               "gradinit_scales.png", "tokenizer.json"}  # fmt: skip
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no staging directory left


def test_cli_and_library_make_the_same_checkpoint(checkpoint, tmp_path: Path) -> None:
    from hf_gradinit import GradInitArguments
    from hf_gradinit.integrations.init_checkpoint import InitCheckpointArguments, init_checkpoint

    out, _, _ = checkpoint
    torch.manual_seed(1)  # the global RNG state does not matter: --seed does
    library = init_checkpoint(
        InitCheckpointArguments(
            output_dir=str(tmp_path / "lib"), model="tiny", bpe_vocab_size=200, max_tokens=256, max_steps=10
        ),  # fmt: skip
        TranslationDataArguments(source="toy", toy_size=200),
        GradInitArguments(gradinit=True, gradinit_iterations=3),
        progress_bar=False,
    )
    cli_weights, library_weights = load_file(out / "model.safetensors"), load_file(library.path / "model.safetensors")
    assert set(cli_weights) == set(library_weights)
    assert all(torch.equal(cli_weights[name], library_weights[name]) for name in cli_weights)


def test_push_command_offline_fails_with_exit_1_and_changes_nothing(checkpoint, capsys, monkeypatch) -> None:
    out, _, _ = checkpoint
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["push", str(out), REPO, "--private", "--revision", "v0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hf-gradinit push: error: Could not push") and f"complete at {out}" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_push_command_passes_its_arguments(checkpoint, capsys, monkeypatch) -> None:
    out, _, _ = checkpoint
    seen = {}

    def fake_push(output_dir, repo_id, **kwargs):
        seen.update(output_dir=output_dir, repo_id=repo_id, **kwargs)
        return "https://huggingface.co/x/commit/1"

    monkeypatch.setattr("hf_gradinit.integrations.cli.push_checkpoint", fake_push)
    assert main(["push", str(out), REPO, "--private", "--revision", "v0", "--commit_message", "hi"]) == 0
    assert seen == {"output_dir": str(out), "repo_id": REPO, "private": True, "revision": "v0", "commit_message": "hi"}
    assert "https://huggingface.co/x/commit/1" in capsys.readouterr().out


def test_report_prints_the_table_and_redraws_the_plot(checkpoint, capsys, tmp_path: Path) -> None:
    from hf_gradinit import GradInitResult

    out, _, _ = checkpoint
    result = GradInitResult.load(out / "gradinit_scales.json")
    plot = tmp_path / "scales.png"
    assert main(["report", str(out), "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    rows = {
        line.split()[0]: line.split()
        for line in printed.splitlines()
        if line.split() and line.split()[0] in result.scales
    }
    assert set(rows) == set(result.scales)
    for name, scale in result.scales.items():
        assert rows[name][1] == result.kinds[name] and float(rows[name][2]) == pytest.approx(scale, rel=1e-3)
    assert "summary:" in printed and f"blocks: {len(result.scales)}" in printed and "iterations: 3" in printed
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_report_falls_back_to_the_config_record(checkpoint, capsys, tmp_path: Path) -> None:
    out, _, _ = checkpoint
    (tmp_path / "config.json").write_bytes((out / "config.json").read_bytes())
    assert main(["report", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "config.json (a record without per-iteration history)" in printed and "model.shared.weight" in printed
    assert (tmp_path / "gradinit_scales.png").is_file()  # default: drawn into the directory
    (tmp_path / "gradinit_scales.png").unlink()
    assert main(["report", str(tmp_path / "config.json"), "--no_plot"]) == 0
    assert not (tmp_path / "gradinit_scales.png").exists()


def test_report_on_a_directory_without_a_result_is_an_error(capsys, tmp_path: Path) -> None:
    assert main(["report", str(tmp_path)]) == 1
    assert "holds neither gradinit_scales.json nor config.json" in capsys.readouterr().err


def test_interrupted_init_leaves_no_checkpoint(capsys, tmp_path: Path, monkeypatch) -> None:

    def interrupt(result, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(
        "hf_gradinit.integrations.checkpoint.plot_scales_if_possible", interrupt
    )  # after the weights are written
    assert main(["init", "--output_dir", str(tmp_path / "o"), *TINY]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
