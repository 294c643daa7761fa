"""A headscale double for the stand-in's unit tests: nodes and keys in the JSON shape
`headscale nodes list --output json` and `preauthkeys create` print (recorded from headscale
v0.29.2, the pinned version). The real headscale backs the stand-in in the conformance run
(tests/standin_apis/test_conformance.py), the integration and the e2e tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standins.tailscale_api import ApiError, HeadscaleCli

TAGGED_DEVICES_USER = {
    "id": 2147455555,
    "name": "tagged-devices",
    "created_at": {"seconds": -62135596800},
    "display_name": "Tagged Devices",
}


def recorded_node(
    node_id: int,
    hostname: str,
    *,
    tags: Sequence[str] = (),
    online: bool = True,
    ephemeral: bool = False,
    user: dict[str, Any] | None = None,
) -> dict[str, Any]:
    pre_auth_key: dict[str, Any] = {"id": node_id, "reusable": True, "acl_tags": list(tags)}
    if ephemeral:
        pre_auth_key["ephemeral"] = True
    node: dict[str, Any] = {
        "id": node_id,
        "machine_key": f"mkey:{node_id:064x}",
        "node_key": f"nodekey:{node_id:064x}",
        "ip_addresses": [f"100.64.0.{node_id}", f"fd7a:115c:a1e0::{node_id}"],
        "name": hostname,
        "user": user or TAGGED_DEVICES_USER,
        "last_seen": {"seconds": 1796139495, "nanos": 714199675},
        "pre_auth_key": pre_auth_key,
        "created_at": {"seconds": 1796139493, "nanos": 614305199},
        "register_method": 1,
        "given_name": hostname,
    }
    if online:
        node["online"] = True
    if tags:
        node["tags"] = list(tags)
    return node


@dataclass
class RecordedHeadscale(HeadscaleCli):
    binary: Path = Path("/nonexistent/headscale")
    config_path: Path = Path("/nonexistent/config.yaml")
    recorded: list[dict[str, Any]] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    keys_created: int = 0

    def json(self, *args: str) -> Any:
        raise AssertionError(f"unexpected headscale call {args}")

    def create_key(
        self, *, reusable: bool, ephemeral: bool, tags: Sequence[str], expiry_s: int
    ) -> dict[str, Any]:
        self.keys_created += 1
        key_id = self.keys_created
        return {"id": key_id, "key": f"hskey-auth-{key_id}-secret", "acl_tags": list(tags)}

    def expire_key(self, key_id: str) -> None:
        self.expired.append(key_id)

    def nodes(self) -> list[dict[str, Any]]:
        return [dict(n) for n in self.recorded]

    def tag_node(self, node_id: str, tags: Sequence[str]) -> None:
        for node in self.recorded:
            if str(node["id"]) == node_id:
                node["tags"] = list(tags)

    def delete_node(self, node_id: str) -> None:
        before = len(self.recorded)
        self.recorded = [n for n in self.recorded if str(n["id"]) != node_id]
        if len(self.recorded) == before:
            raise ApiError(500, f"headscale nodes delete: node {node_id} not found")
