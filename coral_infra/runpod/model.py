"""What the RunPod adapter sends and reads, the same whichever wire format carries it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class PodSpec:
    """What a pod is created or edited with, in RunPod's terms."""

    name: str
    image: str
    gpu_type_id: str
    gpu_count: int
    cloud_type: str
    data_center_id: str | None
    container_disk_gb: int
    volume_gb: int
    network_volume_id: str | None
    volume_mount_path: str
    ports: tuple[str, ...]
    env: Mapping[str, str]
    """All env vars sent to the pod, the auth key included."""
    docker_args: str


@dataclass(frozen=True)
class PodInfo:
    """A pod as RunPod reports it (env without the auth key)."""

    id: str
    name: str
    desired_status: str
    """RUNNING, EXITED or TERMINATED: what RunPod keeps the pod at."""
    running: bool
    """True once the container runs, not only asked to."""
    image: str
    gpu_type_id: str | None
    gpu_count: int
    container_disk_gb: int
    volume_gb: int
    volume_mount_path: str | None
    network_volume_id: str | None
    ports: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    docker_args: str = ""
    machine_id: str | None = None
    """The host machine (GraphQL only; REST v2 does not report it)."""
    pod_host_id: str | None = None
    location: str | None = None
    cost_per_hr: float | None = None
    status: str = ""
    """The lifecycle status in REST v2's terms: PROVISIONING, STARTING, RUNNING, EXITED, ERROR
    or TERMINATED (derived from desiredStatus and the runtime on GraphQL)."""
    data_center_id: str | None = None


@dataclass(frozen=True)
class VolumeInfo:
    """A network volume as RunPod reports it."""

    id: str
    name: str
    size_gb: int
    data_center_id: str


@dataclass(frozen=True)
class CreatedPod:
    """The pod `create_pod` deployed, or the live one it adopted by name."""

    id: str
    adopted: PodInfo | None = None
    """Set when the pod already existed: it was not made by this call, so a failure later
    must leave it as it is rather than terminate it."""
    notes: tuple[str, ...] = ()
    """What was done besides (duplicate pods with the name terminated); logged as warnings."""


@dataclass(frozen=True)
class GpuOffer:
    """One GPU type in RunPod's catalog."""

    id: str
    name: str
    price: Mapping[str, float]
    """USD per GPU-hour by cloud ("SECURE", "COMMUNITY"); a cloud not listed does not offer it."""
    max_count: Mapping[str, int]
    """The most GPUs of this type one pod can have, by cloud."""
    stock: Mapping[str, str] = field(default_factory=dict)
    """Availability for pods by cloud: NONE, LOW, MEDIUM or HIGH (REST v2 only)."""
    stock_by_data_center: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """cloud -> data center -> availability, for the data centers that offer the type."""


@dataclass(frozen=True)
class Catalog:
    """What RunPod offers: GPU types with prices and stock, and data centers."""

    gpus: Mapping[str, GpuOffer]
    data_centers: tuple[str, ...] | None
    """Data center ids, or None where the wire format cannot list them (GraphQL)."""
    source: str
    """Which API answered, for messages."""


class WireFormat(Protocol):
    """One RunPod wire format (a module). Each function makes one attempt: it raises
    `TransientError` for what may be retried and a `RunPodError` for the rest."""

    def get_pod(self, pod_id: str) -> PodInfo | None: ...
    def list_pods(self) -> list[PodInfo]: ...
    def check_gpu_type(self, spec: PodSpec) -> None: ...
    def clouds(self, cloud_type: str) -> tuple[str, ...]: ...
    def create_pod(self, spec: PodSpec, data_center_id: str | None, cloud: str) -> str: ...
    def edit_pod(self, pod_id: str, spec: PodSpec) -> None: ...
    def stop_pod(self, pod_id: str) -> str: ...
    def resume_pod(self, pod_id: str, gpu_count: int) -> str: ...
    def terminate_pod(self, pod_id: str) -> bool: ...
    def list_volumes(self) -> list[VolumeInfo]: ...
    def get_volume(self, volume_id: str) -> VolumeInfo | None: ...
    def create_volume(self, name: str, size_gb: int, data_center_id: str) -> VolumeInfo: ...
    def update_volume(self, volume_id: str, name: str, size_gb: int) -> VolumeInfo: ...
    def delete_volume(self, volume_id: str) -> bool: ...
    def catalog(self, clouds: Sequence[str]) -> Catalog: ...


@dataclass(frozen=True)
class LogLine:
    """One line of a pod's log, with RunPod's timestamp (also the stream's resume cursor)."""

    ts: str
    line: str
