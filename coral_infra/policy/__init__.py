"""The tailnet policy as pure functions of stack settings: no Pulumi runtime, no network.

One module per concept:
- `rules.py`: one stack's part of the policy (tag owners, SSH rule, network access) and what
  a live policy lacks of it;
- `ownership.py`: which stack writes a tailnet's policy and what the stacks sharing a tailnet
  must agree on, read from the project's stack files;
- `merge.py`: the owner's whole document, every stack's rules merged into the user's own
  policy, with self-tests, refusing merges that widen access or break the base's tests;
- `evaluate.py`: Tailscale's access decisions, enough to run `sshTests`/`tests` offline.

The names below are the package's interface for the program, the offline tools and the
stand-ins.
"""

from coral_infra.policy.evaluate import (
    PolicyTestError,
    evaluate_tests,
    network_allowed,
    ssh_decision,
)
from coral_infra.policy.merge import (
    RenderedPolicy,
    policy_for_stack,
    read_base_policy,
    render_owner_policy,
    render_policy,
)
from coral_infra.policy.rules import (
    DEFAULT_POLICY,
    MACHINE_PORTS,
    Environment,
    PolicyError,
    environment_rules,
    missing_rules,
)

__all__ = [
    "DEFAULT_POLICY",
    "MACHINE_PORTS",
    "Environment",
    "PolicyError",
    "PolicyTestError",
    "RenderedPolicy",
    "environment_rules",
    "evaluate_tests",
    "missing_rules",
    "network_allowed",
    "policy_for_stack",
    "read_base_policy",
    "render_owner_policy",
    "render_policy",
    "ssh_decision",
]
