"""The RunPod stand-in's REST v2 pods on the account its GraphQL side shares: each endpoint's
happy path and errors in the document's wire format (standins/runpod_rest_v2.py)."""

from __future__ import annotations

import time

from standins.runpod_api import RunPodStandin
from tests.standin_apis.conftest import RunPodClient, pod_body


def test_a_pod_created_over_graphql_is_read_changed_and_terminated_over_v2(
    runpod: RunPodStandin, client: RunPodClient
) -> None:
    created = client.deploy_graphql("coral-machine-dev")
    pod_id = created["id"]
    assert not pod_id.startswith("pod_")  # GraphQL keeps its own id form

    pod = client.v2("GET", f"/v2/pods/{pod_id}").json()
    assert (pod["id"], pod["name"], pod["status"]) == (pod_id, "coral-machine-dev", "RUNNING")
    assert pod["gpu"] == {"id": "NVIDIA GeForce RTX 4090", "count": 1}
    assert pod["mounts"] == {"persistent": {"size": 20, "path": "/workspace"}}
    assert pod["ports"] == ["2222/tcp", "11111/tcp"] and pod["env"] == {"A": "b"}
    assert (pod["cloud"], pod["dataCenterId"], pod["cost"]) == ("SECURE", "EU-RO-1", 0.69)

    patched = client.v2("PATCH", f"/v2/pods/{pod_id}", {"env": {"A": "c"}})
    assert patched.status_code == 200 and patched.json()["env"] == {"A": "c"}
    read = client.graphql(f'query {{ pod(input: {{podId: "{pod_id}"}}) {{ env ports }} }}')
    assert read["data"]["pod"] == {"env": ["A=c"], "ports": "2222/tcp,11111/tcp"}

    assert client.v2("DELETE", f"/v2/pods/{pod_id}").status_code == 204
    assert runpod.pods() == []
    assert runpod.openapi_violations() == []


def test_a_pod_created_over_v2_is_read_and_stopped_over_graphql(
    runpod: RunPodStandin, client: RunPodClient
) -> None:
    response = client.v2("POST", "/v2/pods", pod_body())
    assert response.status_code == 201
    pod_id = response.json()["id"]
    assert pod_id.startswith("pod_") and len(pod_id) == len("pod_") + 14

    query = f'{{ pod(input: {{podId: "{pod_id}"}}) {{ id name imageName desiredStatus env }} }}'
    assert client.graphql(f"query {query}")["data"]["pod"] == {
        "id": pod_id,
        "name": "coral-machine-test",
        "imageName": "ghcr.io/coral/machine:1.0",
        "desiredStatus": "RUNNING",
        "env": ["CORAL_HOSTNAME=coral-machine"],
    }
    stopped = client.graphql(f'mutation {{ podStop(input: {{podId: "{pod_id}"}}) {{ id }} }}')
    assert stopped["data"]["podStop"] == {"id": pod_id}
    pod = client.v2("GET", f"/v2/pods/{pod_id}").json()
    assert (pod["status"], pod["actions"], pod["cost"]) == ("EXITED", ["start", "terminate"], 0.0)
    assert runpod.openapi_violations() == []


def test_create_answers_provisioning_then_the_pod_starts_and_runs() -> None:
    with RunPodStandin("k", boot_seconds=0.6) as runpod:
        client = RunPodClient(runpod.url, "k")
        created = client.v2("POST", "/v2/pods", pod_body()).json()
        assert (created["status"], created["actions"]) == ("PROVISIONING", ["stop", "terminate"])
        assert created["runtime"] is None and created["startedAt"] is None
        pod_id = created["id"]
        time.sleep(0.35)
        assert client.v2("GET", f"/v2/pods/{pod_id}").json()["status"] == "STARTING"
        time.sleep(0.35)
        running = client.v2("GET", f"/v2/pods/{pod_id}").json()
        assert (running["status"], running["actions"]) == (
            "RUNNING",
            ["stop", "restart", "terminate"],
        )
        assert running["runtime"]["uptime"] >= 0 and running["startedAt"] is not None
        assert runpod.openapi_violations() == []


def test_list_pods_returns_live_pods_and_has_no_name_filter(
    runpod: RunPodStandin, client: RunPodClient
) -> None:
    first = client.v2("POST", "/v2/pods", pod_body("a")).json()["id"]
    second = client.deploy_graphql("b")["id"]
    client.v2("DELETE", f"/v2/pods/{first}")
    listed = client.v2("GET", "/v2/pods").json()["pods"]
    assert [(p["id"], p["name"]) for p in listed] == [(second, "b")]

    # The document offers no name filter: a client relying on one hears so, by name.
    filtered = client.v2("GET", "/v2/pods", params={"name": "b"})
    assert filtered.status_code == 422
    assert filtered.json()["errors"] == ["query: unknown parameter 'name' not allowed"]


def test_get_and_delete_of_a_gone_pod_are_404_problems(client: RunPodClient) -> None:
    for method in ("GET", "DELETE", "PATCH"):
        response = client.v2(
            method, "/v2/pods/pod_gone1234567890", {} if method == "PATCH" else None
        )
        assert response.status_code == 404
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json() == {
            "title": "Not Found",
            "status": 404,
            "detail": "pod pod_gone1234567890 not found",
        }


def test_actions_follow_the_status_and_answer_409_otherwise(
    runpod: RunPodStandin, client: RunPodClient
) -> None:
    pod_id = client.v2("POST", "/v2/pods", pod_body()).json()["id"]
    action = lambda name: client.v2("POST", f"/v2/pods/{pod_id}/action", {"action": name})  # noqa: E731

    started_twice = action("start")
    assert started_twice.status_code == 409
    assert "not valid for a pod in status RUNNING" in started_twice.json()["detail"]
    assert action("restart").json()["status"] == "RUNNING"
    assert action("stop").json()["status"] == "EXITED"
    assert action("stop").status_code == 409  # stopping a stopped pod
    assert runpod.free_gpus["NVIDIA GeForce RTX 4090"] == 16

    runpod.free_gpus["NVIDIA GeForce RTX 4090"] = 0
    no_gpu = action("start")
    assert no_gpu.status_code == 400
    assert no_gpu.json()["detail"] == (
        "There are not enough free GPUs on the host machine to start this pod."
    )
    runpod.free_gpus["NVIDIA GeForce RTX 4090"] = 1
    assert action("start").json()["status"] == "RUNNING"
    assert runpod.free_gpus["NVIDIA GeForce RTX 4090"] == 0

    terminated = action("terminate")
    assert (terminated.status_code, terminated.content) == (204, b"")
    assert client.v2("GET", f"/v2/pods/{pod_id}").status_code == 404
    assert runpod.free_gpus["NVIDIA GeForce RTX 4090"] == 1
    assert runpod.openapi_violations() == []


def test_a_locked_pod_is_not_stopped(runpod: RunPodStandin, client: RunPodClient) -> None:
    pod_id = client.v2("POST", "/v2/pods", pod_body()).json()["id"]
    assert client.v2("PATCH", f"/v2/pods/{pod_id}", {"locked": True}).json()["locked"] is True
    refused = client.v2("POST", f"/v2/pods/{pod_id}/action", {"action": "stop"})
    assert refused.status_code == 409 and "locked" in refused.json()["detail"]


def test_create_refusals_are_400_or_404_problems(
    runpod: RunPodStandin, client: RunPodClient
) -> None:
    volume = runpod.create_volume("ws", 10, "US-TX-3", id_prefix="vol_")
    cases = [
        (pod_body(gpu={"id": "NVIDIA A100"}), 400, "GPU type 'NVIDIA A100' is not offered"),
        (pod_body(dataCenterIds=["MARS-1"]), 400, "Invalid data center id: MARS-1"),
        (
            pod_body(mounts={"network": [{"volumeId": "vol_missing", "path": "/workspace"}]}),
            404,
            "network volume vol_missing not found",
        ),
        (
            pod_body(mounts={"network": [{"volumeId": volume.id, "path": "/workspace"}]}),
            400,
            f"network volume {volume.id} is in data center US-TX-3, not in EU-RO-1",
        ),
        (
            pod_body(mounts={"persistent": {"size": 20, "path": "/a"}, "network": []})
            | {"cpu": {"id": "cpu3c", "vcpuCount": 2}},
            400,
            "exactly one of gpu or cpu must be set",
        ),
    ]
    for body, status, detail in cases:
        response = client.v2("POST", "/v2/pods", body)
        assert (response.status_code, response.json()["status"]) == (status, status), body
        assert detail in response.json()["detail"]
    runpod.free_gpus["NVIDIA GeForce RTX 4090"] = 0
    full = client.v2("POST", "/v2/pods", pod_body())
    assert full.status_code == 400 and "no longer any instances" in full.json()["detail"]
    assert runpod.pods() == []
    assert runpod.openapi_violations() == []


def test_a_pod_on_a_network_volume_is_placed_in_its_data_center(
    runpod: RunPodStandin, client: RunPodClient
) -> None:
    volume = client.v2(
        "POST", "/v2/network-volumes", {"name": "ws", "size": 10, "dataCenter": "US-KS-2"}
    ).json()
    body = pod_body(mounts={"network": [{"volumeId": volume["id"], "path": "/workspace"}]})
    del body["dataCenterIds"]
    pod = client.v2("POST", "/v2/pods", body).json()
    assert pod["dataCenterId"] == "US-KS-2"
    assert pod["mounts"] == {"network": [{"volumeId": volume["id"], "path": "/workspace"}]}
    read = client.graphql(f'query {{ pod(input: {{podId: "{pod["id"]}"}}) {{ networkVolumeId }} }}')
    assert read["data"]["pod"] == {"networkVolumeId": volume["id"]}

    other = {"network": [{"volumeId": "vol_other", "path": "/workspace"}]}
    changed = client.v2("PATCH", f"/v2/pods/{pod['id']}", {"mounts": other})
    assert changed.status_code == 400 and "volumeId cannot change" in changed.json()["detail"]
    moved = {"network": [{"volumeId": volume["id"], "path": "/data"}]}
    patched = client.v2("PATCH", f"/v2/pods/{pod['id']}", {"mounts": moved}).json()
    assert patched["mounts"]["network"][0]["path"] == "/data"
    assert runpod.openapi_violations() == []


def test_v2_ids_and_graphql_ids_are_both_accepted_by_both_apis(
    runpod: RunPodStandin, client: RunPodClient
) -> None:
    v2_pod = client.v2("POST", "/v2/pods", pod_body("v2")).json()["id"]
    graphql_pod = client.deploy_graphql("gql")["id"]
    for pod_id in (v2_pod, graphql_pod):
        assert client.v2("GET", f"/v2/pods/{pod_id}").status_code == 200
        found = client.graphql(f'query {{ pod(input: {{podId: "{pod_id}"}}) {{ id }} }}')
        assert found["data"]["pod"] == {"id": pod_id}


def test_graphql_edits_keep_the_rules_v2_pods_are_read_by(
    runpod: RunPodStandin, client: RunPodClient
) -> None:
    pod_id = client.deploy_graphql("edited")["id"]
    edit = (
        f'mutation {{ podEditJob(input: {{podId: "{pod_id}", imageName: "i", '
        "containerDiskInGb: 10, volumeInGb: 5}) { id } }"
    )
    refused = client.graphql(edit)
    assert refused["errors"][0]["message"] == (
        "volume size 5 GB is below the 10 GB floor of a persistent volume"
    )
    assert client.v2("GET", f"/v2/pods/{pod_id}").json()["mounts"]["persistent"]["size"] == 20
    assert runpod.openapi_violations() == []
