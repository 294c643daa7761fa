"""Pod provider methods called directly against the RunPod stand-in, on both wire formats."""

from __future__ import annotations

import pytest

from coral_infra.runpod import api
from coral_infra.runpod.pod import PodProvider
from standins.runpod_api import RunPodStandin
from tests.runpod.helpers import AUTH_KEY, count, pod_props


def test_check_accepts_valid_inputs_and_turns_floats_into_ints() -> None:
    result = PodProvider().check({}, pod_props())
    assert result.failures == []
    assert result.inputs["gpu_count"] == 1 and isinstance(result.inputs["gpu_count"], int)
    assert result.inputs["container_disk_gb"] == 20 and isinstance(
        result.inputs["container_disk_gb"], int
    )


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"name": ""}, "name", "non-empty"),
        ({"name": "a\nb"}, "name", "control characters"),
        ({"image": "bad image"}, "image", "image reference"),
        ({"gpu_count": 0.0}, "gpu_count", ">= 1"),
        ({"gpu_count": 1.5}, "gpu_count", "whole number"),
        ({"cloud_type": "PUBLIC"}, "cloud_type", "SECURE, COMMUNITY, ALL"),
        ({"container_disk_gb": -1.0}, "container_disk_gb", ">= 1"),
        ({"volume_mount_path": "workspace"}, "volume_mount_path", "absolute"),
        ({"network_volume_id": 'x"}', "volume_gb": 0.0}, "network_volume_id", "RunPod id"),
        ({"network_volume_id": "abc123"}, "volume_gb", "must be 0"),
        ({"ports": ["22"]}, "ports", "'<1-65535>/tcp'"),
        ({"ports": ["70000/tcp"]}, "ports", "'<1-65535>/tcp'"),
        ({"ports": ["22/tcp", "22/tcp"]}, "ports", "repeat"),
        ({"env": {"BAD-NAME": "x"}}, "env", "must match"),
        ({"env": {"TAILSCALE_AUTHKEY": "x"}}, "env", "auth_key"),
        ({"auth_key": ""}, "auth_key", "non-empty"),
        ({"data_center_id": ""}, "data_center_id", "non-empty"),
    ],
)
def test_check_names_the_bad_field(overrides: dict[str, object], field: str, fragment: str) -> None:
    failures = PodProvider().check({}, pod_props(**overrides)).failures
    assert [f.property for f in failures] == [field]
    assert fragment in failures[0].reason
    assert AUTH_KEY not in failures[0].reason


def test_check_skips_values_unknown_in_preview() -> None:
    from pulumi.runtime import rpc

    props = pod_props(auth_key=rpc.UNKNOWN, network_volume_id=rpc.UNKNOWN, volume_gb=0.0)
    assert PodProvider().check({}, props).failures == []


def test_check_skips_unknowns_as_the_engine_sends_them() -> None:
    """SDK 3.27x: an `Unknown` object; an unknown secret is a secret wrapping None."""
    from pulumi.output import Unknown
    from pulumi.runtime import rpc

    props = pod_props(
        auth_key=rpc.wrap_rpc_secret(None), network_volume_id=Unknown(), volume_gb=0.0
    )
    assert PodProvider().check({}, props).failures == []
    known_but_empty = pod_props(auth_key=rpc.wrap_rpc_secret(""))
    assert [f.property for f in PodProvider().check({}, known_but_empty).failures] == ["auth_key"]


def test_diff_replaces_on_host_and_volume_fields_and_deletes_first() -> None:
    olds = pod_props()
    for field, value in [
        ("gpu_type_id", "NVIDIA A40"),
        ("gpu_count", 2.0),
        ("cloud_type", "COMMUNITY"),
        ("data_center_id", "US-TX-3"),
        ("volume_gb", 20.0),
        ("network_volume_id", "vol123"),
        ("volume_mount_path", "/data"),
        ("name", "other"),
    ]:
        result = PodProvider().diff("pod1", olds, pod_props(**{field: value}))
        assert result.changes is True
        assert result.replaces == [field]
        assert result.delete_before_replace is True


def test_diff_updates_in_place_for_image_env_and_auth_key() -> None:
    olds = pod_props()
    for field, value in [
        ("image", "ghcr.io/coral/machine:2.0"),
        ("env", {}),
        ("auth_key", "tskey-new"),
    ]:
        result = PodProvider().diff("pod1", olds, pod_props(**{field: value}))
        assert (result.changes, result.replaces) == (True, [])


def test_diff_of_unchanged_pod_is_empty_even_with_floats() -> None:
    olds = {**pod_props(gpu_count=1, container_disk_gb=20, volume_gb=10), "pod_id": "x"}
    result = PodProvider().diff("pod1", olds, pod_props())
    assert (result.changes, result.replaces) == (False, [])


def test_create_waits_for_running_and_reports_outputs(standin: RunPodStandin) -> None:
    standin.boot_seconds = 0.05
    result = PodProvider().create(pod_props())
    (pod,) = standin.pods()
    assert result.id == pod.id
    outs = result.outs or {}
    assert outs["pod_id"] == pod.id and outs["desired_status"] == "RUNNING"
    assert outs["cost_per_hr"] == pytest.approx(0.69)
    # GraphQL's podHostId; REST v2 has the same name as its SSH proxy user (`<pod id>-...`).
    assert outs["pod_host_id"].startswith(f"{pod.id}-") and outs["location"] == "EU-RO-1"
    assert f"TAILSCALE_AUTHKEY={AUTH_KEY}" in pod.env and "CORAL_HOSTNAME=coral-machine" in pod.env
    assert (pod.gpu_count, pod.container_disk_gb, pod.volume_gb) == (1, 20, 10)
    assert pod.ports == "2222/tcp,11111/tcp" and pod.volume_mount_path == "/workspace"
    assert count(standin, "get") >= 2  # it really waited for the runtime


def test_create_with_network_volume_takes_the_volume_data_center(standin: RunPodStandin) -> None:
    volume = api.create_volume("coral-workspace", 50, "US-TX-3")
    props = pod_props(network_volume_id=volume.id, volume_gb=0.0, data_center_id=None)
    PodProvider().create(props)
    (pod,) = standin.pods()
    assert (pod.network_volume_id, pod.data_center_id, pod.volume_gb) == (volume.id, "US-TX-3", 0)


def test_create_unknown_gpu_type_fails_clearly_before_deploying(standin: RunPodStandin) -> None:
    with pytest.raises(
        api.InvalidValueError, match="gpu_type_id 'NVIDIA Nope' is not a RunPod GPU type"
    ):
        PodProvider().create(pod_props(gpu_type_id="NVIDIA Nope"))
    assert count(standin, "create") == 0 and standin.pods() == []


def test_create_adopts_a_pod_left_by_an_earlier_lost_create(standin: RunPodStandin) -> None:
    first = PodProvider().create(pod_props())
    again = PodProvider().create(pod_props())
    assert again.id == first.id
    assert len(standin.pods()) == 1 and count(standin, "create") == 1


def test_create_refuses_to_adopt_a_same_named_pod_with_another_spec(standin: RunPodStandin) -> None:
    PodProvider().create(pod_props())
    with pytest.raises(api.RunPodRequestError, match="already exists"):
        PodProvider().create(pod_props(image="ghcr.io/coral/other:1"))
    assert len(standin.pods()) == 1


def test_read_unchanged_pod_gives_its_inputs_back(standin: RunPodStandin) -> None:
    created = PodProvider().create(pod_props())
    state = created.outs or {}
    result = PodProvider().read(created.id, state)
    assert result.id == created.id
    assert result.inputs is not None
    diff = PodProvider().diff(created.id, {**state, **result.inputs}, pod_props())
    assert (diff.changes, diff.replaces) == (False, [])
    assert (result.outs or {})["auth_key"] == AUTH_KEY  # kept from state, secret via the engine


def test_read_shows_out_of_band_drift(standin: RunPodStandin) -> None:
    created = PodProvider().create(pod_props())
    standin.pods()[0].image = "ghcr.io/someone/else:latest"
    result = PodProvider().read(created.id, created.outs or {})
    assert result.inputs is not None and result.inputs["image"] == "ghcr.io/someone/else:latest"
    diff = PodProvider().diff(created.id, result.outs or {}, pod_props())
    assert (diff.changes, diff.replaces) == (True, [])


def test_read_of_a_vanished_pod_reads_as_gone(standin: RunPodStandin) -> None:
    created = PodProvider().create(pod_props())
    standin.vanish(created.id)
    result = PodProvider().read(created.id, created.outs or {})
    assert result.id is None and result.outs == {}


def test_read_of_a_terminated_pod_reads_as_gone(standin: RunPodStandin) -> None:
    created = PodProvider().create(pod_props())
    api.terminate_pod(created.id)
    assert PodProvider().read(created.id, created.outs or {}).id is None


def test_read_follows_a_migrated_pod_to_its_new_id(standin: RunPodStandin) -> None:
    created = PodProvider().create(pod_props())
    new_id = standin.migrate(created.id)
    result = PodProvider().read(created.id, created.outs or {})
    assert result.id == new_id and (result.outs or {})["pod_id"] == new_id


def test_auth_key_only_update_calls_no_api_and_keeps_the_pod(standin: RunPodStandin) -> None:
    created = PodProvider().create(pod_props())
    standin.reset_calls()
    result = PodProvider().update(
        created.id, created.outs or {}, pod_props(auth_key="tskey-rotated")
    )
    assert standin.calls == []
    outs = result.outs or {}
    assert outs["auth_key"] == "tskey-rotated" and outs["pod_id"] == created.id
    (pod,) = standin.pods()
    assert pod.id == created.id and f"TAILSCALE_AUTHKEY={AUTH_KEY}" in pod.env


def test_image_and_env_update_edits_the_pod_in_place(standin: RunPodStandin) -> None:
    created = PodProvider().create(pod_props())
    news = pod_props(image="ghcr.io/coral/machine:2.0", env={"EXTRA": "1"})
    result = PodProvider().update(created.id, created.outs or {}, news)
    (pod,) = standin.pods()
    assert pod.id == created.id and pod.image == "ghcr.io/coral/machine:2.0"
    assert sorted(pod.env) == ["EXTRA=1", f"TAILSCALE_AUTHKEY={AUTH_KEY}"]
    assert (result.outs or {})["image"] == "ghcr.io/coral/machine:2.0"


def test_delete_twice_succeeds(standin: RunPodStandin) -> None:
    created = PodProvider().create(pod_props())
    PodProvider().delete(created.id, created.outs or {})
    PodProvider().delete(created.id, created.outs or {})
    assert standin.pods() == []


def test_delete_of_a_migrated_pod_terminates_it_by_name(standin: RunPodStandin) -> None:
    created = PodProvider().create(pod_props())
    standin.migrate(created.id)
    PodProvider().delete(created.id, created.outs or {})
    assert standin.pods() == []


def test_stop_and_resume(standin: RunPodStandin) -> None:
    created = PodProvider().create(pod_props())
    assert api.stop_pod(created.id) == "EXITED"
    assert api.resume_pod(created.id, 1) == "RUNNING"
    assert standin.pods()[0].desired_status == "RUNNING"


def test_create_resumes_an_adopted_stopped_pod(standin: RunPodStandin) -> None:
    first = PodProvider().create(pod_props())
    api.stop_pod(first.id)
    again = PodProvider().create(pod_props())
    assert again.id == first.id
    (pod,) = standin.pods()
    assert pod.desired_status == "RUNNING"
    assert count(standin, "resume") == 1


def test_adopted_pod_that_does_not_start_is_left_alone(standin: RunPodStandin) -> None:
    first = PodProvider().create(pod_props())
    standin.never_running = True
    with pytest.raises(api.RunPodError, match=r"existed before this `up`.*left as it is"):
        PodProvider().create(pod_props())
    (pod,) = standin.pods()
    assert pod.id == first.id and pod.desired_status != "TERMINATED"
    assert count(standin, "terminate") == 0
