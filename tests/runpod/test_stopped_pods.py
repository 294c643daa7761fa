"""Stopped is a state, not drift (coral_infra/runpod/lifecycle.py): refresh records a stopped
pod as stopped, the run's one listing of RunPod's pods asks for a start, diff plans an update
(never a replacement), the update starts the same pod; a host without free GPUs gets an error
that says what to do. On both wire formats; the online wait runs against pods that really run
(standins/pod_runtime.py). The program's side (the listing, the warning): tests/test_program.py."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coral_infra.runpod import api, lifecycle, session
from coral_infra.runpod.pod import PodProvider
from standins.pod_runtime import PodRuntime, PodRuntimeError
from standins.runpod_api import RunPodStandin
from standins.runpod_records import PodSpec
from tests.runpod.conftest import serve
from tests.runpod.helpers import API_KEY, FAST, count, pod_props

GPU = "NVIDIA GeForce RTX 4090"


def created_and_stopped(standin: RunPodStandin, **props: Any) -> tuple[str, dict[str, Any]]:
    created = PodProvider().create(pod_props(**props))
    api.stop_pod(created.id)
    standin.reset_calls()
    return created.id, dict(created.outs or {})


def test_refresh_records_a_stopped_pod_as_stopped_and_plans_a_start(
    standin: RunPodStandin,
) -> None:
    pod_id, state = created_and_stopped(standin)
    read = PodProvider().read(pod_id, state)
    assert read.id == pod_id
    assert read.inputs is not None and read.outs is not None
    assert read.inputs["status"] == read.outs["status"] == "stopped"
    assert read.outs["desired_status"] == "EXITED"
    # Every field that would replace the pod reads back as it was.
    assert {k: read.inputs[k] for k in ("gpu_type_id", "gpu_count", "volume_gb")} == {
        "gpu_type_id": "NVIDIA GeForce RTX 4090",
        "gpu_count": 1,
        "volume_gb": 10,
    }
    diff = PodProvider().diff(pod_id, read.outs, {**pod_props(), "status": "running"})
    assert (diff.changes, diff.replaces) == (True, [])


def test_one_listing_asks_for_a_start_of_each_pod_runpod_has_stopped(
    standin: RunPodStandin,
) -> None:
    running = PodProvider().create(pod_props(name="coral-a-test")).id
    stopped = PodProvider().create(pod_props(name="coral-b-test")).id
    api.stop_pod(stopped)
    standin.reset_calls()
    found = lifecycle.pods_by_name(["coral-a-test", "coral-b-test", "coral-c-test"])
    assert count(standin, "list") == 1 and len(standin.calls) == 1  # the README's count
    assert [p.id for p in found["coral-a-test"]] == [running]
    assert found["coral-c-test"] == ()
    said: list[str] = []
    assert lifecycle.requested_status(found["coral-a-test"], "coral-a", said.append) == "running"
    assert lifecycle.requested_status(found["coral-c-test"], "coral-c", said.append) == "running"
    asked = lifecycle.requested_status(found["coral-b-test"], "coral-b", said.append)
    assert asked == "start (stopped)" and said == [
        f"will start coral-b (stopped): pod {stopped} is EXITED; `up` starts the same pod, and "
        "its volume brings back the same tailnet device"
    ]
    state = PodProvider().read(stopped, pod_props(name="coral-b-test")).outs or {}
    checked = PodProvider().check(state, {**pod_props(name="coral-b-test"), "status": asked})
    assert checked.failures == [] and checked.inputs["status"] == "start (stopped)"
    diff = PodProvider().diff(stopped, {**state, "status": "running"}, checked.inputs)
    assert (diff.changes, diff.replaces) == (True, [])


def test_several_pods_with_the_name_ask_for_nothing(standin: RunPodStandin) -> None:
    """`up` keeps one of them (api.create_pod); the listing does not pick one to start."""
    first = PodProvider().create(pod_props()).id
    # A duplicate left by a create RunPod applied twice.
    standin.create_pod(PodSpec("coral-machine-test", "ghcr.io/coral/machine:1.0", GPU))
    api.stop_pod(first)
    found = lifecycle.pods_by_name(["coral-machine-test"])["coral-machine-test"]
    assert len(found) == 2
    assert lifecycle.requested_status(found, "coral-machine") == "running"


def test_check_calls_no_api(standin: RunPodStandin) -> None:
    created = PodProvider().create(pod_props())
    api.stop_pod(created.id)
    standin.reset_calls()
    assert PodProvider().check({}, pod_props()).inputs["status"] == "running"
    assert PodProvider().check(created.outs or {}, pod_props()).inputs["status"] == "running"
    assert standin.calls == []


def test_check_refuses_any_other_requested_status() -> None:
    failures = PodProvider().check({}, pod_props(status="stopped")).failures
    assert [(f.property, f.reason) for f in failures] == [
        (
            "status",
            "status must be 'running' (the run state asked for), or 'start (stopped)' for a "
            "pod found stopped",
        )
    ]


@pytest.mark.parametrize(
    ("old", "new", "changes"),
    [
        ("running", "running", False),
        (None, "running", False),  # state written before `status` existed
        ("start (stopped)", "running", False),  # outputs record what RunPod reports, not this
        ("running", "start (stopped)", True),
        ("stopped", "running", True),  # refreshed, and the lookup in check failed
        ("error", "running", True),
    ],
)
def test_diff_of_the_run_state(old: str | None, new: str, changes: bool) -> None:
    olds = {**pod_props(), "status": old}
    diff = PodProvider().diff("pod1", olds, {**pod_props(), "status": new})
    assert (diff.changes, diff.replaces) == (changes, [])


def test_update_starts_the_same_pod(standin: RunPodStandin) -> None:
    pod_id, state = created_and_stopped(standin)
    news = {**pod_props(), "status": "start (stopped)"}
    updated = PodProvider().update(pod_id, state, news)
    assert updated.outs is not None
    assert updated.outs["pod_id"] == pod_id
    assert updated.outs["status"] == "running"
    assert updated.outs["desired_status"] == "RUNNING"
    [pod] = standin.pods()
    assert pod.id == pod_id and standin.pod_status(pod) == "RUNNING"
    assert count(standin, "resume") == 1
    assert count(standin, "create") == count(standin, "terminate") == 0


def test_update_leaves_a_pod_started_meanwhile_alone(standin: RunPodStandin) -> None:
    pod_id, state = created_and_stopped(standin)
    api.resume_pod(pod_id, 1)
    standin.reset_calls()
    updated = PodProvider().update(pod_id, {**state, "status": "stopped"}, pod_props())
    assert (updated.outs or {})["status"] == "running"
    assert count(standin, "resume") == 0


def test_an_edit_of_a_stopped_pod_starts_it_with_the_new_settings(
    standin: RunPodStandin, wire: str
) -> None:
    pod_id, state = created_and_stopped(standin)
    PodProvider().update(pod_id, state, pod_props(image="ghcr.io/coral/machine:2"))
    [pod] = standin.pods()
    assert pod.image == "ghcr.io/coral/machine:2"
    assert standin.pod_status(pod) == "RUNNING"
    # v2 keeps an edit of a stopped pod for its next start; GraphQL's podEditJob starts it.
    assert count(standin, "resume") == (1 if wire == "v2" else 0)


@pytest.mark.parametrize("volume", ["pod", "network"])
def test_no_free_gpu_on_the_host_says_so_and_what_to_do(
    standin: RunPodStandin, wire: str, volume: str
) -> None:
    props: dict[str, Any] = {}
    if volume == "network":
        props = {"network_volume_id": api.create_volume("ws", 10, "EU-RO-1").id, "volume_gb": 0}
    pod_id, state = created_and_stopped(standin, **props)
    standin.free_gpus["NVIDIA GeForce RTX 4090"] = 0
    news = {**pod_props(**props), "status": "start (stopped)"}
    with pytest.raises(api.RunPodCapacityError) as raised:
        PodProvider().update(pod_id, state, news)
    message = str(raised.value)
    assert message.startswith(
        f"pod {pod_id} is stopped and RunPod cannot start it: its host machine has no free "
        "1 x NVIDIA GeForce RTX 4090 right now, and a stopped pod can only start on its own host"
    )
    assert "wait and try again later (`pulumi up` or `coral start <stack>/<host>`)" in message
    assert "change its gpuType (or cloudType/dataCenter)" in message
    assert "not enough free GPUs on the host machine" in message  # RunPod's own words
    if volume == "network":
        assert "rejoins as the same device" in message
    else:
        assert "a fresh volume and joins the tailnet as a new device" in message
    [pod] = standin.pods()
    assert pod.id == pod_id and standin.pod_status(pod) == "EXITED"


# --- the online wait, against pods that really run -------------------------------------------

# A stand-in bootstrap: counts its boots on the volume and, from the second boot on, reports the
# device online only after a pause, so a wait that took the first boot's line would be early.
BOOT = (
    "bash -c 'n=$(( $(cat /workspace/boots 2>/dev/null || echo 0) + 1 )); echo $n > "
    '/workspace/boots; echo "boot $n"; if [ $n -gt 1 ]; then sleep 1.5; fi; '
    'echo "$(date -u +%FT%TZ) [coral-bootstrap] $REPORT"; exec sleep 300\''
)
ONLINE = "Tailscale SSH enabled; reachable as coral-test (100.64.0.9)"
GAVE_UP = "continuing without a working tailnet connection; the main process starts anyway"


@pytest.fixture
def running(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wire: str) -> Iterator[RunPodStandin]:
    try:
        runtime = PodRuntime(root=tmp_path / "runpod")
    except PodRuntimeError as exc:
        pytest.skip(str(exc))
    yield from serve(RunPodStandin(API_KEY, runtime=runtime), monkeypatch, tmp_path, wire)


def boot_pod(running: RunPodStandin, report: str) -> str:
    env = {"TS_HOSTNAME": "coral-test", "REPORT": report}
    created = PodProvider().create(pod_props(docker_args=BOOT, env=env))
    deadline = time.monotonic() + 10
    while "boot 1" not in "\n".join(api.pod_log(created.id)):
        assert time.monotonic() < deadline, "the pod's first boot logged nothing"
        time.sleep(0.1)
    api.stop_pod(created.id)
    return created.id


@pytest.fixture
def patient(running: RunPodStandin, monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits long enough for real processes (after `running` set the tiny ones)."""
    monkeypatch.setattr(
        session,
        "timing",
        dataclasses.replace(
            FAST, start_deadline=10.0, online_deadline=6.0, poll_interval=0.2, retry_budget=5.0
        ),
    )


def test_start_waits_for_this_boots_online_report(running: RunPodStandin, patient: None) -> None:
    pod_id = boot_pod(running, ONLINE)
    said: list[str] = []
    began = time.monotonic()
    pod = lifecycle.start_machine(pod_id, hostname="coral-test", progress=said.append)
    assert time.monotonic() - began >= 1.5  # not the first boot's line, which was there already
    assert pod.id == pod_id and pod.running
    assert said[0] == f"coral-test (pod {pod_id}) is EXITED: starting it"
    assert said[-1].startswith("coral-test is online on the tailnet again after ")
    assert "boot 2" in "\n".join(api.pod_log(pod_id))


def test_a_bootstrap_that_gives_up_fails_the_start_with_its_log(
    running: RunPodStandin, patient: None
) -> None:
    pod_id = boot_pod(running, GAVE_UP)
    with pytest.raises(lifecycle.MachineOfflineError) as raised:
        lifecycle.start_machine(pod_id, hostname="coral-test")
    message = str(raised.value)
    assert f"coral-test (pod {pod_id}) runs again, but its bootstrap could not bring it" in message
    assert f"line(s) of pod {pod_id}'s container log" in message and "boot 2" in message


def test_a_silent_bootstrap_fails_the_start_after_the_deadline(
    running: RunPodStandin, patient: None
) -> None:
    pod_id = boot_pod(running, "still thinking")
    began = time.monotonic()
    with pytest.raises(lifecycle.MachineOfflineError, match="did not report the device online"):
        lifecycle.start_machine(pod_id, hostname="coral-test")
    assert time.monotonic() - began >= session.timing.online_deadline


def test_stop_machine_stops_and_a_stopped_one_stays_stopped(standin: RunPodStandin) -> None:
    created = PodProvider().create(pod_props())
    said: list[str] = []
    stopped = lifecycle.stop_machine(created.id, hostname="coral-test", progress=said.append)
    assert lifecycle.observed(stopped) == "stopped"
    assert said == [f"stopping coral-test (pod {created.id})"]
    standin.reset_calls()
    lifecycle.stop_machine(created.id, hostname="coral-test")
    assert count(standin, "stop") == 0
