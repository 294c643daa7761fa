"""API calls per provider operation, on each wire format (the numbers quoted in the README)."""

from __future__ import annotations

from collections import Counter

from coral_infra.runpod.pod import PodProvider
from coral_infra.runpod.volume import NetworkVolumeProvider
from standins.runpod_api import RunPodStandin
from tests.runpod.helpers import pod_props


def ops(standin: RunPodStandin) -> Counter[str]:
    counted = Counter(call.op for call in standin.calls)
    standin.reset_calls()
    return counted


POD_CALLS = {
    "graphql": {
        "create": {"gpuTypes": 1, "myself": 1, "podFindAndDeployOnDemand": 1, "pod": 1},
        "read": {"pod": 1},
        "edit": {"podEditJob": 1, "pod": 1},
        "delete": {"podTerminate": 1, "myself": 1},
    },
    "v2": {
        "create": {"listGpuTypes": 1, "listPods": 1, "createPod": 1, "getPod": 1},
        "read": {"getPod": 1},
        "edit": {"updatePod": 1, "getPod": 1},
        "delete": {"deletePod": 1, "listPods": 1},
    },
}


def test_pod_call_counts(standin: RunPodStandin, wire: str) -> None:
    calls = POD_CALLS[wire]
    provider = PodProvider()
    created = provider.create(pod_props())  # boots instantly: one status read
    assert ops(standin) == calls["create"]
    provider.read(created.id, created.outs or {})
    assert ops(standin) == calls["read"]
    provider.update(created.id, created.outs or {}, pod_props(auth_key="tskey-rotated"))
    assert ops(standin) == {}
    provider.update(created.id, created.outs or {}, pod_props(image="ghcr.io/coral/machine:2"))
    assert ops(standin) == calls["edit"]
    provider.delete(created.id, created.outs or {})
    assert ops(standin) == calls["delete"]
    provider.delete(created.id, created.outs or {})  # terminated already: RunPod says so
    assert ops(standin) == calls["delete"]


def test_pod_with_network_volume_without_data_center_costs_one_more_call(
    standin: RunPodStandin, wire: str
) -> None:
    volume = NetworkVolumeProvider().create(
        {"name": "w", "data_center_id": "EU-RO-1", "size_gb": 10}
    )
    ops(standin)
    PodProvider().create(pod_props(network_volume_id=volume.id, volume_gb=0, data_center_id=None))
    lookup = {"graphql": {"myself": 1}, "v2": {"getNetworkVolume": 1}}[wire]
    assert ops(standin) == Counter(POD_CALLS[wire]["create"]) + Counter(lookup)


VOLUME_CALLS = {
    "graphql": {
        "create": {"myself": 1, "createNetworkVolume": 1},
        "read": {"myself": 1},
        "update": {"updateNetworkVolume": 1},
        "delete": {"deleteNetworkVolume": 1},
    },
    "v2": {
        "create": {"listNetworkVolumes": 1, "createNetworkVolume": 1},
        "read": {"getNetworkVolume": 1},
        "update": {"updateNetworkVolume": 1},
        "delete": {"deleteNetworkVolume": 1},
    },
}


def test_volume_call_counts(standin: RunPodStandin, wire: str) -> None:
    calls = VOLUME_CALLS[wire]
    provider = NetworkVolumeProvider()
    props = {"name": "w", "data_center_id": "EU-RO-1", "size_gb": 10}
    created = provider.create(props)
    assert ops(standin) == calls["create"]
    provider.read(created.id, created.outs or {})
    assert ops(standin) == calls["read"]
    provider.update(created.id, created.outs or {}, {**props, "size_gb": 20})
    assert ops(standin) == calls["update"]
    provider.delete(created.id, {})
    assert ops(standin) == calls["delete"]
