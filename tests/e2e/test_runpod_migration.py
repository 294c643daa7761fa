"""A live stack moves from RunPod's GraphQL API to REST API v2 with nothing replaced or
restarted: the real Pulumi engine, the pod really running, one RunPod account serving both APIs
(standins/runpod_api.py), so the pod and volume GraphQL made are the ones v2 reads.

The tests are the steps of the move, in file order, on one sandbox (conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from standins.sandbox import Sandbox
from tests.e2e.test_engine import machine, running_pod_pid

pytestmark = pytest.mark.e2e

# Every call that changes a pod or a volume, on either API.
MUTATIONS = {
    "podFindAndDeployOnDemand",
    "podEditJob",
    "podStop",
    "podResume",
    "podTerminate",
    "createNetworkVolume",
    "updateNetworkVolume",
    "deleteNetworkVolume",
    "createPod",
    "updatePod",
    "deletePod",
    "podAction",
}


def use_api(sandbox: Sandbox, api: str) -> None:
    sandbox.pulumi("config", "set", "--path", "coral:runpod.api", api)


def apis_called(sandbox: Sandbox) -> set[str]:
    return {call.api for call in sandbox.runpod.calls}


@pytest.fixture(scope="module")
def on_graphql(sandbox: Sandbox) -> dict[str, Any]:
    """The stack as a user of the GraphQL API has it today."""
    use_api(sandbox, "graphql")
    sandbox.runpod.reset_calls()
    return sandbox.up()


def test_the_stack_comes_up_over_graphql(sandbox: Sandbox, on_graphql: dict[str, Any]) -> None:
    running_pod_pid(sandbox, machine(on_graphql)["podId"])
    assert apis_called(sandbox) == {"graphql"}
    assert sandbox.runpod.count("podFindAndDeployOnDemand") == 1
    assert sandbox.runpod.count("createNetworkVolume", api="graphql") == 1


def test_switching_to_v2_previews_no_change(sandbox: Sandbox, on_graphql: dict[str, Any]) -> None:
    use_api(sandbox, "v2")
    sandbox.runpod.reset_calls()
    preview = sandbox.pulumi("preview", "--expect-no-changes", check=False)
    assert preview.returncode == 0, preview.stdout + preview.stderr
    # The pre-flight read v2's catalog; nothing went through GraphQL any more.
    assert apis_called(sandbox) == {"v2"}
    assert sandbox.runpod.count("listGpuTypes") == 1
    assert "coral-machine: 1 x NVIDIA GeForce RTX 4090 in the SECURE cloud" in preview.stdout


def test_up_over_v2_replaces_and_restarts_nothing(
    sandbox: Sandbox, on_graphql: dict[str, Any]
) -> None:
    pod_id = machine(on_graphql)["podId"]
    pid = running_pod_pid(sandbox, pod_id)
    volumes = [v.id for v in sandbox.runpod.volumes()]
    sandbox.runpod.reset_calls()

    up = sandbox.pulumi("up", "--yes", "--expect-no-changes", "--suppress-progress", check=False)

    assert up.returncode == 0, up.stdout + up.stderr
    assert machine(sandbox.outputs())["podId"] == pod_id
    assert running_pod_pid(sandbox, pod_id) == pid
    assert [v.id for v in sandbox.runpod.volumes()] == volumes
    assert not [c.op for c in sandbox.runpod.calls if c.op in MUTATIONS]


def test_refresh_over_v2_reads_what_graphql_made_as_unchanged(
    sandbox: Sandbox, on_graphql: dict[str, Any]
) -> None:
    """v2 describes the GraphQL-made pod and volume with the same inputs: no drift appears."""
    pod_id = machine(on_graphql)["podId"]
    pid = running_pod_pid(sandbox, pod_id)
    sandbox.runpod.reset_calls()

    sandbox.pulumi("refresh", "--yes", "--skip-preview", "--suppress-progress")

    assert sandbox.runpod.count("getPod") == 1 and sandbox.runpod.count("getNetworkVolume") == 1
    assert apis_called(sandbox) == {"v2"}
    preview = sandbox.pulumi("preview", "--expect-no-changes", check=False)
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert running_pod_pid(sandbox, pod_id) == pid


def test_destroy_over_v2_leaves_only_the_retained_volume(
    sandbox: Sandbox, on_graphql: dict[str, Any]
) -> None:
    [volume] = sandbox.runpod.volumes()
    sandbox.destroy()
    assert sandbox.runpod.pods() == []
    assert [v.id for v in sandbox.runpod.volumes()] == [volume.id]
    assert sandbox.runpod.count("deletePod") == 1 and sandbox.runpod.count("podTerminate") == 0
