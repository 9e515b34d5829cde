"""The containerd tier's daemon and client: Debian's containerd as root, driven by its
own client, `ctr run --runc-binary handcar` (runc's shim, io.containerd.runc.v2, calling
handcar where it would call runc). The fixtures are in conftest.py.

containerd runs in a world of its own: its own root, state, sockets and opt directory,
a namespace for the tests, handcar's state in a --runc-root of the tier's. Its
config.toml is shaped as the one Debian's package ships, with
contrib/containerd/config.toml (the snippet users append) appended, handcar's path and
state root put in: containerd's CRI plugin must accept it. tear_down stops containerd
with everything it left (containers, shims, mounts, cgroups).
"""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS / "integration"))
sys.path.insert(0, str(TESTS))
from daemons import (Client, Daemon, SYSTEM_PATH, cgroup2_mount, kill_processes_naming,  # noqa: E402
                     remove_cgroup_tree, system_program, unmount_below)
from harness import HANDCAR  # noqa: E402

SNIPPET = TESTS.parent / "contrib" / "containerd" / "config.toml"
CONTAINERD = system_program("containerd")
CTR = system_program("ctr")
# ctr's containers' cgroupsPath is /NAMESPACE/ID: one of this run's own
NAMESPACE = f"handcar-test-{os.getpid()}"


def _missing():
    absent = [name for name, path in (("containerd", CONTAINERD), ("ctr", CTR)) if not path]
    if absent:
        return (f"{', '.join(absent)} not installed: scripts/test installs containerd when "
                "run as root")
    if not os.path.exists(HANDCAR):
        return f"{HANDCAR} is missing: install handcar into this virtualenv"
    return None


MISSING = _missing()


def config_toml(base, runtime_path, runtime_root):
    """Debian's /etc/containerd/config.toml with the tier's own places, then the snippet."""
    snippet = (SNIPPET.read_text()
               .replace('BinaryName = "/usr/local/bin/handcar"', f'BinaryName = "{runtime_path}"')
               .replace('Root = "/run/containerd/handcar"', f'Root = "{runtime_root}"'))
    assert runtime_path in snippet and str(runtime_root) in snippet, "the snippet changed"
    return f'''version = 2
root = "{base}/root"
state = "{base}/state"

[grpc]
  address = "{base}/containerd.sock"

[ttrpc]
  address = "{base}/containerd.sock.ttrpc"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "{base}/opt"

{snippet}'''


def recorder(path, log):
    """A runtime that is handcar, writing each call's exit status and arguments to `log`:
    what the shim asked of it, in order."""
    path.write_text(f'#!/bin/sh\n"{HANDCAR}" "$@"\nstatus=$?\n'
                    f'printf "%s %s\\n" "$status" "$*" >> "{log}"\nexit $status\n')
    path.chmod(0o755)
    return path


class Containerd(Client):
    name = "ctr"

    def __init__(self, base):
        self.base = base
        self.namespace = NAMESPACE
        self.socket = base / "containerd.sock"
        self.runc_root = base / "handcar"             # ctr --runc-root
        self.runtime_root = self.runc_root / NAMESPACE  # handcar's --root: the shim adds it
        self.config = base / "config.toml"
        self.config.write_text(config_toml(base, HANDCAR, base / "cri-handcar"))
        self.env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "HOME": str(base)}
        self.daemon = Daemon("containerd", [CONTAINERD, "--config", str(self.config)],
                             base / "containerd.log", env=self.env)

    def command(self, *args):
        return [CTR, "--address", str(self.socket), "--namespace", NAMESPACE, *args]


    def dump_config(self):
        """The configuration containerd makes of its config.toml (defaults filled in)."""
        return subprocess.run([CONTAINERD, "--config", str(self.config), "config", "dump"],
                              env=self.env, capture_output=True, text=True, check=True,
                              timeout=30).stdout

    def ready(self):
        return self("version", timeout=10).returncode == 0

    def run_flags(self, runtime=HANDCAR):
        """ctr run's flags for a container run by `runtime` (handcar, or its recorder)."""
        return ["--runc-binary", str(runtime), "--runc-root", str(self.runc_root)]

    def tasks(self):
        """{container id: (pid, status)} of ctr task ls."""
        rows = self.ok("task", "ls").stdout.splitlines()[1:]
        return {row.split()[0]: (row.split()[1], row.split()[2]) for row in rows}

    def handcar(self, *args):
        return subprocess.run([HANDCAR, "--root", str(self.runtime_root), *args],
                              capture_output=True, text=True, timeout=30)

    def tear_down(self):
        try:
            for container in self.tasks():
                self("task", "kill", "--signal", "SIGKILL", container)
                self("task", "delete", "--force", container)
            for container in self.ok("container", "ls", "--quiet").stdout.split():
                self("container", "delete", container)
        finally:
            self.daemon.stop()
            if self.runtime_root.is_dir():
                for container in self.handcar("list", "-q").stdout.split():
                    self.handcar("delete", "--force", container)
            kill_processes_naming(str(self.base))
            unmount_below(self.base)
            mount = cgroup2_mount()
            if mount:
                remove_cgroup_tree(os.path.join(mount, NAMESPACE))
