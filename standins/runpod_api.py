"""A RunPod GraphQL API stand-in: a real HTTP server on 127.0.0.1 speaking RunPod's wire format.

Why a server and not mocks: the adapter's escaping, retries, timeouts and error mapping can
only be proven against real HTTP exchanges (the SDK's transport reads status codes and JSON
bodies). Queries are parsed and validated with graphql-core against a schema whose input types
are generated from `runpod_ariadne` (itself generated from RunPod's schema), so a misspelt
field, a wrong type or a string that breaks out of its quotes fails here as it would at RunPod.
The network volume inputs are not in runpod_ariadne; they are written out below from
RunPod's public GraphQL usage.

Faults are injected per operation (top-level field name) with `inject()`; every request is
logged in `calls` so tests can count API calls per operation.

Run for a demo: `python -m standins.runpod_api --port 8765 --api-key KEY`, then point the SDK
at it with RUNPOD_API_BASE_URL=http://127.0.0.1:8765.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import string
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Union, get_args, get_origin

import graphql
import pydantic
from runpod_ariadne import input_types

from standins.pod_runtime import PodRuntime

NO_CAPACITY = (
    "There are no longer any instances available with the requested specifications. "
    "Please refresh and try again."
)
NO_FREE_GPU = "There are not enough free GPUs on the host machine to start this pod."
SOMETHING_WENT_WRONG = "Something went wrong. Please try again later or contact support."

FaultKind = Literal[
    "rate_limit", "server_error", "slow", "no_capacity", "lost_response", "no_free_gpu"
]

# RunPod inputs the stand-in accepts, as runpod_ariadne lists them.
_ARIADNE_INPUTS = (
    input_types.GpuTypeFilter,
    input_types.GpuLowestPriceInput,
    input_types.PodFilter,
    input_types.PodFindAndDeployOnDemandInput,
    input_types.PodEditJobInput,
    input_types.PodStopInput,
    input_types.PodResumeInput,
    input_types.PodTerminateInput,
)

_HAND_WRITTEN_SDL = """
scalar AnyValue

input CreateNetworkVolumeInput { name: String, size: Int!, dataCenterId: String! }
input UpdateNetworkVolumeInput { id: String!, name: String, size: Int }
input DeleteNetworkVolumeInput { id: String! }

type LowestPrice { minimumBidPrice: Float, uninterruptablePrice: Float }
type GpuType {
  id: String, displayName: String, manufacturer: String, memoryInGb: Int, maxGpuCount: Int,
  cudaCores: Int, secureCloud: Boolean, communityCloud: Boolean, securePrice: Float,
  communityPrice: Float, oneMonthPrice: Float, threeMonthPrice: Float, oneWeekPrice: Float,
  communitySpotPrice: Float, secureSpotPrice: Float,
  lowestPrice(input: GpuLowestPriceInput): LowestPrice
}
type PodMachineInfo {
  podHostId: String, gpuTypeId: String, gpuDisplayName: String, location: String,
  costPerHr: Float
}
type PodRuntimePorts {
  ip: String, isIpPublic: Boolean, privatePort: Int, publicPort: Int, type: String
}
type PodRuntime { uptimeInSeconds: Int, ports: [PodRuntimePorts] }
type Pod {
  id: String, name: String, desiredStatus: String, imageName: String, env: [String],
  gpuCount: Int, containerDiskInGb: Int, volumeInGb: Float, volumeMountPath: String,
  networkVolumeId: String, ports: String, port: Int, dockerArgs: String, dockerId: String,
  costPerHr: Float, machineId: String, machine: PodMachineInfo, runtime: PodRuntime,
  lastStatusChange: String, memoryInGb: Float, vcpuCount: Float, podType: String,
  uptimeSeconds: Int
}
type NetworkVolume { id: String, name: String, size: Int, dataCenterId: String }
type User { id: String, pubKey: String, pods: [Pod], networkVolumes: [NetworkVolume] }

type Query {
  gpuTypes(input: GpuTypeFilter): [GpuType]
  myself: User
  pod(input: PodFilter): Pod
}
type Mutation {
  podFindAndDeployOnDemand(input: PodFindAndDeployOnDemandInput): Pod
  podEditJob(input: PodEditJobInput!): Pod
  podStop(input: PodStopInput!): Pod
  podResume(input: PodResumeInput!): Pod
  podTerminate(input: PodTerminateInput!): Boolean
  createNetworkVolume(input: CreateNetworkVolumeInput!): NetworkVolume
  updateNetworkVolume(input: UpdateNetworkVolumeInput!): NetworkVolume
  deleteNetworkVolume(input: DeleteNetworkVolumeInput!): Boolean
}
"""

_SCALARS = {int: "Int", str: "String", float: "Float", bool: "Boolean"}


def _input_sdl() -> str:
    """SDL for the ariadne input types (and the enums and inputs they reference)."""
    blocks: dict[str, str] = {}

    def type_ref(annotation: Any) -> str:
        origin, args = get_origin(annotation), get_args(annotation)
        if origin in (Union, types.UnionType):
            (inner,) = [a for a in args if a is not type(None)]
            return type_ref(inner).removesuffix("!")
        if origin is list:
            return f"[{type_ref(args[0])}]!"
        if annotation is Any:
            return "AnyValue"
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            values = " ".join(member.value for member in annotation)
            blocks.setdefault(annotation.__name__, f"enum {annotation.__name__} {{ {values} }}")
            return f"{annotation.__name__}!"
        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            add_input(annotation)
            return f"{annotation.__name__}!"
        return f"{_SCALARS[annotation]}!"

    def add_input(model: type[pydantic.BaseModel]) -> None:
        if model.__name__ in blocks:
            return
        blocks[model.__name__] = ""
        fields = [
            f"{info.alias or name}: {type_ref(info.annotation)}"
            for name, info in model.model_fields.items()
        ]
        blocks[model.__name__] = f"input {model.__name__} {{ {', '.join(fields)} }}"

    for model in _ARIADNE_INPUTS:
        add_input(model)
    return "\n".join(blocks.values())


SCHEMA = graphql.build_schema(_input_sdl() + _HAND_WRITTEN_SDL)


@dataclass(frozen=True)
class GpuTypeOffer:
    id: str
    display_name: str
    memory_gb: int
    max_gpu_count: int
    price_per_gpu: float


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
    data_center_id: str
    container_disk_gb: int
    volume_gb: int
    volume_mount_path: str | None
    network_volume_id: str | None
    ports: str
    env: list[str]
    docker_args: str
    cost_per_hr: float
    machine_id: str
    pod_host_id: str
    desired_status: str = "RUNNING"
    started_at: float | None = None


@dataclass
class StandinVolume:
    id: str
    name: str
    size: int
    data_center_id: str


@dataclass
class Call:
    """One request as received: the operation (first top-level field) and its query text."""

    op: str
    query: str


@dataclass
class Fault:
    op: str
    kind: FaultKind
    times: int
    delay: float


@dataclass
class _State:
    pods: dict[str, StandinPod] = field(default_factory=dict)
    volumes: dict[str, StandinVolume] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)


def _new_id(length: int) -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(length))


class RunPodStandin:
    """The server plus its in-memory account; use as a context manager."""

    def __init__(
        self,
        api_key: str = "standin-api-key",
        *,
        port: int = 0,
        boot_seconds: float = 0.0,
        gpu_types: tuple[GpuTypeOffer, ...] = DEFAULT_GPU_TYPES,
        data_centers: tuple[str, ...] = DEFAULT_DATA_CENTERS,
        runtime: PodRuntime | None = None,
    ) -> None:
        self.api_key = api_key
        self.runtime = runtime
        """When set, pods really run (standins/pod_runtime.py): their start command starts on
        create/resume/edit and is killed on stop/terminate; else pods are records only."""
        self.boot_seconds = boot_seconds
        """Seconds from (re)start until a pod's container runs (its `runtime` is set)."""
        self.never_running = False
        """When set, containers never start: pods stay RUNNING without a runtime."""
        self.gpu_types = {offer.id: offer for offer in gpu_types}
        self.data_centers = data_centers
        self.free_gpus = {offer.id: 16 for offer in gpu_types}
        self._state = _State()
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> RunPodStandin:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self.runtime is not None:
            self.runtime.close()

    def __enter__(self) -> RunPodStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test controls -----------------------------------------------------------------

    def inject(self, op: str, kind: FaultKind, *, times: int = 1, delay: float = 0.0) -> None:
        """Make the next `times` requests of `op` (e.g. "podFindAndDeployOnDemand") fail."""
        with self._lock:
            self._state.faults.append(Fault(op, kind, times, delay))

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._state.calls)

    def count(self, op: str | None = None) -> int:
        return sum(1 for call in self.calls if op is None or call.op == op)

    def reset_calls(self) -> None:
        with self._lock:
            self._state.calls.clear()

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
            if self.runtime is not None:
                self.runtime.terminate(pod.id, pod.network_volume_id)

    def migrate(self, pod_id: str) -> str:
        """RunPod moved the pod to another host: same pod under a new id."""
        with self._lock:
            pod = self._state.pods.pop(pod_id)
            if self.runtime is not None:
                self.runtime.stop(pod.id)
            pod.id = _new_id(14)
            pod.machine_id = _new_id(12)
            self._state.pods[pod.id] = pod
            self._run(pod)
            return pod.id

    def _run(self, pod: StandinPod) -> None:
        if self.runtime is not None:
            self.runtime.start(
                pod.id,
                env=pod.env,
                docker_args=pod.docker_args,
                mount_path=pod.volume_mount_path,
                network_volume_id=pod.network_volume_id,
            )

    # --- GraphQL resolvers -------------------------------------------------------------

    def _running_since(self, pod: StandinPod) -> float | None:
        if pod.desired_status != "RUNNING" or pod.started_at is None or self.never_running:
            return None
        uptime = time.monotonic() - pod.started_at
        return uptime if uptime >= self.boot_seconds else None

    def _pod_view(self, pod: StandinPod) -> dict[str, Any]:
        uptime = self._running_since(pod)
        offer = self.gpu_types[pod.gpu_type_id]
        return {
            "id": pod.id,
            "name": pod.name,
            "desiredStatus": pod.desired_status,
            "imageName": pod.image,
            "env": list(pod.env),
            "gpuCount": pod.gpu_count,
            "containerDiskInGb": pod.container_disk_gb,
            "volumeInGb": float(pod.volume_gb),
            "volumeMountPath": pod.volume_mount_path,
            "networkVolumeId": pod.network_volume_id,
            "ports": pod.ports,
            "dockerArgs": pod.docker_args,
            "costPerHr": pod.cost_per_hr,
            "machineId": pod.machine_id,
            "podType": "RESERVED",
            "machine": {
                "podHostId": pod.pod_host_id,
                "gpuTypeId": pod.gpu_type_id,
                "gpuDisplayName": offer.display_name,
                "location": pod.data_center_id,
            },
            "runtime": None if uptime is None else {"uptimeInSeconds": int(uptime), "ports": []},
        }

    def _live_pod(self, pod_id: str) -> StandinPod:
        pod = self._state.pods.get(pod_id)
        if pod is None or pod.desired_status == "TERMINATED":
            raise graphql.GraphQLError("Pod not found")
        return pod

    def gpuTypes(self, _info: Any, input: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        wanted = (input or {}).get("id")
        return [
            {
                "id": offer.id,
                "displayName": offer.display_name,
                "manufacturer": "Nvidia",
                "memoryInGb": offer.memory_gb,
                "maxGpuCount": offer.max_gpu_count,
                "secureCloud": True,
                "communityCloud": True,
                "securePrice": offer.price_per_gpu,
                "communityPrice": offer.price_per_gpu * 0.8,
                "lowestPrice": {
                    "minimumBidPrice": None,
                    "uninterruptablePrice": offer.price_per_gpu,
                },
            }
            for offer in self.gpu_types.values()
            if wanted is None or offer.id == wanted
        ]

    def myself(self, _info: Any) -> dict[str, Any]:
        return {
            "id": "standin-user",
            "pubKey": "",
            "pods": [self._pod_view(pod) for pod in self.pods()],
            "networkVolumes": [
                {"id": v.id, "name": v.name, "size": v.size, "dataCenterId": v.data_center_id}
                for v in self.volumes()
            ],
        }

    def pod(self, _info: Any, input: dict[str, Any] | None = None) -> dict[str, Any] | None:
        pod = self._state.pods.get((input or {}).get("podId", ""))
        return None if pod is None else self._pod_view(pod)

    def podFindAndDeployOnDemand(
        self, _info: Any, input: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        spec = input or {}
        gpu_type_id, gpu_count = spec.get("gpuTypeId"), spec.get("gpuCount") or 1
        if gpu_type_id not in self.gpu_types:
            raise graphql.GraphQLError(NO_CAPACITY)
        data_center_id = spec.get("dataCenterId")
        if data_center_id is not None and data_center_id not in self.data_centers:
            raise graphql.GraphQLError(f"Invalid data center id: {data_center_id}")
        volume_id = spec.get("networkVolumeId")
        if volume_id is not None:
            volume = self._state.volumes.get(volume_id)
            if volume is None:
                raise graphql.GraphQLError("Network volume not found")
            if data_center_id is not None and data_center_id != volume.data_center_id:
                raise graphql.GraphQLError("Network volume is in another data center")
            data_center_id = volume.data_center_id
        if self.free_gpus[gpu_type_id] < gpu_count:
            raise graphql.GraphQLError(NO_CAPACITY)
        self.free_gpus[gpu_type_id] -= gpu_count
        pod = StandinPod(
            id=_new_id(14),
            name=spec.get("name") or "",
            image=spec.get("imageName") or "",
            gpu_type_id=gpu_type_id,
            gpu_count=gpu_count,
            cloud_type=spec.get("cloudType") or "ALL",
            data_center_id=data_center_id or self.data_centers[0],
            container_disk_gb=spec.get("containerDiskInGb") or 10,
            volume_gb=spec.get("volumeInGb") or 0,
            volume_mount_path=spec.get("volumeMountPath"),
            network_volume_id=volume_id,
            ports=spec.get("ports") or "",
            env=[f"{e['key']}={e['value']}" for e in spec.get("env") or [] if e],
            docker_args=spec.get("dockerArgs") or "",
            cost_per_hr=round(self.gpu_types[gpu_type_id].price_per_gpu * gpu_count, 3),
            machine_id=_new_id(12),
            pod_host_id=_new_id(14) + "-64410b5c",
            started_at=time.monotonic(),
        )
        self._state.pods[pod.id] = pod
        self._run(pod)
        return self._pod_view(pod)

    def podEditJob(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        pod = self._live_pod(input["podId"])
        pod.image = input["imageName"]
        pod.container_disk_gb = input["containerDiskInGb"]
        if input.get("volumeInGb") is not None:
            pod.volume_gb = input["volumeInGb"]
        if input.get("volumeMountPath") is not None:
            pod.volume_mount_path = input["volumeMountPath"]
        if input.get("ports") is not None:
            pod.ports = input["ports"]
        if input.get("dockerArgs") is not None:
            pod.docker_args = input["dockerArgs"]
        if input.get("env") is not None:
            pod.env = [f"{e['key']}={e['value']}" for e in input["env"] if e]
        pod.desired_status, pod.started_at = "RUNNING", time.monotonic()  # an edit resets the pod
        self._run(pod)
        return self._pod_view(pod)

    def podStop(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        pod = self._live_pod(input["podId"])
        if pod.desired_status == "RUNNING":
            self.free_gpus[pod.gpu_type_id] += pod.gpu_count
        pod.desired_status, pod.started_at = "EXITED", None
        if self.runtime is not None:
            self.runtime.stop(pod.id)
        return self._pod_view(pod)

    def podResume(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        pod = self._live_pod(input["podId"])
        if pod.desired_status != "RUNNING":
            if self.free_gpus[pod.gpu_type_id] < pod.gpu_count:
                raise graphql.GraphQLError(NO_FREE_GPU)
            self.free_gpus[pod.gpu_type_id] -= pod.gpu_count
            pod.desired_status, pod.started_at = "RUNNING", time.monotonic()
            self._run(pod)
        return self._pod_view(pod)

    def podTerminate(self, _info: Any, input: dict[str, Any]) -> bool:
        pod = self._state.pods.get(input["podId"])
        if pod is None:
            raise graphql.GraphQLError("Pod not found")
        if pod.desired_status == "RUNNING":
            self.free_gpus[pod.gpu_type_id] += pod.gpu_count
        pod.desired_status, pod.started_at = "TERMINATED", None
        if self.runtime is not None:
            self.runtime.terminate(pod.id, pod.network_volume_id)
        return True

    def createNetworkVolume(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        if input["dataCenterId"] not in self.data_centers:
            raise graphql.GraphQLError(f"Invalid data center id: {input['dataCenterId']}")
        if input["size"] < 1:
            raise graphql.GraphQLError("Network volume size must be at least 1 GB")
        volume = StandinVolume(
            _new_id(10), input.get("name") or "", input["size"], input["dataCenterId"]
        )
        self._state.volumes[volume.id] = volume
        return {
            "id": volume.id,
            "name": volume.name,
            "size": volume.size,
            "dataCenterId": volume.data_center_id,
        }

    def updateNetworkVolume(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        volume = self._state.volumes.get(input["id"])
        if volume is None:
            raise graphql.GraphQLError("Network volume not found")
        size = input.get("size")
        if size is not None and size < volume.size:
            raise graphql.GraphQLError("Network volume size can only be increased")
        volume.size = size if size is not None else volume.size
        volume.name = input.get("name") or volume.name
        return {
            "id": volume.id,
            "name": volume.name,
            "size": volume.size,
            "dataCenterId": volume.data_center_id,
        }

    def deleteNetworkVolume(self, _info: Any, input: dict[str, Any]) -> bool:
        if input["id"] not in self._state.volumes:
            raise graphql.GraphQLError("Network volume not found")
        if any(pod.network_volume_id == input["id"] for pod in self.pods()):
            raise graphql.GraphQLError("Network volume is in use by a pod")
        del self._state.volumes[input["id"]]
        return True

    # --- HTTP --------------------------------------------------------------------------

    def _take_fault(self, ops: list[str]) -> Fault | None:
        with self._lock:
            for fault in self._state.faults:
                if fault.op in ops and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _execute(self, document: graphql.DocumentNode) -> tuple[int, dict[str, Any]]:
        errors = graphql.validate(SCHEMA, document)
        if errors:
            return 400, {"errors": [error.formatted for error in errors]}
        with self._lock:
            result = graphql.execute(SCHEMA, document, root_value=self)
        assert not isinstance(result, Iterator)
        body: dict[str, Any] = {"data": result.data}  # type: ignore[union-attr]
        if result.errors:  # type: ignore[union-attr]
            body["errors"] = [error.formatted for error in result.errors]  # type: ignore[union-attr]
        return 200, body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the call log is the record."""

            def _reply(
                self, status: int, body: str, content_type: str = "application/json"
            ) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/graphql":
                    self._reply(404, json.dumps({"error": "not found"}))
                    return
                if self.headers.get("Authorization") != f"Bearer {standin.api_key}":
                    self._reply(401, json.dumps({"error": "Unauthorized"}))
                    return
                try:
                    query = json.loads(raw)["query"]
                    document = graphql.parse(query)
                except (ValueError, KeyError, TypeError, graphql.GraphQLError) as exc:
                    with standin._lock:
                        standin._state.calls.append(
                            Call("<unparseable>", raw.decode(errors="replace"))
                        )
                    message = (
                        exc.message if isinstance(exc, graphql.GraphQLError) else "bad request"
                    )
                    self._reply(400, json.dumps({"errors": [{"message": message}]}))
                    return
                ops = [
                    selection.name.value
                    for definition in document.definitions
                    if isinstance(definition, graphql.OperationDefinitionNode)
                    for selection in definition.selection_set.selections
                    if isinstance(selection, graphql.FieldNode)
                ]
                with standin._lock:
                    standin._state.calls.append(Call(ops[0] if ops else "<none>", query))
                fault = standin._take_fault(ops)
                if fault is not None and fault.kind == "rate_limit":
                    self._reply(429, "Too Many Requests", "text/plain")
                    return
                if fault is not None and fault.kind == "server_error":
                    self._reply(500, json.dumps({"errors": [{"message": SOMETHING_WENT_WRONG}]}))
                    return
                if fault is not None and fault.kind in ("no_capacity", "no_free_gpu"):
                    message = NO_CAPACITY if fault.kind == "no_capacity" else NO_FREE_GPU
                    self._reply(200, json.dumps({"data": None, "errors": [{"message": message}]}))
                    return
                status, body = standin._execute(document)
                if fault is not None and fault.kind == "slow":
                    time.sleep(fault.delay)
                if fault is not None and fault.kind == "lost_response":
                    self.close_connection = True  # executed, but the client never hears back
                    return
                self._reply(status, json.dumps(body))

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default=os.environ.get("RUNPOD_API_KEY", "standin-api-key"))
    parser.add_argument("--boot-seconds", type=float, default=2.0)
    args = parser.parse_args()
    standin = RunPodStandin(args.api_key, port=args.port, boot_seconds=args.boot_seconds)
    print(f"RunPod stand-in on {standin.url} (RUNPOD_API_BASE_URL={standin.url})", flush=True)
    try:
        standin._server.serve_forever()
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
