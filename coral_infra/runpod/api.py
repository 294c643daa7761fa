"""The one adapter over RunPod's API: the runpod SDK 1.12.0 and its GraphQL transport.

Why one module: RunPod's GraphQL API is announced to retire (the SDK's next release moves to
REST v2), so every RunPod call lives here and nowhere else.

Why lazy imports: importing the SDK costs ~1.5 s. Nothing here imports `runpod` at module
level, so check/diff (previewing an unchanged stack) never pay for it; only an API call does.

Rules enforced here rather than in callers:
- The SDK pastes values into query text unescaped. Every string goes through `_gql_string`
  (JSON string escaping is valid GraphQL string escaping), enums and integers are checked
  against their allowed form, and ids must match `ID_RE`: no value can change a query's shape.
  Where the SDK has a query generator it is reused with escaped values, so the wire format is
  the SDK's own.
- The API key lives in the module-level `_credentials` holder, never on a provider instance
  (providers are dill-pickled into Pulumi state) and never in an error message.
- Transient failures (429, 5xx, connection errors, timeouts, unparseable bodies) are retried
  with exponential backoff bounded in attempts and total time. Creates are never blindly
  retried: a create whose response was lost may have been accepted, so the pod or volume is
  first looked up by its unique name and adopted.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

API_KEY_CONFIG = "coral:runpodApiKey"
API_KEY_ENV = "RUNPOD_API_KEY"
AUTH_KEY_ENV = "TAILSCALE_AUTHKEY"
CLOUD_TYPES = ("SECURE", "COMMUNITY", "ALL")

# RunPod pod and network volume ids are short lowercase alphanumerics (e.g. "3tv4hh0d0g3hyb").
ID_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")
_PORT_RE = re.compile(r"^([0-9]{1,5})/(tcp|http)$")

_CAPACITY_MARKERS = ("no longer any instances available", "not enough free gpus")
_TRANSIENT_MARKERS = (
    "something went wrong",
    "too many requests",
    "rate limit",
    "internal server error",
    "service unavailable",
    "try again later",
)

T = TypeVar("T")

# The engine calls provider methods from several threads at once; concurrent first imports of
# the SDK's modules can deadlock in importlib (_DeadlockError), so they go one at a time.
_IMPORT_LOCK = threading.Lock()


def _sdk(module: str) -> ModuleType:
    """A runpod SDK module, imported on first use (see the module docstring)."""
    with _IMPORT_LOCK:
        return importlib.import_module(module)


@dataclass(frozen=True)
class Timing:
    """Every wait of the adapter, bounded; tests swap in tiny values via `timing`."""

    call_timeout: float = 30.0
    """Seconds one HTTP call may take (the SDK's own requests timeout is also 30 s)."""
    attempts: int = 5
    """Tries per operation on transient failures, the first one included."""
    base_delay: float = 1.0
    """First backoff delay in seconds; doubles per retry up to `max_delay`."""
    max_delay: float = 16.0
    retry_budget: float = 120.0
    """Total seconds one operation may spend retrying."""
    poll_interval: float = 5.0
    """Seconds between status reads while waiting for a pod to run."""
    start_deadline: float = 900.0
    """Seconds a new or edited pod has to reach RUNNING (engine timeouts do not reach
    dynamic providers, so the deadline lives here)."""


timing = Timing()


class _Credentials:
    """Module-level holder so the key is never an attribute of a pickled provider."""

    api_key: str | None = None


_credentials = _Credentials()


class RunPodError(Exception):
    """An API failure with a message safe to show: it never contains the API key."""


class RunPodAuthError(RunPodError):
    """The API key is missing or RunPod rejected it."""


class RunPodCapacityError(RunPodError):
    """RunPod has no free GPU matching the request (deploy or resume)."""


class RunPodNotFoundError(RunPodError):
    """The pod or network volume does not exist (any more)."""


class RunPodUnavailableError(RunPodError):
    """RunPod kept failing transiently until the retry budget ran out."""


class RunPodRequestError(RunPodError):
    """RunPod rejected the request (a GraphQL error that retrying will not fix)."""


class InvalidValueError(RunPodError, ValueError):
    """A value that cannot be sent safely or makes no sense to RunPod."""


class _TransientError(Exception):
    """A failure worth retrying; `maybe_applied` when the request may have been executed."""

    def __init__(self, reason: str, *, maybe_applied: bool) -> None:
        super().__init__(reason)
        self.maybe_applied = maybe_applied


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
    running: bool
    """True once the container runs (RunPod sets `runtime`), not only desiredStatus."""
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
    pod_host_id: str | None = None
    location: str | None = None
    cost_per_hr: float | None = None


@dataclass(frozen=True)
class VolumeInfo:
    """A network volume as RunPod reports it."""

    id: str
    name: str
    size_gb: int
    data_center_id: str


def configure(config_api_key: object) -> None:
    """Use the key from stack config `coral:runpodApiKey`, else env `RUNPOD_API_KEY`.

    Called from the providers' configure(); a missing key is only an error at the first API
    call, because configure also runs for previews that call no API.
    """
    key = config_api_key or os.environ.get(API_KEY_ENV) or None
    _credentials.api_key = key if isinstance(key, str) else None


def _require_key() -> str:
    if not _credentials.api_key:
        raise RunPodAuthError(
            "no RunPod API key: set it with `pulumi config set --secret coral:runpodApiKey "
            f"<key>` or the environment variable {API_KEY_ENV}"
        )
    return _credentials.api_key


def _redact(text: str) -> str:
    key = _credentials.api_key
    return text.replace(key, "[redacted]") if key else text


# --- value guards: nothing reaches query text unchecked --------------------------------------


def _gql_string(value: object, what: str) -> str:
    """A GraphQL string literal (with quotes) holding exactly `value`."""
    if not isinstance(value, str):
        raise InvalidValueError(f"{what} must be a string, got {type(value).__name__}")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise InvalidValueError(f"{what} contains an unpaired surrogate character")
    return json.dumps(value, ensure_ascii=False)


def _inner(value: object, what: str) -> str:
    """Escaped string content for SDK generators, which add the quotes themselves."""
    return _gql_string(value, what)[1:-1]


def _gql_int(value: object, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _gql_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise InvalidValueError(f"{what} must be a RunPod id (letters and digits), got {value!r}")
    return value


def _gql_cloud_type(value: object) -> str:
    if value not in CLOUD_TYPES:
        raise InvalidValueError(f"cloud_type must be one of {', '.join(CLOUD_TYPES)}")
    return str(value)


def _gql_ports(ports: tuple[str, ...]) -> str:
    for port in ports:
        if not isinstance(port, str) or not _PORT_RE.match(port):
            raise InvalidValueError(f"port {port!r} must look like '2222/tcp' or '8888/http'")
    return ",".join(ports)


def _gql_env(env: Mapping[str, str]) -> str:
    items = [
        f"{{ key: {_gql_string(k, 'env key')}, value: {_gql_string(v, f'env {k}')} }}"
        for k, v in env.items()
    ]
    return f"[{', '.join(items)}]"


# --- transport ------------------------------------------------------------------------------


def _post(query: str) -> dict[str, Any]:
    run_graphql_query = _sdk("runpod.api.graphql").run_graphql_query

    response: dict[str, Any] = run_graphql_query(query, api_key=_require_key())
    return response


def _classify(exc: BaseException, op: str) -> Exception:
    """Map SDK/requests failures to our errors; transient ones become `_TransientError`."""
    import requests

    sdk_error = _sdk("runpod.error")

    if isinstance(exc, RunPodError):
        return exc
    if isinstance(exc, sdk_error.AuthenticationError):
        return RunPodAuthError(
            f"RunPod rejected the API key during {op} (HTTP 401): check the secret stack "
            f"config {API_KEY_CONFIG} or {API_KEY_ENV}"
        )
    if isinstance(exc, sdk_error.QueryError):
        message = _redact(str(exc.message or ""))
        lowered = message.lower()
        if any(marker in lowered for marker in _CAPACITY_MARKERS):
            return RunPodCapacityError(f"{op}: RunPod has no free GPU for this request: {message}")
        if any(marker in lowered for marker in _TRANSIENT_MARKERS):
            return _TransientError(f"{op}: {message}", maybe_applied=True)
        if "not found" in lowered or "does not exist" in lowered:
            return RunPodNotFoundError(f"{op}: {message}")
        return RunPodRequestError(f"RunPod rejected {op}: {message}")
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.ConnectionError):
        refused = isinstance(exc, requests.exceptions.ConnectTimeout) or "refused" in str(exc)
        return _TransientError(f"{op}: connection failed", maybe_applied=not refused)
    if isinstance(exc, requests.exceptions.RequestException | ValueError | KeyError | TypeError):
        # Timeouts, non-JSON bodies (429/502 pages) and JSON without the expected shape.
        return _TransientError(f"{op}: {type(exc).__name__}", maybe_applied=True)
    return RunPodError(f"{op} failed: {type(exc).__name__}: {_redact(str(exc))}")


def _call_once(query: str, op: str) -> dict[str, Any]:
    """One HTTP call bounded by `timing.call_timeout`; returns the response's `data`.

    The SDK's requests timeout is fixed at 30 s, so the call runs in a daemon thread we stop
    waiting for; an abandoned call still ends by the SDK's own timeout.
    """
    _require_key()
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(_post(query))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, name=f"runpod-{op}", daemon=True)
    worker.start()
    worker.join(timing.call_timeout)
    if not outcome:
        raise _TransientError(
            f"{op}: no response within {timing.call_timeout:g} s", maybe_applied=True
        )
    result = outcome[0]
    if isinstance(result, BaseException):
        raise _classify(result, op) from None
    data = result.get("data") if isinstance(result, dict) else None
    if not isinstance(data, dict):
        raise _TransientError(f"{op}: response without data", maybe_applied=True)
    return data


def _backoff_delays() -> list[float]:
    delays, delay = [], timing.base_delay
    for _ in range(max(timing.attempts - 1, 0)):
        delays.append(delay)
        delay = min(delay * 2, timing.max_delay)
    return delays


def _with_retries(
    op: str, attempt: Callable[[], T], recover: Callable[[], T | None] | None = None
) -> T:
    """Run `attempt`, retrying transient failures within `timing`'s bounds.

    `recover`, for creates, runs before each retry after a failure that may have been applied:
    if it finds what the lost attempt made, that is the result and nothing is sent twice.
    """
    deadline = time.monotonic() + timing.retry_budget
    delays = _backoff_delays()
    tries = 0
    while True:
        tries += 1
        try:
            return attempt()
        except _TransientError as exc:
            last = str(exc)
            if not delays or time.monotonic() + delays[0] > deadline:
                raise RunPodUnavailableError(
                    f"RunPod API unavailable for {op} after {tries} attempt(s): {last}"
                ) from None
            time.sleep(delays.pop(0))
            if recover is not None and exc.maybe_applied:
                found = _with_retries(f"{op} (looking for a lost result)", recover)
                if found is not None:
                    return found


def _run(op: str, query: str) -> dict[str, Any]:
    return _with_retries(op, lambda: _call_once(query, op))


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


def _pod_info(raw: Mapping[str, Any]) -> PodInfo:
    env: dict[str, str] = {}
    for item in raw.get("env") or []:
        key, _, value = str(item).partition("=")
        if key != AUTH_KEY_ENV:
            env[key] = value
    machine = raw.get("machine") or {}
    ports = tuple(p for p in str(raw.get("ports") or "").split(",") if p)
    return PodInfo(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        desired_status=str(raw.get("desiredStatus") or ""),
        running=raw.get("desiredStatus") == "RUNNING" and raw.get("runtime") is not None,
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
    )


def get_pod(pod_id: str) -> PodInfo | None:
    """The pod, or None when RunPod no longer has it (null or TERMINATED)."""
    query = (
        f'query pod {{ pod(input: {{podId: "{_gql_id(pod_id, "pod id")}"}}) {{ {_POD_FIELDS} }} }}'
    )
    raw = _run("get pod", query).get("pod")
    if not raw or raw.get("desiredStatus") == "TERMINATED":
        return None
    return _pod_info(raw)


def list_pods() -> list[PodInfo]:
    """All live pods of the account (terminated ones excluded)."""
    query = f"query myPods {{ myself {{ pods {{ {_POD_FIELDS} }} }} }}"
    myself = _run("list pods", query).get("myself") or {}
    return [
        _pod_info(raw)
        for raw in myself.get("pods") or []
        if raw and raw.get("desiredStatus") != "TERMINATED"
    ]


def find_pods_by_name(name: str) -> list[PodInfo]:
    """Live pods carrying `name`: how a pod whose id was lost is found again."""
    return [pod for pod in list_pods() if pod.name == name]


def _single(found: list[T], what: str, ids: Callable[[T], str]) -> T | None:
    if len(found) > 1:
        raise RunPodRequestError(
            f"more than one {what}: {', '.join(ids(x) for x in found)}; terminate the extra "
            "ones in the RunPod console"
        )
    return found[0] if found else None


def find_pod_by_name(name: str) -> PodInfo | None:
    return _single(find_pods_by_name(name), f"pod named {name!r}", lambda p: p.id)


def _check_gpu_type(spec: PodSpec) -> None:
    """Fail clearly on an unknown GPU type or a count above its maximum (as the SDK does)."""
    gpus = _sdk("runpod.api.queries.gpus")

    query = gpus.generate_gpu_query(_inner(spec.gpu_type_id, "gpu_type_id"), spec.gpu_count)
    found = _run("look up GPU type", query).get("gpuTypes") or []
    if not found:
        raise InvalidValueError(f"gpu_type_id {spec.gpu_type_id!r} is not a RunPod GPU type")
    maximum = found[0].get("maxGpuCount")
    if isinstance(maximum, int) and spec.gpu_count > maximum:
        raise InvalidValueError(
            f"gpu_count {spec.gpu_count} exceeds the maximum of {maximum} for {spec.gpu_type_id}"
        )


def _deploy_mutation(spec: PodSpec, data_center_id: str | None) -> str:
    pod_mutations = _sdk("runpod.api.mutations.pods")

    return pod_mutations.generate_pod_deployment_mutation(
        name=_inner(spec.name, "name"),
        image_name=_inner(spec.image, "image"),
        gpu_type_id=_inner(spec.gpu_type_id, "gpu_type_id"),
        cloud_type=_gql_cloud_type(spec.cloud_type),
        # Access is over the tailnet: no public IP (more hosts qualify) and no RunPod SSH.
        support_public_ip=False,
        start_ssh=False,
        data_center_id=None if data_center_id is None else _inner(data_center_id, "data_center_id"),
        gpu_count=_gql_int(spec.gpu_count, "gpu_count", 1),
        volume_in_gb=_gql_int(spec.volume_gb, "volume_gb"),
        container_disk_in_gb=_gql_int(spec.container_disk_gb, "container_disk_gb", 1),
        min_vcpu_count=1,
        min_memory_in_gb=1,
        docker_args=_inner(spec.docker_args, "docker_args"),
        ports=_gql_ports(spec.ports) if spec.ports else None,
        volume_mount_path=_inner(spec.volume_mount_path, "volume_mount_path"),
        env={_inner(k, "env key"): _inner(v, f"env {k}") for k, v in spec.env.items()},
        network_volume_id=(
            None
            if spec.network_volume_id is None
            else _gql_id(spec.network_volume_id, "network_volume_id")
        ),
    )


@dataclass(frozen=True)
class CreatedPod:
    """The pod `create_pod` deployed, or the live one it adopted by name."""

    id: str
    adopted: PodInfo | None = None
    """Set when the pod already existed: it was not made by this call, so a failure later
    must leave it as it is rather than terminate it."""


def create_pod(spec: PodSpec) -> CreatedPod:
    """Deploy a pod on demand, or adopt the live pod that already carries `spec.name`.

    Adoption covers an earlier create whose response was lost (its id never reached state)
    and a pod made by hand under the stack's name. A deploy whose response was lost is found
    by name too, and counts as deployed by this call. The pod may not be running yet: see
    `wait_for_pod`.
    """
    data_center_id = spec.data_center_id
    if spec.network_volume_id is not None and data_center_id is None:
        volume = get_volume(spec.network_volume_id)
        if volume is None:
            raise RunPodNotFoundError(f"network volume {spec.network_volume_id} does not exist")
        data_center_id = volume.data_center_id
    _check_gpu_type(spec)
    existing = find_pod_by_name(spec.name)
    if existing is not None:
        return CreatedPod(existing.id, adopted=existing)
    mutation = _deploy_mutation(spec, data_center_id)

    def deploy() -> str:
        raw = _call_once(mutation, "create pod").get("podFindAndDeployOnDemand")
        if not raw or not raw.get("id"):
            raise _TransientError("create pod: response without a pod", maybe_applied=True)
        return _gql_id(raw["id"], "pod id")

    def recover() -> str | None:
        found = find_pod_by_name(spec.name)
        return None if found is None else found.id

    return CreatedPod(_with_retries("create pod", deploy, recover=recover))


def wait_for_pod(pod_id: str) -> PodInfo:
    """Poll until the pod's container runs, within `timing.start_deadline`."""
    deadline = time.monotonic() + timing.start_deadline
    while True:
        pod = get_pod(pod_id)
        if pod is None:
            raise RunPodNotFoundError(f"pod {pod_id} disappeared while starting")
        if pod.running:
            return pod
        if time.monotonic() + timing.poll_interval > deadline:
            raise RunPodUnavailableError(
                f"pod {pod_id} did not start its container within {timing.start_deadline:g} s: "
                f"{reached_state(pod)}"
            )
        time.sleep(timing.poll_interval)


def reached_state(pod: PodInfo) -> str:
    """Where a pod that is not running got to, in the words of what to do next."""
    if pod.desired_status == "RUNNING":
        return (
            "RunPod reports it RUNNING (a host is assigned) but its container has no runtime "
            "yet: the image is still being pulled, or the container exits at start (see the "
            "pod's logs in RunPod's console)"
        )
    if pod.desired_status:
        return f"it reached {pod.desired_status}, not RUNNING"
    return "RunPod reports no status for it"


def edit_pod(pod_id: str, spec: PodSpec) -> None:
    """podEditJob: change image/env/ports/start command/disk in place.

    RunPod restarts the container (a reset): the pod id, host and volumes stay, the container
    filesystem outside volumes is fresh.
    """
    fields = [
        f'podId: "{_gql_id(pod_id, "pod id")}"',
        f"imageName: {_gql_string(spec.image, 'image')}",
        f"containerDiskInGb: {_gql_int(spec.container_disk_gb, 'container_disk_gb', 1)}",
        f"volumeInGb: {_gql_int(spec.volume_gb, 'volume_gb')}",
        f"volumeMountPath: {_gql_string(spec.volume_mount_path, 'volume_mount_path')}",
        f"dockerArgs: {_gql_string(spec.docker_args, 'docker_args')}",
        f'ports: "{_gql_ports(spec.ports)}"',
        f"env: {_gql_env(spec.env)}",
    ]
    query = f"mutation {{ podEditJob(input: {{ {', '.join(fields)} }}) {{ id desiredStatus }} }}"
    _run("edit pod", query)


def stop_pod(pod_id: str) -> str:
    """Stop the pod (GPU released, pod volume kept); returns desiredStatus."""
    pod_mutations = _sdk("runpod.api.mutations.pods")

    query = pod_mutations.generate_pod_stop_mutation(_gql_id(pod_id, "pod id"))
    return str((_run("stop pod", query).get("podStop") or {}).get("desiredStatus"))


def resume_pod(pod_id: str, gpu_count: int) -> str:
    """Resume a stopped pod on its host; RunPodCapacityError when the host has no free GPU."""
    pod_mutations = _sdk("runpod.api.mutations.pods")

    query = pod_mutations.generate_pod_resume_mutation(
        _gql_id(pod_id, "pod id"), _gql_int(gpu_count, "gpu_count", 1)
    )
    try:
        data = _run("resume pod", query)
    except RunPodCapacityError as exc:
        raise RunPodCapacityError(
            f"{exc} (pod {pod_id} is stopped and its host machine has no free GPU; its "
            "pod-local volume stays on that host: wait and retry, or replace the pod)"
        ) from None
    return str((data.get("podResume") or {}).get("desiredStatus"))


def terminate_pod(pod_id: str) -> bool:
    """Terminate the pod; one already gone counts as success (returns False then)."""
    pod_mutations = _sdk("runpod.api.mutations.pods")

    query = pod_mutations.generate_pod_terminate_mutation(_gql_id(pod_id, "pod id"))
    try:
        _run("terminate pod", query)
    except RunPodNotFoundError:
        return False
    return True


# --- network volumes (not in the SDK: its GraphQL transport with our query text) -----------

_VOLUME_FIELDS = "id name size dataCenterId"


def _volume_info(raw: Mapping[str, Any]) -> VolumeInfo:
    return VolumeInfo(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        size_gb=int(raw.get("size") or 0),
        data_center_id=str(raw.get("dataCenterId") or ""),
    )


def list_volumes() -> list[VolumeInfo]:
    user_queries = _sdk("runpod.api.queries.user")

    myself = _run("list network volumes", user_queries.QUERY_USER).get("myself") or {}
    return [_volume_info(raw) for raw in myself.get("networkVolumes") or [] if raw]


def get_volume(volume_id: str) -> VolumeInfo | None:
    _gql_id(volume_id, "network volume id")
    return next((v for v in list_volumes() if v.id == volume_id), None)


def find_volume_by_name(name: str, data_center_id: str) -> VolumeInfo | None:
    found = [v for v in list_volumes() if v.name == name and v.data_center_id == data_center_id]
    return _single(found, f"network volume named {name!r} in {data_center_id}", lambda v: v.id)


def create_volume(name: str, size_gb: int, data_center_id: str) -> VolumeInfo:
    """Create a network volume, or adopt the one with this name in this data center.

    Adoption also brings back a volume kept by `retain_on_delete` after a destroy.
    """
    existing = find_volume_by_name(name, data_center_id)
    if existing is not None:
        return existing
    fields = (
        f"name: {_gql_string(name, 'name')}, size: {_gql_int(size_gb, 'size_gb', 1)}, "
        f"dataCenterId: {_gql_string(data_center_id, 'data_center_id')}"
    )
    query = f"mutation {{ createNetworkVolume(input: {{ {fields} }}) {{ {_VOLUME_FIELDS} }} }}"

    def create() -> VolumeInfo:
        raw = _call_once(query, "create network volume").get("createNetworkVolume")
        if not raw or not raw.get("id"):
            raise _TransientError(
                "create network volume: response without a volume", maybe_applied=True
            )
        return _volume_info(raw)

    return _with_retries(
        "create network volume", create, recover=lambda: find_volume_by_name(name, data_center_id)
    )


def update_volume(volume_id: str, *, name: str, size_gb: int) -> VolumeInfo:
    """Rename and/or grow a network volume (RunPod cannot shrink one)."""
    fields = (
        f'id: "{_gql_id(volume_id, "network volume id")}", name: {_gql_string(name, "name")}, '
        f"size: {_gql_int(size_gb, 'size_gb', 1)}"
    )
    query = f"mutation {{ updateNetworkVolume(input: {{ {fields} }}) {{ {_VOLUME_FIELDS} }} }}"
    raw = _run("update network volume", query).get("updateNetworkVolume")
    if not raw:
        raise RunPodNotFoundError(f"network volume {volume_id} does not exist")
    return _volume_info(raw)


def delete_volume(volume_id: str) -> None:
    """Delete a network volume; one already gone counts as success."""
    if get_volume(volume_id) is None:
        return
    volume = _gql_id(volume_id, "network volume id")
    query = f'mutation {{ deleteNetworkVolume(input: {{ id: "{volume}" }}) }}'
    try:
        _run("delete network volume", query)
    except RunPodNotFoundError:
        return
