"""The checkout's Go-built binaries: tailscale, tailscaled, containerboot, headscale, the
Pulumi CLI and actionlint, compiled from pinned Go modules by tools/build-*.sh into .cache/bin.

Kept apart from the daemons that run them: the demo and the workflow tests build without
starting any daemon, and a machine without Go must be told so once (BinariesUnavailable) for
callers to skip or report, rather than fail later on a missing file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# A cold build of all four binaries (or of the Pulumi CLI) takes minutes on 2 cores; past this
# something is wrong.
BUILD_TIMEOUT_S = 30 * 60


class BinariesUnavailable(RuntimeError):
    """The Go-built tools cannot be built on this machine (no Go toolchain)."""


def cache_dir() -> Path:
    return Path(os.environ.get("CORAL_CACHE_DIR", str(REPO_ROOT / ".cache")))


def run_build_script(
    script: str,
    builds: str,
    *args: str,
    timeout_s: float = BUILD_TIMEOUT_S,
    show_progress: bool = False,
) -> Path:
    """Runs tools/<script> with `args` and returns the bin dir it fills.

    The build scripts are near-instant when their stamp matches the pins, so calling them every
    session is what keeps the binaries honest about their versions. Without Go this raises
    BinariesUnavailable (callers skip or report it); a failed build raises with its stderr.
    `show_progress` lets the script's progress reach this process's stdout and stderr when it
    has something to build (the demo); under pytest the output is captured, which is why
    `make test` builds everything before pytest starts.
    """
    if shutil.which("go") is None:
        raise BinariesUnavailable(f"no 'go' on PATH: tools/{script} builds {builds} from source")
    command = ["bash", str(REPO_ROOT / "tools" / script), *args]
    if show_progress and subprocess.run([*command, "--check"], timeout=60).returncode == 0:
        return cache_dir() / "bin"  # up to date: nothing to show
    result = subprocess.run(
        command,
        stdout=None if show_progress else subprocess.PIPE,
        stderr=None if show_progress else subprocess.PIPE,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        detail = "" if show_progress else f":\n{(result.stderr or '')[-4000:]}"
        raise RuntimeError(f"tools/{script} failed with exit code {result.returncode}{detail}")
    return cache_dir() / "bin"


def ensure_binaries(*names: str, show_progress: bool = False) -> Path:
    """Builds (or finds cached) the named daemons: tailscale, tailscaled, containerboot,
    headscale (default: all four)."""
    return run_build_script(
        "build-binaries.sh", "tailscale/headscale", *names, show_progress=show_progress
    )
