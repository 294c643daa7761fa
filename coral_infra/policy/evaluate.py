"""Tailscale's access decisions, modelled closely enough to run a policy's own self-tests.

Used to check the rendered self-tests before the control plane does, to find base-policy tests
a merge would break, and by the Tailscale API stand-in to run the tests it is POSTed.

Principals (a test's `src`): a user login ("alice@example.com"), whose role comes from a
`roles` map (login -> "owner", "admin", "member", ...; every user is in autogroup:member and
in `autogroup:<their role>` only; None: a user whose role is not known here), or a tag
("tag:ci") standing for a device with that tag. Destinations: tags only (a device carrying that
tag); that is what coral machines are. Matching is three-valued: True, False, or None when the
policy uses something the model cannot resolve without device inventory (IPs, CIDRs, hosts,
ipsets, postures, via) or a role it does not know. Access is denied by default; network access
is the union of `acls` and `grants` (`ip`); Tailscale SSH takes the first `ssh` rule matching
source, destination and Unix user.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

SshDecision = Literal["accept", "check", "deny"]
Roles = Mapping[str, str | None]
"""login -> role ("owner", "admin", "member", ...), None where the role is not known."""
_PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "sctp": 132, "igmp": 2, "ipv6-icmp": 58}
_DEFAULT_PROTOCOLS = {6, 17, 1, 58}
_PORT_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


class PolicyTestError(ValueError):
    """A test the evaluator cannot run (unknown user, unsupported source or destination)."""


def _and(*values: bool | None) -> bool | None:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _any(values: Iterable[bool | None]) -> bool | None:
    result: bool | None = False
    for value in values:
        if value is True:
            return True
        if value is None:
            result = None
    return result


def _principal(src: str, roles: Roles) -> str:
    if src.startswith("tag:"):
        return src
    if "@" in src:
        if src not in roles:
            raise PolicyTestError(f"test src {src!r} is not a known user (known: {sorted(roles)})")
        return src
    raise PolicyTestError(f"test src {src!r}: the evaluator supports user logins and tags only")


def source_matches(
    selector: str, principal: str, policy: Mapping[str, Any], roles: Roles
) -> bool | None:
    """Does an acls/grants/ssh `src` entry cover the principal (login or tag)?"""
    is_tag = principal.startswith("tag:")
    if selector in ("*", "autogroup:danger-all"):
        return True
    if selector.startswith("tag:"):
        return selector == principal
    if selector == "autogroup:tagged":
        return is_tag
    if selector in ("autogroup:shared", "autogroup:internet", "autogroup:self"):
        return False
    if selector == "autogroup:member":
        return not is_tag
    if selector.startswith("autogroup:"):
        if is_tag:
            return False
        role = roles.get(principal)
        return None if role is None else role == selector.removeprefix("autogroup:")
    if selector.startswith("group:"):
        members = (policy.get("groups") or {}).get(selector, [])
        return not is_tag and principal in members
    if "@" in selector:
        return selector == principal
    return None  # an IP, CIDR, host or ipset: needs device addresses


def destination_matches(selector: str, tag: str) -> bool | None:
    """Does a destination host selector cover a device carrying `tag`?"""
    if selector in ("*", tag, "autogroup:tagged"):
        return True
    if selector.startswith(("tag:", "autogroup:", "group:")) or "@" in selector:
        return False  # other tags; user-owned devices; the internet
    return None


def _port_matches(ports: str, port: int) -> bool:
    if ports == "*":
        return True
    for part in ports.split(","):
        match = _PORT_RANGE.match(part.strip())
        if match and int(match.group(1)) <= port <= int(match.group(2) or match.group(1)):
            return True
    return False


def _protocol(value: Any) -> int | None:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    return _PROTOCOLS.get(str(value).lower())


def _posture_gated(rule: Mapping[str, Any], policy: Mapping[str, Any]) -> bool:
    return bool(rule.get("srcPosture") or policy.get("defaultSrcPosture") or rule.get("via"))


def network_allowed(
    policy: Mapping[str, Any],
    src: str,
    dst_tag: str,
    port: int,
    roles: Roles,
    proto: str = "tcp",
) -> bool | None:
    """May `src` open a connection to `port` on a device tagged `dst_tag`?"""
    principal = _principal(src, roles)
    wanted = _protocol(proto)
    verdicts: list[bool | None] = []
    for rule in policy.get("acls") or []:
        rule_proto = rule.get("proto")
        if (_DEFAULT_PROTOCOLS if rule_proto is None else {_protocol(rule_proto)}).isdisjoint(
            {wanted}
        ):
            continue
        sources = rule.get("src", rule.get("users", []))
        verdict = _and(
            _any(source_matches(s, principal, policy, roles) for s in sources),
            _any(
                _and(destination_matches(host, dst_tag), _port_matches(ports, port))
                for host, _, ports in (
                    d.rpartition(":") for d in rule.get("dst", rule.get("ports", []))
                )
            ),
        )
        verdicts.append(None if verdict and _posture_gated(rule, policy) else verdict)
    for grant in policy.get("grants") or []:
        ip_ok = _any(_grant_ip_matches(entry, wanted, port) for entry in grant.get("ip") or [])
        verdict = _and(
            ip_ok,
            _any(source_matches(s, principal, policy, roles) for s in grant.get("src", [])),
            _any(destination_matches(d, dst_tag) for d in grant.get("dst", [])),
        )
        verdicts.append(None if verdict and _posture_gated(grant, policy) else verdict)
    return _any(verdicts)


def _grant_ip_matches(entry: str, proto: int | None, port: int) -> bool:
    if entry == "*":
        return True
    name, _, ports = entry.rpartition(":")
    if name and _protocol(name) != proto:
        return False
    return _port_matches(ports, port)


def _ssh_user_matches(pattern: str, unix_user: str, principal: str) -> bool:
    if pattern in ("*", unix_user):
        return True
    if pattern == "autogroup:nonroot":
        return unix_user != "root"
    if pattern.startswith("localpart:*@") and "@" in principal:
        local, _, domain = principal.partition("@")
        return unix_user == local and domain == pattern.removeprefix("localpart:*@")
    return False


def ssh_decision(
    policy: Mapping[str, Any],
    src: str,
    dst_tag: str,
    unix_user: str,
    roles: Roles,
) -> SshDecision | None:
    """What Tailscale SSH does when `src` logs in as `unix_user` on a device tagged `dst_tag`.

    The first matching rule decides; None when an earlier rule cannot be decided.
    """
    principal = _principal(src, roles)
    for rule in policy.get("ssh") or []:
        matched = _and(
            _any(source_matches(s, principal, policy, roles) for s in rule.get("src", [])),
            _any(destination_matches(d, dst_tag) for d in rule.get("dst", [])),
            any(_ssh_user_matches(u, unix_user, principal) for u in rule.get("users", [])),
        )
        if matched and _posture_gated(rule, policy):
            matched = None
        if matched is None:
            return None
        if matched:
            action = rule.get("action")
            return "check" if action == "check" else "accept"
    return "deny"


def _test_destination(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    if not host.startswith("tag:") or not port.isdigit():
        raise PolicyTestError(
            f"test destination {target!r}: the evaluator supports 'tag:name:port' only"
        )
    return host, int(port)


@dataclass(frozen=True)
class SelfTestResult:
    """One assertion of a policy's `sshTests` or `tests`, and what the policy decides."""

    section: Literal["sshTests", "tests"]
    index: int
    """Position of the test in its section."""
    src: str
    target: str
    """`tag:x` as `root` (sshTests) or `tag:x:22` (tests)."""
    expected: str
    got: str | None
    """The decision, or None when the model cannot decide (error says why, if it is one)."""
    error: str | None = None

    @property
    def holds(self) -> bool:
        return self.error is None and self.got == self.expected

    def __str__(self) -> str:
        if self.error is not None:
            return f"{self.section}: {self.error}"
        return (
            f"{self.section}: {self.src} -> {self.target}: expected {self.expected}, got "
            f"{self.got or 'undecidable'}"
        )


def run_self_tests(policy: Mapping[str, Any], roles: Roles) -> list[SelfTestResult]:
    """Every assertion of the policy's `sshTests` and `tests`, run as the control plane runs
    them on a policy update."""
    outcomes: list[SelfTestResult] = []
    for index, test in enumerate(policy.get("sshTests") or []):
        src = test.get("src", "")
        for dst in test.get("dst", []):
            for expected in ("accept", "check", "deny"):
                for unix_user in test.get(expected, []):
                    target = f"{dst} as {unix_user!r}"
                    try:
                        got = ssh_decision(policy, src, dst, unix_user, roles)
                    except PolicyTestError as error:
                        outcomes.append(
                            SelfTestResult(
                                "sshTests", index, src, target, expected, None, str(error)
                            )
                        )
                        continue
                    outcomes.append(SelfTestResult("sshTests", index, src, target, expected, got))
    for index, test in enumerate(policy.get("tests") or []):
        src = test.get("src", "")
        for expected in ("accept", "deny"):
            for target in test.get(expected, []):
                try:
                    tag, port = _test_destination(target)
                    allowed = network_allowed(
                        policy, src, tag, port, roles, test.get("proto", "tcp")
                    )
                except PolicyTestError as error:
                    outcomes.append(
                        SelfTestResult("tests", index, src, target, expected, None, str(error))
                    )
                    continue
                got = None if allowed is None else "accept" if allowed else "deny"
                outcomes.append(SelfTestResult("tests", index, src, target, expected, got))
    return outcomes


def evaluate_tests(policy: Mapping[str, Any], roles: Roles) -> list[str]:
    """Run a policy's `sshTests` and `tests` as the control plane does on a policy update.

    Returns one line per failed assertion (empty: all pass). An assertion the model cannot
    decide counts as failed, with the reason, so nothing unverified is reported as passing.
    """
    return [str(outcome) for outcome in run_self_tests(policy, roles) if not outcome.holds]
