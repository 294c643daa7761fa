"""What a RunPod account holds, and the rules each record carries on its own: pods, network
volumes, a pod create (`PodSpec`), the GPU types on offer with the default catalog of GPU types
and data centers, who a request is from, RunPod's refusals (`AccountError` and its messages)
and the size rules of container disks, pod volumes and network volumes.

Apart from the account's behaviour (standins/runpod_account.py: placement, capacity, a pod's
lifecycle, a volume in use) because the two wire formats (standins/runpod_graphql.py,
standins/runpod_rest_v2.py) and the sandbox need these records and messages without the
account: they read and build them and render the refusals; only the account changes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

NO_CAPACITY = (
    "There are no longer any instances available with the requested specifications. "
    "Please refresh and try again."
)
NO_FREE_GPU = "There are not enough free GPUs on the host machine to start this pod."
SOMETHING_WENT_WRONG = "Something went wrong. Please try again later or contact support."

ErrorKind = Literal["not_found", "invalid", "capacity", "conflict"]
PodStatus = Literal["PROVISIONING", "STARTING", "RUNNING", "EXITED", "ERROR", "TERMINATED"]

PERSISTENT_VOLUME_MIN_GB = 10
NETWORK_VOLUME_GB = (10, 4096)


class AccountError(Exception):
    """A request RunPod refuses; each API renders it in its own wire format."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class GpuTypeOffer:
    id: str
    display_name: str
    memory_gb: int
    max_gpu_count: int
    price_per_gpu: float
    """Secure cloud USD per GPU-hour; community cloud is COMMUNITY_DISCOUNT of it."""
    cuda_version: str = "12.8"
    data_centers: tuple[str, ...] = ()
    """Where machines with this GPU are (empty: every data center of the account)."""


COMMUNITY_DISCOUNT = 0.8
DEFAULT_GPU_TYPES = (
    GpuTypeOffer("NVIDIA GeForce RTX 4090", "RTX 4090", 24, 8, 0.69),
    GpuTypeOffer("NVIDIA A40", "A40", 48, 10, 0.39),
    GpuTypeOffer("NVIDIA H100 80GB HBM3", "H100 SXM", 80, 8, 2.99),
)
DEFAULT_DATA_CENTERS = ("EU-RO-1", "US-TX-3", "US-KS-2")


@dataclass
class StandinPod:
    id: str
    name: str
    image: str
    gpu_type_id: str
    gpu_count: int
    cloud_type: str
    """Where the pod was placed: SECURE or COMMUNITY (GraphQL's ALL places it on SECURE)."""
    data_center_id: str
    container_disk_gb: int
    volume_gb: int
    volume_mount_path: str | None
    network_volume_id: str | None
    ports: str
    """Exposed ports as RunPod's GraphQL keeps them: "8888/http,22/tcp"."""
    env: list[str]
    """The user's env as `NAME=value` entries, as GET returns it; RunPod's own variables are
    added at start only (`container_env`)."""
    docker_args: str
    cost_per_hr: float
    machine_id: str
    pod_host_id: str
    api_key: str
    """The pod-scoped API key RunPod puts in the pod's RUNPOD_API_KEY."""
    registry: str | None = None
    locked: bool = False
    global_networking: bool = False
    runtime_env: dict[str, str] = field(default_factory=dict)
    """Variables RunPod injects at create time besides its own (e.g. JUPYTER_PASSWORD)."""
    desired_status: str = "RUNNING"
    started_at: float | None = None
    created_wall: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_wall: datetime | None = None


@dataclass
class StandinVolume:
    id: str
    name: str
    size: int
    data_center_id: str
    type: str = "STANDARD"


@dataclass
class PodSpec:
    """A pod create, in the account's terms (both APIs build one)."""

    name: str
    image: str
    gpu_type_id: str
    gpu_count: int = 1
    cloud: str = "SECURE"
    data_center_ids: tuple[str, ...] = ()
    container_disk_gb: int = 10
    volume_gb: int = 0
    volume_mount_path: str | None = None
    network_volume_id: str | None = None
    ports: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    docker_args: str = ""
    registry: str | None = None
    global_networking: bool = False
    allowed_cuda_versions: tuple[str, ...] = ()
    min_cuda_version: str | None = None
    start_jupyter: bool = False


@dataclass(frozen=True)
class Principal:
    """Who a request is from: the account's key, or a pod's scoped key (`pod_id` set)."""

    pod_id: str | None = None


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def env_mapping(entries: list[str]) -> dict[str, str]:
    """`NAME=value` entries as a mapping."""
    return dict(entry.partition("=")[::2] for entry in entries)


def check_disks(container_disk_gb: int, volume_gb: int) -> None:
    if container_disk_gb < 1:
        raise AccountError(
            "invalid", f"container disk must be at least 1 GB, got {container_disk_gb}"
        )
    if 0 < volume_gb < PERSISTENT_VOLUME_MIN_GB:
        raise AccountError(
            "invalid",
            f"volume size {volume_gb} GB is below the {PERSISTENT_VOLUME_MIN_GB} GB floor "
            "of a persistent volume",
        )


def check_volume_size(size: int) -> None:
    low, high = NETWORK_VOLUME_GB
    if not low <= size <= high:
        raise AccountError(
            "invalid", f"Network volume size must be {low} to {high} GB, got {size} GB"
        )
