"""Pods of the RunPod stand-in really run: the start command with the pod's env, its volume
mounted at the mount path in a private mount namespace, restarted by stop/resume and edits,
killed by terminate; a network volume outlives the pod (standins/pod_runtime.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from standins.pod_runtime import PodRuntime, PodRuntimeError
from standins.runpod_account import PodSpec
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
    spec = PodSpec(
        **{
            "name": "coral-machine-test",
            "image": "runpod/base:test",
            "gpu_type_id": "NVIDIA A40",
            "volume_mount_path": "/workspace",
            "docker_args": START,
            "env": {"GREETING": "hello"},
            **extra,
        }
    )
    return runpod.create_pod(spec).id


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

    runpod.stop_pod(runpod.live_pod(pod_id))
    assert runtime.pid(pod_id) is None
    assert first is not None and not Path(f"/proc/{first}").exists()

    runpod.start_pod(runpod.live_pod(pod_id))
    wait_until("second start", lambda: len(starts(runtime, pod_id)) == 2)
    assert runtime.pid(pod_id) not in (None, first)


def test_terminate_drops_a_pod_volume_but_not_a_network_volume(runpod: RunPodStandin) -> None:
    runtime = runpod.runtime
    assert runtime is not None
    volume = runpod.create_volume("ws", 10, "EU-RO-1").id
    on_network = deploy(runpod, network_volume_id=volume)
    on_pod_volume = deploy(runpod, name="other")
    wait_until("both started", lambda: starts(runtime, on_network, volume) == ["hello 0"])
    wait_until("both started", lambda: starts(runtime, on_pod_volume) == ["hello 0"])

    runpod.terminate_pod(runpod.live_pod(on_network))
    runpod.terminate_pod(runpod.live_pod(on_pod_volume))

    assert runtime.pid(on_network) is None and runtime.pid(on_pod_volume) is None
    assert starts(runtime, on_network, volume) == ["hello 0"]
    assert not runtime.volume_dir(on_pod_volume, None).exists()

    again = deploy(runpod, name="again", network_volume_id=volume)
    wait_until(
        "a new pod on the same network volume", lambda: len(starts(runtime, again, volume)) == 2
    )
