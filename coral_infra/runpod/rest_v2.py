"""RunPod's REST API v2 (the default wire format): JSON over `https://api.runpod.io/v2`.

Operations, as RunPod's published OpenAPI document names them (shared/runpod/openapi-v2.json):
pods are `POST /v2/pods` (createPod), `GET /v2/pods` (listPods), `GET|PATCH|DELETE
/v2/pods/{id}` (getPod, updatePod, deletePod), `POST /v2/pods/{id}/action` (podAction: start,
stop) and `GET /v2/pods/{id}/logs` (getPodLogs, Server-Sent Events); network volumes are
`/v2/network-volumes[/{id}]`; the catalog is `GET /v2/catalog/gpus` (listGpuTypes) and
`GET /v2/catalog/datacenters` (listDataCenters).

Errors are RFC 9457 problems: 404 means gone, 400 on a create is either a broken rule or no
capacity (RunPod gives capacity no code of its own, only its detail text), 409 an action the
pod's status does not allow, 422 a body that breaks the contract (never retried).
No runpod SDK import here: this module must outlive RunPod's GraphQL API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from coral_infra.runpod import api, exchange, session

SOURCE = "RunPod REST API v2"
CLOUDS = ("SECURE", "COMMUNITY")
# A pod's lifecycle status -> what RunPod keeps it at (GraphQL's desiredStatus vocabulary).
_DESIRED = {"EXITED": "EXITED", "TERMINATED": "TERMINATED"}
_CAPACITY_MARKERS = (
    "no longer any instances available",
    "not enough free gpus",
    "no capacity",
    "could not be placed",
    "insufficient capacity",
)


def _path(*parts: str) -> str:
    return "/v2/" + "/".join(quote(part, safe="") for part in parts)


def _body(answer: exchange.Answer, op: str) -> dict[str, Any]:
    if not isinstance(answer.body, dict):
        raise api.TransientError(f"{op}: answer without a JSON object", maybe_applied=True)
    return answer.body


def _ok(op: str, answer: exchange.Answer, *, placing: bool = False) -> exchange.Answer:
    """`answer` if it is a success; else its error (a 400 that places GPUs may be capacity)."""
    if answer.status < 400:
        return answer
    text = answer.describe()
    if placing and answer.status == 400 and any(m in text.lower() for m in _CAPACITY_MARKERS):
        raise api.RunPodCapacityError(f"{op}: RunPod has no free GPU for this request: {text}")
    raise exchange.from_status(op, answer)


# --- pods -----------------------------------------------------------------------------------


def pod_info(raw: Mapping[str, Any]) -> api.PodInfo:
    """A REST v2 `Pod` in the adapter's terms (env without the auth key)."""
    mounts = raw.get("mounts") or {}
    persistent = mounts.get("persistent") or {}
    network = (mounts.get("network") or [{}])[0] or {}
    gpu = raw.get("gpu") or {}
    status = str(raw.get("status") or "")
    proxy = ((raw.get("ssh") or {}).get("proxy")) or {}
    env = {str(k): str(v) for k, v in (raw.get("env") or {}).items() if k != api.AUTH_KEY_ENV}
    return api.PodInfo(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        desired_status=_DESIRED.get(status, "RUNNING"),
        running=status == "RUNNING",
        image=str(raw.get("image") or ""),
        gpu_type_id=gpu.get("id"),
        gpu_count=int(gpu.get("count") or 0),
        container_disk_gb=int(raw.get("disk") or 0),
        volume_gb=int(persistent.get("size") or 0),
        volume_mount_path=persistent.get("path") or network.get("path"),
        network_volume_id=network.get("volumeId"),
        ports=tuple(str(p) for p in raw.get("ports") or ()),
        env=env,
        docker_args=str(raw.get("args") or ""),
        pod_host_id=proxy.get("username"),
        location=raw.get("dataCenterId"),
        cost_per_hr=raw.get("cost"),
        status=status,
        data_center_id=raw.get("dataCenterId"),
    )


def get_pod(pod_id: str) -> api.PodInfo | None:
    answer = exchange.send("get pod", "GET", _path("pods", pod_id))
    if answer.status == 404:
        return None
    pod = pod_info(_body(_ok("get pod", answer), "get pod"))
    return None if pod.status == "TERMINATED" else pod


def list_pods() -> list[api.PodInfo]:
    answer = _ok("list pods", exchange.send("list pods", "GET", "/v2/pods"))
    pods = _body(answer, "list pods").get("pods")
    if not isinstance(pods, list):
        raise api.TransientError("list pods: answer without pods", maybe_applied=False)
    return [p for p in map(pod_info, pods) if p.status != "TERMINATED"]


def check_gpu_type(spec: api.PodSpec) -> None:
    """listGpuTypes: an unknown type, a cloud without it, or too many GPUs fail before creating."""
    op = "look up GPU type"
    gpus = _body(_ok(op, exchange.send(op, "GET", "/v2/catalog/gpus")), op).get("gpus") or []
    raw = next((g for g in gpus if isinstance(g, dict) and g.get("id") == spec.gpu_type_id), None)
    if raw is None:
        raise api.InvalidValueError(f"gpu_type_id {spec.gpu_type_id!r} is not a RunPod GPU type")
    offer = _gpu_offer(raw)
    clouds = [c for c in clouds_of(spec.cloud_type) if c in offer.price]
    if not clouds:
        raise api.InvalidValueError(
            f"gpu_type_id {spec.gpu_type_id!r} is not offered in the {spec.cloud_type} cloud"
        )
    maximum = max(offer.max_count.get(c, 0) for c in clouds)
    if spec.gpu_count > maximum:
        raise api.InvalidValueError(
            f"gpu_count {spec.gpu_count} exceeds the maximum of {maximum} for {spec.gpu_type_id}"
        )


def clouds_of(cloud_type: str) -> tuple[str, ...]:
    return CLOUDS if cloud_type == "ALL" else (cloud_type,)


def clouds(cloud_type: str) -> tuple[str, ...]:
    """REST v2 places one cloud per create: "ALL" tries SECURE, then COMMUNITY."""
    return clouds_of(cloud_type)


def create_pod(spec: api.PodSpec, data_center_id: str | None, cloud: str) -> str:
    body: dict[str, Any] = {
        "name": spec.name,
        "image": spec.image,
        "gpu": {"id": spec.gpu_type_id, "count": spec.gpu_count},
        "cloud": cloud,
        "disk": spec.container_disk_gb,
        "env": dict(spec.env),
        "ports": list(spec.ports),
        "args": spec.docker_args,
    }
    if data_center_id is not None:
        body["dataCenterIds"] = [data_center_id]
    if spec.network_volume_id is not None:
        body["mounts"] = {
            "network": [{"volumeId": spec.network_volume_id, "path": spec.volume_mount_path}]
        }
    elif spec.volume_gb > 0:
        body["mounts"] = {"persistent": {"size": spec.volume_gb, "path": spec.volume_mount_path}}
    answer = exchange.send("create pod", "POST", "/v2/pods", body=body)
    _ok("create pod", answer, placing=True)
    pod_id = _body(answer, "create pod").get("id")
    if not isinstance(pod_id, str) or not pod_id:
        raise api.TransientError("create pod: answer without a pod id", maybe_applied=True)
    return pod_id


def edit_pod(pod_id: str, spec: api.PodSpec) -> None:
    """updatePod with the container settings (a reset); mounts are replace-only and not sent."""
    body = {
        "image": spec.image,
        "args": spec.docker_args,
        "disk": spec.container_disk_gb,
        "ports": list(spec.ports),
        "env": dict(spec.env),
    }
    _ok("edit pod", exchange.send("edit pod", "PATCH", _path("pods", pod_id), body=body))


def _action(pod_id: str, action: str, op: str, target: str) -> str:
    """podAction; an action the pod's status does not allow (409) because the pod is already
    where it was asked to go counts as done."""
    answer = exchange.send(op, "POST", _path("pods", pod_id, "action"), body={"action": action})
    if answer.status == 409:
        pod = get_pod(pod_id)
        if pod is not None and pod.desired_status == target:
            return target
    return pod_info(_body(_ok(op, answer, placing=action == "start"), op)).desired_status


def stop_pod(pod_id: str) -> str:
    return _action(pod_id, "stop", "stop pod", "EXITED")


def resume_pod(pod_id: str, gpu_count: int) -> str:
    """podAction start: the pod keeps its GPU count (REST v2 takes none with the action)."""
    return _action(pod_id, "start", "resume pod", "RUNNING")


def terminate_pod(pod_id: str) -> bool:
    answer = exchange.send("terminate pod", "DELETE", _path("pods", pod_id))
    if answer.status == 404:
        return False
    _ok("terminate pod", answer)
    return True


def pod_log(pod_id: str, lines: int) -> list[str]:
    """getPodLogs: the container's last `lines` lines, from the stream's backfill."""
    return [entry.line for entry in _log_events(pod_id, {"tail": str(lines)}, lines)]


def pod_log_since(pod_id: str, since: str | None) -> list[api.LogLine]:
    """getPodLogs from the resume cursor `since` (RunPod's `since` parameter), or the last line
    when there is none yet; lines as they arrive until the stream is idle."""
    params = {"since": since} if since else {"tail": "1"}
    return _log_events(pod_id, params, None if since else 1)


def _log_events(pod_id: str, params: dict[str, str], limit: int | None) -> list[api.LogLine]:
    found: list[api.LogLine] = []
    path = _path("pods", pod_id, "logs")
    params = {**params, "source": "container"}
    with exchange.events("read pod log", path, params, session.timing.log_idle) as stream:
        for event in stream:
            try:
                payload = event.json()
            except ValueError:
                payload = event.data
            line = payload.get("line") if isinstance(payload, dict) else payload
            ts = payload.get("ts") if isinstance(payload, dict) else None
            if isinstance(line, str):
                found.append(api.LogLine(str(ts or event.id or ""), line))
            if limit is not None and len(found) >= limit:
                break
    return found


# --- network volumes ------------------------------------------------------------------------


def _volume_info(raw: Mapping[str, Any]) -> api.VolumeInfo:
    return api.VolumeInfo(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        size_gb=int(raw.get("size") or 0),
        data_center_id=str(raw.get("dataCenter") or ""),
    )


def list_volumes() -> list[api.VolumeInfo]:
    op = "list network volumes"
    volumes = _body(_ok(op, exchange.send(op, "GET", "/v2/network-volumes")), op).get(
        "networkVolumes"
    )
    if not isinstance(volumes, list):
        raise api.TransientError(f"{op}: answer without networkVolumes", maybe_applied=False)
    return [_volume_info(v) for v in volumes]


def get_volume(volume_id: str) -> api.VolumeInfo | None:
    op = "get network volume"
    answer = exchange.send(op, "GET", _path("network-volumes", volume_id))
    if answer.status == 404:
        return None
    return _volume_info(_body(_ok(op, answer), op))


def create_volume(name: str, size_gb: int, data_center_id: str) -> api.VolumeInfo:
    op = "create network volume"
    body = {"name": name, "size": size_gb, "dataCenter": data_center_id}
    answer = _ok(op, exchange.send(op, "POST", "/v2/network-volumes", body=body))
    raw = _body(answer, op)
    if not raw.get("id"):
        raise api.TransientError(f"{op}: answer without a volume id", maybe_applied=True)
    return _volume_info(raw)


def update_volume(volume_id: str, name: str, size_gb: int) -> api.VolumeInfo:
    op = "update network volume"
    body = {"name": name, "size": size_gb}
    answer = _ok(op, exchange.send(op, "PATCH", _path("network-volumes", volume_id), body=body))
    return _volume_info(_body(answer, op))


def delete_volume(volume_id: str) -> bool:
    op = "delete network volume"
    answer = exchange.send(op, "DELETE", _path("network-volumes", volume_id))
    if answer.status == 404:
        return False
    _ok(op, answer)
    return True


# --- catalog --------------------------------------------------------------------------------


def _gpu_offer(raw: Mapping[str, Any], cloud: str | None = None) -> api.GpuOffer:
    price = raw.get("price") or {}
    max_count = raw.get("maxCount") or {}
    offered = {c: raw.get(c.lower()) is not False for c in CLOUDS}
    stock: dict[str, str] = {}
    by_dc: dict[str, dict[str, str]] = {}
    if cloud is not None and raw.get("availability"):
        stock[cloud] = str(raw["availability"])
        by_dc[cloud] = {
            str(dc.get("id")): str(dc.get("availability"))
            for dc in raw.get("dataCenters") or []
            if isinstance(dc, dict)
        }
    return api.GpuOffer(
        id=str(raw.get("id")),
        name=str(raw.get("name") or raw.get("id")),
        price={c: float(price[c.lower()]) for c in CLOUDS if offered[c] and c.lower() in price},
        max_count={c: int(max_count.get(c.lower()) or 0) for c in CLOUDS if offered[c]},
        stock=stock,
        stock_by_data_center=by_dc,
    )


def catalog(clouds: Sequence[str]) -> api.Catalog:
    """listGpuTypes with pod stock (once per cloud asked) and listDataCenters."""
    op = "read the GPU catalog"
    offers: dict[str, api.GpuOffer] = {}
    for cloud in clouds:
        params = {"include": "AVAILABILITY", "product": "POD", "cloud": cloud}
        answer = _ok(op, exchange.send(op, "GET", "/v2/catalog/gpus", params=params))
        for raw in _body(answer, op).get("gpus") or []:
            offer = _gpu_offer(raw, cloud)
            known = offers.get(offer.id)
            if known is not None:
                offer = api.GpuOffer(
                    offer.id,
                    offer.name,
                    offer.price,
                    offer.max_count,
                    {**known.stock, **offer.stock},
                    {**known.stock_by_data_center, **offer.stock_by_data_center},
                )
            offers[offer.id] = offer
    op = "read the data center catalog"
    answer = _ok(op, exchange.send(op, "GET", "/v2/catalog/datacenters"))
    centers = tuple(str(dc.get("id")) for dc in _body(answer, op).get("dataCenters") or [])
    return api.Catalog(gpus=offers, data_centers=centers, source=SOURCE)
