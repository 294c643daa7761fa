"""headscale as the tailnet's control server on loopback: its offline config, its CLI, and
the edits a Tailscale policy we render needs before headscale loads it.

Tests, the sandbox and the Tailscale API stand-in (tailscale_api.py, which answers from
headscale's state) all reach headscale through this module.
"""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from standins.testbed import Daemon, Testbed, base_env, free_port, wait_for


def headscale_config(workdir: Path, policy_path: Path) -> tuple[dict[str, Any], str]:
    """An offline headscale config: no external DERP map, embedded DERP with STUN on loopback,
    no update checks, everything writable under `workdir`. Returns (config, server URL)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = {
        "server_url": url,
        "listen_addr": f"127.0.0.1:{port}",
        "metrics_listen_addr": f"127.0.0.1:{free_port()}",
        "grpc_listen_addr": f"127.0.0.1:{free_port()}",
        "grpc_allow_insecure": False,
        "noise": {"private_key_path": str(workdir / "noise_private.key")},
        "prefixes": {
            "v4": "100.64.0.0/10",
            "v6": "fd7a:115c:a1e0::/48",
            "allocation": "sequential",
        },
        "derp": {
            "server": {
                "enabled": True,
                "region_id": 999,
                "region_code": "coral",
                "region_name": "coral loopback DERP",
                "verify_clients": True,
                "stun_listen_addr": f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
                "private_key_path": str(workdir / "derp_server_private.key"),
                "automatically_add_embedded_derp_region": True,
                "ipv4": "127.0.0.1",
                "ipv6": "",
            },
            "urls": [],
            "paths": [],
            "auto_update_enabled": False,
            "update_frequency": "24h",
        },
        "disable_check_updates": True,
        "database": {
            "type": "sqlite",
            "sqlite": {"path": str(workdir / "db.sqlite"), "write_ahead_log": True},
        },
        "log": {"level": "info", "format": "text"},
        "policy": {"mode": "file", "path": str(policy_path)},
        "dns": {
            "magic_dns": True,
            "base_domain": "coral.test",
            "override_local_dns": False,
            "nameservers": {"global": [], "split": {}},
            "search_domains": [],
            "extra_records": [],
        },
        "unix_socket": str(workdir / "headscale.sock"),
        "unix_socket_permission": "0770",
        "logtail": {"enabled": False},
        "taildrop": {"enabled": False},
    }
    return config, url


class HeadscaleError(RuntimeError):
    """A headscale CLI command failed; the message carries its stderr."""


def headscale_json(binary: Path, config_path: Path, *args: str, timeout_s: float = 20.0) -> Any:
    """Run a headscale CLI command with JSON output: the parsed output, None when empty."""
    result = subprocess.run(
        [str(binary), "--config", str(config_path), *args, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        raise HeadscaleError(
            f"headscale {' '.join(args)} failed ({result.returncode}): "
            f"{result.stderr.strip()[-2000:]}"
        )
    return json.loads(result.stdout) if result.stdout.strip() else None


@dataclass
class Headscale:
    binary: Path
    config_path: Path
    url: str
    daemon: Daemon

    def cli(self, *args: str, timeout_s: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def cli_json(self, *args: str) -> Any:
        return headscale_json(self.binary, self.config_path, *args)

    def create_user(self, name: str, email: str) -> int:
        """Policies name users by e-mail (like Tailscale); headscale matches e-mail or name."""
        user = self.cli_json("users", "create", name, "--email", email)
        return int(user["id"])

    def create_auth_key(
        self, *, tags: Sequence[str] = (), user_id: int | None = None, reusable: bool = True
    ) -> str:
        """Tags-only keys (no user) are what the tailnet component mints for coral-machine."""
        args = ["preauthkeys", "create", "--expiration", "1h"]
        if reusable:
            args.append("--reusable")
        if tags:
            args += ["--tags", ",".join(tags)]
        if user_id is not None:
            args += ["--user", str(user_id)]
        return str(self.cli_json(*args)["key"])

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.cli_json("nodes", "list") or [])

    def nodes_named(self, hostname: str) -> list[dict[str, Any]]:
        return [n for n in self.nodes() if hostname in (n.get("name"), n.get("given_name"))]

    def check_policy(self, policy_path: Path) -> subprocess.CompletedProcess[str]:
        return self.cli("policy", "check", "--file", str(policy_path))


def start_headscale(testbed: Testbed, bin_dir: Path, policy: Mapping[str, Any]) -> Headscale:
    workdir = testbed.path("headscale")
    policy_path = workdir / "policy.json"
    policy_path.write_text(json.dumps(policy, indent=2))
    config, url = headscale_config(workdir, policy_path)
    config_path = workdir / "config.yaml"
    # JSON is YAML; viper picks the parser from the file extension.
    config_path.write_text(json.dumps(config, indent=2))
    binary = bin_dir / "headscale"
    daemon = testbed.spawn(
        "headscale",
        [str(binary), "--config", str(config_path), "serve"],
        base_env(bin_dir, workdir),
        cwd=workdir,
    )

    def healthy() -> bool | None:
        if not daemon.running():
            raise RuntimeError(f"headscale exited at start:\n{daemon.log()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                ready = response.status == 200 and (workdir / "headscale.sock").exists()
                return True if ready else None
        except (urllib.error.URLError, OSError):
            return None

    wait_for("headscale /health", healthy, timeout_s=30)
    return Headscale(binary, config_path, url, daemon)


def adapt_policy_for_headscale(policy: dict[str, Any], owner_login: str) -> dict[str, Any]:
    """The minimal edits headscale v0.29.2 needs to load a Tailscale policy we render.

    headscale has no tailnet roles and no Funnel; loading the unmodified document fails with
    (exact errors, `headscale policy check` / `serve`):
      - tagOwners `autogroup:admin`: `invalid owner format: "autogroup:admin"`
      - acls src `autogroup:owner`: `autogroup not supported for ACL sources:
        "autogroup:owner", can be [autogroup:member autogroup:tagged autogroup:danger-all]`
      - ssh src `autogroup:owner`: `autogroup not supported for SSH sources:
        "autogroup:owner", can be [autogroup:member autogroup:tagged]`
      - nodeAttrs `funnel`: `nodeAttrs uses a feature headscale does not yet support:
        "funnel" tracked in https://github.com/juanfont/headscale/issues/2527`
    So the owner/admin roles become the owner's login (on Tailscale the owner holds both) and
    the funnel attribute is dropped. Everything else (`ssh` accept/check, `checkPeriod`,
    `autogroup:nonroot`, `autogroup:member`, `autogroup:self`, `tests`, `sshTests`) is loaded
    and evaluated by headscale as is.
    """
    text = json.dumps(policy)
    for role in ("autogroup:owner", "autogroup:admin"):
        text = text.replace(json.dumps(role), json.dumps(owner_login))
    adapted: dict[str, Any] = json.loads(text)
    node_attrs = []
    for entry in adapted.get("nodeAttrs", []):
        entry = copy.deepcopy(entry)
        entry["attr"] = [a for a in entry.get("attr", []) if a != "funnel"]
        if entry["attr"]:
            node_attrs.append(entry)
    if "nodeAttrs" in adapted:
        adapted["nodeAttrs"] = node_attrs
    return adapted
