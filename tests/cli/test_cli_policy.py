"""`coral policy`: the same document `pulumi up` writes (owner) or requires (other stacks)."""

from __future__ import annotations

import json

import pytest

from coral_infra import cli
from coral_infra.policy import environment_rules, policy_for_stack
from coral_infra.settings import load_stack


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
    assert "does not own the tailnet policy" in err


def test_unknown_stack_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["policy", "--stack", "staging"]) == 2
    assert "no file" in capsys.readouterr().err
