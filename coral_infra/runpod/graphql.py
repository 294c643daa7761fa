"""RunPod's GraphQL API, in the runpod SDK 1.12's query text (`coral:runpod: {api: graphql}`).

RunPod retires this API "in early 2027"; until then a stack may keep using it. That day this
module is deleted and nothing else changes. Query text comes from the SDK's own generators where
it has them (deploy, stop, resume, terminate, GPU types, the user query), so the wire format is
the SDK's; the POST goes through `exchange`, which unlike the SDK's transport reports the HTTP
status of an answer that is not JSON and honours Retry-After.

The SDK pastes values into query text unescaped. Every string goes through `_gql_string` (JSON
string escaping is valid GraphQL string escaping); integers, enums, ports and ids are checked by
`api` before anything gets here: no value can change a query's shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from coral_infra.runpod import api, exchange, session

SOURCE = "RunPod GraphQL API"
_CAPACITY_MARKERS = ("no longer any instances available", "not enough free gpus")
_TRANSIENT_MARKERS = (
    "something went wrong",
    "too many requests",
    "rate limit",
    "internal server error",
    "service unavailable",
    "try again later",
)


def _sdk(module: str) -> ModuleType:
    """A runpod SDK module (its import costs ~1.5 s, so only when this wire format is used)."""
    return session.import_module(module)


def _gql_string(value: str, what: str) -> str:
    """A GraphQL string literal (with quotes) holding exactly `value`."""
    return json.dumps(api.check_text(value, what), ensure_ascii=False)


def _inner(value: str, what: str) -> str:
    """Escaped string content for the SDK's generators, which add the quotes themselves."""
    return _gql_string(value, what)[1:-1]


def _gql_env(env: Mapping[str, str]) -> str:
    items = [
        f"{{ key: {_gql_string(k, 'env key')}, value: {_gql_string(v, f'env {k}')} }}"
        for k, v in env.items()
    ]
    return f"[{', '.join(items)}]"


def _data(query: str, op: str, *, changes_state: bool = False) -> dict[str, Any]:
    """POST one query; its `data`, or the first GraphQL error as the adapter's error."""
    answer = exchange.send(
        op, "POST", "/graphql", body={"query": query}, changes_state=changes_state
    )
    body = answer.body if isinstance(answer.body, dict) else {}
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        first = errors[0] if isinstance(errors[0], dict) else {}
        message = str(first.get("message") or errors[0])
        lowered = message.lower()
        if any(marker in lowered for marker in _CAPACITY_MARKERS):
            raise api.RunPodCapacityError(
                f"{op}: RunPod has no free GPU for this request: {message}"
            )
        if any(marker in lowered for marker in _TRANSIENT_MARKERS):
            raise api.TransientError(f"{op}: {message}", maybe_applied=changes_state)
        if "not found" in lowered or "does not exist" in lowered:
            raise api.RunPodNotFoundError(f"{op}: {message}")
        raise api.RunPodRequestError(f"RunPod rejected {op}: {message}")
    if answer.status >= 400:
        raise exchange.from_status(op, answer)
    data = body.get("data")
    if not isinstance(data, dict):
        raise api.TransientError(f"{op}: answer without data", maybe_applied=changes_state)
    return data


# --- pods -----------------------------------------------------------------------------------

_POD_FIELDS = """
      id
      name
      desiredStatus
      imageName
      env
      gpuCount
      containerDiskInGb
      volumeInGb
      volumeMountPath
      networkVolumeId
      ports
      dockerArgs
      costPerHr
      machineId
      machine { podHostId gpuTypeId location }
      runtime { uptimeInSeconds }
"""


def _status(raw: Mapping[str, Any]) -> str:
    desired = str(raw.get("desiredStatus") or "")
    if desired == "RUNNING":
        return "RUNNING" if raw.get("runtime") is not None else "STARTING"
    return desired


def _pod_info(raw: Mapping[str, Any]) -> api.PodInfo:
    env: dict[str, str] = {}
    for item in raw.get("env") or []:
        key, _, value = str(item).partition("=")
        if key != api.AUTH_KEY_ENV:
            env[key] = value
    machine = raw.get("machine") or {}
    ports = tuple(p for p in str(raw.get("ports") or "").split(",") if p)
    status = _status(raw)
    return api.PodInfo(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        desired_status=str(raw.get("desiredStatus") or ""),
        running=status == "RUNNING",
        image=str(raw.get("imageName") or ""),
        gpu_type_id=machine.get("gpuTypeId"),
        gpu_count=int(raw.get("gpuCount") or 0),
        container_disk_gb=int(raw.get("containerDiskInGb") or 0),
        volume_gb=int(raw.get("volumeInGb") or 0),
        volume_mount_path=raw.get("volumeMountPath"),
        network_volume_id=raw.get("networkVolumeId") or None,
        ports=ports,
        env=env,
        docker_args=str(raw.get("dockerArgs") or ""),
        machine_id=raw.get("machineId"),
        pod_host_id=machine.get("podHostId"),
        location=machine.get("location"),
        cost_per_hr=raw.get("costPerHr"),
        status=status,
        data_center_id=machine.get("location"),
    )


def get_pod(pod_id: str) -> api.PodInfo | None:
    query = f'query pod {{ pod(input: {{podId: "{pod_id}"}}) {{ {_POD_FIELDS} }} }}'
    raw = _data(query, "get pod").get("pod")
    if not raw or raw.get("desiredStatus") == "TERMINATED":
        return None
    return _pod_info(raw)


def list_pods() -> list[api.PodInfo]:
    query = f"query myPods {{ myself {{ pods {{ {_POD_FIELDS} }} }} }}"
    myself = _data(query, "list pods").get("myself") or {}
    return [
        _pod_info(raw)
        for raw in myself.get("pods") or []
        if raw and raw.get("desiredStatus") != "TERMINATED"
    ]


def check_gpu_type(spec: api.PodSpec) -> None:
    """Fail clearly on an unknown GPU type or a count above its maximum (as the SDK does)."""
    gpus = _sdk("runpod.api.queries.gpus")

    query = gpus.generate_gpu_query(_inner(spec.gpu_type_id, "gpu_type_id"), spec.gpu_count)
    found = _data(query, "look up GPU type").get("gpuTypes") or []
    if not found:
        raise api.InvalidValueError(f"gpu_type_id {spec.gpu_type_id!r} is not a RunPod GPU type")
    maximum = found[0].get("maxGpuCount")
    if isinstance(maximum, int) and spec.gpu_count > maximum:
        raise api.InvalidValueError(
            f"gpu_count {spec.gpu_count} exceeds the maximum of {maximum} for {spec.gpu_type_id}"
        )


def clouds(cloud_type: str) -> tuple[str, ...]:
    """GraphQL takes "ALL" as it is."""
    return (cloud_type,)


def create_pod(spec: api.PodSpec, data_center_id: str | None, cloud: str) -> str:
    """podFindAndDeployOnDemand, in the SDK's query text."""
    pod_mutations = _sdk("runpod.api.mutations.pods")

    mutation = pod_mutations.generate_pod_deployment_mutation(
        name=_inner(spec.name, "name"),
        image_name=_inner(spec.image, "image"),
        gpu_type_id=_inner(spec.gpu_type_id, "gpu_type_id"),
        cloud_type=cloud,
        # Access is over the tailnet: no public IP (more hosts qualify) and no RunPod SSH.
        support_public_ip=False,
        start_ssh=False,
        data_center_id=None if data_center_id is None else _inner(data_center_id, "data_center_id"),
        gpu_count=spec.gpu_count,
        volume_in_gb=spec.volume_gb,
        container_disk_in_gb=spec.container_disk_gb,
        min_vcpu_count=1,
        min_memory_in_gb=1,
        docker_args=_inner(spec.docker_args, "docker_args"),
        ports=",".join(spec.ports) if spec.ports else None,
        volume_mount_path=_inner(spec.volume_mount_path, "volume_mount_path"),
        env={_inner(k, "env key"): _inner(v, f"env {k}") for k, v in spec.env.items()},
        network_volume_id=spec.network_volume_id,
    )
    raw = _data(mutation, "create pod", changes_state=True).get("podFindAndDeployOnDemand")
    if not raw or not raw.get("id"):
        raise api.TransientError("create pod: answer without a pod", maybe_applied=True)
    return str(raw["id"])


def edit_pod(pod_id: str, spec: api.PodSpec) -> None:
    """podEditJob (not in the SDK): resets the container with the new settings."""
    fields = [
        f'podId: "{pod_id}"',
        f"imageName: {_gql_string(spec.image, 'image')}",
        f"containerDiskInGb: {spec.container_disk_gb}",
        f"volumeInGb: {spec.volume_gb}",
        f"volumeMountPath: {_gql_string(spec.volume_mount_path, 'volume_mount_path')}",
        f"dockerArgs: {_gql_string(spec.docker_args, 'docker_args')}",
        f'ports: "{",".join(spec.ports)}"',
        f"env: {_gql_env(spec.env)}",
    ]
    query = f"mutation {{ podEditJob(input: {{ {', '.join(fields)} }}) {{ id desiredStatus }} }}"
    _data(query, "edit pod", changes_state=True)


def stop_pod(pod_id: str) -> str:
    pod_mutations = _sdk("runpod.api.mutations.pods")

    query = pod_mutations.generate_pod_stop_mutation(pod_id)
    return str(
        (_data(query, "stop pod", changes_state=True).get("podStop") or {}).get("desiredStatus")
    )


def resume_pod(pod_id: str, gpu_count: int) -> str:
    pod_mutations = _sdk("runpod.api.mutations.pods")

    query = pod_mutations.generate_pod_resume_mutation(pod_id, gpu_count)
    data = _data(query, "resume pod", changes_state=True)
    return str((data.get("podResume") or {}).get("desiredStatus"))


def terminate_pod(pod_id: str) -> bool:
    pod_mutations = _sdk("runpod.api.mutations.pods")

    query = pod_mutations.generate_pod_terminate_mutation(pod_id)
    try:
        _data(query, "terminate pod", changes_state=True)
    except api.RunPodNotFoundError:
        return False
    return True


# --- network volumes (not in the SDK: our query text) ---------------------------------------

_VOLUME_FIELDS = "id name size dataCenterId"


def _volume_info(raw: Mapping[str, Any]) -> api.VolumeInfo:
    return api.VolumeInfo(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        size_gb=int(raw.get("size") or 0),
        data_center_id=str(raw.get("dataCenterId") or ""),
    )


def list_volumes() -> list[api.VolumeInfo]:
    user_queries = _sdk("runpod.api.queries.user")

    myself = _data(user_queries.QUERY_USER, "list network volumes").get("myself") or {}
    return [_volume_info(raw) for raw in myself.get("networkVolumes") or [] if raw]


def get_volume(volume_id: str) -> api.VolumeInfo | None:
    return next((v for v in list_volumes() if v.id == volume_id), None)


def create_volume(name: str, size_gb: int, data_center_id: str) -> api.VolumeInfo:
    fields = (
        f"name: {_gql_string(name, 'name')}, size: {size_gb}, "
        f"dataCenterId: {_gql_string(data_center_id, 'data_center_id')}"
    )
    query = f"mutation {{ createNetworkVolume(input: {{ {fields} }}) {{ {_VOLUME_FIELDS} }} }}"
    raw = _data(query, "create network volume", changes_state=True).get("createNetworkVolume")
    if not raw or not raw.get("id"):
        raise api.TransientError(
            "create network volume: answer without a volume", maybe_applied=True
        )
    return _volume_info(raw)


def update_volume(volume_id: str, name: str, size_gb: int) -> api.VolumeInfo:
    fields = f'id: "{volume_id}", name: {_gql_string(name, "name")}, size: {size_gb}'
    query = f"mutation {{ updateNetworkVolume(input: {{ {fields} }}) {{ {_VOLUME_FIELDS} }} }}"
    raw = _data(query, "update network volume", changes_state=True).get("updateNetworkVolume")
    if not raw:
        raise api.RunPodNotFoundError(f"network volume {volume_id} does not exist")
    return _volume_info(raw)


def delete_volume(volume_id: str) -> bool:
    query = f'mutation {{ deleteNetworkVolume(input: {{ id: "{volume_id}" }}) }}'
    try:
        _data(query, "delete network volume", changes_state=True)
    except api.RunPodNotFoundError:
        return False
    return True


# --- catalog --------------------------------------------------------------------------------

_GPU_CATALOG = (
    "query gpuTypes { gpuTypes { id displayName maxGpuCount secureCloud communityCloud "
    "securePrice communityPrice } }"
)


def catalog(clouds: Sequence[str]) -> api.Catalog:
    """GPU types and list prices; GraphQL tells neither pod stock nor the data centers."""
    offers = {}
    for raw in _data(_GPU_CATALOG, "read the GPU catalog").get("gpuTypes") or []:
        if not raw or not raw.get("id"):
            continue
        offered = {"SECURE": raw.get("secureCloud"), "COMMUNITY": raw.get("communityCloud")}
        prices = {"SECURE": raw.get("securePrice"), "COMMUNITY": raw.get("communityPrice")}
        maximum = int(raw.get("maxGpuCount") or 0)
        offers[str(raw["id"])] = api.GpuOffer(
            id=str(raw["id"]),
            name=str(raw.get("displayName") or raw["id"]),
            price={c: float(p) for c, p in prices.items() if offered[c] and p is not None},
            max_count={c: maximum for c in prices if offered[c]},
        )
    return api.Catalog(gpus=offers, data_centers=None, source=SOURCE)
