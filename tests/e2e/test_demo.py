"""`make demo` as a user runs it (standins/demo.py, its own process): one sandbox per checkout,
`make demo-down` that finds it even without its pid file, or cleans up after one that was
killed, and a host left as it was found: no process, mount or directory of the sandbox.

The demo's directory (lock, pid file) is moved into the test's tmp dir (CORAL_DEMO_DIR), so a
sandbox the developer runs in this checkout is not disturbed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from standins.demo import processes_under

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
UP_TIMEOUT_S = 300.0
# Where a pod's mounts would land if they leaked out of its namespace, and what the bootstrap
# writes or links in a pod; a real host may already have some of them (another checkout's
# older sandbox, a real tailscale), so they are compared before and after, not required absent.
WATCHED = (
    "/workspace",
    "/run/tailscale",
    "/var/run/tailscale/tailscaled.sock",
    "/usr/local/bin/tailscale",
    "/usr/local/bin/tailscaled",
    "/tmp/coral-start.sh",
    "/tmp/idle_stop.sh",
)


@dataclass(frozen=True)
class Host:
    mounts: frozenset[tuple[str, str]]
    watched: tuple[tuple[str, int | None], ...]
    root_entries: frozenset[str]

    @classmethod
    def now(cls) -> Host:
        mounts = set()
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields, _, rest = line.partition(" - ")
            mounts.add((fields.split()[4], rest.split()[0]))
        inodes = []
        for path in WATCHED:
            try:
                inodes.append((path, os.lstat(path).st_ino))
            except FileNotFoundError:
                inodes.append((path, None))
        return cls(frozenset(mounts), tuple(inodes), frozenset(os.listdir("/")))


def tool_processes(bin_dir: Path) -> set[int]:
    """Processes running a binary of this checkout's .cache/bin (headscale, tailscaled, pulumi)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "exe").startswith(f"{bin_dir}/"):
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def demo_command(
    *args: str, env: dict[str, str], timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "standins.demo", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@dataclass
class RunningDemo:
    process: subprocess.Popen[bytes]
    log: Path
    scratch: Path

    @classmethod
    def start(cls, env: dict[str, str], log: Path) -> RunningDemo:
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "standins.demo"],
                cwd=REPO,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + UP_TIMEOUT_S
        while "sandbox: up in" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the demo did not come up:\n{log.read_text()[-6000:]}")
            time.sleep(0.5)
        match = re.search(r"Pulumi project +(\S+)/project ", log.read_text())
        assert match, log.read_text()
        return cls(process, log, Path(match.group(1)))


@pytest.fixture
def demo_env(tools_dir: Path, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CORAL_DEMO_DIR": str(tmp_path / "demo")}


def test_two_demos_give_one_sandbox_and_demo_down_leaves_the_host_as_it_was(
    tools_dir: Path, demo_env: dict[str, str], tmp_path: Path
) -> None:
    before = Host.now()
    tools_before = tool_processes(tools_dir)
    demo_dir = Path(demo_env["CORAL_DEMO_DIR"])

    first = RunningDemo.start(demo_env, tmp_path / "first.log")
    assert processes_under(first.scratch), "the sandbox's daemons and pod are not visible"
    assert (demo_dir / "sandbox.pid").read_text().strip() == str(first.process.pid)

    second = demo_command(env=demo_env)
    assert second.returncode == 1
    assert (
        f"a sandbox is already running in this checkout (pid {first.process.pid})" in second.stderr
    )
    assert "make demo-down" in second.stderr
    # `make demo` says it before building anything (tools/check-prereqs.sh).
    early = subprocess.run(
        ["bash", str(REPO / "tools" / "check-prereqs.sh"), "demo"],
        env=demo_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert early.returncode == 1
    assert f"already running in this checkout (pid {first.process.pid})" in early.stderr
    assert first.process.poll() is None and "sandbox: stopped" not in first.log.read_text()

    # Without its pid file the sandbox is still found, by the lock it holds.
    (demo_dir / "sandbox.pid").unlink()
    down = demo_command("--down", env=demo_env, timeout_s=600)
    assert down.returncode == 0, down.stderr
    assert f"stopping the sandbox (pid {first.process.pid})" in down.stdout
    assert "sandbox stopped" in down.stdout
    assert first.process.wait(timeout=60) == 0
    assert "pulumi destroy: done" in first.log.read_text()
    assert "no sandbox running" in demo_command("--down", env=demo_env).stdout

    assert processes_under(first.scratch) == []
    assert not first.scratch.exists()
    assert tool_processes(tools_dir) == tools_before
    assert Host.now() == before
    assert sorted(os.listdir(demo_dir)) == ["sandbox.lock"]


def test_demo_down_cleans_up_after_a_killed_sandbox(
    tools_dir: Path, demo_env: dict[str, str], tmp_path: Path
) -> None:
    before = Host.now()
    demo = RunningDemo.start(demo_env, tmp_path / "demo.log")
    os.kill(demo.process.pid, signal.SIGKILL)
    demo.process.wait(timeout=30)
    left = processes_under(demo.scratch)
    assert left, "a killed sandbox leaves its daemons and pod running"

    down = demo_command("--down", env=demo_env, timeout_s=120)

    assert down.returncode == 0, down.stderr
    assert "no sandbox running in this checkout" in down.stdout
    assert f"the last sandbox (pid {demo.process.pid}) ended without cleaning up" in down.stdout
    assert processes_under(demo.scratch) == []
    assert not demo.scratch.exists()
    assert Host.now() == before
