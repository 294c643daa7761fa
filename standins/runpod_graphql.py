"""The RunPod stand-in's GraphQL side (`POST /graphql`, what the runpod SDK 1.12 speaks).

Queries are parsed and validated with graphql-core against a schema whose input types are
generated from `runpod_ariadne` (itself generated from RunPod's schema), so a misspelt field, a
wrong type or a string that breaks out of its quotes fails here as it would at RunPod. The
network volume inputs are not in runpod_ariadne; they are written out below from RunPod's
public GraphQL usage. The resolvers translate to and from the account in
standins/runpod_api.py, which the v2 side shares.
"""

from __future__ import annotations

import json
import time
import types
from collections.abc import Iterator
from enum import Enum
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

import graphql
import pydantic
from runpod_ariadne import input_types

from standins.runpod_api import BAD_GATEWAY_HTML, Call, HttpReply, HttpRequest, echo
from standins.runpod_records import (
    NO_CAPACITY,
    NO_FREE_GPU,
    SOMETHING_WENT_WRONG,
    AccountError,
    PodSpec,
    Principal,
    StandinPod,
    StandinVolume,
)

if TYPE_CHECKING:
    from standins.runpod_api import RunPodStandin

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

# What a pod-scoped key (the pod's RUNPOD_API_KEY) may do over GraphQL: act on its own pod.
_POD_SCOPED_FIELDS = {"pod", "podStop", "podResume", "podTerminate", "podEditJob"}


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


def _env_pairs(entries: list[dict[str, Any] | None]) -> dict[str, str]:
    return {e["key"]: e["value"] for e in entries if e}


def _volume_view(volume: StandinVolume) -> dict[str, Any]:
    return {
        "id": volume.id,
        "name": volume.name,
        "size": volume.size,
        "dataCenterId": volume.data_center_id,
    }


def _message(error: AccountError) -> str:
    """RunPod's GraphQL words for the account's refusals."""
    if error.kind == "capacity":
        return NO_FREE_GPU if error.message == NO_FREE_GPU else NO_CAPACITY
    if error.kind == "not_found" and error.message.startswith("pod "):
        return "Pod not found"
    if error.kind == "not_found":
        return "Network volume not found"
    return error.message


class GraphQLApi:
    """Resolvers (graphql-core calls the method named after each top-level field) and the
    HTTP exchange of `/graphql`."""

    def __init__(self, account: RunPodStandin) -> None:
        self.account = account

    # --- resolvers ----------------------------------------------------------------------

    def _pod_view(self, pod: StandinPod) -> dict[str, Any]:
        uptime = self.account.running_since(pod)
        offer = self.account.gpu_types[pod.gpu_type_id]
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
        try:
            return self.account.live_pod(pod_id)
        except AccountError as exc:
            raise graphql.GraphQLError(_message(exc)) from exc

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
                "securePrice": self.account.price(offer, "SECURE"),
                "communityPrice": self.account.price(offer, "COMMUNITY"),
                "lowestPrice": {
                    "minimumBidPrice": None,
                    "uninterruptablePrice": offer.price_per_gpu,
                },
            }
            for offer in self.account.gpu_types.values()
            if wanted is None or offer.id == wanted
        ]

    def myself(self, _info: Any) -> dict[str, Any]:
        return {
            "id": "standin-user",
            "pubKey": "",
            "pods": [self._pod_view(pod) for pod in self.account.pods()],
            "networkVolumes": [_volume_view(v) for v in self.account.volumes()],
        }

    def pod(self, _info: Any, input: dict[str, Any] | None = None) -> dict[str, Any] | None:
        pod = self.account.find_pod((input or {}).get("podId", ""))
        return None if pod is None else self._pod_view(pod)

    def podFindAndDeployOnDemand(
        self, _info: Any, input: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        spec = input or {}
        data_center_id = spec.get("dataCenterId")
        try:
            pod = self.account.create_pod(
                PodSpec(
                    name=spec.get("name") or "",
                    image=spec.get("imageName") or "",
                    gpu_type_id=spec.get("gpuTypeId") or "",
                    gpu_count=spec.get("gpuCount") or 1,
                    cloud=spec.get("cloudType") or "ALL",
                    data_center_ids=(data_center_id,) if data_center_id else (),
                    container_disk_gb=spec.get("containerDiskInGb") or 10,
                    volume_gb=spec.get("volumeInGb") or 0,
                    volume_mount_path=spec.get("volumeMountPath"),
                    network_volume_id=spec.get("networkVolumeId"),
                    ports=tuple(p for p in (spec.get("ports") or "").split(",") if p),
                    env=_env_pairs(spec.get("env") or []),
                    docker_args=spec.get("dockerArgs") or "",
                )
            )
        except AccountError as exc:
            raise graphql.GraphQLError(_message(exc)) from exc
        return self._pod_view(pod)

    def podEditJob(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        pod = self._live_pod(input["podId"])
        changes: dict[str, Any] = {
            "image": input["imageName"],
            "container_disk_gb": input["containerDiskInGb"],
        }
        if input.get("volumeInGb") is not None:
            changes["volume_gb"] = input["volumeInGb"]
        if input.get("volumeMountPath") is not None:
            changes["volume_mount_path"] = input["volumeMountPath"]
        if input.get("ports") is not None:
            changes["ports"] = input["ports"]
        if input.get("dockerArgs") is not None:
            changes["docker_args"] = input["dockerArgs"]
        if input.get("env") is not None:
            changes["env"] = [f"{k}={v}" for k, v in _env_pairs(input["env"]).items()]
        try:
            self.account.edit_pod(pod, restart=True, **changes)
            self.account.start_pod(pod)  # an edit over GraphQL resets the pod: it runs after
        except AccountError as exc:
            raise graphql.GraphQLError(_message(exc)) from exc
        return self._pod_view(pod)

    def podStop(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        return self._pod_view(self.account.stop_pod(self._live_pod(input["podId"])))

    def podResume(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        try:
            pod = self.account.start_pod(self._live_pod(input["podId"]))
        except AccountError as exc:
            raise graphql.GraphQLError(_message(exc)) from exc
        return self._pod_view(pod)

    def podTerminate(self, _info: Any, input: dict[str, Any]) -> bool:
        pod = self.account.find_pod(input["podId"])
        if pod is None:
            raise graphql.GraphQLError("Pod not found")
        self.account.terminate_pod(pod)
        return True

    def createNetworkVolume(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        try:
            volume = self.account.create_volume(
                input.get("name") or "", input["size"], input["dataCenterId"]
            )
        except AccountError as exc:
            raise graphql.GraphQLError(_message(exc)) from exc
        return _volume_view(volume)

    def updateNetworkVolume(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        try:
            volume = self.account.update_volume(
                self.account.live_volume(input["id"]),
                name=input.get("name"),
                size=input.get("size"),
            )
        except AccountError as exc:
            raise graphql.GraphQLError(_message(exc)) from exc
        return _volume_view(volume)

    def deleteNetworkVolume(self, _info: Any, input: dict[str, Any]) -> bool:
        try:
            self.account.delete_volume(self.account.live_volume(input["id"]))
        except AccountError as exc:
            raise graphql.GraphQLError(_message(exc)) from exc
        return True

    # --- HTTP ---------------------------------------------------------------------------

    def _execute(self, document: graphql.DocumentNode) -> tuple[int, dict[str, Any]]:
        errors = graphql.validate(SCHEMA, document)
        if errors:
            return 400, {"errors": [error.formatted for error in errors]}
        with self.account._lock:
            result = graphql.execute(SCHEMA, document, root_value=self)
        assert not isinstance(result, Iterator)
        body: dict[str, Any] = {"data": result.data}  # type: ignore[union-attr]
        if result.errors:  # type: ignore[union-attr]
            body["errors"] = [error.formatted for error in result.errors]  # type: ignore[union-attr]
        return 200, body

    def handle(self, request: HttpRequest) -> HttpReply:
        if request.method != "POST":
            return HttpReply(405, json.dumps({"error": "use POST"}).encode())
        principal = self.account.authenticate(request.headers.get("Authorization"))
        if principal is None:
            return HttpReply(401, json.dumps({"error": "Unauthorized"}).encode())
        raw = request.body
        try:
            query = json.loads(raw)["query"]
            document = graphql.parse(query)
        except (ValueError, KeyError, TypeError, graphql.GraphQLError) as exc:
            self.account.record(Call("<unparseable>", raw.decode(errors="replace")))
            message = exc.message if isinstance(exc, graphql.GraphQLError) else "bad request"
            return HttpReply(400, json.dumps({"errors": [{"message": message}]}).encode())
        fields = [
            selection
            for definition in document.definitions
            if isinstance(definition, graphql.OperationDefinitionNode)
            for selection in definition.selection_set.selections
            if isinstance(selection, graphql.FieldNode)
        ]
        ops = [selection.name.value for selection in fields]
        self.account.record(Call(ops[0] if ops else "<none>", query))
        if principal.pod_id is not None and not _pod_scoped(fields, principal):
            message = "This API key may only act on its own pod"
            return HttpReply(403, json.dumps({"errors": [{"message": message}]}).encode())
        fault = self.account.take_fault(ops, "graphql")
        if fault is None and self._names_a_gone_pod(fields):
            fault = self.account.take_fault(ops, "graphql", kinds=("generic_for_gone",))
        if fault is not None:
            reply = self._fault_reply(fault.kind, request, document, fault.delay)
            if reply is not None:
                return reply
        status, body = self._execute(document)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault is not None and fault.kind == "lost_response":
            return HttpReply(0, drop=True)  # executed, but the client never hears back
        return HttpReply(status, json.dumps(body).encode())

    def _fault_reply(
        self, kind: str, request: HttpRequest, document: graphql.DocumentNode, delay: float
    ) -> HttpReply | None:
        """The answer a fault gives instead of executing, or None if the request runs."""
        if kind == "rate_limit":
            return HttpReply(429, b"Too Many Requests", "text/plain")
        if kind in ("server_error", "generic_for_gone"):
            body = {"errors": [{"message": SOMETHING_WENT_WRONG}]}
            return HttpReply(500 if kind == "server_error" else 200, json.dumps(body).encode())
        if kind == "html_502":
            return HttpReply(502, BAD_GATEWAY_HTML, "text/html")
        if kind in ("no_capacity", "no_free_gpu"):
            message = NO_CAPACITY if kind == "no_capacity" else NO_FREE_GPU
            refusal = {"data": None, "errors": [{"message": message}]}
            return HttpReply(200, json.dumps(refusal).encode())
        if kind == "echo_request":
            message = f"Invalid request: {echo(request)}"
            return HttpReply(
                200, json.dumps({"data": None, "errors": [{"message": message}]}).encode()
            )
        if kind == "applied_late":
            self.account.apply_later(delay, lambda: self._execute(document))
            return HttpReply(0, drop=True)
        return None

    def _names_a_gone_pod(self, fields: list[graphql.FieldNode]) -> bool:
        ids = [_pod_id_argument(field) for field in fields]
        return any(
            pod_id is not None
            and (
                (pod := self.account.find_pod(pod_id)) is None or pod.desired_status == "TERMINATED"
            )
            for pod_id in ids
        )


def _pod_id_argument(field: graphql.FieldNode) -> str | None:
    """The `podId` a top-level field names in its `input` object literal, if any."""
    for argument in field.arguments or ():
        if argument.name.value == "input" and isinstance(argument.value, graphql.ObjectValueNode):
            for entry in argument.value.fields or ():
                if entry.name.value == "podId" and isinstance(entry.value, graphql.StringValueNode):
                    return entry.value.value
    return None


def _pod_scoped(fields: list[graphql.FieldNode], principal: Principal) -> bool:
    return all(
        field.name.value in _POD_SCOPED_FIELDS and _pod_id_argument(field) == principal.pod_id
        for field in fields
    )
