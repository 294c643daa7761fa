"""Every bad input is caught before anything is created, with the key path, what was given and
what is allowed; all mistakes of one config come back together."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from coral_infra.settings import (
    SettingsError,
    load_stack,
    parse_duration_hours,
    parse_settings,
)

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
            "coral:machines[0].volume.mountPath: got 'workspace'; the mount path must be absolute",
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
            "coral:machines[0].env.TAILSCALE_AUTHKEY: TAILSCALE_AUTHKEY is set by coral-infra itself",
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
            "coral:tailnet.policy.ownr: unknown key 'ownr' (a typo?); allowed here: baseFile, environments, overwriteExisting, owner, tests",
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
