"""Stacks and projects for the policy tests: settings as a stack file would give them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from coral_infra.policy import Environment
from coral_infra.settings import parse_settings

ALLOWED = "ana@corp.io"
DENIED = "ben@corp.io"
ROLES = {ALLOWED: "owner", DENIED: "member"}


def stack(
    name: str, tailnet: dict[str, Any], hostname: str, listed_at: int | None = None
) -> Environment:
    settings = parse_settings(
        {
            "coral:tailnet": tailnet,
            "coral:machines": [{"hostname": hostname, "volume": {"kind": "pod"}}],
        },
        source=name,
    )
    return Environment.from_settings(name, settings, listed_at)


def owner(ssh: dict[str, Any] | None = None, **policy: Any) -> Environment:
    tailnet = {
        "ssh": ssh or {"action": "check", "checkPeriod": "12h"},
        "policy": {"owner": True, "tests": {"allowed": ALLOWED, "denied": DENIED}, **policy},
    }
    return stack("prod", tailnet, "coral-machine")


def dev(listed_at: int | None = 0, **tailnet: Any) -> Environment:
    return stack("dev", {"machineTag": "tag:coral-dev", **tailnet}, "coral-dev", listed_at)


def ssh_rule(document: dict[str, Any], tag: str) -> dict[str, Any]:
    (rule,) = [r for r in document["ssh"] if r["dst"] == [tag]]
    return rule


def write_project(root: Path, stacks: dict[str, dict[str, Any]], policy: str | None = None) -> Path:
    """A Pulumi project directory with these stack files (name -> config) and, optionally,
    policy/tailnet.hujson."""
    (root / "stacks").mkdir(parents=True, exist_ok=True)
    (root / "Pulumi.yaml").write_text("name: coral\nruntime: python\nstackConfigDir: stacks\n")
    for name, config in stacks.items():
        (root / "stacks" / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))
    if policy is not None:
        (root / "policy").mkdir(exist_ok=True)
        (root / "policy" / "tailnet.hujson").write_text(policy)
    return root


def owner_config(**policy: Any) -> dict[str, Any]:
    return {
        "coral:tailnet": {
            "machineTag": "tag:coral-machine",
            "ssh": {"action": "check"},
            "policy": {"owner": True, "tests": {"allowed": ALLOWED, "denied": DENIED}, **policy},
        },
        "coral:machines": [
            {"hostname": "coral-machine", "dataCenter": "EU-RO-1", "volume": {"kind": "network"}}
        ],
    }


def member_config(
    tag: str = "tag:coral-dev", hostname: str = "coral-dev", **tailnet: Any
) -> dict[str, Any]:
    return {
        "coral:tailnet": {"machineTag": tag, **tailnet},
        "coral:machines": [{"hostname": hostname, "volume": {"kind": "pod"}}],
    }
