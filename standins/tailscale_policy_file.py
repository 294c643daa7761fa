"""The tailnet policy file behind the Tailscale API stand-in: its HuJSON text and ETag, the
`If-Match` preconditions, the checks a write or a validation runs, and how it is answered.

Wire rules (Tailscale's API documentation, publicapi/tailnet.md, and the Go client
tailscale.com/client/tailscale/v2 the pulumi-tailscale provider uses):
- `GET` and `POST .../acl` answer JSON only when `Accept` asks for `application/json`, HuJSON
  (`Content-Type: application/hujson`) otherwise, with the policy's `ETag`;
- `If-Match: "ts-default"` succeeds only while the policy is the untouched default; any other
  `If-Match` must equal the current ETag; else 412;
- a write whose `tests`/`sshTests` fail answers 400 `test(s) failed` with `data` as one
  `{"user": <test src>, "errors": [...]}` per failing source (the client's APIErrorData);
- an empty body resets the policy to the default (the provider's reset on destroy sends
  `Set(ctx, "", "")`); the stand-in then treats the policy as the default again for
  `ts-default`, which is our reading, not documented;
- `POST .../acl/validate` answers 200 in every case: an empty body when the policy (or the
  array of tests run against the current policy) passes, else `{"message", "data"}`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from coral_infra import hujson
from coral_infra.policy import DEFAULT_POLICY, evaluate_tests
from standins.tailscale_api_wire import ApiError

# Tailscale's default policy of a new tailnet (allow all; SSH check to your own devices).
DEFAULT_POLICY_TEXT = f"// Default policy.\n{json.dumps(DEFAULT_POLICY, indent=chr(9))}\n"
PRECONDITION_FAILED = "precondition failed, invalid old hash"


def _parse(text: str) -> dict[str, Any]:
    try:
        document = hujson.loads(text, "tailnet policy")
    except hujson.HujsonError as error:
        raise ApiError(400, f"parsing policy: {error}") from None
    if not isinstance(document, dict):
        raise ApiError(400, "parsing policy: the policy must be a JSON object")
    return document


@dataclass
class PolicyFile:
    """`roles` maps each login of the tailnet to its role, for the policy's self-tests."""

    roles: Mapping[str, str]
    on_policy: Callable[[dict[str, Any]], None] | None = None
    """Called with each policy document a write would commit (the sandbox loads it into
    headscale); raising ApiError refuses the write."""
    text: str = DEFAULT_POLICY_TEXT
    is_default: bool = True

    @property
    def document(self) -> dict[str, Any]:
        return _parse(self.text)

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.text.encode()).hexdigest() + '"'

    def owned_tags(self) -> set[str]:
        return set((self.document.get("tagOwners") or {}).keys())

    def answer(self, accept: str) -> tuple[Any, dict[str, str]]:
        """The policy as `Accept` asks for it: a JSON-able document or the HuJSON text."""
        if "application/json" in accept:
            return self.document, {"ETag": self.etag, "Content-Type": "application/json"}
        return self.text, {"ETag": self.etag, "Content-Type": "application/hujson"}

    def replace(self, text: str, if_match: str | None) -> None:
        """A `POST .../acl`: the whole policy, or the default for an empty body."""
        reset = not text.strip()
        document = DEFAULT_POLICY if reset else _parse(text)
        if if_match is not None:
            wanted = if_match.strip()
            current = '"ts-default"' if self.is_default else None
            if wanted not in (current, self.etag):
                raise ApiError(412, PRECONDITION_FAILED)
        problem = self.problem(document)
        if problem is not None:
            raise problem
        if self.on_policy is not None:
            self.on_policy(dict(document))
        self.text = DEFAULT_POLICY_TEXT if reset else text
        self.is_default = reset

    def validate(self, body: str) -> ApiError | None:
        """A `POST .../acl/validate`: what is wrong with the policy (or with the current
        policy under an array of tests), None when nothing is."""
        try:
            parsed = hujson.loads(body, "tailnet policy")
        except hujson.HujsonError as error:
            return ApiError(400, f"parsing policy: {error}")
        if isinstance(parsed, list):
            return self.problem({**self.document, "tests": parsed, "sshTests": []})
        if not isinstance(parsed, dict):
            return ApiError(400, "parsing policy: the policy must be a JSON object")
        return self.problem(parsed)

    def problem(self, document: Mapping[str, Any]) -> ApiError | None:
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
            return ApiError(400, f"tag not found: {missing[0]!r}", [{"errors": missing}])
        failures = self.failures_by_user(document)
        if failures:
            return ApiError(400, "test(s) failed", failures)
        return None

    def failures_by_user(self, document: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Each test run on its own, so every failure is reported under its test's `src`."""
        by_user: dict[str, list[str]] = {}
        for section in ("sshTests", "tests"):
            for test in document.get(section) or []:
                alone = {**document, "sshTests": [], "tests": [], section: [test]}
                failures = evaluate_tests(alone, self.roles)
                if failures:
                    by_user.setdefault(str(test.get("src", "")), []).extend(failures)
        return [{"user": user, "errors": errors} for user, errors in by_user.items()]
