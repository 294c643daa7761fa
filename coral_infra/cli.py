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
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from coral_infra import doctor, fleet
from coral_infra.policy import PolicyError, environment_rules
from coral_infra.preflight import preflight_stack_file
from coral_infra.runpod.api import RunPodError
from coral_infra.settings import PROJECT_ROOT, SettingsError
from coral_infra.ssh_config import SshConfigError, ssh_blocks, write_ssh_config
from coral_infra.tailnet import policy_targets

DEFAULT_SSH_CONFIG = "~/.ssh/config"
COMMAND_TIMEOUT_SECONDS = 60


class CliError(Exception):
    """A failure the user can act on; the message says how."""


# --- stack outputs -------------------------------------------------------------------------


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
    done = doctor.probe([found, "status", "--json"], env)
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
        checks = doctor.doctor(args.stack, args.ssh_config.expanduser(), os.environ)
        print(doctor.format_checks(checks))
        return 1 if any(c.required and not c.ok for c in checks) else 0
    except (
        CliError,
        SettingsError,
        SshConfigError,
        PolicyError,
        OSError,
        fleet.FleetError,
        RunPodError,
    ) as error:
        print(f"coral {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
