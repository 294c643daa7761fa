"""Runs the RunPod stand-in's pods as real processes: the pod's start command with its env and
a directory as its volume, so a pod created through the API really boots the bootstrap.

What a container gets here, and how (Linux, as root; the stand-in refuses otherwise), the way a
container runtime builds it:
- its own mount namespace (`unshare --mount`, private propagation) and its own root: an
  overlay whose lower layer is the host's root filesystem (the "image") and whose writable
  layer is a tmpfs, the container disk, which like RunPod's is wiped at every (re)start. The
  runtime then mounts, on that root only: /dev, /proc and /sys from the host, fresh tmpfs on
  /run, /tmp and /dev/shm (so each pod has its own tailscaled socket at the CLI's default
  /var/run/tailscale/tailscaled.sock and its own /tmp), the pod's volume at its
  `volumeMountPath` (e.g. /workspace, the very path the bootstrap's TS_STATE_DIR names) and
  the image's baked-in files (`image_files`, e.g. the Go-built tailscale binaries at
  /usr/local/bin, where coral_infra/bootstrap/Dockerfile puts them), and chroots into it.
  Every mount point is made inside that root: nothing appears on the host but the two empty
  anchor directories under the runtime's own `root` (pods/<id>/rootfs and pods/<id>/disk);
- the image's env (`image_env`) under the pod's env (the pod's env wins, as in Docker), plus
  RUNPOD_POD_ID as RunPod sets it;
- the network is the host's loopback (no network namespace): pods must use userspace
  networking and `--port=0`, which the sandbox's image env and stack do, and nothing in a pod
  may listen on a fixed port, since several pods run side by side (the sandbox's image env
  turns sshd off); everything else a pod writes is in its own root, /tmp, /run or volume;
- the start command (`dockerArgs`) runs as `bash -c <dockerArgs>`, like a shell-form CMD.

Volumes: a network volume is `<root>/volumes/<volume id>` and outlives its pods; a pod volume
is `<root>/pods/<pod id>/volume`, kept across stop/resume and removed on terminate. Stopping a
pod kills every process of its container (TERM, then KILL): its session, which also reaches
daemons the bootstrap puts in their own process group, and anything else in its mount
namespace (e.g. a shell started by Tailscale SSH in a session of its own). When the last one
exits, the namespace and all its mounts go with it.
`shell_command` enters a running pod like `docker exec`: its mount namespace and root.
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

# Runs inside the new mount namespace. $1 the pod's dir (anchors rootfs/ and disk/ exist),
# $2 volume dir, $3 mount path, $4 start command, then IN_POD_PATH=HOST_FILE per image file.
_ENTER = r"""set -eu
pod=$1 volume=$2 mount_path=$3 command=$4
shift 4
root=$pod/rootfs disk=$pod/disk
mount -t tmpfs -o mode=0755 coral-pod-disk "$disk"
mkdir "$disk/upper" "$disk/work"
mount -t overlay -o "lowerdir=/,upperdir=$disk/upper,workdir=$disk/work" coral-pod-root "$root"
mount --rbind /dev "$root/dev"
mount --rbind /proc "$root/proc"
mount --rbind /sys "$root/sys"
mount -t tmpfs -o mode=1777,nosuid,nodev coral-pod-shm "$root/dev/shm"
mount -t tmpfs -o mode=0755,nosuid,nodev coral-pod-run "$root/run"
mount -t tmpfs -o mode=1777,nosuid,nodev coral-pod-tmp "$root/tmp"
mkdir -p "$root$mount_path"
mount --bind "$volume" "$root$mount_path"
for file in "$@"; do
    target=$root${file%%=*}
    mkdir -p "$(dirname "$target")"
    touch "$target"
    mount --bind "${file#*=}" "$target"
done
exec chroot "$root" bash -c "$command"
"""


class PodRuntimeError(RuntimeError):
    """The pod's container cannot be started here."""


def check_can_run_pods() -> None:
    """Raises PodRuntimeError, saying why, where pods cannot run."""
    missing = [tool for tool in ("unshare", "nsenter", "chroot") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        detail = f"; missing: {', '.join(missing)}" if missing else "; not running as root"
        raise PodRuntimeError(
            "running pods needs root and util-linux `unshare`, `nsenter` and coreutils "
            "`chroot` (each pod gets a private mount namespace and root, where its volume is "
            f"mounted at the pod's mount path){detail}"
        )


@dataclass
class RunningPod:
    process: subprocess.Popen[bytes]
    log_path: Path
    started: float
    mount_ns: str | None = None
    """The container's mount namespace (`mnt:[inode]`), once its leader has entered it."""


@dataclass
class PodRuntime:
    root: Path
    image_files: Mapping[str, Path] = field(default_factory=dict)
    """Files baked into the image: path in the pod -> file on the host, e.g.
    {"/usr/local/bin/tailscale": <.cache/bin/tailscale>}."""
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
        pod_dir = self.root / "pods" / pod_id
        for anchor in ("rootfs", "disk"):
            (pod_dir / anchor).mkdir(parents=True, exist_ok=True)
        log_path = self.log_path(pod_id)
        full_env = {
            "PATH": IMAGE_PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            **self.image_env,
            "RUNPOD_POD_ID": pod_id,
        }
        for entry in env:
            name, _, value = entry.partition("=")
            full_env[name] = value
        command = docker_args or "sleep infinity"
        files = [f"{target}={source}" for target, source in self.image_files.items()]
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
                    str(pod_dir),
                    str(volume),
                    mount_path or "/workspace",
                    command,
                    *files,
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
        """Every live process of the pod's container (its session and mount namespace)."""
        running = self._running.get(pod_id)
        return [] if running is None else _container_members(running)

    def shell_command(self, pod_id: str, script: str | None = None) -> list[str]:
        """A command line that runs a new login shell in the running pod (interactive, or
        running `script`), as `docker exec` would: in its mount namespace and root, with an
        environment as clean as a new terminal's (PATH from the image's /etc/profile)."""
        pid = self.pid(pod_id)
        if pid is None:
            raise PodRuntimeError(f"pod {pod_id} has no running container")
        shell = ["bash", "-l"] if script is None else ["bash", "-lc", script]
        return [
            "nsenter",
            f"--target={pid}",
            "--mount",
            "--root",
            "--wd",
            "--",
            "env",
            "-i",
            "HOME=/root",
            "TERM=" + os.environ.get("TERM", "dumb"),
            *shell,
        ]

    def stop(self, pod_id: str) -> None:
        """Kills every process of the pod's container; waits at most STOP_GRACE_S for TERM."""
        running = self._running.pop(pod_id, None)
        if running is None:
            return
        _signal_all(_container_members(running), signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while _container_members(running) and time.monotonic() < deadline:
            running.process.poll()
            time.sleep(0.1)
        _signal_all(_container_members(running), signal.SIGKILL)
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


def _mount_ns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _container_members(running: RunningPod) -> list[int]:
    """The processes of the container: the leader's session, and once the leader has made
    its mount namespace, every process in that namespace."""
    session = running.process.pid
    if running.mount_ns is None:
        leader_ns = _mount_ns(session)
        if leader_ns is not None and leader_ns != _mount_ns("self"):
            running.mount_ns = leader_ns
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
        if fields[0] == "Z":
            continue
        if int(fields[3]) == session or (
            running.mount_ns is not None and _mount_ns(entry.name) == running.mount_ns
        ):
            members.append(int(entry.name))
    return members


def _signal_all(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
