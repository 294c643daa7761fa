"""coral-infra: settings -> tailnet (policy, tag, auth key) -> machines (volume, pod, device)."""

import pulumi

from coral_infra.machine import Machine, MachineArgs
from coral_infra.runpod.catalog import EngineConfig, checked_against_catalog
from coral_infra.settings import idle_stop_notes, load_from_engine
from coral_infra.tailnet import Tailnet, TailnetArgs

settings = load_from_engine()
# Before any resource: an unknown GPU type or data center stops here, even on --skip-preview.
catalog = checked_against_catalog(settings, EngineConfig())
for warning in catalog.warnings:
    pulumi.log.warn(warning)
for price in catalog.prices:
    pulumi.log.info(str(price))
for note in idle_stop_notes(settings):
    pulumi.log.warn(note)
stack = pulumi.get_stack()
tailnet = Tailnet(
    "tailnet",
    TailnetArgs(
        settings=settings.tailnet, stack=stack, hostnames=[m.hostname for m in settings.machines]
    ),
)
machines = [
    Machine(
        spec.hostname,
        MachineArgs(stack=stack, machine=spec, tailnet=settings.tailnet, auth_key=tailnet.auth_key),
    )
    for spec in settings.machines
]

pulumi.export("machineTag", settings.tailnet.machine_tag)
pulumi.export(
    "machines",
    {
        spec.hostname: {
            "podId": machine.pod_id,
            "deviceId": machine.device_id,
            "magicDnsName": machine.magic_dns_name,
            "tailscaleIps": machine.addresses,
            "sshConfig": machine.ssh_config,
        }
        for spec, machine in zip(settings.machines, machines, strict=True)
    },
)
pulumi.export("sshConfig", pulumi.Output.all(*(m.ssh_config for m in machines)).apply("\n".join))
