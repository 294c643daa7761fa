"""coral-infra: settings -> tailnet (policy, tag, auth key) -> machines (volume, pod, device)."""

import pulumi

from coral_infra.machine import Machine, MachineArgs
from coral_infra.preflight import preflight_engine
from coral_infra.tailnet import TAILNET_NAME, Tailnet, TailnetArgs

# Every check before any resource: one report with every problem of the stack (preflight.py),
# so an unknown GPU type stops even `up --skip-preview` before a policy, key or volume exists.
plan = preflight_engine()
settings = plan.settings
for note in plan.notes:
    pulumi.log.info(note)
for warning in plan.warnings:
    pulumi.log.warn(warning)
for price in plan.prices:
    pulumi.log.info(str(price))
tailnet = Tailnet(
    TAILNET_NAME,
    TailnetArgs(
        settings=settings.tailnet,
        stack=plan.stack,
        hostnames=[m.hostname for m in settings.machines],
        policy=plan.policy,
        owner=plan.owner,
    ),
)
machines = [
    Machine(
        spec.hostname,
        MachineArgs(
            stack=plan.stack, machine=spec, tailnet=settings.tailnet, auth_key=tailnet.auth_key
        ),
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
            "sshCommand": machine.ssh_command,
        }
        for spec, machine in zip(settings.machines, machines, strict=True)
    },
)
pulumi.export("sshConfig", pulumi.Output.all(*(m.ssh_config for m in machines)).apply("\n".join))
