"""Every bad input is caught before anything is created, with the key path, what was given and
what is allowed; all mistakes of one config come back together."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from coral_infra import bootstrap, workspace
from coral_infra.machine import pod_spec
from coral_infra.setting_values import format_duration
from coral_infra.settings import (
    SettingsError,
    load_stack,
    parse_duration_hours,
    parse_settings,
    read_settings,
    read_stack_config,
)
from policypack import guardrails

GOOD: dict[str, Any] = {
    "coral:tailnet": {"machineTag": "tag:coral-machine", "ssh": {"action": "accept"}},
    "coral:machines": [
        {"hostname": "coral-machine", "dataCenter": "EU-RO-1", "volume": {"kind": "network"}}
    ],
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    """GOOD with one value replaced; path like 'machines.0.hostname' under 'coral:'."""
    config = copy.deepcopy(GOOD)
    first, *rest = path.split(".")
    node: Any = config[f"coral:{first}"]
    for part in rest[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    last = rest[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return config


def problems_of(config: dict[str, Any], **kwargs: Any) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        parse_settings(config, **kwargs)
    return [str(p) for p in caught.value.problems]


def only_problem(config: dict[str, Any]) -> str:
    problems = problems_of(config)
    assert len(problems) == 1, problems
    return problems[0]


def test_good_config_parses_with_defaults() -> None:
    settings = parse_settings(GOOD)
    machine = settings.machines[0]
    assert machine.volume.mount_path == "/workspace"
    assert machine.gpu_count == 1
    assert settings.tailnet.ssh.users == ["root", "autogroup:nonroot"]
    assert settings.tailnet.ssh.src == ["autogroup:owner"]
    assert settings.tailnet.ssh.effective_check_period is None


def test_engine_json_strings_parse_like_objects() -> None:
    as_json = {key: json.dumps(value) for key, value in GOOD.items()}
    assert parse_settings(as_json) == parse_settings(GOOD)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            "tailnet.machineTag",
            "coral-machine",
            "coral:tailnet.machineTag: got 'coral-machine'; a tag is 'tag:'",
        ),
        (
            "tailnet.machineTag",
            "tag:coral_machine!",
            "coral:tailnet.machineTag: got 'tag:coral_machine!'",
        ),
        ("tailnet.machineTag", "tag:9lives", "then letters, digits or hyphens"),
        (
            "machines.0.hostname",
            "Coral_Machine",
            "coral:machines[0].hostname: got 'Coral_Machine'; a hostname is one DNS label",
        ),
        ("machines.0.hostname", "-coral", "not starting or ending with a hyphen"),
        ("machines.0.hostname", "a" * 64, "1-63 lowercase letters"),
        (
            "machines.0.gpuCount",
            0,
            "coral:machines[0].gpuCount: got 0; input should be greater than or equal to 1",
        ),
        (
            "machines.0.containerDiskGb",
            0,
            "coral:machines[0].containerDiskGb: got 0; input should be greater than 0",
        ),
        (
            "machines.0.volume.sizeGb",
            -5,
            "coral:machines[0].volume.sizeGb: got -5; input should be greater than 0",
        ),
        (
            "machines.0.volume.mountPath",
            "workspace",
            "coral:machines[0].volume.mountPath: got 'workspace'; the volume must be mounted at '/workspace'",
        ),
        (
            "machines.0.env",
            {"1BAD": "x"},
            "coral:machines[0].env.1BAD: got '1BAD'; env names are identifiers",
        ),
        (
            "machines.0.env",
            {"MY-VAR": "x"},
            "coral:machines[0].env.MY-VAR: got 'MY-VAR'; env names are identifiers",
        ),
        (
            "machines.0.env",
            {"TAILSCALE_AUTHKEY": "x"},
            "coral:machines[0].env.TAILSCALE_AUTHKEY: TAILSCALE_AUTHKEY is set by coral-infra from coral:tailnet.authKey",
        ),
        (
            "machines.0.env",
            {"A": 'say "hi"'},
            "coral:machines[0].env.A: got 'say \"hi\"'; must be non-empty and contain no quotes",
        ),
        (
            "machines.0.env",
            {"A": "line\nbreak"},
            "coral:machines[0].env.A: got 'line\\nbreak'; must be non-empty and contain no quotes, backslashes",
        ),
        (
            "machines.0.env",
            {"A": "C:\\path"},
            "coral:machines[0].env.A: got 'C:\\\\path'; must be non-empty and contain no quotes, backslashes",
        ),
        (
            "machines.0.image",
            'img"}) {',
            "coral:machines[0].image: got 'img\"}) {'; must be non-empty and contain no quotes",
        ),
        (
            "machines.0.ports",
            ["70000/tcp"],
            "coral:machines[0].ports[0]: got '70000/tcp'; a port is 'NUMBER/tcp' or 'NUMBER/http'",
        ),
        (
            "machines.0.cloudType",
            "CHEAP",
            "coral:machines[0].cloudType: got 'CHEAP'; input should be 'SECURE', 'COMMUNITY' or 'ALL'",
        ),
        (
            "machines.0.volume.kind",
            "s3",
            "coral:machines[0].volume.kind: got 's3'; input should be 'network' or 'pod'",
        ),
        (
            "tailnet.ssh.action",
            "allow",
            "coral:tailnet.ssh.action: got 'allow'; input should be 'accept' or 'check'",
        ),
        (
            "tailnet.ssh.src",
            ["*"],
            "coral:tailnet.ssh.src[0]: got '*'; an SSH source is one of autogroup:owner",
        ),
        (
            "tailnet.ssh.users",
            ["Root!"],
            "coral:tailnet.ssh.users[0]: got 'Root!'; an SSH user is 'root', 'autogroup:nonroot' or a Unix user name",
        ),
        (
            "tailnet.authKey",
            {"expiryDays": 91},
            "coral:tailnet.authKey.expiryDays: got 91; input should be less than or equal to 90",
        ),
        (
            "tailnet.authKey",
            {"description": "x" * 51},
            "coral:tailnet.authKey.description: got 'xxxx",
        ),
        (
            "tailnet.authKey",
            {"description": "key_for:ml"},
            "at most 50 characters, letters, digits, spaces or hyphens only",
        ),
        (
            "tailnet.deviceWait",
            "2h",
            "coral:tailnet.deviceWait: got '2h'; a duration more than 0 and at most 1h",
        ),
    ],
)
def test_bad_value_is_named_with_what_is_allowed(path: str, value: Any, expected: str) -> None:
    assert expected in only_problem(with_change(path, value))


def test_check_period_with_accept_is_rejected() -> None:
    config = with_change("tailnet.ssh", {"action": "accept", "checkPeriod": "12h"})
    assert only_problem(config) == (
        "coral:tailnet.ssh.checkPeriod: got '12h' with action 'accept', which never "
        "re-authenticates; remove checkPeriod or set action: check"
    )


def test_unparsable_check_period_is_rejected() -> None:
    config = with_change("tailnet.ssh", {"action": "check", "checkPeriod": "twelve hours"})
    assert only_problem(config) == (
        "coral:tailnet.ssh.checkPeriod: got 'twelve hours'; a check period is a duration like "
        "'12h', '30m', '1h30m' or 'always'"
    )


def test_check_period_over_a_week_is_rejected() -> None:
    config = with_change("tailnet.ssh", {"action": "check", "checkPeriod": "168h1m"})
    assert "got '168h1m'; must be more than 0 and at most 168h" in only_problem(config)


@pytest.mark.parametrize("period", ["12h", "168h", "1h30m", "45m", "always"])
def test_check_periods_tailscale_accepts(period: str) -> None:
    settings = parse_settings(
        with_change("tailnet.ssh", {"action": "check", "checkPeriod": period})
    )
    assert settings.tailnet.ssh.effective_check_period == period


def test_check_without_period_states_tailscales_default() -> None:
    settings = parse_settings(with_change("tailnet.ssh", {"action": "check"}))
    assert settings.tailnet.ssh.effective_check_period == "12h"


def test_duration_parser() -> None:
    assert parse_duration_hours("1h30m") == 1.5
    assert parse_duration_hours("90m") == 1.5
    with pytest.raises(ValueError, match="a check period is a duration"):
        parse_duration_hours("12")


def test_network_volume_needs_a_data_center() -> None:
    config = with_change("machines.0", {"hostname": "coral-machine", "volume": {"kind": "network"}})
    assert only_problem(config).startswith(
        "coral:machines[0].dataCenter: missing; a network volume is bound to one data center"
    )


def test_duplicate_hostnames_in_a_fleet() -> None:
    config = copy.deepcopy(GOOD)
    config["coral:machines"].append(dict(config["coral:machines"][0]))
    assert only_problem(config) == (
        "coral:machines[1].hostname: 'coral-machine' is already the hostname of machines[0]; "
        "each machine needs its own (a second device with one name becomes 'coral-machine-1')"
    )


@pytest.mark.parametrize(
    ("path", "key", "expected"),
    [
        (
            "machines.0",
            "gpuTyp",
            "coral:machines[0].gpuTyp: unknown key 'gpuTyp' (a typo?); allowed here: bootstrap, cloudType",
        ),
        (
            "machines.0.volume",
            "size",
            "coral:machines[0].volume.size: unknown key 'size' (a typo?); allowed here: kind, mountPath, retainOnDestroy, sizeGb",
        ),
        (
            "tailnet",
            "machine_tag",
            "coral:tailnet.machine_tag: unknown key 'machine_tag' (a typo?); allowed here: authKey",
        ),
        (
            "tailnet.ssh",
            "checkperiod",
            "coral:tailnet.ssh.checkperiod: unknown key 'checkperiod' (a typo?); allowed here: action, checkPeriod, src, users",
        ),
        (
            "tailnet.policy",
            "ownr",
            "coral:tailnet.policy.ownr: unknown key 'ownr' (a typo?); allowed here: acknowledgedBaseSsh, baseFile, environments, overwriteExisting, owner, tests",
        ),
    ],
)
def test_unknown_keys_anywhere_are_typos(path: str, key: str, expected: str) -> None:
    config = copy.deepcopy(GOOD)
    first, *rest = path.split(".")
    node: Any = config[f"coral:{first}"]
    for part in rest:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[key] = 1
    assert expected in only_problem(config)


def test_unknown_top_level_key() -> None:
    config = {**GOOD, "coral:machine": []}
    assert only_problem(config) == (
        "coral:machine: unknown key 'machine' (a typo?); allowed: machines, runpod, "
        "runpodApiKey, tailnet"
    )


def test_runpod_api_defaults_to_rest_v2_and_takes_graphql() -> None:
    assert parse_settings(GOOD).runpod.api == "v2"
    assert parse_settings({**GOOD, "coral:runpod": {"api": "graphql"}}).runpod.api == "graphql"


def test_runpod_api_names_what_is_allowed() -> None:
    assert only_problem({**GOOD, "coral:runpod": {"api": "rest"}}) == (
        "coral:runpod.api: got 'rest'; input should be 'v2' or 'graphql'"
    )


def test_missing_machines() -> None:
    assert only_problem({"coral:tailnet": {}}).startswith("coral:machines: missing")


def test_credentials_in_plaintext_are_rejected() -> None:
    config = {**GOOD, "tailscale:apiKey": "tskey-api-abc", "coral:runpodApiKey": "rp_abc"}
    problems = problems_of(config)
    assert len(problems) == 2
    assert "tailscale:apiKey: is a credential stored in plaintext" in problems[0]
    assert "pulumi config set --secret coral:runpodApiKey" in problems[1]
    assert not any("tskey-api-abc" in p or "rp_abc" in p for p in problems)
    parse_settings(config, secret_keys={"tailscale:apiKey", "coral:runpodApiKey"})


def test_policy_owner_needs_test_users() -> None:
    config = with_change("tailnet.policy", {"owner": True})
    assert "coral:tailnet.policy.tests: the policy owner needs tests" in only_problem(config)


def test_owner_only_keys_on_a_non_owner() -> None:
    config = with_change("tailnet.policy", {"environments": ["dev"]})
    assert "only apply to the policy owner" in only_problem(config)


def test_all_mistakes_reported_together() -> None:
    config = {
        "coral:tailnet": {"machineTag": "coral", "ssh": {"action": "accept", "checkPeriod": "1h"}},
        "coral:machines": [
            {"hostname": "Bad_Host", "gpuCount": 0, "env": {"1A": "x"}, "volume": {"kind": "pod"}},
            {"hostname": "Bad_Host", "volume": {"kind": "pod", "mountPath": "rel"}},
        ],
        "coral:typo": 1,
    }
    keys = {p.split(": ", 1)[0] for p in problems_of(config)}
    assert keys == {
        "coral:typo",
        "coral:tailnet.machineTag",
        "coral:tailnet.ssh.checkPeriod",
        "coral:machines[0].hostname",
        "coral:machines[0].gpuCount",
        "coral:machines[0].env.1A",
        "coral:machines[1].hostname",
        "coral:machines[1].volume.mountPath",
    }
    with pytest.raises(SettingsError) as caught:
        parse_settings(config)
    assert str(caught.value).startswith("9 problem(s) in stack config:")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_files_are_valid(stack: str) -> None:
    settings = load_stack(stack)
    assert settings.machines


def test_stacks_differ_where_they_should() -> None:
    dev, prod = load_stack("dev"), load_stack("prod")
    assert dev.tailnet.ssh.action == "accept"
    assert prod.tailnet.ssh.action == "check"
    assert prod.tailnet.ssh.effective_check_period == "12h"
    assert prod.machines[0].volume.kind == "network"
    assert prod.machines[0].volume.retain_on_destroy is True
    assert dev.machines[0].volume.retain_on_destroy is False
    assert prod.tailnet.policy.owner and not dev.tailnet.policy.owner
    assert prod.tailnet.policy.environments == ["dev"]


def test_unknown_stack_names_the_ones_there() -> None:
    with pytest.raises(SettingsError, match="stacks here: dev, local, prod"):
        load_stack("staging")


def test_login_server_must_be_a_url() -> None:
    config = with_change("tailnet.loginServer", "headscale.local; rm -rf /")
    assert only_problem(config).startswith(
        "coral:tailnet.loginServer: got 'headscale.local; rm -rf /'; a control plane URL like"
    )
    ok = parse_settings(with_change("tailnet.loginServer", "http://127.0.0.1:8080"))
    assert ok.tailnet.login_server == "http://127.0.0.1:8080"


# --- messages that teach: YAML's type guesses -------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            "tailnet.ssh",
            {"action": "check", "checkPeriod": 12},
            'coral:tailnet.ssh.checkPeriod: got 12, a number without a unit; write a duration in quotes: "12h" for 12 hours',
        ),
        (
            "tailnet.deviceWait",
            300,
            'coral:tailnet.deviceWait: got 300, a number without a unit; write a duration in quotes: "5m" for 300 seconds',
        ),
        (
            "tailnet.deviceWait",
            90,
            'coral:tailnet.deviceWait: got 90, a number without a unit; write a duration in quotes: "1m30s" for 90 seconds',
        ),
        (
            "machines.0.env",
            {"DEBUG": True},
            'coral:machines[0].env.DEBUG: got true, a boolean: YAML reads an unquoted true or false as one; quote it to pass it as text: "true"',
        ),
        (
            "machines.0.env",
            {"WORKERS": 8},
            'coral:machines[0].env.WORKERS: got 8, a number; quote it to pass it as text: "8"',
        ),
        (
            "tailnet.policy",
            {"owner": "no"},
            "coral:tailnet.policy.owner: got 'no', which is text, not a boolean; write true or false without quotes",
        ),
        (
            "machines.0.volume",
            {"kind": "network", "retainOnDestroy": "yes"},
            "coral:machines[0].volume.retainOnDestroy: got 'yes', which is text, not a boolean; write true or false without quotes",
        ),
        (
            "tailnet.magicDns",
            1,
            "coral:tailnet.magicDns: got 1 (a number); write true or false",
        ),
    ],
)
def test_yaml_type_slips_get_a_hint(path: str, value: Any, expected: str) -> None:
    assert only_problem(with_change(path, value)) == expected


def test_stack_files_are_read_as_the_pulumi_cli_reads_them(tmp_path: Path) -> None:
    """The Pulumi CLI reads stack files as YAML 1.2 (checked against the Go-built CLI's
    `pulumi config --json`): only true/false are booleans, an unquoted yes/no is text. Offline
    tools read them the same way, so `owner: no` is refused in both, and `DEBUG: yes` is the
    text "yes" in both."""
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.t.yaml").write_text(
        "config:\n"
        "  coral:tailnet:\n"
        "    policy:\n"
        "      owner: no\n"
        "    magicDns: true\n"
        "  coral:machines:\n"
        "    - volume: {kind: pod}\n"
        "      env: {DEBUG: yes, VERBOSE: on}\n"
    )
    config, _ = read_stack_config("t", tmp_path)
    assert config["coral:tailnet"] == {"policy": {"owner": "no"}, "magicDns": True}
    assert config["coral:machines"][0]["env"] == {"DEBUG": "yes", "VERBOSE": "on"}
    with pytest.raises(SettingsError) as caught:
        load_stack("t", tmp_path)
    assert [str(p) for p in caught.value.problems] == [
        "coral:tailnet.policy.owner: got 'no', which is text, not a boolean; write true or false without quotes"
    ]


def test_format_duration() -> None:
    assert [format_duration(s) for s in (300, 43200, 90, 3661, 0)] == [
        "5m",
        "12h",
        "1m30s",
        "1h1m1s",
        "0s",
    ]


# --- settings the program owns ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "TAILSCALE_AUTHKEY",
            "TAILSCALE_AUTHKEY is set by coral-infra from coral:tailnet.authKey; remove it from env and set coral:tailnet.authKey",
        ),
        (
            "TS_AUTHKEY",
            "TS_AUTHKEY is set by coral-infra from coral:tailnet.authKey; remove it from env and set coral:tailnet.authKey",
        ),
        (
            "TS_HOSTNAME",
            "TS_HOSTNAME is set by coral-infra from coral:machines[0].hostname; remove it from env and set coral:machines[0].hostname",
        ),
        (
            "TS_USERSPACE",
            "TS_USERSPACE is set by coral-infra from coral:machines[0].userspaceNetworking; remove it from env and set coral:machines[0].userspaceNetworking",
        ),
        (
            "TS_EXTRA_ARGS",
            "TS_EXTRA_ARGS is set by coral-infra from coral:tailnet.loginServer; remove it from env and set coral:tailnet.loginServer",
        ),
        (
            "CORAL_BOOTSTRAP_B64",
            "CORAL_BOOTSTRAP_B64 is set by coral-infra from coral:machines[0].bootstrap; remove it from env and set coral:machines[0].bootstrap",
        ),
        (
            "TS_STATE_DIR",
            "TS_STATE_DIR belongs to the bootstrap (coral_infra/bootstrap/start.sh reads every TS_* and CORAL_* variable, and the program sets several); remove it from env: no setting changes it",
        ),
        (
            "CORAL_SSHD_PORT",
            "CORAL_SSHD_PORT belongs to the bootstrap (coral_infra/bootstrap/start.sh reads every TS_* and CORAL_* variable, and the program sets several); remove it from env: no setting changes it",
        ),
    ],
)
def test_env_the_program_sets_is_refused_naming_the_setting(name: str, expected: str) -> None:
    assert only_problem(with_change("machines.0.env", {name: "x"})) == (
        f"coral:machines[0].env.{name}: {expected}"
    )


def test_every_env_name_the_program_sets_is_reserved() -> None:
    """The reserved names come from the bootstrap (one truth): whatever pod_env sets, with
    every option on, and the auth key, is refused in a stack's env."""
    program_env = bootstrap.pod_env(
        userspace=True,
        extra_up_args=["--x=y"],
        include_script=True,
        idle_stop_seconds=3600,
        runpod_api_url="http://127.0.0.1:8765",
    )
    assert bootstrap.IDLE_STOP_SCRIPT_ENV in program_env
    for name in [*program_env, bootstrap.AUTH_KEY_ENV]:
        problem = only_problem(with_change("machines.0.env", {name: "x"}))
        assert problem.startswith(f"coral:machines[0].env.{name}: {name} "), problem
    assert parse_settings(with_change("machines.0.env", {"PUBLIC_KEY": "ssh-ed25519 AAAA"}))


def test_userspace_networking_is_a_setting_that_reaches_the_pod() -> None:
    settings = parse_settings(with_change("machines.0.userspaceNetworking", True))
    assert pod_spec("dev", settings.machines[0])["env"]["TS_USERSPACE"] == "true"
    assert "TS_USERSPACE" not in pod_spec("dev", parse_settings(GOOD).machines[0])["env"]


def test_the_mount_path_rule_is_the_one_the_guardrails_apply() -> None:
    assert only_problem(with_change("machines.0.volume.mountPath", "/data")) == (
        "coral:machines[0].volume.mountPath: got '/data'; the volume must be mounted at "
        "'/workspace': the tailnet identity lives in /workspace/deps/runtime/tailscale and the "
        "guardrails refuse any other mount path"
    )
    assert (
        workspace.mount_path_problem("/data")
        in guardrails.pod_volume_problems({"volume_mount_path": "/data", "volume_gb": 10})[0]
    )
    assert parse_settings(with_change("machines.0.volume.mountPath", "/workspace"))


def test_a_pod_volume_cannot_be_retained() -> None:
    config = with_change("machines.0.volume", {"kind": "pod", "retainOnDestroy": True})
    assert only_problem(config) == (
        "coral:machines[0].volume.retainOnDestroy: a pod volume (kind: pod) is deleted with its "
        "pod and cannot be retained; use kind: network (with dataCenter) to keep /workspace, or "
        "remove retainOnDestroy"
    )


# --- the policy's test users --------------------------------------------------------------------

OWNER_POLICY = {"owner": True, "tests": {"allowed": "ana@corp.io", "denied": "ben@corp.io"}}


def test_allowed_and_denied_must_differ() -> None:
    policy = {**OWNER_POLICY, "tests": {"allowed": "ana@corp.io", "denied": "Ana@corp.io"}}
    assert only_problem(with_change("tailnet.policy", policy)) == (
        "coral:tailnet.policy.tests: allowed and denied are both 'ana@corp.io': one user cannot "
        "be let in and kept out; name a user who may SSH in and a plain member who may not"
    )


@pytest.mark.parametrize(
    "login",
    [
        "owner@example.com",
        "a@dev.example.org",
        "a@example.net",
        "a@corp.example",
        "a@laptop.test",
        "a@x.invalid",
        "a@localhost",
    ],
)
def test_placeholder_logins_are_refused_outside_the_sandbox(login: str) -> None:
    policy = {**OWNER_POLICY, "tests": {"allowed": login, "denied": "ben@corp.io"}}
    assert only_problem(with_change("tailnet.policy", policy)) == (
        f"coral:tailnet.policy.tests: {login!r} is a placeholder (a domain reserved for "
        "examples): no tailnet has such a user, so the tailnet's own test run would reject the "
        "policy at `up`; set allowed and denied to two real logins of your tailnet (admin "
        "console -> Users)"
    )


@pytest.mark.parametrize("login_server", ["http://127.0.0.1:8080", "http://localhost:9000"])
def test_the_local_sandbox_may_use_example_logins(login_server: str) -> None:
    """A loopback control plane is the local sandbox: its headscale has these users."""
    tailnet = {
        "loginServer": login_server,
        "policy": {
            **OWNER_POLICY,
            "tests": {"allowed": "o@example.com", "denied": "m@example.com"},
        },
    }
    config = {**GOOD, "coral:tailnet": tailnet}
    assert parse_settings(config).tailnet.is_sandbox


def test_real_looking_logins_pass() -> None:
    assert parse_settings(with_change("tailnet.policy", OWNER_POLICY)).tailnet.policy.tests


# --- who the SSH config logs in as ---------------------------------------------------------------


def test_check_rules_let_in_root_only_unless_the_stack_lists_more() -> None:
    check = parse_settings(with_change("tailnet.ssh", {"action": "check"})).tailnet.ssh
    assert check.users == ["root"]
    accept = parse_settings(GOOD).tailnet.ssh
    assert accept.users == ["root", "autogroup:nonroot"]
    more = {"action": "check", "users": ["root", "ubuntu"]}
    assert parse_settings(with_change("tailnet.ssh", more)).tailnet.ssh.users == ["root", "ubuntu"]


@pytest.mark.parametrize(
    ("users", "login"),
    [(["root", "autogroup:nonroot"], "root"), (["autogroup:nonroot", "ubuntu"], "ubuntu")],
)
def test_login_user_is_one_the_policy_allows(users: list[str], login: str) -> None:
    ssh = {"action": "accept", "users": users}
    assert parse_settings(with_change("tailnet.ssh", ssh)).tailnet.ssh.login_user == login


def test_nonroot_alone_names_no_user_to_log_in_as() -> None:
    ssh = {"action": "accept", "users": ["autogroup:nonroot"]}
    assert only_problem(with_change("tailnet.ssh", ssh)) == (
        "coral:tailnet.ssh.users: got ['autogroup:nonroot']: 'autogroup:nonroot' names no user "
        "the SSH config block and the `tailscale ssh` command can log in as; add that user by "
        "name (e.g. [autogroup:nonroot, ubuntu])"
    )


# --- partial parses feed the later checks -------------------------------------------------------


def test_valid_parts_of_a_broken_config_are_kept() -> None:
    config = copy.deepcopy(GOOD)
    config["coral:machines"] = [
        {"hostname": "Bad_Host", "volume": {"kind": "pod"}},
        {"hostname": "good", "volume": {"kind": "pod"}},
    ]
    parsed = read_settings(config)
    assert parsed.settings is None
    assert str(parsed.problems[0]).startswith("coral:machines[0].hostname")
    assert parsed.machines[0] is None
    assert parsed.machines[1] is not None and parsed.machines[1].hostname == "good"
    assert parsed.tailnet is not None and parsed.tailnet.machine_tag == "tag:coral-machine"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "config:\n  coral:tailnet: {machineTag: [\n",
            "stack file: not valid YAML at line 3, column 1: expected the node content, but "
            "found '<stream end>'",
        ),
        ("config:\n  - a\n", "stack file: `config:` must be a mapping of keys to values"),
    ],
)
def test_a_stack_file_that_is_not_one_says_where(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.t.yaml").write_text(text)
    with pytest.raises(SettingsError) as caught:
        load_stack("t", tmp_path)
    assert str(caught.value) == f"1 problem(s) in stacks/Pulumi.t.yaml:\n  - {expected}"
