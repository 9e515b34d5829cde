"""What the integration tests share: the handcar runner, bundles, requirements."""

import errno
import http.server
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from oci.default import default_spec
from rootless.runtime.userns import SUBGID, SUBUID, subordinate_ranges

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
HANDCAR = str(Path(sys.executable).with_name("handcar"))
USER = pwd.getpwuid(os.geteuid()).pw_name


def _requirements():
    if not os.path.exists(BUSYBOX):
        return "busybox-static is not installed (scripts/test installs it as root)"
    if not os.path.exists(HANDCAR):
        return f"{HANDCAR} is missing: install handcar into this virtualenv"
    return None


MISSING = _requirements()


def subordinate(path):
    ranges = subordinate_ranges(path, USER, os.geteuid())
    return ranges[0] if ranges else None


SUBUID_RANGE = subordinate(SUBUID)
SUBGID_RANGE = subordinate(SUBGID)
needs_subids = pytest.mark.skipif(
    os.geteuid() != 0 and not (SUBUID_RANGE and SUBGID_RANGE),
    reason=f"no /etc/subuid and /etc/subgid range for {USER}")




def make_busybox_rootfs(root):
    """A rootfs of Debian's static busybox, with a root and a uid 1000 user."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)
    for name in ("etc", "tmp", "root", "home/user"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "user:x:1000:1000:user:/home/user:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\n")
    return root


class Bundle:
    """A bundle directory with a config.json made from `handcar spec --rootless`, mapped
    1 + 65536 ids when the user has subordinate ids, running `args` without a terminal."""

    def __init__(self, path, rootfs):
        self.path = path
        self.rootfs = rootfs
        self.config = default_spec(rootless=True, uid=os.geteuid(), gid=os.getegid())
        self.config["root"] = {"path": str(rootfs), "readonly": True}
        self.config["process"]["terminal"] = False
        self.config["process"]["capabilities"]["inheritable"] = list(
            self.config["process"]["capabilities"]["ambient"])
        self.config["hostname"] = "box"
        if os.geteuid() != 0 and SUBUID_RANGE and SUBGID_RANGE:
            linux = self.config["linux"]
            linux["uidMappings"].append({"containerID": 1, "hostID": SUBUID_RANGE[0],
                                         "size": SUBUID_RANGE[1]})
            linux["gidMappings"].append({"containerID": 1, "hostID": SUBGID_RANGE[0],
                                         "size": SUBGID_RANGE[1]})

    @property
    def process(self):
        return self.config["process"]

    @property
    def linux(self):
        return self.config["linux"]

    def own_rootfs(self):
        """Give this bundle a writable copy of the rootfs."""
        target = self.path / "rootfs"
        shutil.copytree(self.rootfs, target, symlinks=True)
        self.rootfs = target
        self.config["root"] = {"path": "rootfs", "readonly": False}
        return target

    def bind_writable(self, host_dir, destination):
        """Bind a fresh host directory, writable by any container user, at `destination`."""
        host_dir.mkdir()
        os.chmod(host_dir, 0o777)
        self.config["mounts"].append({"destination": destination, "type": "bind",
                                      "source": str(host_dir), "options": ["rbind", "rw"]})
        return host_dir

    def args(self, *argv):
        self.process["args"] = list(argv)
        return self

    def sh(self, script):
        return self.args("sh", "-c", script)

    def write(self):
        (self.path / "config.json").write_text(json.dumps(self.config, indent=1))
        return str(self.path)


class Handcar:
    def __init__(self, root, log):
        self.root = root
        self.log = log

    def __call__(self, *args, timeout=30, **kwargs):
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
        return subprocess.run([HANDCAR, "--root", str(self.root), *args], timeout=timeout,
                              **kwargs)

    def detached(self, *args, **kwargs):
        """For create and run -d: the container keeps the caller's stdout and stderr
        (as with runc), so they go to files rather than pipes nobody would close."""
        out = self.root.parent / "container.out"
        err = self.root.parent / "handcar.err"
        with open(out, "a") as stdout, open(err, "w") as stderr:
            result = self(*args, stdout=stdout, stderr=stderr, **kwargs)
        result.stderr = err.read_text()
        return result

    def ok_detached(self, *args, **kwargs):
        result = self.detached(*args, **kwargs)
        assert result.returncode == 0, f"handcar {' '.join(args)}: {result.stderr}"
        return result

    def ok(self, *args, **kwargs):
        result = self(*args, **kwargs)
        assert result.returncode == 0, f"handcar {' '.join(args)}: {result.stderr}"
        return result

    def with_fd3(self, path, *args, env=""):
        """handcar with `path` open as fd 3 (and shell assignments `env` before it;
        $$ is handcar's own pid there, the shell execs it)."""
        return subprocess.run(
            ["sh", "-c", f'fd="$1"; shift; {env} exec "$0" "$@" 3<"$fd"', HANDCAR, str(path),
             "--root", str(self.root), *args], capture_output=True, text=True, timeout=30)

    def delete_all(self):
        """Force-delete every container; the pids their inits had."""
        pids = []
        for container_id in self("list", "-q").stdout.split():
            state = self("state", container_id).stdout
            if state:
                pids.append(json.loads(state)["pid"])
            self("delete", "--force", container_id)
        return [pid for pid in pids if pid]

    def state(self, container_id):
        return json.loads(self.ok("state", container_id).stdout)

    def wait_status(self, container_id, status, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            current = self.state(container_id)["status"]
            if current == status or time.monotonic() > deadline:
                return current
            time.sleep(0.02)


def run_in_pty(argv, wait_for, answer, env=None, cwd=None, window=None):
    """Run argv on a new pty (as a user's terminal would): wait for `wait_for` in its
    output, type `answer`, read to the end. (output, exit status)."""
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        if cwd:
            os.chdir(cwd)
        os.execve(argv[0], argv, env or os.environ)
    if window:
        import fcntl
        import struct
        import termios
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", *window, 0, 0))
    output = b""
    while wait_for not in output:
        output += os.read(fd, 1024)
    os.write(fd, answer)
    try:
        while True:
            chunk = os.read(fd, 1024)
            if not chunk:
                break
            output += chunk
    except OSError:
        pass
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return output.decode(errors="replace"), os.waitstatus_to_exitcode(status)


# --- networking: a server on the host's loopback, free ports --------------------------

SLIRP4NETNS = shutil.which("slirp4netns")
needs_slirp4netns = pytest.mark.skipif(
    SLIRP4NETNS is None, reason="slirp4netns is not installed (scripts/test installs it)")
PASTA = shutil.which("pasta")


def serve_a_file(directory, name, address):
    """An HTTP server on `address` serving `name` ("served from the host") from
    `directory`, in a thread: a generator for a fixture, yielding its port."""
    directory.mkdir()
    (directory / name).write_text("served from the host\n")

    def handler(*args):
        return http.server.SimpleHTTPRequestHandler(*args, directory=str(directory))
    server = http.server.ThreadingHTTPServer((address, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def host_server(tmp_path):
    """An HTTP server on the host's 127.0.0.1 serving file.txt; its port."""
    yield from serve_a_file(tmp_path / "served", "file.txt", "127.0.0.1")


def wait_until(condition, timeout=10):
    """Whether `condition()` became true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_free(port):
    """Whether a server could listen on 127.0.0.1:port now (as servers do, with
    SO_REUSEADDR: a connection still in TIME_WAIT does not hold the port)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
            return True
        except OSError as err:
            assert err.errno == errno.EADDRINUSE, err
            return False


def process_gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


# --- fixtures, shared by tests/integration (its conftest) and tests/vm -------------------

@pytest.fixture(scope="session")
def rootfs_template(tmp_path_factory):
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def handcar(tmp_path):
    """A handcar with its own state root; whatever containers a test leaves are
    force-deleted, and the test fails if any of their processes outlive that."""
    runner = Handcar(tmp_path / "state", tmp_path / "handcar.log")
    yield runner
    leftover_pids = runner.delete_all()
    deadline = time.monotonic() + 5
    while not all(process_gone(pid) for pid in leftover_pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert all(process_gone(pid) for pid in leftover_pids), "container processes outlived delete"


@pytest.fixture
def bundle(tmp_path, rootfs_template):
    path = tmp_path / "bundle"
    path.mkdir()
    return Bundle(path, rootfs_template)
