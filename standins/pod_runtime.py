"""Runs the RunPod stand-in's pods as real processes: the pod's start command with its env and
a directory as its volume, so a pod created through the API really boots the bootstrap.

What a container gets here, and how (Linux, as root; the stand-in refuses otherwise):
- its own mount namespace (`unshare --mount`, private propagation), in which the pod's volume
  directory is bind-mounted at the pod's `volumeMountPath` (e.g. /workspace) — the very path
  the bootstrap's TS_STATE_DIR names, so nothing in the pod's env is rewritten — and a private
  tmpfs on /run/tailscale, so each pod's tailscaled has its own default socket;
- the "image": the host filesystem, with `image_path` (the Go-built tailscale binaries) first
  on PATH and `image_env` under the pod's env (the pod's env wins, as in Docker);
- the network is the host's loopback (no network namespace): pods must use userspace
  networking and `--port=0`, which the sandbox's image env and stack do;
- the start command (`dockerArgs`) runs as `bash -c <dockerArgs>`, like a shell-form CMD.

Volumes: a network volume is `<root>/volumes/<volume id>` and outlives its pods; a pod volume
is `<root>/pods/<pod id>/volume`, kept across stop/resume and removed on terminate. Each pod
runs in its own session; stop/terminate kill every process of that session (TERM, then KILL),
which also reaches daemons the bootstrap puts in their own process group. The mount point
(e.g. /workspace) is created on the host if missing: an empty directory, the namespace's
anchor. /tmp is the host's (the bootstrap writes /tmp/coral-start.sh there; concurrent pod
starts write the same bytes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

STOP_GRACE_S = 5.0
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Runs inside the new mount namespace: $1 volume dir, $2 mount path, $3 start command.
_ENTER = r"""set -eu
mkdir -p "$2" /run/tailscale
mount --bind "$1" "$2"
mount -t tmpfs -o mode=0755 coral-pod-run /run/tailscale
cd /
exec bash -c "$3"
"""


class PodRuntimeError(RuntimeError):
    """The pod's container cannot be started here."""


def check_can_run_pods() -> None:
    """Raises PodRuntimeError, saying why, where pods cannot run."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        raise PodRuntimeError(
            "running pods needs root and util-linux `unshare` (a private mount namespace "
            "per pod, where the volume is bind-mounted at the pod's mount path)"
        )


@dataclass
class RunningPod:
    process: subprocess.Popen[bytes]
    log_path: Path
    started: float


@dataclass
class PodRuntime:
    root: Path
    image_path: Sequence[Path] = ()
    image_env: Mapping[str, str] = field(default_factory=dict)
    _running: dict[str, RunningPod] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_can_run_pods()

    def volume_dir(self, pod_id: str, network_volume_id: str | None) -> Path:
        if network_volume_id:
            return self.root / "volumes" / network_volume_id
        return self.root / "pods" / pod_id / "volume"

    def log_path(self, pod_id: str) -> Path:
        return self.root / "pods" / pod_id / "console.log"

    def start(
        self,
        pod_id: str,
        *,
        env: Sequence[str],
        docker_args: str,
        mount_path: str | None,
        network_volume_id: str | None,
    ) -> None:
        """(Re)starts the pod's container: a running one is stopped first, like a restart."""
        self.stop(pod_id)
        volume = self.volume_dir(pod_id, network_volume_id)
        volume.mkdir(parents=True, exist_ok=True)
        log_path = self.log_path(pod_id)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        path = os.pathsep.join([*(str(p) for p in self.image_path), IMAGE_PATH])
        full_env = {"PATH": path, "HOME": "/root", "LANG": "C.UTF-8", **self.image_env}
        for entry in env:
            name, _, value = entry.partition("=")
            full_env[name] = value
        command = docker_args or "sleep infinity"
        with log_path.open("ab") as log:
            log.write(f"--- pod {pod_id} start {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            process = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    "bash",
                    "-c",
                    _ENTER,
                    "coral-pod",
                    str(volume),
                    mount_path or "/workspace",
                    command,
                ],
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._running[pod_id] = RunningPod(process, log_path, time.monotonic())

    def pid(self, pod_id: str) -> int | None:
        running = self._running.get(pod_id)
        if running is None or running.process.poll() is not None:
            return None
        return running.process.pid

    def processes(self, pod_id: str) -> list[int]:
        """Every live process of the pod's container (its session), e.g. its tailscaled."""
        pid = self.pid(pod_id)
        return [] if pid is None else _session_members(pid)

    def stop(self, pod_id: str) -> None:
        """Kills every process of the pod's session; waits at most STOP_GRACE_S for TERM."""
        running = self._running.pop(pod_id, None)
        if running is None:
            return
        session = running.process.pid
        _signal_session(session, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while _session_members(session) and time.monotonic() < deadline:
            running.process.poll()
            time.sleep(0.1)
        _signal_session(session, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            running.process.wait(timeout=STOP_GRACE_S)

    def terminate(self, pod_id: str, network_volume_id: str | None) -> None:
        """Stops the pod and drops its pod volume; a network volume stays."""
        self.stop(pod_id)
        if not network_volume_id:
            shutil.rmtree(self.root / "pods" / pod_id / "volume", ignore_errors=True)

    def close(self) -> None:
        for pod_id in list(self._running):
            self.stop(pod_id)


def _session_members(session: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command (in parentheses): state ppid pgrp session ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == session:
            members.append(int(entry.name))
    return members


def _signal_session(session: int, sig: signal.Signals) -> None:
    for pid in _session_members(session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
