"""coral-infra: settings -> tailnet (policy, tag, auth key) -> machines (volume, pod, device)."""

import gc

import pulumi

from coral_infra.device import TailnetDevices
from coral_infra.machine import Machine, MachineArgs, pod_name
from coral_infra.preflight import preflight_engine
from coral_infra.tailnet import TAILNET_NAME, Tailnet, TailnetArgs

# Evaluation makes many objects that live as long as this process (outputs, futures, pending
# registrations: a few hundred per machine) and little garbage. The cyclic collector's full
# passes scan all of them again and again, which made evaluation grow faster than linearly
# with the fleet (bench/evaluation.py). Young collections go on; full ones wait for the end of
# this process, which is one preview or one update.
gc.set_threshold(*gc.get_threshold()[:2], 1_000_000)

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
# One list of the tailnet's devices for the whole fleet, taken once every pod exists.
devices = TailnetDevices()
machines = [
    Machine(
        spec.hostname,
        MachineArgs(
            stack=plan.stack,
            machine=spec,
            tailnet=settings.tailnet,
            auth_key=tailnet.auth_key,
            devices=devices,
            live_pods=plan.pods.get(pod_name(plan.stack, spec), ()),
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
