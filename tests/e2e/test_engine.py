"""The real Pulumi engine end to end: the Go-built CLI runs __main__.py from a stack file, the
dynamic pod provider runs pickled in its own process, the pod really boots the bootstrap and
joins headscale, and state, refresh and teardown behave as the README says.

The tests are the steps of one stack's life, in file order, on one sandbox (conftest.py):
each step checks its own outcome, and a failing step makes the later ones fail too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from standins.sandbox import RUNPOD_API_KEY, SANDBOX_STACK, TAILSCALE_API_KEY, Sandbox
from tests.standin_apis.api_calls import call

pytestmark = pytest.mark.e2e

HOSTNAME = "coral-machine"
TAG = "tag:coral-local"
STATE_FILE = Path("deps/runtime/tailscale/tailscaled.state")


def machine(outputs: dict[str, Any]) -> dict[str, Any]:
    return dict(outputs["machines"][HOSTNAME])


def only_node(sandbox: Sandbox) -> dict[str, Any]:
    nodes = sandbox.headscale.nodes_named(HOSTNAME)
    assert len(nodes) == 1, nodes
    return nodes[0]


def resources(sandbox: Sandbox) -> list[dict[str, Any]]:
    export = json.loads(sandbox.pulumi("stack", "export").stdout)
    return list(export["deployment"].get("resources") or [])


def running_pod_pid(sandbox: Sandbox, pod_id: str) -> int:
    [pod] = [p for p in sandbox.runpod.pods() if p.id == pod_id]
    assert pod.desired_status == "RUNNING"
    assert sandbox.runpod.runtime is not None
    pid = sandbox.runpod.runtime.pid(pod_id)
    assert pid is not None, f"pod {pod_id} has no running start command"
    return pid


@pytest.fixture(scope="module")
def first_up(sandbox: Sandbox) -> dict[str, Any]:
    return sandbox.up()


def test_up_runs_the_pod_joins_the_tailnet_and_pins_the_device(
    sandbox: Sandbox, first_up: dict[str, Any]
) -> None:
    out = machine(first_up)
    running_pod_pid(sandbox, out["podId"])
    runtime = sandbox.runpod.runtime
    assert runtime is not None
    # The pod runs the Go-built daemon the "image" has in /usr/local/bin; nothing was downloaded.
    built = (sandbox.bin_dir / "tailscaled").stat()
    executables = {}
    for process in runtime.processes(out["podId"]):
        with contextlib.suppress(OSError):
            exe = os.stat(f"/proc/{process}/exe")
            executables[os.readlink(f"/proc/{process}/exe")] = (exe.st_dev, exe.st_ino)
    [daemon] = [path for path in executables if path.endswith("/usr/local/bin/tailscaled")]
    assert executables[daemon] == (built.st_dev, built.st_ino)
    assert "downloading" not in runtime.log_path(out["podId"]).read_text()

    node = only_node(sandbox)
    assert node["given_name"] == HOSTNAME
    assert node["tags"] == [TAG]
    assert sorted(out["tailscaleIps"]) == sorted(node["ip_addresses"])
    assert out["deviceId"] == f"n{node['id']}CNTRL"
    assert out["magicDnsName"] == f"{HOSTNAME}.coral.test"
    assert f"HostName {HOSTNAME}.coral.test" in first_up["sshConfig"]

    # Device settings went through the Tailscale API, after the device joined.
    assert sandbox.tailscale_api.device_extras(out["deviceId"]) == (True, True)
    calls = sandbox.tailscale_api.calls
    assert ("POST", f"/device/{out['deviceId']}/tags") in calls
    assert calls.index(("POST", "/tailnet/-/acl")) < calls.index(("POST", "/tailnet/-/keys"))

    # The identity lives on the network volume, outside the pod.
    [volume] = sandbox.runpod.volumes()
    assert (runtime.volume_dir(out["podId"], volume.id) / STATE_FILE).is_file()


def test_owner_reaches_the_pod_by_tailscale_ssh(sandbox: Sandbox, first_up: dict[str, Any]) -> None:
    """Headscale started with Tailscale's default policy (SSH only to your own devices): the
    owner gets into the tagged machine only through the rules `pulumi up` wrote via the API."""
    laptop = sandbox.start_laptop([HOSTNAME])
    result = laptop.ssh(f"root@{HOSTNAME}", "ls", "/workspace/deps/runtime/tailscale")
    assert result.returncode == 0, result.stderr
    # The session runs inside the pod: its /workspace is the network volume.
    assert "tailscaled.state" in result.stdout.split()


def test_second_up_changes_nothing(sandbox: Sandbox, first_up: dict[str, Any]) -> None:
    pod_id = machine(first_up)["podId"]
    pid = running_pod_pid(sandbox, pod_id)
    sandbox.tailscale_api.calls.clear()
    second = sandbox.pulumi(
        "up", "--yes", "--expect-no-changes", "--suppress-progress", check=False
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert running_pod_pid(sandbox, pod_id) == pid
    assert [c for c in sandbox.tailscale_api.calls if c[0] != "GET"] == []


def test_preview_of_an_unchanged_stack_shows_no_changes(
    sandbox: Sandbox, first_up: dict[str, Any]
) -> None:
    preview = sandbox.pulumi("preview", "--expect-no-changes", check=False)
    assert preview.returncode == 0, preview.stdout + preview.stderr


def test_key_rotation_does_not_touch_the_pod(sandbox: Sandbox, first_up: dict[str, Any]) -> None:
    pod_id = machine(first_up)["podId"]
    pid = running_pod_pid(sandbox, pod_id)
    [old_key] = sandbox.tailscale_api.key_ids
    sandbox.runpod.reset_calls()

    sandbox.pulumi("config", "set", "--path", "coral:tailnet.authKey.description", "rotated key")
    out = machine(sandbox.up())

    [new_key] = sandbox.tailscale_api.key_ids
    assert new_key != old_key
    assert out["podId"] == pod_id
    assert running_pod_pid(sandbox, pod_id) == pid
    mutations = {"podEditJob", "podStop", "podResume", "podTerminate", "podFindAndDeployOnDemand"}
    assert not [c.op for c in sandbox.runpod.calls if c.op in mutations]


def test_a_key_deleted_by_hand_is_replaced_after_refresh(
    sandbox: Sandbox, first_up: dict[str, Any]
) -> None:
    """The provider keeps an invalid key in state, marked `invalid`, and the next diff replaces
    it because the stack says `recreateIfInvalid: always`; the pod keeps running."""
    pod_id = machine(first_up)["podId"]
    pid = running_pod_pid(sandbox, pod_id)
    [old_key] = sandbox.tailscale_api.key_ids
    deleted = call(
        sandbox.tailscale_api, "DELETE", f"tailnet/-/keys/{old_key}", token=TAILSCALE_API_KEY
    )
    assert deleted[0] == 200

    sandbox.pulumi("refresh", "--yes", "--suppress-progress")
    [key] = [r for r in resources(sandbox) if r["type"] == "tailscale:index/tailnetKey:TailnetKey"]
    assert (key["id"], key["outputs"]["invalid"]) == (old_key, True)
    preview = sandbox.pulumi("preview", "--diff", "--suppress-progress")
    replaced = rf"\+-tailscale:index/tailnetKey:TailnetKey: \(replace\)\s+\[id={old_key}\]"
    assert re.search(replaced, preview.stdout), preview.stdout
    assert "+-1 to replace" in preview.stdout
    out = machine(sandbox.up())

    [new_key] = sandbox.tailscale_api.key_ids
    assert new_key != old_key
    assert out["podId"] == pod_id and running_pod_pid(sandbox, pod_id) == pid


def test_pod_terminated_out_of_band_comes_back_as_the_same_machine(
    sandbox: Sandbox, first_up: dict[str, Any]
) -> None:
    before = only_node(sandbox)
    old_pod = machine(sandbox.outputs())["podId"]
    sandbox.runpod.vanish(old_pod)

    # Refresh reads every resource at once: the dynamic providers' first SDK imports happen
    # in parallel threads (they used to deadlock in importlib; coral_infra/runpod/api.py).
    sandbox.pulumi("refresh", "--yes", "--suppress-progress")
    out = machine(sandbox.up())

    assert out["podId"] != old_pod
    running_pod_pid(sandbox, out["podId"])
    after = only_node(sandbox)
    assert after["id"] == before["id"]
    assert after["node_key"] == before["node_key"]
    assert after["ip_addresses"] == before["ip_addresses"]
    assert sorted(out["tailscaleIps"]) == sorted(before["ip_addresses"])


def test_prod_preview_runs_against_the_standins_only(sandbox: Sandbox) -> None:
    """The repository's prod stack in the sandbox. A second owner of the sandbox's tailnet is
    refused from the stack files before anything is created; once the sandbox's own stack
    hands the policy over, prod previews its policy, key and machine."""
    stack = sandbox.stack
    before = len(sandbox.tailscale_api.calls)
    owner = ("config", "set", "--stack", stack, "--path", "coral:tailnet.policy.owner")
    try:
        sandbox.use_stack("prod")
        refused = sandbox.pulumi("preview", "--suppress-progress", check=False)
        assert refused.returncode != 0
        assert (
            f"coral:tailnet.policy.owner: stack 'prod' and '{stack}' all own the policy of "
            f"tailnet '-' on {sandbox.headscale.url}"
        ) in refused.stdout, refused.stdout
        assert "coral:index:Machine" not in refused.stdout

        sandbox.pulumi(*owner, "false")
        preview = sandbox.pulumi("preview", "--suppress-progress")
    finally:
        sandbox.pulumi(*owner, "true")
        sandbox.pulumi("stack", "rm", "prod", "--yes", "--force", check=False)
        sandbox.use_stack(stack)
    assert "coral:index:Machine" in preview.stdout
    assert "tailscale:index:Acl" in preview.stdout
    # Preview creates nothing anywhere: no write reached the Tailscale API stand-in.
    assert [c for c in sandbox.tailscale_api.calls[before:] if c[0] != "GET"] == []


def test_no_plaintext_secret_in_state_export_or_outputs(sandbox: Sandbox) -> None:
    secrets = [RUNPOD_API_KEY, TAILSCALE_API_KEY, *sandbox.tailscale_api.minted]
    assert len(secrets) >= 4  # both API keys and at least the original and rotated auth keys
    texts = {str(path): path.read_text() for path in sandbox.state_files()}
    texts["stack export"] = sandbox.pulumi("stack", "export").stdout
    texts["stack output"] = json.dumps(sandbox.outputs())
    texts["every pulumi command's output so far"] = "\n".join(sandbox.history)
    texts["project stack file"] = (
        sandbox.project_dir / "stacks" / f"Pulumi.{sandbox.stack}.yaml"
    ).read_text()
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret ({secret[:8]}...) in plaintext in {where}"
    # The secrets are there, encrypted: the engine can show them when asked.
    shown = sandbox.pulumi("stack", "export", "--show-secrets").stdout
    assert sandbox.tailscale_api.minted[-1] in shown


def test_destroy_leaves_only_the_retained_network_volume(
    sandbox: Sandbox, first_up: dict[str, Any]
) -> None:
    pod_id = machine(sandbox.outputs())["podId"]
    assert sandbox.runpod.runtime is not None
    [volume] = sandbox.runpod.volumes()
    volume_dir = sandbox.runpod.runtime.volume_dir(pod_id, volume.id)

    sandbox.destroy()

    assert sandbox.runpod.pods() == []
    assert sandbox.runpod.runtime.pid(pod_id) is None
    assert [v.id for v in sandbox.runpod.volumes()] == [volume.id]
    assert (volume_dir / STATE_FILE).is_file()
    assert sandbox.tailscale_api.key_ids == []
    export = json.loads(sandbox.pulumi("stack", "export").stdout)
    assert export["deployment"].get("resources") in (None, [])


def test_an_owner_stack_on_a_tailnet_with_a_custom_policy_needs_overwrite_existing(
    sandbox: Sandbox,
) -> None:
    """README, adopting a policy, step 3: the tailnet's policy is no longer Tailscale's default
    (the destroyed stack left its own, as it never resets), so a new owner's first `up` meets
    the `ts-default` guard until coral:tailnet.policy.overwriteExisting is set."""
    stack = sandbox.stack
    # Only the policy (and the components above it), not a second pod.
    prefix = "urn:pulumi:adopt::coral::"
    targets = [
        f"{prefix}pulumi:pulumi:Stack::coral-adopt",
        f"{prefix}coral:index:Tailnet::tailnet",
        f"{prefix}coral:index:Tailnet$tailscale:index/acl:Acl::tailnet-policy",
    ]
    up = ["up", "--yes", "--skip-preview", "--suppress-progress"]
    for target in targets:
        up += ["--target", target]
    owner = ("config", "set", "--stack", stack, "--path", "coral:tailnet.policy.owner")
    try:
        # One owner per tailnet: the destroyed sandbox stack hands the policy over first.
        sandbox.pulumi(*owner, "false")
        sandbox.use_stack("adopt", source=SANDBOX_STACK)
        refused = sandbox.pulumi(*up, check=False)
        assert refused.returncode != 0
        assert "precondition failed, invalid old hash (412)" in refused.stdout, refused.stdout
        assert "overwriteExistingContent: true" in refused.stdout

        sandbox.pulumi("config", "set", "--path", "coral:tailnet.policy.overwriteExisting", "true")
        sandbox.pulumi(*up)
        assert sandbox.tailscale_api.calls[-1] == ("POST", "/tailnet/-/acl")
        sandbox.pulumi("destroy", "--yes", "--skip-preview", "--suppress-progress")
    finally:
        sandbox.pulumi(*owner, "true")
        sandbox.use_stack(stack)


def test_pulumi_is_the_go_built_cli(sandbox: Sandbox) -> None:
    version = subprocess.run(
        [str(sandbox.bin_dir / "pulumi"), "version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    repo = Path(__file__).resolve().parents[2]
    pins = (repo / "tools" / "versions.env").read_text()
    assert f"PULUMI_CLI_VERSION=v{version.stdout.strip()}" in pins
    # The runner scripts come from the sdk module at the Python SDK's pinned version.
    sdk_pin = re.search(r'"pulumi==([0-9.]+)"', (repo / "pyproject.toml").read_text())
    assert sdk_pin is not None
    assert f"PULUMI_PYTHON_SDK_VERSION=v{sdk_pin.group(1)}" in pins
