"""What the engine tiers (tests/docker, tests/containerd) share: a daemon started for a
tier and stopped after it whatever happened, a per-test time limit, cleaning up what an
engine leaves (processes, mounts, cgroups), and a terminal for `-it`."""

import os
import select
import shutil
import signal
import subprocess
import time

import pytest

# Debian's engines, from their packages: not a client a machine added to /usr/local/bin
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
TEST_TIMEOUT = 90              # seconds a test may take, its fixtures' set-up included


def system_program(name):
    return shutil.which(name, path=SYSTEM_PATH)


@pytest.fixture
def per_test_timeout(request):
    """Fail a test that takes longer than TEST_TIMEOUT (the subprocess it waits for is
    killed as the exception unwinds through subprocess.run), unless pytest-timeout is
    there to do it (it arms the same SIGALRM timer)."""
    if request.config.pluginmanager.hasplugin("timeout"):
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"{request.node.nodeid} took longer than {TEST_TIMEOUT} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


class Daemon:
    """A daemon run in a session of its own, its output in `log`."""

    def __init__(self, name, argv, log, env, **popen):
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env,
                                            start_new_session=True, **popen)

    def log_tail(self, lines=30):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, ready, timeout=60):
        """Wait until `ready()` is true; fail with the daemon's log if it exits first or
        takes longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.process.returncode}:"
                                   f"\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, timeout=20):
        """SIGTERM, then SIGKILL for whatever of its session is left."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


class Client:
    """An engine's command-line client (podman, docker, ctr) run for a test: a subclass
    names it (`name`), gives its environment (`env`) and its full command (`command`)."""

    name = ""
    env = None

    def command(self, *args):
        raise NotImplementedError

    def __call__(self, *args, timeout=60, **kwargs):
        kwargs.setdefault("capture_output", True)
        return subprocess.run(self.command(*args), env=self.env, text=True, timeout=timeout,
                              **kwargs)

    def ok(self, *args, **kwargs):
        result = self(*args, **kwargs)
        assert result.returncode == 0, f"{self.name} {' '.join(args)}: {result.stderr}"
        return result

    def inspect(self, name, template):
        return self.ok("inspect", "--format", template, name).stdout.strip()


def kill_processes_naming(text):
    """SIGKILL every process whose command line contains `text` (the shims an engine
    leaves name its private socket or state directory)."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    os.kill(int(entry), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def unmount_below(top):
    """Detach every mount at or below `top` (deepest first): what an engine that was
    stopped early leaves mounted in its directories."""
    top = os.path.realpath(top)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in reversed(points):
        if point == top or point.startswith(top + "/"):
            subprocess.run(["umount", "-l", point], capture_output=True)


def remove_cgroup_tree(path):
    """rmdir a cgroup v2 directory and its children (deepest first), once they are
    empty of processes."""
    if not os.path.isdir(path):
        return
    for directory, _, _ in sorted(os.walk(path), key=lambda walked: -len(walked[0])):
        try:
            os.rmdir(directory)
        except OSError:
            pass


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup2" and fields[3] == "/":
                return fields[4]
    return None


def v2_controllers(directory):
    with open(os.path.join(directory, "cgroup.controllers")) as f:
        return set(f.read().split())


def v1_controllers():
    """The controllers on cgroup v1 hierarchies here (a v1 or hybrid host)."""
    found = set()
    with open("/proc/self/cgroup") as f:
        for line in f:
            number, names, _ = line.split(":", 2)
            if number != "0":
                found.update(name for name in names.split(",") if "=" not in name)
    return found


def cgroup_of(pid):
    """The host path of the cgroup v2 directory process `pid` is in."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return os.path.normpath(cgroup2_mount() + line[3:].strip())
    raise AssertionError(f"process {pid} is in no cgroup v2")


def run_on_a_terminal(argv, typed, env, timeout=30):
    """Run argv with a new pty as its terminal (as from a user's shell), type `typed`,
    read until every holder of the pty closes it. (exit status, output bytes)."""
    master, slave = os.openpty()
    process = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave,
                               start_new_session=True)
    os.close(slave)
    os.write(master, typed)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    data = os.read(master, 4096)
                except OSError:               # EIO: every holder of the pty closed it
                    break
                if not data:
                    break
                output += data
            elif process.poll() is not None:
                break
        return process.wait(timeout=max(1, deadline - time.monotonic())), output
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
