"""Tailnet and Device components under Pulumi mocks: exact provider inputs, invokes, secrets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pulumi
import pytest

from coral_infra.device import Device, DeviceArgs, StaleDeviceError, TailnetDevices
from coral_infra.policy import PolicyError, RenderedPolicy, environment_rules, policy_for_stack
from coral_infra.preflight import OwnerView
from coral_infra.settings import Settings, load_stack, parse_settings
from coral_infra.tailnet import Tailnet, TailnetArgs, policy_targets

from .harness import (
    AUTH_KEY,
    GET_ACL,
    GET_DEVICE,
    GET_DEVICES,
    TailnetMocks,
    device,
    facts,
    raised,
    run,
)

ACL = "tailscale:index/acl:Acl"
KEY = "tailscale:index/tailnetKey:TailnetKey"
DNS = "tailscale:index/dnsPreferences:DnsPreferences"


def tailnet_program(stack: str, settings: Settings, owner: OwnerView | None = None) -> Any:
    def program() -> Any:
        tailnet = Tailnet(
            "tailnet",
            TailnetArgs(
                settings=settings.tailnet,
                stack=stack,
                hostnames=[m.hostname for m in settings.machines],
                owner=owner,
            ),
        )

        async def collect() -> dict[str, Any]:
            result = {"auth_key": await facts(tailnet.auth_key), "tag": tailnet.machine_tag}
            if tailnet.policy is not None:
                result["policy"] = await facts(tailnet.policy)
            return result

        return collect()

    return program


def test_prod_owner_writes_the_rendered_policy_and_a_tagged_secret_key() -> None:
    prod = load_stack("prod")
    mocks = TailnetMocks()
    collected, monitor = run(mocks, tailnet_program("prod", prod), stack="prod")

    acl = mocks.one(ACL)
    assert json.loads(acl["acl"]) == policy_for_stack("prod")
    assert acl["overwriteExistingContent"] is False
    assert acl["resetAclOnDestroy"] is False
    assert mocks.one(KEY) == {
        "reusable": True,
        "ephemeral": False,
        "preauthorized": True,
        "tags": ["tag:coral-machine"],
        "expiry": 90 * 86400,
        "description": "coral machine",
        "recreateIfInvalid": "always",
    }
    assert mocks.by_type(DNS) == []  # magicDns unset: tailnet-wide DNS left alone
    assert GET_ACL not in mocks.tokens()  # the owner writes, it does not check

    value, known, secret = collected["auth_key"]
    assert (value, known, secret) == (AUTH_KEY, True, True)
    assert collected["tag"] == "tag:coral-machine"
    assert json.loads(collected["policy"][0])["tagOwners"]["tag:coral-dev"] == ["autogroup:admin"]
    urns = monitor.get_registered_resources()
    # Children are parented to the component (their URN type is qualified by it).
    assert any(
        u.endswith("coral:index:Tailnet$tailscale:index/acl:Acl::tailnet-policy") for u in urns
    )
    assert all(r.id for r in urns.values() if "tailscale:index" in r.urn)


def test_dev_non_owner_checks_the_live_policy_then_creates_its_key() -> None:
    dev = load_stack("dev")
    live = policy_for_stack("prod")
    mocks = TailnetMocks(live_policy=live)
    collected, _ = run(mocks, tailnet_program("dev", dev), stack="dev")

    assert mocks.by_type(ACL) == []  # never writes the tailnet-wide policy
    assert mocks.tokens() == [GET_ACL]
    assert mocks.one(KEY) == {
        "reusable": True,
        "ephemeral": False,
        "preauthorized": True,
        "tags": ["tag:coral-dev"],
        "expiry": 30 * 86400,
        "description": "coral dev machine",
        "recreateIfInvalid": "always",
    }
    assert collected["auth_key"] == (AUTH_KEY, True, True)
    assert "policy" not in collected


def test_dev_fails_before_creating_a_key_when_its_rules_are_missing() -> None:
    dev = load_stack("dev")
    live = policy_for_stack("prod")
    live["ssh"] = [r for r in live["ssh"] if r["dst"] != ["tag:coral-dev"]]
    mocks = TailnetMocks(live_policy=live)
    with pytest.raises(Exception) as error:
        run(mocks, tailnet_program("dev", dev), stack="dev")
    message = str(raised(PolicyError, error.value))
    assert "ssh: no rule" in message and "tag:coral-dev" in message
    assert "coral:tailnet.policy.environments" in message
    assert "pulumi up --stack dev" in message
    assert mocks.by_type(KEY) == []


def prod_view() -> OwnerView:
    """prod as dev's preflight finds it: the owner, rendering dev's rules from this commit."""
    return OwnerView("prod", RenderedPolicy(policy_for_stack("prod"), ()))


def test_dev_preview_compares_with_the_owners_rendering_when_the_live_policy_lacks_its_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pull request changing dev's rules: the live policy has the old ones, prod renders
    the new ones from the same commit, and its policy step runs before dev's `up`."""
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warnings.append(message))
    live = policy_for_stack("prod")
    live["ssh"] = [r for r in live["ssh"] if r["dst"] != ["tag:coral-dev"]]
    mocks = TailnetMocks(live_policy=live)
    run(mocks, tailnet_program("dev", load_stack("dev"), prod_view()), stack="dev", preview=True)
    assert mocks.one(KEY)["tags"] == ["tag:coral-dev"]
    (warning,) = warnings
    assert warning.startswith("the live tailnet policy lacks stack 'dev''s rules (ssh: no rule ")
    assert warning.endswith(
        "stack 'prod', which owns the policy, renders them from this commit and its update "
        "adds them: run its policy step before `up` of this stack (the deploy workflow does)"
    )


def test_dev_up_still_stops_and_names_the_owners_policy_step() -> None:
    live = policy_for_stack("prod")
    live["ssh"] = [r for r in live["ssh"] if r["dst"] != ["tag:coral-dev"]]
    mocks = TailnetMocks(live_policy=live)
    with pytest.raises(Exception) as error:
        run(mocks, tailnet_program("dev", load_stack("dev"), prod_view()), stack="dev")
    message = str(raised(PolicyError, error.value))
    targets = " ".join(f"--target '{urn}'" for urn in policy_targets("prod"))
    assert message.endswith(
        "Stack 'prod' owns the tailnet policy and renders these rules from this commit: its "
        "policy step must run first (the deploy workflow's `policy` job does): `pulumi up "
        f"--stack prod {targets}`, then `pulumi up --stack dev` again."
    )
    assert mocks.by_type(KEY) == []


def test_dev_preview_fails_when_the_owner_does_not_render_its_rules_either() -> None:
    stale = policy_for_stack("prod")
    stale["ssh"] = [r for r in stale["ssh"] if r["dst"] != ["tag:coral-dev"]]
    mocks = TailnetMocks(live_policy=stale)
    view = OwnerView("prod", RenderedPolicy(stale, ()))
    with pytest.raises(Exception) as error:
        run(mocks, tailnet_program("dev", load_stack("dev"), view), stack="dev", preview=True)
    message = str(raised(PolicyError, error.value))
    assert message.endswith(
        "Stack 'prod' owns the tailnet policy, but its rendering from this commit lacks them "
        "too; fix that first."
    )


def test_dev_check_runs_in_preview_too() -> None:
    mocks = TailnetMocks(live_policy={})
    with pytest.raises(Exception) as error:
        run(mocks, tailnet_program("dev", load_stack("dev")), stack="dev", preview=True)
    assert "tagOwners: 'tag:coral-dev' is not declared" in str(raised(PolicyError, error.value))
    assert mocks.tokens() == [GET_ACL]


def settings_with(tailnet: dict[str, Any]) -> Settings:
    return parse_settings(
        {
            "coral:tailnet": tailnet,
            "coral:machines": [{"hostname": "coral-machine", "volume": {"kind": "pod"}}],
        }
    )


OWNER = {"policy": {"owner": True, "tests": {"allowed": "o@corp.io", "denied": "m@corp.io"}}}


@pytest.mark.parametrize("magic_dns", [True, False])
def test_magic_dns_is_managed_only_when_set_and_retained_on_delete(magic_dns: bool) -> None:
    mocks = TailnetMocks()
    run(
        mocks,
        tailnet_program("solo", settings_with({**OWNER, "magicDns": magic_dns})),
        stack="solo",
    )
    assert mocks.one(DNS) == {"magicDns": magic_dns}
    assert json.loads(mocks.one(ACL)["acl"])["ssh"][0]["dst"] == ["tag:coral-machine"]


def test_overwrite_existing_is_passed_to_the_acl() -> None:
    mocks = TailnetMocks()
    owner = {"policy": {**OWNER["policy"], "overwriteExisting": True}}
    run(mocks, tailnet_program("solo", settings_with(owner)), stack="solo")
    assert mocks.one(ACL)["overwriteExistingContent"] is True


def test_retain_on_delete_is_set_on_dns_preferences() -> None:
    mocks = TailnetMocks()
    _, monitor = run(
        mocks, tailnet_program("solo", settings_with({**OWNER, "magicDns": True})), stack="solo"
    )
    assert monitor.retained_on_delete() == ["tailnet-dns"]
    assert "tailnet-policy" in monitor.requests  # the Acl is not retained (and never resets)


def unknown_output() -> pulumi.Output[str]:
    """What an engine gives for the id of a resource a preview is about to create."""
    loop = asyncio.get_event_loop()
    value: asyncio.Future[Any] = loop.create_future()
    known: asyncio.Future[bool] = loop.create_future()
    value.set_result(None)
    known.set_result(False)
    return pulumi.Output(set(), value, known)


def device_program(found_hostname: str = "coral-machine", pod_id: str | None = "pod-abc123") -> Any:
    """`pod_id=None`: the pod is created by this run, so in preview its id is unknown."""

    def program() -> Any:
        joined_after: pulumi.Input[str] = pod_id if pod_id is not None else unknown_output()
        component = Device(
            "device",
            DeviceArgs(
                hostname=found_hostname,
                devices=TailnetDevices(),
                machine_tag="tag:coral-machine",
                wait_for="5m",
                joined_after=joined_after,
            ),
        )

        async def collect() -> dict[str, Any]:
            return {
                "id": await facts(component.device_id),
                "name": await facts(component.magic_dns_name),
                "addresses": await facts(component.addresses),
            }

        return collect()

    return program


def test_device_is_looked_up_then_pinned() -> None:
    mocks = TailnetMocks(devices=[device("coral-machine", "nABC123CNTRL"), device("other", "n2")])
    collected, _ = run(mocks, device_program(), stack="prod")

    assert [(c.token, c.args) for c in mocks.calls] == [(GET_DEVICES, {})]
    assert mocks.one("tailscale:index/deviceKey:DeviceKey") == {
        "deviceId": "nABC123CNTRL",
        "keyExpiryDisabled": True,
    }
    assert mocks.one("tailscale:index/deviceTags:DeviceTags") == {
        "deviceId": "nABC123CNTRL",
        "tags": ["tag:coral-machine"],
    }
    assert mocks.one("tailscale:index/deviceAuthorization:DeviceAuthorization") == {
        "deviceId": "nABC123CNTRL",
        "authorized": True,
    }
    assert collected["id"][0] == "nABC123CNTRL"
    assert collected["name"][0] == "coral-machine.tail1234.ts.net"
    assert collected["addresses"][0] == ["100.64.0.7", "fd7a:115c:a1e0::7"]


def test_device_key_and_tags_are_retained_on_delete() -> None:
    """Their provider's delete fails on a device removed by hand and undoes settings a device
    the stack leaves still needs (coral_infra/device.py); DeviceAuthorization's makes no call."""
    mocks = TailnetMocks(devices=[device("coral-machine", "nABC123CNTRL")])
    _, monitor = run(mocks, device_program(), stack="prod")
    assert monitor.retained_on_delete() == ["device-key", "device-tags"]
    authorization = monitor.requests["device-authorization"]
    assert authorization.type == "tailscale:index/deviceAuthorization:DeviceAuthorization"
    assert authorization.retainOnDelete is False


def test_device_lookup_waits_for_a_new_pod_in_preview() -> None:
    mocks = TailnetMocks(devices=[device("coral-machine", "nABC123CNTRL")])
    collected, _ = run(mocks, device_program(pod_id=None), stack="prod", preview=True)
    assert mocks.calls == []
    assert collected["id"][1] is False  # unknown until `up`
    # The pinning resources are still planned, with the device id to be known.
    assert len(mocks.by_type("tailscale:index/deviceTags:DeviceTags")) == 1


def test_device_of_an_existing_pod_is_looked_up_in_preview() -> None:
    """So that previewing an unchanged stack plans no change to the device settings."""
    mocks = TailnetMocks(devices=[device("coral-machine", "nABC123CNTRL")])
    collected, _ = run(mocks, device_program(), stack="prod", preview=True)
    assert [c.token for c in mocks.calls] == [GET_DEVICES]
    assert collected["id"][:2] == ("nABC123CNTRL", True)


def test_stale_device_holding_the_name_stops_before_pinning() -> None:
    stale = device("coral-machine", "nOLD", hostname="coral-machine")
    new = device("coral-machine-1", "nNEW", hostname="coral-machine")
    mocks = TailnetMocks(devices=[new, stale])
    with pytest.raises(Exception) as error:
        run(mocks, device_program(), stack="prod")
    message = str(raised(StaleDeviceError, error.value))
    assert "coral-machine-1.tail1234.ts.net" in message and "nOLD" in message
    assert "tailscale logout" in message and "pulumi up" in message
    assert [r.typ for r in mocks.resources] == ["coral:index:Device"]  # nothing pinned


def test_prod_and_dev_rules_in_the_rendered_policy_match_what_dev_checks() -> None:
    live = policy_for_stack("prod")
    dev_rules = environment_rules(load_stack("dev").tailnet)
    assert dev_rules["ssh"][0] in live["ssh"]
    assert dev_rules["acls"][0] in live["acls"]


def test_a_device_still_joining_is_waited_for_on_its_own() -> None:
    """A pod this run created may not have joined when the run lists the tailnet."""
    mocks = TailnetMocks(devices=[device("other", "n2")], joining=[device("coral-machine", "nJ")])
    collected, _ = run(mocks, device_program(), stack="prod")
    assert [(c.token, c.args) for c in mocks.calls] == [
        (GET_DEVICES, {}),
        (GET_DEVICE, {"hostname": "coral-machine", "waitFor": "5m"}),
    ]
    assert collected["id"][0] == "nJ"


def test_a_joining_device_that_got_another_name_is_refused() -> None:
    """A device renamed in the admin console kept the name: the pod joins as `<name>-1`."""
    holder = device("coral-machine", "nOLD", hostname="old-box")
    joined = device("coral-machine-1", "nNEW", hostname="coral-machine")
    mocks = TailnetMocks(devices=[holder], joining=[joined])
    with pytest.raises(Exception) as error:
        run(mocks, device_program(), stack="prod")
    message = str(raised(StaleDeviceError, error.value))
    assert "'coral-machine-1.tail1234.ts.net' (id nNEW)" in message
    assert "coral-machine.tail1234.ts.net (id nOLD" in message


def test_every_machine_shares_one_list_taken_after_every_pod_exists() -> None:
    """Three machines, one pod still being created: one getDevices, after that pod exists."""
    names = ("m0", "m1", "m2")
    mocks = TailnetMocks(devices=[device(n, f"n{i}") for i, n in enumerate(names)])
    events: list[str] = []

    def program() -> Any:
        loop = asyncio.get_event_loop()
        late: asyncio.Future[Any] = loop.create_future()
        known: asyncio.Future[bool] = loop.create_future()
        known.set_result(True)

        def created() -> None:
            events.append("pod m2 created")
            late.set_result("pod-m2")

        loop.call_later(0.2, created)
        pods: list[pulumi.Input[str]] = ["pod-m0", "pod-m1", pulumi.Output(set(), late, known)]
        devices = TailnetDevices()
        components = [
            Device(
                f"{name}-device",
                DeviceArgs(
                    hostname=name,
                    devices=devices,
                    machine_tag="tag:coral-machine",
                    wait_for="5m",
                    joined_after=pod,
                ),
            )
            for name, pod in zip(names, pods, strict=True)
        ]

        async def collect() -> dict[str, Any]:
            return {c._name: await c.device_id.future() for c in components}

        return collect()

    original = mocks.call

    def call(args: Any) -> Any:
        events.append(args.token)
        return original(args)

    mocks.call = call  # type: ignore[method-assign]
    collected, _ = run(mocks, program, stack="prod")
    assert events == ["pod m2 created", GET_DEVICES]
    assert collected == {"m0-device": "n0", "m1-device": "n1", "m2-device": "n2"}
