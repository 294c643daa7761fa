"""The tailnet side of a stack: the policy (or a check that it is in place) and the auth key."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_tailscale as tailscale

from coral_infra.policy import (
    Environment,
    PolicyError,
    RenderedPolicy,
    missing_rules,
    render_owner_policy,
)
from coral_infra.preflight import OwnerView
from coral_infra.settings import TailnetSettings

SECONDS_PER_DAY = 86_400
# The program's names for the tailnet component and its policy (`__main__.py`, `Tailnet`):
# the owner's policy step targets exactly these (see policy_targets).
TAILNET_NAME = "tailnet"
TAILNET_TYPE = "coral:index:Tailnet"
ACL_TYPE = "tailscale:index/acl:Acl"


def policy_targets(stack: str, project: str = "coral") -> list[str]:
    """The URNs an owner's policy step updates alone (`pulumi up --target` each): the stack,
    the tailnet component and its `Acl`. Only these, so the tailnet policy of every stack can
    be written before any stack's key or pod (README: Rollout order)."""
    prefix = f"urn:pulumi:{stack}::{project}::"
    return [
        f"{prefix}pulumi:pulumi:Stack::{project}-{stack}",
        f"{prefix}{TAILNET_TYPE}::{TAILNET_NAME}",
        f"{prefix}{TAILNET_TYPE}${ACL_TYPE}::{TAILNET_NAME}-policy",
    ]


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
    policy: RenderedPolicy | None = None
    """On the owner: the document the pre-flight checks rendered (rendered here when None)."""
    owner: OwnerView | None = None
    """Elsewhere: the owner stack found among the stack files and its rendering from the same
    commit, which a preview compares with when the live policy lacks this stack's rules."""


def policy_missing_message(
    stack: str, missing: Sequence[str], owner: OwnerView | None, owner_renders_them: bool
) -> str:
    """Why a non-owner stack stops, and the commands that fix it."""
    lines = "\n".join(f"  - {line}" for line in missing)
    head = f"stack {stack!r}: the tailnet policy lacks this stack's rules:\n{lines}\n"
    if owner is None:
        return head + (
            "This stack does not own the tailnet policy (coral:tailnet.policy.owner is false), "
            "and no stack file here owns it and lists this stack. On the owner stack, add "
            f"{stack!r} to coral:tailnet.policy.environments and run `pulumi up --stack "
            f"<owner>`, then run `pulumi up --stack {stack}` again. With no owner yet, set "
            "coral:tailnet.policy.owner: true on one stack."
        )
    if not owner_renders_them:
        why = owner.problem or "its rendering from this commit lacks them too"
        return head + f"Stack {owner.stack!r} owns the tailnet policy, but {why}; fix that first."
    targets = " ".join(f"--target '{urn}'" for urn in policy_targets(owner.stack))
    return head + (
        f"Stack {owner.stack!r} owns the tailnet policy and renders these rules from this "
        "commit: its policy step must run first (the deploy workflow's `policy` job does): "
        f"`pulumi up --stack {owner.stack} {targets}`, then `pulumi up --stack {stack}` again."
    )


class Tailnet(pulumi.ComponentResource):
    """Tailnet policy, machine tag and the auth key machines log in with.

    On the policy owner the whole tailnet policy is an `Acl` (never reset on destroy: a reset
    means Tailscale's allow-all policy). Elsewhere the live policy is read and `up` stops, before
    the key is created, when this stack's rules are missing. The check runs in preview too
    (`getAcl` has no inputs, so the provider answers it during preview like any data source),
    where rules the live policy lacks but the owner renders from the same commit only warn:
    the owner's policy step, which runs first, adds them (README: Rollout order).

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
            rendered = args.policy or render_owner_policy(
                Environment(args.stack, settings, tuple(args.hostnames))
            )
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

    def _verified_tags(self, live_json: str, args: TailnetArgs) -> list[str]:
        """The key's tags, once the live policy is known to hold this stack's rules.

        A preview whose live policy lacks them passes when the owner's rendering from the same
        commit holds them: the owner's policy step, which runs first, adds them.
        """
        try:
            live = json.loads(live_json)
        except json.JSONDecodeError as error:
            raise PolicyError(f"the tailnet policy read back is not JSON: {error}") from None
        missing = missing_rules(live, args.settings)
        if not missing:
            return [args.settings.machine_tag]
        owner = args.owner
        renders = (
            owner is not None
            and owner.policy is not None
            and not missing_rules(owner.policy.document, args.settings)
        )
        if renders and owner is not None and pulumi.runtime.is_dry_run():
            pulumi.log.warn(
                f"the live tailnet policy lacks stack {args.stack!r}'s rules ("
                + "; ".join(missing)
                + f"); stack {owner.stack!r}, which owns the policy, renders them from this "
                "commit and its update adds them: run its policy step before `up` of this stack "
                "(the deploy workflow does)",
                resource=self,
            )
            return [args.settings.machine_tag]
        raise PolicyError(policy_missing_message(args.stack, missing, owner, renders))
