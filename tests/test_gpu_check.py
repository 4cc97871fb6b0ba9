"""scripts/gpu_check.py --prepare: what the device run carries, and the command that uses it."""

from __future__ import annotations

import gzip
import re
import subprocess
from pathlib import Path

import pytest
from conftest import load_script
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
gpu_check = load_script("gpu_check")


def test_prepare_downloads_the_wheels_for_the_device_python_and_packs_ding(tmp_path, monkeypatch):
    ding = tmp_path / "de-en"
    ding.write_text("Hund :: dog\nKatze :: cat\n", encoding="utf-8")
    commands: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda command, check: commands.append(command))

    gpu_check.prepare(tmp_path / "kit", ding)

    [pip] = commands
    assert pip[1:4] == ["-m", "pip", "download"] and "--no-deps" in pip and "--only-binary=:all:" in pip
    assert pip[pip.index("--python-version") + 1] == gpu_check.DEVICE_PYTHON
    assert pip[pip.index("--dest") + 1] == str(tmp_path / "kit" / "wheels")
    assert pip[-len(gpu_check.DEVICE_WHEELS) :] == list(gpu_check.DEVICE_WHEELS)
    assert gzip.decompress((tmp_path / "kit" / "de-en.gz").read_bytes()) == ding.read_bytes()


def test_prepare_without_ding_says_how_to_install_it(tmp_path):
    with pytest.raises(SystemExit, match="apt-get install trans-de-en"):
        gpu_check.prepare(tmp_path / "kit", tmp_path / "missing")
    assert not (tmp_path / "kit").exists()


def test_the_device_command_uses_what_prepare_made():
    command = gpu_check.DEVICE_COMMAND
    assert len(command) <= 2000  # the device tool's limit on a command
    assert "--no-index" in command and ".gpu/wheels/*.whl" in command
    assert f"gunzip -c .gpu/de-en.gz > {gpu_check.DING}" in command and command.endswith("scripts/gpu_check.py")
    assert f"{gpu_check.KIT}/" in (REPO / ".gitignore").read_text().split()  # carry: ignored


def test_the_device_wheels_are_the_versions_ci_runs_the_suite_on():
    """transformers and datasets at pyproject's lower bounds: the versions .ci/run's second pass tests."""
    lower = dict(re.findall(r'"([A-Za-z0-9_.-]+)>=([^,;"\s]+)', (REPO / "pyproject.toml").read_text()))
    pinned = dict(wheel.split("==") for wheel in gpu_check.DEVICE_WHEELS)
    for name in ("transformers", "datasets"):
        assert Version(pinned[name]) == Version(lower[name]), name
