"""API calls per provider operation (the numbers quoted in the README)."""

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


def test_pod_call_counts(standin: RunPodStandin) -> None:
    provider = PodProvider()
    created = provider.create(pod_props())  # boots instantly: one status read
    assert ops(standin) == {"gpuTypes": 1, "myself": 1, "podFindAndDeployOnDemand": 1, "pod": 1}
    provider.read(created.id, created.outs or {})
    assert ops(standin) == {"pod": 1}
    provider.update(created.id, created.outs or {}, pod_props(auth_key="tskey-rotated"))
    assert ops(standin) == {}
    provider.update(created.id, created.outs or {}, pod_props(image="ghcr.io/coral/machine:2"))
    assert ops(standin) == {"podEditJob": 1, "pod": 1}
    provider.delete(created.id, created.outs or {})
    assert ops(standin) == {"podTerminate": 1}
    provider.delete(created.id, created.outs or {})  # terminated already: RunPod says ok
    assert ops(standin) == {"podTerminate": 1}


def test_pod_with_network_volume_costs_one_more_call(standin: RunPodStandin) -> None:
    volume = NetworkVolumeProvider().create(
        {"name": "w", "data_center_id": "EU-RO-1", "size_gb": 10}
    )
    assert ops(standin) == {"myself": 1, "createNetworkVolume": 1}
    PodProvider().create(pod_props(network_volume_id=volume.id, volume_gb=0, data_center_id=None))
    assert ops(standin) == {"gpuTypes": 1, "myself": 2, "podFindAndDeployOnDemand": 1, "pod": 1}


def test_volume_call_counts(standin: RunPodStandin) -> None:
    provider = NetworkVolumeProvider()
    props = {"name": "w", "data_center_id": "EU-RO-1", "size_gb": 10}
    created = provider.create(props)
    ops(standin)
    provider.read(created.id, created.outs or {})
    assert ops(standin) == {"myself": 1}
    provider.update(created.id, created.outs or {}, {**props, "size_gb": 20})
    assert ops(standin) == {"updateNetworkVolume": 1}
    provider.delete(created.id, {})
    assert ops(standin) == {"myself": 1, "deleteNetworkVolume": 1}
