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
