"""Every stage of the pre-flight checks reports into one SettingsError: settings, the tailnet
policy across the stack files, and what the providers' check would refuse."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from coral_infra import bootstrap
from coral_infra.preflight import (
    MAX_POD_ENV,
    STAGES,
    StackDraft,
    machine_problems,
    preflight,
    preflight_stack_file,
)
from coral_infra.render import render
from coral_infra.settings import PROJECT_ROOT, ConfigProblem, SettingsError, parse_settings

ROOT = Path(__file__).resolve().parent.parent
EIGHT_MISTAKES = Path(__file__).with_name("eight_mistakes.yaml")


def project_with(tmp_path: Path, **stacks: dict[str, Any] | Path) -> Path:
    """A copy of this project's Pulumi.yaml, policy/ and dev stack, plus these stack files."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copytree(ROOT / "policy", tmp_path / "policy")
    (tmp_path / "stacks").mkdir()
    shutil.copy(ROOT / "stacks" / "Pulumi.dev.yaml", tmp_path / "stacks" / "Pulumi.dev.yaml")
    for name, content in stacks.items():
        target = tmp_path / "stacks" / f"Pulumi.{name}.yaml"
        if isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_text(yaml.safe_dump({"config": content}))
    return tmp_path


def test_eight_mistakes_come_back_from_one_render(tmp_path: Path) -> None:
    """`make render STACK=prod` on a stack file with eight different mistakes, from every
    stage: all eight in one run, each naming the key and the fix. README's Configuration
    section shows this output."""
    project = project_with(tmp_path, prod=EIGHT_MISTAKES)
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "render", "STACK=prod", f"PROJECT={project}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(EXPECTED_EIGHT)
    # make's own line (`make[1]:` when this runs under `make test`)
    assert re.match(r"make(\[\d+\])?: \*\*\* \[Makefile:", done.stderr[len(EXPECTED_EIGHT) :])
    readme = (ROOT / "README.md").read_text()
    assert "$ make render STACK=prod\n" + EXPECTED_EIGHT in readme


EXPECTED_EIGHT = """\
error: 8 problem(s) in stacks/Pulumi.prod.yaml:
  - coral:tailnet.ssh.checkPeriod: got 12, a number without a unit; write a duration in quotes: "12h" for 12 hours
  - coral:tailnet.deviceWait: got 300, a number without a unit; write a duration in quotes: "5m" for 300 seconds
  - coral:machines[1].volume.retainOnDestroy: a pod volume (kind: pod) is deleted with its pod and cannot be retained; use kind: network (with dataCenter) to keep /workspace, or remove retainOnDestroy
  - coral:machines[1].env.TS_HOSTNAME: TS_HOSTNAME is set by coral-infra from coral:machines[1].hostname; remove it from env and set coral:machines[1].hostname
  - coral:machines[1].env.DEBUG: got true, a boolean: YAML reads an unquoted true or false as one; quote it to pass it as text: "true"
  - coral:tailnet.policy.environments[1]: no stack 'staging': there is no file stacks/Pulumi.staging.yaml; stacks here: dev, prod
  - coral:machines[0].image: got 'runpod/pytorch 2.4.0'; the RunPod provider's check refuses it: image must be an image reference like 'ghcr.io/org/img:tag'
  - coral:machines[0].ports: got ['8888/http', '8888/http']; the RunPod provider's check refuses it: ports must not repeat
"""


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_the_repository_stacks_pass_every_stage(stack: str) -> None:
    plan = preflight_stack_file(stack)
    assert plan.settings.machines
    assert (plan.policy is not None) == plan.settings.tailnet.policy.owner
    assert render(stack).startswith("== tailnet policy")


def test_dev_is_rendered_by_its_owner_and_render_says_so() -> None:
    plan = preflight_stack_file("dev")
    assert plan.owner is not None and plan.owner.stack == "prod"
    assert plan.owner.policy is not None
    assert (
        "stack 'prod' owns the tailnet policy and renders these rules from this commit; deploy "
        "its policy first (README: Rollout order)"
    ) in render("dev")


def test_a_new_stage_slots_in_and_reports_with_the_others(tmp_path: Path) -> None:
    """What issue 11's RunPod catalog check does: one more function in the list."""

    def catalog(draft: StackDraft) -> list[ConfigProblem]:
        return [
            ConfigProblem(f"coral:machines[{i}].gpuType", f"unknown GPU type {m.gpu_type!r}")
            for i, m in enumerate(draft.parsed.machines)
            if m is not None and m.gpu_type == "A100" and draft.online
        ]

    config = {
        "coral:tailnet": {"machineTag": "tag:solo", "deviceWait": 300},
        "coral:machines": [{"hostname": "solo", "gpuType": "A100", "volume": {"kind": "pod"}}],
    }
    with pytest.raises(SettingsError) as caught:
        preflight("solo", config, stages=[*STAGES, catalog], online=True, project_dir=tmp_path)
    assert [p.key for p in caught.value.problems] == [
        "coral:tailnet.deviceWait",
        "coral:machines[0].gpuType",
    ]
    with pytest.raises(SettingsError) as offline:
        preflight("solo", config, stages=[*STAGES, catalog], project_dir=tmp_path)
    assert [p.key for p in offline.value.problems] == ["coral:tailnet.deviceWait"]


def test_pods_with_too_many_env_variables_for_runpod_are_refused() -> None:
    """RunPod's documented limit is 50 per pod, the program's own variables counted."""
    machine = parse_settings(
        {
            "coral:machines": [
                {
                    "hostname": "busy",
                    "volume": {"kind": "pod"},
                    "env": {f"VAR_{i}": "x" for i in range(46)},
                }
            ]
        }
    ).machines[0]
    program = sorted(set(bootstrap.pod_env(hostname="busy")))
    assert program == ["CORAL_BOOTSTRAP_B64", "CORAL_SSHD_PORT", "TS_HOSTNAME", "TS_STATE_DIR"]
    assert MAX_POD_ENV == 50
    assert [str(p) for p in machine_problems("dev", 0, machine, None)] == [
        "coral:machines[0].env: the pod would get 51 environment variables (46 from env + 5 the "
        "program sets: the auth key and CORAL_BOOTSTRAP_B64, CORAL_SSHD_PORT, TS_HOSTNAME, "
        "TS_STATE_DIR); RunPod allows at most 50 per pod: remove 1 from env"
    ]
    fits = machine.model_copy(update={"env": {f"VAR_{i}": "x" for i in range(45)}})
    assert machine_problems("dev", 0, fits, None) == []


def test_the_idle_stop_counts_its_watcher_among_the_pods_env_variables() -> None:
    """With idleStop an injected pod also carries CORAL_IDLE_STOP and the watcher (idle_stop.sh,
    CORAL_IDLE_STOP_B64): two more of RunPod's 50; an image (bootstrap: image) carries no
    file at all."""
    config = {
        "coral:machines": [
            {
                "hostname": "busy",
                "volume": {"kind": "pod"},
                "idleStop": "2h",
                "env": {f"VAR_{i}": "x" for i in range(44)},
            }
        ]
    }
    machine = parse_settings(config).machines[0]
    assert [str(p) for p in machine_problems("dev", 0, machine, None)] == [
        "coral:machines[0].env: the pod would get 51 environment variables (44 from env + 7 the "
        "program sets: the auth key and CORAL_BOOTSTRAP_B64, CORAL_IDLE_STOP, "
        "CORAL_IDLE_STOP_B64, CORAL_SSHD_PORT, TS_HOSTNAME, TS_STATE_DIR); RunPod allows at "
        "most 50 per pod: remove 1 from env"
    ]
    image = machine.model_copy(update={"bootstrap": "image"})
    assert machine_problems("dev", 0, image, None) == []


def test_render_shows_the_bootstrap_files_each_pod_carries(tmp_path: Path) -> None:
    """start.sh for every injected pod, idle_stop.sh beside it only with idleStop: by name and
    size, never the base64 itself."""
    prod = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())["config"]
    prod["coral:machines"][0]["idleStop"] = "2h"
    idle = render("prod", project_with(tmp_path, prod=prod))
    plain = render("prod")
    script = f"[base64 of coral_infra/bootstrap/start.sh, {len(bootstrap.SCRIPT_PATH.read_bytes())} bytes]"
    watcher = (
        "[base64 of coral_infra/bootstrap/idle_stop.sh, "
        f"{len(bootstrap.IDLE_STOP_SCRIPT_PATH.read_bytes())} bytes]"
    )
    assert f'"CORAL_BOOTSTRAP_B64": "{script}"' in idle
    assert f'"CORAL_IDLE_STOP_B64": "{watcher}"' in idle
    assert f'"CORAL_BOOTSTRAP_B64": "{script}"' in plain
    assert "CORAL_IDLE_STOP_B64" not in plain
    for text in (idle, plain):
        assert bootstrap.script_env(idle_stop=True)[bootstrap.SCRIPT_ENV][:40] not in text


def test_two_owners_and_an_unlisted_stack_are_found_in_the_project(tmp_path: Path) -> None:
    owner_tailnet = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())["config"]
    second = {
        **owner_tailnet,
        "coral:tailnet": {
            **owner_tailnet["coral:tailnet"],
            "machineTag": "tag:coral-lab",
            "policy": {
                "owner": True,
                "tests": {"allowed": "coral-owner@github", "denied": "coral-member@github"},
            },
        },
        "coral:machines": [{"hostname": "coral-lab", "volume": {"kind": "pod"}}],
    }
    unlisted = {
        "coral:tailnet": {"machineTag": "tag:coral-ci"},
        "coral:machines": [{"hostname": "coral-ci", "volume": {"kind": "pod"}}],
    }
    project = project_with(
        tmp_path, prod=ROOT / "stacks" / "Pulumi.prod.yaml", lab=second, ci=unlisted
    )
    with pytest.raises(SettingsError) as caught:
        preflight_stack_file("lab", project)
    assert [str(p) for p in caught.value.problems] == [
        "coral:tailnet.policy.owner: stack 'lab' and 'prod' all own the policy of tailnet '-' on "
        "Tailscale's control plane: a tailnet has one policy file and each owner's `up` would "
        "overwrite the other's; keep owner: true on one stack and list the others in its "
        "coral:tailnet.policy.environments (or, if they are different tailnets, set "
        "tailscale:tailnet in each stack file)"
    ]
    with pytest.raises(SettingsError) as unlisted_error:
        preflight_stack_file("ci", project)
    assert [str(p) for p in unlisted_error.value.problems] == [
        f"coral:tailnet.policy.owner: stack {name!r} owns the policy of tailnet '-' on "
        "Tailscale's control plane but its coral:tailnet.policy.environments does not list "
        "'ci', so this stack's rules are never written: add 'ci' there (or set owner: true "
        "here if this stack is meant to own a tailnet of its own, with its own "
        "tailscale:tailnet)"
        for name in ("lab", "prod")
    ]


def test_a_non_owner_learns_of_its_clash_with_the_owners_stacks(tmp_path: Path) -> None:
    """dev's own report names its own setting when the owner's hostname is taken."""
    dev = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())["config"]
    dev["coral:machines"][0]["hostname"] = "coral-machine"
    project = project_with(tmp_path, prod=ROOT / "stacks" / "Pulumi.prod.yaml")
    (project / "stacks" / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": dev}))
    with pytest.raises(SettingsError) as caught:
        preflight_stack_file("dev", project)
    assert [str(p) for p in caught.value.problems] == [
        "coral:machines[0].hostname: stacks 'dev' and 'prod' both have a machine named "
        "'coral-machine' on one tailnet; the second would join as 'coral-machine-1': give each "
        "machine its own coral:machines[].hostname"
    ]
    with pytest.raises(SettingsError) as owner_view:
        preflight_stack_file("prod", project)
    assert [p.key for p in owner_view.value.problems] == ["coral:machines[0].hostname"]


def test_a_stack_without_an_owner_here_gets_a_note_not_an_error(tmp_path: Path) -> None:
    project = project_with(tmp_path)
    plan = preflight_stack_file("dev", project)
    assert plan.owner is None
    assert plan.notes == (
        "no stack file here owns the policy of tailnet '-' on Tailscale's control plane and "
        "lists 'dev': the live policy must already hold this stack's rules (an owner elsewhere "
        "writes them)",
    )


def test_project_root_defaults_to_this_checkout() -> None:
    assert PROJECT_ROOT == ROOT
