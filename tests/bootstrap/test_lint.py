"""The shell script, the stand-ins and the Dockerfile pass their linters (pinned in dev deps)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coral_infra.bootstrap import DOCKERFILE_PATH, IDLE_STOP_SCRIPT_PATH, SCRIPT_PATH

from .conftest import FAKES


def tool(name: str) -> str:
    """The linter installed into this venv by its PyPI package (a wheel carrying the binary)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: run `make venv` (dev deps pin it)")
    return found


@pytest.mark.parametrize(
    "script",
    [
        SCRIPT_PATH,
        IDLE_STOP_SCRIPT_PATH,
        FAKES / "tailscale",
        FAKES / "tailscaled",
        FAKES / "sshd",
        FAKES / "gpu" / "nvidia-smi",
    ],
)
def test_shellcheck_clean(script: Path) -> None:
    # --external-sources: start.sh is checked with idle_stop.sh, which it sources, in view.
    done = subprocess.run(
        [tool("shellcheck"), "--severity=style", "--shell=bash", "--external-sources", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("script", [SCRIPT_PATH, IDLE_STOP_SCRIPT_PATH])
def test_bash_parses_the_bootstrap(script: Path) -> None:
    """bash itself, besides shellcheck: a file start.sh sources must parse in the bash that runs
    it (a syntax error there would only show when a pod turns the idle stop on)."""
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_hadolint_clean() -> None:
    done = subprocess.run(
        [tool("hadolint"), "--failure-threshold=style", str(DOCKERFILE_PATH)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_linters_catch_problems(tmp_path: Path) -> None:
    """Guards against a linter that silently passes everything."""
    bad_script = tmp_path / "bad.sh"
    bad_script.write_text("#!/bin/bash\nrm -rf $1/*\n")
    # A sourced library like idle_stop.sh: no shebang, the shell named by a directive.
    bad_library = tmp_path / "bad_library.sh"
    bad_library.write_text("# shellcheck shell=bash\nclean() {\n    rm -rf $1/*\n}\n")
    assert subprocess.run([tool("shellcheck"), str(bad_library)], capture_output=True).returncode
    assert subprocess.run(["bash", "-n", "-c", "f() {"], capture_output=True).returncode
    bad_dockerfile = tmp_path / "Dockerfile"
    bad_dockerfile.write_text("FROM ubuntu:latest\nRUN apt-get install curl\n")
    assert subprocess.run([tool("shellcheck"), str(bad_script)], capture_output=True).returncode
    assert subprocess.run([tool("hadolint"), str(bad_dockerfile)], capture_output=True).returncode
