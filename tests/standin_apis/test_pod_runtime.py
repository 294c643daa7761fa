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
from standins.runpod_records import PodSpec
from tests.standin_apis.runpod_client import RunPodClient, pod_body, read_events

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
    standin = RunPodStandin("rpa_RUNTIME_TEST_KEY", runtime=runtime).start()
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


# Prints RunPod's own variables, a few numbered lines, then stays up.
REPORT = (
    'echo "pod=$RUNPOD_POD_ID key=$RUNPOD_API_KEY dc=$RUNPOD_DC_ID"; '
    "for n in 1 2 3; do echo line-$n; done; exec sleep 300"
)


def test_a_pod_gets_runpods_variables_and_a_key_for_itself_only(runpod: RunPodStandin) -> None:
    runtime = runpod.runtime
    assert runtime is not None
    client = RunPodClient(runpod.url, runpod.api_key)
    body = pod_body(args=REPORT, mounts={"persistent": {"size": 10, "path": "/workspace"}})
    pod_id = client.v2("POST", "/v2/pods", body).json()["id"]
    other = client.v2("POST", "/v2/pods", pod_body("other")).json()["id"]
    wait_until("the report", lambda: "line-3" in runtime.log_path(pod_id).read_text())
    report = next(
        line for line in runtime.log_path(pod_id).read_text().splitlines() if "pod=" in line
    )
    pod_key = report.split("key=")[1].split()[0]
    assert report == f"pod={pod_id} key={pod_key} dc=EU-RO-1"
    assert pod_key.startswith("rpa_") and pod_key != runpod.api_key

    # RunPod's variables are not the user's env: GET returns the env as it was given.
    assert client.v2("GET", f"/v2/pods/{pod_id}").json()["env"] == {
        "CORAL_HOSTNAME": "coral-machine"
    }
    gql = client.graphql(f'query {{ pod(input: {{podId: "{pod_id}"}}) {{ env }} }}')
    assert gql["data"]["pod"]["env"] == ["CORAL_HOSTNAME=coral-machine"]

    as_pod = RunPodClient(runpod.url, pod_key)
    assert as_pod.v2("GET", f"/v2/pods/{other}").status_code == 403
    assert as_pod.v2("GET", "/v2/pods").status_code == 403
    assert as_pod.v2("POST", f"/v2/pods/{other}/action", {"action": "stop"}).status_code == 403
    denied = as_pod.graphql(f'mutation {{ podStop(input: {{podId: "{other}"}}) {{ id }} }}')
    assert denied["errors"][0]["message"] == "This API key may only act on its own pod"
    stopped = as_pod.v2("POST", f"/v2/pods/{pod_id}/action", {"action": "stop"})
    assert stopped.status_code == 200 and stopped.json()["status"] == "EXITED"
    assert runtime.pid(pod_id) is None and runtime.pid(other) is not None
    assert runpod.openapi_violations() == []


def test_a_running_pods_console_streams_as_its_logs(runpod: RunPodStandin) -> None:
    runtime = runpod.runtime
    assert runtime is not None
    client = RunPodClient(runpod.url, runpod.api_key)
    pod_id = client.v2("POST", "/v2/pods", pod_body(args=REPORT)).json()["id"]
    wait_until("the lines", lambda: "line-3" in runtime.log_path(pod_id).read_text())

    stream = client.v2(
        "GET",
        f"/v2/pods/{pod_id}/logs",
        params={"tail": "2", "source": "container"},
        timeout=10,
        stream=True,
    )
    assert [e["data"]["line"] for e in read_events(stream, 2)] == ["line-2", "line-3"]

    follow = client.v2(
        "GET",
        f"/v2/pods/{pod_id}/logs",
        params={"tail": "0", "source": "container"},
        timeout=10,
        stream=True,
    )
    client.v2("POST", f"/v2/pods/{pod_id}/action", {"action": "restart"})
    live = read_events(follow, 1)
    assert live[0]["data"]["line"].startswith(f"--- pod {pod_id} start")
    assert runpod.openapi_violations() == []


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

    runpod.stop_pod(runpod.live_pod(pod_id))

    wait_until("the escaped process to die", lambda: not Path(f"/proc/{pid}").exists())
