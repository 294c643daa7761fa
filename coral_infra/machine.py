"""One coral machine: its network volume, its pod and, once the pod joined, its tailnet device.

The order is the seed's: the tailnet's auth key goes into the pod's env, the pod boots and its
bootstrap logs in with that key (first start only), and only then is the device looked up and
its settings applied. What the pod is made of is a pure function of settings (`pod_spec`), so
the offline render and `pulumi up` describe the same pod.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from coral_infra import bootstrap
from coral_infra.device import Device, DeviceArgs, TailnetDevices
from coral_infra.runpod import (
    NetworkVolume,
    NetworkVolumeArgs,
    Pod,
    PodArgs,
    PodName,
    api,
    lifecycle,
)
from coral_infra.settings import MachineSettings, TailnetSettings
from coral_infra.ssh_config import ssh_command, ssh_config_block
from coral_infra.workspace import STATE_SUBDIR


def pod_name(stack: str, machine: MachineSettings) -> str:
    """Unique per stack and hostname: the pod provider finds (adopts) a pod by this name when
    a create's response was lost, so two stacks must never share one."""
    return lifecycle.unique_name(stack, machine.hostname)


def state_dir(machine: MachineSettings) -> str:
    """Where tailscaled keeps its identity: on the volume, so it survives restarts."""
    return f"{machine.volume.mount_path.rstrip('/')}/{STATE_SUBDIR}"


def pod_spec(
    stack: str,
    machine: MachineSettings,
    login_server: str | None = None,
    runpod_api_url: str | None = None,
) -> dict[str, Any]:
    """The pod's inputs except the auth key and the network volume id (both known only
    during `up`). `runpod_api_url`: the stack's RunPod API when it is not RunPod's own (the
    sandbox), for the idle stop in the pod. An injected bootstrap is named by its digest (with
    the idle stop's watcher when it is on): the pod provider puts the files into the pod's env
    (coral_infra/bootstrap)."""
    inject = machine.bootstrap == "inject"
    env = {
        **machine.env,
        **bootstrap.pod_env(
            hostname=machine.hostname,
            state_dir=state_dir(machine),
            include_script=False,
            userspace=machine.userspace_networking,
            extra_up_args=[f"--login-server={login_server}"] if login_server else (),
            idle_stop_seconds=machine.idle_stop_seconds,
            runpod_api_url=runpod_api_url,
        ),
    }
    return {
        "name": pod_name(stack, machine),
        "image": machine.image,
        "gpu_type_id": machine.gpu_type,
        "gpu_count": machine.gpu_count,
        "cloud_type": machine.cloud_type,
        "data_center_id": machine.data_center,
        "container_disk_gb": machine.container_disk_gb,
        "volume_gb": machine.volume.size_gb if machine.volume.kind == "pod" else 0,
        "volume_mount_path": machine.volume.mount_path,
        "ports": list(machine.ports),
        "env": env,
        "bootstrap_script": (
            bootstrap.script_digest(idle_stop=machine.idle_stop_seconds is not None)
            if inject
            else None
        ),
        "docker_args": bootstrap.start_command() if inject else None,
    }


def network_volume_spec(stack: str, machine: MachineSettings) -> dict[str, Any] | None:
    """The network volume holding `/workspace`, or None for a pod-local volume."""
    if machine.volume.kind != "network":
        return None
    return {
        "name": f"{pod_name(stack, machine)}-workspace",
        "data_center_id": machine.data_center,
        "size_gb": machine.volume.size_gb,
    }


@dataclass
class MachineArgs:
    """Inputs of one coral machine."""

    stack: str
    """The stack name; part of the pod's unique name."""
    machine: MachineSettings
    """What the pod is: image, GPU, volume, env, bootstrap mode."""
    tailnet: TailnetSettings
    """The tag, device wait time and SSH login user of this stack's tailnet side."""
    auth_key: pulumi.Input[str]
    """The tailnet auth key (secret) the pod logs in with on its first start."""
    devices: TailnetDevices
    """The run's one list of the tailnet's devices, shared by every machine of the stack."""
    live_pods: tuple[api.PodInfo, ...] = ()
    """The live pods carrying the pod's unique name, as the run's one listing of RunPod's pods
    found them (coral_infra/preflight.py): a stopped one is started, never replaced."""


class Machine(pulumi.ComponentResource):
    """A GPU pod on RunPod that is `hostname` on the tailnet, with its identity on a volume."""

    pod_id: pulumi.Output[str]
    device_id: pulumi.Output[str]
    magic_dns_name: pulumi.Output[str]
    addresses: pulumi.Output[list[str]]
    ssh_config: pulumi.Output[str]
    ssh_command: pulumi.Output[str]

    def __init__(
        self, name: str, args: MachineArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("coral:index:Machine", name, {}, opts)
        machine = args.machine
        child = pulumi.ResourceOptions(parent=self)

        volume_spec = network_volume_spec(args.stack, machine)
        network_volume_id: pulumi.Input[str] | None = None
        if volume_spec is not None:
            volume = NetworkVolume(
                f"{name}-workspace",
                NetworkVolumeArgs(**volume_spec),
                pulumi.ResourceOptions(
                    parent=self, retain_on_delete=machine.volume.retain_on_destroy
                ),
            )
            network_volume_id = volume.id

        # Held before the pod exists and released after it is gone: `destroy` terminates any
        # pod with the name, even one a failed create left out of state (runpod/pod_name.py).
        claim = PodName(f"{name}-pod-name", pod_name(args.stack, machine), child)
        status = lifecycle.requested_status(
            args.live_pods, machine.hostname, progress=lambda note: pulumi.log.warn(note, self)
        )
        runpod_api = api.base_url()
        pod = Pod(
            f"{name}-pod",
            PodArgs(
                **pod_spec(
                    args.stack,
                    machine,
                    args.tailnet.login_server,
                    None if runpod_api == api.DEFAULT_BASE_URL else runpod_api,
                ),
                network_volume_id=network_volume_id,
                auth_key=pulumi.Output.secret(args.auth_key),
                status=status,
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[claim]),
        )
        device = Device(
            f"{name}-device",
            DeviceArgs(
                hostname=machine.hostname,
                devices=args.devices,
                machine_tag=args.tailnet.machine_tag,
                wait_for=args.tailnet.device_wait,
                joined_after=pod.id,
                pod_log=api.log_excerpt,
            ),
            child,
        )

        self.pod_id = pod.id
        self.device_id = device.device_id
        self.magic_dns_name = device.magic_dns_name
        self.addresses = device.addresses
        user = args.tailnet.ssh.login_user
        self.ssh_config = device.magic_dns_name.apply(
            lambda fqdn: ssh_config_block(machine.hostname, fqdn, user)
        )
        self.ssh_command = device.magic_dns_name.apply(lambda fqdn: ssh_command(user, fqdn))
        self.register_outputs(
            {
                "pod_id": self.pod_id,
                "device_id": self.device_id,
                "magic_dns_name": self.magic_dns_name,
                "addresses": self.addresses,
                "ssh_config": self.ssh_config,
                "ssh_command": self.ssh_command,
            }
        )
