"""Daemons on loopback that can never outlive a test: each in its own process group inside a
scratch directory (a Testbed), killed by `Testbed.close()`, with every wait bounded.

It is a plain module (not only fixtures) because bench/ and the sandbox drive the same daemons
outside pytest. What runs in it lives beside it: headscale.py (the control server) and
tailscale_node.py (tailscaled, the bootstrap, containerboot).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

# Offline-safe defaults for every tailscale process: the DERP server embedded in headscale
# speaks plain HTTP on loopback, and log uploads would only time out.
TAILSCALE_ENV = {"TS_DEBUG_USE_DERP_HTTP": "1", "TS_NO_LOGS_NO_SUPPORT": "true"}

T = TypeVar("T")


def wait_for(
    what: str, probe: Callable[[], T | None], timeout_s: float, interval_s: float = 0.05
) -> T:
    """Polls `probe` until it returns something other than None, for at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Daemon:
    """A long-running process leading its own process group (so its children die with it)."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    marker: str | None = None
    """A string only this daemon's processes have on their command line (a socket path):
    containerboot starts tailscaled in a process group of its own."""

    def running(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the group, SIGKILL what is left after `grace_s`; then the same for any
        process carrying `marker` that escaped the group.

        The group is signalled even when the leader already exited: a script that exec'd or
        backgrounded tailscaled leaves it in the same group.
        """
        deadline = time.monotonic() + grace_s
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace_s)
        # The rest of the group gets the same grace (tailscaled removes its socket on SIGTERM),
        # however soon the leader went: a script that exec'd its main command goes at once.
        with contextlib.suppress(TimeoutError):
            wait_for(
                f"{self.name}'s process group to exit",
                lambda: True if not _group_members(self.proc.pid) else None,
                max(0.0, deadline - time.monotonic()),
            )
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace_s)
        if self.marker is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            strays = _pids_with_marker(self.marker)
            for pid in strays:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            with contextlib.suppress(TimeoutError):
                wait_for(
                    f"{self.name} strays to exit",
                    lambda: True if not _pids_with_marker(self.marker or "") else None,
                    grace_s,
                )

    def kill(self, timeout_s: float = 5.0) -> None:
        """SIGKILL for the group and every process carrying `marker`, none warned first: a
        crash or an OOM kill, after which tailscaled's socket file stays behind (only a
        SIGTERM lets tailscaled remove it)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=timeout_s)
        if self.marker is None:
            return
        marker = self.marker
        for pid in _pids_with_marker(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(
            f"{self.name} to be gone",
            lambda: True if not _pids_with_marker(marker) else None,
            timeout_s,
        )


def _live_processes() -> Iterator[tuple[Path, list[str]]]:
    """Every live (not zombie) process: its /proc dir and the fields of its stat after the
    command (in parentheses): state ppid pgrp ..."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            yield entry, fields


def _group_members(pgid: int) -> list[int]:
    return [int(entry.name) for entry, fields in _live_processes() if int(fields[2]) == pgid]


def _pids_with_marker(marker: str) -> list[int]:
    pids = []
    for entry, _ in _live_processes():
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(entry.name))
    return pids


@dataclass
class Testbed:
    """Owns a short scratch directory (unix socket paths are limited to 108 bytes) and every
    daemon started in it."""

    __test__ = False  # not a pytest test class despite the name
    root: Path
    daemons: list[Daemon] = field(default_factory=list)

    @classmethod
    def create(cls) -> Testbed:
        return cls(Path(tempfile.mkdtemp(prefix="coral-tb-", dir="/tmp")))

    def path(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path | None = None,
        marker: str | None = None,
    ) -> Daemon:
        log_path = self.root / f"{name}.{len(self.daemons)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        daemon = Daemon(name, proc, log_path, marker)
        self.daemons.append(daemon)
        return daemon

    def logs(self) -> str:
        """All daemon logs, for failure messages."""
        return "\n".join(
            f"===== {d.name} (pid {d.proc.pid}, {d.log_path.name}) =====\n{d.log()[-6000:]}"
            for d in self.daemons
        )

    def close(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()
        self.daemons.clear()
        if not os.environ.get("CORAL_TESTBED_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)


def base_env(bin_dir: Path, home: Path) -> dict[str, str]:
    """A minimal environment: no inherited TS_* variables can leak into a daemon, and
    tailscaled keeps its log config in `home` instead of /var/lib/tailscale."""
    return {
        "PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "TS_LOGS_DIR": str(home),
        "LANG": "C.UTF-8",
        **TAILSCALE_ENV,
    }
