"""What each pulumi-tailscale resource and function means, as the real provider does it: the
input defaults, the checks and the inputs that replace a resource, and how each is written,
read and deleted through the Tailscale API v2 (paths and bodies as in
tailscale.com/client/tailscale/v2, which the Terraform provider uses):

  Acl                  POST /tailnet/{t}/acl (If-Match "ts-default" on create unless
                       overwriteExistingContent); read GET acl as HuJSON; delete resets (an
                       empty policy) only when asked
  TailnetKey           POST/GET/DELETE /tailnet/{t}/keys; all inputs but recreateIfInvalid
                       replace; a key read back invalid (or 404) stays in state marked
                       invalid, and its diff plans a replacement as recreateIfInvalid says
  DeviceKey            POST /device/{id}/key {"keyExpiryDisabled"}
  DeviceTags           POST /device/{id}/tags {"tags"}
  DeviceAuthorization  POST /device/{id}/authorized {"authorized"}
  DnsPreferences       POST /tailnet/{t}/dns/preferences {"magicDNS"}
  getDevice            GET /tailnet/{t}/devices?hostname= (or ?name=), the first device
  getDevices / getAcl  GET /tailnet/{t}/devices (name prefix matched here) / acl as HuJSON

A delete that fails reports the provider's own diagnostic, "summary: detail", as the bridge
does; only TailnetKey's delete ignores a 404 (a device gone fails DeviceKey's and DeviceTags').
The calls themselves and those diagnostics are in standins/tailscale_api_client.py.
docs/tailscale-api-conformance.md compares each with the real provider's source.

Apart from the gRPC servicer (standins/pulumi_tailscale_provider.py) because that is Pulumi's
provider protocol, the same for every resource; here each resource kind is plain functions of
plain values and an API client, so what it does reads in one place, as the real provider's
resource_*.go and data_source_*.go files do.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from coral_infra import hujson
from standins.tailscale_api_client import ApiError, Client, Diagnostic, delete_failed

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""The engine's marker for a value not known during preview."""
DEFAULT_EXPIRY_S = 90 * 86_400
DESCRIPTION = re.compile(r"^[a-zA-Z0-9 -]{0,50}$")
# The getDevice/getDevices result fields (pulumi_tailscale.GetDeviceResult).
DEVICE_FIELDS = (
    *("addresses", "authorized", "blocksIncomingConnections", "clientVersion", "created"),
    *("expires", "hostname", "id", "isExternal", "keyExpiryDisabled", "lastSeen"),
    *("machineKey", "name", "nodeId", "nodeKey", "os", "tags", "tailnetLockError"),
    *("tailnetLockKey", "updateAvailable", "user"),
)


def should_recreate_if_invalid(reusable: bool, recreate_if_invalid: str) -> bool:
    """resource_tailnet_key.go shouldRecreateIfInvalid: `always`, `never`, or, unset, only a
    reusable key (a used single-use key is expected to be invalid)."""
    if recreate_if_invalid in ("always", "never"):
        return recreate_if_invalid == "always"
    return reusable


def _unknown(value: Any) -> bool:
    return value == UNKNOWN


@dataclass(frozen=True)
class Kind:
    """One resource type: its input defaults and which inputs replace the resource."""

    defaults: Mapping[str, Any]
    replace_on: frozenset[str]


KINDS: dict[str, Kind] = {
    "tailscale:index/acl:Acl": Kind(
        {"overwriteExistingContent": False, "resetAclOnDestroy": False}, frozenset()
    ),
    "tailscale:index/tailnetKey:TailnetKey": Kind(
        {
            "reusable": False,
            "ephemeral": False,
            "preauthorized": False,
            "expiry": DEFAULT_EXPIRY_S,
            "tags": [],
            "description": "",
        },
        frozenset({"reusable", "ephemeral", "preauthorized", "tags", "expiry", "description"}),
    ),
    "tailscale:index/deviceKey:DeviceKey": Kind(
        {"keyExpiryDisabled": False}, frozenset({"deviceId"})
    ),
    "tailscale:index/deviceTags:DeviceTags": Kind({}, frozenset({"deviceId"})),
    "tailscale:index/deviceAuthorization:DeviceAuthorization": Kind({}, frozenset({"deviceId"})),
    "tailscale:index/dnsPreferences:DnsPreferences": Kind({}, frozenset()),
}


def kind_of(urn: str) -> tuple[str, Kind]:
    """The resource type of a URN and what it means; a type not served is a ValueError."""
    token = urn.split("::")[2].split("$")[-1]
    if token not in KINDS:
        raise ValueError(f"resource type {token} is not served by this provider stand-in")
    return token, KINDS[token]


def check_inputs(token: str, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(property, reason) for each input the real provider's validators refuse; a value still
    unknown (in a preview) is not checked."""
    failures = []
    if token.endswith("TailnetKey"):
        description = inputs.get("description", "")
        if not _unknown(description) and not DESCRIPTION.match(str(description)):
            failures.append(
                (
                    "description",
                    "expected description to be at most 50 characters of letters, numbers, "
                    f"hyphens and spaces, got {description!r}",
                )
            )
        expiry = inputs.get("expiry")
        if not _unknown(expiry) and not 0 <= float(expiry or 0) <= DEFAULT_EXPIRY_S:
            failures.append(("expiry", f"expected expiry in 0..{DEFAULT_EXPIRY_S}, got {expiry}"))
        invalid = inputs.get("recreateIfInvalid", "")
        if not _unknown(invalid) and invalid not in ("", "always", "never"):
            failures.append(("recreateIfInvalid", f"expected always or never, got {invalid!r}"))
    if token.endswith("acl:Acl"):
        acl = inputs.get("acl")
        if acl is None:
            failures.append(("acl", "required"))
    return failures


def invalid_key_replaced(token: str, state: Mapping[str, Any], news: Mapping[str, Any]) -> bool:
    """resource_tailnet_key.go ModifyPlan: a key whose state says `invalid` (as Read found
    it) is replaced, its `id` unknown, when shouldRecreateIfInvalid says so."""
    if not token.endswith("TailnetKey"):
        return False
    recreate = news.get("recreateIfInvalid", "")
    if not state.get("invalid") or _unknown(recreate):
        return False
    return should_recreate_if_invalid(bool(news.get("reusable")), str(recreate))


def write(
    client: Client,
    token: str,
    inputs: dict[str, Any],
    *,
    update: bool = False,
    olds: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """resource_*.go Create and Update: the calls, then the id and the outputs."""
    if token.endswith("acl:Acl"):
        headers = {}
        if not update and not inputs.get("overwriteExistingContent"):
            headers["If-Match"] = '"ts-default"'
        try:
            client.call("POST", client.tailnet_path("acl"), str(inputs["acl"]), headers=headers)
        except ApiError as error:
            if error.status != 412 or update:
                raise
            # The Terraform provider's wording, with the Pulumi property as the way out.
            raise ValueError(
                "Failed to set ACL: you seem to be trying to overwrite a non-default ACL "
                "with a tailscale_acl resource; import the existing policy first or set "
                f'overwriteExistingContent: true (got error "{error}")'
            ) from None
        return "acl", inputs
    if token.endswith("TailnetKey"):
        if update:
            # Only recreateIfInvalid changes in place; it makes no API call.
            return "", {**dict(olds or {}), **inputs}
        key = client.call(
            "POST",
            client.tailnet_path("keys"),
            {
                "capabilities": {
                    "devices": {
                        "create": {
                            "reusable": bool(inputs["reusable"]),
                            "ephemeral": bool(inputs["ephemeral"]),
                            "preauthorized": bool(inputs["preauthorized"]),
                            "tags": list(inputs.get("tags") or []),
                        }
                    }
                },
                "expirySeconds": int(inputs["expiry"]),
                "description": inputs.get("description", ""),
            },
        )
        return str(key["id"]), {**inputs, **_key_outputs(key)}
    device_id = str(inputs.get("deviceId", ""))
    if token.endswith("DeviceKey"):
        body = {"keyExpiryDisabled": bool(inputs["keyExpiryDisabled"])}
        client.call("POST", f"device/{device_id}/key", body)
        return device_id, inputs
    if token.endswith("DeviceTags"):
        client.call("POST", f"device/{device_id}/tags", {"tags": list(inputs["tags"])})
        return device_id, inputs
    if token.endswith("DeviceAuthorization"):
        body = {"authorized": bool(inputs["authorized"])}
        client.call("POST", f"device/{device_id}/authorized", body)
        return device_id, inputs
    if token.endswith("DnsPreferences"):
        body = {"magicDNS": bool(inputs["magicDns"])}
        client.call("POST", client.tailnet_path("dns", "preferences"), body)
        return "dns_preferences", inputs
    raise ValueError(f"resource type {token} is not served by this provider stand-in")


def _key_outputs(key: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "key": key.get("key", ""),
        "createdAt": key.get("created", ""),
        "expiresAt": key.get("expires", ""),
        "invalid": bool(key.get("invalid", False)),
        "userId": key.get("userId", ""),
    }


def read(
    client: Client, token: str, resource_id: str, state: dict[str, Any], inputs: dict[str, Any]
) -> dict[str, Any]:
    """resource_*.go Read: the state as the API has it now (`inputs` follows a drifted
    policy); an ApiError 404 raised from here means the resource is gone."""
    if token.endswith("acl:Acl"):
        # resource_acl.go Read: PolicyFile().Raw, the HuJSON text kept as it is.
        text = client.policy_text()
        ours = hujson.loads(state.get("acl") or "null", "acl")
        if hujson.loads(text, "tailnet policy") != ours:
            state["acl"] = text
            if inputs:
                inputs["acl"] = text
        return state
    if token.endswith("TailnetKey"):
        # resource_tailnet_key.go Read: a key gone (404) or invalid stays in state, marked
        # invalid; the next diff decides whether to replace it (ModifyPlan).
        try:
            key = client.call("GET", client.tailnet_path("keys", resource_id))
        except ApiError as error:
            if error.status != 404:
                raise
            return {**state, "invalid": True}
        if key.get("keyType") != "auth":
            raise Diagnostic(
                f"Invalid key type '{key.get('keyType')}'",
                "Only 'auth' keys are supported by this resource",
            )
        return {**state, **_key_outputs(key), "key": state.get("key", "")}
    if token.endswith("DnsPreferences"):
        prefs = client.call("GET", client.tailnet_path("dns", "preferences"))
        return {**state, "magicDns": bool(prefs.get("magicDNS"))}
    device = client.call("GET", f"device/{resource_id}")
    if token.endswith("DeviceKey"):
        return {**state, "keyExpiryDisabled": bool(device.get("keyExpiryDisabled"))}
    if token.endswith("DeviceTags"):
        return {**state, "tags": sorted(device.get("tags") or [])}
    if token.endswith("DeviceAuthorization"):
        return {**state, "authorized": bool(device.get("authorized"))}
    raise ValueError(f"resource type {token} is not served by this provider stand-in")


def delete(client: Client, token: str, resource_id: str, state: Mapping[str, Any]) -> None:
    """resource_*.go Delete. Any API error fails the delete with the resource's own
    diagnostic, except a 404 for a TailnetKey ("Single-use keys may no longer be here")."""
    device_id = str(state.get("deviceId") or resource_id)
    try:
        if token.endswith("acl:Acl"):
            if state.get("resetAclOnDestroy"):
                # resource_acl.go Delete: Set(ctx, "", ""), an empty policy resets the
                # tailnet to Tailscale's default.
                client.call("POST", client.tailnet_path("acl"), "")
        elif token.endswith("TailnetKey"):
            client.call("DELETE", client.tailnet_path("keys", resource_id))
        elif token.endswith("DeviceKey"):
            client.call("POST", f"device/{device_id}/key", {"keyExpiryDisabled": False})
        elif token.endswith("DeviceTags"):
            client.call("POST", f"device/{device_id}/tags", {"tags": []})
        elif token.endswith("DnsPreferences"):
            client.call("POST", client.tailnet_path("dns", "preferences"), {"magicDNS": False})
        # DeviceAuthorization: destroy keeps the authorization; no call.
    except ApiError as error:
        if token.endswith("TailnetKey") and error.status == 404:
            return
        raise delete_failed(token, resource_id, device_id, error) from None


def _device_view(device: Mapping[str, Any]) -> dict[str, Any]:
    view = {key: device.get(key) for key in DEVICE_FIELDS}
    view["tags"] = list(device.get("tags") or [])
    view["addresses"] = list(device.get("addresses") or [])
    return {k: ("" if v is None else v) for k, v in view.items()}


def _list_devices(client: Client, **filters: str) -> list[dict[str, Any]]:
    path = client.tailnet_path("devices")
    if filters:
        path += "?" + urllib.parse.urlencode(filters)
    return list(client.call("GET", path).get("devices") or [])


def get_device(client: Client, args: Mapping[str, Any]) -> dict[str, Any]:
    """data_source_device.go Read: the API filters by hostname (or name) and the first
    device listed is the one, retried each second until waitFor."""
    name, hostname = args.get("name"), args.get("hostname")
    if bool(name) == bool(hostname):
        raise ValueError("getDevice: exactly one of name or hostname is required")
    which = {"hostname": str(hostname)} if hostname else {"name": str(name)}
    deadline = time.monotonic() + _duration_s(str(args.get("waitFor") or "0s"))
    while True:
        devices = _list_devices(client, **which)
        if devices:
            return {**_device_view(devices[0]), "waitFor": args.get("waitFor", "")}
        if time.monotonic() >= deadline:
            [(field, value)] = which.items()
            raise ValueError(f"could not find device with {field}={value!r}")
        time.sleep(1.0)


def get_devices(client: Client, args: Mapping[str, Any]) -> dict[str, Any]:
    prefix = str(args.get("namePrefix") or "")
    devices = [
        _device_view(d) for d in _list_devices(client) if str(d.get("name", "")).startswith(prefix)
    ]
    return {"devices": devices, "namePrefix": prefix, "id": client.tailnet}


def get_acl(client: Client) -> dict[str, Any]:
    """data_source_acl.go: one PolicyFile().Raw; `json` is that HuJSON minimized."""
    text = client.policy_text()
    document = hujson.loads(text, "tailnet policy")
    minimized = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    return {"json": minimized, "hujson": text, "id": client.tailnet}


def _duration_s(text: str) -> float:
    """Go duration strings as the provider's wait_for takes them ('5m', '90s', '1h30m')."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts and text not in ("", "0"):
        raise ValueError(f"waitFor: {text!r} is not a duration like '5m' or '90s'")
    return sum(float(n) * units[u] for n, u in parts)


FUNCTIONS: dict[str, Callable[[Client, Mapping[str, Any]], dict[str, Any]]] = {
    "tailscale:index/getDevice:getDevice": get_device,
    "tailscale:index/getDevices:getDevices": get_devices,
    "tailscale:index/getAcl:getAcl": lambda client, _args: get_acl(client),
}
"""The provider's functions (invokes) by token."""
