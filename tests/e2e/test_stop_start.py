"""Stopped pods and idle cost, end to end on the sandbox (real engine, real bootstrap, headscale):
a pod stopped out of band previews as a start, never a replacement, and `pulumi up` brings it
back as the same node; `coral stop` / `coral start` / `coral status` work from the user's side;
the idle stop fires in the pod after a short idle time, and an open SSH session holds it off.

The tests are the steps of one stack's life, in file order, on one sandbox (conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coral_infra.bootstrap import IDLE_STOP_SCRIPT_PATH
from standins.sandbox import RUNPOD_API_KEY, Sandbox

pytestmark = pytest.mark.e2e

HOSTNAME = "coral-machine"
IDLE_LOG = Path("deps/runtime/tailscale/idle.log")
IDLE_STOP = "30s"
CHECK_S = "2"
CORAL_TIMEOUT_S = 300.0


def machine(outputs: dict[str, Any]) -> dict[str, Any]:
    return dict(outputs["machines"][HOSTNAME])


def only_node(sandbox: Sandbox) -> dict[str, Any]:
    [node] = sandbox.headscale.nodes_named(HOSTNAME)
    return node


def pod_status(sandbox: Sandbox, pod_id: str) -> str:
    return sandbox.runpod.pod_status(sandbox.runpod.live_pod(pod_id))


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s:.0f}s")
        time.sleep(0.5)


def identity(sandbox: Sandbox, outputs: dict[str, Any]) -> dict[str, Any]:
    node = only_node(sandbox)
    out = machine(outputs)
    return {
        "pod": out["podId"],
        "device": out["deviceId"],
        "ips": sorted(out["tailscaleIps"]),
        "node": node["id"],
        "node_key": node["node_key"],
        "node_ips": sorted(node["ip_addresses"]),
        "ssh_config": out["sshConfig"],
    }


def ssh_works(sandbox: Sandbox) -> None:
    """The owner's laptop gets in by Tailscale SSH, into the pod with its volume."""
    assert sandbox.laptop is not None
    result = sandbox.laptop.ssh(f"root@{HOSTNAME}", "ls", "/workspace/deps/runtime/tailscale")
    assert result.returncode == 0, result.stderr
    assert "tailscaled.state" in result.stdout.split()


def coral(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    """The `coral` command as a user runs it in the project directory: the Go-built pulumi on
    PATH, a laptop `tailscale` (a wrapper naming its socket), the stack's secrets for the key."""
    assert sandbox.laptop is not None
    wrapper = sandbox.testbed.path("laptop-bin") / "tailscale"
    if not wrapper.exists():
        wrapper.write_text(
            f'#!/bin/sh\nexec {sandbox.bin_dir / "tailscale"} --socket={sandbox.laptop.socket} "$@"\n'
        )
        wrapper.chmod(0o755)
    env = {**sandbox.env, "PATH": f"{wrapper.parent}:{sandbox.env['PATH']}"}
    result = subprocess.run(
        [sys.executable, "-m", "coral_infra.cli", *args],
        cwd=sandbox.project_dir,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True,
        text=True,
        timeout=CORAL_TIMEOUT_S,
        check=False,
    )
    sandbox.history.append(
        f"$ coral {' '.join(args)} -> {result.returncode}\n{result.stdout}{result.stderr}"
    )
    return result


def status_row(sandbox: Sandbox) -> str:
    """The machine's line of `coral status`."""
    status = coral(sandbox, "status", "--stack", sandbox.stack)
    assert status.returncode == 0, status.stderr
    [row] = [line for line in status.stdout.splitlines() if line.startswith(HOSTNAME)]
    return row


@pytest.fixture(scope="module")
def first_up(sandbox: Sandbox) -> dict[str, Any]:
    outputs = sandbox.up()
    sandbox.start_laptop([HOSTNAME])
    return identity(sandbox, outputs)


def test_an_out_of_band_stop_previews_as_a_start_and_up_brings_the_same_node_back(
    sandbox: Sandbox, first_up: dict[str, Any]
) -> None:
    pod_id = first_up["pod"]
    # Stopped the way a user does it in RunPod's console: the stack knows nothing of it.
    sandbox.runpod.stop_pod(sandbox.runpod.live_pod(pod_id))
    assert sandbox.runpod.runtime is not None and sandbox.runpod.runtime.pid(pod_id) is None

    preview = sandbox.pulumi("preview", "--diff", "--suppress-progress")
    assert re.search(r'~ status *: "running" => "start \(stopped\)"', preview.stdout), (
        preview.stdout
    )
    assert "replace" not in preview.stdout.lower()
    plain = sandbox.pulumi("preview", "--suppress-progress").stdout
    assert "coral-machine-pod update [diff: ~status]" in plain, plain
    assert f"will start {HOSTNAME} (stopped): pod {pod_id} is EXITED" in plain

    # Refresh records the stopped pod as stopped, and plans no replacement either.
    sandbox.pulumi("refresh", "--yes", "--suppress-progress")
    export = json.loads(sandbox.pulumi("stack", "export").stdout)
    [pod] = [r for r in export["deployment"]["resources"] if r.get("id") == pod_id]
    assert pod["outputs"]["status"] == "stopped" and pod["inputs"]["status"] == "stopped"
    preview = sandbox.pulumi("preview", "--diff", "--suppress-progress")
    assert re.search(r'~ status *: "stopped" => "start \(stopped\)"', preview.stdout), (
        preview.stdout
    )
    assert "replace" not in preview.stdout.lower()

    up = sandbox.pulumi("up", "--yes", "--suppress-progress")
    assert "replace" not in up.stdout.lower(), up.stdout
    assert pod_status(sandbox, pod_id) == "RUNNING"
    after = identity(sandbox, sandbox.outputs())
    assert after == first_up  # same pod, device, node key, IPs and SSH config
    ssh_works(sandbox)
    # Nothing else to do: the next preview is empty.
    assert sandbox.pulumi("preview", "--expect-no-changes", check=False).returncode == 0


def test_coral_stop_status_and_start(sandbox: Sandbox, first_up: dict[str, Any]) -> None:
    pod_id = first_up["pod"]
    stopped = coral(sandbox, "stop", f"{sandbox.stack}/{HOSTNAME}")
    assert stopped.returncode == 0, stopped.stderr
    assert f"{HOSTNAME} (pod {pod_id}) is stopped" in stopped.stdout
    assert pod_status(sandbox, pod_id) == "EXITED"
    wait_until(lambda: "offline (last seen" in status_row(sandbox), 90, "still online")
    row = status_row(sandbox)
    assert f"EXITED ({pod_id})" in row and "GPU not billed (stopped)" in row

    started = coral(sandbox, "start", f"{sandbox.stack}/{HOSTNAME}")
    assert started.returncode == 0, started.stderr
    assert f"{HOSTNAME} is online on the tailnet again after" in started.stdout
    assert pod_status(sandbox, pod_id) == "RUNNING"
    selected = coral(sandbox, "status")  # the stack `pulumi stack select` chose
    assert selected.returncode == 0, selected.stderr
    row = status_row(sandbox)
    assert f"RUNNING ({pod_id})" in row and "$0.69/h" in row
    wait_until(lambda: "online 100." in status_row(sandbox), 60, "not online for the laptop")
    ssh_works(sandbox)
    for result in (stopped, selected, started):
        assert RUNPOD_API_KEY not in result.stdout + result.stderr
    assert identity(sandbox, sandbox.outputs()) == first_up


def idle_log(sandbox: Sandbox, pod_id: str) -> str:
    runtime = sandbox.runpod.runtime
    assert runtime is not None
    [volume] = sandbox.runpod.volumes()
    path = runtime.volume_dir(pod_id, volume.id) / IDLE_LOG
    return path.read_text() if path.exists() else ""


def test_the_idle_stop_fires_and_an_open_ssh_session_holds_it_off(
    sandbox: Sandbox, first_up: dict[str, Any]
) -> None:
    pod_id = first_up["pod"]
    runtime = sandbox.runpod.runtime
    assert runtime is not None and sandbox.laptop is not None
    # The sandbox's "image" checks every 2 s instead of every minute (a watcher knob, not a
    # stack setting); the stack says 20s, allowed only because RunPod here is on loopback.
    runtime.image_env = {**runtime.image_env, "CORAL_IDLE_CHECK_SECONDS": CHECK_S}
    sandbox.pulumi("config", "set", "--path", "coral:machines[0].idleStop", IDLE_STOP)
    session = None
    try:
        sandbox.up()  # the env changed: the pod restarts with the watcher
        session = sandbox.laptop.start_ssh(
            f"root@{HOSTNAME}", "sleep", "600", output_dir=sandbox.testbed.path("idle-ssh")
        )
        wait_until(
            lambda: "active: 1 Tailscale SSH session(s)" in idle_log(sandbox, pod_id),
            60,
            "the watcher did not see the SSH session",
        )
        # The watcher reached the injected pod in its env: start.sh wrote it beside itself.
        carried = subprocess.run(
            runtime.shell_command(pod_id, "sha256sum /tmp/idle_stop.sh"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        watcher = hashlib.sha256(IDLE_STOP_SCRIPT_PATH.read_bytes()).hexdigest()
        assert carried.stdout.split()[:1] == [watcher], carried.stdout + carried.stderr
        time.sleep(40)  # longer than the idle time: the open session holds the stop off
        assert pod_status(sandbox, pod_id) == "RUNNING", idle_log(sandbox, pod_id)
        assert "stopping this pod" not in idle_log(sandbox, pod_id)

        os.killpg(session.pid, signal.SIGTERM)
        session.wait(timeout=30)
        session = None
        wait_until(lambda: pod_status(sandbox, pod_id) == "EXITED", 90, "no idle stop")
    finally:
        if session is not None:
            os.killpg(session.pid, signal.SIGKILL)
    log = idle_log(sandbox, pod_id)
    assert "idle stop on: this pod" in log
    assert "of 30s (no SSH session, no nvidia-smi): stopping this pod" in log
    assert runtime.pid(pod_id) is None  # the container really stopped
    assert RUNPOD_API_KEY not in log
    assert [c for c in sandbox.runpod.calls if c.op == "podAction" and '"stop"' in c.query]

    # `up` brings it back, as the same machine, now without the idle stop.
    sandbox.pulumi("config", "rm", "--path", "coral:machines[0].idleStop")
    after = identity(sandbox, sandbox.up())
    assert pod_status(sandbox, pod_id) == "RUNNING"
    assert after == first_up
    ssh_works(sandbox)
