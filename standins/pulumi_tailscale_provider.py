"""A stand-in for the pulumi-tailscale resource provider plugin (`pulumi-resource-tailscale`).

Why a stand-in: the real plugin is the Go module github.com/pulumi/pulumi-tailscale/provider
(bridging github.com/tailscale/terraform-provider-tailscale), and the module proxy reachable
here serves neither (403 for every version, commit and version list), so it cannot be built.
This plugin speaks the same gRPC provider protocol for the tokens the pinned Python package
pulumi-tailscale==0.29.2 registers and that this project uses, with the same property names,
defaults, replace rules and Tailscale API v2 calls as the Terraform provider (paths and bodies
as in tailscale.com/client/tailscale/v2, which that provider uses):

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

Credentials come from the provider config (`tailscale:apiKey`, `tailscale:baseUrl`,
`tailscale:tailnet`) or TAILSCALE_API_KEY / TAILSCALE_BASE_URL / TAILSCALE_TAILNET, like the
real provider. The API key is sent as HTTP Basic `<key>:` and never written to outputs.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

from coral_infra import hujson
from standins.plugin_server import serve_plugin
from standins.tailscale_api_client import (
    DEFAULT_BASE_URL,
    ApiError,
    Client,
    Diagnostic,
    delete_failed,
)

VERSION = "0.29.2"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""The engine's marker for a value not known during preview."""
# How the engine marks a secret value inside a Struct (sdk/go/common/resource/sig).
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"
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


def _to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def _to_struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(dict(values))
    return result


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


def _kind(urn: str) -> tuple[str, Kind]:
    token = urn.split("::")[2].split("$")[-1]
    if token not in KINDS:
        raise ValueError(f"resource type {token} is not served by this provider stand-in")
    return token, KINDS[token]


def _check_inputs(token: str, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
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


class Provider(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self) -> None:
        self._client: Client | None = None

    # ------------------------------------------------------------------ plugin and config

    def GetPluginInfo(self, request: Any, context: Any) -> Any:
        return plugin_pb2.PluginInfo(version=VERSION)

    def GetSchema(self, request: Any, context: Any) -> Any:
        return provider_pb2.GetSchemaResponse(
            schema=json.dumps({"name": "tailscale", "version": VERSION})
        )

    def CheckConfig(self, request: Any, context: Any) -> Any:
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: Any, context: Any) -> Any:
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)

    def Configure(self, request: Any, context: Any) -> Any:
        variables = dict(request.variables)
        args = _to_dict(request.args) if request.HasField("args") else {}

        def setting(name: str, env: str, default: str = "") -> str:
            value = args.get(name) or variables.get(f"tailscale:config:{name}")
            if isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE:
                value = value.get("value")
            return str(value or os.environ.get(env) or default)

        self._client = Client(
            base_url=setting("baseUrl", "TAILSCALE_BASE_URL", DEFAULT_BASE_URL),
            tailnet=setting("tailnet", "TAILSCALE_TAILNET", "-"),
            api_key=setting("apiKey", "TAILSCALE_API_KEY"),
        )
        return provider_pb2.ConfigureResponse(
            acceptSecrets=False, supportsPreview=True, acceptResources=False
        )

    def _api(self, context: Any) -> Client:
        if self._client is None or not self._client.api_key:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "tailscale: no credentials: set tailscale:apiKey (as a secret) or "
                "TAILSCALE_API_KEY",
            )
        assert self._client is not None
        return self._client

    def _guard(self, context: Any, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except ApiError as error:
            context.abort(grpc.StatusCode.UNKNOWN, f"tailscale API: {error}")
        except Diagnostic as error:
            context.abort(grpc.StatusCode.UNKNOWN, str(error))
        except ValueError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

    # --------------------------------------------------------------------------- resources

    def Check(self, request: Any, context: Any) -> Any:
        def check() -> Any:
            token, kind = _kind(request.urn)
            inputs = {**kind.defaults, **_to_dict(request.news)}
            failures = [
                provider_pb2.CheckFailure(property=p, reason=r)
                for p, r in _check_inputs(token, inputs)
            ]
            return provider_pb2.CheckResponse(inputs=_to_struct(inputs), failures=failures)

        return self._guard(context, check)

    def Diff(self, request: Any, context: Any) -> Any:
        def diff() -> Any:
            token, kind = _kind(request.urn)
            news = _to_dict(request.news)
            olds = _to_dict(request.old_inputs) if request.HasField("old_inputs") else {}
            keys = set(olds) | set(news)
            if not olds:
                # Only the old state (inputs plus outputs such as `key`): compare the inputs.
                olds, keys = _to_dict(request.olds), set(news)
            changed = sorted(key for key in keys if olds.get(key) != news.get(key))
            replaces = [key for key in changed if key in kind.replace_on]
            if token.endswith("TailnetKey") and self._invalid_key_replaced(request, news):
                changed, replaces = [*changed, "id"], [*replaces, "id"]
            detailed = {
                key: provider_pb2.PropertyDiff(
                    kind=provider_pb2.PropertyDiff.UPDATE_REPLACE
                    if key in replaces
                    else provider_pb2.PropertyDiff.UPDATE,
                    inputDiff=True,
                )
                for key in changed
            }
            return provider_pb2.DiffResponse(
                changes=provider_pb2.DiffResponse.DIFF_SOME
                if changed
                else provider_pb2.DiffResponse.DIFF_NONE,
                diffs=changed,
                replaces=replaces,
                detailedDiff=detailed,
                hasDetailedDiff=True,
            )

        return self._guard(context, diff)

    @staticmethod
    def _invalid_key_replaced(request: Any, news: Mapping[str, Any]) -> bool:
        """resource_tailnet_key.go ModifyPlan: a key whose state says `invalid` (as Read found
        it) is replaced, its `id` unknown, when shouldRecreateIfInvalid says so."""
        state = _to_dict(request.olds)
        recreate = news.get("recreateIfInvalid", "")
        if not state.get("invalid") or _unknown(recreate):
            return False
        return should_recreate_if_invalid(bool(news.get("reusable")), str(recreate))

    def Create(self, request: Any, context: Any) -> Any:
        token, _ = self._guard(context, lambda: _kind(request.urn))
        inputs = _to_dict(request.properties)
        if request.preview:
            return provider_pb2.CreateResponse(properties=_to_struct(inputs))
        client = self._api(context)
        resource_id, outputs = self._guard(context, lambda: self._write(client, token, inputs))
        return provider_pb2.CreateResponse(id=resource_id, properties=_to_struct(outputs))

    def Update(self, request: Any, context: Any) -> Any:
        token, _ = self._guard(context, lambda: _kind(request.urn))
        news = _to_dict(request.news)
        if request.preview:
            return provider_pb2.UpdateResponse(properties=_to_struct(news))
        client = self._api(context)
        olds = _to_dict(request.olds)
        _id, outputs = self._guard(
            context, lambda: self._write(client, token, news, update=True, olds=olds)
        )
        return provider_pb2.UpdateResponse(properties=_to_struct(outputs))

    def _write(
        self,
        client: Client,
        token: str,
        inputs: dict[str, Any],
        *,
        update: bool = False,
        olds: Mapping[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
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
            return str(key["id"]), {**inputs, **self._key_outputs(key)}
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

    @staticmethod
    def _key_outputs(key: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "key": key.get("key", ""),
            "createdAt": key.get("created", ""),
            "expiresAt": key.get("expires", ""),
            "invalid": bool(key.get("invalid", False)),
            "userId": key.get("userId", ""),
        }

    def Read(self, request: Any, context: Any) -> Any:
        token, _ = self._guard(context, lambda: _kind(request.urn))
        client = self._api(context)
        state = _to_dict(request.properties)
        inputs = _to_dict(request.inputs) if request.HasField("inputs") else {}

        def read() -> Any:
            try:
                found = self._read(client, token, request.id, state, inputs)
            except ApiError as error:
                if error.status == 404:
                    return provider_pb2.ReadResponse()
                raise
            return provider_pb2.ReadResponse(
                id=request.id, properties=_to_struct(found), inputs=_to_struct(inputs or found)
            )

        return self._guard(context, read)

    def _read(
        self,
        client: Client,
        token: str,
        resource_id: str,
        state: dict[str, Any],
        inputs: dict[str, Any],
    ) -> dict[str, Any]:
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
            return {**state, **self._key_outputs(key), "key": state.get("key", "")}
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

    def Delete(self, request: Any, context: Any) -> Any:
        token, _ = self._guard(context, lambda: _kind(request.urn))
        client = self._api(context)
        state = _to_dict(request.properties)
        self._guard(context, lambda: self._delete(client, token, request.id, state))
        return empty_pb2.Empty()

    @staticmethod
    def _delete(client: Client, token: str, resource_id: str, state: Mapping[str, Any]) -> None:
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

    # ----------------------------------------------------------------------------- invokes

    def Invoke(self, request: Any, context: Any) -> Any:
        args = _to_dict(request.args)
        client = self._api(context)
        functions: dict[str, Callable[[], dict[str, Any]]] = {
            "tailscale:index/getDevice:getDevice": lambda: self._get_device(client, args),
            "tailscale:index/getDevices:getDevices": lambda: self._get_devices(client, args),
            "tailscale:index/getAcl:getAcl": lambda: self._get_acl(client),
        }
        if request.tok not in functions:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"unknown function {request.tok}")
        result = self._guard(context, functions[request.tok])
        return provider_pb2.InvokeResponse(**{"return": _to_struct(result)})

    @staticmethod
    def _device_view(device: Mapping[str, Any]) -> dict[str, Any]:
        view = {key: device.get(key) for key in DEVICE_FIELDS}
        view["tags"] = list(device.get("tags") or [])
        view["addresses"] = list(device.get("addresses") or [])
        return {k: ("" if v is None else v) for k, v in view.items()}

    def _list(self, client: Client, **filters: str) -> list[dict[str, Any]]:
        path = client.tailnet_path("devices")
        if filters:
            path += "?" + urllib.parse.urlencode(filters)
        return list(client.call("GET", path).get("devices") or [])

    def _get_device(self, client: Client, args: Mapping[str, Any]) -> dict[str, Any]:
        """data_source_device.go Read: the API filters by hostname (or name) and the first
        device listed is the one, retried each second until waitFor."""
        name, hostname = args.get("name"), args.get("hostname")
        if bool(name) == bool(hostname):
            raise ValueError("getDevice: exactly one of name or hostname is required")
        which = {"hostname": str(hostname)} if hostname else {"name": str(name)}
        deadline = time.monotonic() + _duration_s(str(args.get("waitFor") or "0s"))
        while True:
            devices = self._list(client, **which)
            if devices:
                return {**self._device_view(devices[0]), "waitFor": args.get("waitFor", "")}
            if time.monotonic() >= deadline:
                [(field, value)] = which.items()
                raise ValueError(f"could not find device with {field}={value!r}")
            time.sleep(1.0)

    def _get_devices(self, client: Client, args: Mapping[str, Any]) -> dict[str, Any]:
        prefix = str(args.get("namePrefix") or "")
        devices = [
            self._device_view(d)
            for d in self._list(client)
            if str(d.get("name", "")).startswith(prefix)
        ]
        return {"devices": devices, "namePrefix": prefix, "id": client.tailnet}

    def _get_acl(self, client: Client) -> dict[str, Any]:
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


def main() -> None:
    serve_plugin(
        provider_pb2_grpc.add_ResourceProviderServicer_to_server, Provider(), max_workers=8
    )


if __name__ == "__main__":
    main()
    sys.exit(0)
