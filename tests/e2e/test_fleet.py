"""Five machines in one stack, with the real engine: five pods booting side by side, each in a
container of its own as on RunPod (its own mount namespace and root, /tmp, /run and volume),
five devices on the tailnet, five network volumes, and Tailscale SSH into two of them.

The stack file is derived here from stacks/Pulumi.local.yaml: its one machine, five times under
five hostnames (stacks/ keeps one file per environment; a fleet is the same environment).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from coral_infra.bootstrap import SCRIPT_PATH
from standins.binaries import REPO_ROOT
from standins.pod_runtime import PodRuntime
from standins.sandbox import Sandbox
from tests.e2e.conftest import sandbox_on

pytestmark = pytest.mark.e2e

STACK = "fleet"
HOSTNAMES = [f"coral-machine-{n}" for n in range(1, 6)]
TAG = "tag:coral-local"
STATE_FILE = Path("deps/runtime/tailscale/tailscaled.state")
BOOTSTRAP_COPY = "/tmp/coral-start.sh"
"""Where the inject start command decodes start.sh: in the pod's own /tmp."""


def fleet_stack_file(project_dir: Path) -> None:
    """Replaces the sandbox's copy of the local stack's one machine by five (after the sandbox
    set its run-time config in the same file: URLs and encrypted stand-in credentials)."""
    [machine] = yaml.safe_load((REPO_ROOT / "stacks" / "Pulumi.local.yaml").read_text())["config"][
        "coral:machines"
    ]
    path = project_dir / "stacks" / f"Pulumi.{STACK}.yaml"
    stack = yaml.safe_load(path.read_text())
    stack["config"]["coral:machines"] = [{**machine, "hostname": name} for name in HOSTNAMES]
    path.write_text(yaml.safe_dump(stack, sort_keys=False))


@pytest.fixture(scope="module")
def fleet(tools_dir: Path) -> Iterator[Sandbox]:
    with sandbox_on(tools_dir, STACK) as box:
        fleet_stack_file(box.project_dir)
        yield box


@pytest.fixture(scope="module")
def outputs(fleet: Sandbox) -> dict[str, Any]:
    return fleet.up()


def runtime(fleet: Sandbox) -> PodRuntime:
    assert fleet.runpod.runtime is not None
    return fleet.runpod.runtime


def in_pod(fleet: Sandbox, pod_id: str, script: str) -> str:
    """Runs `script` in a new login shell in the running pod, as RunPod's web terminal does."""
    done = subprocess.run(
        runtime(fleet).shell_command(pod_id, script),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_up_makes_five_devices_on_five_network_volumes(
    fleet: Sandbox, outputs: dict[str, Any]
) -> None:
    machines = outputs["machines"]
    assert sorted(machines) == HOSTNAMES

    nodes = {node["given_name"]: node for node in fleet.headscale.nodes()}
    assert sorted(nodes) == HOSTNAMES
    for name in HOSTNAMES:
        assert nodes[name]["tags"] == [TAG]
        assert machines[name]["deviceId"] == f"n{nodes[name]['id']}CNTRL"
        assert sorted(machines[name]["tailscaleIps"]) == sorted(nodes[name]["ip_addresses"])

    pods = {pod.id: pod for pod in fleet.runpod.pods()}
    volumes = {volume.id for volume in fleet.runpod.volumes()}
    pod_ids = [machines[name]["podId"] for name in HOSTNAMES]
    assert sorted(pods) == sorted(pod_ids)
    assert len(volumes) == 5
    assert {pods[pod_id].network_volume_id for pod_id in pod_ids} == volumes
    # Five identities, each on its own volume: five different node keys.
    states = {
        pod_id: (
            runtime(fleet).volume_dir(pod_id, pods[pod_id].network_volume_id) / STATE_FILE
        ).read_bytes()
        for pod_id in pod_ids
    }
    assert len({sha256(state) for state in states.values()}) == 5
    assert len({node["node_key"] for node in nodes.values()}) == 5


def test_each_pod_has_a_container_of_its_own(fleet: Sandbox, outputs: dict[str, Any]) -> None:
    """What collided when pods shared the host's /tmp and /run: the decoded bootstrap (one pod
    read another's half-written copy) and tailscaled's socket at the CLI's default path."""
    script = sha256(SCRIPT_PATH.read_bytes())
    namespaces = set()
    for name in HOSTNAMES:
        pod_id = outputs["machines"][name]["podId"]
        pid = runtime(fleet).pid(pod_id)
        assert pid is not None
        namespaces.add(os.readlink(f"/proc/{pid}/ns/mnt"))
        # The pod's own copy of the bootstrap, whole, in its own /tmp.
        assert in_pod(fleet, pod_id, f"sha256sum {BOOTSTRAP_COPY}").split()[0] == script
        # A plain `tailscale status` in the pod reaches this pod's tailscaled, on the socket
        # at /var/run/tailscale/tailscaled.sock that every pod has, each in its own /run.
        me = json.loads(in_pod(fleet, pod_id, "tailscale status --json"))["Self"]
        assert me["HostName"] == name
        assert sorted(me["TailscaleIPs"]) == sorted(outputs["machines"][name]["tailscaleIps"])
    assert len(namespaces) == 5


@pytest.mark.parametrize("name", [HOSTNAMES[1], HOSTNAMES[3]])
def test_owner_reaches_a_machine_of_the_fleet_by_tailscale_ssh(
    fleet: Sandbox, outputs: dict[str, Any], name: str
) -> None:
    laptop = fleet.laptop or fleet.start_laptop(HOSTNAMES)
    result = laptop.ssh(f"root@{name}", "sha256sum", f"/workspace/{STATE_FILE}")
    assert result.returncode == 0, result.stderr
    # The session ran in that machine's pod: its /workspace is that machine's network volume.
    pod_id = outputs["machines"][name]["podId"]
    [pod] = [p for p in fleet.runpod.pods() if p.id == pod_id]
    volume = runtime(fleet).volume_dir(pod_id, pod.network_volume_id)
    assert result.stdout.split()[0] == sha256((volume / STATE_FILE).read_bytes())


def test_destroy_terminates_all_five_pods_and_keeps_the_volumes(
    fleet: Sandbox, outputs: dict[str, Any]
) -> None:
    fleet.destroy()
    assert fleet.runpod.pods() == []
    for name in HOSTNAMES:
        assert runtime(fleet).pid(outputs["machines"][name]["podId"]) is None
    assert len(fleet.runpod.volumes()) == 5  # retainOnDestroy
