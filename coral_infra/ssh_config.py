"""The `~/.ssh/config` block that makes `ssh <hostname>` (and Cursor/VS Code remote, and a
ParaView client on localhost:11111) reach the machine over the tailnet."""

from __future__ import annotations

PARAVIEW_PORT = 11111


def ssh_config_block(alias: str, host_name: str, user: str) -> str:
    """One `Host` block: `alias` is what users type, `host_name` what it resolves to (the
    device's MagicDNS name once it joined, the short tailnet name before), `user` one the
    policy lets in (`coral:tailnet.ssh`'s login user: root only when root is allowed)."""
    return "\n".join(
        [
            f"Host {alias}",
            f"    HostName {host_name}",
            f"    User {user}",
            "    ForwardAgent yes",
            f"    LocalForward {PARAVIEW_PORT} localhost:{PARAVIEW_PORT}",
            "",
        ]
    )


def ssh_command(user: str, host: str) -> str:
    """The exact Tailscale SSH command into the machine (no SSH config or key needed)."""
    return f"tailscale ssh {user}@{host}"
