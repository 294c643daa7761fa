"""Network volume provider methods called directly against the RunPod stand-in."""

from __future__ import annotations

import pytest

from coral_infra.runpod import api
from coral_infra.runpod.pod import PodProvider
from coral_infra.runpod.volume import NetworkVolumeProvider
from standins.runpod_api import RunPodStandin
from tests.runpod.helpers import count, pod_props

PROPS = {"name": "coral-workspace", "data_center_id": "EU-RO-1", "size_gb": 50.0}


def test_check_rejects_shrinking_with_a_clear_message() -> None:
    olds = {**PROPS, "size_gb": 50.0}
    failures = NetworkVolumeProvider().check(olds, {**PROPS, "size_gb": 40.0}).failures
    assert [f.property for f in failures] == ["size_gb"]
    assert "can only grow" in failures[0].reason and "50 GB" in failures[0].reason


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"size_gb": 0.0}, "size_gb"),
        ({"size_gb": 1.5}, "size_gb"),
        ({"name": ""}, "name"),
        ({"data_center_id": "\n"}, "data_center_id"),
    ],
)
def test_check_names_the_bad_field(overrides: dict[str, object], field: str) -> None:
    failures = NetworkVolumeProvider().check({}, {**PROPS, **overrides}).failures
    assert [f.property for f in failures] == [field]


def test_diff_replaces_on_data_center_and_updates_size_in_place() -> None:
    provider = NetworkVolumeProvider()
    moved = provider.diff("v", PROPS, {**PROPS, "data_center_id": "US-TX-3"})
    grown = provider.diff("v", PROPS, {**PROPS, "size_gb": 60})
    same = provider.diff("v", {**PROPS, "size_gb": 50}, PROPS)
    assert (moved.changes, moved.replaces) == (True, ["data_center_id"])
    assert (grown.changes, grown.replaces) == (True, [])
    assert (same.changes, same.replaces) == (False, [])


def test_create_read_grow_delete(standin: RunPodStandin) -> None:
    provider = NetworkVolumeProvider()
    created = provider.create(PROPS)
    (volume,) = standin.volumes()
    assert created.id == volume.id and (volume.size, volume.data_center_id) == (50, "EU-RO-1")
    read = provider.read(created.id, created.outs or {})
    assert read.inputs == {"name": "coral-workspace", "data_center_id": "EU-RO-1", "size_gb": 50}
    updated = provider.update(created.id, created.outs or {}, {**PROPS, "size_gb": 80.0})
    assert (updated.outs or {})["size_gb"] == 80 and standin.volumes()[0].size == 80
    provider.delete(created.id, {})
    provider.delete(created.id, {})  # twice: already gone is success
    assert standin.volumes() == []
    assert provider.read(created.id, {}).id is None


def test_create_adopts_a_retained_volume_and_grows_it(standin: RunPodStandin) -> None:
    kept = api.create_volume("coral-workspace", 20, "EU-RO-1")
    created = NetworkVolumeProvider().create(PROPS)
    assert created.id == kept.id and [v.size for v in standin.volumes()] == [50]


def test_lost_create_response_adopts_the_volume(standin: RunPodStandin) -> None:
    standin.inject("createNetworkVolume", "lost_response")
    created = NetworkVolumeProvider().create(PROPS)
    assert [v.id for v in standin.volumes()] == [created.id]
    assert count(standin, "create_volume") == 1


def test_deleting_a_volume_in_use_fails_clearly(standin: RunPodStandin) -> None:
    created = NetworkVolumeProvider().create(PROPS)
    PodProvider().create(
        pod_props(network_volume_id=created.id, volume_gb=0.0, data_center_id=None)
    )
    with pytest.raises(api.RunPodRequestError, match="in use"):
        NetworkVolumeProvider().delete(created.id, {})
    assert len(standin.volumes()) == 1
