"""`coral policy`: the same document `pulumi up` writes (owner) or requires (other stacks);
`coral up`: a stack applied after its tailnet policy owner's policy step."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from coral_infra import cli
from coral_infra.policy import environment_rules, policy_for_stack
from coral_infra.settings import load_stack
from coral_infra.tailnet import policy_targets


def test_owner_stack_prints_the_policy_it_writes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policy", "--stack", "prod"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == policy_for_stack("prod")
    assert out.startswith('{\n\t"')  # tab-indented, as the Acl resource sends it
    assert "note:" in err  # the self-tests Tailscale's default allow-all rule leaves out


def test_other_stack_prints_the_rules_it_requires(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policy", "--stack", "dev"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == environment_rules(load_stack("dev").tailnet)
    assert err == (
        "note: stack 'dev' does not own the tailnet policy: these are the rules it requires; "
        "stack 'prod' (coral:tailnet.policy.owner: true) writes them\n"
    )


def test_unknown_stack_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policy", "--stack", "staging"]) == 2
    assert "no file" in capsys.readouterr().err


def test_policy_reports_every_problem_of_the_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "Pulumi.solo.yaml").write_text(
        "config:\n  coral:tailnet: {deviceWait: 300}\n  coral:machines: [{volume: {kind: nfs}}]\n"
    )
    monkeypatch.setattr("coral_infra.settings.STACKS_DIR", stacks)
    assert cli.main(["policy", "--stack", "solo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coral policy: 2 problem(s) in ")
    assert "coral:tailnet.deviceWait: got 300" in err
    assert "coral:machines[0].volume.kind: got 'nfs'" in err


def test_up_runs_the_owners_policy_step_before_a_non_owner(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["up", "--stack", "dev", "--print", "--", "--yes"]) == 0
    targets = " ".join(
        f"--target '{u}'" if "$" in u else f"--target {u}" for u in policy_targets("prod")
    )
    assert capsys.readouterr().out == (
        f"pulumi up --stack prod {targets} --yes\npulumi up --stack dev --yes\n"
    )


def test_up_of_the_owner_is_one_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["up", "--stack", "prod", "--print"]) == 0
    assert capsys.readouterr().out == "pulumi up --stack prod\n"


def test_up_stops_at_the_first_failing_step(tmp_path: Path) -> None:
    """The commands run in order, through the `pulumi` on PATH, until one fails."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "pulumi"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\ncase "$*" in *--target*) exit 3;; esac\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    commands = cli.rollout_commands("dev")
    assert cli.run_rollout(commands, env) == 3
    (call,) = log.read_text().splitlines()
    assert call.startswith("up --stack prod --target urn:pulumi:prod::coral::")
    log.unlink()
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    assert cli.run_rollout(commands, env) == 0
    assert [c.split(" --target")[0] for c in log.read_text().splitlines()] == [
        "up --stack prod",
        "up --stack dev",
    ]
    assert shutil.which("pulumi", path=env["PATH"]) == str(fake)
