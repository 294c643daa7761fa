"""The pulumi-tailscale provider stand-in's side of the Tailscale API v2: its calls and how
a failed one reads.

Apart from the provider's resources (standins/pulumi_tailscale_resources.py) because it is a
different thing: they map each resource's operations onto calls, this module makes them as
the real provider's client does (tailscale.com/client/tailscale/v2: paths under /api/v2, HTTP
Basic `<key>:`, the policy file as HuJSON) and turns their failures into the errors the real
provider shows: the API's message and status (`ApiError`), and for a failed delete the
resource's own diagnostic as pulumi-terraform-bridge reports it (`delete_failed`).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_BASE_URL = "https://api.tailscale.com"
HTTP_TIMEOUT_S = 30.0


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} ({status})")
        self.status = status


class Diagnostic(RuntimeError):
    """A Terraform error diagnostic as pulumi-terraform-bridge turns it into the operation's
    error (pkg/pf/tfbridge/provider_diagnostics.go, processDiagnostics): "summary: detail"."""

    def __init__(self, summary: str, detail: str) -> None:
        super().__init__(summary if summary == detail else f"{summary}: {detail}")


def _go_quoted(value: str) -> str:
    """Go's `%q` of a framework types.String, whose String() is already quoted."""
    return json.dumps(json.dumps(value))


# resource_*.go Delete: the diagnostic (summary, detail) each resource reports when its call
# fails; `{id}` is the device id, `{quoted}` the key id as `%q` prints it.
DELETE_FAILED = {
    "acl:Acl": ("Failed to reset ACL", "{error}"),
    "TailnetKey": ("Failed to delete key", "Error deleting tailnet key with id {quoted}: {error}"),
    "DeviceKey": (
        "Failed to update device key",
        "Failed to update key for device with ID {id}: {error}",
    ),
    "DeviceTags": (
        "Failed to delete device tags",
        "Failed to delete tags for device with ID {id}: {error}",
    ),
    "DnsPreferences": ("Failed to set DNS preferences", "Failed to set DNS preferences: {error}"),
}


def delete_failed(token: str, resource_id: str, device_id: str, error: ApiError) -> Diagnostic:
    """The diagnostic resource `token`'s Delete reports when its call failed with `error`."""
    summary, detail = next(v for k, v in DELETE_FAILED.items() if token.endswith(k))
    detail = detail.format(id=device_id, quoted=_go_quoted(resource_id), error=error)
    return Diagnostic(summary, detail)


@dataclass
class Client:
    base_url: str
    tailnet: str
    api_key: str

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        raw: bool = False,
    ) -> Any:
        url = f"{self.base_url.rstrip('/')}/api/v2/{path}"
        data: bytes | None = None
        request_headers = {"Accept": "application/json", **(headers or {})}
        if isinstance(body, str):
            data = body.encode()
            request_headers.setdefault("Content-Type", "application/hujson")
        elif body is not None:
            data = json.dumps(body).encode()
            request_headers["Content-Type"] = "application/json"
        token = base64.b64encode(f"{self.api_key}:".encode()).decode()
        request_headers["Authorization"] = f"Basic {token}"
        request = urllib.request.Request(url, data=data, method=method, headers=request_headers)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            payload = error.read().decode(errors="replace")
            try:
                message = json.loads(payload).get("message") or payload
            except (json.JSONDecodeError, AttributeError):
                message = payload
            raise ApiError(error.code, str(message)) from None
        if raw:
            return text
        return json.loads(text) if text.strip() else None

    def policy_text(self) -> str:
        """The policy file as HuJSON, as the client's PolicyFile().Raw asks for it."""
        headers = {"Accept": "application/hujson"}
        return str(self.call("GET", self.tailnet_path("acl"), headers=headers, raw=True))

    def tailnet_path(self, *parts: str) -> str:
        return "/".join(["tailnet", urllib.parse.quote(self.tailnet, safe=""), *parts])
