"""The yardstick: a plain Pulumi program registering what `__main__.py` registers, written the
obvious way, with nothing of ours (no settings models, pre-flight, policy rendering, bootstrap).

It reads the same `coral:machines` config and registers, as the real program did when issue 14
measured it (tests/test_bench.py checks the resource counts against the real program):
- per run: a Tailnet component, a getAcl invoke and the TailnetKey, two stack exports;
- per machine: a Machine and a Device component; a PodName and a Pod dynamic resource (a
  provider that does nothing, pickled like any dynamic provider), with the pod's inputs as
  plain values (its env without the bootstrap script); the device's getDevice and getDevices
  invokes; DeviceKey, DeviceTags and DeviceAuthorization.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi.dynamic as dyn
import pulumi_tailscale as tailscale


class NothingProvider(dyn.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        return dyn.CreateResult(str(props.get("name")), props)


POD_OUTPUTS = ("pod_id", "desired_status", "machine_id", "pod_host_id", "location", "cost_per_hr")


class PodName(dyn.Resource, module="runpod", name="PodName"):
    def __init__(self, name: str, value: str, opts: pulumi.ResourceOptions) -> None:
        super().__init__(NothingProvider(), name, {"name": value}, opts)


class Pod(dyn.Resource, module="runpod", name="Pod"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        super().__init__(NothingProvider(), name, props, opts)


def machine(spec: dict[str, Any], auth_key: pulumi.Output[str]) -> dict[str, pulumi.Output[Any]]:
    host = spec["hostname"]
    component = pulumi.ComponentResource("coral:index:Machine", host, {})
    child = pulumi.ResourceOptions(parent=component)
    claim = PodName(f"{host}-pod-name", f"{host}-dev", child)
    pod = Pod(
        f"{host}-pod",
        {
            "name": f"{host}-dev",
            "image": spec.get("image", "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"),
            "gpu_type_id": spec["gpuType"],
            "gpu_count": spec.get("gpuCount", 1),
            "cloud_type": spec.get("cloudType", "SECURE"),
            "data_center_id": spec.get("dataCenter"),
            "container_disk_gb": spec.get("containerDiskGb", 20),
            "volume_gb": spec["volume"]["sizeGb"],
            "network_volume_id": None,
            "volume_mount_path": "/workspace",
            "ports": [],
            "env": {"TS_HOSTNAME": host, "TS_STATE_DIR": "/workspace/deps/runtime/tailscale"},
            "auth_key": pulumi.Output.secret(auth_key),
            "docker_args": "",
            "status": "running",
            **dict.fromkeys(POD_OUTPUTS),
        },
        pulumi.ResourceOptions(parent=component, depends_on=[claim]),
    )
    device = pulumi.ComponentResource("coral:index:Device", f"{host}-device", {}, child)
    invoke = pulumi.InvokeOutputOptions(parent=device)
    found: pulumi.Output[tailscale.GetDeviceResult] = pod.id.apply(
        lambda _: tailscale.get_device_output(hostname=host, wait_for="5m", opts=invoke)
    )
    listed = tailscale.get_devices_output(name_prefix=found.apply(lambda _: host), opts=invoke)
    device_id = pulumi.Output.all(found, listed).apply(lambda pair: pair[0].node_id)
    in_device = pulumi.ResourceOptions(parent=device)
    tailscale.DeviceKey(
        f"{host}-device-key", device_id=device_id, key_expiry_disabled=True, opts=in_device
    )
    tailscale.DeviceTags(
        f"{host}-device-tags", device_id=device_id, tags=["tag:coral-dev"], opts=in_device
    )
    tailscale.DeviceAuthorization(
        f"{host}-device-authorization", device_id=device_id, authorized=True, opts=in_device
    )
    dns_name = found.apply(lambda d: (d.name or "").rstrip("."))
    device.register_outputs({"device_id": device_id})
    component.register_outputs({"pod_id": pod.id})
    return {
        "podId": pod.id,
        "deviceId": device_id,
        "magicDnsName": dns_name,
        "sshConfig": dns_name.apply(lambda fqdn: f"Host {host}\n    HostName {fqdn}\n"),
    }


def program() -> None:
    machines = pulumi.Config("coral").require_object("machines")
    tailnet = pulumi.ComponentResource("coral:index:Tailnet", "tailnet", {})
    live = tailscale.get_acl_output(opts=pulumi.InvokeOutputOptions(parent=tailnet))
    key = tailscale.TailnetKey(
        "tailnet-auth-key",
        reusable=True,
        ephemeral=False,
        preauthorized=True,
        tags=live.apply(lambda _: ["tag:coral-dev"]),
        expiry=30 * 86_400,
        description="coral dev machine",
        recreate_if_invalid="always",
        opts=pulumi.ResourceOptions(parent=tailnet),
    )
    auth_key: pulumi.Output[str] = pulumi.Output.secret(key.key)
    tailnet.register_outputs({"auth_key": auth_key})
    outputs = {spec["hostname"]: machine(spec, auth_key) for spec in machines}
    pulumi.export("machines", outputs)
    pulumi.export(
        "sshConfig", pulumi.Output.all(*(o["sshConfig"] for o in outputs.values())).apply("".join)
    )
