"""API calls per provider operation, on each wire format (the numbers quoted in the README)."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from coral_infra.runpod import session
from coral_infra.runpod.pod import PodProvider
from coral_infra.runpod.volume import NetworkVolumeProvider
from standins.runpod_api import RunPodStandin
from tests.runpod.helpers import FAST, pod_props


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


FLEET_CREATES = {
    "graphql": {"gpuTypes": 1, "myself": 1, "podFindAndDeployOnDemand": 5, "pod": 5},
    "v2": {"listGpuTypes": 1, "listPods": 1, "createPod": 5, "getPod": 5},
}


def test_a_fleets_creates_list_the_pods_and_check_the_gpu_type_once(
    standin: RunPodStandin, wire: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One provider process per deployment creates every pod, several at once: one listing for
    every create's lookup by name, one GPU type check (coral_infra/runpod/listing.py)."""
    monkeypatch.setattr(session, "timing", replace(FAST, listing_ttl=60.0))
    provider = PodProvider()
    with ThreadPoolExecutor(max_workers=5) as engine:
        names = [f"coral-m{index}-test" for index in range(5)]
        list(engine.map(lambda name: provider.create(pod_props(name=name)), names))
    assert ops(standin) == FLEET_CREATES[wire]
    assert len(standin.pods()) == 5


def test_the_listing_is_not_reused_past_its_time(
    standin: RunPodStandin, wire: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "timing", replace(FAST, listing_ttl=0.2))
    provider = PodProvider()
    provider.create(pod_props(name="coral-m0-test"))
    time.sleep(0.3)
    provider.create(pod_props(name="coral-m1-test"))
    listed = {"graphql": "myself", "v2": "listPods"}[wire]
    assert ops(standin)[listed] == 2


def test_a_replaced_pod_is_created_anew_not_adopted_from_the_listing(
    standin: RunPodStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replacement deletes the pod, then creates one with the same name in the same process:
    the listing no longer holds the pod it terminated."""
    monkeypatch.setattr(session, "timing", replace(FAST, listing_ttl=60.0))
    provider = PodProvider()
    first = provider.create(pod_props())
    provider.delete(first.id, first.outs or {})
    second = provider.create(pod_props(image="ghcr.io/coral/machine:2"))
    assert second.id != first.id
    assert [p.id for p in standin.pods()] == [second.id]


def test_a_fleets_volumes_list_the_volumes_once(
    standin: RunPodStandin, wire: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "timing", replace(FAST, listing_ttl=60.0))
    provider = NetworkVolumeProvider()
    for index in range(3):
        provider.create({"name": f"w{index}", "data_center_id": "EU-RO-1", "size_gb": 10})
    listed = {"graphql": "myself", "v2": "listNetworkVolumes"}[wire]
    assert ops(standin) == {listed: 1, "createNetworkVolume": 3}
