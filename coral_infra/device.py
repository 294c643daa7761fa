"""The pod's tailnet device: found once it joined, then pinned (tag, no key expiry, authorized).

Devices are found in one list of the tailnet's devices per run (`TailnetDevices`, taken once
every machine's pod exists), shared by every machine: a preview of N machines reads the
tailnet once, not twice per machine. Only a device that is not in that list yet (a pod this
run created, still joining) is waited for on its own (`get_device` with `wait_for`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_tailscale as tailscale


class StaleDeviceError(RuntimeError):
    """Another device holds the machine's name; the message says how to free it."""


class DeviceJoinError(RuntimeError):
    """The pod's device did not join the tailnet in time; the message ends with the pod's log."""


class TailnetDevices:
    """The tailnet's devices, listed once per run for every machine's Device.

    The real provider's `get_devices` lists the whole tailnet in one call (its name prefix is
    matched on that list) and `get_device` waits for one device: one list per run serves every
    machine whose device already joined. It is taken when the first Device asks, once every
    pod given to `after` has resolved (found unchanged, created, or unknown in a preview that
    would create it), so a device that joins during this run has had its pod made first, and
    a pod replaced by this run is listed after its replacement exists.
    """

    def __init__(self) -> None:
        self._pods: list[pulumi.Output[Any]] = []
        self._listing: asyncio.Future[dict[str, list[Any]]] | None = None

    def after(self, pod_id: pulumi.Input[str]) -> None:
        """The list waits for this pod (call it for every machine before any lookup runs: the
        program's components are all built before the engine answers the first one)."""
        self._pods.append(pulumi.Output.from_input(pod_id))

    async def claiming(self, hostname: str) -> list[Any]:
        """The devices (the provider's GetDevicesDeviceResult, in the tailnet's order) that
        have `hostname` or a name `stale_device_problem` counts as it: `<hostname>` or
        `<hostname>-<n>`. The tailnet is listed once; each machine reads its own part."""
        if self._listing is None:
            self._listing = asyncio.ensure_future(self._list())
        return list((await asyncio.shield(self._listing)).get(hostname, []))

    async def _list(self) -> dict[str, list[Any]]:
        # A pod that fails is its own machine's error (its Device never looks up): not ours.
        await asyncio.gather(
            *(pod.future(with_unknowns=True) for pod in self._pods), return_exceptions=True
        )
        listed = await tailscale.get_devices_output().future()
        by_name: dict[str, list[Any]] = {}
        for device in (listed.devices or []) if listed is not None else []:
            label = _listed(device).name.split(".")[0]
            names = {_listed(device).hostname, label, re.sub(r"-\d+$", "", label)}
            for name in names:
                by_name.setdefault(name, []).append(device)
        return by_name


@dataclass(frozen=True)
class DeviceArgs:
    """Which device to wait for and what it must carry."""

    hostname: str
    """The machine's hostname (`coral:machines[].hostname`), its name on the tailnet."""
    devices: TailnetDevices
    """The run's one list of the tailnet's devices, shared by every machine."""
    machine_tag: str
    """The stack's machine tag; the device keeps exactly this tag."""
    wait_for: str
    """How long to wait for the device to join (`coral:tailnet.deviceWait`, e.g. '5m')."""
    joined_after: pulumi.Input[str]
    """Something known only once the pod exists (its id): the lookup waits for it, and does
    not run in a preview that creates the pod (its id is unknown then)."""
    pod_log: Callable[[str], str] | None = None
    """Given `joined_after`'s value, the pod's last log lines: they end the error when the
    device does not join within `wait_for` (what the pod's bootstrap said about it)."""


@dataclass(frozen=True)
class _Listed:
    node_id: str
    name: str
    hostname: str
    last_seen: str


def _listed(device: Any) -> _Listed:
    return _Listed(
        node_id=device.node_id or device.id or "",
        name=device.name or "",
        hostname=device.hostname or "",
        last_seen=device.last_seen or "unknown",
    )


def stale_device_problem(hostname: str, found: Any, devices: Sequence[Any]) -> str | None:
    """Why the device found for `hostname` cannot be trusted as the pod, or None.

    A device that kept the name (an old pod whose state was lost) makes the pod join as
    `<hostname>-1`, and a lookup by hostname then returns whichever comes first
    (tailscale/tailscale#6733, #11527).
    """
    ours = _listed(found)
    same_name = re.compile(rf"^{re.escape(hostname)}(-\d+)?$")
    holders = [
        d
        for d in map(_listed, devices)
        if d.node_id != ours.node_id
        and (d.hostname == hostname or same_name.match(d.name.split(".")[0]))
    ]
    label = ours.name.split(".")[0]
    if label == hostname and not holders:
        return None
    others = "\n".join(
        f"  - {d.name or d.hostname} (id {d.node_id}, last seen {d.last_seen})" for d in holders
    )
    return (
        f"more than one tailnet device claims the name {hostname!r}: the device found is "
        f"{ours.name or ours.hostname!r} (id {ours.node_id})"
        + (f" and also:\n{others}" if others else "")
        + "\nA stale device (an earlier pod whose Tailscale state was lost) holds the name. "
        "Remove it in the admin console (Machines -> ... -> Remove) or run `tailscale logout` "
        f"on it; if the pod's device got the name '{hostname}-1', rename it back to "
        f"{hostname!r} there (Machines -> ... -> Edit machine name). Then run `pulumi up` again."
    )


class Device(pulumi.ComponentResource):
    """The pod's device on the tailnet, pinned so it stays reachable.

    Tagged devices already have key expiry disabled and a pre-authorized key authorizes them;
    the resources state it anyway so a manual change in the admin console is put back by the
    next `up`. Nothing here runs before the device joined: the lookup waits for
    `joined_after` and for `wait_for`, and fails with the fix when a stale device holds the
    name instead of pinning the wrong one.

    DeviceKey and DeviceTags are retained on delete, so neither `destroy` nor their replacement
    (the pod came back as a new device) calls the API for a device the stack leaves. Their
    provider's delete turns key expiry back on and removes every tag, and fails on any error:
    on a device already removed by hand (404), `pulumi destroy` would stop before deleting the
    pod, which keeps billing; removing all tags of a tags-only device may be refused ("Tags
    cannot be removed without reauthorizing the device as a user", the provider's own tests).
    Undoing them helps nobody: a pod on the retained volume comes back as this device and needs
    them again. The device stays on the tailnet until removed (docs/costs.md);
    DeviceAuthorization's delete makes no call.
    """

    device_id: pulumi.Output[str]
    magic_dns_name: pulumi.Output[str]
    addresses: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: DeviceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("coral:index:Device", name, None, opts)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        args.devices.after(args.joined_after)
        # Known only once the pod exists: a new pod's id is unknown in preview, so its device
        # is not looked up then; an existing pod's device is, so preview shows no changes.
        checked: pulumi.Output[Any] = pulumi.Output.from_input(args.joined_after).apply(
            lambda pod: self._joined(args, pod, invoke)
        )
        self.device_id = checked.apply(lambda d: _listed(d).node_id)
        self.magic_dns_name = checked.apply(lambda d: _listed(d).name.rstrip("."))
        self.addresses = checked.apply(lambda d: list(d.addresses or []))

        child = pulumi.ResourceOptions(parent=self)
        retained = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        tailscale.DeviceKey(
            f"{name}-key", device_id=self.device_id, key_expiry_disabled=True, opts=retained
        )
        tailscale.DeviceTags(
            f"{name}-tags", device_id=self.device_id, tags=[args.machine_tag], opts=retained
        )
        tailscale.DeviceAuthorization(
            f"{name}-authorization", device_id=self.device_id, authorized=True, opts=child
        )
        self.register_outputs(
            {
                "device_id": self.device_id,
                "magic_dns_name": self.magic_dns_name,
                "addresses": self.addresses,
            }
        )

    @staticmethod
    async def _joined(args: DeviceArgs, pod: str, invoke: pulumi.InvokeOutputOptions) -> Any:
        """The device with the machine's hostname, as `get_device` would take it (the first
        listed), from the run's list, else once it joined; refused when a stale device holds
        the name."""
        devices = await args.devices.claiming(args.hostname)
        found = next((d for d in devices if d.hostname == args.hostname), None)
        if found is None:
            found = await Device._waited(args, pod, invoke)
            devices = [*devices, found]
        problem = stale_device_problem(args.hostname, found, devices)
        if problem:
            raise StaleDeviceError(problem)
        return found

    @staticmethod
    async def _waited(
        args: DeviceArgs, pod: str, invoke: pulumi.InvokeOutputOptions
    ) -> tailscale.GetDeviceResult:
        """The device once it joined; if it does not within `wait_for`, the error says so with
        the pod's own log (its bootstrap says why: a rejected key, no route to the control
        plane, ...). A stale device would have been in the run's list: only the name the
        device joined under can still be wrong."""
        lookup = tailscale.get_device_output(
            hostname=args.hostname, wait_for=args.wait_for, opts=invoke
        )
        try:
            device = await lookup.future()
        except Exception as exc:
            if args.pod_log is None:
                raise
            log = await asyncio.to_thread(args.pod_log, pod)
            raise DeviceJoinError(
                f"the device {args.hostname!r} of pod {pod} did not join the tailnet within "
                f"{args.wait_for} ({exc}){log}"
            ) from None
        if device is None:  # the invoke's inputs are all known here, so is its result
            raise DeviceJoinError(f"the Tailscale provider returned no device {args.hostname!r}")
        return device
