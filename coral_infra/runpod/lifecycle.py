"""A machine's pod stopped and started again: one implementation behind `pulumi up` (the pod
provider) and `coral start` / `coral stop`, so both make the same calls, wait the same way and
say the same things.

Stopped is a state, not drift. RunPod keeps a stopped pod (EXITED) with its id, its host and
its volumes; only the GPU is released. On its network or pod volume the tailnet identity
survives, so starting the pod again brings back the same device, IPs and SSH config. The pod
resource therefore carries its run state as the input `status`:
- the program always asks for "running";
- `refresh` records what RunPod reports ("stopped" for EXITED, "error" for ERROR);
- the program lists the account's pods once per run (`pods_by_name`, beside the catalog read of
  coral_infra/preflight.py) and, for a machine whose pod is not running, asks for
  `start (stopped)` instead (`requested_status`), saying so in the preview; the diff it causes
  reads as the action: `~ status: "running" => "start (stopped)"` (or `"stopped" => "start
  (stopped)"` after a refresh), an update, never a replacement. The pod provider's `check`
  calls no API, so a preview costs one pod listing whatever the fleet's size;
- the update starts the pod, waits for RUNNING and then for the bootstrap in the pod to report
  the device online on the tailnet (its log line `ONLINE_MARKER`).

A stopped pod can only start on the host it lives on; when that host's GPUs are taken, RunPod
refuses and the error says what to do (`no_free_gpu`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence

from coral_infra.runpod import api, session

RUNNING = "running"
STOPPED = "stopped"
ERROR = "error"
_START = "start ("

HOSTNAME_ENV = "TS_HOSTNAME"
"""The pod env var (bootstrap.pod_env) naming the machine on the tailnet: a pod that has it runs
the bootstrap, whose log says when the device is online."""
ONLINE_MARKER = "Tailscale SSH enabled"
"""start.sh logs this once tailscaled is Running (connected, logged in) with Tailscale SSH on."""
OFFLINE_MARKER = "continuing without a working tailnet connection"
"""start.sh logs this when it gives up bringing the device onto the tailnet."""
LOG_START = "1970-01-01T00:00:00Z"
"""The log cursor of a pod that has logged nothing yet: everything comes after it."""

Progress = Callable[[str], None]


class MachineOfflineError(api.RunPodError):
    """The pod runs, but its device did not come back online on the tailnet."""


def _quiet(_message: str) -> None:
    return None


def observed(pod: api.PodInfo) -> str:
    """The run state `status` records for a pod as RunPod reports it."""
    if pod.status == "EXITED" or (not pod.status and pod.desired_status == "EXITED"):
        return STOPPED
    if pod.status == "ERROR":
        return ERROR
    return RUNNING


def start_request(state: str) -> str:
    """The `status` input asking an update to start a pod found in `state`."""
    return f"{_START}{state})"


def is_start_request(status: object) -> bool:
    """Whether a `status` input asks for a start (`start_request`)."""
    return isinstance(status, str) and status.startswith(_START)


def is_down(recorded: object) -> bool:
    """Whether a recorded `status` (state) says the pod was found not running."""
    return recorded in (STOPPED, ERROR)


def _elapsed(since: float) -> str:
    return f"{time.monotonic() - since:.0f} s"


def _who(pod_id: str, hostname: str | None) -> str:
    return f"{hostname} (pod {pod_id})" if hostname else f"pod {pod_id}"


def no_free_gpu(pod: api.PodInfo, hostname: str | None, cause: api.RunPodError) -> str:
    """What to do when RunPod cannot start a stopped pod because its host has no free GPU."""
    gpu = f"{pod.gpu_count} x {pod.gpu_type_id}" if pod.gpu_type_id else "GPU"
    if pod.network_volume_id:
        keeps = (
            f"its network volume {pod.network_volume_id} keeps /workspace and the tailnet "
            "identity, so the new pod, on any host, rejoins as the same device"
        )
    else:
        keeps = (
            "its /workspace is a pod volume on that host, so the new pod starts with a fresh "
            "volume and joins the tailnet as a new device (copy what you need first, or use "
            "volume.kind: network)"
        )
    start = f"`coral start <stack>/{hostname}`" if hostname else "`coral start <stack>/<host>`"
    return (
        f"{_who(pod.id, hostname)} is stopped and RunPod cannot start it: its host machine has "
        f"no free {gpu} right now, and a stopped pod can only start on its own host. Either "
        f"wait and try again later (`pulumi up` or {start}), or move the machine: change its "
        "gpuType (or cloudType/dataCenter) in the stack config, or run `pulumi up --replace "
        f"<the pod's URN>`; that replaces the pod: {keeps}. (RunPod: {cause})"
    )


def _log_cursor(pod_id: str) -> str:
    """Where the pod's log stands now (RunPod's timestamp of its last line)."""
    try:
        last = api.pod_log_since(pod_id, None)
    except api.RunPodError:
        return LOG_START
    return last[-1].ts if last and last[-1].ts else LOG_START


def start_machine(
    pod_id: str,
    *,
    hostname: str | None,
    gpu_count: int | None = None,
    progress: Progress = _quiet,
) -> api.PodInfo:
    """Start the stopped pod, wait for RUNNING and, when it runs the bootstrap (`hostname`),
    for its device to be online again. A pod already running is left as it is."""
    pod = api.get_pod(pod_id)
    if pod is None:
        raise api.RunPodNotFoundError(f"pod {pod_id} does not exist (any more)")
    if observed(pod) == RUNNING:
        return pod if pod.running else api.wait_for_pod(pod_id)
    cursor = _log_cursor(pod_id) if hostname else LOG_START
    began = time.monotonic()
    progress(f"{_who(pod_id, hostname)} is {pod.status or pod.desired_status}: starting it")
    try:
        api.resume_pod(pod_id, gpu_count or pod.gpu_count or 1)
    except api.RunPodCapacityError as exc:
        raise api.RunPodCapacityError(no_free_gpu(pod, hostname, exc)) from None
    try:
        running = api.wait_for_pod(pod_id)
    except api.RunPodError as exc:
        raise type(exc)(f"{exc}{api.log_excerpt(pod_id)}") from None
    progress(f"{_who(pod_id, hostname)} is RUNNING after {_elapsed(began)}")
    if hostname:
        wait_online(pod_id, hostname, cursor, progress=progress)
        progress(f"{hostname} is online on the tailnet again after {_elapsed(began)}")
    return running


def wait_online(pod_id: str, hostname: str, since: str, *, progress: Progress = _quiet) -> None:
    """Follow the pod's log from `since` until the bootstrap reports the device online, within
    `timing.online_deadline`; the bootstrap giving up, or silence, is an error with the log."""
    deadline = time.monotonic() + session.timing.online_deadline
    cursor = since
    unreadable: api.RunPodError | None = None
    while True:
        try:
            for entry in api.pod_log_since(pod_id, cursor):
                if entry.ts == since:
                    continue  # the line the cursor names: from before the start
                cursor = entry.ts or cursor
                if ONLINE_MARKER in entry.line:
                    return
                if OFFLINE_MARKER in entry.line:
                    raise MachineOfflineError(
                        f"{_who(pod_id, hostname)} runs again, but its bootstrap could not bring "
                        f"it back onto the tailnet{api.log_excerpt(pod_id)}"
                    )
            unreadable = None
        except MachineOfflineError:
            raise
        except api.RunPodError as exc:
            unreadable = exc
        if time.monotonic() + session.timing.poll_interval > deadline:
            why = f" (its log could not be read: {unreadable})" if unreadable else ""
            raise MachineOfflineError(
                f"{_who(pod_id, hostname)} runs again, but its bootstrap did not report the "
                f"device online on the tailnet within {session.timing.online_deadline:g} s{why}"
                f"{api.log_excerpt(pod_id)}"
            )
        progress(f"waiting for {hostname} to come online on the tailnet ...")
        time.sleep(session.timing.poll_interval)


def stop_machine(pod_id: str, *, hostname: str | None, progress: Progress = _quiet) -> api.PodInfo:
    """Stop the pod (GPU released, volumes and tailnet identity kept); a stopped one stays so."""
    pod = api.get_pod(pod_id)
    if pod is None:
        raise api.RunPodNotFoundError(f"pod {pod_id} does not exist (any more)")
    if observed(pod) == STOPPED:
        return pod
    progress(f"stopping {_who(pod_id, hostname)}")
    api.stop_pod(pod_id)
    stopped = api.get_pod(pod_id)
    if stopped is None:
        raise api.RunPodNotFoundError(f"pod {pod_id} disappeared while stopping")
    return stopped


def unique_name(stack: str, hostname: str) -> str:
    """A machine's pod name, unique in the RunPod account: `<hostname>-<stack>`. The pod is
    found by it when its id is lost (adoption, migration) or not at hand (`coral start`)."""
    return f"{hostname}-{stack}"


def pods_by_name(names: Collection[str]) -> dict[str, tuple[api.PodInfo, ...]]:
    """The live pods carrying each of `names` (machines' unique names), from one listing of
    the account's pods: what a run reads once for all its machines."""
    found: dict[str, list[api.PodInfo]] = {name: [] for name in names}
    for pod in api.list_pods():
        if pod.name in found:
            found[pod.name].append(pod)
    return {name: tuple(pods) for name, pods in found.items()}


def requested_status(
    found: Sequence[api.PodInfo], hostname: str | None, progress: Progress = _quiet
) -> str:
    """What an `up` asks of a machine's pod, given the live pods carrying its unique name:
    "running", or `start (<state>)` when RunPod has it stopped, which the preview shows as the
    diff of `status` (and `progress` says). Several pods with the name ask for nothing: `up`
    keeps one of them (coral_infra/runpod/api.py)."""
    if len(found) != 1 or observed(found[0]) == RUNNING:
        return RUNNING
    pod = found[0]
    progress(
        f"will start {hostname or pod.name} ({observed(pod)}): pod {pod.id} is "
        f"{pod.status or pod.desired_status}; `up` starts the same pod, and its volume brings "
        "back the same tailnet device"
    )
    return start_request(observed(pod))
