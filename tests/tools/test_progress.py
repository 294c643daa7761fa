"""tools/lib.sh progress: a long step says what it does at once, then its progress and elapsed
time, as a bar on a terminal and as periodic lines in logs; a Go build counts the packages it
compiles against what `go list -deps` says it will compile."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "tools" / "lib.sh"


def run_lib(
    script: str, env: dict[str, str] | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs `script` in bash after sourcing tools/lib.sh as a build script does."""
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; tool=testtool; source {LIB}; {script}"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, **(env or {})},
        check=False,
    )


COUNT_LINES = 'count_lines() { printf "%s lines" "$(wc -l < "$1")"; }; '


def test_a_step_reports_at_once_then_every_interval_then_its_final_state(tmp_path: Path) -> None:
    done = run_lib(
        COUNT_LINES
        + f"run_with_progress 'counting' {tmp_path}/log count_lines -- "
        + "bash -c 'for i in 1 2 3 4; do echo $i; sleep 1; done'",
        env={"CORAL_PROGRESS_INTERVAL": "2"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert re.fullmatch(r"testtool: counting: [01] lines, 0s", lines[0]), lines
    # Not a line per second: every 2 s, then the final state.
    assert 3 <= len(lines) <= 4, lines
    assert lines[-1].startswith("testtool: counting: 4 lines, ")
    for line in lines:
        assert re.fullmatch(r"testtool: counting: \d lines, \ds", line), line


def test_a_failed_step_shows_the_end_of_its_output(tmp_path: Path) -> None:
    done = run_lib(
        COUNT_LINES
        + f"run_with_progress 'failing' {tmp_path}/log count_lines -- "
        + "bash -c 'echo compiling; echo \"error: no such package\"; exit 3' || echo rc=$?"
    )
    assert "testtool: failing failed (exit code 3); the end of its output:" in done.stderr
    assert "error: no such package" in done.stderr
    assert done.stdout.strip() == "rc=3"


def test_on_a_terminal_the_bar_is_redrawn_in_place(tmp_path: Path) -> None:
    if shutil.which("script") is None:
        pytest.skip("util-linux `script` gives the step a terminal")
    inner = (
        f"tool=testtool; source {LIB}; {COUNT_LINES}"
        f"run_with_progress 'counting' {tmp_path}/log count_lines -- "
        "bash -c 'for i in 1 2; do echo $i; sleep 1; done'"
    )
    done = subprocess.run(
        ["script", "-qec", f"bash -c {shlex_quote(inner)}", "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TERM": "xterm"},
        check=False,
    )
    assert done.returncode == 0, done.stdout
    # Each report goes back to the line's start (CR; the pty may show it as a newline) and
    # erases it before drawing.
    reports = re.findall(r"[\r\n]\x1b\[K(testtool: counting: \d lines, \ds)", done.stdout)
    assert len(reports) >= 3, repr(done.stdout)
    assert reports[-1].startswith("testtool: counting: 2 lines")


def test_under_tools_build_a_step_writes_its_status_file(tmp_path: Path) -> None:
    status = tmp_path / "status"
    done = run_lib(
        COUNT_LINES
        + f"run_with_progress 'counting' {tmp_path}/log count_lines -- bash -c 'echo 1; echo 2'",
        env={"CORAL_PROGRESS_STATUS": str(status)},
    )
    assert done.returncode == 0
    assert done.stderr == ""
    assert status.read_text().startswith("testtool: counting: 2 lines, ")


def test_a_go_build_counts_the_packages_it_compiles(tmp_path: Path) -> None:
    if shutil.which("go") is None:
        pytest.skip("no go on PATH")
    module = tmp_path / "mod"
    for package in ("a", "b"):
        (module / package).mkdir(parents=True)
        (module / package / f"{package}.go").write_text(
            f'package {package}\n\nfunc Name() string {{ return "{package}-{uuid.uuid4()}" }}\n'
        )
    (module / "cmd" / "x").mkdir(parents=True)
    (module / "cmd" / "x" / "main.go").write_text(
        'package main\n\nimport (\n\t"example.com/m/a"\n\t"example.com/m/b"\n)\n\n'
        "func main() { println(a.Name(), b.Name()) }\n"
    )
    (module / "go.mod").write_text("module example.com/m\n\ngo 1.22\n")
    status = tmp_path / "status"
    done = run_lib(
        f"stamp_file={tmp_path}/stamp; start_go_build; cd {module}; "
        f"go_build_with_progress 'example' -o {tmp_path}/x -- ./cmd/x",
        env={"CORAL_PROGRESS_STATUS": str(status)},
        timeout_s=300,
    )
    assert done.returncode == 0, done.stderr
    # The two library packages of this module were the stale ones (the standard library is in
    # the shared build cache); the main package and the link come after them.
    assert re.match(
        r"testtool: example: \[#{20}\] 2/2 packages compiled, linked, \d+s$", status.read_text()
    ), status.read_text()
    assert subprocess.run([tmp_path / "x"], capture_output=True, text=True).stderr.startswith("a-")


def shlex_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
