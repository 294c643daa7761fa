"""`coral doctor`: what this computer lacks to deploy a stack and reach its machines, each
with the command that fixes it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from coral_infra.settings import NAMESPACE, SettingsError, read_stack_config
from coral_infra.ssh_config import has_block

MIN_PULUMI_VERSION = (3, 272, 0)
PROBE_TIMEOUT_SECONDS = 15
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def probe(command: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECONDS, env=dict(env)
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def check_pulumi(env: Mapping[str, str]) -> Check:
    fix = "install the Pulumi CLI 3.272 or later: https://www.pulumi.com/docs/install/"
    found = shutil.which("pulumi", path=env.get("PATH", ""))
    if found is None:
        return Check("pulumi", False, "the Pulumi CLI is not on PATH", fix)
    done = probe([found, "version"], env)
    match = _VERSION.search(done.stdout) if done is not None and done.returncode == 0 else None
    if match is None:
        return Check("pulumi", False, f"{found} did not report a version (`pulumi version`)", fix)
    version = tuple(int(part) for part in match.groups())
    if version < MIN_PULUMI_VERSION:
        return Check("pulumi", False, f"Pulumi {match.group(0)} at {found} is too old", fix)
    return Check("pulumi", True, f"Pulumi {match.group(0)} at {found}")


def _stack_secrets(stack: str) -> tuple[set[str], set[str], str | None]:
    try:
        config, secure = read_stack_config(stack)
    except SettingsError as error:
        return set(), set(), str(error.problems[0]) if error.problems else str(error)
    return set(config), secure, None


def check_tailscale_credentials(stack: str, env: Mapping[str, str]) -> Check:
    keys, secure, problem = _stack_secrets(stack)
    if env.get("TAILSCALE_API_KEY"):
        return Check("tailscale credentials", True, "TAILSCALE_API_KEY is set")
    if env.get("TAILSCALE_OAUTH_CLIENT_ID") and env.get("TAILSCALE_OAUTH_CLIENT_SECRET"):
        return Check("tailscale credentials", True, "the OAuth client is set in the environment")
    if "tailscale:apiKey" in secure:
        return Check("tailscale credentials", True, f"stack {stack!r} has tailscale:apiKey")
    if "tailscale:oauthClientId" in keys and "tailscale:oauthClientSecret" in secure:
        return Check("tailscale credentials", True, f"stack {stack!r} has the OAuth client")
    return Check(
        "tailscale credentials",
        False,
        "no Tailscale API credential in the environment or in stack "
        f"{stack!r}" + (f" ({problem})" if problem else ""),
        f"pulumi config set --stack {stack} tailscale:oauthClientId <id> && pulumi config set "
        f"--stack {stack} --secret tailscale:oauthClientSecret <secret>  (or export "
        "TAILSCALE_API_KEY; scopes in docs/operations.md)",
    )


def check_runpod_key(stack: str, env: Mapping[str, str]) -> Check:
    _, secure, problem = _stack_secrets(stack)
    if env.get("RUNPOD_API_KEY"):
        return Check("runpod key", True, "RUNPOD_API_KEY is set")
    if f"{NAMESPACE}:runpodApiKey" in secure:
        return Check("runpod key", True, f"stack {stack!r} has coral:runpodApiKey")
    return Check(
        "runpod key",
        False,
        f"no RunPod API key in the environment or in stack {stack!r}"
        + (f" ({problem})" if problem else ""),
        f"pulumi config set --stack {stack} --secret coral:runpodApiKey <key>  (or export "
        "RUNPOD_API_KEY)",
    )


def check_tailscale_client(env: Mapping[str, str]) -> list[Check]:
    fix = "install Tailscale on this computer: https://tailscale.com/download"
    found = shutil.which("tailscale", path=env.get("PATH", ""))
    if found is None:
        return [Check("tailscale client", False, "no `tailscale` on PATH", fix)]
    client = Check("tailscale client", True, f"tailscale at {found}")
    done = probe([found, "status", "--json"], env)
    try:
        state = json.loads(done.stdout).get("BackendState") if done is not None else None
    except (json.JSONDecodeError, AttributeError):
        state = None
    if state == "Running":
        return [client, Check("tailscale login", True, "logged in (BackendState Running)")]
    why = f"BackendState {state}" if state else "`tailscale status` failed"
    if state is None and done is not None and done.stderr.strip():
        why += f": {done.stderr.strip().splitlines()[0]}"
    return [
        client,
        Check(
            "tailscale login",
            False,
            f"this computer is not on the tailnet ({why})",
            "run `tailscale up` (or log in from the Tailscale app) with the tailnet's account",
        ),
    ]


def check_ssh_config(stack: str, path: Path) -> Check:
    if has_block(path, stack):
        return Check("ssh config", True, f"{path} has the block of stack {stack!r}")
    return Check(
        "ssh config",
        False,
        f"{path} has no coral-infra block for stack {stack!r}",
        f"coral ssh-config --stack {stack} --file {path}",
        required=False,
    )


def doctor(stack: str, ssh_config: Path, env: Mapping[str, str]) -> list[Check]:
    return [
        check_pulumi(env),
        check_tailscale_credentials(stack, env),
        check_runpod_key(stack, env),
        *check_tailscale_client(env),
        check_ssh_config(stack, ssh_config),
    ]


def format_checks(checks: Sequence[Check]) -> str:
    lines = []
    for check in checks:
        status = "ok  " if check.ok else ("FAIL" if check.required else "warn")
        lines.append(f"{status}  {check.name}: {check.detail}")
        if not check.ok:
            lines.append(f"      fix: {check.fix}")
    return "\n".join(lines)
