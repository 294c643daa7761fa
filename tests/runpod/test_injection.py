"""Hostile strings in every string field, on both wire formats: RunPod gets the exact value
(escaped in GraphQL query text, JSON in REST v2 bodies), or the adapter rejects it first."""

from __future__ import annotations

import pytest

from coral_infra.runpod import api
from coral_infra.runpod.pod import PodProvider
from standins.runpod_api import RunPodStandin
from tests.runpod.helpers import count, pod_props

PAYLOADS = [
    'quote " inside',
    'back\\slash \\" \\n',
    "new\nline\r\ttab",
    '"}){ podTerminate(input: {podId: "x"}) } #',
    '"}, gpuCount: 8, name: "pwned',
    "unicode ✓ — ü",
]


def spec(**overrides: object) -> api.PodSpec:
    values: dict[str, object] = {
        "name": "n",
        "image": "img:1",
        "gpu_type_id": "NVIDIA A40",
        "gpu_count": 1,
        "cloud_type": "SECURE",
        "data_center_id": None,
        "container_disk_gb": 20,
        "volume_gb": 10,  # a pod volume, so REST v2 sends the mount path too
        "network_volume_id": None,
        "volume_mount_path": "/workspace",
        "ports": ("2222/tcp",),
        "env": {"TAILSCALE_AUTHKEY": "k"},
        "docker_args": "",
    }
    values.update(overrides)
    return api.PodSpec(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_pod_strings_reach_runpod_exactly(standin: RunPodStandin, payload: str) -> None:
    pod_id = api.create_pod(
        spec(
            name=payload,
            image=payload,
            volume_mount_path=payload,
            docker_args=payload,
            env={"PAYLOAD": payload, "TAILSCALE_AUTHKEY": payload},
        )
    ).id
    (pod,) = standin.pods()
    assert pod.id == pod_id and pod.gpu_count == 1
    assert (pod.name, pod.image, pod.volume_mount_path, pod.docker_args) == (payload,) * 4
    assert pod.env == [f"PAYLOAD={payload}", f"TAILSCALE_AUTHKEY={payload}"]
    info = api.get_pod(pod_id)
    assert info is not None and info.env == {"PAYLOAD": payload}  # the auth key is not read back


@pytest.mark.parametrize("payload", PAYLOADS)
def test_edit_strings_reach_runpod_exactly(standin: RunPodStandin, payload: str) -> None:
    pod_id = api.create_pod(spec()).id
    api.edit_pod(pod_id, spec(image=payload, docker_args=payload, env={"P": payload}))
    (pod,) = standin.pods()
    assert (pod.image, pod.docker_args, pod.env) == (payload, payload, [f"P={payload}"])


@pytest.mark.parametrize("payload", PAYLOADS)
def test_gpu_type_and_data_center_payloads_are_sent_verbatim_and_rejected_by_runpod(
    standin: RunPodStandin, payload: str
) -> None:
    with pytest.raises(api.InvalidValueError, match="is not a RunPod GPU type"):
        api.create_pod(spec(gpu_type_id=payload))
    with pytest.raises(api.RunPodRequestError, match="Invalid data center id"):
        api.create_pod(spec(data_center_id=payload))
    assert standin.pods() == []
    assert standin.count("<unparseable>") == 0


@pytest.mark.parametrize("payload", PAYLOADS)
def test_volume_strings_reach_runpod_exactly(standin: RunPodStandin, payload: str) -> None:
    volume = api.create_volume(payload, 10, "EU-RO-1")
    assert [v.name for v in standin.volumes()] == [payload]
    api.update_volume(volume.id, name=payload + "2", size_gb=20)
    assert [(v.name, v.size) for v in standin.volumes()] == [(payload + "2", 20)]


@pytest.mark.parametrize("payload", [*PAYLOADS, "", "abc-def", "abc def"])
def test_ids_that_are_not_runpod_ids_are_rejected_before_sending(
    standin: RunPodStandin, payload: str
) -> None:
    for call in (
        lambda: api.get_pod(payload),
        lambda: api.terminate_pod(payload),
        lambda: api.stop_pod(payload),
        lambda: api.resume_pod(payload, 1),
        lambda: api.get_volume(payload),
        lambda: api.delete_volume(payload),
        lambda: api.create_pod(spec(network_volume_id=payload, data_center_id="EU-RO-1")),
    ):
        with pytest.raises(api.InvalidValueError, match="must be a RunPod id"):
            call()
    assert standin.calls == [] or {c.op for c in standin.calls} <= {"gpuTypes", "myself"}


def test_enums_ints_and_ports_are_rejected_before_sending(standin: RunPodStandin) -> None:
    with pytest.raises(api.InvalidValueError, match="cloud_type"):
        api.create_pod(spec(cloud_type="SECURE, gpuCount: 8"))
    with pytest.raises(api.InvalidValueError, match="port"):
        api.create_pod(spec(ports=('22/tcp", x: "',)))
    with pytest.raises(api.InvalidValueError, match="container_disk_gb"):
        api.create_pod(spec(container_disk_gb="20, gpuCount: 8"))
    assert count(standin, "create") == 0


@pytest.mark.parametrize("payload", PAYLOADS)
def test_provider_check_rejects_or_accepts_payloads_with_field_names(payload: str) -> None:
    failures = PodProvider().check({}, pod_props(name=payload, image=payload)).failures
    fields = {f.property for f in failures}
    assert "image" in fields  # no image reference has quotes, spaces or newlines
    assert ("name" in fields) == any(ord(ch) < 0x20 for ch in payload)
