"""The tailnet the stack files describe, brought up on a testbed: the owner stack's policy in
headscale, the owner and a plain member as users, and the two kinds of machine (prod, dev).

What integration tests, the conformance run and the bootstrap benchmark share; headscale and
the nodes themselves are in headscale.py and tailscale_node.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coral_infra.policy import policy_for_stack
from coral_infra.settings import load_stack
from standins.headscale import Headscale, adapt_policy_for_headscale, start_headscale
from standins.tailscale_node import TailscaleNode
from standins.testbed import Testbed

# The stack that owns the tailnet policy; its document also carries the rules of its
# `environments` (dev), so one headscale serves both kinds of machine.
OWNER_STACK = "prod"
DEV_STACK = "dev"


@dataclass(frozen=True)
class MachineKind:
    """A machine of one stack: the hostname and tag its pod registers with."""

    hostname: str
    tag: str
    ssh_action: str


@dataclass(frozen=True)
class TailnetPlan:
    """What the stack files say the tailnet looks like."""

    raw_policy: dict[str, Any]
    policy: dict[str, Any]
    owner_login: str
    member_login: str
    prod: MachineKind
    dev: MachineKind


def _machine_kind(stack: str) -> MachineKind:
    settings = load_stack(stack)
    return MachineKind(
        settings.machines[0].hostname, settings.tailnet.machine_tag, settings.tailnet.ssh.action
    )


def load_tailnet_plan() -> TailnetPlan:
    owner = load_stack(OWNER_STACK)
    tests = owner.tailnet.policy.tests
    if tests is None:
        raise ValueError(f"stack {OWNER_STACK} owns the policy and must name test users")
    raw = policy_for_stack(OWNER_STACK)
    return TailnetPlan(
        raw_policy=raw,
        policy=adapt_policy_for_headscale(raw, tests.allowed),
        owner_login=tests.allowed,
        member_login=tests.denied,
        prod=_machine_kind(OWNER_STACK),
        dev=_machine_kind(DEV_STACK),
    )


@dataclass
class Tailnet:
    headscale: Headscale
    owner_id: int
    member_id: int


def start_tailnet(testbed: Testbed, bin_dir: Path, plan: TailnetPlan) -> Tailnet:
    headscale = start_headscale(testbed, bin_dir, plan.policy)
    owner_id = headscale.create_user(plan.owner_login.split("@")[0], plan.owner_login)
    member_id = headscale.create_user(plan.member_login.split("@")[0], plan.member_login)
    return Tailnet(headscale, owner_id, member_id)


@dataclass
class SharedTailnet:
    """One headscale with both users' laptops online, shared by a module's SSH tests."""

    testbed: Testbed
    tailnet: Tailnet
    owner_laptop: TailscaleNode
    member_laptop: TailscaleNode
