"""`make demo` and `make demo-down`: the sandbox (standins/sandbox.py) for a person at a terminal.

One sandbox per checkout. The running demo holds an exclusive lock on .cache/demo/sandbox.lock
(CORAL_DEMO_DIR moves that directory) for its whole life, so:
- a second `make demo` finds the lock taken, names the process running the sandbox and points
  at `make demo-down` (tools/check-prereqs.sh says so before anything builds);
- `make demo-down` finds the running sandbox by that lock: by sandbox.pid, which the lock's
  holder writes atomically (a rename) and only it removes, or, when that file is gone, by the
  process holding the lock file open. It never says "no sandbox" while the lock is held;
- sandbox.json records the sandbox's scratch directory, so after a sandbox was killed without
  cleaning up (SIGKILL), `make demo-down` stops what it left running and removes the directory.

Once up it prints the endpoints, each machine's stack outputs and SSH config block, and the
commands a user would type: `ssh -F` with that block and the owner's `tailscale ssh` from the
owner's laptop, a shell in the pod (like RunPod's web terminal) where plain `tailscale status`
works, and a plain member's `tailscale ssh root@...`, whose refusal proves the policy. The pod
shell and the refusal are tried once before printing, and their results shown.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from standins.binaries import BinariesUnavailable, cache_dir
from standins.pod_runtime import PodRuntimeError, check_can_run_pods
from standins.sandbox import Sandbox, ensure_tools, start_sandbox
from standins.testbed import Testbed

STOP_TIMEOUT_S = 600.0
HEARTBEAT_S = 15.0
LOCK = "sandbox.lock"
PID_FILE = "sandbox.pid"
STATE_FILE = "sandbox.json"


def demo_dir() -> Path:
    return Path(os.environ.get("CORAL_DEMO_DIR") or cache_dir() / "demo")


def _say(message: str) -> None:
    print(f"sandbox: {message}", flush=True)


def _elapsed(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60:02d}s"


@contextlib.contextmanager
def _heartbeat(what: str) -> Iterator[None]:
    """Says `what` now and, while it lasts, that it is still running every HEARTBEAT_S."""
    started = time.monotonic()
    done = threading.Event()
    _say(f"{what} ...")

    def beat() -> None:
        while not done.wait(HEARTBEAT_S):
            _say(f"{what}: still running ({_elapsed(time.monotonic() - started)})")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
    _say(f"{what}: done in {_elapsed(time.monotonic() - started)}")


# ------------------------------------------------------------------------- one per checkout


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _holds_open(pid: int, target: Path) -> bool:
    """Whether process `pid` has `target` open (compared by device and inode)."""
    try:
        wanted = target.stat()
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            opened = os.stat(f"/proc/{pid}/fd/{fd}")
            if (opened.st_dev, opened.st_ino) == (wanted.st_dev, wanted.st_ino):
                return True
    return False


def _lock_is_held(directory: Path) -> bool:
    lock = directory / LOCK
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing also releases a lock this probe took
    return False


def sandbox_pid(directory: Path) -> int | None:
    """The process holding the checkout's sandbox lock: the one sandbox.pid names if it holds
    the lock, else whichever process has the lock file open. None when nothing holds it."""
    if not _lock_is_held(directory):
        return None
    lock = directory / LOCK
    with contextlib.suppress(OSError, ValueError):
        named = int((directory / PID_FILE).read_text().strip())
        if _holds_open(named, lock):
            return named
    for entry in Path("/proc").iterdir():
        pid = int(entry.name) if entry.name.isdigit() else os.getpid()
        if pid != os.getpid() and _holds_open(pid, lock):
            return pid
    return -1  # held, by a process this one cannot see


class SandboxRunning(RuntimeError):
    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self.pid = pid


class DemoLock:
    """The running sandbox's hold on its checkout: the lock, the pid file, the state file."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        # Not inherited by children (Python's default): only this process holds the lock.
        self._fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise SandboxRunning(sandbox_pid(directory) or -1) from None
        _atomic_write(directory / PID_FILE, f"{os.getpid()}\n")

    def record(self, scratch: Path) -> None:
        state = {"pid": os.getpid(), "scratch": str(scratch), "started": time.time()}
        _atomic_write(self.directory / STATE_FILE, json.dumps(state) + "\n")

    def release(self) -> None:
        """Removes the files this process wrote (only if they are still its own), then
        lets go of the lock."""
        for name in (STATE_FILE, PID_FILE):
            path = self.directory / name
            with contextlib.suppress(OSError, ValueError):
                text = path.read_text()
                pid = json.loads(text)["pid"] if name == STATE_FILE else int(text.strip())
                if pid == os.getpid():
                    path.unlink()
        os.close(self._fd)


def processes_under(scratch: Path) -> list[int]:
    """Processes a sandbox started in `scratch`: daemons named there on their command line,
    pods chrooted there, pulumi and its plugins working there."""
    prefix = str(scratch)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            places = [os.readlink(entry / "root"), os.readlink(entry / "cwd")]
            if prefix in cmdline or any(p == prefix or p.startswith(prefix + "/") for p in places):
                found.append(int(entry.name))
    return found


def _clean_leftovers(directory: Path) -> str | None:
    """After a sandbox died without cleaning up: stops what it left and removes its scratch
    directory. Call with the lock held. Says what it did, or None when nothing was left."""
    state_file = directory / STATE_FILE
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return None
    scratch = Path(state["scratch"])
    pids = processes_under(scratch)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in processes_under(scratch):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while processes_under(scratch) and time.monotonic() < deadline:
            time.sleep(0.1)
    shutil.rmtree(scratch, ignore_errors=True)
    state_file.unlink(missing_ok=True)
    (directory / PID_FILE).unlink(missing_ok=True)
    return (
        f"the last sandbox (pid {state['pid']}) ended without cleaning up: stopped "
        f"{len(pids)} process(es) it left and removed {scratch}"
    )


# --------------------------------------------------------------------------- what it prints


def _try(command: list[str], timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        start_new_session=True,  # no controlling terminal: ssh never prompts
    )


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "(no output)")


def instructions(sandbox: Sandbox, outputs: Mapping[str, Any]) -> str:
    """What the user can do now, with commands that were checked just before printing."""
    assert sandbox.laptop is not None and sandbox.member_laptop is not None
    runtime = sandbox.runpod.runtime
    assert runtime is not None
    tailscale = str(sandbox.bin_dir / "tailscale")
    owner = f"{tailscale} --socket={sandbox.laptop.socket}"
    member = f"{tailscale} --socket={sandbox.member_laptop.socket}"
    pods = sandbox.testbed.root / "runpod" / "pods"
    lines = [
        "",
        "coral sandbox is up (everything on 127.0.0.1):",
        f"  headscale (control plane)  {sandbox.headscale.url}",
        f"  Tailscale API stand-in     {sandbox.tailscale_api.url}",
        f"  RunPod API stand-in        {sandbox.runpod.url}",
        f"  pod consoles               {pods}/<pod id>/console.log",
        f"  Pulumi project             {sandbox.project_dir} (stack {sandbox.stack})",
    ]
    for hostname, machine in (outputs.get("machines") or {}).items():
        config = sandbox.ssh_config_file(sandbox.laptop, hostname, machine["sshConfig"])
        pod_shell = runtime.shell_command(machine["podId"])
        in_pod = _try(runtime.shell_command(machine["podId"], "tailscale ip -4"))
        refused = sandbox.member_laptop.ssh(f"root@{hostname}", "true")
        refusal = (
            f"refused, as it must be: {_first_line(refused.stderr)}"
            if refused.returncode != 0
            else "WARNING: NOT refused: the policy lets the member in as root"
        )
        lines += [
            "",
            f"{hostname}: pod {machine['podId']}, device {machine['deviceId']}, "
            f"{machine['magicDnsName']} {' '.join(machine['tailscaleIps'])}",
            "SSH config (stack output sshConfig):",
            machine["sshConfig"].rstrip(),
            "",
            f"From the owner's laptop (a userspace tailscaled logged in as {sandbox.owner_login}):",
            f"  ssh as Cursor/VS Code do, with that block (+ a ProxyCommand through "
            f"`tailscale nc`: {config}):",
            f"    ssh -F {config} {hostname}",
            "  Tailscale SSH:",
            f"    {owner} ssh root@{hostname}",
            "A shell in the pod (as RunPod's web terminal), where plain `tailscale status`, "
            "`tailscale ip -4` and `tailscale ssh` work:",
            f"    {shlex.join(pod_shell)}",
            f"    (tried `tailscale ip -4` in it: {_first_line(in_pod.stdout or in_pod.stderr)})",
            f"The policy's denial: a plain member ({sandbox.member_login}, a second laptop) "
            "asking for root:",
            f"    {member} ssh root@{hostname}",
            f"    (tried: {refusal})",
        ]
    lines += ["", "Stop with Ctrl-C here, or `make demo-down` from another shell."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ make demo


def demo() -> int:
    directory = demo_dir()
    try:
        lock = DemoLock(directory)
    except SandboxRunning as running:
        who = f"pid {running.pid}" if running.pid > 0 else f"lock {directory / LOCK}"
        print(
            f"make demo: a sandbox is already running in this checkout ({who}); use it, "
            "or stop it with: make demo-down",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()

    def request_stop(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    testbed: Testbed | None = None
    sandbox: Sandbox | None = None
    outputs: dict[str, Any] = {}
    started = time.monotonic()
    try:
        note = _clean_leftovers(directory)
        if note:
            _say(note)
        try:
            bin_dir = ensure_tools(show_progress=True)
            check_can_run_pods()
        except (BinariesUnavailable, PodRuntimeError) as error:
            print(f"make demo: {error}", file=sys.stderr)
            return 2
        testbed = Testbed.create()
        lock.record(testbed.root)
        with _heartbeat("starting headscale and the Tailscale and RunPod API stand-ins"):
            sandbox = start_sandbox(testbed, bin_dir)
        if not stop.is_set():
            with _heartbeat(
                "pulumi up --stack local (tailnet policy, auth key, network volume, pod; "
                "the pod boots the bootstrap and joins headscale)"
            ):
                outputs = sandbox.up()
        if not stop.is_set():
            machines = list(outputs.get("machines") or {})
            with (
                _heartbeat("logging in the owner's and a plain member's laptops"),
                ThreadPoolExecutor(max_workers=2) as pool,
            ):
                logins = [
                    pool.submit(sandbox.start_laptop, machines),
                    pool.submit(sandbox.start_member_laptop, machines),
                ]
                for login in logins:
                    login.result()
            print(instructions(sandbox, outputs), flush=True)
            _say(f"up in {_elapsed(time.monotonic() - started)}")
        while not stop.wait(0.5):
            pass
        with _heartbeat("tearing down: pulumi destroy"):
            sandbox.destroy()
        return 0
    except (RuntimeError, TimeoutError) as error:
        print(f"make demo: failed: {error}", file=sys.stderr)
        if testbed is not None:
            print(f"make demo: pod consoles: {testbed.root / 'runpod' / 'pods'}", file=sys.stderr)
        return 1
    finally:
        if sandbox is not None:
            sandbox.close()
        elif testbed is not None:
            testbed.close()
        if testbed is not None:
            shutil.rmtree(testbed.root, ignore_errors=True)
        lock.release()
        _say("stopped")


def demo_down() -> int:
    directory = demo_dir()
    pid = sandbox_pid(directory)
    if pid is None:
        note = None
        with contextlib.suppress(SandboxRunning):
            lock = DemoLock(directory)
            try:
                note = _clean_leftovers(directory)
            finally:
                lock.release()
        print(f"make demo-down: no sandbox running in this checkout{f'; {note}' if note else ''}")
        return 0
    if pid < 0:
        print(
            f"make demo-down: {directory / LOCK} is held, but by no process visible here; "
            "stop it where it runs",
            file=sys.stderr,
        )
        return 1
    print(f"make demo-down: stopping the sandbox (pid {pid}): pulumi destroy, then its daemons")
    os.kill(pid, signal.SIGTERM)
    started = time.monotonic()
    last = started
    while _lock_is_held(directory):
        now = time.monotonic()
        if now - started > STOP_TIMEOUT_S:
            print(
                f"make demo-down: the sandbox (pid {pid}) is still running after "
                f"{_elapsed(now - started)}; `kill -9 {pid}`, then `make demo-down` again "
                "stops what it left",
                file=sys.stderr,
            )
            return 1
        if now - last >= HEARTBEAT_S:
            print(f"make demo-down: still stopping ({_elapsed(now - started)})", flush=True)
            last = now
        time.sleep(0.2)
    print(f"make demo-down: sandbox stopped in {_elapsed(time.monotonic() - started)}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description="coral local sandbox (make demo)")
    parser.add_argument("--down", action="store_true", help="stop this checkout's sandbox")
    args = parser.parse_args()
    sys.exit(demo_down() if args.down else demo())


if __name__ == "__main__":
    main()
