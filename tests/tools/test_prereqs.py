"""tools/check-prereqs.sh, the first thing `make demo` and `make test` run: one line per
problem, naming what is missing and what to do; a second or two when all is well; registries
asked only when this run downloads from them."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VERSIONS = dict(
    line.split("=", 1)
    for line in (REPO / "tools" / "versions.env").read_text().splitlines()
    if line[:1].isupper()
)


def check(
    mode: str, repo: Path = REPO, env: dict[str, str] | None = None, as_nobody: bool = False
) -> subprocess.CompletedProcess[str]:
    command = ["bash", str(repo / "tools" / "check-prereqs.sh"), mode]
    if as_nobody:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def fresh_checkout() -> Iterator[Path]:
    """tools/ and pyproject.toml of this checkout with nothing installed or built: every step
    of a first run is pending. World-readable, for the not-root case."""
    root = Path(tempfile.mkdtemp(prefix="coral-prereqs-"))
    try:
        root.chmod(0o755)
        shutil.copytree(REPO / "tools", root / "tools")
        shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
        yield root
    finally:
        shutil.rmtree(root)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fake_tool(directory: Path, name: str, body: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def test_all_well_is_one_line_within_two_seconds() -> None:
    started = time.monotonic()
    done = check("test")
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("prerequisites: ok (Python 3.")
    assert len(done.stdout.splitlines()) == 1
    assert elapsed < 2.0, f"took {elapsed:.1f}s"


def test_without_go_it_says_which_go_to_install(tmp_path: Path) -> None:
    path = ":".join(p for p in os.environ["PATH"].split(":") if not (Path(p) / "go").exists())
    done = check("test", env={"PATH": path})
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"make test: no 'go' on PATH: install Go >= {VERSIONS['GO_MIN_VERSION']} (tailscale, "
        "headscale and the Pulumi CLI are compiled from source; https://go.dev/dl/)"
    ]


def test_too_old_go_and_python_one_line_each(tmp_path: Path) -> None:
    fake_tool(tmp_path / "bin", "go", "echo go1.21.0")
    fake_tool(tmp_path / "bin", "python-old", "echo 3.9.2")
    done = check(
        "test",
        env={"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "PYTHON": "python-old"},
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "make test: python-old is Python 3.9.2; coral-infra needs >= 3.11 (pyproject.toml): "
        "install it or run make PYTHON=python3.11 test",
        f"make test: Go 1.21.0 is too old: the pinned tailscale {VERSIONS['TAILSCALE_VERSION']} "
        f"and headscale {VERSIONS['HEADSCALE_VERSION']} need Go >= {VERSIONS['GO_MIN_VERSION']} "
        "(tools/versions.env)",
    ]


def test_a_first_run_needs_the_registries_and_says_which_is_unreachable(
    fresh_checkout: Path,
) -> None:
    pypi = f"http://127.0.0.1:{closed_port()}/simple"
    proxy = f"http://127.0.0.1:{closed_port()}"
    done = check("demo", fresh_checkout, {"PIP_INDEX_URL": pypi, "GOPROXY": f"{proxy},direct"})
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"make demo: cannot reach PyPI at {pypi} (")
    assert lines[0].endswith(
        "the venv is installed from it; set PIP_INDEX_URL to a reachable index"
    )
    assert lines[1].startswith(f"make demo: cannot reach the Go module proxy at {proxy} (")
    assert lines[1].endswith("set GOPROXY to a reachable proxy")


def test_goproxy_off_with_builds_to_do(fresh_checkout: Path) -> None:
    done = check("test", fresh_checkout, {"GOPROXY": "off"})
    assert done.returncode == 1
    assert (
        "make test: GOPROXY=off, but this run builds Go tools from the module proxy" in done.stderr
    )


def test_a_built_checkout_asks_no_registry(tmp_path: Path) -> None:
    """Everything is built here: an unreachable registry does not matter."""
    for step in (
        "make-venv.sh",
        "build-pulumi.sh",
        "build-binaries.sh",
        "build-actionlint.sh",
    ):
        if subprocess.run(["bash", str(REPO / "tools" / step), "--check"]).returncode != 0:
            pytest.skip(f"this checkout is not fully built (tools/{step}); make tools builds it")
    done = check(
        "test",
        env={"PIP_INDEX_URL": f"http://127.0.0.1:{closed_port()}/simple", "GOPROXY": "off"},
    )
    assert done.returncode == 0, done.stderr
    assert "reachable" not in done.stdout


def test_the_sandbox_needs_root(fresh_checkout: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the check as another user")
    env = {
        "HOME": str(fresh_checkout),
        "GOPROXY": "off",
        "CORAL_CACHE_DIR": str(fresh_checkout / ".cache"),
    }
    demo = check("demo", fresh_checkout, env, as_nobody=True)
    assert demo.returncode == 1
    assert (
        "make demo: the sandbox needs root and util-linux unshare/nsenter (each simulated pod "
        "runs in its own mount namespace): run it as root, e.g. sudo make demo"
    ) in demo.stderr.splitlines()
    test = check("test", fresh_checkout, env, as_nobody=True)
    assert (
        "make test: warning: not root or no unshare/nsenter: the e2e and integration suites "
        "(pods in their own mount namespaces) will be skipped; run as root for the whole suite"
    ) in test.stderr.splitlines()
