"""start.sh against stand-in tailscale/tailscaled: login, persistence, failures, secrecy."""

from __future__ import annotations

import hashlib
import os
import stat

from .conftest import BAD_KEY, FAKES, GOOD_KEY, Pod


def key_digest(key: str) -> str:
    return hashlib.sha256((key + "\n").encode()).hexdigest()


def assert_key_nowhere(pod: Pod, log: str, key: str) -> None:
    """The key must not appear in our log, any recorded argv/env, or tailscaled's log."""
    assert key not in log
    for name in ("tailscale.argv", "tailscaled.argv", "tailscaled.env", "sshd.argv", "main.env"):
        assert key not in pod.read(name), name
    for path in pod.state_dir.glob("tailscaled.log*"):
        assert key not in path.read_text(), path


def test_first_boot_with_env_key_logs_in_and_enables_ssh(pod: Pod) -> None:
    main_env = pod.fake / "main.env"
    run = pod.start("bash", "-c", f"env > {main_env}", extra_env={"TAILSCALE_AUTHKEY": GOOD_KEY})

    assert run.returncode == 0
    assert pod.read("logins").split() == [key_digest(GOOD_KEY)]
    up = [line for line in pod.read("tailscale.argv").splitlines() if " up " in line]
    assert len(up) == 1
    assert "--auth-key=file:" in up[0]
    # Tailscale SSH comes on with the login itself: no `set` after it.
    assert "--hostname=coral-machine --accept-dns=false --ssh" in up[0]
    assert "--reset" in up[0] and "--timeout=2s" in up[0]
    assert pod.read("set_calls") == ""
    # The temp key file was private and is gone afterwards.
    assert pod.read("keyfile_modes").split() == ["600"]
    assert not list(pod.root.glob("coral-authkey.*"))
    assert (pod.state_dir / "tailscaled.state").read_text() == "Running\n"
    assert stat.S_IMODE(pod.state_dir.stat().st_mode) == 0o700
    assert "Tailscale SSH enabled" in run.log
    assert "--statedir=" + str(pod.state_dir) in pod.read("tailscaled.argv")
    # The key left the environment before any child started.
    assert "TAILSCALE_AUTHKEY" not in pod.read("tailscaled.env")
    assert "TAILSCALE_AUTHKEY" not in main_env.read_text()
    assert_key_nowhere(pod, run.log, GOOD_KEY)


def test_key_from_state_dir_file(pod: Pod) -> None:
    pod.state_dir.mkdir(parents=True)
    key_file = pod.state_dir / "authkey"
    key_file.write_text(GOOD_KEY + "\n")
    key_file.chmod(0o600)

    run = pod.start()

    assert f"--auth-key=file:{key_file}" in pod.read("tailscale.argv")
    assert pod.read("logins").split() == [key_digest(GOOD_KEY)]
    assert "WARNING" not in run.log
    assert_key_nowhere(pod, run.log, GOOD_KEY)


def test_restart_with_existing_state_uses_no_key(pod: Pod) -> None:
    pod.start(extra_env={"TAILSCALE_AUTHKEY": GOOD_KEY})
    assert pod.read("logins")
    # Second container start: same volume, and no key anywhere any more.
    (pod.fake / "valid_keys").write_text("")
    run = pod.start()

    assert run.returncode == 0
    assert "already logged in" in run.log
    assert " up " not in pod.read("tailscale.argv")
    assert pod.read("logins") == ""
    assert pod.read("set_calls").splitlines() == [
        "--ssh --hostname=coral-machine --accept-dns=false"
    ]


def test_second_run_beside_a_live_tailscaled_starts_no_other(pod: Pod) -> None:
    pod.start(extra_env={"TAILSCALE_AUTHKEY": GOOD_KEY})
    run = pod.start(stop_first=False)

    assert "tailscaled is already running" in run.log
    assert "already logged in" in run.log
    assert pod.read("tailscaled.argv") == ""  # no second daemon was started


def test_restart_after_a_killed_tailscaled_never_waits_on_its_stale_socket(pod: Pod) -> None:
    pod.start(extra_env={"TAILSCALE_AUTHKEY": GOOD_KEY})
    pod.kill()  # the socket file stays, as /var/run/tailscale does when the disk is kept
    socket = pod.root / "run" / "tailscaled.sock"
    assert socket.is_socket()
    run = pod.start(stop_first=False)

    assert f"removing the stale socket {socket}" in run.log
    assert pod.read("dead_socket_calls") == ""  # the CLI never waited on it
    assert pod.read("tailscaled.argv")  # a new tailscaled, on a new socket
    assert "already logged in" in run.log
    assert pod.read("set_calls").splitlines() == [
        "--ssh --hostname=coral-machine --accept-dns=false"
    ]


def test_reset_identity_by_removing_state_logs_in_again(pod: Pod) -> None:
    pod.start(extra_env={"TAILSCALE_AUTHKEY": GOOD_KEY})
    (pod.state_dir / "tailscaled.state").unlink()
    run = pod.start(extra_env={"TAILSCALE_AUTHKEY": GOOD_KEY})

    assert "NeedsLogin" in run.log
    assert pod.read("logins").split() == [key_digest(GOOD_KEY)]


def test_missing_key_explains_and_main_still_runs(pod: Pod) -> None:
    marker = pod.root / "main-ran"
    run = pod.start("touch", str(marker))

    assert run.returncode == 0
    assert marker.exists()
    assert "no auth key was given" in run.log
    assert "tailscale up --authkey=<KEY> --ssh --hostname=coral-machine" in run.log
    assert pod.read("set_calls") == ""


def test_bad_key_keeps_tailscaled_up_and_runs_main(pod: Pod) -> None:
    marker = pod.root / "main-ran"
    run = pod.start("touch", str(marker), extra_env={"TS_AUTHKEY": BAD_KEY})

    assert run.returncode == 0
    assert marker.exists()
    assert "REJECTED the auth key" in run.log
    assert "invalid key: unable to validate API key [REDACTED]" in run.log
    pid = int(pod.read("tailscaled.pid"))
    os.kill(pid, 0)  # still alive after the failed login
    assert pod.read("set_calls") == ""
    assert_key_nowhere(pod, run.log, BAD_KEY)


def test_unreachable_control_plane_is_explained(pod: Pod) -> None:
    (pod.fake / "control_down").touch()
    run = pod.start(extra_env={"TS_AUTH_KEY": GOOD_KEY})

    assert run.returncode == 0
    assert "did not complete within 2s" in run.log
    assert_key_nowhere(pod, run.log, GOOD_KEY)


def test_no_tun_means_userspace_and_tun_means_kernel(pod: Pod) -> None:
    run = pod.start(extra_env={"TAILSCALE_AUTHKEY": GOOD_KEY})
    assert "networking: userspace" in run.log
    assert "--tun=userspace-networking" in pod.read("tailscaled.argv")

    (pod.fake / "tailscaled.argv").unlink()
    run = pod.start(extra_env={"CORAL_TUN_DEVICE": "/dev/null"})  # a character device
    assert "networking: kernel TUN" in run.log
    assert "--tun=" not in pod.read("tailscaled.argv")


def test_kernel_mode_without_permission_falls_back_to_userspace(pod: Pod) -> None:
    (pod.fake / "kernel_fails").touch()
    run = pod.start(extra_env={"CORAL_TUN_DEVICE": "/dev/null", "TAILSCALE_AUTHKEY": GOOD_KEY})

    assert "falling back to userspace networking" in run.log
    starts = pod.read("tailscaled.argv").splitlines()
    assert "--tun=" not in starts[0]
    assert starts[1].endswith("--tun=userspace-networking")
    assert "Tailscale SSH enabled" in run.log


def test_forced_userspace_and_extra_args(pod: Pod) -> None:
    run = pod.start(
        extra_env={
            "TAILSCALE_AUTHKEY": GOOD_KEY,
            "CORAL_TUN_DEVICE": "/dev/null",
            "TS_USERSPACE": "true",
            "TS_EXTRA_ARGS": "--login-server=http://127.0.0.1:8080 --advertise-tags=tag:gpu",
            "TS_TAILSCALED_EXTRA_ARGS": "--port=0",
            "TS_HOSTNAME": "coral-test",
        }
    )
    assert "TS_USERSPACE=true" in run.log
    assert pod.read("tailscaled.argv").strip().endswith("--tun=userspace-networking --port=0")
    up = next(line for line in pod.read("tailscale.argv").splitlines() if " up " in line)
    assert up.endswith("--login-server=http://127.0.0.1:8080 --advertise-tags=tag:gpu")
    assert "--hostname=coral-test" in up


def test_wrong_authkey_file_mode_is_fixed_with_warning(pod: Pod) -> None:
    pod.state_dir.mkdir(parents=True)
    key_file = pod.state_dir / "authkey"
    key_file.write_text(GOOD_KEY)
    key_file.chmod(0o644)

    run = pod.start()

    assert f"WARNING: {key_file} had mode 644" in run.log
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert pod.read("logins").split() == [key_digest(GOOD_KEY)]


def test_tailscaled_log_is_rotated_and_capped(pod: Pod) -> None:
    pod.state_dir.mkdir(parents=True)
    (pod.state_dir / "tailscaled.log").write_text("previous boot\n")
    run = pod.start(extra_env={"TS_LOG_MAX_BYTES": "4000", "FAKE_TAILSCALED_LOG_LINES": "200"})

    assert run.returncode == 0
    log = pod.state_dir / "tailscaled.log"
    rotated = pod.state_dir / "tailscaled.log.1"
    assert log.stat().st_size < 4000
    assert 4000 <= rotated.stat().st_size < 4200
    assert "chatty line" in rotated.read_text()


def test_sshd_started_on_2222_with_persistent_host_key(pod: Pod) -> None:
    sshd_env = {"CORAL_SSHD": "1", "CORAL_SSHD_BIN": str(pod.root.parent / "missing")}
    run = pod.start(extra_env=sshd_env)
    assert "no sshd in this image" in run.log

    sshd_env["CORAL_SSHD_BIN"] = str(FAKES / "sshd")
    sshd_env["PUBLIC_KEY"] = "ssh-ed25519 AAAAC3Nza coral@test"
    run = pod.start(extra_env=sshd_env)
    key_dir = pod.state_dir.parent / "sshd"
    assert pod.read("sshd.argv").split() == [
        "-p",
        "2222",
        "-h",
        f"{key_dir}/ssh_host_ed25519_key",
        "-o",
        f"PidFile={key_dir}/sshd.pid",
    ]
    host_key = (key_dir / "ssh_host_ed25519_key.pub").read_text()
    authorized = (pod.root / "home" / ".ssh" / "authorized_keys").read_text()
    assert authorized == "ssh-ed25519 AAAAC3Nza coral@test\n"

    pod.start(extra_env=sshd_env)
    assert (key_dir / "ssh_host_ed25519_key.pub").read_text() == host_key
    assert (pod.root / "home" / ".ssh" / "authorized_keys").read_text() == authorized


def test_sshd_refuses_port_22(pod: Pod) -> None:
    run = pod.start(
        extra_env={
            "CORAL_SSHD": "1",
            "CORAL_SSHD_BIN": str(FAKES / "sshd"),
            "CORAL_SSHD_PORT": "22",
        }
    )
    assert "CORAL_SSHD_PORT=22 refused" in run.log
    assert pod.read("sshd.argv") == ""


def test_bad_settings_fall_back_instead_of_crashing(pod: Pod) -> None:
    marker = pod.root / "main-ran"
    run = pod.start(
        "touch",
        str(marker),
        extra_env={"TS_USERSPACE": "maybe", "CORAL_LOGIN_TIMEOUT": "soon", "TS_AUTH_ONCE": "false"},
    )
    assert marker.exists()
    assert "TS_USERSPACE=maybe is not true/false" in run.log
    assert "CORAL_LOGIN_TIMEOUT=soon is not a positive integer" in run.log
    assert "TS_AUTH_ONCE=false ignored" in run.log


def test_missing_binaries_still_runs_main(pod: Pod) -> None:
    marker = pod.root / "main-ran"
    run = pod.start(
        "touch", str(marker), extra_env={"CORAL_TAILSCALE_BIN_DIR": str(pod.root / "nothing")}
    )
    assert marker.exists()
    assert "has no executable tailscale and tailscaled" in run.log
    assert "continuing without a working tailnet connection" in run.log
