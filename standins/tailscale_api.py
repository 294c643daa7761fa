"""A Tailscale API v2 stand-in: a real HTTP server on 127.0.0.1 backed by a running headscale.

Why backed by headscale: the auth keys it mints are real headscale pre-auth keys (created with
the key's tags through the headscale CLI), so a pod that logs in with one really joins, and the
devices it lists are the nodes that really joined, mapped to Tailscale's device JSON. What
headscale has no notion of (key expiry disabled, authorization, MagicDNS preference, the policy
file's HuJSON text and ETag) is kept here.

The rules enforced are Tailscale's, as the API documents them and the pulumi-tailscale provider
meets them (paths and bodies as in tailscale.com/client/tailscale/v2):
- auth: HTTP Basic `<api key>:` or `Authorization: Bearer <api key>`; else 401;
- `GET /api/v2/tailnet/{t}/acl` (JSON, or HuJSON with `Accept: application/hujson`, ETag);
  `POST` the same path: `If-Match: "ts-default"` fails 412 "precondition failed, invalid old
  hash" once the policy is not the default; any other If-Match must equal the ETag; tags used
  must be in tagOwners; the policy's `tests`/`sshTests` run (coral_infra.policy.evaluate_tests)
  and a failure answers 400 "test(s) failed" with the details in `data`;
- `POST /tailnet/{t}/keys`: every tag must be owned in tagOwners, else 400 "requested tags
  [...] are invalid or not permitted"; `GET`/`DELETE /tailnet/{t}/keys/{id}`;
- `GET /tailnet/{t}/devices`, `GET /device/{id}`, `POST /device/{id}/key|tags|authorized`;
- `GET`/`POST /tailnet/{t}/dns/preferences`;
- errors are JSON `{"message": ...}`.

Run for a demo: `python -m standins.tailscale_api --headscale BIN --headscale-config CFG
--api-key KEY --roles owner@example.com`, then set `tailscale:baseUrl` to its URL.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from coral_infra import hujson
from coral_infra.policy import DEFAULT_POLICY, evaluate_tests
from standins.tailnet_testbed import HeadscaleError, headscale_json

# Tailscale's default policy of a new tailnet (allow all; SSH check to your own devices).
DEFAULT_POLICY_TEXT = f"// Default policy.\n{json.dumps(DEFAULT_POLICY, indent=chr(9))}\n"
MAX_KEY_EXPIRY_S = 90 * 86_400
HEADSCALE_TIMEOUT_S = 20.0


class ApiError(Exception):
    def __init__(self, status: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.data = data


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
            "created": _iso(self.created),
            "expires": _iso(self.expires),
            "invalid": self.revoked is not None or self.expires <= now,
            "capabilities": self.capabilities,
            "expirySeconds": int((self.expires - self.created).total_seconds()),
            "userId": "",
        }
        if self.revoked is not None:
            view["revoked"] = _iso(self.revoked)
        if with_secret is not None:
            view["key"] = with_secret
        return view


@dataclass
class _DeviceExtras:
    key_expiry_disabled: bool = False
    authorized: bool = True
    untagged: bool = False


@dataclass
class TailscaleApiStandin:
    """The stand-in server. `roles` maps each login of the tailnet to its role (owner, admin,
    member), for the policy self-tests (coral_infra.policy.evaluate_tests)."""

    api_key: str
    headscale: HeadscaleCli
    roles: Mapping[str, str]
    tailnet: str = "example.com"
    port: int = 0
    calls: list[tuple[str, str]] = field(default_factory=list)
    on_policy: Callable[[dict[str, Any]], None] | None = None
    """Called with each policy document the API accepts, before it is committed (the sandbox
    loads it into headscale); raising ApiError refuses the write."""
    minted: list[str] = field(default_factory=list)
    """Every auth key secret handed out, so tests can prove none is stored in plaintext."""
    _policy_text: str = DEFAULT_POLICY_TEXT
    _policy_is_default: bool = True
    _keys: dict[str, AuthKey] = field(default_factory=dict)
    _extras: dict[str, _DeviceExtras] = field(default_factory=dict)
    _magic_dns: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

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
        with self._lock:
            return sorted(self._keys)

    def device_extras(self, device_id: str) -> tuple[bool, bool]:
        """(keyExpiryDisabled, authorized) as last set through the API for a device."""
        with self._lock:
            extras = self._extras.get(device_id.removeprefix("n").removesuffix("CNTRL"))
            return (extras.key_expiry_disabled, extras.authorized) if extras else (False, False)

    @property
    def policy(self) -> dict[str, Any]:
        return dict(hujson.loads(self._policy_text, "tailnet policy"))

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self._policy_text.encode()).hexdigest()[:16] + '"'

    def _owned_tags(self) -> set[str]:
        return set((self.policy.get("tagOwners") or {}).keys())

    def _require_owned(self, tags: Sequence[str]) -> None:
        unowned = [t for t in tags if t not in self._owned_tags()]
        if unowned:
            raise ApiError(
                400, f"requested tags [{', '.join(unowned)}] are invalid or not permitted"
            )

    # ------------------------------------------------------------------------------ policy

    def _set_policy(self, text: str, if_match: str | None) -> None:
        try:
            document = hujson.loads(text, "tailnet policy")
        except hujson.HujsonError as error:
            raise ApiError(400, f"parsing policy: {error}") from None
        if not isinstance(document, dict):
            raise ApiError(400, "the policy must be a JSON object")
        if if_match is not None:
            wanted = if_match.strip()
            if wanted == '"ts-default"':
                if not self._policy_is_default:
                    raise ApiError(412, "precondition failed, invalid old hash")
            elif wanted != self.etag:
                raise ApiError(412, "precondition failed, invalid old hash")
        owners = document.get("tagOwners") or {}
        used = {
            item
            for section in ("acls", "ssh", "grants")
            for rule in document.get(section) or []
            for key in ("src", "dst", "users")
            for item in rule.get(key) or []
            if isinstance(item, str) and item.startswith("tag:")
        }
        # A destination like `tag:x:22` names the tag `tag:x`.
        missing = sorted({":".join(t.split(":")[:2]) for t in used} - set(owners))
        if missing:
            raise ApiError(400, f"tag not found: {missing[0]!r}", [{"errors": missing}])
        failures = evaluate_tests(document, self.roles)
        if failures:
            raise ApiError(400, "test(s) failed", [{"user": "", "errors": failures}])
        if self.on_policy is not None:
            self.on_policy(document)
        self._policy_text = text
        self._policy_is_default = False

    # ---------------------------------------------------------------------------- devices

    def _devices(self) -> list[dict[str, Any]]:
        return [self._device_view(node) for node in self.headscale.nodes()]

    def _device_view(self, node: Mapping[str, Any]) -> dict[str, Any]:
        node_id = str(node["id"])
        extras = self._extras.setdefault(node_id, _DeviceExtras())
        tags = [] if extras.untagged else list(node.get("tags") or [])
        online = bool(node.get("online"))
        user = node.get("user") or {}
        created = node.get("created_at") or {}
        last_seen = node.get("last_seen") or {}
        return {
            "id": node_id,
            "nodeId": f"n{node_id}CNTRL",
            "name": f"{node.get('given_name') or node.get('name')}.{self.headscale.base_domain}",
            "hostname": node.get("name", ""),
            "addresses": list(node.get("ip_addresses") or []),
            "authorized": extras.authorized,
            "user": "tagged-devices" if tags else str(user.get("email") or user.get("name")),
            "tags": tags,
            # Tagged devices have key expiry disabled by default (Tailscale's rule).
            "keyExpiryDisabled": extras.key_expiry_disabled or bool(tags),
            "blocksIncomingConnections": False,
            "clientVersion": "",
            "created": _iso(datetime.fromtimestamp(int(created.get("seconds", 0)), UTC)),
            "expires": "0001-01-01T00:00:00Z",
            "connectedToControl": online,
            "lastSeen": _iso(datetime.fromtimestamp(int(last_seen.get("seconds", 0)), UTC)),
            "isExternal": False,
            "machineKey": node.get("machine_key", ""),
            "nodeKey": node.get("node_key", ""),
            "os": "linux",
            "tailnetLockError": "",
            "tailnetLockKey": "",
            "updateAvailable": False,
        }

    def _device(self, device_id: str) -> dict[str, Any]:
        for device in self._devices():
            if device_id in (device["id"], device["nodeId"]):
                return device
        raise ApiError(404, "device not found")

    # ---------------------------------------------------------------------------- routing

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """One API request: (status, JSON-able body or raw text, extra headers)."""
        auth = headers.get("Authorization", "")
        presented = ""
        if auth.startswith("Basic "):
            presented = base64.b64decode(auth[6:]).decode(errors="replace").split(":", 1)[0]
        elif auth.startswith("Bearer "):
            presented = auth[7:]
        if not presented or not secrets.compare_digest(presented, self.api_key):
            raise ApiError(401, "API token invalid")
        parts = [unquote(p) for p in path.split("/") if p]
        if parts[:2] != ["api", "v2"]:
            raise ApiError(404, "not found")
        parts = parts[2:]
        with self._lock:
            self.calls.append((method, "/" + "/".join(parts)))
            if len(parts) >= 3 and parts[0] == "tailnet":
                if parts[1] not in ("-", self.tailnet):
                    raise ApiError(404, f"tailnet {parts[1]!r} not found")
                return self._tailnet(method, parts[2:], headers, body)
            if len(parts) >= 2 and parts[0] == "device":
                return self._device_call(method, parts[1], parts[2:], body)
        raise ApiError(404, "not found")

    def _tailnet(
        self, method: str, rest: list[str], headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if rest == ["acl"] and method == "GET":
            etag = {"ETag": self.etag}
            if "hujson" in headers.get("Accept", ""):
                return 200, self._policy_text, {**etag, "Content-Type": "application/hujson"}
            return 200, self.policy, etag
        if rest == ["acl"] and method == "POST":
            self._set_policy(body.decode(), headers.get("If-Match"))
            return 200, self.policy, {"ETag": self.etag}
        if rest == ["acl", "validate"] and method == "POST":
            try:
                document = hujson.loads(body.decode(), "tailnet policy")
            except hujson.HujsonError as error:
                raise ApiError(400, f"parsing policy: {error}") from None
            failures = evaluate_tests(document, self.roles)
            return 200, ({"message": "test(s) failed", "data": failures} if failures else {}), {}
        if rest == ["keys"] and method == "POST":
            return 200, self._create_key(json.loads(body or b"{}")), {}
        if len(rest) == 2 and rest[0] == "keys":
            key = self._keys.get(rest[1])
            if key is None:
                raise ApiError(404, "key not found")
            if method == "GET":
                return 200, key.view(), {}
            if method == "DELETE":
                if key.revoked is None:
                    self.headscale.expire_key(key.headscale_id)
                    key.revoked = datetime.now(UTC)
                del self._keys[key.id]
                return 200, None, {}
        if rest == ["devices"] and method == "GET":
            return 200, {"devices": self._devices()}, {}
        if rest == ["dns", "preferences"]:
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
        key = AuthKey(
            id=f"k{minted['id']}CNTRL",
            headscale_id=str(minted["id"]),
            description=description,
            capabilities={"devices": {"create": {**create, "tags": tags}}},
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
        extras = self._extras.setdefault(device["id"], _DeviceExtras())
        payload = json.loads(body or b"{}") if method == "POST" else {}
        if not rest and method == "GET":
            return 200, device, {}
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
                try:
                    status, payload, extra = standin.handle(
                        self.command, urlsplit(self.path).path, dict(self.headers), body
                    )
                except ApiError as error:
                    status, extra = error.status, {}
                    payload = {"message": error.message}
                    if error.data is not None:
                        payload["data"] = error.data
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
