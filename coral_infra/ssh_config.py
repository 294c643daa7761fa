"""The `~/.ssh/config` block that makes `ssh <hostname>` (and Cursor/VS Code remote, and a
ParaView client on localhost:11111) reach the machine over the tailnet, and the user's SSH
config file that `coral ssh-config` keeps one marked block per stack in: everything outside the
markers stays byte for byte as the user wrote it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PARAVIEW_PORT = 11111


class SshConfigError(Exception):
    """The outputs or the SSH config file cannot be used as they are; the message says how."""


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


def ssh_blocks(outputs: Mapping[str, Any], stack: str) -> str:
    """The Host blocks of a stack: `sshConfig`, else each of `machines[*].sshConfig`."""
    text = outputs.get("sshConfig")
    if not isinstance(text, str) or not text.strip():
        machines = outputs.get("machines")
        blocks = (
            [m.get("sshConfig") for m in machines.values() if isinstance(m, dict)]
            if isinstance(machines, dict)
            else []
        )
        text = "\n".join(b for b in blocks if isinstance(b, str) and b.strip())
    if not text.strip():
        raise SshConfigError(
            f"stack {stack!r} has no sshConfig output (not deployed yet?); run `pulumi up "
            f"--stack {stack}` first"
        )
    lines = text.strip("\n").splitlines()
    if not lines[0].startswith("Host ") or any(line.startswith("# >>> ") for line in lines):
        raise SshConfigError(
            f"the sshConfig output of stack {stack!r} is not a list of Host blocks"
        )
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _marker_lines(lines: Sequence[str], marker: str) -> list[int]:
    return [i for i, line in enumerate(lines) if line.rstrip("\r\n") == marker]


def update_config_text(text: str, stack: str, blocks: str) -> str:
    """`text` with the stack's marked block set to `blocks`: replaced where it is, else
    appended. Every other line is kept exactly (line endings included)."""
    section = f"{begin_marker(stack)}\n{blocks}{end_marker(stack)}\n"
    lines = text.splitlines(keepends=True)
    begins = _marker_lines(lines, begin_marker(stack))
    ends = _marker_lines(lines, end_marker(stack))
    if not begins and not ends:
        if not text:
            return section
        separator = "\n" if text.endswith("\n") else "\n\n"
        return text + separator + section
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise SshConfigError(
            f"the coral-infra block of stack {stack!r} is damaged (markers "
            f"{begin_marker(stack)!r} / {end_marker(stack)!r} at lines "
            f"{[i + 1 for i in begins]} / {[i + 1 for i in ends]}); fix the markers by hand, "
            "then run this again"
        )
    begin, end = begins[0], ends[0]
    tail = lines[end]
    if not tail.endswith("\n"):  # the block was the file's last line, without a newline
        section = section[:-1]
    return "".join(lines[:begin]) + section + "".join(lines[end + 1 :])


@dataclass(frozen=True)
class WriteResult:
    path: Path
    changed: bool
    backup: Path | None


def write_ssh_config(path: Path, stack: str, blocks: str) -> WriteResult:
    """Update the stack's block in `path` atomically, keeping a `.bak` copy of the previous
    file and its mode (0600 for a new file). A symlinked config is updated at its target."""
    path = path.expanduser()
    if path.is_symlink():
        path = path.resolve()
    old: bytes | None = path.read_bytes() if path.exists() else None
    old_text = old.decode("utf-8", "surrogateescape") if old is not None else ""
    new = update_config_text(old_text, stack, blocks).encode("utf-8", "surrogateescape")
    if new == old:
        return WriteResult(path, changed=False, backup=None)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    mode = path.stat().st_mode & 0o777 if old is not None else 0o600
    backup = None
    if old is not None:
        backup = path.with_name(path.name + ".bak")
        _write_atomically(backup, old, mode)
    _write_atomically(path, new, mode)
    return WriteResult(path, changed=True, backup=backup)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def has_block(path: Path, stack: str) -> bool:
    path = path.expanduser()
    if not path.is_file():
        return False
    lines = path.read_text(errors="surrogateescape").splitlines()
    return begin_marker(stack) in lines and end_marker(stack) in lines


def begin_marker(stack: str) -> str:
    return f"# >>> coral-infra {stack} >>>"


def end_marker(stack: str) -> str:
    return f"# <<< coral-infra {stack} <<<"
