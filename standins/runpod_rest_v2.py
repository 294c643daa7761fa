"""The RunPod stand-in's REST API v2 side (`/v2/...`), in the wire format of RunPod's published
OpenAPI document (standins/runpod_openapi.py checks every request and response against it).

Served operations (by operationId): listPods, createPod, getPod, updatePod, deletePod,
podAction, getPodLogs, listNetworkVolumes, createNetworkVolume, getNetworkVolume,
updateNetworkVolume, deleteNetworkVolume, listGpuTypes, listDataCenters. Other operations of
the document answer 501. What the document says, as served here:

- errors are problem bodies `{title, status, detail, errors?}`; authenticated answers carry
  `RateLimit` / `RateLimit-Policy` (never enforced: a 429 comes only from an injected fault);
- a pod's `status` and `actions`: RUNNING allows stop/restart/terminate, EXITED and ERROR
  start/terminate, PROVISIONING and STARTING stop/terminate; any other action is 409; a start
  without free GPUs is 400 (placement fails like a create's); `terminate` and DELETE are 204;
- a create answers 201 with the pod in PROVISIONING; it then goes STARTING and RUNNING as the
  account's boot time passes; capacity and rule failures are 400, a missing network volume
  404; `listPods` has no name filter in the document, so clients filter by name themselves;
- network volumes: 10..4096 GB, grow only (400 otherwise), deleting one a pod uses is 409;
- logs: Server-Sent Events (`id: <ts>`, `data: {"ts","source","line"}`), `tail` lines of
  backfill (default 100) or the lines after `since` / `Last-Event-ID`, then live lines for
  `log_follow_seconds`; a pod's RUNPOD_API_KEY may act on its own pod only (else 403).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from standins import runpod_catalog
from standins.runpod_api import BAD_GATEWAY_HTML, Call, HttpReply, HttpRequest, echo
from standins.runpod_openapi import PROBLEM_JSON, CheckedRequest, OpenApiDocument, Problem
from standins.runpod_pod_logs import LogLine
from standins.runpod_records import (
    NO_CAPACITY,
    NO_FREE_GPU,
    SOMETHING_WENT_WRONG,
    AccountError,
    PodSpec,
    PodStatus,
    Principal,
    StandinPod,
    StandinVolume,
    env_mapping,
    rfc3339,
)

if TYPE_CHECKING:
    from standins.runpod_api import RunPodStandin

ACTIONS: dict[PodStatus, list[str]] = {
    "RUNNING": ["stop", "restart", "terminate"],
    "EXITED": ["start", "terminate"],
    "ERROR": ["start", "terminate"],
    "PROVISIONING": ["stop", "terminate"],
    "STARTING": ["stop", "terminate"],
    "TERMINATED": [],
}
POD_SCOPED_OPS = {"getPod", "updatePod", "deletePod", "podAction", "getPodLogs"}
RATE_LIMIT_POLICY = (("minute", 600, 60), ("hour", 20000, 3600), ("day", 200000, 86400))
DEFAULT_DISK_GB = 50
LOG_POLL_S = 0.2

Result = tuple[int, Any] | HttpReply


class RestV2Api:
    """The `/v2` exchange: authentication, validation, faults, then one handler per op."""

    def __init__(self, account: RunPodStandin) -> None:
        self.account = account
        self.document = OpenApiDocument()
        self._handlers: dict[str, Callable[[CheckedRequest, HttpRequest], Result]] = {
            "listPods": self.list_pods,
            "createPod": self.create_pod,
            "getPod": self.get_pod,
            "updatePod": self.update_pod,
            "deletePod": self.delete_pod,
            "podAction": self.pod_action,
            "getPodLogs": self.get_pod_logs,
            "listNetworkVolumes": self.list_volumes,
            "createNetworkVolume": self.create_volume,
            "getNetworkVolume": self.get_volume,
            "updateNetworkVolume": self.update_volume,
            "deleteNetworkVolume": self.delete_volume,
            "listGpuTypes": self.list_gpu_types,
            "listDataCenters": self.list_data_centers,
        }

    # --- the exchange -------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpReply:
        op = self.document.operation(request.method, request.path)
        text = f"{request.method} {request.path}" + (f"?{request.query}" if request.query else "")
        text += f"\n{request.body.decode(errors='replace')}" if request.body else ""
        if op is None:
            self.account.record(Call("<unknown>", text, "v2"))
            allowed = self.document.allowed_methods(request.path)
            self.document.record_request(
                request, "<unknown>", f"{request.method} {request.path} is not in the document"
            )
            if allowed:
                return _problem(
                    Problem(405, "The requested method is not allowed for this path."),
                    {"Allow": ", ".join(allowed)},
                )
            return _problem(Problem(404, f"no route for {request.path}"))
        self.account.record(Call(op, text, "v2"))
        principal = self.account.authenticate(request.headers.get("Authorization"))
        if principal is None:
            detail = "invalid API key"
            if not request.headers.get("Authorization", "").lower().startswith("bearer "):
                detail = "missing bearer token"
                self.document.record_request(request, op, detail)
            return self._answer(request, op, _problem(Problem(401, detail)), rate_limited=False)
        fault = self.account.take_fault([op], "v2")
        if fault is not None and fault.kind == "rate_limit":
            retry_after = math.ceil(fault.delay)
            headers = self._rate_limit_headers() | {"Retry-After": str(retry_after)}
            headers["RateLimit"] = f'"minute";r=0;t={max(retry_after, 1)}'
            reply = _problem(Problem(429, "rate limit exceeded for the minute window"), headers)
            return self._answer(request, op, reply, rate_limited=False)
        checked = self.document.check_request(request, op)
        if checked.problem is not None:
            return self._answer(request, op, _problem(checked.problem))
        denied = self._forbidden(principal, checked)
        if denied is not None:
            return self._answer(request, op, denied)
        if fault is not None:
            instead = self._fault_reply(fault.kind, fault.delay, request, checked)
            if isinstance(instead, _Unchecked):
                return instead
            if instead is not None:
                return self._answer(request, op, instead)
        reply = self._dispatch(checked, request)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault is not None and fault.kind == "lost_response":
            return HttpReply(0, drop=True)  # applied, but the client never hears back
        return self._answer(request, op, reply)

    def _dispatch(self, checked: CheckedRequest, request: HttpRequest) -> HttpReply:
        handler = self._handlers.get(checked.op)
        if handler is None:
            return _problem(Problem(501, f"{checked.op} is not served by the RunPod stand-in"))
        try:
            result = handler(checked, request)
        except AccountError as exc:
            return self._refusal(checked, exc)
        if isinstance(result, HttpReply):
            return result
        status, body = result
        if body is None:
            return HttpReply(status, b"", None)
        return HttpReply(status, json.dumps(body).encode())

    def _refusal(self, checked: CheckedRequest, error: AccountError) -> HttpReply:
        if (
            error.kind == "not_found"
            and "id" in checked.path_params
            and checked.op in (POD_SCOPED_OPS)
        ):
            generic = self.account.take_fault([checked.op], "v2", kinds=("generic_for_gone",))
            if generic is not None:
                return _problem(Problem(500, SOMETHING_WENT_WRONG))
        status = {"not_found": 404, "invalid": 400, "capacity": 400, "conflict": 409}[error.kind]
        return _problem(Problem(status, error.message))

    def _answer(
        self, request: HttpRequest, op: str, reply: HttpReply, *, rate_limited: bool = True
    ) -> HttpReply:
        """The reply with its rate-limit headers, checked against the document."""
        if rate_limited:
            reply.headers.update(self._rate_limit_headers())
        if reply.stream is None:
            self.document.check_response(request, op, reply)
        else:
            reply.stream = self._checked_stream(request, op, reply, reply.stream)
        return reply

    def _checked_stream(
        self, request: HttpRequest, op: str, reply: HttpReply, chunks: Iterator[bytes]
    ) -> Iterator[bytes]:
        """Passes the stream on; when it ends (or the client left), checks all it sent."""
        sent = [reply.body]
        try:
            for chunk in chunks:
                sent.append(chunk)
                yield chunk
        finally:
            whole = HttpReply(reply.status, b"".join(sent), reply.content_type, reply.headers)
            whole.stream = iter(())
            self.document.check_response(request, op, whole)

    def _rate_limit_headers(self) -> dict[str, str]:
        now = time.monotonic()
        calls = [call for call in self.account.calls if call.api == "v2"]
        state = ", ".join(
            f'"{window}";r={max(quota - sum(1 for c in calls if now - c.at < seconds), 0)};'
            f"t={seconds - int(now) % seconds}"
            for window, quota, seconds in RATE_LIMIT_POLICY
        )
        policy = ", ".join(f'"{w}";q={q};w={s}' for w, q, s in RATE_LIMIT_POLICY)
        return {"RateLimit": state, "RateLimit-Policy": policy}

    def _forbidden(self, principal: Principal, checked: CheckedRequest) -> HttpReply | None:
        if principal.pod_id is None:
            return None
        if checked.op in POD_SCOPED_OPS and checked.path_params.get("id") == principal.pod_id:
            return None
        return _problem(Problem(403, "this API key may only act on its own pod"))

    def _fault_reply(
        self, kind: str, delay: float, request: HttpRequest, checked: CheckedRequest
    ) -> HttpReply | None:
        """The answer a fault gives instead of handling, or None if the request is handled."""
        if kind == "server_error":
            return _problem(Problem(500, SOMETHING_WENT_WRONG))
        if kind == "html_502":
            # A proxy's page, not the API's answer: outside the document, so not checked.
            return _Unchecked(502, BAD_GATEWAY_HTML, "text/html")
        if kind in ("no_capacity", "no_free_gpu"):
            return _problem(Problem(400, NO_CAPACITY if kind == "no_capacity" else NO_FREE_GPU))
        if kind == "echo_request":
            return _problem(Problem(400, f"could not process request: {echo(request)}"))
        if kind == "applied_late":
            self.account.apply_later(delay, lambda: self._dispatch(checked, request))
            return _Unchecked(0, drop=True)
        return None

    # --- pods ---------------------------------------------------------------------------

    def pod_view(self, pod: StandinPod, status: PodStatus | None = None) -> dict[str, Any]:
        status = status or self.account.pod_status(pod)
        offer = self.account.gpu_types[pod.gpu_type_id]
        running = status == "RUNNING"
        uptime = self.account.running_since(pod) if running else None
        path = pod.volume_mount_path or "/workspace"
        mounts: dict[str, Any] = {}
        if pod.network_volume_id:
            mounts["network"] = [{"volumeId": pod.network_volume_id, "path": path}]
        elif pod.volume_gb:
            mounts["persistent"] = {"size": pod.volume_gb, "path": path}
        proxy_user = f"{pod.id}-64411eb2"
        networking: dict[str, Any] = {"enabled": pod.global_networking}
        if pod.global_networking:
            networking |= {"ip": "10.65.0.2", "internalDns": f"{pod.id}.runpod.internal"}
        return {
            "id": pod.id,
            "name": pod.name,
            "image": pod.image,
            "args": pod.docker_args,
            "disk": pod.container_disk_gb,
            "ports": [port.strip() for port in pod.ports.split(",") if port.strip()],
            "env": env_mapping(pod.env),
            "registry": pod.registry,
            "status": status,
            "actions": ACTIONS[status],
            "mounts": mounts,
            "gpu": {"id": pod.gpu_type_id, "count": pod.gpu_count},
            "cloud": pod.cloud_type,
            "dataCenterId": pod.data_center_id,
            "cudaVersion": offer.cuda_version,
            "ssh": {
                "proxy": {
                    "host": "ssh.runpod.io",
                    "port": 22,
                    "username": proxy_user,
                    "command": f"ssh {proxy_user}@ssh.runpod.io",
                },
                "direct": None,
            },
            "template": None,
            "cost": pod.cost_per_hr if status not in ("EXITED", "TERMINATED") else 0.0,
            "locked": pod.locked,
            "globalNetworking": networking,
            "runtime": None if uptime is None else {"uptime": int(uptime), "ports": []},
            "createdAt": rfc3339(pod.created_wall),
            "startedAt": rfc3339(pod.started_wall) if running and pod.started_wall else None,
        }

    def list_pods(self, checked: CheckedRequest, _request: HttpRequest) -> Result:
        return 200, {"pods": [self.pod_view(pod) for pod in self.account.pods()]}

    def create_pod(self, checked: CheckedRequest, _request: HttpRequest) -> Result:
        body = checked.body
        gpu, cpu = body.get("gpu"), body.get("cpu")
        if (gpu is None) == (cpu is None):
            raise AccountError("invalid", "exactly one of gpu or cpu must be set")
        if cpu is not None:
            raise AccountError("capacity", f"CPU flavor {cpu['id']!r}: {NO_CAPACITY}")
        if "templateId" in body:
            raise AccountError("not_found", f"template {body['templateId']} not found")
        mounts = body.get("mounts") or {}
        if mounts.get("persistent") and mounts.get("network"):
            raise AccountError("invalid", "mounts: set at most one of persistent or network")
        allowed = tuple(gpu.get("allowedCudaVersions") or ())
        if allowed and "minCudaVersion" in gpu:
            raise AccountError(
                "invalid", "gpu: allowedCudaVersions and minCudaVersion are mutually exclusive"
            )
        persistent = mounts.get("persistent") or {}
        network = (mounts.get("network") or [{}])[0]
        pod = self.account.create_pod(
            PodSpec(
                name=body["name"],
                image=body["image"],
                gpu_type_id=gpu["id"],
                gpu_count=gpu.get("count", 1),
                cloud=body["cloud"],
                data_center_ids=tuple(body.get("dataCenterIds") or ()),
                container_disk_gb=body.get("disk", DEFAULT_DISK_GB),
                volume_gb=persistent.get("size", 0),
                volume_mount_path=persistent.get("path") or network.get("path"),
                network_volume_id=network.get("volumeId"),
                ports=tuple(body.get("ports") or ()),
                env=dict(body.get("env") or {}),
                docker_args=body.get("args", ""),
                registry=body.get("registry"),
                global_networking=body["globalNetworking"],
                allowed_cuda_versions=allowed,
                min_cuda_version=gpu.get("minCudaVersion"),
                start_jupyter=body["startJupyter"],
            ),
            id_prefix="pod_",
        )
        return 201, self.pod_view(pod, "PROVISIONING")

    def get_pod(self, checked: CheckedRequest, _request: HttpRequest) -> Result:
        return 200, self.pod_view(self.account.live_pod(checked.path_params["id"]))

    def update_pod(self, checked: CheckedRequest, _request: HttpRequest) -> Result:
        pod = self.account.live_pod(checked.path_params["id"])
        body = checked.body
        if "templateId" in body:
            raise AccountError("not_found", f"template {body['templateId']} not found")
        fields = {
            "name": "name",
            "image": "image",
            "args": "docker_args",
            "disk": "container_disk_gb",
            "ports": "ports",
            "env": "env",
            "registry": "registry",
            "locked": "locked",
            "globalNetworking": "global_networking",
        }
        changes = {attr: body[key] for key, attr in fields.items() if key in body}
        if "ports" in changes:
            changes["ports"] = ",".join(changes["ports"])
        if "env" in changes:
            changes["env"] = [f"{name}={value}" for name, value in changes["env"].items()]
        changes |= self._mount_changes(pod, body.get("mounts") or {})
        restarts = {"image", "docker_args", "container_disk_gb", "ports", "env", "registry"}
        restarts |= {"volume_mount_path", "volume_gb"}
        restart = any(
            getattr(pod, attr) != value for attr, value in changes.items() if attr in restarts
        )
        self.account.edit_pod(pod, restart=restart, **changes)
        return 200, self.pod_view(pod)

    def _mount_changes(self, pod: StandinPod, mounts: dict[str, Any]) -> dict[str, Any]:
        """The document's PATCH rules for mounts: the kind and a network volume are fixed."""
        if "network" in mounts:
            if not mounts["network"]:
                raise AccountError("invalid", "mounts.network: clearing mounts is not supported")
            (network,) = mounts["network"]
            if pod.network_volume_id is None:
                raise AccountError("invalid", "mounts.network: this pod has no network volume")
            if network["volumeId"] != pod.network_volume_id:
                raise AccountError("invalid", "mounts.network: volumeId cannot change")
            return {"volume_mount_path": network["path"]}
        if "persistent" in mounts:
            if pod.network_volume_id is not None or not pod.volume_gb:
                raise AccountError("invalid", "mounts.persistent: this pod has no persistent mount")
            persistent = mounts["persistent"]
            if persistent["size"] < pod.volume_gb:
                raise AccountError("invalid", "mounts.persistent.size can only grow")
            return {"volume_gb": persistent["size"], "volume_mount_path": persistent["path"]}
        return {}

    def delete_pod(self, checked: CheckedRequest, _request: HttpRequest) -> Result:
        self.account.terminate_pod(self.account.live_pod(checked.path_params["id"]))
        return 204, None

    def pod_action(self, checked: CheckedRequest, _request: HttpRequest) -> Result:
        pod = self.account.live_pod(checked.path_params["id"])
        action = checked.body["action"]
        status = self.account.pod_status(pod)
        if action not in ACTIONS[status]:
            raise AccountError(
                "conflict",
                f"action {action} is not valid for a pod in status {status}; "
                f"allowed: {', '.join(ACTIONS[status])}",
            )
        if action == "terminate":
            self.account.terminate_pod(pod)
            return 204, None
        if action in ("stop", "restart") and pod.locked:
            raise AccountError("conflict", f"pod {pod.id} is locked: unlock it to {action} it")
        {"start": self.account.start_pod, "stop": self.account.stop_pod}.get(
            action, self.account.restart_pod
        )(pod)
        return 200, self.pod_view(pod)

    def get_pod_logs(self, checked: CheckedRequest, request: HttpRequest) -> Result:
        pod = self.account.live_pod(checked.path_params["id"])
        source = checked.query.get("source")
        cursor = request.headers.get("Last-Event-ID") or checked.query.get("since")
        lines = [line for line in self.account.logs.lines(pod.id) if source in (None, line.source)]
        if cursor is not None:
            after = _instant(cursor)
            backfill = [line for line in lines if _instant(line.ts) > after]
        else:
            tail = checked.query.get("tail", 100)
            backfill = lines[len(lines) - tail :] if tail else []
        last = lines[-1].ts if lines else ""
        return HttpReply(
            200,
            b"".join(_event(line) for line in backfill),
            "text/event-stream",
            {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"},
            stream=self._follow(pod, source, last),
        )

    def _follow(self, pod: StandinPod, source: str | None, last: str) -> Iterator[bytes]:
        deadline = time.monotonic() + self.account.log_follow_seconds
        while time.monotonic() < deadline and pod.desired_status != "TERMINATED":
            time.sleep(LOG_POLL_S)
            for line in self.account.logs.lines(pod.id):
                if line.ts > last and source in (None, line.source):
                    last = line.ts
                    yield _event(line)

    # --- network volumes ----------------------------------------------------------------

    def list_volumes(self, checked: CheckedRequest, _request: HttpRequest) -> Result:
        return 200, {"networkVolumes": [_volume_view(v) for v in self.account.volumes()]}

    def create_volume(self, checked: CheckedRequest, _request: HttpRequest) -> Result:
        body = checked.body
        volume = self.account.create_volume(
            body["name"],
            body["size"],
            body["dataCenter"],
            volume_type=body.get("type"),
            id_prefix="vol_",
        )
        return 201, _volume_view(volume)

    def get_volume(self, checked: CheckedRequest, _request: HttpRequest) -> Result:
        return 200, _volume_view(self.account.live_volume(checked.path_params["id"]))

    def update_volume(self, checked: CheckedRequest, _request: HttpRequest) -> Result:
        volume = self.account.live_volume(checked.path_params["id"])
        body = checked.body
        self.account.update_volume(volume, name=body.get("name"), size=body.get("size"))
        return 200, _volume_view(volume)

    def delete_volume(self, checked: CheckedRequest, _request: HttpRequest) -> Result:
        self.account.delete_volume(self.account.live_volume(checked.path_params["id"]))
        return 204, None

    # --- catalog (standins/runpod_catalog.py) -------------------------------------------

    def list_gpu_types(self, checked: CheckedRequest, request: HttpRequest) -> Result:
        given = [name for name, _ in parse_qsl(request.query, keep_blank_values=True)]
        return 200, runpod_catalog.gpu_types(self.account, checked.query, given)

    def list_data_centers(self, checked: CheckedRequest, _request: HttpRequest) -> Result:
        return 200, runpod_catalog.data_centers(self.account, checked.query)


class _Unchecked(HttpReply):
    """A fault's reply that is not the API's answer (a proxy page, a dropped connection)."""


def _problem(problem: Problem, headers: dict[str, str] | None = None) -> HttpReply:
    return HttpReply(
        problem.status, json.dumps(problem.body()).encode(), PROBLEM_JSON, headers or {}
    )


def _volume_view(volume: StandinVolume) -> dict[str, Any]:
    return {
        "id": volume.id,
        "name": volume.name,
        "size": volume.size,
        "dataCenter": volume.data_center_id,
        "type": volume.type,
    }


def _event(line: LogLine) -> bytes:
    data = json.dumps({"ts": line.ts, "source": line.source, "line": line.line})
    return f"id: {line.ts}\ndata: {data}\n\n".encode()


def _instant(value: str | datetime) -> datetime:
    """A log cursor: `since` arrives parsed (format date-time), Last-Event-ID as text."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
