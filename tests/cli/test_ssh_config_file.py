"""`coral ssh-config`: the stack's marked block in a real (temporary) SSH config file.

Outputs are shaped as `pulumi stack output --json` prints them for this program: `machines`
with each machine's `sshConfig` from coral_infra.ssh_config, and the joined `sshConfig`.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from coral_infra import cli
from coral_infra.ssh_config import ssh_config_block

USER_CONFIG = (
    "# my own settings\n"
    "Host *\n"
    "    ServerAliveInterval 30\n"
    "\n"
    "Host work\tbox\n"
    "    HostName 10.1.2.3   \n"  # trailing spaces and a tab: must survive untouched
    "    User me\n"
)


def outputs(stack: str, hostnames: dict[str, str]) -> dict[str, Any]:
    """What `pulumi stack output --json --stack <stack>` prints for the deployed machines."""
    machines = {
        host: {
            "podId": f"pod{i}",
            "deviceId": f"{i}0000",
            "magicDnsName": fqdn,
            "tailscaleIps": [f"100.64.0.{i}"],
            "sshConfig": ssh_config_block(host, fqdn, "root"),
        }
        for i, (host, fqdn) in enumerate(hostnames.items(), start=1)
    }
    return {
        "machineTag": "tag:coral-machine" if stack == "prod" else "tag:coral-dev",
        "machines": machines,
        "sshConfig": "\n".join(m["sshConfig"] for m in machines.values()),
    }


def save(tmp_path: Path, stack: str, hostnames: dict[str, str]) -> Path:
    path = tmp_path / f"{stack}-outputs.json"
    path.write_text(json.dumps(outputs(stack, hostnames)))
    return path


def run(config: Path, stack: str, outputs_file: Path) -> int:
    return cli.main(
        ["ssh-config", "--stack", stack, "--file", str(config), "--from-json", str(outputs_file)]
    )


PROD = {"coral-machine": "coral-machine.tail1234.ts.net"}
DEV = {"coral-dev": "coral-dev.tail1234.ts.net"}


def test_creates_the_file_with_mode_0600(tmp_path: Path) -> None:
    config = tmp_path / "ssh" / "config"
    assert run(config, "prod", save(tmp_path, "prod", PROD)) == 0
    assert config.read_text() == (
        "# >>> coral-infra prod >>>\n"
        "Host coral-machine\n"
        "    HostName coral-machine.tail1234.ts.net\n"
        "    User root\n"
        "    ForwardAgent yes\n"
        "    LocalForward 11111 localhost:11111\n"
        "# <<< coral-infra prod <<<\n"
    )
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert not (tmp_path / "ssh" / "config.bak").exists()  # nothing to back up


def test_appends_after_the_users_content_and_keeps_it_byte_for_byte(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(USER_CONFIG)
    config.chmod(0o640)
    assert run(config, "prod", save(tmp_path, "prod", PROD)) == 0
    text = config.read_text()
    assert text.startswith(USER_CONFIG + "\n# >>> coral-infra prod >>>\nHost coral-machine\n")
    assert stat.S_IMODE(config.stat().st_mode) == 0o640  # the user's mode is kept
    backup = tmp_path / "config.bak"
    assert backup.read_text() == USER_CONFIG
    assert stat.S_IMODE(backup.stat().st_mode) == 0o640


def test_idempotent_second_run_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config"
    config.write_text(USER_CONFIG)
    outputs_file = save(tmp_path, "prod", PROD)
    run(config, "prod", outputs_file)
    first = config.read_bytes()
    (tmp_path / "config.bak").unlink()
    assert run(config, "prod", outputs_file) == 0
    assert config.read_bytes() == first
    assert not (tmp_path / "config.bak").exists()
    assert "is up to date" in capsys.readouterr().out


def test_updates_in_place_when_the_device_name_changes(tmp_path: Path) -> None:
    config = tmp_path / "config"
    after = "Host later\n    User x\n"
    config.write_text(USER_CONFIG)
    run(config, "prod", save(tmp_path, "prod", PROD))
    config.write_text(config.read_text() + "\n" + after)  # the user added a host after ours
    before_update = config.read_text()
    moved = {"coral-machine": "coral-machine-1.tail1234.ts.net"}
    assert run(config, "prod", save(tmp_path, "prod", moved)) == 0
    text = config.read_text()
    assert text == before_update.replace(
        "HostName coral-machine.tail1234.ts.net", "HostName coral-machine-1.tail1234.ts.net"
    )
    assert text.endswith("\n" + after)
    assert (tmp_path / "config.bak").read_text() == before_update


def test_two_stacks_side_by_side(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(USER_CONFIG)
    run(config, "prod", save(tmp_path, "prod", PROD))
    run(config, "dev", save(tmp_path, "dev", DEV))
    both = config.read_text()
    assert both.index("# <<< coral-infra prod <<<") < both.index("# >>> coral-infra dev >>>")
    # Updating prod again leaves the dev block and the user's lines where they were.
    two = {**PROD, "coral-extra": "coral-extra.tail1234.ts.net"}
    run(config, "prod", save(tmp_path, "prod", two))
    text = config.read_text()
    prod_block = text[text.index("# >>> coral-infra prod") : text.index("# >>> coral-infra dev")]
    assert "Host coral-extra" in prod_block and "Host coral-machine" in prod_block
    assert text.startswith(USER_CONFIG)
    assert text.endswith(
        "# >>> coral-infra dev >>>\n"
        + ssh_config_block("coral-dev", DEV["coral-dev"], "root")
        + "# <<< coral-infra dev <<<\n"
    )


def test_crlf_file_without_final_newline_keeps_its_bytes(tmp_path: Path) -> None:
    config = tmp_path / "config"
    original = b"Host a\r\n    User b\r\n\r\nHost c\r\n    User d"
    config.write_bytes(original)
    run(config, "dev", save(tmp_path, "dev", DEV))
    data = config.read_bytes()
    assert data.startswith(original + b"\n\n# >>> coral-infra dev >>>\n")


def test_falls_back_to_each_machines_block(tmp_path: Path) -> None:
    data = outputs("prod", PROD)
    del data["sshConfig"]
    source = tmp_path / "o.json"
    source.write_text(json.dumps(data))
    config = tmp_path / "config"
    assert run(config, "prod", source) == 0
    assert "HostName coral-machine.tail1234.ts.net" in config.read_text()


def test_symlinked_config_is_updated_at_its_target(tmp_path: Path) -> None:
    target = tmp_path / "dotfiles" / "ssh_config"
    target.parent.mkdir()
    target.write_text(USER_CONFIG)
    link = tmp_path / "config"
    link.symlink_to(target)
    run(link, "prod", save(tmp_path, "prod", PROD))
    assert link.is_symlink()
    assert "# >>> coral-infra prod >>>" in target.read_text()


@pytest.mark.parametrize(
    "damage",
    [
        "# >>> coral-infra prod >>>\nHost x\n",  # begin without end
        "Host x\n# <<< coral-infra prod <<<\n# >>> coral-infra prod >>>\n",  # reversed
    ],
)
def test_damaged_markers_are_refused_and_the_file_left_alone(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config"
    config.write_text(USER_CONFIG + damage)
    assert run(config, "prod", save(tmp_path, "prod", PROD)) == 2
    assert config.read_text() == USER_CONFIG + damage
    assert "the coral-infra block of stack 'prod' is damaged" in capsys.readouterr().err


def test_stack_without_outputs_says_to_deploy_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "o.json"
    source.write_text(json.dumps({"machineTag": "tag:coral-dev"}))
    config = tmp_path / "config"
    assert run(config, "dev", source) == 2
    assert not config.exists()
    assert "run `pulumi up --stack dev` first" in capsys.readouterr().err


def test_reads_outputs_from_the_pulumi_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --from-json the outputs come from `pulumi stack output --json --stack S`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    saved = save(tmp_path, "prod", PROD)
    fake = bin_dir / "pulumi"
    fake.write_text(
        "#!/bin/sh\n"
        f'[ "$*" = "stack output --json --stack prod" ] || {{ echo "unexpected: $*" >&2; exit 3; }}\n'
        f"cat {saved}\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = tmp_path / "config"
    assert cli.main(["ssh-config", "--stack", "prod", "--file", str(config)]) == 0
    assert "Host coral-machine" in config.read_text()
    assert cli.main(["ssh-config", "--stack", "dev", "--file", str(config)]) == 2
