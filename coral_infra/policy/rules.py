"""One stack's part of the tailnet policy, rendered from its settings (pure functions).

Each environment (stack) gets: a `tagOwners` entry for its machine tag; an `ssh` rule for its
sources; an `acls` rule letting those sources reach the machine on 22 (Tailscale SSH), 2222
(the pod's sshd) and 11111 (ParaView). The owner stack merges these into the whole document
(`merge.py`); every other stack checks, with :func:`missing_rules`, that the live policy holds
them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from coral_infra.settings import NAMESPACE, Settings, TailnetSettings

TAILSCALE_SSH_PORT = 22
POD_SSHD_PORT = 2222
PARAVIEW_PORT = 11111
MACHINE_PORTS = (TAILSCALE_SSH_PORT, POD_SSHD_PORT, PARAVIEW_PORT)

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
    """The live policy is not what this stack needs; the message says what to change."""


@dataclass(frozen=True)
class Environment:
    """One stack's part of the tailnet policy."""

    stack: str
    tailnet: TailnetSettings
    hostnames: tuple[str, ...]
    """Its machines' hostnames: two stacks on one tailnet must not share one."""
    listed_at: int | None = None
    """Its index in the owner's `coral:tailnet.policy.environments`; None for the owner."""

    @classmethod
    def from_settings(
        cls, stack: str, settings: Settings, listed_at: int | None = None
    ) -> Environment:
        return cls(stack, settings.tailnet, tuple(m.hostname for m in settings.machines), listed_at)

    def key(self, setting: str) -> str:
        """Where the owner's report locates a problem with one of this stack's settings: the
        setting itself on the owner, the `environments` entry naming this stack otherwise."""
        if self.listed_at is None:
            return f"{NAMESPACE}:tailnet.{setting}"
        return f"{NAMESPACE}:tailnet.policy.environments[{self.listed_at}]"

    def describe(self, setting: str) -> str:
        """The setting as a reader finds it: `stack 'dev' coral:tailnet.ssh.src`."""
        return f"stack {self.stack!r} {NAMESPACE}:tailnet.{setting}"


def _ports_selector(tag: str) -> str:
    return f"{tag}:{','.join(str(p) for p in MACHINE_PORTS)}"


def ssh_rule(tailnet: TailnetSettings) -> dict[str, Any]:
    """The environment's Tailscale SSH rule: its sources, as its users, on its tag."""
    ssh = tailnet.ssh
    rule: dict[str, Any] = {
        "action": ssh.action,
        "src": list(ssh.src),
        "dst": [tailnet.machine_tag],
        "users": list(ssh.users),
    }
    if ssh.effective_check_period is not None:
        rule["checkPeriod"] = ssh.effective_check_period
    return rule


def network_rule(tailnet: TailnetSettings) -> dict[str, Any]:
    """The network access its SSH sources need: Tailscale SSH, the pod's sshd, ParaView."""
    return {
        "action": "accept",
        "src": list(tailnet.ssh.src),
        "dst": [_ports_selector(tailnet.machine_tag)],
    }


def environment_rules(tailnet: TailnetSettings) -> dict[str, Any]:
    """The `tagOwners`, `ssh` and `acls` entries one environment needs (no tests)."""
    return {
        "tagOwners": {tailnet.machine_tag: list(tailnet.tag_owners)},
        "ssh": [ssh_rule(tailnet)],
        "acls": [network_rule(tailnet)],
    }


def normalized(entry: Any) -> Any:
    """Order of names inside a rule does not change its meaning; compare rules without it."""
    if isinstance(entry, dict):
        return {k: normalized(v) for k, v in sorted(entry.items())}
    if isinstance(entry, list) and all(isinstance(v, str) for v in entry):
        return sorted(entry)
    if isinstance(entry, list):
        return [normalized(v) for v in entry]
    return entry


def contains(entries: Iterable[Any], entry: Any) -> bool:
    wanted = normalized(entry)
    return any(normalized(e) == wanted for e in entries)


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
            if not contains(live_policy.get(section) or [], rule):
                missing.append(f"{section}: no rule {json.dumps(rule)}")
    return missing
