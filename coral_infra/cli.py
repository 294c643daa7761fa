"""`coral`: the everyday commands around a deployed stack.

    coral ssh-config --stack prod [--file ~/.ssh/config] [--from-json outputs.json]
    coral policy --stack prod
    coral up --stack dev [--print] [-- pulumi up flags]
    coral doctor [--stack dev]
    coral start STACK/HOST | coral stop STACK/HOST | coral status [--stack STACK]

`ssh-config` keeps one marked block per stack in the SSH config, built from the stack's
outputs (`pulumi stack output --json`), so `ssh coral-machine` works after every `up` without
hand edits; everything outside the markers stays byte for byte as the user wrote it. `policy`
prints what the policy owner writes (or what another stack requires), from the same functions
`pulumi up` uses. `up` applies a stack in the order that cannot deadlock: the owner's policy
step first (when another stack owns the tailnet policy and renders this stack's rules), then the
stack. `doctor` says what is missing on this computer and how to fix it. `start`/`stop` bring
one machine's pod back or stop it without a full `up`, and `status` shows each machine's pod
state, price per hour and tailnet state (coral_infra/fleet.py says where each comes from).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coral_infra import fleet
from coral_infra.policy import PolicyError, environment_rules
from coral_infra.preflight import preflight_stack_file
from coral_infra.runpod.api import RunPodError
from coral_infra.settings import NAMESPACE, PROJECT_ROOT, SettingsError, read_stack_config
from coral_infra.tailnet import policy_targets

DEFAULT_SSH_CONFIG = "~/.ssh/config"
MIN_PULUMI_VERSION = (3, 272, 0)
COMMAND_TIMEOUT_SECONDS = 60
PROBE_TIMEOUT_SECONDS = 15
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


class CliError(Exception):
    """A failure the user can act on; the message says how."""


# --- ssh-config ----------------------------------------------------------------------------


def begin_marker(stack: str) -> str:
    return f"# >>> coral-infra {stack} >>>"


def end_marker(stack: str) -> str:
    return f"# <<< coral-infra {stack} <<<"


def stack_outputs(stack: str, from_json: Path | None = None) -> dict[str, Any]:
    """The stack's outputs, from the Pulumi CLI or (tests, offline) a saved JSON file."""
    if from_json is not None:
        text = from_json.read_text()
        source = str(from_json)
    else:
        hint = " or pass --from-json with the output of `pulumi stack output --json`"
        text = pulumi_text(["stack", "output", "--json", "--stack", stack], hint)
        source = f"the outputs of stack {stack!r}"
    return _json_object(text, source, "stack outputs")


def pulumi_text(args: Sequence[str], hint: str = "") -> str:
    """What `pulumi <args>` prints; a missing CLI or a failure is a CliError saying so."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise CliError(f"the Pulumi CLI is not on PATH; install it (see `coral doctor`){hint}")
    done = subprocess.run(
        [pulumi, *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS
    )
    if done.returncode != 0:
        shown = " ".join(args)
        raise CliError(f"`pulumi {shown}` failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def _json_object(text: str, source: str, what: str) -> dict[str, Any]:
    try:
        found = json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(f"{source} is not JSON: {error}") from None
    if not isinstance(found, dict):
        raise CliError(f"{source}: expected an object of {what}")
    return found


def ssh_blocks(outputs: Mapping[str, Any], stack: str) -> str:
    """The Host blocks of a stack: `sshConfig`, else each of `machines[*].sshConfig`."""
    text = outputs.get("sshConfig")
    if not isinstance(text, str) or not text.strip():
        machines = outputs.get("machines")
        blocks = (
            [m.get("sshConfig") for m in machines.values() if isinstance(m, dict)]
            if isinstance(machines, dict)
            else []
        )
        text = "\n".join(b for b in blocks if isinstance(b, str) and b.strip())
    if not text.strip():
        raise CliError(
            f"stack {stack!r} has no sshConfig output (not deployed yet?); run `pulumi up "
            f"--stack {stack}` first"
        )
    lines = text.strip("\n").splitlines()
    if not lines[0].startswith("Host ") or any(line.startswith("# >>> ") for line in lines):
        raise CliError(f"the sshConfig output of stack {stack!r} is not a list of Host blocks")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _marker_lines(lines: Sequence[str], marker: str) -> list[int]:
    return [i for i, line in enumerate(lines) if line.rstrip("\r\n") == marker]


def update_config_text(text: str, stack: str, blocks: str) -> str:
    """`text` with the stack's marked block set to `blocks`: replaced where it is, else
    appended. Every other line is kept exactly (line endings included)."""
    section = f"{begin_marker(stack)}\n{blocks}{end_marker(stack)}\n"
    lines = text.splitlines(keepends=True)
    begins = _marker_lines(lines, begin_marker(stack))
    ends = _marker_lines(lines, end_marker(stack))
    if not begins and not ends:
        if not text:
            return section
        separator = "\n" if text.endswith("\n") else "\n\n"
        return text + separator + section
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise CliError(
            f"the coral-infra block of stack {stack!r} is damaged (markers "
            f"{begin_marker(stack)!r} / {end_marker(stack)!r} at lines "
            f"{[i + 1 for i in begins]} / {[i + 1 for i in ends]}); fix the markers by hand, "
            "then run this again"
        )
    begin, end = begins[0], ends[0]
    tail = lines[end]
    if not tail.endswith("\n"):  # the block was the file's last line, without a newline
        section = section[:-1]
    return "".join(lines[:begin]) + section + "".join(lines[end + 1 :])


@dataclass(frozen=True)
class WriteResult:
    path: Path
    changed: bool
    backup: Path | None


def write_ssh_config(path: Path, stack: str, blocks: str) -> WriteResult:
    """Update the stack's block in `path` atomically, keeping a `.bak` copy of the previous
    file and its mode (0600 for a new file). A symlinked config is updated at its target."""
    path = path.expanduser()
    if path.is_symlink():
        path = path.resolve()
    old: bytes | None = path.read_bytes() if path.exists() else None
    old_text = old.decode("utf-8", "surrogateescape") if old is not None else ""
    new = update_config_text(old_text, stack, blocks).encode("utf-8", "surrogateescape")
    if new == old:
        return WriteResult(path, changed=False, backup=None)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    mode = path.stat().st_mode & 0o777 if old is not None else 0o600
    backup = None
    if old is not None:
        backup = path.with_name(path.name + ".bak")
        _write_atomically(backup, old, mode)
    _write_atomically(path, new, mode)
    return WriteResult(path, changed=True, backup=backup)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def has_block(path: Path, stack: str) -> bool:
    path = path.expanduser()
    if not path.is_file():
        return False
    lines = path.read_text(errors="surrogateescape").splitlines()
    return begin_marker(stack) in lines and end_marker(stack) in lines


# --- policy --------------------------------------------------------------------------------


def policy_text(stack: str, project_dir: Path = PROJECT_ROOT) -> tuple[str, list[str]]:
    """The policy document the owner stack writes, or the rules a non-owner requires; and
    notes for the reader. Every problem of the stack first, as `make render` reports them."""
    plan = preflight_stack_file(stack, project_dir)
    if plan.policy is not None:
        return plan.policy.json(), [*plan.policy.warnings, *plan.notes]
    rules = json.dumps(environment_rules(plan.settings.tailnet), indent="\t")
    owner = f"stack {plan.owner.stack!r}" if plan.owner else "the owner stack"
    return rules, [
        f"stack {stack!r} does not own the tailnet policy: these are the rules it requires; "
        f"{owner} (coral:tailnet.policy.owner: true) writes them",
        *plan.notes,
    ]


# --- up ------------------------------------------------------------------------------------


def rollout_commands(
    stack: str, extra: Sequence[str] = (), project_dir: Path = PROJECT_ROOT
) -> list[list[str]]:
    """The `pulumi` commands that apply `stack` without the non-owner deadlock: the owner's
    policy step (its `Acl` alone, targeted) first when another stack owns the tailnet policy
    and renders this stack's rules, then the stack itself. The deploy workflow runs the same
    order (.github/workflows/deploy.yml)."""
    plan = preflight_stack_file(stack, project_dir)
    commands = []
    if plan.owner is not None:
        targets = [arg for urn in policy_targets(plan.owner.stack) for arg in ("--target", urn)]
        commands.append(["pulumi", "up", "--stack", plan.owner.stack, *targets, *extra])
    commands.append(["pulumi", "up", "--stack", stack, *extra])
    return commands


def run_rollout(commands: Sequence[Sequence[str]], env: Mapping[str, str]) -> int:
    """Each command in turn, stopping at the first that fails (its exit code)."""
    pulumi = shutil.which("pulumi", path=env.get("PATH", ""))
    if pulumi is None:
        raise CliError("the Pulumi CLI is not on PATH; install it (see `coral doctor`)")
    for command in commands:
        print(f"$ {' '.join(command)}", flush=True)
        done = subprocess.run([pulumi, *command[1:]], env=dict(env), check=False)
        if done.returncode != 0:
            return done.returncode
    return 0


# --- doctor --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _run(command: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str] | None:
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
    done = _run([found, "version"], env)
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
    done = _run([found, "status", "--json"], env)
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


# --- start, stop, status -------------------------------------------------------------------


def stack_config(stack: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The stack's config as Pulumi has it; secrets decrypted only when the RunPod key must
    come from there (never printed)."""
    secrets = [] if env.get("RUNPOD_API_KEY") else ["--show-secrets"]
    text = pulumi_text(["config", "--json", *secrets, "--stack", stack])
    return _json_object(text, f"the config of stack {stack!r}", "config values")


def selected_stack() -> str:
    """The stack `pulumi stack select` chose in this directory."""
    name = pulumi_text(["stack", "--show-name"], " or name the stack with --stack").strip()
    if not name:
        raise CliError("no stack is selected here: name one with --stack")
    return name


def tailnet_peers(env: Mapping[str, str]) -> list[fleet.Peer] | str:
    """This computer's view of the tailnet, or why there is none."""
    found = shutil.which("tailscale", path=env.get("PATH", ""))
    if found is None:
        return "unknown: no `tailscale` on this computer"
    done = _run([found, "status", "--json"], env)
    if done is None or done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no answer"])[0] if done else "no answer"
        return f"unknown: `tailscale status` failed ({why})"
    try:
        return fleet.tailnet_peers(done.stdout)
    except (json.JSONDecodeError, AttributeError):
        return "unknown: `tailscale status --json` printed no status"


def machine_command(command: str, target: str, env: Mapping[str, str]) -> int:
    """`coral start|stop STACK/HOST`: progress lines as it goes, then the outcome."""
    stack, host = fleet.parse_target(target)
    outputs = stack_outputs(stack)
    fleet.configure_runpod(stack, stack_config(stack, env), env)

    def progress(line: str) -> None:
        print(line, flush=True)

    act = fleet.start if command == "start" else fleet.stop
    print(act(stack, host, outputs, progress))
    return 0


def status(stack: str | None, env: Mapping[str, str]) -> int:
    stack = stack or selected_stack()
    outputs = stack_outputs(stack)
    fleet.configure_runpod(stack, stack_config(stack, env), env)
    print(f"stack {stack}")
    print("\n".join(fleet.status_table(stack, outputs, tailnet_peers(env))))
    return 0


# --- entry point ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coral", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ssh = commands.add_parser("ssh-config", help="write the stack's Host blocks to ~/.ssh/config")
    ssh.add_argument("--stack", required=True)
    ssh.add_argument("--file", type=Path, default=Path(DEFAULT_SSH_CONFIG))
    ssh.add_argument(
        "--from-json", type=Path, help="read the outputs from this file, not from Pulumi"
    )
    policy = commands.add_parser("policy", help="print the tailnet policy rendered for a stack")
    policy.add_argument("--stack", required=True)
    up = commands.add_parser(
        "up", help="pulumi up on a stack, after the tailnet policy owner's policy step"
    )
    up.add_argument("--stack", required=True)
    up.add_argument("--print", action="store_true", help="print the commands, run nothing")
    up.add_argument("pulumi_args", nargs="*", help="passed to each `pulumi up` (after --)")
    check = commands.add_parser("doctor", help="check this computer's prerequisites")
    check.add_argument("--stack", default="dev")
    check.add_argument("--ssh-config", type=Path, default=Path(DEFAULT_SSH_CONFIG))
    for verb, what in (("start", "start a stopped machine"), ("stop", "stop a machine")):
        machine = commands.add_parser(verb, help=f"{what}: its pod, through RunPod's API")
        machine.add_argument("target", metavar="STACK/HOST", help="e.g. dev/coral-dev")
    state = commands.add_parser("status", help="each machine's pod, price and tailnet state")
    state.add_argument("--stack", help="default: the selected stack (`pulumi stack select`)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command in ("start", "stop"):
            return machine_command(args.command, args.target, os.environ)
        if args.command == "status":
            return status(args.stack, os.environ)
        if args.command == "ssh-config":
            blocks = ssh_blocks(stack_outputs(args.stack, args.from_json), args.stack)
            result = write_ssh_config(args.file, args.stack, blocks)
            if not result.changed:
                print(f"{result.path}: the block of stack {args.stack!r} is up to date")
            else:
                kept = f" (previous file kept as {result.backup})" if result.backup else ""
                print(f"{result.path}: wrote the block of stack {args.stack!r}{kept}")
            return 0
        if args.command == "policy":
            text, notes = policy_text(args.stack)
            for note in notes:
                print(f"note: {note}", file=sys.stderr)
            print(text)
            return 0
        if args.command == "up":
            commands = rollout_commands(args.stack, args.pulumi_args)
            if args.print:
                print("\n".join(shlex.join(c) for c in commands))
                return 0
            return run_rollout(commands, os.environ)
        checks = doctor(args.stack, args.ssh_config.expanduser(), os.environ)
        print(format_checks(checks))
        return 1 if any(c.required and not c.ok for c in checks) else 0
    except (CliError, SettingsError, PolicyError, OSError, fleet.FleetError, RunPodError) as error:
        print(f"coral {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
