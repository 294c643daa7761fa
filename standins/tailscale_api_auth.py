"""Who may call the Tailscale API stand-in, and what: API access tokens and OAuth clients.

Tailscale's rules (publicapi/overview.md; the OAuth client flow of
tailscale.com/client/tailscale/v2, oauth.go):
- an API access token is sent as HTTP Basic `<token>:` or `Authorization: Bearer <token>`
  and acts with its user's full permissions; anything else answers 401 "API token invalid";
- an OAuth client trades its id and secret at `POST /api/v2/oauth/token` (client
  credentials grant, the secret in HTTP Basic or in the form) for a short-lived Bearer token
  carrying the client's scopes, or the subset it asks for;
- a token used outside its scopes answers 403 "calling actor does not have enough
  permissions to perform this function". Scopes: `all`, `all:read`, and per resource
  `policy_file`, `auth_keys`, `devices:core`, `dns`, each with a `:read` form; a write scope
  includes reading, and validating a policy file only needs `policy_file:read`.
The token endpoint's error body (`{"error": "invalid_client"}`, RFC 6749) is our reading:
the client only surfaces its status.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

from standins.tailscale_api_wire import ApiError

TOKEN_PATH = "/api/v2/oauth/token"
TOKEN_LIFETIME_S = 3600
FULL_ACCESS = frozenset({"all"})
NOT_PERMITTED = "calling actor does not have enough permissions to perform this function"
RESOURCES = ("policy_file", "auth_keys", "devices:core", "dns")
SCOPES = frozenset({"all", "all:read"} | {f"{r}{s}" for r in RESOURCES for s in ("", ":read")})


@dataclass(frozen=True)
class OAuthClient:
    secret: str
    scopes: frozenset[str]

    def __post_init__(self) -> None:
        unknown = sorted(self.scopes - SCOPES)
        if unknown:
            raise ValueError(f"unknown OAuth scopes {unknown}; known: {sorted(SCOPES)}")


class TokenError(Exception):
    """A refused token request: answered as RFC 6749's `{"error": ...}`."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.body = {"error": error, "error_description": description}


@dataclass
class Credentials:
    api_key: str
    oauth_clients: Mapping[str, OAuthClient] = field(default_factory=dict)
    _tokens: dict[str, tuple[frozenset[str], float]] = field(default_factory=dict)

    def scopes(self, authorization: str) -> frozenset[str]:
        """The scopes of the credential in an `Authorization` header; 401 when it has none."""
        presented = ""
        if authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode(errors="replace")
            presented = decoded.split(":", 1)[0]
        elif authorization.startswith("Bearer "):
            presented = authorization[7:]
        if presented and secrets.compare_digest(presented, self.api_key):
            return FULL_ACCESS
        token = self._tokens.get(presented)
        if token is not None and token[1] > time.monotonic():
            return token[0]
        raise ApiError(401, "API token invalid")

    def issue_token(self, authorization: str, body: bytes) -> dict[str, object]:
        """`POST /api/v2/oauth/token`: a Bearer token for a valid client."""
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode(errors="replace")
            client_id, _, secret = (unquote(p) for p in decoded.partition(":"))
        if form.get("grant_type") != "client_credentials":
            raise TokenError(400, "unsupported_grant_type", "only client_credentials is granted")
        client = self.oauth_clients.get(client_id)
        if client is None or not secrets.compare_digest(secret, client.secret):
            raise TokenError(401, "invalid_client", "unknown OAuth client or wrong secret")
        asked = frozenset(form.get("scope", "").split()) or client.scopes
        beyond = sorted(scope for scope in asked if not covers(client.scopes, scope))
        if beyond:
            extra = " ".join(beyond)
            raise TokenError(400, "invalid_scope", f"scopes not granted to this client: {extra}")
        token = f"tskey-api-{secrets.token_hex(12)}"
        self._tokens[token] = (asked, time.monotonic() + TOKEN_LIFETIME_S)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
            "scope": " ".join(sorted(asked)),
        }


def covers(granted: frozenset[str], scope: str) -> bool:
    """Whether `granted` includes `scope`: `all` includes everything, a write scope its
    `:read` form, `all:read` every `:read` scope."""
    if scope in granted or "all" in granted:
        return True
    base = scope.removesuffix(":read")
    return base != scope and (base in granted or "all:read" in granted)


def require_scope(granted: frozenset[str], resource: str, write: bool) -> None:
    """403 unless `granted` covers reading (or, for `write`, changing) `resource`."""
    if not covers(granted, resource if write else f"{resource}:read"):
        raise ApiError(403, NOT_PERMITTED)
