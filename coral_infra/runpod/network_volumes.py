"""Network volumes: the storage that outlives pods, where a machine keeps its tailnet identity.

A second concept beside the pods in `api`, with its own guarantees: a volume is unique by its
name within a data center, so a create adopts the volume already there (one kept by
`retain_on_delete` after a destroy, or one a lost create made), several found under the name
are settled on the one a pod uses (a volume in use is never deleted), and a delete of one
already gone counts as done. `api` re-exports these operations: the providers still import
only `api`.
"""

from __future__ import annotations

import contextlib

from coral_infra.runpod import listing, session
from coral_infra.runpod.lost_creates import await_late, may_exist, warn
from coral_infra.runpod.model import VolumeInfo
from coral_infra.runpod.session import (
    RunPodError,
    RunPodNotFoundError,
    RunPodRequestError,
    RunPodUnavailableError,
    check_id,
    check_int,
    check_text,
)


def list_volumes() -> list[VolumeInfo]:
    """All network volumes of the account, listed now."""
    return listing.volumes.fresh()


def get_volume(volume_id: str) -> VolumeInfo | None:
    check_id(volume_id, "network volume id")
    wire = session.wire()
    return session.run("get network volume", lambda: wire.get_volume(volume_id))


def _volumes_named(name: str, data_center_id: str, *, recent: bool = False) -> list[VolumeInfo]:
    volumes = listing.volumes.recent() if recent else listing.volumes.fresh()
    return [v for v in volumes if v.name == name and v.data_center_id == data_center_id]


def find_volume_by_name(name: str, data_center_id: str) -> VolumeInfo | None:
    found = _volumes_named(name, data_center_id)
    if len(found) > 1:
        raise RunPodRequestError(
            f"more than one network volume named {name!r} in {data_center_id}: "
            f"{', '.join(v.id for v in found)}; delete the extra ones in the RunPod console"
        )
    return found[0] if found else None


def _keep_one_volume(volumes: list[VolumeInfo], prefer: str | None = None) -> VolumeInfo:
    """Of several volumes with the stack's unique name, keep the one a pod uses (else the
    largest); the others are deleted unless a pod uses them, and a warning says so."""
    if len(volumes) == 1:
        return volumes[0]
    in_use = {p.network_volume_id for p in listing.pods.fresh()}
    kept = sorted(volumes, key=lambda v: (v.id != prefer, v.id not in in_use, -v.size_gb, v.id))[0]
    for extra in volumes:
        if extra.id == kept.id:
            continue
        if extra.id in in_use:
            warn(
                f"network volume {extra.id} also carries the name {kept.name!r} and a pod uses "
                f"it: left as it is (the stack uses {kept.id})"
            )
            continue
        try:
            delete_volume(extra.id)
            warn(
                f"{len(volumes)} network volumes carried the name {kept.name!r}: kept {kept.id} "
                f"and deleted the duplicate {extra.id}"
            )
        except RunPodError as exc:
            warn(
                f"duplicate network volume {extra.id} could not be deleted ({exc}): delete it "
                "in the RunPod console"
            )
    return kept


def create_volume(name: str, size_gb: int, data_center_id: str) -> VolumeInfo:
    """Create a network volume, or adopt the one with this name in this data center.

    Adoption also brings back a volume kept by `retain_on_delete` after a destroy; a create
    whose outcome is unknown is looked for by name before it is sent again.
    """
    check_text(name, "name")
    check_int(size_gb, "size_gb", 1)
    check_text(data_center_id, "data_center_id")
    wire = session.wire()
    existing = _volumes_named(name, data_center_id, recent=True)
    if existing:
        return _keep_one_volume(existing)
    uncertain = False

    def recover() -> VolumeInfo | None:
        nonlocal uncertain
        uncertain = True
        found = await_late(lambda: _volumes_named(name, data_center_id))
        return _keep_one_volume(found) if found else None

    try:
        created = session.with_retries(
            "create network volume",
            lambda: wire.create_volume(name, size_gb, data_center_id),
            recover=recover,
        )
    except RunPodUnavailableError as exc:
        if exc.maybe_applied or uncertain:
            where = f" in {data_center_id}"
            raise RunPodUnavailableError(
                f"{exc}; {may_exist('network volume', name, where)}", maybe_applied=True
            ) from None
        raise
    if not uncertain:
        return created
    found = _volumes_named(name, data_center_id)
    return _keep_one_volume(found, prefer=created.id) if len(found) > 1 else created


def update_volume(volume_id: str, *, name: str, size_gb: int) -> VolumeInfo:
    """Rename and/or grow a network volume (RunPod cannot shrink one)."""
    check_id(volume_id, "network volume id")
    check_text(name, "name")
    check_int(size_gb, "size_gb", 1)
    wire = session.wire()
    return session.run(
        "update network volume", lambda: wire.update_volume(volume_id, name, size_gb)
    )


def delete_volume(volume_id: str) -> None:
    """Delete a network volume; one already gone counts as success."""
    check_id(volume_id, "network volume id")
    wire = session.wire()

    def gone() -> bool | None:
        return False if get_volume(volume_id) is None else None

    with contextlib.suppress(RunPodNotFoundError):
        session.with_retries(
            "delete network volume", lambda: wire.delete_volume(volume_id), recover=gone
        )
    listing.volumes.drop(volume_id)
