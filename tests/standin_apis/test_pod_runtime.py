"""Pods of the RunPod stand-in really run: the start command with the pod's env, its volume
mounted at the mount path in a private mount namespace and root, restarted by stop/resume and
edits, killed by terminate; a network volume outlives the pod; nothing of a pod shows on the
host (standins/pod_runtime.py)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from standins.pod_runtime import PodRuntime, PodRuntimeError
from standins.runpod_api import RunPodStandin

# Writes a line per start into the volume, then stays up like a container's main process.
START = "bash -c 'echo \"$GREETING $(id -u)\" >> /workspace/starts && exec sleep 300'"


def wait_until(what: str, probe: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def runpod(tmp_path: Path) -> Iterator[RunPodStandin]:
    try:
        runtime = PodRuntime(root=tmp_path)
    except PodRuntimeError as exc:
        pytest.skip(str(exc))
    standin = RunPodStandin(runtime=runtime).start()
    try:
        yield standin
    finally:
        standin.stop()


def deploy(runpod: RunPodStandin, **extra: Any) -> str:
    spec = {
        "name": "coral-machine-test",
        "imageName": "runpod/base:test",
        "gpuTypeId": "NVIDIA A40",
        "gpuCount": 1,
        "volumeMountPath": "/workspace",
        "dockerArgs": START,
        "env": [{"key": "GREETING", "value": "hello"}],
        **extra,
    }
    return str(runpod.podFindAndDeployOnDemand(None, spec)["id"])


def starts(runtime: PodRuntime, pod_id: str, volume_id: str | None = None) -> list[str]:
    path = runtime.volume_dir(pod_id, volume_id) / "starts"
    return path.read_text().splitlines() if path.exists() else []


def test_a_pod_runs_its_start_command_with_its_env_and_volume(runpod: RunPodStandin) -> None:
    runtime = runpod.runtime
    assert runtime is not None
    pod_id = deploy(runpod)
    wait_until("first start", lambda: starts(runtime, pod_id) == ["hello 0"])
    assert runtime.pid(pod_id) is not None
    assert not Path("/workspace/starts").exists()  # the host's /workspace is untouched


def test_stop_kills_and_resume_restarts_on_the_same_volume(runpod: RunPodStandin) -> None:
    runtime = runpod.runtime
    assert runtime is not None
    pod_id = deploy(runpod)
    wait_until("first start", lambda: len(starts(runtime, pod_id)) == 1)
    first = runtime.pid(pod_id)

    runpod.podStop(None, {"podId": pod_id})
    assert runtime.pid(pod_id) is None
    assert first is not None and not Path(f"/proc/{first}").exists()

    runpod.podResume(None, {"podId": pod_id, "gpuCount": 1})
    wait_until("second start", lambda: len(starts(runtime, pod_id)) == 2)
    assert runtime.pid(pod_id) not in (None, first)


def test_terminate_drops_a_pod_volume_but_not_a_network_volume(runpod: RunPodStandin) -> None:
    runtime = runpod.runtime
    assert runtime is not None
    volume = runpod.createNetworkVolume(
        None, {"name": "ws", "size": 10, "dataCenterId": "EU-RO-1"}
    )["id"]
    on_network = deploy(runpod, networkVolumeId=volume)
    on_pod_volume = deploy(runpod, name="other")
    wait_until("both started", lambda: starts(runtime, on_network, volume) == ["hello 0"])
    wait_until("both started", lambda: starts(runtime, on_pod_volume) == ["hello 0"])

    runpod.podTerminate(None, {"podId": on_network})
    runpod.podTerminate(None, {"podId": on_pod_volume})

    assert runtime.pid(on_network) is None and runtime.pid(on_pod_volume) is None
    assert starts(runtime, on_network, volume) == ["hello 0"]
    assert not runtime.volume_dir(on_pod_volume, None).exists()

    again = deploy(runpod, name="again", networkVolumeId=volume)
    wait_until(
        "a new pod on the same network volume", lambda: len(starts(runtime, again, volume)) == 2
    )


def in_pod(runtime: PodRuntime, pod_id: str, script: str) -> subprocess.CompletedProcess[str]:
    """A new login shell in the running pod (standins/pod_runtime.py shell_command)."""
    return subprocess.run(
        runtime.shell_command(pod_id, script),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def host_mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


def test_a_pod_has_its_own_root_tmp_and_run_and_creates_nothing_on_the_host(
    tmp_path: Path,
) -> None:
    """Its mount point, its /tmp and /run, and the image's files exist only in the pod; the
    host keeps no directory, file or mount of it, during or after."""
    tag = uuid.uuid4().hex[:12]
    mount_path = f"/coral-test-volume-{tag}"  # a path no other process could be creating
    image_file = f"/usr/local/bin/coral-test-{tag}"
    (tmp_path / "tool").write_text("#!/bin/sh\necho image tool\n")
    (tmp_path / "tool").chmod(0o755)
    try:
        runtime = PodRuntime(root=tmp_path / "rt", image_files={image_file: tmp_path / "tool"})
    except PodRuntimeError as exc:
        pytest.skip(str(exc))
    start = (
        f"echo {tag} > /tmp/{tag}; echo {tag} > /run/{tag}; echo {tag} > /usr/local/bin/w-{tag}; "
        f"touch {mount_path}/ready; exec sleep 300"
    )
    runtime.start("p1", env=[], docker_args=start, mount_path=mount_path, network_volume_id=None)
    runtime.start("p2", env=[], docker_args=start, mount_path=mount_path, network_volume_id=None)
    try:
        for pod_id in ("p1", "p2"):
            ready = runtime.volume_dir(pod_id, None) / "ready"
            wait_until(f"{pod_id} started", ready.exists)
        seen = in_pod(
            runtime,
            "p1",
            f"cat /tmp/{tag} /run/{tag}; coral-test-{tag}; findmnt -n -o FSTYPE /tmp; "
            f"findmnt -n -o FSTYPE /run; ls -d {mount_path}; echo $PATH",
        )
        assert seen.returncode == 0, seen.stderr
        lines = seen.stdout.splitlines()
        assert lines[:5] == [tag, tag, "image tool", "tmpfs", "tmpfs"]
        assert lines[5] == mount_path
        assert "/usr/local/bin" in lines[6].split(":")
        # Two pods: two /tmp (the bootstrap's /tmp/coral-start.sh no longer races).
        both = in_pod(runtime, "p2", f"ls /tmp; echo {tag}-p2 > /tmp/{tag}; cat /tmp/{tag}")
        assert both.stdout.split() == [tag, f"{tag}-p2"]
        assert in_pod(runtime, "p1", f"cat /tmp/{tag}").stdout.strip() == tag
        for host_path in (mount_path, f"/tmp/{tag}", f"/run/{tag}", image_file):
            assert not Path(host_path).exists(), f"{host_path} leaked onto the host"
        assert not Path(f"/usr/local/bin/w-{tag}").exists()
        assert "coral-pod-root" not in host_mounts()
        assert "coral-pod" not in host_mounts()
    finally:
        runtime.close()
    assert runtime.processes("p1") == [] and runtime.pid("p2") is None
    assert not Path(mount_path).exists()
    assert "coral-pod" not in host_mounts()


def test_stop_reaches_a_process_that_left_the_pods_session(runpod: RunPodStandin) -> None:
    """A shell a Tailscale SSH session starts runs in a session of its own; stopping the pod
    still stops it (everything in the container's mount namespace goes)."""
    runtime = runpod.runtime
    assert runtime is not None
    pod_id = deploy(runpod)
    wait_until("first start", lambda: len(starts(runtime, pod_id)) == 1)
    escaped = in_pod(runtime, pod_id, "setsid sleep 300 > /dev/null 2>&1 < /dev/null & echo $!")
    pid = int(escaped.stdout.strip())
    assert pid in runtime.processes(pod_id)

    runpod.podStop(None, {"podId": pod_id})

    wait_until("the escaped process to die", lambda: not Path(f"/proc/{pid}").exists())
