"""What a stack would create, rendered offline from its stack file: no account, no engine.

    python -m coral_infra.render dev

It runs the same checks as `pulumi up` runs before creating anything (coral_infra/preflight.py:
settings, the tailnet policy across the stack files, what the providers' check refuses, and,
with RUNPOD_API_KEY in the environment and only then, RunPod's catalog read once through the
API the stack uses) and reports every problem of the stack at once; a stack that renders
cleanly fails in `up` only on what needs the live APIs (capacity, credentials, the live
tailnet policy). With a key it also shows each machine's price per hour.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from coral_infra import bootstrap
from coral_infra.machine import network_volume_spec, pod_spec
from coral_infra.policy import environment_rules, missing_rules
from coral_infra.preflight import StackPlan, preflight_stack_file
from coral_infra.runpod import api
from coral_infra.settings import PROJECT_ROOT, Settings, SettingsError
from coral_infra.ssh_config import ssh_command, ssh_config_block

SECRET_PLACEHOLDER = "[secret: the tailnet auth key, set during `pulumi up`]"


def _section(title: str, body: str) -> str:
    return f"== {title} ==\n{body.rstrip()}\n"


def _policy_section(plan: StackPlan) -> str:
    warnings = plan.policy.warnings if plan.policy else ()
    notes = "".join(f"note: {note}\n" for note in (*warnings, *plan.notes))
    if plan.policy is not None:
        return _section(
            f"tailnet policy (written by this stack, the owner) [{plan.stack}]",
            notes + plan.policy.json(),
        )
    rules = json.dumps(environment_rules(plan.settings.tailnet), indent=2)
    owner = plan.owner
    if owner is not None and owner.policy is not None:
        missing = missing_rules(owner.policy.document, plan.settings.tailnet)
        notes += (
            f"stack {owner.stack!r} owns the tailnet policy and renders these rules from this "
            "commit; deploy its policy first (README: Rollout order)\n"
            if not missing
            else f"stack {owner.stack!r} owns the tailnet policy but its rendering lacks: "
            f"{'; '.join(missing)}\n"
        )
    return _section(
        f"tailnet policy rules this stack requires (owned by another stack) [{plan.stack}]",
        "`pulumi up` checks that the live policy holds these.\n" + notes + rules,
    )


def _auth_key_section(settings: Settings) -> str:
    key = settings.tailnet.auth_key
    body = {
        "reusable": True,
        "ephemeral": False,
        "preauthorized": True,
        "tags": [settings.tailnet.machine_tag],
        "expirySeconds": key.expiry_days * 86400,
        "description": key.description,
    }
    return _section("auth key", json.dumps(body, indent=2))


def _pod_section(stack: str, settings: Settings) -> str:
    parts = []
    for machine in settings.machines:
        spec: dict[str, Any] = pod_spec(stack, machine, settings.tailnet.login_server)
        env = dict(spec["env"])
        digest = spec.pop("bootstrap_script")
        # What the pod provider adds for the digest: start.sh, and idle_stop.sh with the idle stop.
        for name, path in bootstrap.injected_files_of(digest).items():
            size = path.stat().st_size
            env[name] = f"[base64 of coral_infra/bootstrap/{path.name}, {size} bytes]"
        env[bootstrap.AUTH_KEY_ENV] = SECRET_PLACEHOLDER
        shown = {**spec, "env": env}
        volume = network_volume_spec(stack, machine)
        if volume is not None:
            shown["network_volume"] = {
                **volume,
                "retained_on_destroy": machine.volume.retain_on_destroy,
            }
        parts.append(_section(f"pod {machine.hostname}", json.dumps(shown, indent=2)))
    return "\n".join(parts)


def _ssh_section(settings: Settings) -> str:
    user = settings.tailnet.ssh.login_user
    blocks = "\n".join(ssh_config_block(m.hostname, m.hostname, user) for m in settings.machines)
    commands = "\n".join(ssh_command(user, m.hostname) for m in settings.machines)
    return "\n".join(
        [
            _section(
                "SSH config (HostName becomes the MagicDNS name once the device joined)", blocks
            ),
            _section("Tailscale SSH, no SSH config needed (output sshCommand)", commands),
        ]
    )


def _price_section(plan: StackPlan) -> str:
    """RunPod's list price per machine; the catalog is read only when a key is available."""
    lines = [str(price) for price in plan.prices]
    if plan.catalog_skipped:
        lines.append(
            f"set {api.API_KEY_ENV} to check GPU types and data centers against RunPod's "
            "catalog and show each machine's price (one API call; none without a key)"
        )
    return _section(f"price per hour (RunPod API: {plan.settings.runpod.api})", "\n".join(lines))


def _warnings_section(plan: StackPlan) -> str:
    """What may fail or surprise at `up` although the stack is valid."""
    return _section("warnings", "\n".join(plan.warnings)) if plan.warnings else ""


def render(stack: str, project_dir: Path = PROJECT_ROOT) -> str:
    """The whole report for one stack (offline unless RUNPOD_API_KEY is set); SettingsError
    with every problem at once."""
    plan = preflight_stack_file(stack, project_dir)
    sections = [
        _policy_section(plan),
        _auth_key_section(plan.settings),
        _pod_section(stack, plan.settings),
        _price_section(plan),
        _ssh_section(plan.settings),
        _warnings_section(plan),
    ]
    return "\n".join(section for section in sections if section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", help="stack name: the file stacks/Pulumi.<stack>.yaml")
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=PROJECT_ROOT,
        help="the Pulumi project (Pulumi.yaml, stacks/, policy/); default: this checkout",
    )
    args = parser.parse_args(argv)
    try:
        print(render(args.stack, args.project_dir))
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
