"""The RunPod stand-in's v2 network volumes and catalog (standins/runpod_rest_v2.py)."""

from __future__ import annotations

from standins.runpod_api import RunPodStandin
from tests.standin_apis.runpod_client import RunPodClient, pod_body

VOLUME = {"name": "coral-workspace", "size": 50, "dataCenter": "EU-RO-1"}


def test_network_volume_create_read_grow_rename_delete(
    runpod: RunPodStandin, client: RunPodClient
) -> None:
    created = client.v2("POST", "/v2/network-volumes", VOLUME)
    assert created.status_code == 201
    volume = created.json()
    assert volume["id"].startswith("vol_") and len(volume["id"]) == len("vol_") + 10
    assert volume == {**VOLUME, "id": volume["id"], "type": "STANDARD"}
    path = f"/v2/network-volumes/{volume['id']}"
    assert client.v2("GET", path).json() == volume
    assert client.v2("GET", "/v2/network-volumes").json() == {"networkVolumes": [volume]}

    grown = client.v2("PATCH", path, {"size": 80, "name": "renamed"}).json()
    assert (grown["size"], grown["name"]) == (80, "renamed")
    gql = client.graphql("query { myself { networkVolumes { id name size dataCenterId } } }")
    assert gql["data"]["myself"]["networkVolumes"] == [
        {"id": volume["id"], "name": "renamed", "size": 80, "dataCenterId": "EU-RO-1"}
    ]

    assert client.v2("DELETE", path).status_code == 204
    assert client.v2("GET", path).status_code == 404
    assert client.v2("DELETE", path).status_code == 404
    assert runpod.volumes() == []
    assert runpod.openapi_violations() == []


def test_volume_size_rules(runpod: RunPodStandin, client: RunPodClient) -> None:
    for size in (9, 4097):
        refused = client.v2("POST", "/v2/network-volumes", {**VOLUME, "size": size})
        assert refused.status_code == 422  # the document's bounds
        assert refused.json()["errors"][0].startswith("$.size: ")
    volume = client.v2("POST", "/v2/network-volumes", VOLUME).json()
    shrink = client.v2("PATCH", f"/v2/network-volumes/{volume['id']}", {"size": 40})
    assert shrink.status_code == 400
    assert shrink.json()["detail"] == (
        "Network volume size can only be increased: it is 50 GB, asked for 40 GB"
    )
    empty = client.v2("PATCH", f"/v2/network-volumes/{volume['id']}", {})
    assert empty.status_code == 422
    unknown_dc = client.v2("POST", "/v2/network-volumes", {**VOLUME, "dataCenter": "MARS-1"})
    assert unknown_dc.status_code == 400 and unknown_dc.json()["detail"] == (
        "Invalid data center id: MARS-1"
    )
    # GraphQL keeps the same account rules: no volume below RunPod's 10 GB floor there either.
    small = client.graphql(
        'mutation { createNetworkVolume(input: {name: "s", size: 5, dataCenterId: "EU-RO-1"}) '
        "{ id } }"
    )
    assert small["errors"][0]["message"] == "Network volume size must be 10 to 4096 GB, got 5 GB"
    assert [v.size for v in runpod.volumes()] == [50]


def test_a_volume_in_use_is_not_deleted(runpod: RunPodStandin, client: RunPodClient) -> None:
    volume = client.v2("POST", "/v2/network-volumes", VOLUME).json()
    body = pod_body(mounts={"network": [{"volumeId": volume["id"], "path": "/workspace"}]})
    pod = client.v2("POST", "/v2/pods", body).json()
    refused = client.v2("DELETE", f"/v2/network-volumes/{volume['id']}")
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"Network volume {volume['id']} is in use by a pod ({pod['id']}); terminate the pod first"
    )
    client.v2("DELETE", f"/v2/pods/{pod['id']}")
    assert client.v2("DELETE", f"/v2/network-volumes/{volume['id']}").status_code == 204
    assert runpod.openapi_violations() == []


def test_gpu_catalog_has_ids_prices_per_cloud_and_stock_per_data_center(
    runpod: RunPodStandin, client: RunPodClient
) -> None:
    plain = client.v2("GET", "/v2/catalog/gpus").json()["gpus"]
    assert [g["id"] for g in plain] == list(runpod.gpu_types)
    assert "availability" not in plain[0] and "dataCenters" not in plain[0]

    runpod.sold_out.add(("NVIDIA GeForce RTX 4090", "US-TX-3"))
    runpod.free_gpus["NVIDIA A40"] = 0
    params = {"include": "AVAILABILITY", "product": "POD"}
    gpus = {g["id"]: g for g in client.v2("GET", "/v2/catalog/gpus", params=params).json()["gpus"]}
    rtx = gpus["NVIDIA GeForce RTX 4090"]
    assert rtx["price"] == {"secure": 0.69, "community": 0.552}
    assert rtx["maxCount"] == {"secure": 8, "community": 8}
    assert rtx["availability"] == "HIGH"
    assert {dc["id"]: dc["availability"] for dc in rtx["dataCenters"]} == {
        "EU-RO-1": "HIGH",
        "US-TX-3": "NONE",
        "US-KS-2": "HIGH",
    }
    assert gpus["NVIDIA A40"]["availability"] == "NONE"
    assert "dataCenters" not in gpus["NVIDIA A40"]  # unavailable everywhere

    in_romania = client.v2("GET", "/v2/catalog/gpus", params={**params, "countryCodes": "RO"})
    rtx_ro = next(g for g in in_romania.json()["gpus"] if g["id"] == rtx["id"])
    assert [dc["id"] for dc in rtx_ro["dataCenters"]] == ["EU-RO-1"]
    assert runpod.openapi_violations() == []


def test_gpu_catalog_filter_rules(runpod: RunPodStandin, client: RunPodClient) -> None:
    without_product = client.v2("GET", "/v2/catalog/gpus", params={"include": "AVAILABILITY"})
    assert without_product.status_code == 400
    product_alone = client.v2("GET", "/v2/catalog/gpus", params={"product": "POD"})
    assert product_alone.status_code == 400
    bad_include = client.v2("GET", "/v2/catalog/gpus", params={"include": "PRICES"})
    assert bad_include.status_code == 422
    assert "include" in bad_include.json()["errors"][0]


def test_data_center_catalog(runpod: RunPodStandin, client: RunPodClient) -> None:
    listed = client.v2("GET", "/v2/catalog/datacenters").json()["dataCenters"]
    assert [dc["id"] for dc in listed] == ["EU-RO-1", "US-TX-3", "US-KS-2"]
    assert listed[0] | {"networkVolumeTypes": None} == {
        "id": "EU-RO-1",
        "name": "EU Romania 1",
        "region": "EUROPE",
        "globalNetwork": False,
        "networkVolumeTypes": None,
        "compliance": [],
    }
    europe = client.v2(
        "GET",
        "/v2/catalog/datacenters",
        params={"regions": "EUROPE", "include": "GPU_AVAILABILITY"},
    ).json()["dataCenters"]
    assert [dc["id"] for dc in europe] == ["EU-RO-1"]
    assert [g["id"] for g in europe[0]["gpuAvailability"]] == list(runpod.gpu_types)
    assert runpod.openapi_violations() == []
