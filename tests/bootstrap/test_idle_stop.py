"""The idle stop (idle_stop.sh, which start.sh sources when it is on): the watcher's decisions with
stand-in sessions (children of the stand-in tailscaled and sshd, as real sessions are), a stand-in
nvidia-smi, and the RunPod stand-in's REST API v2 as what the pod stops itself through (with its
own pod-scoped key); and how the watcher reaches an injected pod (in its env, beside start.sh)."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from coral_infra.bootstrap import IDLE_STOP_SCRIPT_PATH, SCRIPT_PATH, pod_env, start_command
from standins.runpod_api import RunPodStandin
from standins.runpod_records import PodSpec, StandinPod

from .conftest import FAKES, GOOD_KEY, Pod

ACCOUNT_KEY = "rpa_ACCOUNT_KEY_NEVER_IN_THE_POD_0123"
IDLE_S = 2
# Long enough for several checks after the idle time: a stop that was held off did not fire.
HELD_S = 3 * IDLE_S + 2


@pytest.fixture
def runpod() -> Iterator[RunPodStandin]:
    with RunPodStandin(ACCOUNT_KEY) as server:
        yield server


@pytest.fixture
def pod_record(runpod: RunPodStandin) -> StandinPod:
    """The pod the script runs in, as RunPod knows it."""
    return runpod.create_pod(
        PodSpec(name="coral-machine-test", image="img", gpu_type_id="NVIDIA GeForce RTX 4090"),
        id_prefix="pod_",
    )


@pytest.fixture
def idle_env(runpod: RunPodStandin, pod_record: StandinPod) -> dict[str, str]:
    """What the program and RunPod put into a pod with `idleStop`, for a short idle time."""
    return {
        "TAILSCALE_AUTHKEY": GOOD_KEY,
        "CORAL_IDLE_STOP": str(IDLE_S),
        "CORAL_IDLE_CHECK_SECONDS": "1",
        "CORAL_RUNPOD_API_URL": runpod.url,
        "RUNPOD_POD_ID": pod_record.id,
        "RUNPOD_API_KEY": pod_record.api_key,
    }


def status(runpod: RunPodStandin, pod: StandinPod) -> str:
    return runpod.pod_status(runpod.live_pod(pod.id))


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, pod: Pod) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s}s\n{idle_log(pod)}\n{pod.output}")
        time.sleep(0.1)


def idle_log(pod: Pod) -> str:
    path = pod.state_dir / "idle.log"
    return path.read_text() if path.exists() else ""


def stop_calls(runpod: RunPodStandin) -> list[str]:
    return [c.query for c in runpod.calls if c.op == "podAction"]


def test_an_idle_pod_stops_itself_with_its_pod_scoped_key(
    pod: Pod, runpod: RunPodStandin, pod_record: StandinPod, idle_env: dict[str, str]
) -> None:
    script = pod.launch(extra_env=idle_env)
    wait_until(lambda: status(runpod, pod_record) == "EXITED", 20, "the pod did not stop", pod)
    wait_until(lambda: "RunPod accepted" in idle_log(pod), 10, "no answer logged", pod)

    [call] = stop_calls(runpod)
    assert call.startswith(f"POST /v2/pods/{pod_record.id}/action")
    assert '{"action":"stop"}' in call.replace(" ", "")
    assert runpod.openapi_violations() == []
    log = idle_log(pod)
    assert f"idle stop on: this pod ({pod_record.id}) stops itself after {IDLE_S}s" in log
    assert f"idle 1s of {IDLE_S}s (no SSH session, no nvidia-smi): keep running" in log
    assert f"of {IDLE_S}s (no SSH session, no nvidia-smi): stopping this pod" in log
    assert "RunPod accepted the stop" in log and "HTTP 200" in log
    assert "asking RunPod to stop this pod" in pod.output
    # The script itself is untouched: RunPod stops the container, not the watcher.
    assert script.poll() is None
    for text in (log, pod.output, pod.read("tailscale.argv"), pod.read("tailscaled.argv")):
        assert pod_record.api_key not in text


@pytest.mark.parametrize(
    ("sessions", "count", "extra", "seen"),
    [
        ("ssh_sessions", "1", {}, "active: 1 Tailscale SSH session(s); keep running"),
        (
            "sshd_sessions",
            "2",
            {"CORAL_SSHD": "1", "CORAL_SSHD_BIN": str(FAKES / "sshd")},
            "active: 2 sshd connection(s); keep running",
        ),
    ],
    ids=["tailscale-ssh", "sshd"],
)
def test_an_open_ssh_session_holds_the_stop_off(
    pod: Pod,
    runpod: RunPodStandin,
    pod_record: StandinPod,
    idle_env: dict[str, str],
    sessions: str,
    count: str,
    extra: dict[str, str],
    seen: str,
) -> None:
    (pod.fake / sessions).write_text(f"{count}\n")
    pod.launch(extra_env={**idle_env, **extra})
    time.sleep(HELD_S)
    assert status(runpod, pod_record) == "RUNNING"
    assert stop_calls(runpod) == []
    assert seen in idle_log(pod)

    (pod.fake / sessions).write_text("0\n")
    wait_until(lambda: status(runpod, pod_record) == "EXITED", 20, "no stop after logout", pod)


def test_a_stale_sshd_pid_file_does_not_count_another_process(
    pod: Pod, runpod: RunPodStandin, pod_record: StandinPod, idle_env: dict[str, str]
) -> None:
    """A pid file left on the volume by an earlier boot may name an unrelated process now."""
    other = subprocess.Popen(["bash", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True)
    try:
        key_dir = pod.state_dir.parent / "sshd"
        key_dir.mkdir(parents=True)
        (key_dir / "sshd.pid").write_text(f"{other.pid}\n")
        pod.launch(extra_env=idle_env)
        wait_until(lambda: status(runpod, pod_record) == "EXITED", 20, "the pod did not stop", pod)
    finally:
        os.killpg(other.pid, signal.SIGKILL)
        other.wait()


@pytest.mark.parametrize(
    ("utilization", "busy"), [("3\n85\n", True), ("10\n", True), ("3\n9\n", False)]
)
def test_gpu_utilisation_at_the_threshold_holds_the_stop_off(
    pod: Pod,
    runpod: RunPodStandin,
    pod_record: StandinPod,
    idle_env: dict[str, str],
    utilization: str,
    busy: bool,
) -> None:
    (pod.fake / "gpu_utilization").write_text(utilization)
    gpu_path = f"{FAKES / 'gpu'}:{pod.env['PATH']}"
    pod.launch(extra_env={**idle_env, "PATH": gpu_path})
    busiest = max(int(v) for v in utilization.split())
    if busy:
        time.sleep(HELD_S)
        assert status(runpod, pod_record) == "RUNNING"
        assert f"active: GPU at {busiest}%; keep running" in idle_log(pod)
        (pod.fake / "gpu_utilization").write_text("0\n")
    wait_until(lambda: status(runpod, pod_record) == "EXITED", 20, "the pod did not stop", pod)
    assert "(no SSH session, GPU " in idle_log(pod)


def test_a_failing_nvidia_smi_counts_as_activity(
    pod: Pod, runpod: RunPodStandin, pod_record: StandinPod, idle_env: dict[str, str]
) -> None:
    (pod.fake / "gpu_fails").touch()
    pod.launch(extra_env={**idle_env, "PATH": f"{FAKES / 'gpu'}:{pod.env['PATH']}"})
    time.sleep(HELD_S)
    assert status(runpod, pod_record) == "RUNNING"
    assert stop_calls(runpod) == []
    assert (
        "active: GPU unknown: nvidia-smi failed: NVIDIA-SMI has failed because it couldn't "
        "communicate with the NVIDIA driver. (counted as activity); keep running"
    ) in idle_log(pod)


@pytest.mark.parametrize("refusal", ["wrong key", "no API"])
def test_a_refused_stop_is_logged_and_asked_again_never_fatal(
    pod: Pod,
    runpod: RunPodStandin,
    pod_record: StandinPod,
    idle_env: dict[str, str],
    refusal: str,
) -> None:
    env = dict(idle_env)
    if refusal == "wrong key":
        env["RUNPOD_API_KEY"] = "rpa_NOT_A_KEY_RUNPOD_KNOWS"
    else:
        env["CORAL_RUNPOD_API_URL"] = "http://127.0.0.1:9"  # discard: nothing listens
    script = pod.launch(extra_env=env)
    wait_until(lambda: idle_log(pod).count("ERROR: RunPod did not stop") >= 2, 20, "no retry", pod)
    assert status(runpod, pod_record) == "RUNNING"
    assert script.poll() is None
    assert "keep running, asking again in 1s" in idle_log(pod)
    assert "ERROR: the idle stop failed" in pod.output
    if refusal == "wrong key":
        assert "HTTP 401" in idle_log(pod)
        assert "rpa_NOT_A_KEY_RUNPOD_KNOWS" not in idle_log(pod) + pod.output


def test_without_runpods_pod_variables_the_idle_stop_is_off(
    pod: Pod, idle_env: dict[str, str]
) -> None:
    env = {k: v for k, v in idle_env.items() if k != "RUNPOD_POD_ID"}
    script = pod.launch("true", extra_env=env)
    assert script.wait(timeout=30) == 0
    assert "the idle stop needs RunPod's RUNPOD_POD_ID and RUNPOD_API_KEY" in pod.output
    assert not (pod.state_dir / "idle.log").exists()


def test_without_idle_stop_there_is_no_watcher(pod: Pod, idle_env: dict[str, str]) -> None:
    env = {k: v for k, v in idle_env.items() if k != "CORAL_IDLE_STOP"}
    script = pod.launch("true", extra_env=env)
    assert script.wait(timeout=30) == 0
    time.sleep(1.5)
    assert "idle stop" not in pod.output
    assert not (pod.state_dir / "idle.log").exists()


def test_an_injected_pod_runs_the_watcher_its_env_carries(
    pod: Pod, runpod: RunPodStandin, pod_record: StandinPod, idle_env: dict[str, str]
) -> None:
    """inject mode: the start command decodes start.sh into the pod's /tmp, where no
    idle_stop.sh is, and start.sh writes the watcher beside itself from CORAL_IDLE_STOP_B64,
    replacing whatever an earlier start left there; the idle stop fires from that file."""
    pod_tmp = pod.root / "pod-tmp"
    pod_tmp.mkdir()
    watcher = pod_tmp / "idle_stop.sh"
    watcher.write_text("start_idle_stop() { log 'a stale watcher from an earlier start'; }\n")
    program_env = pod_env(idle_stop_seconds=IDLE_S, runpod_api_url=runpod.url)
    assert program_env["CORAL_IDLE_STOP_B64"]
    for value in program_env.values():
        assert '"' not in value and "\\" not in value and "\n" not in value
    command = start_command(["sleep", "60"], script_dest=str(pod_tmp / "coral-start.sh"))
    proc = pod.launch(
        extra_env={**program_env, **idle_env, "TS_STATE_DIR": str(pod.state_dir)},
        command=shlex.split(command),
    )

    wait_until(lambda: status(runpod, pod_record) == "EXITED", 20, "the pod did not stop", pod)
    assert watcher.read_bytes() == IDLE_STOP_SCRIPT_PATH.read_bytes()
    assert "a stale watcher" not in pod.output
    assert f"idle stop on: this pod ({pod_record.id})" in idle_log(pod)
    assert proc.poll() is None  # the main command runs on; RunPod stops the container
    for text in (idle_log(pod), pod.output):
        assert pod_record.api_key not in text and GOOD_KEY not in text


def test_without_the_watcher_the_idle_stop_is_off_and_says_why(
    pod: Pod, idle_env: dict[str, str]
) -> None:
    """start.sh alone (an injected pod whose env lacks CORAL_IDLE_STOP_B64): the pod still
    comes up and runs its main command; the log says what is missing."""
    alone = pod.root / "alone"
    alone.mkdir()
    shutil.copy(SCRIPT_PATH, alone / "coral-start.sh")
    marker = pod.root / "main-ran"
    proc = pod.launch(
        extra_env=idle_env, command=["bash", str(alone / "coral-start.sh"), "touch", str(marker)]
    )
    assert proc.wait(timeout=30) == 0, pod.output
    log = pod.output
    assert marker.exists()
    assert "Tailscale SSH enabled" in log
    assert (
        f"ERROR: CORAL_IDLE_STOP is set but {alone}/idle_stop.sh is missing (inject mode: the "
        "pod's env has no CORAL_IDLE_STOP_B64); the idle stop is off"
    ) in log
    assert not (pod.state_dir / "idle.log").exists()
    assert not (alone / "idle_stop.sh").exists()


def test_the_markers_the_pod_provider_waits_for_are_what_start_sh_logs() -> None:
    from coral_infra.runpod import lifecycle

    script = SCRIPT_PATH.read_text()
    assert f'log "{lifecycle.ONLINE_MARKER}; reachable as' in script
    assert f'log "{lifecycle.OFFLINE_MARKER}; the main process starts anyway"' in script


def test_idle_log_is_capped_like_tailscaleds(
    pod: Pod, runpod: RunPodStandin, pod_record: StandinPod, idle_env: dict[str, str]
) -> None:
    pod.state_dir.mkdir(parents=True)
    (pod.state_dir / "idle.log").write_text("x" * 5000 + "\n")
    pod.launch(extra_env={**idle_env, "TS_LOG_MAX_BYTES": "4096"})
    wait_until(lambda: (pod.state_dir / "idle.log.1").exists(), 10, "no rotation", pod)
    assert (pod.state_dir / "idle.log.1").read_text().startswith("xxxx")
