"""Where a coral machine keeps what must outlive its container: the volume at `/workspace`.

One rule, read by the stack settings (a stack that asks for another mount path is refused
before anything is created) and by the policy pack's guardrails (a pod registered with another
mount path is blocked), so a stack that renders cleanly also passes the guardrails.

Why exactly `/workspace`: RunPod mounts pod and network volumes there by convention and its
images expect it, the bootstrap's default state directory is below it (a pod started by hand
still finds its identity), and the guardrails check it on the pod's registered inputs, where
the stack's settings are no longer visible.

This module imports nothing but the standard library: the policy pack runs in its own virtual
environment (policypack/requirements.txt) without this project's dependencies and loads it
from the checkout.
"""

from __future__ import annotations

WORKSPACE = "/workspace"
STATE_SUBDIR = "deps/runtime/tailscale"
"""tailscaled's state (the machine's tailnet identity) below the volume."""
STATE_DIR = f"{WORKSPACE}/{STATE_SUBDIR}"


def mount_path_problem(path: object) -> str | None:
    """Why `path` cannot be where the machine's volume is mounted, or None when it can."""
    if path == WORKSPACE:
        return None
    return (
        f"got {path!r}; the volume must be mounted at {WORKSPACE!r}: the tailnet identity lives "
        f"in {STATE_DIR} and the guardrails refuse any other mount path"
    )
