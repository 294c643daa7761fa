"""Guardrails for coral-infra stacks: what must never ship, as plain validation functions.

Each `*_problems` function takes resource inputs as the engine hands them to a policy pack and
returns one message per violation (empty: compliant), so it is unit-testable without an engine.
The `POLICIES` at the bottom wrap them as mandatory Pulumi policies; `__main__.py` serves them.

The engine runs a policy pack in its own virtualenv (policypack/requirements.txt), where the
program's package and its dependencies are not installed. The one exception is the mount-path
rule, which must be the very rule the stack settings apply (a stack that renders cleanly
passes the guardrails): `coral_infra/workspace.py` imports only the standard library and is
loaded from this checkout. What else the pack knows about the program (type tokens, input
names) is checked against the real program by tests/policypack/.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

try:
    from coral_infra.workspace import WORKSPACE, mount_path_problem
except ImportError:  # the pack's own virtualenv: load the module from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from coral_infra.workspace import WORKSPACE, mount_path_problem

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

AUTH_KEY_TYPE = "tailscale:index/tailnetKey:TailnetKey"
ACL_TYPE = "tailscale:index/acl:Acl"
# A Python dynamic resource's type is `pulumi-python:dynamic/<module>:<name>` when the class
# names them (`class Pod(dyn.Resource, module="runpod", name="Pod")`), else the generic
# `pulumi-python:dynamic:Resource`; the generic form is recognised by the pod's own inputs.
POD_TYPE = "pulumi-python:dynamic/runpod:Pod"
DYNAMIC_TYPE_PREFIX = "pulumi-python:dynamic"
POD_SIGNATURE_INPUTS = frozenset({"gpu_type_id", "image", "volume_mount_path", "env"})

ROOT_SOURCES = ("autogroup:owner", "autogroup:admin")
DEFAULT_PRODUCTION_STACKS = ("prod",)
# Env names whose value is a credential by definition: the auth key has its own secret input.
AUTH_KEY_ENV_NAMES = frozenset({"TAILSCALE_AUTHKEY", "TS_AUTHKEY", "TS_AUTH_KEY"})
# Env values the program itself sets that are long and random-looking but not secrets: the
# bootstrap's files travel base64-encoded (coral_infra.bootstrap.SCRIPT_FILES).
DEFAULT_ALLOWED_ENV = ("CORAL_BOOTSTRAP_B64", "CORAL_IDLE_STOP_B64")
# RunPod resolves these references inside the pod; the value never appears in the pod's spec.
_RUNPOD_SECRET_REF = re.compile(r"^\{\{\s*RUNPOD_SECRET_[A-Za-z0-9_.-]+\s*\}\}$")
# OpenSSH public keys (RunPod's PUBLIC_KEY convention) are random-looking but public.
_SSH_PUBLIC_KEY = re.compile(r"^(?:ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-\S+|sk-\S+@openssh\.com) \S+")
_CREDENTIAL_PATTERNS = (
    (re.compile(r"tskey-[A-Za-z0-9_-]+"), "a Tailscale key (tskey-...)"),
    (re.compile(r"\brpa?_[A-Za-z0-9]{16,}"), "a RunPod API key (rpa_/rp_...)"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\b(?:ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{20,}"), "a GitHub token"),
    (re.compile(r"\bhf_[A-Za-z0-9]{20,}"), "a Hugging Face token"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), "an API secret key (sk-...)"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
)
# Names that say "secret" (AWS_SECRET_ACCESS_KEY, HF_TOKEN, DB_PASSWORD, ...).
_SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|ACCESS_KEY|PRIVATE_KEY)")
_TOKEN = re.compile(r"^[A-Za-z0-9+/=_.~-]+$")
MIN_TOKEN_LENGTH = 32
MIN_TOKEN_ENTROPY_BITS = 4.0


# --- helpers -------------------------------------------------------------------------------


def stack_of(urn: str) -> str:
    """The stack name in a URN (`urn:pulumi:<stack>::<project>::<type>::<name>`); policies are
    not told the stack otherwise."""
    head = urn.split("::", 1)[0]
    if not head.startswith("urn:pulumi:"):
        raise ValueError(f"not a Pulumi URN: {urn!r}")
    return head.removeprefix("urn:pulumi:")


def is_pod(resource_type: str, props: Mapping[str, Any]) -> bool:
    """A RunPod pod of this program, by type token or, for a generic dynamic resource, by its
    inputs."""
    if resource_type == POD_TYPE:
        return True
    return resource_type.startswith(DYNAMIC_TYPE_PREFIX) and set(props) >= POD_SIGNATURE_INPUTS


def _is_set(props: Mapping[str, Any], name: str) -> bool:
    """Present and non-empty; a value unknown during preview (a volume created in the same
    update) counts as set."""
    try:
        value = props.get(name)
    except UnknownValueError:
        return True
    return value not in (None, "", 0)


def shannon_entropy(text: str) -> float:
    """Bits per character: random tokens score high, words and paths low."""
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _looks_random(token: str) -> bool:
    return (
        len(token) >= MIN_TOKEN_LENGTH
        and _TOKEN.match(token) is not None
        and any(c.isdigit() for c in token)
        and any(c.isalpha() for c in token)
        and shannon_entropy(token) >= MIN_TOKEN_ENTROPY_BITS
    )


def credential_kind(value: str) -> str | None:
    """What kind of credential `value` looks like, or None. Never returns the value itself."""
    for pattern, kind in _CREDENTIAL_PATTERNS:
        if pattern.search(value):
            return kind
    for token in value.split():
        if not token.startswith("/") and _looks_random(token):  # paths are not tokens
            return f"a long random token ({len(token)} characters)"
    return None


# --- the validations -----------------------------------------------------------------------


def auth_key_problems(props: Mapping[str, Any], machine_tag: str | None) -> list[str]:
    """A machine's auth key must be reusable (pods are recreated), pre-authorized (no manual
    approval on a headless pod), not ephemeral (the identity must outlive the pod) and tagged
    with exactly the stack's machine tag (the SSH rules and key expiry follow the tag)."""
    problems = []
    if props.get("reusable") is not True:
        problems.append("reusable must be true: every new pod of the stack logs in with this key")
    if props.get("preauthorized") is not True:
        problems.append(
            "preauthorized must be true: a headless pod cannot wait for approval in the console"
        )
    if props.get("ephemeral") is True:
        problems.append(
            "ephemeral must be false: an ephemeral device is removed when it goes offline, "
            "losing the machine's persistent identity"
        )
    tags = list(props.get("tags") or [])
    if not tags:
        problems.append(
            "tags must name the machine tag: an untagged key logs the pod in as the user who "
            "created the key, outside the machine's SSH rules"
        )
    elif machine_tag is not None and tags != [machine_tag]:
        problems.append(f"tags must be exactly [{machine_tag!r}] for this stack, got {tags}")
    elif machine_tag is None and not all(isinstance(t, str) and t.startswith("tag:") for t in tags):
        problems.append(f"tags must be 'tag:...' names, got {tags}")
    return problems


def pod_volume_problems(props: Mapping[str, Any]) -> list[str]:
    """The tailnet identity lives under /workspace: without a volume there, every restart is a
    new device (and a stale `coral-machine` that takes the name)."""
    problems = []
    mount_path_rule = mount_path_problem(props.get("volume_mount_path"))
    if mount_path_rule is not None:
        problems.append(f"volume_mount_path: {mount_path_rule}")
    if not _is_set(props, "network_volume_id") and not _is_set(props, "volume_gb"):
        problems.append(
            "the pod has no volume: set volume_gb > 0 (pod volume) or network_volume_id "
            "(network volume), or the tailnet identity is lost on every restart"
        )
    return problems


def env_secret_problems(
    env: Mapping[str, Any], docker_args: str | None = None, allowed: Iterable[str] = ()
) -> list[str]:
    """Pod env and the start command are plaintext in RunPod's console, API and Pulumi's
    state: credentials go through the pod's secret `auth_key` input or RunPod secrets
    (`{{ RUNPOD_SECRET_name }}`). Messages name the variable, never its value."""
    allowed_names = set(allowed) | set(DEFAULT_ALLOWED_ENV)
    problems = []
    for name, value in env.items():
        if name in AUTH_KEY_ENV_NAMES:
            problems.append(
                f"env {name} carries the auth key in plain env: pass it as the pod's auth_key "
                "input (a secret), never in env"
            )
            continue
        if name in allowed_names or not isinstance(value, str) or not value:
            continue
        if _RUNPOD_SECRET_REF.match(value.strip()) or _SSH_PUBLIC_KEY.match(value.strip()):
            continue
        kind = credential_kind(value)
        if kind is None and _SECRET_NAME.search(name.upper()):
            kind = "a secret by its name"
        if kind is not None:
            problems.append(
                f"env {name} holds {kind} in plain text: use a RunPod secret "
                f"('{{{{ RUNPOD_SECRET_{name.lower()} }}}}') instead"
            )
    if docker_args:
        kind = credential_kind(docker_args)
        if kind is not None:
            problems.append(f"docker_args (the start command) holds {kind} in plain text")
    return problems


def parse_tailnet_policy(acl: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The Acl's document, or why it cannot be read (the program always sends JSON)."""
    if not isinstance(acl, str):
        return None, f"acl must be the policy text, got {type(acl).__name__}"
    try:
        document = json.loads(acl)
    except json.JSONDecodeError as error:
        return None, (
            f"the tailnet policy is not plain JSON ({error}); coral-infra writes JSON, so the "
            "guardrails can check its SSH rules"
        )
    if not isinstance(document, dict):
        return None, "the tailnet policy must be an object"
    return document, None


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def ssh_root_problems(document: Mapping[str, Any], extra_sources: Iterable[str] = ()) -> list[str]:
    """No SSH rule may let anyone but owners/admins (or the groups the pack config names) in
    as root. Rules whose only destination is `autogroup:self` are a user's own devices, not
    the machines, and are left alone (Tailscale's default policy has one)."""
    allowed = set(ROOT_SOURCES) | set(extra_sources)
    problems = []
    for index, rule in enumerate(_as_list(document.get("ssh"))):
        if not isinstance(rule, dict):
            continue
        users = _as_list(rule.get("users"))
        destinations = _as_list(rule.get("dst"))
        if not ({"root", "*"} & set(users)) or set(destinations) <= {"autogroup:self"}:
            continue
        others = [s for s in _as_list(rule.get("src")) if s not in allowed]
        if others:
            problems.append(
                f"ssh[{index}] lets {others} in as root on {destinations}; only "
                f"{sorted(allowed)} may be root (give others autogroup:nonroot)"
            )
    return problems


def ssh_check_mode_problems(document: Mapping[str, Any], machine_tag: str) -> list[str]:
    """On production, every SSH rule reaching the machine's tag re-authenticates (`check`),
    so a stolen laptop session cannot walk into the GPU machine."""
    problems = []
    for index, rule in enumerate(_as_list(document.get("ssh"))):
        if not isinstance(rule, dict):
            continue
        destinations = _as_list(rule.get("dst"))
        if machine_tag not in destinations and "autogroup:tagged" not in destinations:
            continue
        if rule.get("action") != "check":
            problems.append(
                f"ssh[{index}] reaches {machine_tag} with action {rule.get('action')!r}; "
                "production SSH must be 'check' (browser re-authentication)"
            )
    return problems


# --- the policies --------------------------------------------------------------------------


def _config_list(args: ResourceValidationArgs, key: str, default: Sequence[str]) -> list[str]:
    value = args.get_config().get(key)
    return list(default) if value is None else [str(v) for v in value]


def _machine_tag(args: ResourceValidationArgs) -> str | None:
    tags = args.get_config().get("machineTags") or {}
    tag = tags.get(stack_of(args.urn))
    return str(tag) if tag is not None else None


def _report(report_violation: ReportViolation, problems: list[str]) -> None:
    for problem in problems:
        report_violation(problem, None)


def validate_auth_key(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == AUTH_KEY_TYPE:
        _report(report_violation, auth_key_problems(args.props, _machine_tag(args)))


def validate_pod_volume(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if is_pod(args.resource_type, args.props):
        _report(report_violation, pod_volume_problems(args.props))


def validate_plain_env(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if is_pod(args.resource_type, args.props):
        env = args.props.get("env") or {}
        docker_args = args.props.get("docker_args")
        allowed = _config_list(args, "allowedEnv", ())
        _report(report_violation, env_secret_problems(env, docker_args, allowed))


def validate_ssh_root(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != ACL_TYPE:
        return
    document, error = parse_tailnet_policy(args.props.get("acl"))
    if error is not None or document is None:
        report_violation(error or "unreadable policy", None)
        return
    _report(report_violation, ssh_root_problems(document, _config_list(args, "rootSources", ())))


def validate_prod_check_mode(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != ACL_TYPE:
        return
    stack = stack_of(args.urn)
    if stack not in _config_list(args, "productionStacks", DEFAULT_PRODUCTION_STACKS):
        return
    machine_tag = _machine_tag(args)
    if machine_tag is None:
        report_violation(
            f"production stack {stack!r} has no machine tag in the pack config "
            "(machineTags); cannot check that its SSH is in check mode",
            None,
        )
        return
    document, error = parse_tailnet_policy(args.props.get("acl"))
    if error is not None or document is None:
        report_violation(error or "unreadable policy", None)
        return
    _report(report_violation, ssh_check_mode_problems(document, machine_tag))


_MACHINE_TAGS_SCHEMA = {
    "type": "object",
    "description": "stack name -> that stack's coral:tailnet.machineTag",
    "additionalProperties": {"type": "string", "pattern": "^tag:"},
}
_STRINGS = {"type": "array", "items": {"type": "string"}}

Validation = Callable[[ResourceValidationArgs, ReportViolation], None]


def _policy(
    name: str, description: str, validate: Validation, config: dict[str, dict[str, Any]]
) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(properties=config) if config else None,
    )


POLICIES = [
    _policy(
        "auth-key-reusable-preauthorized-tagged",
        "The machine auth key is reusable, pre-authorized, not ephemeral and tagged with the "
        "stack's machine tag.",
        validate_auth_key,
        {"machineTags": _MACHINE_TAGS_SCHEMA},
    ),
    _policy(
        "pod-has-workspace-volume",
        f"Every RunPod pod mounts a pod or network volume at {WORKSPACE}.",
        validate_pod_volume,
        {},
    ),
    _policy(
        "no-plain-env-secrets",
        "No credential in a pod's plain env or start command; the auth key only as the secret "
        "auth_key input.",
        validate_plain_env,
        {"allowedEnv": _STRINGS},
    ),
    _policy(
        "ssh-root-owners-admins-only",
        "Only autogroup:owner, autogroup:admin (and configured groups) may SSH in as root.",
        validate_ssh_root,
        {"rootSources": _STRINGS},
    ),
    _policy(
        "prod-ssh-check-mode",
        "On production stacks, SSH rules reaching the machine tag use action 'check'.",
        validate_prod_check_mode,
        {"productionStacks": _STRINGS, "machineTags": _MACHINE_TAGS_SCHEMA},
    ),
]
