"""The RunPod account behind the stand-in: what RunPod does whichever API is used — places pods
by GPU type, capacity, data center and CUDA version, starts, stops and terminates them (through
the pod runtime, standins/pod_runtime.py, when pods really run), keeps network volumes (sizes
only grow, one in use stays) and tells who may act on what (the account's key, or a pod's
scoped key). The records it keeps and their own rules are in standins/runpod_records.py, each
pod's log in standins/runpod_pod_logs.py. Both wire formats (GraphQL in
standins/runpod_graphql.py, REST v2 in standins/runpod_rest_v2.py) translate to and from these
calls, so a pod created through one is read, changed and terminated through the other.

Ids: GraphQL creates pods and volumes with bare ids as RunPod's GraphQL does (14 and 10
lowercase letters and digits); v2 creates them in the prefixed form of the OpenAPI document's
examples (`pod_` + 14, `vol_` + 10). Lookups take either form.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from standins.pod_runtime import PodRuntime
from standins.runpod_pod_logs import PodLogs
from standins.runpod_records import (
    COMMUNITY_DISCOUNT,
    NO_CAPACITY,
    NO_FREE_GPU,
    AccountError,
    GpuTypeOffer,
    PodSpec,
    PodStatus,
    Principal,
    StandinPod,
    StandinVolume,
    check_disks,
    check_volume_size,
    env_mapping,
)


@dataclass
class _State:
    pods: dict[str, StandinPod] = field(default_factory=dict)
    volumes: dict[str, StandinVolume] = field(default_factory=dict)


def new_id(length: int) -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(length))


class RunPodAccount:
    """One RunPod account in memory; every method is safe to call from several threads."""

    def __init__(
        self,
        api_key: str,
        *,
        boot_seconds: float,
        gpu_types: tuple[GpuTypeOffer, ...],
        data_centers: tuple[str, ...],
        runtime: PodRuntime | None,
    ) -> None:
        self.api_key = api_key
        self.runtime = runtime
        """When set, pods really run (standins/pod_runtime.py): their start command starts on
        create/start/edit and is killed on stop/terminate; else pods are records only."""
        self.boot_seconds = boot_seconds
        """Seconds from (re)start until a pod's container runs (RUNNING, with a runtime)."""
        self.never_running = False
        """When set, containers never start: pods stay starting without a runtime."""
        self.gpu_types = {offer.id: offer for offer in gpu_types}
        self.data_centers = data_centers
        self.free_gpus = {offer.id: 16 for offer in gpu_types}
        """Free GPUs per type across the account's data centers."""
        self.sold_out: set[tuple[str, str]] = set()
        """(GPU type id, data center id) pairs without stock: the catalog says NONE there and a
        create placed only there fails on capacity."""
        self.log_follow_seconds = 30.0
        """How long a v2 log stream stays open for live lines after its backfill."""
        self.logs = PodLogs(runtime)
        """Each pod's log: the account's lines about it, and its console when it really runs."""
        self._state = _State()
        self._lock = threading.RLock()

    # --- what is in it --------------------------------------------------------------------

    def pods(self, *, include_terminated: bool = False) -> list[StandinPod]:
        with self._lock:
            return [
                pod
                for pod in self._state.pods.values()
                if include_terminated or pod.desired_status != "TERMINATED"
            ]

    def volumes(self) -> list[StandinVolume]:
        with self._lock:
            return list(self._state.volumes.values())

    def vanish(self, pod_id: str) -> None:
        """The pod disappears out of band (RunPod removed it, or someone else did)."""
        with self._lock:
            pod = self._state.pods.pop(pod_id)
            if pod.desired_status == "RUNNING":
                self.free_gpus[pod.gpu_type_id] += pod.gpu_count
            if self.runtime is not None:
                self.runtime.terminate(pod.id, pod.network_volume_id)

    def migrate(self, pod_id: str) -> str:
        """RunPod moved the pod to another host: same pod under a new id."""
        with self._lock:
            pod = self._state.pods.pop(pod_id)
            if self.runtime is not None:
                self.runtime.stop(pod.id)
            pod.id = ("pod_" if pod.id.startswith("pod_") else "") + new_id(14)
            pod.machine_id = new_id(12)
            self._state.pods[pod.id] = pod
            self._run(pod)
            return pod.id

    # --- the account: who is asking -----------------------------------------------------

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The caller behind an `Authorization: Bearer <key>` header, or None."""
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            return None
        if secrets.compare_digest(key.encode(), self.api_key.encode()):
            return Principal()
        with self._lock:
            for pod in self._state.pods.values():
                if pod.desired_status != "TERMINATED" and secrets.compare_digest(
                    key.encode(), pod.api_key.encode()
                ):
                    return Principal(pod_id=pod.id)
        return None

    # --- the account: pods --------------------------------------------------------------

    def pod_status(self, pod: StandinPod) -> PodStatus:
        if pod.desired_status in ("EXITED", "TERMINATED"):
            return "EXITED" if pod.desired_status == "EXITED" else "TERMINATED"
        if self.running_since(pod) is not None:
            return "RUNNING"
        started = pod.started_at if pod.started_at is not None else time.monotonic()
        return "PROVISIONING" if time.monotonic() - started < self.boot_seconds / 2 else "STARTING"

    def running_since(self, pod: StandinPod) -> float | None:
        """Seconds the pod's container has been up, or None while it is not running."""
        if pod.desired_status != "RUNNING" or pod.started_at is None or self.never_running:
            return None
        uptime = time.monotonic() - pod.started_at
        return uptime if uptime >= self.boot_seconds else None

    def price(self, offer: GpuTypeOffer, cloud: str) -> float:
        factor = COMMUNITY_DISCOUNT if cloud == "COMMUNITY" else 1.0
        return round(offer.price_per_gpu * factor, 3)

    def offered_in(self, offer: GpuTypeOffer) -> tuple[str, ...]:
        return tuple(dc for dc in self.data_centers if dc in (offer.data_centers or (dc,)))

    def free_in(self, offer: GpuTypeOffer, data_center_id: str) -> int:
        """Free GPUs of this type a pod placed in this data center could get."""
        if data_center_id not in self.offered_in(offer):
            return 0
        if (offer.id, data_center_id) in self.sold_out:
            return 0
        return self.free_gpus.get(offer.id, 0)

    def cuda_matches(
        self, offer: GpuTypeOffer, allowed: Sequence[str] | None, minimum: str | None
    ) -> bool:
        """Whether this GPU type's machines have a CUDA version in `allowed` and >= `minimum`."""
        return (not allowed or offer.cuda_version in allowed) and (
            minimum is None or version_tuple(offer.cuda_version) >= version_tuple(minimum)
        )

    def live_pod(self, pod_id: str) -> StandinPod:
        with self._lock:
            pod = self._state.pods.get(pod_id)
            if pod is None or pod.desired_status == "TERMINATED":
                raise AccountError("not_found", f"pod {pod_id} not found")
            return pod

    def find_pod(self, pod_id: str) -> StandinPod | None:
        """The pod under this id, terminated ones included (GraphQL still reads those)."""
        with self._lock:
            return self._state.pods.get(pod_id)

    def create_pod(self, spec: PodSpec, *, id_prefix: str = "") -> StandinPod:
        with self._lock:
            offer = self.gpu_types.get(spec.gpu_type_id)
            if offer is None:
                raise AccountError(
                    "capacity", f"GPU type {spec.gpu_type_id!r} is not offered: {NO_CAPACITY}"
                )
            if spec.gpu_count > offer.max_gpu_count:
                raise AccountError(
                    "invalid",
                    f"gpu count {spec.gpu_count} is more than the {offer.max_gpu_count} "
                    f"GPUs of the largest {offer.id} machine",
                )
            for data_center_id in spec.data_center_ids:
                if data_center_id not in self.data_centers:
                    raise AccountError("invalid", f"Invalid data center id: {data_center_id}")
            check_disks(spec.container_disk_gb, spec.volume_gb)
            candidates = spec.data_center_ids or self.data_centers
            if spec.network_volume_id is not None:
                volume = self._state.volumes.get(spec.network_volume_id)
                if volume is None:
                    raise AccountError(
                        "not_found", f"network volume {spec.network_volume_id} not found"
                    )
                if volume.data_center_id not in candidates:
                    raise AccountError(
                        "invalid",
                        f"network volume {volume.id} is in data center {volume.data_center_id}, "
                        f"not in {', '.join(candidates)}",
                    )
                candidates = (volume.data_center_id,)
            cuda_ok = self.cuda_matches(offer, spec.allowed_cuda_versions, spec.min_cuda_version)
            placed = [
                dc for dc in candidates if cuda_ok and self.free_in(offer, dc) >= spec.gpu_count
            ]
            if not placed:
                raise AccountError("capacity", NO_CAPACITY)
            cloud = "SECURE" if spec.cloud == "ALL" else spec.cloud
            self.free_gpus[offer.id] -= spec.gpu_count
            pod_id = id_prefix + new_id(14)
            runtime_env = {}
            if spec.start_jupyter and "JUPYTER_PASSWORD" not in spec.env:
                runtime_env["JUPYTER_PASSWORD"] = new_id(16)
            pod = StandinPod(
                id=pod_id,
                name=spec.name,
                image=spec.image,
                gpu_type_id=offer.id,
                gpu_count=spec.gpu_count,
                cloud_type=cloud,
                data_center_id=placed[0],
                container_disk_gb=spec.container_disk_gb,
                volume_gb=0 if spec.network_volume_id else spec.volume_gb,
                volume_mount_path=spec.volume_mount_path,
                network_volume_id=spec.network_volume_id,
                ports=",".join(spec.ports),
                env=[f"{name}={value}" for name, value in spec.env.items()],
                docker_args=spec.docker_args,
                cost_per_hr=round(self.price(offer, cloud) * spec.gpu_count, 3),
                machine_id=new_id(12),
                pod_host_id=f"{pod_id}-64410b5c",
                api_key="rpa_" + new_id(40).upper(),
                registry=spec.registry,
                global_networking=spec.global_networking,
                runtime_env=runtime_env,
            )
            self._state.pods[pod.id] = pod
            self.logs.system(pod.id, f"create pod: {offer.id} x{spec.gpu_count} in {placed[0]}")
            self._boot(pod)
            return pod

    def edit_pod(self, pod: StandinPod, *, restart: bool, **changes: Any) -> StandinPod:
        """Applies `changes` (StandinPod fields); with `restart` a running pod's container
        restarts with them (image, env, ports, disk, start command), a stopped one keeps them
        for its next start."""
        with self._lock:
            check_disks(changes.get("container_disk_gb", 1), changes.get("volume_gb", 0))
            for name, value in changes.items():
                setattr(pod, name, value)
            if restart and pod.desired_status == "RUNNING":
                self.logs.system(pod.id, "pod updated: restarting the container")
                self._boot(pod)
            return pod

    def start_pod(self, pod: StandinPod) -> StandinPod:
        with self._lock:
            if pod.desired_status != "RUNNING":
                if self.free_gpus[pod.gpu_type_id] < pod.gpu_count:
                    raise AccountError("capacity", NO_FREE_GPU)
                self.free_gpus[pod.gpu_type_id] -= pod.gpu_count
                pod.desired_status = "RUNNING"
                self.logs.system(pod.id, "start pod")
                self._boot(pod)
            return pod

    def restart_pod(self, pod: StandinPod) -> StandinPod:
        with self._lock:
            self.logs.system(pod.id, "restart container")
            self._boot(pod)
            return pod

    def stop_pod(self, pod: StandinPod) -> StandinPod:
        with self._lock:
            self._halt(pod, "EXITED", "stop pod")
            if self.runtime is not None:
                self.runtime.stop(pod.id)
            return pod

    def terminate_pod(self, pod: StandinPod) -> None:
        with self._lock:
            self._halt(pod, "TERMINATED", "terminate pod")
            if self.runtime is not None:
                self.runtime.terminate(pod.id, pod.network_volume_id)

    def _halt(self, pod: StandinPod, status: str, line: str) -> None:
        if pod.desired_status == "RUNNING":
            self.free_gpus[pod.gpu_type_id] += pod.gpu_count
        pod.desired_status, pod.started_at, pod.started_wall = status, None, None
        self.logs.system(pod.id, line)

    def _boot(self, pod: StandinPod) -> None:
        pod.desired_status = "RUNNING"
        pod.started_at = time.monotonic()
        pod.started_wall = datetime.now(UTC)
        self._run(pod)

    def _run(self, pod: StandinPod) -> None:
        if self.runtime is not None:
            self.runtime.start(
                pod.id,
                env=[f"{name}={value}" for name, value in self.container_env(pod).items()],
                docker_args=pod.docker_args,
                mount_path=pod.volume_mount_path,
                network_volume_id=pod.network_volume_id,
            )

    def container_env(self, pod: StandinPod) -> dict[str, str]:
        """The env a pod's container starts with: the user's, then what RunPod sets itself
        (docs.runpod.io, pods/templates/environment-variables: RUNPOD_POD_ID, a pod-scoped
        RUNPOD_API_KEY, ...), which GET never returns as the pod's env."""
        runpod_env = {
            "RUNPOD_POD_ID": pod.id,
            "RUNPOD_API_KEY": pod.api_key,
            "RUNPOD_POD_HOSTNAME": pod.pod_host_id,
            "RUNPOD_DC_ID": pod.data_center_id,
            "RUNPOD_GPU_COUNT": str(pod.gpu_count),
            "CUDA_VERSION": self.gpu_types[pod.gpu_type_id].cuda_version,
        }
        if pod.network_volume_id:
            runpod_env["RUNPOD_VOLUME_ID"] = pod.network_volume_id
        return {**pod.runtime_env, **env_mapping(pod.env), **runpod_env}

    # --- the account: network volumes ---------------------------------------------------

    def live_volume(self, volume_id: str) -> StandinVolume:
        with self._lock:
            volume = self._state.volumes.get(volume_id)
            if volume is None:
                raise AccountError("not_found", f"network volume {volume_id} not found")
            return volume

    def create_volume(
        self,
        name: str,
        size: int,
        data_center_id: str,
        *,
        volume_type: str | None = None,
        id_prefix: str = "",
    ) -> StandinVolume:
        with self._lock:
            if data_center_id not in self.data_centers:
                raise AccountError("invalid", f"Invalid data center id: {data_center_id}")
            check_volume_size(size)
            volume = StandinVolume(
                id_prefix + new_id(10), name, size, data_center_id, volume_type or "STANDARD"
            )
            self._state.volumes[volume.id] = volume
            return volume

    def update_volume(
        self, volume: StandinVolume, *, name: str | None = None, size: int | None = None
    ) -> StandinVolume:
        with self._lock:
            if size is not None:
                check_volume_size(size)
                if size < volume.size:
                    raise AccountError(
                        "invalid",
                        f"Network volume size can only be increased: it is {volume.size} GB, "
                        f"asked for {size} GB",
                    )
                volume.size = size
            volume.name = name or volume.name
            return volume

    def delete_volume(self, volume: StandinVolume) -> None:
        with self._lock:
            users = [pod.id for pod in self.pods() if pod.network_volume_id == volume.id]
            if users:
                raise AccountError(
                    "conflict",
                    f"Network volume {volume.id} is in use by a pod ({', '.join(users)}); "
                    "terminate the pod first",
                )
            del self._state.volumes[volume.id]


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))
