"""A Tailscale API v2 stand-in: a real HTTP server on 127.0.0.1 backed by a running headscale.

Why backed by headscale: the auth keys it mints are real headscale pre-auth keys (created with
the key's tags through the headscale CLI), so a pod that logs in with one really joins, and the
devices it lists are the nodes that really joined, mapped to Tailscale's device JSON. What
headscale has no notion of (key expiry disabled, authorization, MagicDNS preference, the policy
file's HuJSON text and ETag) is kept here.

The wire format is checked against Tailscale's own Go client, tailscale.com/client/tailscale/v2
(what the pulumi-tailscale provider calls), by tools/tailscale-conformance (see
docs/tailscale-api-conformance.md). The rules enforced are Tailscale's:
- credentials and scopes: standins/tailscale_api_auth.py (API key, OAuth clients, 401/403);
- the policy file (`/tailnet/{t}/acl`, `/acl/validate`): standins/tailscale_policy_file.py;
- `POST /tailnet/{t}/keys`: every tag must be owned in tagOwners, else 400 "requested tags
  [...] are invalid or not permitted"; `GET`/`DELETE /tailnet/{t}/keys/{id}`: a deleted key
  still reads, with `revoked` and `invalid: true` (publicapi/tailnet.md, "Get key"); an id the
  tailnet never had answers 404;
- `GET /tailnet/{t}/devices` with the client's filters as query parameters (`?hostname=`,
  `?name=`, `?tags=`, ...: a device matches when each filtered attribute equals, or for a list
  contains, one of the values; an unknown attribute answers 400); `GET`/`DELETE /device/{id}`
  (node id or legacy id), `POST /device/{id}/key|tags|authorized`; the device JSON is
  standins/tailscale_devices.py;
- `GET`/`POST /tailnet/{t}/dns/preferences`;
- errors are JSON `{"message": ...}` (standins/tailscale_api_wire.py).

Run for a demo: `python -m standins.tailscale_api --headscale BIN --headscale-config CFG
--api-key KEY --owner owner@example.com --member member@example.com`, then set
`tailscale:baseUrl` to its URL.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from standins.headscale import HeadscaleError, headscale_json
from standins.tailscale_api_auth import (
    TOKEN_PATH,
    Credentials,
    OAuthClient,
    TokenError,
    require_scope,
)
from standins.tailscale_api_wire import ApiError, iso
from standins.tailscale_devices import DEVICE_FILTERS, DeviceSettings, device_view, matches
from standins.tailscale_policy_file import DEFAULT_POLICY_TEXT, PolicyFile

__all__ = ["DEFAULT_POLICY_TEXT", "ApiError", "HeadscaleCli", "OAuthClient", "TailscaleApiStandin"]

MAX_KEY_EXPIRY_S = 90 * 86_400
HEADSCALE_TIMEOUT_S = 20.0


@dataclass
class HeadscaleCli:
    """The headscale the stand-in is backed by, driven through its CLI (unix socket)."""

    binary: Path
    config_path: Path
    base_domain: str = "coral.test"

    def json(self, *args: str) -> Any:
        try:
            return headscale_json(
                self.binary, self.config_path, *args, timeout_s=HEADSCALE_TIMEOUT_S
            )
        except HeadscaleError as error:
            raise ApiError(500, str(error)) from None

    def create_key(
        self, *, reusable: bool, ephemeral: bool, tags: Sequence[str], expiry_s: int
    ) -> dict[str, Any]:
        args = ["preauthkeys", "create", "--expiration", f"{expiry_s}s"]
        if reusable:
            args.append("--reusable")
        if ephemeral:
            args.append("--ephemeral")
        if tags:
            args += ["--tags", ",".join(tags)]
        return dict(self.json(*args))

    def expire_key(self, key_id: str) -> None:
        self.json("preauthkeys", "expire", "--id", key_id)

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.json("nodes", "list") or [])

    def tag_node(self, node_id: str, tags: Sequence[str]) -> None:
        self.json("nodes", "tag", "--identifier", node_id, "--tags", ",".join(tags))

    def delete_node(self, node_id: str) -> None:
        self.json("nodes", "delete", "--identifier", node_id, "--force")


@dataclass
class AuthKey:
    id: str
    headscale_id: str
    description: str
    capabilities: dict[str, Any]
    created: datetime
    expires: datetime
    revoked: datetime | None = None

    def view(self, *, with_secret: str | None = None) -> dict[str, Any]:
        now = datetime.now(UTC)
        view: dict[str, Any] = {
            "id": self.id,
            "keyType": "auth",
            "description": self.description,
            "created": iso(self.created),
            "expires": iso(self.expires),
            "invalid": self.revoked is not None or self.expires <= now,
            "capabilities": self.capabilities,
            "expirySeconds": int((self.expires - self.created).total_seconds()),
            "userId": "",
        }
        if self.revoked is not None:
            view["revoked"] = iso(self.revoked)
        if with_secret is not None:
            view["key"] = with_secret
        return view


@dataclass
class TailscaleApiStandin:
    """The stand-in server. `roles` maps each login of the tailnet to its role (owner, admin,
    member), for the policy self-tests; `oauth_clients` are the tailnet's OAuth clients."""

    api_key: str
    headscale: HeadscaleCli
    roles: Mapping[str, str]
    tailnet: str = "example.com"
    port: int = 0
    oauth_clients: Mapping[str, OAuthClient] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    """(method, path after /api/v2 with its query) of every authenticated request."""
    on_policy: Callable[[dict[str, Any]], None] | None = None
    """Called with each policy document the API accepts, before it is committed (the sandbox
    loads it into headscale); raising ApiError refuses the write."""
    minted: list[str] = field(default_factory=list)
    """Every auth key secret handed out, so tests can prove none is stored in plaintext."""
    _policy: PolicyFile = field(init=False)
    _credentials: Credentials = field(init=False)
    _keys: dict[str, AuthKey] = field(default_factory=dict)
    _extras: dict[str, DeviceSettings] = field(default_factory=dict)
    _magic_dns: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self._policy = PolicyFile(self.roles, self.on_policy)
        self._credentials = Credentials(self.api_key, self.oauth_clients)

    # ---------------------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> TailscaleApiStandin:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ------------------------------------------------------------------------------ state

    @property
    def key_ids(self) -> list[str]:
        """The keys still active (the ones `GET /keys` would list)."""
        with self._lock:
            return sorted(k.id for k in self._keys.values() if k.revoked is None)

    def device_extras(self, device_id: str) -> tuple[bool, bool]:
        """(keyExpiryDisabled, authorized) as last set through the API for a device."""
        with self._lock:
            extras = self._extras.get(device_id.removeprefix("n").removesuffix("CNTRL"))
            if extras is None:
                return (False, False)
            return (bool(extras.key_expiry_disabled), extras.authorized)

    @property
    def policy(self) -> dict[str, Any]:
        return self._policy.document

    @property
    def etag(self) -> str:
        return self._policy.etag

    def _require_owned(self, tags: Sequence[str]) -> None:
        unowned = [t for t in tags if t not in self._policy.owned_tags()]
        if unowned:
            raise ApiError(
                400, f"requested tags [{', '.join(unowned)}] are invalid or not permitted"
            )

    # ---------------------------------------------------------------------------- devices

    def _devices(self) -> list[dict[str, Any]]:
        return [self._device_view(node) for node in self.headscale.nodes()]

    def _device_view(self, node: Mapping[str, Any]) -> dict[str, Any]:
        settings = self._extras.setdefault(str(node["id"]), DeviceSettings())
        return device_view(node, settings, self.headscale.base_domain)

    def _device(self, device_id: str) -> dict[str, Any]:
        for device in self._devices():
            if device_id in (device["id"], device["nodeId"]):
                return device
        raise ApiError(404, "device not found")

    def _list_devices(self, query: str) -> list[dict[str, Any]]:
        filters = {k: v for k, v in parse_qs(query, keep_blank_values=True).items()}
        filters.pop("fields", None)
        unknown = sorted(set(filters) - DEVICE_FILTERS)
        if unknown:
            raise ApiError(400, f"invalid device filter {unknown[0]!r}")
        return [d for d in self._devices() if matches(d, filters)]

    # ---------------------------------------------------------------------------- routing

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """One API request (`target` with its query): (status, JSON-able body or HuJSON text,
        extra headers)."""
        url = urlsplit(target)
        authorization = headers.get("Authorization", "")
        if url.path == TOKEN_PATH and method == "POST":
            return 200, self._credentials.issue_token(authorization, body), {}
        granted = self._credentials.scopes(authorization)
        parts = [unquote(p) for p in url.path.split("/") if p]
        if parts[:2] != ["api", "v2"]:
            raise ApiError(404, "not found")
        parts = parts[2:]
        with self._lock:
            self.calls.append((method, "/" + "/".join(parts) + (f"?{url.query}" * bool(url.query))))
            if len(parts) >= 3 and parts[0] == "tailnet":
                if parts[1] not in ("-", self.tailnet):
                    raise ApiError(404, f"tailnet {parts[1]!r} not found")
                return self._tailnet(method, parts[2:], url.query, headers, body, granted)
            if len(parts) >= 2 and parts[0] == "device":
                require_scope(granted, "devices:core", write=method != "GET")
                return self._device_call(method, parts[1], parts[2:], body)
        raise ApiError(404, "not found")

    def _tailnet(
        self,
        method: str,
        rest: list[str],
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        granted: frozenset[str],
    ) -> tuple[int, Any, dict[str, str]]:
        accept = headers.get("Accept", "")
        if rest[:1] == ["acl"]:
            # Validating changes nothing: reading the policy file is enough.
            require_scope(granted, "policy_file", write=method != "GET" and rest == ["acl"])
            if rest == ["acl"] and method in ("GET", "POST"):
                if method == "POST":
                    self._policy.replace(body.decode(), headers.get("If-Match"))
                payload, extra = self._policy.answer(accept)
                return 200, payload, extra
            if rest == ["acl", "validate"] and method == "POST":
                problem = self._policy.validate(body.decode())
                return 200, None if problem is None else problem.body(), {}
        if rest[:1] == ["keys"]:
            require_scope(granted, "auth_keys", write=method != "GET")
            if rest == ["keys"] and method == "POST":
                return 200, self._create_key(json.loads(body or b"{}")), {}
            if len(rest) == 2 and method in ("GET", "DELETE"):
                key = self._keys.get(rest[1])
                if key is None:
                    raise ApiError(404, "key not found")
                if method == "DELETE" and key.revoked is None:
                    self.headscale.expire_key(key.headscale_id)
                    key.revoked = datetime.now(UTC)
                return 200, key.view() if method == "GET" else None, {}
        if rest == ["devices"] and method == "GET":
            require_scope(granted, "devices:core", write=False)
            return 200, {"devices": self._list_devices(query)}, {}
        if rest == ["dns", "preferences"] and method in ("GET", "POST"):
            require_scope(granted, "dns", write=method == "POST")
            if method == "POST":
                self._magic_dns = bool(json.loads(body or b"{}").get("magicDNS"))
            return 200, {"magicDNS": self._magic_dns}, {}
        raise ApiError(404, "not found")

    def _create_key(self, request: Mapping[str, Any]) -> dict[str, Any]:
        create = ((request.get("capabilities") or {}).get("devices") or {}).get("create") or {}
        tags = list(create.get("tags") or [])
        expiry_s = int(request.get("expirySeconds") or MAX_KEY_EXPIRY_S)
        description = str(request.get("description") or "")
        if len(description) > 50:
            raise ApiError(400, "description must be at most 50 characters")
        if not 0 < expiry_s <= MAX_KEY_EXPIRY_S:
            raise ApiError(400, f"expirySeconds must be between 1 and {MAX_KEY_EXPIRY_S}")
        if not tags:
            # Keys made with an API key belong to a user; the stand-in serves tagged keys only.
            raise ApiError(400, "an auth key without tags needs a user; this tailnet has none")
        self._require_owned(tags)
        minted = self.headscale.create_key(
            reusable=bool(create.get("reusable")),
            ephemeral=bool(create.get("ephemeral")),
            tags=tags,
            expiry_s=expiry_s,
        )
        now = datetime.now(UTC)
        capabilities = {
            "reusable": bool(create.get("reusable")),
            "ephemeral": bool(create.get("ephemeral")),
            "preauthorized": bool(create.get("preauthorized")),
            "tags": tags,
        }
        key = AuthKey(
            id=f"k{minted['id']}CNTRL",
            headscale_id=str(minted["id"]),
            description=description,
            capabilities={"devices": {"create": capabilities}},
            created=now,
            expires=now + timedelta(seconds=expiry_s),
        )
        self._keys[key.id] = key
        self.minted.append(str(minted["key"]))
        return key.view(with_secret=str(minted["key"]))

    def _device_call(
        self, method: str, device_id: str, rest: list[str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        device = self._device(device_id)
        extras = self._extras.setdefault(device["id"], DeviceSettings())
        payload = json.loads(body or b"{}") if method == "POST" else {}
        if not rest and method == "GET":
            return 200, device, {}
        if not rest and method == "DELETE":
            self.headscale.delete_node(device["id"])
            del self._extras[device["id"]]
            return 200, None, {}
        if rest == ["key"] and method == "POST":
            extras.key_expiry_disabled = bool(payload.get("keyExpiryDisabled"))
            return 200, None, {}
        if rest == ["authorized"] and method == "POST":
            extras.authorized = bool(payload.get("authorized"))
            return 200, None, {}
        if rest == ["tags"] and method == "POST":
            tags = list(payload.get("tags") or [])
            self._require_owned(tags)
            if tags:
                self.headscale.tag_node(device["id"], tags)
                extras.untagged = False
            else:
                # On Tailscale the device then belongs to whoever made the key (here, the
                # API key's user); headscale cannot untag a node that has no user, so only
                # the stand-in's view records it.
                extras.untagged = True
            return 200, None, {}
        raise ApiError(404, "not found")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                extra: dict[str, str] = {}
                try:
                    status, payload, extra = standin.handle(
                        self.command, self.path, dict(self.headers), body
                    )
                except ApiError as error:
                    status, payload = error.status, error.body()
                except TokenError as error:
                    status, payload = error.status, error.body
                if isinstance(payload, str):
                    data = payload.encode()
                    extra.setdefault("Content-Type", "application/hujson")
                else:
                    data = b"" if payload is None else json.dumps(payload).encode()
                    extra.setdefault("Content-Type", "application/json")
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--headscale", required=True, type=Path)
    parser.add_argument("--headscale-config", required=True, type=Path)
    parser.add_argument("--owner", required=True, help="login of the tailnet owner")
    parser.add_argument("--member", required=True, help="login of a plain member")
    args = parser.parse_args()
    roles = {args.owner: "owner", args.member: "member"}
    standin = TailscaleApiStandin(
        api_key=args.api_key,
        headscale=HeadscaleCli(args.headscale, args.headscale_config),
        roles=roles,
        port=args.port,
    ).start()
    print(standin.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
