"""Tailscale's device JSON for a headscale node, and the device list's filters.

The shape is the default field set of publicapi/device.md and of the Go client's Device type
(tailscale.com/client/tailscale/v2, devices.go and testdata/devices.json): `lastSeen` only
while the device is not connected to control, `tags` only when it has some, `isEphemeral`
always. What headscale has no notion of (key expiry disabled, authorization, tags removed
through the API) is the stand-in's DeviceSettings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from standins.tailscale_api_wire import iso

# The device attributes the list filters may name (the JSON fields of a device).
DEVICE_FILTERS = frozenset(
    {"addresses", "authorized", "blocksIncomingConnections", "clientVersion", "hostname"}
    | {"id", "isEphemeral", "isExternal", "keyExpiryDisabled", "name", "nodeId", "os", "tags"}
    | {"connectedToControl", "updateAvailable", "user"}
)


@dataclass
class DeviceSettings:
    key_expiry_disabled: bool | None = None
    """None until set through the API: tagged devices have key expiry disabled by default."""
    authorized: bool = True
    untagged: bool = False


def _time(stamp: Mapping[str, Any] | None) -> str:
    return iso(datetime.fromtimestamp(int((stamp or {}).get("seconds", 0)), UTC))


def device_view(node: Mapping[str, Any], settings: DeviceSettings, domain: str) -> dict[str, Any]:
    """The API's device for a node of `headscale nodes list --output json`."""
    tags = [] if settings.untagged else list(node.get("tags") or [])
    online = bool(node.get("online"))
    user = node.get("user") or {}
    key_expiry_disabled = settings.key_expiry_disabled
    view: dict[str, Any] = {
        "id": str(node["id"]),
        "nodeId": f"n{node['id']}CNTRL",
        "name": f"{node.get('given_name') or node.get('name')}.{domain}",
        "hostname": node.get("name", ""),
        "addresses": list(node.get("ip_addresses") or []),
        "authorized": settings.authorized,
        "user": "tagged-devices" if tags else str(user.get("email") or user.get("name")),
        # Tagged devices have key expiry disabled by default (Tailscale's rule).
        "keyExpiryDisabled": bool(tags) if key_expiry_disabled is None else key_expiry_disabled,
        "blocksIncomingConnections": False,
        "clientVersion": "",
        "created": _time(node.get("created_at")),
        "expires": "0001-01-01T00:00:00Z",
        "connectedToControl": online,
        "isEphemeral": bool((node.get("pre_auth_key") or {}).get("ephemeral")),
        "isExternal": False,
        "machineKey": node.get("machine_key", ""),
        "nodeKey": node.get("node_key", ""),
        "os": "linux",
        "tailnetLockError": "",
        "tailnetLockKey": "",
        "updateAvailable": False,
    }
    if tags:
        view["tags"] = tags
    if not online:
        view["lastSeen"] = _time(node.get("last_seen"))
    return view


def matches(device: Mapping[str, Any], filters: Mapping[str, list[str]]) -> bool:
    """Each filtered attribute equals (a list: contains) one of its permitted values."""
    for name, permitted in filters.items():
        value = device.get(name, [] if name == "tags" else "")
        values = value if isinstance(value, list) else [value]
        shown = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
        if not set(shown) & set(permitted):
            return False
    return True
