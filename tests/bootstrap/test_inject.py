"""Injection into a stock image: verified download + cache, and the rendered start command."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import shlex
import socket
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from coral_infra.bootstrap import (
    IDLE_STOP_SCRIPT_ENV,
    SCRIPT_ENV,
    SCRIPT_PATH,
    TAILSCALE_SHA256_AMD64,
    TAILSCALE_VERSION,
    pod_env,
    start_command,
)

from .conftest import FAKES, GOOD_KEY, Pod


def release_tgz() -> bytes:
    """A tgz laid out like Tailscale's static release, holding the stand-in binaries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("tailscale", "tailscaled"):
            tar.add(FAKES / name, arcname=f"tailscale_{TAILSCALE_VERSION}_amd64/{name}")
    return buf.getvalue()


class ReleaseServer:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = (
            f"http://127.0.0.1:{self.httpd.server_address[1]}"
            f"/stable/tailscale_{TAILSCALE_VERSION}_amd64.tgz"
        )
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[ReleaseServer]:
    srv = ReleaseServer(release_tgz())
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def stock_pod(pod: Pod, server: ReleaseServer) -> Pod:
    """A pod whose image has no tailscale on PATH."""
    assert subprocess.run(["bash", "-c", "PATH=/usr/bin:/bin command -v tailscale"]).returncode
    pod.env["PATH"] = "/usr/bin:/bin"
    pod.env["CORAL_TAILSCALE_URL"] = server.url
    return pod


def test_checksum_mismatch_is_refused(stock_pod: Pod, server: ReleaseServer) -> None:
    marker = stock_pod.root / "main-ran"
    run = stock_pod.start("touch", str(marker), extra_env={"TAILSCALE_AUTHKEY": GOOD_KEY})

    digest = hashlib.sha256(server.body).hexdigest()
    assert f"checksum mismatch for {server.url}" in run.log
    assert f"expected sha256 {TAILSCALE_SHA256_AMD64}, got {digest}" in run.log
    assert not (stock_pod.state_dir / "bin" / TAILSCALE_VERSION / "tailscale").exists()
    assert stock_pod.read("tailscaled.argv") == ""
    assert marker.exists()
    assert len(server.requests) == 1


def test_good_checksum_is_cached_and_not_downloaded_again(
    stock_pod: Pod, server: ReleaseServer
) -> None:
    stock_pod.env["CORAL_TAILSCALE_SHA256"] = hashlib.sha256(server.body).hexdigest()
    run = stock_pod.start(extra_env={"TAILSCALE_AUTHKEY": GOOD_KEY})

    cache = stock_pod.state_dir / "bin" / TAILSCALE_VERSION
    assert "sha256 verified" in run.log
    assert (cache / "tailscaled").read_bytes() == (FAKES / "tailscaled").read_bytes()
    assert "Tailscale SSH enabled" in run.log
    assert len(server.requests) == 1

    run = stock_pod.start()
    assert f"using cached tailscale binaries in {cache}" in run.log
    assert "already logged in" in run.log
    assert len(server.requests) == 1
    assert not list(stock_pod.root.glob("coral-tailscale.*"))


def test_other_version_without_digest_is_refused(stock_pod: Pod, server: ReleaseServer) -> None:
    run = stock_pod.start(extra_env={"CORAL_TAILSCALE_VERSION": "1.2.3"})
    assert "no pinned SHA-256 for tailscale 1.2.3" in run.log
    assert server.requests == []


def test_install_mode_adds_binaries_without_touching_the_directory(
    tmp_path: Path, server: ReleaseServer
) -> None:
    dest = tmp_path / "usr-local-bin"
    dest.mkdir()
    (dest / "python").write_text("keep me")
    env = {
        "PATH": "/usr/bin:/bin",
        "TMPDIR": str(tmp_path),
        "CORAL_TAILSCALE_URL": server.url,
        "CORAL_TAILSCALE_SHA256": hashlib.sha256(server.body).hexdigest(),
    }
    done = subprocess.run(
        ["bash", str(SCRIPT_PATH), "--install-tailscale", str(dest)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["python", "tailscale", "tailscaled"]
    assert (dest / "python").read_text() == "keep me"

    env["CORAL_TAILSCALE_SHA256"] = TAILSCALE_SHA256_AMD64
    refused = subprocess.run(
        ["bash", str(SCRIPT_PATH), "--install-tailscale", str(tmp_path / "other")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 1
    assert "checksum mismatch" in refused.stderr


def test_start_command_round_trips_the_script(pod: Pod) -> None:
    dest = pod.root / "decoded-start.sh"
    command = start_command(["touch", str(pod.root / "main-ran")], script_dest=str(dest))
    env = pod_env(extra_up_args=["--login-server=http://127.0.0.1:9"])
    for text in [command, *env.values()]:
        assert '"' not in text and "\\" not in text and "\n" not in text
    assert env[SCRIPT_ENV] and "TAILSCALE_AUTHKEY" not in env
    assert IDLE_STOP_SCRIPT_ENV not in env  # no idle stop: the watcher does not travel

    full_env = {**pod.env, **env, "TS_STATE_DIR": str(pod.state_dir)}
    # RunPod may split the command into words (docker CMD) or hand it to a shell: both work.
    for argv in (shlex.split(command), ["sh", "-c", command]):
        pod.stop()
        dest.unlink(missing_ok=True)
        (pod.root / "main-ran").unlink(missing_ok=True)
        with (pod.root / "out").open("wb") as sink:
            proc = subprocess.Popen(
                argv, env=full_env, stdout=sink, stderr=sink, start_new_session=True
            )
            pod.sessions.append(proc.pid)
            assert proc.wait(timeout=30) == 0, (pod.root / "out").read_text()
        assert dest.read_bytes() == SCRIPT_PATH.read_bytes()
        assert not (dest.parent / "idle_stop.sh").exists()
        assert (pod.root / "main-ran").exists()
        assert "Tailscale SSH enabled" not in (pod.root / "out").read_text()  # no key given
        assert "no auth key was given" in (pod.root / "out").read_text()


def test_pod_env_values() -> None:
    env = pod_env(hostname="coral-b", sshd_port=2200, userspace=True, include_script=False)
    assert env == {
        "TS_HOSTNAME": "coral-b",
        "TS_STATE_DIR": "/workspace/deps/runtime/tailscale",
        "CORAL_SSHD_PORT": "2200",
        "TS_USERSPACE": "true",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hostname": "Coral_Machine"}, "hostname='Coral_Machine' must be a DNS label"),
        ({"state_dir": "workspace/ts"}, "state_dir='workspace/ts' must be an absolute path"),
        ({"sshd_port": 22}, "sshd_port=22 must be 1-65535 and not 22"),
        ({"extra_up_args": ['--x="y"']}, "extra_up_args[0]='--x=\"y\"' must be one word"),
    ],
)
def test_pod_env_rejects_bad_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as err:
        pod_env(**kwargs)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_start_command_rejects_words_that_need_quoting() -> None:
    with pytest.raises(ValueError, match=r"main_command\[1\]='a b' must be a non-empty word"):
        start_command(["python", "a b"])
    assert start_command() == (
        f"bash -c 'printf %s ${SCRIPT_ENV} | base64 -d > /tmp/coral-start.sh"
        " && exec bash /tmp/coral-start.sh'"
    )


def new_shell(pod: Pod, command: str) -> subprocess.CompletedProcess[str]:
    """A shell started later in the pod (a web terminal): a default PATH (here the pod's
    /usr/local/bin stand-in and the system dirs), no --socket, none of the bootstrap's env."""
    return subprocess.run(
        ["bash", "-c", command],
        env={
            "PATH": f"{pod.link_dir}:/usr/bin:/bin",
            "FAKE_TS_DIR": str(pod.fake),
            "FAKE_TS_DEFAULT_SOCKET": str(pod.cli_socket),
        },
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_inject_mode_puts_the_cached_binaries_and_the_socket_where_a_shell_looks(
    stock_pod: Pod, server: ReleaseServer
) -> None:
    stock_pod.env["CORAL_TAILSCALE_SHA256"] = hashlib.sha256(server.body).hexdigest()
    assert new_shell(stock_pod, "tailscale status").returncode == 127  # command not found
    run = stock_pod.start(extra_env={"TAILSCALE_AUTHKEY": GOOD_KEY})

    cache = stock_pod.state_dir / "bin" / TAILSCALE_VERSION
    for name in ("tailscale", "tailscaled"):
        link = stock_pod.link_dir / name
        assert link.is_symlink() and link.resolve() == (cache / name).resolve()
        assert f"linked {link} -> {cache / name}" in run.log
    ts_socket = Path(stock_pod.env["TS_SOCKET"])
    assert stock_pod.cli_socket.is_symlink()
    assert Path(os.readlink(stock_pod.cli_socket)) == ts_socket
    status = new_shell(stock_pod, "tailscale status && tailscale ip -4")
    assert status.returncode == 0, status.stderr
    assert '"BackendState": "Running"' in status.stdout
    assert "100.64.0.7" in status.stdout

    # The next start (cached binaries) keeps the same links, without warnings.
    run = stock_pod.start()
    assert "WARNING" not in run.log
    assert (stock_pod.link_dir / "tailscale").resolve() == (cache / "tailscale").resolve()
    assert new_shell(stock_pod, "tailscale status").returncode == 0


def test_another_install_and_another_daemon_are_left_alone(
    stock_pod: Pod, server: ReleaseServer
) -> None:
    stock_pod.env["CORAL_TAILSCALE_SHA256"] = hashlib.sha256(server.body).hexdigest()
    stock_pod.link_dir.mkdir()
    other = stock_pod.link_dir / "tailscale"
    other.write_text("#!/bin/sh\necho another tailscale\n")
    stock_pod.cli_socket.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(stock_pod.cli_socket))
        run = stock_pod.start(extra_env={"TAILSCALE_AUTHKEY": GOOD_KEY})

    assert other.read_text() == "#!/bin/sh\necho another tailscale\n"
    assert f"WARNING: {other} is another tailscale than" in run.log
    assert stock_pod.cli_socket.is_socket() and not stock_pod.cli_socket.is_symlink()
    assert f"WARNING: {stock_pod.cli_socket} is another tailscaled's socket" in run.log
    assert "Tailscale SSH enabled" in run.log  # the pod itself is fine


def test_no_socket_link_when_tailscaled_uses_the_default_path(pod: Pod) -> None:
    pod.env["TS_SOCKET"] = pod.env["CORAL_CLI_SOCKET"]
    run = pod.start(extra_env={"TAILSCALE_AUTHKEY": GOOD_KEY})
    assert "Tailscale SSH enabled" in run.log
    assert not pod.cli_socket.is_symlink()
    assert "default socket" not in run.log
