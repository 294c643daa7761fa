"""The one adapter over RunPod's API: what the pod and volume providers call, whichever wire
format carries it.

RunPod is moving its API: REST API v2 is generally available since 2026-08-18, and the GraphQL
API (all the runpod SDK 1.12 speaks) "will be retired in early 2027". So each wire format lives
in its own module behind this interface: `rest_v2` (the default) and `graphql` (chosen per stack
with `coral:runpod: {api: graphql}` until RunPod switches it off; that day the file is deleted).
Both are imported on the first API call only, so check/diff of an unchanged stack stay offline.

What must hold whichever wire format is used lives here:
- Values are checked before anything is sent (ids, enums, integers, ports); each wire format
  then encodes them safely (JSON bodies, or escaped GraphQL literals).
- The API key is in a module-level holder, never on a provider instance (providers are
  dill-pickled into Pulumi state), and no error text holds it or a Tailscale auth key, even
  when RunPod quotes the request back: `RunPodError` redacts its own message.
- Transient failures (429 after its Retry-After, 5xx, connection errors, timeouts, answers
  that are not JSON) are retried with exponential backoff, bounded in attempts and time.
- A create whose outcome is unknown is never blindly sent again: the unique name is looked up
  over a grace period long enough for a late-applied request to appear. When several pods or
  volumes carry the name, one is kept, the extras are removed, and a warning says so.
- A terminate answered with an error that may hide success (RunPod's generic "Something went
  wrong" for a pod that is already gone) is checked with a read before it counts as an outage.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol, TypeVar, cast

API_KEY_CONFIG = "coral:runpodApiKey"
API_CONFIG = "coral:runpod"
"""Stack config `coral:runpod: {api: v2|graphql}`: the wire format (settings.RunPodSettings)."""
API_KEY_ENV = "RUNPOD_API_KEY"
BASE_URL_ENV = "RUNPOD_API_BASE_URL"
"""Overrides the host of both APIs (the SDK reads it too); the sandbox points it at the stand-in."""
DEFAULT_BASE_URL = "https://api.runpod.io"
AUTH_KEY_ENV = "TAILSCALE_AUTHKEY"
CLOUD_TYPES = ("SECURE", "COMMUNITY", "ALL")
WIRE_FORMATS = {"v2": "coral_infra.runpod.rest_v2", "graphql": "coral_infra.runpod.graphql"}
DEFAULT_API = "v2"
POD_LOG_LINES = 50

# RunPod ids: short lowercase alphanumerics ("3tv4hh0d0g3hyb"), or prefixed as in the REST v2
# examples ("pod_abc123", "vol_xyz"). No other character: GraphQL pastes ids into query text.
ID_RE = re.compile(r"^[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*$")
_PORT_RE = re.compile(r"^([0-9]{1,5})/(tcp|http)$")
_AUTH_KEY_RE = re.compile(r"tskey-[A-Za-z0-9_-]+")
# Shorter values are not keys (Tailscale's are ~60 characters): redacting them would mangle
# messages, and `tskey-…` is redacted whatever its length.
_MIN_SECRET_LENGTH = 8

T = TypeVar("T")
log = logging.getLogger("coral_infra.runpod")

# The engine calls provider methods from several threads at once; concurrent first imports of
# modules can deadlock in importlib (_DeadlockError), so they go one at a time.
_IMPORT_LOCK = threading.RLock()


def import_module(name: str) -> ModuleType:
    """A module imported on first use, one thread at a time (see `_IMPORT_LOCK`)."""
    with _IMPORT_LOCK:
        return importlib.import_module(name)


@dataclass(frozen=True)
class Timing:
    """Every wait of the adapter, bounded; tests swap in tiny values via `timing`."""

    call_timeout: float = 30.0
    """Seconds one HTTP call may take."""
    attempts: int = 5
    """Tries per operation on transient failures, the first one included."""
    base_delay: float = 1.0
    """First backoff delay in seconds; doubles per retry up to `max_delay`."""
    max_delay: float = 16.0
    retry_budget: float = 120.0
    """Total seconds one operation may spend retrying (lookups for a lost create excluded)."""
    lookup_grace: float = 90.0
    """Seconds a create whose outcome is unknown is looked for by name before it is sent again:
    RunPod may apply a request after the client stopped waiting for it."""
    lookup_interval: float = 5.0
    poll_interval: float = 5.0
    """Seconds between status reads while waiting for a pod to run."""
    start_deadline: float = 900.0
    """Seconds a new or edited pod has to reach RUNNING (engine timeouts do not reach
    dynamic providers, so the deadline lives here)."""
    log_idle: float = 2.0
    """Seconds without a new log line after which the pod's log stream counts as read."""
    online_deadline: float = 300.0
    """Seconds a started pod's bootstrap has, once the pod runs, to report its device online
    on the tailnet (coral_infra/runpod/lifecycle.py)."""


timing = Timing()


class _Credentials:
    """Module-level holder, so nothing secret is an attribute of a pickled provider."""

    api_key: str | None = None
    api: str = DEFAULT_API
    secrets: frozenset[str] = frozenset()
    """Auth keys this process sent to RunPod: redacted from every error, whatever their form."""


_credentials = _Credentials()


def redact(text: str) -> str:
    """`text` without the API key, any auth key sent to RunPod, or anything like `tskey-…`."""
    for secret in sorted({_credentials.api_key or "", *_credentials.secrets}, key=len)[::-1]:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _AUTH_KEY_RE.sub("tskey-[redacted]", text)


class RunPodError(Exception):
    """An API failure with a message safe to show: it never holds the API key or an auth key."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class RunPodAuthError(RunPodError):
    """The API key is missing or RunPod rejected it."""


class RunPodCapacityError(RunPodError):
    """RunPod has no free GPU matching the request (deploy or resume)."""


class RunPodNotFoundError(RunPodError):
    """The pod or network volume does not exist (any more)."""


class RunPodUnavailableError(RunPodError):
    """RunPod kept failing transiently until the retry budget ran out."""

    def __init__(self, message: str, *, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied
        """Whether an attempt may have been carried out although its answer was lost."""


class RunPodRequestError(RunPodError):
    """RunPod rejected the request (an error that retrying will not fix)."""


class InvalidValueError(RunPodError, ValueError):
    """A value that cannot be sent safely or makes no sense to RunPod."""


class TransientError(Exception):
    """A failure worth retrying, raised by the wire formats and never shown as it is."""

    def __init__(
        self, reason: str, *, maybe_applied: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.maybe_applied = maybe_applied
        """Whether the request may have been carried out although its answer was lost."""
        self.retry_after = retry_after
        """Seconds RunPod asked to wait (a 429's Retry-After)."""


# --- what the providers send and read -------------------------------------------------------


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


# --- configuration --------------------------------------------------------------------------


class ConfigSource(Protocol):
    """Stack config by namespaced key: the providers' `req.config` or the engine's map."""

    def get(self, key: str) -> Any: ...


def configure(config_api_key: object, api: object = DEFAULT_API) -> None:
    """Use the key from stack config `coral:runpodApiKey`, else env `RUNPOD_API_KEY`, and the
    wire format `api` ("v2" or "graphql").

    A missing key is only an error at the first API call, because configure also runs for
    previews that call no API.
    """
    if api not in WIRE_FORMATS:
        raise InvalidValueError(
            f"{API_CONFIG}.api: got {api!r}; allowed: {', '.join(WIRE_FORMATS)}"
        )
    key = config_api_key or os.environ.get(API_KEY_ENV) or None
    _credentials.api_key = key if isinstance(key, str) else None
    _credentials.api = str(api)
    _credentials.secrets = frozenset()


def configure_from_stack(config: ConfigSource) -> None:
    """`configure` from a whole stack config (values as the engine passes them: JSON text)."""
    configure(config.get(API_KEY_CONFIG), api_choice(config.get(API_CONFIG)))


def api_choice(raw: object) -> str:
    """The wire format a `coral:runpod` value names (the program validated it already)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InvalidValueError(f"{API_CONFIG}: got {raw!r}; expected {{api: v2}}") from None
    if raw is None:
        return DEFAULT_API
    if not isinstance(raw, Mapping):
        raise InvalidValueError(f"{API_CONFIG}: got {raw!r}; expected {{api: v2}}")
    return str(raw.get("api", DEFAULT_API))


def current_api() -> str:
    """The wire format in use: "v2" or "graphql"."""
    return _credentials.api


def has_key() -> bool:
    return bool(_credentials.api_key)


def require_key() -> str:
    if not _credentials.api_key:
        raise RunPodAuthError(
            "no RunPod API key: set it with `pulumi config set --secret coral:runpodApiKey "
            f"<key>` or the environment variable {API_KEY_ENV}"
        )
    return _credentials.api_key


def base_url() -> str:
    """The API host, read on every call like the SDK does."""
    return (os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")


def _wire() -> WireFormat:
    return cast(WireFormat, import_module(WIRE_FORMATS[_credentials.api]))


# --- values: nothing is sent unchecked -------------------------------------------------------


def check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidValueError(f"{what} must be a string, got {type(value).__name__}")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise InvalidValueError(f"{what} contains an unpaired surrogate character")
    return value


def check_int(value: object, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) > 64 or not ID_RE.match(value):
        raise InvalidValueError(
            f"{what} must be a RunPod id (letters and digits, e.g. 'abc123' or 'pod_abc123'), "
            f"got {value!r}"
        )
    return value


def _check_spec(spec: PodSpec) -> None:
    for what in ("name", "image", "gpu_type_id", "volume_mount_path", "docker_args"):
        check_text(getattr(spec, what), what)
    if spec.cloud_type not in CLOUD_TYPES:
        raise InvalidValueError(f"cloud_type must be one of {', '.join(CLOUD_TYPES)}")
    for port in spec.ports:
        if not isinstance(port, str) or not _PORT_RE.match(port):
            raise InvalidValueError(f"port {port!r} must look like '2222/tcp' or '8888/http'")
    check_int(spec.gpu_count, "gpu_count", 1)
    check_int(spec.container_disk_gb, "container_disk_gb", 1)
    check_int(spec.volume_gb, "volume_gb")
    if spec.data_center_id is not None:
        check_text(spec.data_center_id, "data_center_id")
    if spec.network_volume_id is not None:
        check_id(spec.network_volume_id, "network_volume_id")
    for key, value in spec.env.items():
        check_text(key, "env key")
        check_text(value, f"env {key}")
    auth_key = spec.env.get(AUTH_KEY_ENV) or ""
    if len(auth_key) >= _MIN_SECRET_LENGTH:
        _credentials.secrets = _credentials.secrets | {auth_key}


# --- retries --------------------------------------------------------------------------------


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

    `recover` runs before each retry after a failure that may have been applied: if it finds
    what the lost attempt did, that is the result and nothing is sent twice. The time it takes
    (a create's lookup grace) does not count against the retry budget.
    """
    deadline = time.monotonic() + timing.retry_budget
    delays = _backoff_delays()
    tries, maybe_applied = 0, False
    while True:
        tries += 1
        try:
            return attempt()
        except TransientError as exc:
            maybe_applied = maybe_applied or exc.maybe_applied
            wait = max(delays[0], exc.retry_after or 0.0) if delays else None
            if wait is None or time.monotonic() + wait > deadline:
                asked = f" (RunPod asked to wait {exc.retry_after:g} s)" if exc.retry_after else ""
                raise RunPodUnavailableError(
                    f"RunPod API unavailable for {op} after {tries} attempt(s): {exc}{asked}",
                    maybe_applied=maybe_applied,
                ) from None
            delays.pop(0)
            time.sleep(wait)
            if recover is not None and exc.maybe_applied:
                started = time.monotonic()
                found = recover()
                deadline += time.monotonic() - started
                if found is not None:
                    return found


def _run(op: str, attempt: Callable[[], T]) -> T:
    return _with_retries(op, attempt)


def _warn(message: str) -> str:
    log.warning(message)
    return message


def _await_late(lookup: Callable[[], list[T]]) -> list[T]:
    """Look up over `timing.lookup_grace` until something appears (a late-applied create)."""
    deadline = time.monotonic() + timing.lookup_grace
    while True:
        found = lookup()
        if found or time.monotonic() + timing.lookup_interval > deadline:
            return found
        time.sleep(timing.lookup_interval)


def _may_exist(what: str, name: str, where: str = "") -> str:
    return (
        f"RunPod may have created a {what} named {name!r}{where} from a request whose answer "
        "was lost; it is not in the stack's state: the next `pulumi up` finds it by that name "
        "and adopts it"
    )


# --- pods -----------------------------------------------------------------------------------


def get_pod(pod_id: str) -> PodInfo | None:
    """The pod, or None when RunPod no longer has it (not found or TERMINATED)."""
    check_id(pod_id, "pod id")
    wire = _wire()
    return _run("get pod", lambda: wire.get_pod(pod_id))


def list_pods() -> list[PodInfo]:
    """All live pods of the account (terminated ones excluded)."""
    wire = _wire()
    return _run("list pods", wire.list_pods)


def find_pods_by_name(name: str) -> list[PodInfo]:
    """Live pods carrying `name`: how a pod whose id was lost is found again."""
    return [pod for pod in list_pods() if pod.name == name]


def find_pod_by_name(name: str) -> PodInfo | None:
    found = find_pods_by_name(name)
    if len(found) > 1:
        raise RunPodRequestError(
            f"more than one pod named {name!r}: {', '.join(p.id for p in found)}; terminate "
            "the extra ones in the RunPod console"
        )
    return found[0] if found else None


def matches(spec: PodSpec, pod: PodInfo) -> bool:
    """Whether a pod found by name is the pod `spec` describes (so it is ours to adopt)."""
    return pod.gpu_type_id in (None, spec.gpu_type_id) and pod.image == spec.image


def _keep_one_pod(
    spec: PodSpec, pods: list[PodInfo], prefer: str | None = None
) -> tuple[PodInfo, tuple[str, ...]]:
    """Of pods with the stack's unique name, the one to keep; the other pods of this spec
    (duplicates of one create) are terminated. Returns the kept pod and what was done."""
    ours = [p for p in pods if matches(spec, p)] or pods[:1]
    kept = next((p for p in ours if p.id == prefer), next((p for p in ours if p.running), ours[0]))
    notes = []
    for extra in ours:
        if extra.id == kept.id:
            continue
        try:
            terminate_pod(extra.id)
            notes.append(
                f"{len(pods)} pods carried the name {spec.name!r}: kept {kept.id} and "
                f"terminated the duplicate {extra.id}"
            )
        except RunPodError as exc:
            notes.append(
                f"pod {extra.id} also carries the name {spec.name!r} (a duplicate of {kept.id}) "
                f"and could not be terminated ({exc}): terminate it in the RunPod console"
            )
    others = [p.id for p in pods if p not in ours]
    if others:
        notes.append(
            f"pods {', '.join(others)} also carry the name {spec.name!r} but another image or "
            "GPU type: left as they are; terminate or rename them in the RunPod console"
        )
    return kept, tuple(_warn(note) for note in notes)


def create_pod(spec: PodSpec) -> CreatedPod:
    """Deploy a pod on demand, or adopt the live pod that already carries `spec.name`.

    Adoption covers an earlier create whose answer was lost (its id never reached state) and a
    pod made by hand under the stack's name. A create whose outcome is unknown is looked for by
    name over `timing.lookup_grace` before it is sent again. The pod may not be running yet:
    see `wait_for_pod`.
    """
    _check_spec(spec)
    wire = _wire()
    data_center_id = spec.data_center_id
    if spec.network_volume_id is not None and data_center_id is None:
        volume = get_volume(spec.network_volume_id)
        if volume is None:
            raise RunPodNotFoundError(f"network volume {spec.network_volume_id} does not exist")
        data_center_id = volume.data_center_id
    _run("look up GPU type", lambda: wire.check_gpu_type(spec))
    existing = find_pods_by_name(spec.name)
    if existing:
        kept, notes = _keep_one_pod(spec, existing)
        return CreatedPod(kept.id, adopted=kept, notes=notes)
    capacity: RunPodCapacityError | None = None
    for cloud in wire.clouds(spec.cloud_type):
        try:
            return _deploy(wire, spec, data_center_id, cloud)
        except RunPodCapacityError as exc:
            capacity = exc
    assert capacity is not None
    raise capacity


def _deploy(wire: WireFormat, spec: PodSpec, data_center_id: str | None, cloud: str) -> CreatedPod:
    notes: list[str] = []
    uncertain = False

    def recover() -> str | None:
        nonlocal uncertain
        uncertain = True
        found = _await_late(lambda: find_pods_by_name(spec.name))
        if not found:
            return None
        kept, done = _keep_one_pod(spec, found)
        notes.extend(done)
        return kept.id

    try:
        pod_id = _with_retries(
            "create pod", lambda: wire.create_pod(spec, data_center_id, cloud), recover=recover
        )
    except RunPodUnavailableError as exc:
        if exc.maybe_applied or uncertain:
            raise RunPodUnavailableError(
                f"{exc}; {_may_exist('pod', spec.name)} (and `pulumi destroy` terminates it)",
                maybe_applied=True,
            ) from None
        raise
    if uncertain:
        # A request applied after its retry was sent leaves a second pod: settle on one now.
        found = find_pods_by_name(spec.name)
        if len(found) > 1:
            notes.extend(_keep_one_pod(spec, found, prefer=pod_id)[1])
    return CreatedPod(check_id(pod_id, "pod id"), notes=tuple(notes))


def wait_for_pod(pod_id: str) -> PodInfo:
    """Poll until the pod's container runs, within `timing.start_deadline`."""
    deadline = time.monotonic() + timing.start_deadline
    while True:
        pod = get_pod(pod_id)
        if pod is None:
            raise RunPodNotFoundError(f"pod {pod_id} disappeared while starting")
        if pod.running:
            return pod
        if pod.status == "ERROR":
            raise RunPodRequestError(
                f"pod {pod_id} is in ERROR: RunPod reports its container in an unrecoverable "
                "error state"
            )
        if time.monotonic() + timing.poll_interval > deadline:
            raise RunPodUnavailableError(
                f"pod {pod_id} did not reach RUNNING within {timing.start_deadline:g} s "
                f"(status {pod.status or pod.desired_status or 'unknown'})"
            )
        time.sleep(timing.poll_interval)


def edit_pod(pod_id: str, spec: PodSpec) -> None:
    """Change image/env/ports/start command/disk in place.

    RunPod restarts the container (a reset): the pod id, host and volumes stay, the container
    filesystem outside volumes is fresh.
    """
    check_id(pod_id, "pod id")
    _check_spec(spec)
    wire = _wire()
    _run("edit pod", lambda: wire.edit_pod(pod_id, spec))


def stop_pod(pod_id: str) -> str:
    """Stop the pod (GPU released, pod volume kept); returns its desired status."""
    check_id(pod_id, "pod id")
    wire = _wire()
    return _run("stop pod", lambda: wire.stop_pod(pod_id))


def resume_pod(pod_id: str, gpu_count: int) -> str:
    """Resume a stopped pod on its host; RunPodCapacityError when the host has no free GPU."""
    check_id(pod_id, "pod id")
    check_int(gpu_count, "gpu_count", 1)
    wire = _wire()
    try:
        return _run("resume pod", lambda: wire.resume_pod(pod_id, gpu_count))
    except RunPodCapacityError as exc:
        raise RunPodCapacityError(
            f"{exc} (pod {pod_id} is stopped and its host machine has no free GPU; its "
            "pod-local volume stays on that host: wait and retry, or replace the pod)"
        ) from None


def terminate_pod(pod_id: str) -> bool:
    """Terminate the pod; one already gone counts as success (returns False then).

    An error that may hide a success or a pod already gone (RunPod's generic error) is checked
    with a read before it is retried: `destroy` never blocks on a pod that no longer exists.
    """
    check_id(pod_id, "pod id")
    wire = _wire()

    def gone() -> bool | None:
        return False if get_pod(pod_id) is None else None

    try:
        return _with_retries("terminate pod", lambda: wire.terminate_pod(pod_id), recover=gone)
    except RunPodNotFoundError:
        return False


def pod_log(pod_id: str, lines: int = POD_LOG_LINES) -> list[str]:
    """The last `lines` lines of the pod's container log, every `tskey-…` redacted.

    Only REST v2 serves pod logs (as Server-Sent Events), so they come from there whichever
    wire format the stack uses.
    """
    check_id(pod_id, "pod id")
    rest_v2 = import_module(WIRE_FORMATS["v2"])
    found: list[str] = _run("read pod log", lambda: rest_v2.pod_log(pod_id, lines))
    return [redact(line) for line in found[-lines:]]


@dataclass(frozen=True)
class LogLine:
    """One line of a pod's log, with RunPod's timestamp (also the stream's resume cursor)."""

    ts: str
    line: str


def pod_log_since(pod_id: str, since: str | None) -> list[LogLine]:
    """The pod's container log lines after the cursor `since` (a `LogLine.ts`; None: the last
    line only, so its `ts` can serve as the cursor of what comes next), `tskey-…` redacted."""
    check_id(pod_id, "pod id")
    rest_v2 = import_module(WIRE_FORMATS["v2"])
    found: list[LogLine] = _run("read pod log", lambda: rest_v2.pod_log_since(pod_id, since))
    return [LogLine(entry.ts, redact(entry.line)) for entry in found]


def log_excerpt(pod_id: str, lines: int = POD_LOG_LINES) -> str:
    """The pod's last log lines, to end an error message with; never raises."""
    try:
        found = pod_log(pod_id, lines)
    except RunPodError as exc:
        return f"\n(the log of pod {pod_id} could not be read: {exc})"
    if not found:
        return f"\n(pod {pod_id} has written no log lines yet)"
    body = "\n".join(f"  | {line}" for line in found)
    return f"\nlast {len(found)} line(s) of pod {pod_id}'s container log:\n{body}"


# --- network volumes ------------------------------------------------------------------------


def list_volumes() -> list[VolumeInfo]:
    wire = _wire()
    return _run("list network volumes", wire.list_volumes)


def get_volume(volume_id: str) -> VolumeInfo | None:
    check_id(volume_id, "network volume id")
    wire = _wire()
    return _run("get network volume", lambda: wire.get_volume(volume_id))


def _volumes_named(name: str, data_center_id: str) -> list[VolumeInfo]:
    return [v for v in list_volumes() if v.name == name and v.data_center_id == data_center_id]


def find_volume_by_name(name: str, data_center_id: str) -> VolumeInfo | None:
    found = _volumes_named(name, data_center_id)
    if len(found) > 1:
        raise RunPodRequestError(
            f"more than one network volume named {name!r} in {data_center_id}: "
            f"{', '.join(v.id for v in found)}; delete the extra ones in the RunPod console"
        )
    return found[0] if found else None


def _keep_one_volume(volumes: list[VolumeInfo], prefer: str | None = None) -> VolumeInfo:
    """Of several volumes with the stack's unique name, keep the one a pod uses (else the
    largest); the others are deleted unless a pod uses them, and a warning says so."""
    if len(volumes) == 1:
        return volumes[0]
    in_use = {p.network_volume_id for p in list_pods()}
    kept = sorted(volumes, key=lambda v: (v.id != prefer, v.id not in in_use, -v.size_gb, v.id))[0]
    for extra in volumes:
        if extra.id == kept.id:
            continue
        if extra.id in in_use:
            _warn(
                f"network volume {extra.id} also carries the name {kept.name!r} and a pod uses "
                f"it: left as it is (the stack uses {kept.id})"
            )
            continue
        try:
            delete_volume(extra.id)
            _warn(
                f"{len(volumes)} network volumes carried the name {kept.name!r}: kept {kept.id} "
                f"and deleted the duplicate {extra.id}"
            )
        except RunPodError as exc:
            _warn(
                f"duplicate network volume {extra.id} could not be deleted ({exc}): delete it "
                "in the RunPod console"
            )
    return kept


def create_volume(name: str, size_gb: int, data_center_id: str) -> VolumeInfo:
    """Create a network volume, or adopt the one with this name in this data center.

    Adoption also brings back a volume kept by `retain_on_delete` after a destroy; a create
    whose outcome is unknown is looked for by name before it is sent again.
    """
    check_text(name, "name")
    check_int(size_gb, "size_gb", 1)
    check_text(data_center_id, "data_center_id")
    wire = _wire()
    existing = _volumes_named(name, data_center_id)
    if existing:
        return _keep_one_volume(existing)
    uncertain = False

    def recover() -> VolumeInfo | None:
        nonlocal uncertain
        uncertain = True
        found = _await_late(lambda: _volumes_named(name, data_center_id))
        return _keep_one_volume(found) if found else None

    try:
        created = _with_retries(
            "create network volume",
            lambda: wire.create_volume(name, size_gb, data_center_id),
            recover=recover,
        )
    except RunPodUnavailableError as exc:
        if exc.maybe_applied or uncertain:
            where = f" in {data_center_id}"
            raise RunPodUnavailableError(
                f"{exc}; {_may_exist('network volume', name, where)}", maybe_applied=True
            ) from None
        raise
    if not uncertain:
        return created
    found = _volumes_named(name, data_center_id)
    return _keep_one_volume(found, prefer=created.id) if len(found) > 1 else created


def update_volume(volume_id: str, *, name: str, size_gb: int) -> VolumeInfo:
    """Rename and/or grow a network volume (RunPod cannot shrink one)."""
    check_id(volume_id, "network volume id")
    check_text(name, "name")
    check_int(size_gb, "size_gb", 1)
    wire = _wire()
    return _run("update network volume", lambda: wire.update_volume(volume_id, name, size_gb))


def delete_volume(volume_id: str) -> None:
    """Delete a network volume; one already gone counts as success."""
    check_id(volume_id, "network volume id")
    wire = _wire()

    def gone() -> bool | None:
        return False if get_volume(volume_id) is None else None

    try:
        _with_retries("delete network volume", lambda: wire.delete_volume(volume_id), recover=gone)
    except RunPodNotFoundError:
        return


# --- catalog --------------------------------------------------------------------------------

_catalogs: dict[tuple[str, str, tuple[str, ...]], Catalog] = {}


def get_catalog(clouds: Sequence[str]) -> Catalog:
    """GPU types (price, and stock in `clouds`) and data centers; read once per process."""
    key = (_credentials.api, base_url(), tuple(sorted(set(clouds))))
    if key not in _catalogs:
        require_key()
        wire = _wire()
        _catalogs[key] = _run("read RunPod's catalog", lambda: wire.catalog(key[2]))
    return _catalogs[key]
