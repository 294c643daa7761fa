"""The tailnet policy as pure functions of stack settings: no Pulumi runtime, no network.

Tailscale has one policy file per tailnet and the `Acl` resource replaces all of it, so exactly
one stack (the *owner*, `coral:tailnet.policy.owner: true`) writes it: the user's own policy
(`baseFile`, or Tailscale's default policy) with the rules of the owner and of every stack in
its `environments` merged in. Other stacks only check, with :func:`missing_rules`, that their
rules are in the live policy.

Each environment gets: a `tagOwners` entry for its machine tag; an `ssh` rule for its sources
(placed before the user's own rules, because Tailscale SSH uses the first rule that matches);
an `acls` rule letting those sources reach the machine on 22 (Tailscale SSH), 2222 (the pod's
sshd) and 11111 (ParaView); and `sshTests`/`tests` so the control plane rejects any later edit
that breaks the intended access or the intended denials.

The self-tests are only emitted where the small evaluator at the bottom of this module confirms
they hold on the merged document: a test the control plane would fail blocks every `up`. What is
left out (for example "a plain member cannot reach port 22" when the user's policy lets every
member reach every port) comes back as a warning saying why.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from coral_infra import hujson
from coral_infra.settings import PROJECT_ROOT, Settings, TailnetSettings, load_stack

TAILSCALE_SSH_PORT = 22
POD_SSHD_PORT = 2222
PARAVIEW_PORT = 11111
MACHINE_PORTS = (TAILSCALE_SSH_PORT, POD_SSHD_PORT, PARAVIEW_PORT)
# `autogroup:nonroot` is not a login name a test can use; this stands in for "any non-root user".
NONROOT_PROBE_USER = "coral"
OWNER_ROLE = "owner"
MEMBER_ROLE = "member"

# Tailscale's policy for a new tailnet: what a tailnet runs before anyone edits it. With no
# `baseFile` our rules are merged into this, so adopting coral-infra never locks anyone out.
# policy/tailnet.hujson is the same document with Tailscale's comments, as a starting point.
DEFAULT_POLICY: dict[str, Any] = {
    "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
    "ssh": [
        {
            "action": "check",
            "src": ["autogroup:member"],
            "dst": ["autogroup:self"],
            "users": ["autogroup:nonroot", "root"],
        }
    ],
    "nodeAttrs": [{"target": ["autogroup:member"], "attr": ["funnel"]}],
}


class PolicyError(ValueError):
    """The policy cannot be rendered or is not in place; the message says what to change."""


# --- one environment's rules --------------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    """One stack's part of the tailnet policy."""

    stack: str
    tailnet: TailnetSettings
    hostnames: tuple[str, ...]
    """Its machines' hostnames: two stacks on one tailnet must not share one."""

    @classmethod
    def from_settings(cls, stack: str, settings: Settings) -> Environment:
        return cls(stack, settings.tailnet, tuple(m.hostname for m in settings.machines))


def _ports_selector(tag: str) -> str:
    return f"{tag}:{','.join(str(p) for p in MACHINE_PORTS)}"


def environment_rules(tailnet: TailnetSettings) -> dict[str, Any]:
    """The `tagOwners`, `ssh` and `acls` entries one environment needs (no tests)."""
    ssh = tailnet.ssh
    rule: dict[str, Any] = {
        "action": ssh.action,
        "src": list(ssh.src),
        "dst": [tailnet.machine_tag],
        "users": list(ssh.users),
    }
    if ssh.effective_check_period is not None:
        rule["checkPeriod"] = ssh.effective_check_period
    return {
        "tagOwners": {tailnet.machine_tag: list(tailnet.tag_owners)},
        "ssh": [rule],
        "acls": [
            {
                "action": "accept",
                "src": list(ssh.src),
                "dst": [_ports_selector(tailnet.machine_tag)],
            }
        ],
    }


# --- rendering the owner's document -------------------------------------------------------


@dataclass(frozen=True)
class RenderedPolicy:
    """The whole policy document the owner stack applies, and what its self-tests leave out."""

    document: dict[str, Any]
    warnings: tuple[str, ...]

    def json(self) -> str:
        """The text the `Acl` resource sends, stable so an unchanged policy shows no diff.

        Tab-indented like the canonical HuJSON the API returns: the provider suppresses
        whitespace-only diffs, but shows a real change against the API's formatting
        (terraform-provider-tailscale#798), so staying close keeps that diff readable.
        """
        return json.dumps(self.document, indent="\t")


def _normalized(entry: Any) -> Any:
    """Order of names inside a rule does not change its meaning; compare rules without it."""
    if isinstance(entry, dict):
        return {k: _normalized(v) for k, v in sorted(entry.items())}
    if isinstance(entry, list) and all(isinstance(v, str) for v in entry):
        return sorted(entry)
    if isinstance(entry, list):
        return [_normalized(v) for v in entry]
    return entry


def _contains(entries: Iterable[Any], entry: Any) -> bool:
    wanted = _normalized(entry)
    return any(_normalized(e) == wanted for e in entries)


def _list_section(document: Mapping[str, Any], key: str, source: str) -> list[Any]:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise PolicyError(f"{source}: {key!r} must be a list, got {type(value).__name__}")
    return list(value)


def _check_environments(owner: Environment, environments: Sequence[Environment]) -> None:
    if not owner.tailnet.policy.owner:
        raise PolicyError(
            f"stack {owner.stack!r} is not the policy owner (coral:tailnet.policy.owner is "
            "false); only the owner renders the tailnet policy"
        )
    seen: dict[str, Environment] = {}
    for env in environments:
        if env.stack == owner.stack or env.stack in seen:
            raise PolicyError(
                f"coral:tailnet.policy.environments of stack {owner.stack!r} names "
                f"{env.stack!r} twice (or the owner itself); list each other stack once"
            )
        if env.tailnet.policy.owner:
            raise PolicyError(
                f"stack {env.stack!r} is listed in coral:tailnet.policy.environments of "
                f"{owner.stack!r} but is itself a policy owner; a tailnet has exactly one "
                f"owner: set owner: false on {env.stack!r} or remove it from the list"
            )
        seen[env.stack] = env
    everyone = [owner, *environments]
    for index, first in enumerate(everyone):
        for second in everyone[index + 1 :]:
            if first.tailnet.machine_tag == second.tailnet.machine_tag:
                raise PolicyError(
                    f"stacks {first.stack!r} and {second.stack!r} both use machine tag "
                    f"{first.tailnet.machine_tag!r}; give each stack its own "
                    "coral:tailnet.machineTag (their SSH rules and keys would mix)"
                )
            shared = sorted(set(first.hostnames) & set(second.hostnames))
            if shared:
                raise PolicyError(
                    f"stacks {first.stack!r} and {second.stack!r} both have a machine named "
                    f"{shared[0]!r} on one tailnet; the second would join as '{shared[0]}-1': "
                    "give each machine its own coral:machines[].hostname"
                )


def _merge_tag_owners(
    document: dict[str, Any], env: Environment, base_source: str, defined_by: dict[str, str]
) -> None:
    tag_owners = document.setdefault("tagOwners", {})
    if not isinstance(tag_owners, dict):
        raise PolicyError(f"{base_source}: 'tagOwners' must be an object")
    tag = env.tailnet.machine_tag
    ours = list(env.tailnet.tag_owners)
    theirs = tag_owners.get(tag)
    if theirs is not None and sorted(theirs) != sorted(ours):
        raise PolicyError(
            f"tagOwners[{tag!r}] is {theirs} in {defined_by.get(tag, base_source)} but stack "
            f"{env.stack!r} sets coral:tailnet.tagOwners to {ours}; make them the same (or "
            "remove the entry from the base policy and let coral-infra write it)"
        )
    tag_owners[tag] = ours
    defined_by.setdefault(tag, f"stack {env.stack!r}")


def _check_references(document: Mapping[str, Any], env: Environment) -> None:
    """Tailscale rejects a policy naming a tag or group it does not define; say it here."""
    tags = set(document.get("tagOwners", {}))
    groups = set(document.get("groups", {}))
    for field, names in (
        ("ssh.src", env.tailnet.ssh.src),
        ("tagOwners", env.tailnet.tag_owners),
    ):
        for name in names:
            if name.startswith("tag:") and name not in tags:
                raise PolicyError(
                    f"stack {env.stack!r}: coral:tailnet.{field} names {name!r}, which no "
                    "tagOwners entry defines; add it to the base policy's tagOwners"
                )
            if name.startswith("group:") and name not in groups:
                raise PolicyError(
                    f"stack {env.stack!r}: coral:tailnet.{field} names {name!r}, which the "
                    "base policy's groups do not define; add it there"
                )


def render_policy(
    owner: Environment,
    environments: Sequence[Environment],
    base: Mapping[str, Any] | None = None,
    base_source: str = "Tailscale's default policy",
) -> RenderedPolicy:
    """Merge the owner's and its environments' rules and self-tests into `base`.

    Every section of `base` is kept. Our `ssh` rules go first (first match wins in Tailscale
    SSH, and they only match our tags); an identical rule already in `base` (a base file copied
    from the live policy) is not duplicated. Self-tests use the owner's
    `coral:tailnet.policy.tests` users: `allowed` as the tailnet owner, `denied` as a plain
    member.
    """
    _check_environments(owner, environments)
    tests = owner.tailnet.policy.tests
    if tests is None:  # settings require it on the owner; kept for type narrowing
        raise PolicyError(f"stack {owner.stack!r}: coral:tailnet.policy.tests is required")
    base_document = copy.deepcopy(dict(base) if base is not None else DEFAULT_POLICY)
    document = base_document
    everyone = [owner, *environments]
    defined_by: dict[str, str] = {}
    for env in everyone:
        _merge_tag_owners(document, env, base_source, defined_by)
    for env in everyone:
        _check_references(document, env)

    our_ssh = [environment_rules(env.tailnet)["ssh"][0] for env in everyone]
    their_ssh = [
        r for r in _list_section(document, "ssh", base_source) if not _contains(our_ssh, r)
    ]
    document["ssh"] = our_ssh + their_ssh
    acls = _list_section(document, "acls", base_source)
    for env in everyone:
        rule = environment_rules(env.tailnet)["acls"][0]
        if not _contains(acls, rule):
            acls.append(rule)
    document["acls"] = acls

    # What our rules alone decide (with the user's groups): the intended outcome of each test.
    intended = {k: v for k, v in document.items() if k not in ("acls", "grants", "ssh")}
    intended["acls"] = [environment_rules(env.tailnet)["acls"][0] for env in everyone]
    intended["ssh"] = our_ssh
    roles = {tests.allowed: OWNER_ROLE, tests.denied: MEMBER_ROLE}
    ssh_tests: list[dict[str, Any]] = []
    net_tests: list[dict[str, Any]] = []
    warnings: list[str] = []
    for env in everyone:
        test_users: tuple[tuple[str, Literal["allowed", "denied"]], ...] = (
            (tests.allowed, "allowed"),
            (tests.denied, "denied"),
        )
        for user, role in test_users:
            ssh_test, net_test, notes = _self_tests(env, user, role, intended, document, roles)
            ssh_tests += [ssh_test] if ssh_test else []
            net_tests += [net_test] if net_test else []
            warnings += notes
    for section, ours in (("sshTests", ssh_tests), ("tests", net_tests)):
        entries = _list_section(document, section, base_source)
        entries += [t for t in ours if not _contains(entries, t)]
        if entries:
            document[section] = entries
    failures = evaluate_tests(
        {"sshTests": ssh_tests, "tests": net_tests, **_rules(document)}, roles
    )
    if failures:  # the tests were built from the same evaluator: this is a bug, not user input
        raise AssertionError(f"rendered self-tests do not hold: {failures}")
    return RenderedPolicy(document, tuple(warnings))


def _rules(document: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in ("sshTests", "tests")}


def _self_tests(
    env: Environment,
    user: str,
    role: Literal["allowed", "denied"],
    intended: Mapping[str, Any],
    merged: Mapping[str, Any],
    roles: Mapping[str, str],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[str]]:
    """One user's sshTests and tests entries for one environment, and what was left out."""
    tag = env.tailnet.machine_tag
    where = f"stack {env.stack!r} ({tag})"
    probes = list(
        dict.fromkeys(
            [u for u in env.tailnet.ssh.users if u != "autogroup:nonroot"]
            + ["root", NONROOT_PROBE_USER]
        )
    )
    wanted = {u: ssh_decision(intended, user, tag, u, roles) for u in probes}
    if role == "allowed" and all(d == "deny" for d in wanted.values()):
        return (
            None,
            None,
            [
                f"{where}: policy.tests.allowed {user!r} is not one of ssh.src "
                f"{env.tailnet.ssh.src} (as the tailnet owner); no tests written for them"
            ],
        )
    notes: list[str] = []
    if role == "denied" and wanted["root"] != "deny":
        notes.append(
            f"{where}: policy.tests.denied {user!r} may SSH as root under ssh.src "
            f"{env.tailnet.ssh.src} (as a plain member); pick a user who must not"
        )
    ssh_test: dict[str, list[str]] = {"accept": [], "check": [], "deny": []}
    for unix_user, decision in wanted.items():
        actual = ssh_decision(merged, user, tag, unix_user, roles)
        if decision is None or decision != actual:
            notes.append(
                f"{where}: not testing that {user} gets {decision} as {unix_user!r}: the "
                f"merged policy gives {actual or 'an outcome the evaluator cannot decide'}"
            )
        elif role == "allowed" or decision == "deny":
            ssh_test[decision].append(unix_user)
    net_test: dict[str, list[str]] = {"accept": [], "deny": []}
    undecided: dict[str, list[str]] = {}
    for port in MACHINE_PORTS:
        want = network_allowed(intended, user, tag, port, roles)
        actual_net = network_allowed(merged, user, tag, port, roles)
        verdict = "accept" if want else "deny"
        if want is None or want != actual_net:
            undecided.setdefault(verdict, []).append(str(port))
        elif role == "allowed" or verdict == "deny":
            net_test[verdict].append(f"{tag}:{port}")
    for verdict, ports in undecided.items():
        notes.append(
            f"{where}: not testing that {user} is {'allowed' if verdict == 'accept' else 'denied'}"
            f" {tag}:{','.join(ports)}: the base policy's acls/grants decide otherwise or cannot "
            "be evaluated (Tailscale's default allow-all rule lets every member reach every "
            "port; narrow it to have this tested)"
        )
    ssh_entry = {"src": user, "dst": [tag], **{k: v for k, v in ssh_test.items() if v}}
    net_entry = {"src": user, **{k: v for k, v in net_test.items() if v}}
    return (
        ssh_entry if len(ssh_entry) > 2 else None,
        net_entry if len(net_entry) > 1 else None,
        notes,
    )


def read_base_policy(base_file: str | None) -> tuple[dict[str, Any] | None, str]:
    """The owner's base policy (`baseFile`, relative to the project root) and its name."""
    if base_file is None:
        return None, "Tailscale's default policy"
    path = Path(base_file) if Path(base_file).is_absolute() else PROJECT_ROOT / base_file
    if not path.is_file():
        raise PolicyError(
            f"coral:tailnet.policy.baseFile: no file {path}; keep the tailnet's existing "
            "policy there (start from policy/tailnet.hujson) or unset baseFile"
        )
    document = hujson.loads(path.read_text(), str(base_file))
    if not isinstance(document, dict):
        raise PolicyError(f"{base_file}: a policy file is an object ({{...}})")
    return document, str(base_file)


def render_owner_policy(owner: Environment) -> RenderedPolicy:
    """The owner's document, its environments and base file read from the repository."""
    environments = [
        Environment.from_settings(name, load_stack(name))
        for name in owner.tailnet.policy.environments
    ]
    base, source = read_base_policy(owner.tailnet.policy.base_file)
    return render_policy(owner, environments, base, source)


def policy_for_stack(stack: str) -> dict[str, Any]:
    """The full policy document the given owner stack would apply, from the stack files."""
    settings = load_stack(stack)
    if not settings.tailnet.policy.owner:
        raise PolicyError(
            f"stack {stack!r} does not own the tailnet policy (coral:tailnet.policy.owner is "
            f"false), and which stack does is unknown from its config; render the owner "
            "stack instead, or set owner: true on the one stack per tailnet that writes it"
        )
    return render_owner_policy(Environment.from_settings(stack, settings)).document


def missing_rules(live_policy: Mapping[str, Any], settings: TailnetSettings) -> list[str]:
    """What of this environment's tagOwners/ssh/acls the live policy lacks, one line each."""
    rules = environment_rules(settings)
    missing: list[str] = []
    tag = settings.machine_tag
    (owners,) = rules["tagOwners"].values()
    live_owners = (live_policy.get("tagOwners") or {}).get(tag)
    if live_owners is None:
        missing.append(f"tagOwners: {tag!r} is not declared (want owners {owners})")
    elif sorted(live_owners) != sorted(owners):
        missing.append(f"tagOwners: {tag!r} is owned by {live_owners}, want {owners}")
    for section in ("ssh", "acls"):
        for rule in rules[section]:
            if not _contains(live_policy.get(section) or [], rule):
                missing.append(f"{section}: no rule {json.dumps(rule)}")
    return missing


# --- evaluating sshTests / tests ----------------------------------------------------------
#
# A small model of how Tailscale decides access, enough to check policy self-tests before the
# control plane does (and for a stand-in of the Tailscale API to run the tests it is POSTed).
#
# Principals (a test's `src`): a user login ("alice@example.com"), whose role comes from a
# `roles` map (login -> "owner", "admin", "member", ...; every user is in autogroup:member and
# in `autogroup:<their role>` only), or a tag ("tag:ci") standing for a device with that tag.
# Destinations: tags only (a device carrying that tag); that is what coral machines are.
# Matching is three-valued: True, False, or None when the policy uses something the model
# cannot resolve without device inventory (IPs, CIDRs, hosts, ipsets, postures, via). Access is
# denied by default; network access is the union of `acls` and `grants` (`ip`); Tailscale SSH
# takes the first `ssh` rule matching source, destination and Unix user.

SshDecision = Literal["accept", "check", "deny"]
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


def _principal(src: str, roles: Mapping[str, str]) -> str:
    if src.startswith("tag:"):
        return src
    if "@" in src:
        if src not in roles:
            raise PolicyTestError(f"test src {src!r} is not a known user (known: {sorted(roles)})")
        return src
    raise PolicyTestError(f"test src {src!r}: the evaluator supports user logins and tags only")


def source_matches(
    selector: str, principal: str, policy: Mapping[str, Any], roles: Mapping[str, str]
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
        return not is_tag and roles.get(principal) == selector.removeprefix("autogroup:")
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
    roles: Mapping[str, str],
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
    roles: Mapping[str, str],
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


def evaluate_tests(policy: Mapping[str, Any], roles: Mapping[str, str]) -> list[str]:
    """Run a policy's `sshTests` and `tests` as the control plane does on a policy update.

    Returns one line per failed assertion (empty: all pass). An assertion the model cannot
    decide counts as failed, with the reason, so nothing unverified is reported as passing.
    """
    failures: list[str] = []
    for test in policy.get("sshTests") or []:
        src = test.get("src", "")
        for dst in test.get("dst", []):
            for expected in ("accept", "check", "deny"):
                for unix_user in test.get(expected, []):
                    try:
                        got = ssh_decision(policy, src, dst, unix_user, roles)
                    except PolicyTestError as error:
                        failures.append(f"sshTests: {error}")
                        continue
                    if got != expected:
                        failures.append(
                            f"sshTests: {src} -> {dst} as {unix_user!r}: expected {expected}, "
                            f"got {got or 'undecidable'}"
                        )
    for test in policy.get("tests") or []:
        src = test.get("src", "")
        for expected in ("accept", "deny"):
            for target in test.get(expected, []):
                try:
                    tag, port = _test_destination(target)
                    allowed = network_allowed(
                        policy, src, tag, port, roles, test.get("proto", "tcp")
                    )
                except PolicyTestError as error:
                    failures.append(f"tests: {error}")
                    continue
                if allowed is None or allowed != (expected == "accept"):
                    outcome = "undecidable" if allowed is None else "accept" if allowed else "deny"
                    failures.append(f"tests: {src} -> {target}: expected {expected}, got {outcome}")
    return failures
