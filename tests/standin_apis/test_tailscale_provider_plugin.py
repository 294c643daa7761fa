"""The pulumi-tailscale plugin stand-in (standins/pulumi_tailscale_provider.py and its
resources, standins/pulumi_tailscale_resources.py) does what the real provider does for the
behaviours this project relies on, over HTTP against the API stand-in. Each test is a row of
docs/tailscale-api-conformance.md, which cites the real provider's source
(terraform-provider-tailscale v0.29.2, bridged by pulumi-tailscale 0.29.x)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import provider_pb2

from standins.pulumi_tailscale_provider import Provider
from standins.tailscale_api import DEFAULT_POLICY_TEXT, TailscaleApiStandin
from tests.standin_apis.api_calls import API_KEY, OWNER, TAG, call, policy
from tests.standin_apis.recorded_headscale import RecordedHeadscale, recorded_node

MACHINE = "coral-machine"


def edited() -> dict[str, Any]:
    """The policy as someone changed it in the admin console."""
    return {**policy(), "hosts": {"printer": "100.64.0.99"}}


class Aborted(Exception):
    def __init__(self, code: Any, message: str) -> None:
        super().__init__(message)
        self.code = code


class Context:
    """The gRPC servicer context: the provider reports failures through abort()."""

    def abort(self, code: Any, message: str) -> None:
        raise Aborted(code, message)


def struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(dict(values))
    return result


def urn(token: str, name: str = "r") -> str:
    return f"urn:pulumi:dev::coral::{token}::{name}"


ACL = urn("tailscale:index/acl:Acl")
KEY = urn("tailscale:index/tailnetKey:TailnetKey")
DEVICE_KEY = urn("tailscale:index/deviceKey:DeviceKey")
DEVICE_TAGS = urn("tailscale:index/deviceTags:DeviceTags")
DEVICE_AUTHORIZATION = urn("tailscale:index/deviceAuthorization:DeviceAuthorization")
DNS = urn("tailscale:index/dnsPreferences:DnsPreferences")


def configured(api: TailscaleApiStandin, api_key: str = API_KEY) -> Provider:
    plugin = Provider()
    variables = {"tailscale:config:apiKey": api_key, "tailscale:config:baseUrl": api.url}
    plugin.Configure(provider_pb2.ConfigureRequest(variables=variables), Context())
    return plugin


@pytest.fixture
def provider(api: TailscaleApiStandin) -> Provider:
    return configured(api)


def create(provider: Provider, resource: str, inputs: Mapping[str, Any]) -> tuple[str, Any]:
    checked = provider.Check(
        provider_pb2.CheckRequest(urn=resource, news=struct(inputs)), Context()
    )
    assert not checked.failures, checked.failures
    done = provider.Create(
        provider_pb2.CreateRequest(urn=resource, properties=checked.inputs), Context()
    )
    return done.id, json_format.MessageToDict(done.properties)


def read(provider: Provider, resource: str, resource_id: str, state: Mapping[str, Any]) -> Any:
    done = provider.Read(
        provider_pb2.ReadRequest(id=resource_id, urn=resource, properties=struct(state)), Context()
    )
    return json_format.MessageToDict(done.properties) if done.id else None


def delete(provider: Provider, resource: str, resource_id: str, state: Mapping[str, Any]) -> None:
    provider.Delete(
        provider_pb2.DeleteRequest(id=resource_id, urn=resource, properties=struct(state)),
        Context(),
    )


def planned_replacement(
    provider: Provider, resource: str, state: Mapping[str, Any], news: Mapping[str, Any]
) -> list[str]:
    """What the engine's diff of `state` against the program's `news` replaces."""
    checked = provider.Check(provider_pb2.CheckRequest(urn=resource, news=struct(news)), Context())
    diff = provider.Diff(
        provider_pb2.DiffRequest(
            id="r", urn=resource, olds=struct(state), news=checked.inputs, old_inputs=checked.inputs
        ),
        Context(),
    )
    return list(diff.replaces)


def invoke(provider: Provider, token: str, args: Mapping[str, Any]) -> Any:
    done = provider.Invoke(provider_pb2.InvokeRequest(tok=token, args=struct(args)), Context())
    return json_format.MessageToDict(getattr(done, "return"))


def test_acl_create_refuses_a_policy_that_is_not_the_default_unless_overwriting(
    provider: Provider, api: TailscaleApiStandin
) -> None:
    """resource_acl.go Create: Set(acl, "ts-default") unless overwrite_existing_content; a 412
    becomes 'Overwrite Protected'."""
    create(provider, ACL, {"acl": json.dumps(policy())})
    with pytest.raises(Aborted, match="overwriteExistingContent: true") as refused:
        create(provider, ACL, {"acl": json.dumps(edited())})
    assert "precondition failed, invalid old hash (412)" in str(refused.value)
    create(provider, ACL, {"acl": json.dumps(policy()), "overwriteExistingContent": True})
    assert [c for c in api.calls if c[0] == "POST"] == [("POST", "/tailnet/-/acl")] * 3


def test_acl_update_replaces_the_whole_policy_without_if_match(
    provider: Provider, api: TailscaleApiStandin
) -> None:
    """resource_acl.go Update: Set(acl, ""): a policy edited out of band is overwritten."""
    _, state = create(provider, ACL, {"acl": json.dumps(policy())})
    assert call(api, "POST", "tailnet/-/acl", edited())[0] == 200
    news = {**state, "acl": "// ours again\n" + json.dumps(policy())}
    provider.Update(
        provider_pb2.UpdateRequest(id="acl", urn=ACL, olds=struct(state), news=struct(news)),
        Context(),
    )
    assert call(api, "GET", "tailnet/-/acl")[1] == news["acl"]


def test_acl_read_keeps_the_live_hujson_when_it_drifted(
    provider: Provider, api: TailscaleApiStandin
) -> None:
    """resource_acl.go Read: PolicyFile().Raw, the HuJSON kept as the state's acl."""
    _, state = create(provider, ACL, {"acl": json.dumps(policy())})
    assert read(provider, ACL, "acl", state)["acl"] == state["acl"]
    drifted = "// edited in the admin console\n" + json.dumps(edited())
    assert call(api, "POST", "tailnet/-/acl", drifted)[0] == 200
    assert read(provider, ACL, "acl", state)["acl"] == drifted


def test_acl_reset_on_destroy_sends_an_empty_policy_and_is_off_by_default(
    provider: Provider, api: TailscaleApiStandin
) -> None:
    """resource_acl.go Delete: nothing unless reset_acl_on_destroy; then Set("", "")."""
    _, state = create(provider, ACL, {"acl": json.dumps(policy())})
    delete(provider, ACL, "acl", state)
    assert call(api, "GET", "tailnet/-/acl", headers={"Accept": "application/json"})[1] == policy()
    delete(provider, ACL, "acl", {**state, "resetAclOnDestroy": True})
    # The API's own default text (with its comment): the empty-policy reset, not a JSON body.
    assert call(api, "GET", "tailnet/-/acl")[1] == DEFAULT_POLICY_TEXT


def test_get_device_lets_the_api_filter_by_hostname_and_takes_the_first(
    provider: Provider, api: TailscaleApiStandin, headscale: RecordedHeadscale
) -> None:
    """data_source_device.go Read: List(WithFilter("hostname", ...)), devices[0]. A stale
    device holding the hostname comes first (coral_infra/device.py then stops with the fix)."""
    headscale.recorded = [
        recorded_node(1, MACHINE, tags=[TAG], online=False),
        {**recorded_node(2, MACHINE, tags=[TAG]), "given_name": f"{MACHINE}-1"},
        recorded_node(3, "laptop", user={"name": "owner", "email": OWNER}),
    ]
    found = invoke(provider, "tailscale:index/getDevice:getDevice", {"hostname": MACHINE})
    assert (found["nodeId"], found["name"]) == ("n1CNTRL", f"{MACHINE}.coral.test")
    assert ("GET", f"/tailnet/-/devices?hostname={MACHINE}") in api.calls
    by_name = {"name": f"{MACHINE}-1.coral.test"}
    assert invoke(provider, "tailscale:index/getDevice:getDevice", by_name)["nodeId"] == "n2CNTRL"
    with pytest.raises(Aborted, match="could not find device with hostname='nobody'"):
        invoke(provider, "tailscale:index/getDevice:getDevice", {"hostname": "nobody"})


def test_get_devices_matches_the_name_prefix_on_the_full_list(
    provider: Provider, api: TailscaleApiStandin, headscale: RecordedHeadscale
) -> None:
    """data_source_devices.go Read: List() then strings.HasPrefix(device.Name, name_prefix)."""
    headscale.recorded = [
        recorded_node(1, MACHINE, tags=[TAG]),
        recorded_node(2, "laptop", user={"name": "owner", "email": OWNER}),
    ]
    listed = invoke(provider, "tailscale:index/getDevices:getDevices", {"namePrefix": "coral"})
    assert [d["nodeId"] for d in listed["devices"]] == ["n1CNTRL"]
    assert ("GET", "/tailnet/-/devices") in api.calls


def test_get_acl_reads_the_hujson_once_and_minimizes_it(
    provider: Provider, api: TailscaleApiStandin
) -> None:
    """data_source_acl.go: one Raw call; `json` is the HuJSON minimized."""
    text = '// ours\n{\n\t"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]},],\n}\n'
    assert call(api, "POST", "tailnet/-/acl", text)[0] == 200
    api.calls.clear()
    result = invoke(provider, "tailscale:index/getAcl:getAcl", {})
    assert result["hujson"] == text
    assert result["json"] == '{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}'
    assert api.calls == [("GET", "/tailnet/-/acl")]


def test_device_tags_destroy_sets_no_tags(
    provider: Provider, api: TailscaleApiStandin, headscale: RecordedHeadscale
) -> None:
    """resource_device_tags.go Delete: SetTags(id, []) (the API stand-in then shows the device
    untagged; what Tailscale does is not verified)."""
    headscale.recorded = [recorded_node(1, MACHINE, tags=[TAG])]
    assert call(api, "POST", "tailnet/-/acl", policy())[0] == 200
    write = {"deviceId": "n1CNTRL", "tags": [TAG]}
    device_id, state = create(provider, DEVICE_TAGS, write)
    delete(provider, DEVICE_TAGS, device_id, state)
    assert "tags" not in call(api, "GET", "device/n1CNTRL")[1]
    assert ("POST", "/device/n1CNTRL/tags") in api.calls


@pytest.mark.parametrize(
    ("resource", "inputs", "message"),
    [
        (
            DEVICE_TAGS,
            {"tags": [TAG]},
            "Failed to delete device tags: Failed to delete tags for device with ID n1CNTRL: "
            "device not found (404)",
        ),
        (
            DEVICE_KEY,
            {"keyExpiryDisabled": True},
            "Failed to update device key: Failed to update key for device with ID n1CNTRL: "
            "device not found (404)",
        ),
    ],
)
def test_device_settings_destroy_fails_when_the_device_is_gone(
    provider: Provider,
    api: TailscaleApiStandin,
    headscale: RecordedHeadscale,
    resource: str,
    inputs: dict[str, Any],
    message: str,
) -> None:
    """resource_device_tags.go and resource_device_key.go Delete: any error, a 404 for a device
    removed by hand included, fails the delete with the resource's diagnostic, which the
    bridge reports as "summary: detail" (only TailnetKey's Delete ignores a 404)."""
    headscale.recorded = [recorded_node(1, MACHINE, tags=[TAG])]
    assert call(api, "POST", "tailnet/-/acl", policy())[0] == 200
    device_id, state = create(provider, resource, {"deviceId": "n1CNTRL", **inputs})
    assert call(api, "DELETE", "device/n1CNTRL")[0] == 200
    with pytest.raises(Aborted) as failed:
        delete(provider, resource, device_id, state)
    assert str(failed.value) == message
    # Read: a device that is gone removes the resource from state instead.
    assert read(provider, resource, device_id, state) is None


def test_device_key_destroy_turns_key_expiry_back_on(
    provider: Provider, api: TailscaleApiStandin, headscale: RecordedHeadscale
) -> None:
    """resource_device_key.go: Create SetKey(keyExpiryDisabled), Delete SetKey({}), Read
    device.keyExpiryDisabled."""
    headscale.recorded = [recorded_node(1, MACHINE, tags=[TAG])]
    device_id, state = create(
        provider, DEVICE_KEY, {"deviceId": "n1CNTRL", "keyExpiryDisabled": True}
    )
    assert read(provider, DEVICE_KEY, device_id, state)["keyExpiryDisabled"] is True
    delete(provider, DEVICE_KEY, device_id, state)
    assert call(api, "GET", "device/n1CNTRL")[1]["keyExpiryDisabled"] is False
    assert read(provider, DEVICE_KEY, device_id, state)["keyExpiryDisabled"] is False


def test_device_authorization_authorizes_and_its_destroy_changes_nothing(
    provider: Provider, api: TailscaleApiStandin, headscale: RecordedHeadscale
) -> None:
    """resource_device_authorization.go: Create SetAuthorized(true); Delete is a no-op."""
    headscale.recorded = [recorded_node(1, MACHINE, tags=[TAG])]
    assert call(api, "POST", "device/n1CNTRL/authorized", {"authorized": False})[0] == 200
    inputs = {"deviceId": "n1CNTRL", "authorized": True}
    device_id, state = create(provider, DEVICE_AUTHORIZATION, inputs)
    assert call(api, "GET", "device/n1CNTRL")[1]["authorized"] is True
    api.calls.clear()
    delete(provider, DEVICE_AUTHORIZATION, device_id, state)
    headscale.recorded = []  # a device already gone changes nothing either
    delete(provider, DEVICE_AUTHORIZATION, device_id, state)
    assert api.calls == []


KEY_INPUTS = {"reusable": True, "preauthorized": True, "tags": [TAG], "expiry": 7200}


def test_tailnet_key_expiry_goes_in_seconds(provider: Provider, api: TailscaleApiStandin) -> None:
    """resource_tailnet_key.go Create: expiry in seconds (expirySeconds), read back from the
    key; a valid key reads `invalid: false` and plans no replacement."""
    assert call(api, "POST", "tailnet/-/acl", policy())[0] == 200
    inputs = {**KEY_INPUTS, "recreateIfInvalid": "always"}
    key_id, state = create(provider, KEY, inputs)
    live = call(api, "GET", f"tailnet/-/keys/{key_id}")[1]
    assert live["expirySeconds"] == 7200 and state["key"] == api.minted[-1]
    assert read(provider, KEY, key_id, state)["invalid"] is False
    assert planned_replacement(provider, KEY, state, inputs) == []


@pytest.mark.parametrize(
    ("recreate_if_invalid", "reusable", "replaced"),
    [
        ("always", True, True),
        ("always", False, True),
        (None, True, True),  # unset: a reusable key is recreated...
        (None, False, False),  # ...a single-use one (used, so invalid) is not
        ("never", True, False),
    ],
)
def test_an_invalid_key_stays_in_state_and_is_replaced_as_recreate_if_invalid_says(
    provider: Provider,
    api: TailscaleApiStandin,
    recreate_if_invalid: str | None,
    reusable: bool,
    replaced: bool,
) -> None:
    """resource_tailnet_key.go Read keeps an invalid key (revoked, expired, or 404) in state
    with `invalid: true`; ModifyPlan then plans its replacement (`id` unknown) when
    shouldRecreateIfInvalid(reusable, recreate_if_invalid) says so, else nothing changes."""
    assert call(api, "POST", "tailnet/-/acl", policy())[0] == 200
    inputs: dict[str, Any] = {**KEY_INPUTS, "reusable": reusable}
    if recreate_if_invalid is not None:
        inputs["recreateIfInvalid"] = recreate_if_invalid
    key_id, state = create(provider, KEY, inputs)
    assert call(api, "DELETE", f"tailnet/-/keys/{key_id}")[0] == 200
    kept = read(provider, KEY, key_id, state)
    assert kept["invalid"] is True and kept["key"] == state["key"]
    assert planned_replacement(provider, KEY, kept, inputs) == (["id"] if replaced else [])
    # A key the API no longer knows at all (404) reads the same way.
    gone = read(provider, KEY, "kGONE", state)
    assert gone["invalid"] is True and gone["key"] == state["key"]


def test_tailnet_key_destroy_ignores_only_a_key_already_gone(
    provider: Provider, api: TailscaleApiStandin
) -> None:
    """resource_tailnet_key.go Delete: a 404 is ignored ("Single-use keys may no longer be
    here"); any other error fails with the provider's message (the id printed with Go's %q of
    an already quoted types.String)."""
    delete(provider, KEY, "kGONE", {})
    assert ("DELETE", "/tailnet/-/keys/kGONE") in api.calls
    with pytest.raises(Aborted) as failed:
        delete(configured(api, api_key="tskey-api-wrong"), KEY, "kGONE", {})
    assert str(failed.value) == (
        'Failed to delete key: Error deleting tailnet key with id "\\"kGONE\\"": '
        "API token invalid (401)"
    )


def test_dns_preferences_destroy_turns_magic_dns_off(
    provider: Provider, api: TailscaleApiStandin
) -> None:
    """resource_dns_preferences.go Delete: SetPreferences(DNSPreferences{})."""
    resource_id, state = create(provider, DNS, {"magicDns": True})
    assert call(api, "GET", "tailnet/-/dns/preferences")[1] == {"magicDNS": True}
    delete(provider, DNS, resource_id, state)
    assert call(api, "GET", "tailnet/-/dns/preferences")[1] == {"magicDNS": False}


def test_every_test_the_docs_name_exists() -> None:
    """docs/tailscale-api-conformance.md: each row of its two tables with a test column (what
    the client proved, the provider behaviours) names a test, and `run:` checks; all exist."""
    repo = Path(__file__).resolve().parents[2]
    text = (repo / "docs" / "tailscale-api-conformance.md").read_text()
    defined = {
        match
        for path in (repo / "tests").rglob("test_*.py")
        for match in re.findall(r"^def (test_\w+)\(", path.read_text(), re.MULTILINE)
    }
    go = "".join(p.read_text() for p in (repo / "tools" / "tailscale-conformance").glob("*.go"))
    checks = set(re.findall(r'"((?:policy|dns|keys|devices|auth)\.[\w.-]+)"', go))
    rows: list[str] = []
    table = ""
    for line in text.splitlines():
        if not line.startswith("|"):
            table = ""
        elif not table:
            table = line.split("|")[1].strip()
        elif table in ("wire detail", "behaviour") and not line.startswith("|---"):
            rows.append(line)
    assert len(rows) == 25
    for row in rows:
        named = re.findall(r"`(?:[\w/.]+::)?(test_\w+)`", row)
        assert named, f"no test named in: {row[:80]}"
        assert set(named) <= defined, f"unknown tests {set(named) - defined}"
        for pattern in re.findall(r"`((?:policy|dns|keys|devices|auth)\.[\w.*-]+)`", row):
            regex = re.compile(re.escape(pattern).replace(r"\*", r"[\w.-]+") + "$")
            assert any(regex.match(c) for c in checks), f"no run check {pattern}"
