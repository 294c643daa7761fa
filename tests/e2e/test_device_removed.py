"""Teardown when the machine's tailnet device was already removed by hand (admin console ->
Machines -> Remove, or the API), on its own sandbox (conftest.py): the real provider fails
the DeviceTags and DeviceKey deletes on a device that is gone, so coral-infra retains both on
delete (coral_infra/device.py) and `pulumi destroy` makes no device call at all."""

from __future__ import annotations

import json

import pytest

from standins.sandbox import TAILSCALE_API_KEY, Sandbox
from tests.standin_apis.api_calls import call

pytestmark = pytest.mark.e2e

HOSTNAME = "coral-machine"


def test_destroy_after_the_device_was_removed_by_hand_leaves_no_pod(sandbox: Sandbox) -> None:
    machine = sandbox.up()["machines"][HOSTNAME]
    pod_id, device_id = machine["podId"], machine["deviceId"]
    assert sandbox.runpod.runtime is not None
    assert sandbox.runpod.runtime.pid(pod_id) is not None
    removed = call(sandbox.tailscale_api, "DELETE", f"device/{device_id}", token=TAILSCALE_API_KEY)
    assert removed[0] == 200
    assert sandbox.headscale.nodes_named(HOSTNAME) == []
    sandbox.tailscale_api.calls.clear()

    destroyed = sandbox.pulumi(
        "destroy", "--yes", "--skip-preview", "--suppress-progress", check=False
    )

    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert sandbox.runpod.pods() == []
    assert sandbox.runpod.runtime.pid(pod_id) is None
    assert [c for c in sandbox.tailscale_api.calls if c[1].startswith("/device/")] == []
    assert sandbox.tailscale_api.key_ids == []
    export = json.loads(sandbox.pulumi("stack", "export").stdout)
    assert export["deployment"].get("resources") in (None, [])
