"""The docker tier's daemons and client: Debian's dockerd (docker.io) with handcar
registered as a runtime (`docker run --runtime handcar`), as root and rootless (under
rootlesskit, as the unprivileged test user). The fixtures are in conftest.py.

Each dockerd runs in a world of its own: its own socket, data-root, exec-root, pidfile,
key file and cgroup parent, no bridge and no iptables rules, vfs storage, and
contrib/docker/daemon.json (the snippet users install) as its daemon.json with handcar's
path put in. tear_down stops it with everything it left (containers, shims, mounts,
cgroups).
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS / "integration"))
sys.path.insert(0, str(TESTS))
from daemons import (Client, Daemon, SYSTEM_PATH, cgroup2_mount, kill_processes_naming,  # noqa: E402
                     remove_cgroup_tree, system_program, unmount_below)
from harness import HANDCAR, SUBUID_RANGE, make_busybox_rootfs  # noqa: E402

SNIPPET = TESTS.parent / "contrib" / "docker" / "daemon.json"
IMAGE = "handcar-busybox:test"
DOCKERD = system_program("dockerd")
DOCKER = system_program("docker")
# Debian's docker.io ships it as an example, not on PATH
DOCKERD_ROOTLESS = (system_program("dockerd-rootless.sh")
                    or shutil.which("dockerd-rootless.sh",
                                    path="/usr/share/docker.io/contrib"))
# What both daemons share: no network of their own, nothing but what a test needs
DAEMON_FLAGS = ["--storage-driver", "vfs", "--bridge", "none", "--iptables=false",
                "--ip-masq=false", "--exec-opt", "native.cgroupdriver=cgroupfs"]


def missing(*programs):
    absent = [name for name, path in programs if not path]
    if absent:
        return (f"{', '.join(absent)} not installed: scripts/test installs docker.io, "
                "containerd and rootlesskit when run as root")
    if not os.path.exists(HANDCAR):
        return f"{HANDCAR} is missing: install handcar into this virtualenv"
    return None


MISSING = missing(("dockerd", DOCKERD), ("docker", DOCKER))
MISSING_ROOTLESS = missing(("dockerd", DOCKERD), ("docker", DOCKER),
                           ("dockerd-rootless.sh", DOCKERD_ROOTLESS),
                           ("rootlesskit", system_program("rootlesskit")),
                           ("slirp4netns", system_program("slirp4netns"))) or (
    None if SUBUID_RANGE else "rootlesskit needs a subordinate id range for this user "
                              "(/etc/subuid): scripts/test gives the test user one")


def daemon_json(runtime_path, **settings):
    config = json.loads(SNIPPET.read_text())
    config["runtimes"]["handcar"]["path"] = runtime_path
    return json.dumps({**config, **settings}, indent=1)


def busybox_tar(directory):
    """The busybox rootfs as a tar of root's files, for `docker import`."""
    rootfs = make_busybox_rootfs(directory / "rootfs")

    def owned_by_root(info):
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info
    with tarfile.open(directory / "rootfs.tar", "w") as tar:
        tar.add(rootfs, arcname=".", filter=owned_by_root)
    shutil.rmtree(rootfs)
    return directory / "rootfs.tar"


class Docker(Client):
    """Debian's docker client, talking to the tier's dockerd only."""

    name = "docker"

    def __init__(self, socket, env):
        self.socket = socket
        self.env = env

    def command(self, *args):
        return [DOCKER, "--host", f"unix://{self.socket}", *args]


    def ready(self):
        return self("version", timeout=10).returncode == 0

    def remove_all(self):
        ids = self("ps", "--all", "--quiet").stdout.split()
        if ids:
            self("rm", "--force", *ids)


class RootDocker(Docker):
    """dockerd as root; `runtime_root` is where it has handcar keep its state."""

    def __init__(self, base):
        self.base = base
        (base / "client").mkdir()
        # dockerd's key file (a setting, no flag), not /etc/docker/key.json
        (base / "daemon.json").write_text(
            daemon_json(HANDCAR, **{"deprecated-key-path": str(base / "key.json")}))
        super().__init__(base / "docker.sock", {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8",
                                                 "HOME": str(base / "client"),
                                                 "DOCKER_CONFIG": str(base / "client")})
        # the containers' cgroups (docker's cgroupfs driver names /PARENT/ID in
        # linux.cgroupsPath) under a parent of this tier's own
        self.cgroup_parent = f"handcar-docker-test-{os.getpid()}"
        # handcar's --root: docker 20.10 keeps the state of every runc-like runtime under
        # runc's (its containerd namespace is moby)
        self.runtime_root = base / "exec" / "runtime-runc" / "moby"
        self.daemon = Daemon("dockerd", [
            DOCKERD, "--host", f"unix://{self.socket}", "--config-file", str(base / "daemon.json"),
            "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
            "--pidfile", str(base / "dockerd.pid"),
            "--cgroup-parent", f"/{self.cgroup_parent}", *DAEMON_FLAGS,
        ], base / "dockerd.log", env={"PATH": SYSTEM_PATH, "HOME": str(base / "client")})

    def handcar(self, *args):
        return subprocess.run([HANDCAR, "--root", str(self.runtime_root), *args],
                              capture_output=True, text=True, timeout=30)

    def tear_down(self):
        try:
            self.remove_all()
        finally:
            self.daemon.stop()
            # whatever a failed test left: containers through handcar, then the shims
            if self.runtime_root.is_dir():
                for container in self.handcar("list", "-q").stdout.split():
                    self.handcar("delete", "--force", container)
            kill_processes_naming(str(self.base))
            unmount_below(self.base)
            mount = cgroup2_mount()
            if mount:
                remove_cgroup_tree(os.path.join(mount, self.cgroup_parent))


class RootlessDocker(Docker):
    """dockerd-rootless.sh (dockerd in rootlesskit's user namespace) as this user, with
    a HOME and XDG_RUNTIME_DIR of its own."""

    def __init__(self, base):
        self.base = base
        home, runtime_dir = base / "home", base / "run"
        (home / ".config" / "docker").mkdir(parents=True)
        runtime_dir.mkdir(mode=0o700)
        # where rootless dockerd reads its daemon.json
        (home / ".config" / "docker" / "daemon.json").write_text(daemon_json(HANDCAR))
        env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "HOME": str(home),
               "XDG_RUNTIME_DIR": str(runtime_dir)}
        super().__init__(runtime_dir / "docker.sock", env)
        self.daemon = Daemon("dockerd-rootless.sh", [DOCKERD_ROOTLESS, *DAEMON_FLAGS],
                             base / "dockerd.log", env=env)

    def tear_down(self):
        try:
            self.remove_all()
        finally:
            self.daemon.stop()
            kill_processes_naming(str(self.base))
            # the storage holds files of the user namespace's ids: remove it from inside one
            subprocess.run(["rootlesskit", "rm", "-rf", str(self.base / "home")],
                           env=self.env, capture_output=True, timeout=60)
