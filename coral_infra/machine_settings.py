"""The RunPod side of a stack's settings: each machine (`coral:machines[]`: its pod, its
volume, its idle stop) and how the providers talk to RunPod (`coral:runpod`). Part of
`coral_infra.settings`, which reads and reports a whole stack."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from coral_infra.setting_values import (
    EnvName,
    Flag,
    Hostname,
    IdleText,
    MountPath,
    PlainText,
    Port,
    PositiveGb,
    SettingsModel,
    is_loopback_url,
    parse_duration_hours,
)
from coral_infra.workspace import WORKSPACE

IDLE_STOP_MINIMUM = "15m"
"""The shortest idleStop: a pod takes minutes to start again, and a shorter one stops between
two working sessions."""
SANDBOX_IDLE_STOP_MINIMUM_S = 10
"""The minimum when the RunPod API is on loopback (RUNPOD_API_BASE_URL), which only a local
stand-in is: lets the sandbox's tests watch an idle stop fire; never RunPod's own API."""


def idle_stop_minimum_seconds() -> int:
    """The shortest idleStop allowed: 15m, or 10s with a loopback RunPod API (a stand-in)."""
    if is_loopback_url(os.environ.get("RUNPOD_API_BASE_URL")):
        return SANDBOX_IDLE_STOP_MINIMUM_S
    return round(parse_duration_hours(IDLE_STOP_MINIMUM) * 3600)


class VolumeSettings(SettingsModel):
    """Where `/workspace` (and with it the tailnet identity) lives."""

    kind: Literal["network", "pod"] = "network"
    """'network': a network volume that outlives terminate and GPU changes (needs
    dataCenter); 'pod': the pod's own volume, lost on terminate (fine for dev)."""
    size_gb: PositiveGb = 50
    """Size in GB; a network volume can only grow."""
    mount_path: MountPath = WORKSPACE
    """Always `/workspace` (coral_infra/workspace.py says why); other paths are refused."""
    retain_on_destroy: Flag = False
    """Keep the network volume (and the identity) when the stack is destroyed."""

    @field_validator("retain_on_destroy")
    @classmethod
    def _only_network_volumes_outlive_the_pod(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("kind") == "pod":
            raise ValueError(
                "a pod volume (kind: pod) is deleted with its pod and cannot be retained; use "
                "kind: network (with dataCenter) to keep /workspace, or remove retainOnDestroy"
            )
        return value


class MachineSettings(SettingsModel):
    """One GPU pod that joins the tailnet under `hostname`."""

    hostname: Hostname = "coral-machine"
    """The machine's name on the tailnet (MagicDNS name, SSH host)."""
    image: PlainText = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
    """Container image. With bootstrap 'inject' any image with bash and curl or wget."""
    gpu_type: PlainText = "NVIDIA GeForce RTX 4090"
    """RunPod GPU type id."""
    gpu_count: int = Field(default=1, ge=1, le=8, strict=True)
    """GPUs on the pod: 1-8 (every coral machine is a GPU pod)."""
    cloud_type: Literal["SECURE", "COMMUNITY", "ALL"] = "SECURE"
    volume: VolumeSettings = Field(default_factory=VolumeSettings)
    data_center: PlainText | None = None
    """RunPod data center id, e.g. 'EU-RO-1'; required with a network volume."""
    container_disk_gb: PositiveGb = 20
    """The container's own disk, lost on every restart."""
    ports: list[Port] = Field(default_factory=list)
    """Ports RunPod exposes publicly. Empty by default: the tailnet reaches every port."""
    env: dict[EnvName, PlainText] = Field(default_factory=dict)
    """Extra environment for the container (not secrets: use RunPod secrets
    '{{ RUNPOD_SECRET_name }}' references for those). Names the bootstrap or the program own
    (TAILSCALE_AUTHKEY, TS_*, CORAL_*) are refused: each has its own setting."""
    bootstrap: Literal["inject", "image"] = "inject"
    """'inject': the start command brings Tailscale into a stock image; 'image': the image was
    built from coral_infra/bootstrap/Dockerfile and starts it itself."""
    userspace_networking: Flag | None = None
    """tailscaled without a TUN device (Tailscale's userspace networking): unset lets the
    bootstrap decide (kernel networking when /dev/net/tun exists); true where pods share a
    network namespace, as in the local sandbox."""
    idle_stop: IdleText | None = None
    """Stop the pod after this long without activity, e.g. '2h' (at least 15m); unset (the
    default): never. Activity is an open Tailscale SSH or sshd session, or GPU utilisation above
    10% (a training job). The pod stops itself through RunPod's API with its own pod-scoped
    key; the volume and the tailnet identity stay, and `pulumi up` or `coral start` brings the
    machine back. Decisions are logged to idle.log beside tailscaled.log."""

    @field_validator("idle_stop")
    @classmethod
    def _idle_stop_is_a_sane_duration(cls, value: str | None) -> str | None:
        if value is None:
            return value
        minimum = idle_stop_minimum_seconds()
        shown = IDLE_STOP_MINIMUM if minimum > SANDBOX_IDLE_STOP_MINIMUM_S else f"{minimum}s"
        try:
            seconds = parse_duration_hours(value) * 3600
        except ValueError:
            raise ValueError(
                f"got {value!r}; an idle time is a duration like '2h', '90m' or '1h30m' "
                "(remove idleStop to never stop the pod)"
            ) from None
        if seconds < minimum:
            raise ValueError(
                f"got {value!r}; the shortest idle stop is {shown}: a pod takes minutes to "
                "start again, and a shorter idle time stops it between two sessions"
            )
        return value

    @property
    def idle_stop_seconds(self) -> int | None:
        """`idleStop` in whole seconds, or None when the pod never stops itself."""
        if self.idle_stop is None:
            return None
        return round(parse_duration_hours(self.idle_stop) * 3600)

    @field_validator("data_center")
    @classmethod
    def _network_volume_needs_data_center(
        cls, value: str | None, info: ValidationInfo
    ) -> str | None:
        volume = info.data.get("volume")
        if value is None and isinstance(volume, VolumeSettings) and volume.kind == "network":
            raise ValueError(
                "missing; a network volume is bound to one data center: set dataCenter (e.g. "
                "'EU-RO-1') or use volume.kind: pod"
            )
        return value


class RunPodSettings(SettingsModel):
    """How the providers talk to RunPod (`coral:runpod`)."""

    api: Literal["v2", "graphql"] = "v2"
    """'v2' (default): RunPod's REST API v2. 'graphql': the API the runpod SDK speaks, which
    RunPod retires in early 2027; for a stack that must stay on it until then. Switching
    replaces and restarts nothing (coral_infra/runpod/api.py)."""
