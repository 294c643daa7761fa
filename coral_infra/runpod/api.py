"""The one adapter over RunPod's API: what the pod and volume providers call, whichever wire
format carries it.

RunPod is moving its API: REST API v2 is generally available since 2026-08-18, and the GraphQL
API (all the runpod SDK 1.12 speaks) "will be retired in early 2027". So each wire format lives
in its own module behind this interface: `rest_v2` (the default) and `graphql` (chosen per stack
with `coral:runpod: {api: graphql}` until RunPod switches it off; that day the file is deleted).
Both are imported on the first API call only, so check/diff of an unchanged stack stay offline.

This is the one module the providers import: the records it takes and gives (`model`), its
errors, configuration and retries (`session`) and the network-volume operations
(`network_volumes`) are re-exported here. What must hold whichever wire format is used lives
here for pods, and in `network_volumes` for volumes:
- Values are checked before anything is sent (ids, enums, integers, ports); each wire format
  then encodes them safely (JSON bodies, or escaped GraphQL literals). No error text holds the
  API key or an auth key (`session.redact`), and transient failures are retried within bounds.
- A create whose outcome is unknown is never blindly sent again: the unique name is looked up
  over a grace period long enough for a late-applied request to appear. When several pods or
  volumes carry the name, one is kept, the extras are removed, and a warning says so
  (`lost_creates`, shared by both).
- A terminate answered with an error that may hide success (RunPod's generic "Something went
  wrong" for a pod that is already gone) is checked with a read before it counts as an outage.
- A provider process lists the account's pods (volumes) once for all its creates' lookups by
  name (`listing.py`), and checks a GPU type once per process: a fleet's `up` costs one
  listing, not one per machine. Every other lookup lists afresh.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence

from coral_infra.runpod import listing, session
from coral_infra.runpod.lost_creates import await_late, log, may_exist, warn
from coral_infra.runpod.model import (
    Catalog,
    CreatedPod,
    GpuOffer,
    LogLine,
    PodInfo,
    PodSpec,
    VolumeInfo,
    WireFormat,
)
from coral_infra.runpod.network_volumes import (
    create_volume,
    delete_volume,
    find_volume_by_name,
    get_volume,
    list_volumes,
    update_volume,
)
from coral_infra.runpod.session import (
    API_CONFIG,
    API_KEY_CONFIG,
    API_KEY_ENV,
    AUTH_KEY_ENV,
    BASE_URL_ENV,
    DEFAULT_API,
    DEFAULT_BASE_URL,
    ID_RE,
    WIRE_FORMATS,
    ConfigSource,
    InvalidValueError,
    RunPodAuthError,
    RunPodCapacityError,
    RunPodError,
    RunPodNotFoundError,
    RunPodRequestError,
    RunPodUnavailableError,
    Timing,
    TransientError,
    api_choice,
    base_url,
    check_id,
    check_int,
    check_text,
    configure,
    configure_from_stack,
    current_api,
    has_key,
    redact,
    require_key,
)

__all__ = [
    "API_CONFIG",
    "API_KEY_CONFIG",
    "API_KEY_ENV",
    "AUTH_KEY_ENV",
    "BASE_URL_ENV",
    "CLOUD_TYPES",
    "DEFAULT_API",
    "DEFAULT_BASE_URL",
    "ID_RE",
    "POD_LOG_LINES",
    "WIRE_FORMATS",
    "Catalog",
    "ConfigSource",
    "CreatedPod",
    "GpuOffer",
    "InvalidValueError",
    "LogLine",
    "PodInfo",
    "PodSpec",
    "RunPodAuthError",
    "RunPodCapacityError",
    "RunPodError",
    "RunPodNotFoundError",
    "RunPodRequestError",
    "RunPodUnavailableError",
    "Timing",
    "TransientError",
    "VolumeInfo",
    "WireFormat",
    "api_choice",
    "base_url",
    "check_id",
    "check_int",
    "check_text",
    "configure",
    "configure_from_stack",
    "create_pod",
    "create_volume",
    "current_api",
    "delete_volume",
    "edit_pod",
    "find_pod_by_name",
    "find_pods_by_name",
    "find_volume_by_name",
    "get_catalog",
    "get_pod",
    "get_volume",
    "has_key",
    "list_pods",
    "list_volumes",
    "log",
    "log_excerpt",
    "matches",
    "pod_log",
    "pod_log_since",
    "redact",
    "require_key",
    "resume_pod",
    "stop_pod",
    "terminate_pod",
    "update_volume",
    "wait_for_pod",
]

CLOUD_TYPES = ("SECURE", "COMMUNITY", "ALL")
POD_LOG_LINES = 50
_PORT_RE = re.compile(r"^([0-9]{1,5})/(tcp|http)$")


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
    session.remember_secret(spec.env.get(AUTH_KEY_ENV) or "")


# --- pods -----------------------------------------------------------------------------------


def get_pod(pod_id: str) -> PodInfo | None:
    """The pod, or None when RunPod no longer has it (not found or TERMINATED)."""
    check_id(pod_id, "pod id")
    wire = session.wire()
    return session.run("get pod", lambda: wire.get_pod(pod_id))


def list_pods() -> list[PodInfo]:
    """All live pods of the account (terminated ones excluded), listed now."""
    return listing.pods.fresh()


def find_pods_by_name(name: str, *, recent: bool = False) -> list[PodInfo]:
    """Live pods carrying `name`: how a pod whose id was lost is found again. `recent`: from
    this process's recent listing (a create's lookup, see `listing`), else listed now."""
    pods = listing.pods.recent() if recent else listing.pods.fresh()
    return [pod for pod in pods if pod.name == name]


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
    return kept, tuple(warn(note) for note in notes)


_gpu_types_checked: set[tuple[str, str, str, int, str]] = set()
"""GPU type, count and cloud type this process found RunPod offers (per API and host)."""
_gpu_types_lock = threading.Lock()


def create_pod(spec: PodSpec) -> CreatedPod:
    """Deploy a pod on demand, or adopt the live pod that already carries `spec.name`.

    Adoption covers an earlier create whose answer was lost (its id never reached state) and a
    pod made by hand under the stack's name. A create whose outcome is unknown is looked for by
    name over `session.timing.lookup_grace` before it is sent again. The pod may not be running yet:
    see `wait_for_pod`.
    """
    _check_spec(spec)
    wire = session.wire()
    data_center_id = spec.data_center_id
    if spec.network_volume_id is not None and data_center_id is None:
        volume = get_volume(spec.network_volume_id)
        if volume is None:
            raise RunPodNotFoundError(f"network volume {spec.network_volume_id} does not exist")
        data_center_id = volume.data_center_id
    checked = (session.current_api(), base_url(), spec.gpu_type_id, spec.gpu_count, spec.cloud_type)
    with _gpu_types_lock:  # a fleet's creates start together: one of them checks
        if checked not in _gpu_types_checked:
            session.run("look up GPU type", lambda: wire.check_gpu_type(spec))
            _gpu_types_checked.add(checked)
    existing = find_pods_by_name(spec.name, recent=True)
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
        found = await_late(lambda: find_pods_by_name(spec.name))
        if not found:
            return None
        kept, done = _keep_one_pod(spec, found)
        notes.extend(done)
        return kept.id

    try:
        pod_id = session.with_retries(
            "create pod", lambda: wire.create_pod(spec, data_center_id, cloud), recover=recover
        )
    except RunPodUnavailableError as exc:
        if exc.maybe_applied or uncertain:
            raise RunPodUnavailableError(
                f"{exc}; {may_exist('pod', spec.name)} (and `pulumi destroy` terminates it)",
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
    """Poll until the pod's container runs, within `session.timing.start_deadline`."""
    deadline = time.monotonic() + session.timing.start_deadline
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
        if time.monotonic() + session.timing.poll_interval > deadline:
            raise RunPodUnavailableError(
                f"pod {pod_id} did not start its container within "
                f"{session.timing.start_deadline:g} s: {reached_state(pod)}"
            )
        time.sleep(session.timing.poll_interval)


def reached_state(pod: PodInfo) -> str:
    """Where a pod that is not running got to, in the words of what to do next."""
    status = pod.status or pod.desired_status
    if status in ("RUNNING", "STARTING"):
        return (
            f"RunPod reports it {status} (a host is assigned) but its container has no runtime "
            "yet: the image is still being pulled, or the container exits at start (its last "
            "log lines follow when RunPod has them)"
        )
    if status:
        return f"it reached {status}, not RUNNING"
    return "RunPod reports no status for it"


def edit_pod(pod_id: str, spec: PodSpec) -> None:
    """Change image/env/ports/start command/disk in place.

    RunPod restarts the container (a reset): the pod id, host and volumes stay, the container
    filesystem outside volumes is fresh.
    """
    check_id(pod_id, "pod id")
    _check_spec(spec)
    wire = session.wire()
    session.run("edit pod", lambda: wire.edit_pod(pod_id, spec))


def stop_pod(pod_id: str) -> str:
    """Stop the pod (GPU released, pod volume kept); returns its desired status."""
    check_id(pod_id, "pod id")
    wire = session.wire()
    return session.run("stop pod", lambda: wire.stop_pod(pod_id))


def resume_pod(pod_id: str, gpu_count: int) -> str:
    """Resume a stopped pod on its host; RunPodCapacityError when the host has no free GPU."""
    check_id(pod_id, "pod id")
    check_int(gpu_count, "gpu_count", 1)
    wire = session.wire()
    try:
        return session.run("resume pod", lambda: wire.resume_pod(pod_id, gpu_count))
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
    wire = session.wire()

    def gone() -> bool | None:
        return False if get_pod(pod_id) is None else None

    try:
        terminated = session.with_retries(
            "terminate pod", lambda: wire.terminate_pod(pod_id), recover=gone
        )
    except RunPodNotFoundError:
        terminated = False
    listing.pods.drop(pod_id)
    return terminated


def pod_log(pod_id: str, lines: int = POD_LOG_LINES) -> list[str]:
    """The last `lines` lines of the pod's container log, every `tskey-…` redacted.

    Only REST v2 serves pod logs (as Server-Sent Events), so they come from there whichever
    wire format the stack uses.
    """
    check_id(pod_id, "pod id")
    rest_v2 = session.import_module(WIRE_FORMATS["v2"])
    found: list[str] = session.run("read pod log", lambda: rest_v2.pod_log(pod_id, lines))
    return [redact(line) for line in found[-lines:]]


def pod_log_since(pod_id: str, since: str | None) -> list[LogLine]:
    """The pod's container log lines after the cursor `since` (a `LogLine.ts`; None: the last
    line only, so its `ts` can serve as the cursor of what comes next), `tskey-…` redacted."""
    check_id(pod_id, "pod id")
    rest_v2 = session.import_module(WIRE_FORMATS["v2"])
    found: list[LogLine] = session.run("read pod log", lambda: rest_v2.pod_log_since(pod_id, since))
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


# --- catalog --------------------------------------------------------------------------------

_catalogs: dict[tuple[str, str, tuple[str, ...]], Catalog] = {}


def get_catalog(clouds: Sequence[str]) -> Catalog:
    """GPU types (price, and stock in `clouds`) and data centers; read once per process."""
    key = (session.current_api(), base_url(), tuple(sorted(set(clouds))))
    if key not in _catalogs:
        require_key()
        wire = session.wire()
        _catalogs[key] = session.run("read RunPod's catalog", lambda: wire.catalog(key[2]))
    return _catalogs[key]
