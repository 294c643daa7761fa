"""The RunPod network volume as a Pulumi dynamic resource.

The volume holds /workspace (tailscaled state, models) across pod replacements. Decisions:
- size_gb can only grow (RunPod cannot shrink a volume): a smaller value is a check error,
  before anything is sent. Growing and renaming are in-place updates.
- data_center_id change replaces the volume (a volume is bound to its data center).
- create adopts a volume with the same name in the same data center, so a volume kept by
  `retain_on_delete` on destroy is picked up again by the next `up`, data intact.
- delete is idempotent: a volume already gone is success.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from coral_infra.runpod import api
from coral_infra.runpod.props import (
    changed_fields,
    check_int,
    has_control_chars,
    is_unknown,
    whole_number,
)

INPUTS = ("name", "data_center_id", "size_gb")
OUTPUTS = ("volume_id",)


@dataclass
class NetworkVolumeArgs:
    """Inputs of a RunPod network volume."""

    name: pulumi.Input[str]
    """Volume name, unique per data center: an existing volume with it is adopted."""
    data_center_id: pulumi.Input[str]
    """RunPod data center, e.g. "EU-RO-1"; pods using the volume run there. A change
    replaces the volume (and loses its data unless retained)."""
    size_gb: pulumi.Input[int]
    """Size in GB; can only grow."""


def _inputs(props: dict[str, Any]) -> dict[str, Any]:
    return {name: whole_number(props.get(name)) for name in INPUTS}


def _outputs(volume: api.VolumeInfo) -> dict[str, Any]:
    return {
        "name": volume.name,
        "data_center_id": volume.data_center_id,
        "size_gb": volume.size_gb,
        "volume_id": volume.id,
    }


class NetworkVolumeProvider(dyn.ResourceProvider):
    """CRUD for a RunPod network volume; holds no credentials (it is pickled into state)."""

    def configure(self, req: dyn.ConfigureRequest) -> None:
        api.configure_from_stack(req.config)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        inputs = _inputs(news)
        failures: list[dyn.CheckFailure] = []
        for name in ("name", "data_center_id"):
            value = inputs[name]
            if not is_unknown(value) and (
                not isinstance(value, str) or not value.strip() or has_control_chars(value)
            ):
                failures.append(
                    dyn.CheckFailure(
                        name, f"{name} must be a non-empty string without control characters"
                    )
                )
        check_int(failures, inputs, "size_gb", 1)
        old_size = whole_number(olds.get("size_gb"))
        if (
            isinstance(old_size, int)
            and isinstance(inputs["size_gb"], int)
            and inputs["size_gb"] < old_size
            and olds.get("data_center_id") == inputs["data_center_id"]
        ):
            failures.append(
                dyn.CheckFailure(
                    "size_gb",
                    f"size_gb can only grow: the volume has {old_size} GB, {inputs['size_gb']} "
                    "GB was asked (RunPod cannot shrink a network volume)",
                )
            )
        return dyn.CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        replaces = changed_fields(olds, news, ("data_center_id",))
        return dyn.DiffResult(changes=bool(changed_fields(olds, news, INPUTS)), replaces=replaces)

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        inputs = _inputs(props)
        volume = api.create_volume(inputs["name"], inputs["size_gb"], inputs["data_center_id"])
        if volume.size_gb < inputs["size_gb"]:  # an adopted volume smaller than asked grows
            volume = api.update_volume(volume.id, name=volume.name, size_gb=inputs["size_gb"])
        return dyn.CreateResult(volume.id, _outputs(volume))

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        volume = api.get_volume(id_)
        if volume is None:
            return dyn.ReadResult(None, {})
        outputs = _outputs(volume)
        return dyn.ReadResult(volume.id, outputs, {name: outputs[name] for name in INPUTS})

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        inputs = _inputs(news)
        volume = api.update_volume(id_, name=inputs["name"], size_gb=inputs["size_gb"])
        return dyn.UpdateResult(_outputs(volume))

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        api.delete_volume(id_)


class NetworkVolume(dyn.Resource, module="runpod", name="NetworkVolume"):
    """A RunPod network volume; see the module docstring for what replaces and what updates."""

    volume_id: pulumi.Output[str]
    name: pulumi.Output[str]
    data_center_id: pulumi.Output[str]
    size_gb: pulumi.Output[int]

    def __init__(
        self,
        resource_name: str,
        args: NetworkVolumeArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {name: getattr(args, name) for name in INPUTS}
        props.update({name: None for name in OUTPUTS})
        super().__init__(NetworkVolumeProvider(), resource_name, props, opts)
