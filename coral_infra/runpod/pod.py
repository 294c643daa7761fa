"""The RunPod pod as a Pulumi dynamic resource.

Why a dynamic provider: RunPod's own Pulumi provider has no Read (no refresh, no drift), ignores
GPU/volume changes in diff, keeps the token in the URL and env in plaintext, and retries
nothing. This one keeps every RunPod call in `api` (imported lazily there); check and diff stay
offline and fast.

Lifecycle decisions:
- Replace (delete first, then create: the name is unique): name, gpu_type_id, gpu_count,
  cloud_type, data_center_id, network_volume_id, volume_gb, volume_mount_path. These pick the
  host or the volume; RunPod cannot change them on a pod.
- Update in place (REST v2 `PATCH /v2/pods/{id}`, GraphQL `podEditJob`), which resets the
  container (same pod id, host and volumes, so tailscaled state on /workspace survives): image,
  container_disk_gb, ports, env, bootstrap_script, docker_args.
- Update in place with NO RunPod call: auth_key alone. The auth key only matters for the first
  login; afterwards tailscaled's persisted state on the volume authenticates the node, so a
  rotated key must never restart or replace the pod. The new value is only recorded (secret).
- The injected bootstrap (coral_infra/bootstrap: start.sh, and idle_stop.sh with the idle stop)
  is an input by its digest, `bootstrap_script`; this provider puts the files themselves into
  the pod's env when it creates or edits the pod, and a pod read back is compared by the digest
  of the files in its env. State and the program hold 71 characters per pod instead of the
  files (tens of kilobytes).
- Start, never replace, a stopped pod (`status`, see coral_infra/runpod/lifecycle.py): refresh
  records it as "stopped", the program asks for "start (stopped)" when the run's one listing of
  the account's pods finds it stopped, and the update starts it (same pod, host, volumes and
  tailnet identity). check and diff call no API: a preview makes no RunPod call here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from coral_infra import bootstrap
from coral_infra.runpod import api, lifecycle
from coral_infra.runpod.props import (
    changed_fields,
    check_int,
    has_control_chars,
    is_unknown,
    whole_number,
)

INPUTS = (
    "name",
    "image",
    "gpu_type_id",
    "gpu_count",
    "cloud_type",
    "data_center_id",
    "container_disk_gb",
    "volume_gb",
    "network_volume_id",
    "volume_mount_path",
    "ports",
    "env",
    "bootstrap_script",
    "auth_key",
    "docker_args",
    "status",
)
REPLACE_ON = (
    "name",
    "gpu_type_id",
    "gpu_count",
    "cloud_type",
    "data_center_id",
    "network_volume_id",
    "volume_gb",
    "volume_mount_path",
)
EDIT_ON = ("image", "container_disk_gb", "ports", "env", "bootstrap_script", "docker_args")
OUTPUTS = ("pod_id", "desired_status", "machine_id", "pod_host_id", "location", "cost_per_hr")

_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PORT_RE = re.compile(r"^([0-9]{1,5})/(tcp|http)$")
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")
_DIGEST_RE = re.compile(rf"^{bootstrap.DIGEST_PREFIX}[0-9a-f]{{64}}$")


@dataclass
class PodArgs:
    """Inputs of a RunPod pod."""

    name: pulumi.Input[str]
    """Unique pod name in the RunPod account: a pod whose id was lost is found again by it."""
    image: pulumi.Input[str]
    """Container image reference; changing it edits the pod in place (container reset)."""
    gpu_type_id: pulumi.Input[str]
    """RunPod GPU type id, e.g. "NVIDIA GeForce RTX 4090"; a change replaces the pod."""
    auth_key: pulumi.Input[str]
    """Tailscale auth key, sent as env TAILSCALE_AUTHKEY; secret. Changing only this never
    restarts or replaces the pod and calls no RunPod API."""
    gpu_count: pulumi.Input[int] = 1
    """GPUs attached to the pod; a change replaces the pod."""
    cloud_type: pulumi.Input[str] = "SECURE"
    """"SECURE", "COMMUNITY" or "ALL"; a change replaces the pod."""
    data_center_id: pulumi.Input[str] | None = None
    """RunPod data center, e.g. "EU-RO-1"; None lets RunPod choose (or follows the network
    volume). A change replaces the pod."""
    container_disk_gb: pulumi.Input[int] = 20
    """Container disk (wiped on every reset); changing it edits the pod in place."""
    volume_gb: pulumi.Input[int] = 0
    """Pod-local volume size; must be 0 when a network volume is used. A change replaces the
    pod (and loses the pod-local volume)."""
    network_volume_id: pulumi.Input[str] | None = None
    """Network volume mounted at volume_mount_path; a change replaces the pod."""
    volume_mount_path: pulumi.Input[str] = "/workspace"
    """Where the (network or pod-local) volume is mounted; a change replaces the pod."""
    ports: pulumi.Input[Sequence[pulumi.Input[str]]] = field(default_factory=list)
    """Exposed ports like ["2222/tcp", "11111/tcp"]; changing them edits the pod in place."""
    env: pulumi.Input[Mapping[str, pulumi.Input[str]]] = field(default_factory=dict)
    """Extra, non-secret environment variables; changing them edits the pod in place."""
    bootstrap_script: pulumi.Input[str] | None = None
    """`bootstrap.script_digest(...)` to inject coral_infra/bootstrap's start.sh (and the idle
    stop's idle_stop.sh; this provider adds them to the pod's env, `bootstrap.script_env_of`),
    None for an image that has them; a change (a new file) edits the pod in place."""
    docker_args: pulumi.Input[str] | None = None
    """Container start command override; changing it edits the pod in place."""
    status: pulumi.Input[str] = lifecycle.RUNNING
    """The run state asked for: "running", or `lifecycle.requested_status` of the pod as the
    run found it ("start (stopped)"): a stopped pod is started by `up`, never replaced; preview
    shows that as `status: ... => "start (stopped)"`."""


def _check_text(
    failures: list[dyn.CheckFailure], news: dict[str, Any], name: str, *, optional: bool
) -> None:
    value = news.get(name)
    if is_unknown(value) or (optional and value is None):
        return
    if not isinstance(value, str) or not value.strip() or has_control_chars(value):
        failures.append(
            dyn.CheckFailure(name, f"{name} must be a non-empty string without control characters")
        )


def _check_pod(news: dict[str, Any]) -> list[dyn.CheckFailure]:
    """Validate and normalise `news` in place; every failure names its field."""
    failures: list[dyn.CheckFailure] = []
    for name in ("name", "gpu_type_id", "volume_mount_path", "auth_key"):
        _check_text(failures, news, name, optional=False)
    _check_text(failures, news, "data_center_id", optional=True)
    image = news.get("image")
    if not is_unknown(image) and (not isinstance(image, str) or not _IMAGE_RE.match(image)):
        failures.append(
            dyn.CheckFailure("image", "image must be an image reference like 'ghcr.io/org/img:tag'")
        )
    path = news.get("volume_mount_path")
    if isinstance(path, str) and not is_unknown(path) and not path.startswith("/"):
        failures.append(dyn.CheckFailure("volume_mount_path", "volume_mount_path must be absolute"))
    if not is_unknown(news.get("cloud_type")) and news.get("cloud_type") not in api.CLOUD_TYPES:
        failures.append(
            dyn.CheckFailure(
                "cloud_type", f"cloud_type must be one of {', '.join(api.CLOUD_TYPES)}"
            )
        )
    check_int(failures, news, "gpu_count", 1)
    check_int(failures, news, "container_disk_gb", 1)
    check_int(failures, news, "volume_gb", 0)
    volume_id = news.get("network_volume_id")
    if volume_id is not None and not is_unknown(volume_id):
        if not isinstance(volume_id, str) or not api.ID_RE.match(volume_id):
            failures.append(
                dyn.CheckFailure(
                    "network_volume_id",
                    "network_volume_id must be a RunPod id (letters and digits, e.g. "
                    "'abc123' or 'vol_xyz')",
                )
            )
        elif news.get("volume_gb") not in (0, None):
            failures.append(
                dyn.CheckFailure("volume_gb", "volume_gb must be 0 when network_volume_id is set")
            )
    _check_ports(failures, news)
    _check_env(failures, news)
    digest = news.get("bootstrap_script")
    if not (digest is None or is_unknown(digest) or _DIGEST_RE.match(str(digest))):
        failures.append(
            dyn.CheckFailure(
                "bootstrap_script",
                f"bootstrap_script must be {bootstrap.DIGEST_PREFIX}<64 hex digits> "
                "(coral_infra.bootstrap.script_digest(...)) or unset",
            )
        )
    docker_args = news.get("docker_args")
    if docker_args is None:
        news["docker_args"] = ""
    elif not is_unknown(docker_args) and not isinstance(docker_args, str):
        failures.append(dyn.CheckFailure("docker_args", "docker_args must be a string"))
    status = news.get("status")
    if status is None:
        news["status"] = lifecycle.RUNNING
    elif status != lifecycle.RUNNING and not lifecycle.is_start_request(status):
        failures.append(
            dyn.CheckFailure(
                "status",
                f"status must be {lifecycle.RUNNING!r} (the run state asked for), or "
                f"{lifecycle.start_request(lifecycle.STOPPED)!r} for a pod found stopped",
            )
        )
    return failures


def _check_ports(failures: list[dyn.CheckFailure], news: dict[str, Any]) -> None:
    ports = news.get("ports")
    if is_unknown(ports):
        return
    if not isinstance(ports, list):
        failures.append(dyn.CheckFailure("ports", "ports must be a list like ['2222/tcp']"))
        return
    for port in ports:
        match = _PORT_RE.match(port) if isinstance(port, str) else None
        if match is None or not 1 <= int(match.group(1)) <= 65535:
            failures.append(
                dyn.CheckFailure(
                    "ports", f"port {port!r} must be '<1-65535>/tcp' or '<1-65535>/http'"
                )
            )
    if len(set(map(str, ports))) != len(ports):
        failures.append(dyn.CheckFailure("ports", "ports must not repeat"))


def _check_env(failures: list[dyn.CheckFailure], news: dict[str, Any]) -> None:
    env = news.get("env")
    if env is None:
        news["env"] = {}
        return
    if is_unknown(env):
        return
    if not isinstance(env, dict):
        failures.append(dyn.CheckFailure("env", "env must be a mapping of names to strings"))
        return
    for key, value in env.items():
        if not _ENV_KEY_RE.match(key):
            failures.append(
                dyn.CheckFailure("env", f"env name {key!r} must match [A-Za-z_][A-Za-z0-9_]*")
            )
        elif key == api.AUTH_KEY_ENV:
            failures.append(
                dyn.CheckFailure(
                    "env", f"env must not set {api.AUTH_KEY_ENV}: pass the key as auth_key (secret)"
                )
            )
        elif not is_unknown(value) and not isinstance(value, str):
            failures.append(dyn.CheckFailure("env", f"env {key} must be a string"))


def _inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    return {name: whole_number(props.get(name)) for name in INPUTS}


def _script_by_digest(props: Mapping[str, Any]) -> dict[str, Any]:
    """`props` with the bootstrap files its env carries named by their digest instead (a pod
    read back from RunPod, or state written when the program sent the script itself)."""
    env = props.get("env")
    if not isinstance(env, Mapping) or not any(name in env for name in bootstrap.SCRIPT_FILES):
        return dict(props)
    rest = {k: v for k, v in env.items() if k not in bootstrap.SCRIPT_FILES}
    return {**props, "env": rest, "bootstrap_script": bootstrap.digest_of_script_env(env)}


def _script_env(digest: Any) -> dict[str, str]:
    """The pod's env vars carrying the files that `digest` names (none without a digest)."""
    try:
        return bootstrap.script_env_of(digest)
    except ValueError as error:
        raise api.InvalidValueError(f"{error}: run `pulumi up` from one checkout") from None


def _spec(props: Mapping[str, Any]) -> api.PodSpec:
    inputs = _inputs(props)
    return api.PodSpec(
        name=inputs["name"],
        image=inputs["image"],
        gpu_type_id=inputs["gpu_type_id"],
        gpu_count=inputs["gpu_count"],
        cloud_type=inputs["cloud_type"],
        data_center_id=inputs["data_center_id"],
        container_disk_gb=inputs["container_disk_gb"],
        volume_gb=inputs["volume_gb"],
        network_volume_id=inputs["network_volume_id"],
        volume_mount_path=inputs["volume_mount_path"],
        ports=tuple(inputs["ports"] or ()),
        env={
            **(inputs["env"] or {}),
            **_script_env(inputs["bootstrap_script"]),
            api.AUTH_KEY_ENV: inputs["auth_key"],
        },
        docker_args=inputs["docker_args"] or "",
    )


def _outputs(inputs: Mapping[str, Any], pod: api.PodInfo) -> dict[str, Any]:
    return {
        **inputs,
        "status": lifecycle.observed(pod),
        "pod_id": pod.id,
        "desired_status": pod.desired_status,
        "machine_id": pod.machine_id,
        "pod_host_id": pod.pod_host_id,
        "location": pod.location,
        "cost_per_hr": pod.cost_per_hr,
    }


class PodProvider(dyn.ResourceProvider):
    """CRUD for a RunPod pod; holds no credentials (it is pickled into state)."""

    def configure(self, req: dyn.ConfigureRequest) -> None:
        api.configure_from_stack(req.config)

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        """Validate, offline: the program found out whether the pod runs (lifecycle)."""
        inputs = _inputs(news)
        return dyn.CheckResult(inputs, _check_pod(inputs))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        """Replace on host/volume fields; update on the rest, or to start a stopped pod."""
        olds = _script_by_digest(olds)
        replaces = changed_fields(olds, news, REPLACE_ON)
        fields = tuple(name for name in INPUTS if name != "status")
        changes = changed_fields(olds, news, fields) or _start_needed(olds, news)
        return dyn.DiffResult(
            changes=bool(changes),
            replaces=replaces,
            delete_before_replace=True if replaces else None,
        )

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        """Create (or adopt by name), then wait for RUNNING; never leave an untracked pod.

        A pod this call deployed that fails to start is terminated before raising, because a
        raising create loses the id (pulumi/pulumi#5210). An adopted pod is never terminated
        (its pod volume may hold someone's work): a stopped one is resumed, and one that does
        not start is left as it is, to be adopted again by the next `up`. Either way the error
        ends with the pod's last log lines.
        """
        spec = _spec(props)
        created = api.create_pod(spec)
        adopted = created.adopted
        if adopted is not None:
            _check_adoptable(spec, adopted)
            if lifecycle.observed(adopted) != lifecycle.RUNNING:
                _start(adopted.id, spec)
        try:
            pod = api.wait_for_pod(created.id)
        except api.RunPodError as exc:
            logs = api.log_excerpt(created.id)
            if adopted is not None:
                raise type(exc)(
                    f"{exc}; pod {created.id} existed before this `up` (adopted by its name "
                    f"{spec.name!r}) and was left as it is: start it in the RunPod console or "
                    f"terminate it, then run `pulumi up` again{logs}"
                ) from None
            raise _abandon(created.id, exc, logs) from None
        return dyn.CreateResult(pod.id, _outputs(_inputs(props), pod))

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        """Refresh: a gone pod reads as gone; a migrated pod (new id) is found by name.

        Returns inputs built from the live pod, so an unchanged pod shows no diff and real
        drift (image, env, ports, ...) shows as a change `up` will fix.
        """
        pod = api.get_pod(id_) or api.find_pod_by_name(str(props.get("name")))
        if pod is None:
            return dyn.ReadResult(None, {})
        live = {
            **_inputs(props),
            "status": lifecycle.observed(pod),
            "image": pod.image,
            # A stopped pod may report no GPU: it keeps its GPU count for its next start.
            "gpu_count": pod.gpu_count or whole_number(props.get("gpu_count")),
            "container_disk_gb": pod.container_disk_gb,
            "volume_gb": pod.volume_gb,
            "network_volume_id": pod.network_volume_id,
            "ports": list(pod.ports),
            "env": pod.env,
            "bootstrap_script": None,
            "docker_args": pod.docker_args,
        }
        live = _script_by_digest(live)
        if pod.gpu_type_id:
            live["gpu_type_id"] = pod.gpu_type_id
        if pod.volume_mount_path:
            live["volume_mount_path"] = pod.volume_mount_path
        return dyn.ReadResult(pod.id, _outputs(live, pod), live)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        """Edit the pod and/or start it when stopped; when only the auth key changed, record
        it with no API call."""
        inputs = _inputs(news)
        olds = _script_by_digest(olds)
        edit = bool(changed_fields(olds, news, EDIT_ON))
        if not edit and not _start_needed(olds, news):
            recorded = {k: olds.get(k) for k in OUTPUTS}
            return dyn.UpdateResult({**recorded, **inputs, "status": lifecycle.RUNNING})
        spec = _spec(news)
        if edit:
            api.edit_pod(id_, spec)
        live = api.get_pod(id_)
        if live is not None and lifecycle.observed(live) != lifecycle.RUNNING:
            # Stopped (out of band, or by its idle stop): an edit waits for the next start.
            return dyn.UpdateResult(_outputs(inputs, _start(id_, spec)))
        try:
            pod = live if live is not None and live.running else api.wait_for_pod(id_)
        except api.RunPodError as exc:
            raise type(exc)(
                f"{exc}; the pod was edited (its container restarted with the new settings)"
                f"{api.log_excerpt(id_)}"
            ) from None
        return dyn.UpdateResult(_outputs(inputs, pod))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Terminate; already gone is success. Then every live pod still carrying the stack's
        unique name goes too (the pod migrated to a new id, or a duplicate that a create applied
        late left behind): `destroy` leaves no billing pod under the name."""
        api.terminate_pod(id_)
        for pod in api.find_pods_by_name(str(props.get("name"))):
            api.terminate_pod(pod.id)


def _start_needed(olds: Mapping[str, Any], news: Mapping[str, Any]) -> bool:
    """The pod is (recorded or found) not running; state from before `status` counts as
    running."""
    return lifecycle.is_start_request(news.get("status")) or lifecycle.is_down(olds.get("status"))


def _start(pod_id: str, spec: api.PodSpec) -> api.PodInfo:
    """Start the stopped pod and wait until its device is online again (lifecycle)."""
    return lifecycle.start_machine(
        pod_id,
        hostname=spec.env.get(lifecycle.HOSTNAME_ENV),
        gpu_count=spec.gpu_count,
        progress=api.log.warning,
    )


def _check_adoptable(spec: api.PodSpec, pod: api.PodInfo) -> None:
    """A pod found by name is only ours to adopt when it is the pod this spec describes."""
    if not api.matches(spec, pod):
        raise api.RunPodRequestError(
            f"a pod named {spec.name!r} already exists ({pod.id}: {pod.gpu_type_id}, "
            f"{pod.image}) and does not match this spec; terminate it or choose another name"
        )


def _abandon(pod_id: str, cause: api.RunPodError, logs: str) -> api.RunPodError:
    try:
        api.terminate_pod(pod_id)
    except api.RunPodError as exc:
        return type(cause)(
            f"{cause}; terminating pod {pod_id} also failed ({exc}): terminate it in the "
            f"RunPod console{logs}"
        )
    return type(cause)(f"{cause}; pod {pod_id} was terminated so nothing is left running{logs}")


class Pod(dyn.Resource, module="runpod", name="Pod"):
    """A RunPod GPU pod; see the module docstring for what replaces and what updates."""

    pod_id: pulumi.Output[str]
    desired_status: pulumi.Output[str]
    machine_id: pulumi.Output[str]
    pod_host_id: pulumi.Output[str]
    location: pulumi.Output[str]
    cost_per_hr: pulumi.Output[float]
    auth_key: pulumi.Output[str]

    def __init__(
        self, resource_name: str, args: PodArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props: dict[str, Any] = {name: getattr(args, name) for name in INPUTS}
        props["auth_key"] = pulumi.Output.secret(args.auth_key)
        props.update({name: None for name in OUTPUTS})
        secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=["auth_key"])
        super().__init__(
            PodProvider(), resource_name, props, pulumi.ResourceOptions.merge(opts, secret_outputs)
        )
