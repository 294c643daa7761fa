"""coral-infra: settings -> tailnet (policy, tag, auth key) -> machines (volume, pod, device)."""

import pulumi

from coral_infra.machine import Machine, MachineArgs
from coral_infra.settings import load_from_engine
from coral_infra.tailnet import Tailnet, TailnetArgs

settings = load_from_engine()
stack = pulumi.get_stack()
tailnet = Tailnet("tailnet", TailnetArgs(settings=settings.tailnet, stack=stack))
machines = {
    spec.hostname: Machine(
        spec.hostname,
        MachineArgs(stack=stack, machine=spec, tailnet=settings.tailnet, auth_key=tailnet.auth_key),
    )
    for spec in settings.machines
}

pulumi.export("machineTag", settings.tailnet.machine_tag)
for hostname, machine in machines.items():
    pulumi.export(f"{hostname}.podId", machine.pod_id)
    pulumi.export(f"{hostname}.deviceId", machine.device_id)
    pulumi.export(f"{hostname}.magicDnsName", machine.magic_dns_name)
    pulumi.export(f"{hostname}.tailscaleIps", machine.addresses)
pulumi.export(
    "sshConfig", pulumi.Output.all(*(m.ssh_config for m in machines.values())).apply("\n".join)
)
