"""What a stack would create, rendered offline from its stack file: no account, no engine.

    python -m coral_infra.render dev

It runs the same validation, policy rendering and pod specs as `pulumi up`, so a stack that
renders cleanly here fails in `up` only on what needs the live APIs (capacity, credentials, the
live tailnet policy). With RUNPOD_API_KEY in the environment (and only then) it also reads
RunPod's catalog once, through the API the stack uses: GPU types and data centers are checked
as in `pulumi up`, and each machine's price per hour is shown.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any

from coral_infra import bootstrap
from coral_infra.machine import network_volume_spec, pod_spec
from coral_infra.policy import Environment, PolicyError, environment_rules, render_owner_policy
from coral_infra.runpod import api
from coral_infra.runpod.catalog import checked_against_catalog
from coral_infra.settings import Settings, SettingsError, load_stack
from coral_infra.ssh_config import ssh_config_block

SECRET_PLACEHOLDER = "[secret: the tailnet auth key, set during `pulumi up`]"


def _section(title: str, body: str) -> str:
    return f"== {title} ==\n{body.rstrip()}\n"


def _policy_section(stack: str, settings: Settings) -> str:
    if settings.tailnet.policy.owner:
        rendered = render_owner_policy(Environment.from_settings(stack, settings))
        notes = "".join(f"note: {w}\n" for w in rendered.warnings)
        return _section(
            f"tailnet policy (written by this stack, the owner) [{stack}]",
            notes + rendered.json(),
        )
    rules = json.dumps(environment_rules(settings.tailnet), indent=2)
    return _section(
        f"tailnet policy rules this stack requires (owned by another stack) [{stack}]",
        "`pulumi up` checks that the live policy holds these; the owner stack renders them.\n"
        + rules,
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
        script = env.pop(bootstrap.SCRIPT_ENV, None)
        if script is not None:
            size = len(base64.b64decode(script))
            env[bootstrap.SCRIPT_ENV] = f"[base64 of coral_infra/bootstrap/start.sh, {size} bytes]"
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
    blocks = "\n".join(ssh_config_block(m.hostname, m.hostname) for m in settings.machines)
    return _section(
        "SSH config (HostName becomes the MagicDNS name once the device joined)", blocks
    )


def _price_section(settings: Settings) -> str:
    """RunPod's list price per machine; the catalog is read only when a key is available."""
    config = {api.API_CONFIG: {"api": settings.runpod.api}}
    report = checked_against_catalog(settings, config)
    lines = [f"note: {warning}" for warning in report.warnings if api.has_key()]
    lines += [str(price) for price in report.prices]
    if not api.has_key():
        lines.append(
            f"set {api.API_KEY_ENV} to check GPU types and data centers against RunPod's "
            "catalog and show each machine's price (one API call; none without a key)"
        )
    return _section(f"price per hour (RunPod API: {settings.runpod.api})", "\n".join(lines))


def render(stack: str) -> str:
    """The whole report for one stack (offline unless RUNPOD_API_KEY is set)."""
    settings = load_stack(stack)
    return "\n".join(
        [
            _policy_section(stack, settings),
            _auth_key_section(settings),
            _pod_section(stack, settings),
            _price_section(settings),
            _ssh_section(settings),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", help="stack name: the file stacks/Pulumi.<stack>.yaml")
    args = parser.parse_args(argv)
    try:
        print(render(args.stack))
    except (SettingsError, PolicyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
