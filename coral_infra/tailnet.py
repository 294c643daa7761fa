"""The tailnet side of a stack: the policy (or a check that it is in place) and the auth key."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_tailscale as tailscale

from coral_infra.policy import Environment, PolicyError, missing_rules, render_owner_policy
from coral_infra.settings import TailnetSettings

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class TailnetArgs:
    """What the Tailnet component needs from the stack."""

    settings: TailnetSettings
    """The stack's `coral:tailnet` settings."""
    stack: str
    """The current stack's name: names this environment in the policy and in error messages."""
    hostnames: Sequence[str]
    """The stack's machine hostnames (`coral:machines[].hostname`); the policy owner checks
    that no other stack on the tailnet uses one of them."""


def policy_missing_message(stack: str, missing: Sequence[str]) -> str:
    """Why a non-owner stack stops, and the commands that fix it."""
    lines = "\n".join(f"  - {line}" for line in missing)
    return (
        f"stack {stack!r}: the tailnet policy lacks this stack's rules:\n{lines}\n"
        "This stack does not own the tailnet policy (coral:tailnet.policy.owner is false), so "
        "the stack that does must write them; which stack that is is not known here. On the "
        f"owner stack, add {stack!r} to coral:tailnet.policy.environments and run "
        f"`pulumi up --stack <owner>`, then run `pulumi up --stack {stack}` again. With no "
        f"owner yet, set coral:tailnet.policy.owner: true on one stack."
    )


class Tailnet(pulumi.ComponentResource):
    """Tailnet policy, machine tag and the auth key machines log in with.

    On the policy owner the whole tailnet policy is an `Acl` (never reset on destroy: a reset
    means Tailscale's allow-all policy). Elsewhere the live policy is read and `up` stops, before
    the key is created, when this stack's rules are missing. The check runs in preview too:
    `getAcl` has no inputs, so the provider answers it during preview like any data source.

    The auth key is reusable, pre-authorized and tagged with the machine tag (it depends on the
    `Acl`, because a key may only carry tags the policy already owns), and is a secret
    everywhere. It is only needed for a machine's first login: tailscaled's state on the
    volume keeps the identity afterwards. Expired keys are recreated on the next `up`
    (`recreate_if_invalid`), and a new key never restarts or replaces a pod: the pod provider
    treats a change of only the auth key as an in-place update that makes no API call.
    """

    auth_key: pulumi.Output[str]
    machine_tag: str
    policy: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: TailnetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("coral:index:Tailnet", name, None, opts)
        settings = args.settings
        self.machine_tag = settings.machine_tag
        child = pulumi.ResourceOptions(parent=self)

        key_tags: pulumi.Input[Sequence[str]]
        key_opts = child
        if settings.policy.owner:
            rendered = render_owner_policy(Environment(args.stack, settings, tuple(args.hostnames)))
            for warning in rendered.warnings:
                pulumi.log.warn(warning, resource=self)
            acl = tailscale.Acl(
                f"{name}-policy",
                acl=rendered.json(),
                overwrite_existing_content=settings.policy.overwrite_existing,
                reset_acl_on_destroy=False,
                opts=child,
            )
            self.policy = acl.acl
            key_tags = [settings.machine_tag]
            key_opts = pulumi.ResourceOptions(parent=self, depends_on=[acl])
        else:
            self.policy = None
            live = tailscale.get_acl_output(opts=pulumi.InvokeOutputOptions(parent=self))
            key_tags = live.apply(lambda result: self._verified_tags(result.json, args))

        key = tailscale.TailnetKey(
            f"{name}-auth-key",
            reusable=True,
            ephemeral=False,
            preauthorized=True,
            tags=key_tags,
            expiry=settings.auth_key.expiry_days * SECONDS_PER_DAY,
            description=settings.auth_key.description,
            recreate_if_invalid="always",
            opts=key_opts,
        )
        self.auth_key = pulumi.Output.secret(key.key)

        if settings.magic_dns is not None:
            tailscale.DnsPreferences(
                f"{name}-dns",
                magic_dns=settings.magic_dns,
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )

        outputs: dict[str, Any] = {"auth_key": self.auth_key, "machine_tag": self.machine_tag}
        if self.policy is not None:
            outputs["policy"] = self.policy
        self.register_outputs(outputs)

    @staticmethod
    def _verified_tags(live_json: str, args: TailnetArgs) -> list[str]:
        """The key's tags, once the live policy is known to hold this stack's rules."""
        try:
            live = json.loads(live_json)
        except json.JSONDecodeError as error:
            raise PolicyError(f"the tailnet policy read back is not JSON: {error}") from None
        missing = missing_rules(live, args.settings)
        if missing:
            raise PolicyError(policy_missing_message(args.stack, missing))
        return [args.settings.machine_tag]
