"""The podman tier: real rootless podman (`podman --runtime handcar`) as the unprivileged
test user, on an image imported from the busybox rootfs of the integration tier.

Podman gets a private, throwaway world per session: its own HOME, a 0700
XDG_RUNTIME_DIR (the test user has none), vfs storage, cgroupfs, events in a file, and
contrib/podman/containers.conf (the snippet users install) as its only containers.conf,
with handcar's path put in. Nothing in the user's home is read or left behind.
"""

import os
import shutil
import signal
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

# The busybox rootfs and handcar's path are the integration tier's (tests/integration/harness.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from daemons import Client  # noqa: E402
from harness import HANDCAR, SUBUID_RANGE, make_busybox_rootfs  # noqa: E402

HERE = Path(__file__).resolve().parent
SNIPPET = HERE.parent.parent / "contrib" / "podman" / "containers.conf"
IMAGE = "localhost/handcar-busybox:test"
PROGRAMS = ("podman", "conmon", "catatonit", "slirp4netns", "newuidmap", "busybox")


def _missing():
    absent = [name for name in PROGRAMS if not shutil.which(name)]
    if absent:
        return (f"{', '.join(absent)} not installed: scripts/test installs podman, catatonit "
                "and slirp4netns when run as root")
    if os.geteuid() == 0:
        return "the podman tier is about rootless podman: scripts/test runs it as the test user"
    if not SUBUID_RANGE:
        return "rootless podman needs a subordinate id range for this user (/etc/subuid)"
    if not os.path.exists(HANDCAR):
        return f"{HANDCAR} is missing: install handcar into this virtualenv"
    return None


MISSING = _missing()


def pytest_collection_modifyitems(config, items):
    # a conftest's hook sees every collected item: touch only those under tests/podman
    if not MISSING:
        return
    skip = pytest.mark.skip(reason=MISSING)
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(skip)


class Podman(Client):
    """podman with handcar as its runtime, in a world of its own under `base`."""

    name = "podman"

    def __init__(self, base):
        self.base = base
        self.runtime_dir = base / "run"
        self.runtime_dir.mkdir(mode=0o700)
        (base / "home").mkdir()
        conf = base / "containers.conf"
        conf.write_text(SNIPPET.read_text().replace(
            'handcar = ["/usr/local/bin/handcar", "/usr/bin/handcar"]', f'handcar = ["{HANDCAR}"]'))
        self.env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": str(base / "home"),
                    "XDG_RUNTIME_DIR": str(self.runtime_dir), "CONTAINERS_CONF": str(conf)}
        self.tmpdir = base / "tmp"
        self.flags = ["--runtime", HANDCAR, "--root", str(base / "storage"),
                      "--runroot", str(base / "runroot"), "--tmpdir", str(self.tmpdir),
                      "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                      "--events-backend", "file"]

    def command(self, *args):
        return ["podman", *self.flags, *args]


    def pause_process(self):
        """The pid of podman's rootless pause process (it holds the user namespace), if
        it is still there."""
        for path in (self.tmpdir / "pause.pid", self.runtime_dir / "libpod" / "tmp" / "pause.pid"):
            try:
                pid = int(path.read_text())
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"catatonit" in f.read():
                        return pid
            except (OSError, ValueError):
                continue
        return None

    def tear_down(self):
        self("rm", "--all", "--force", "--time", "0")
        # the storage holds files of the user namespace's ids: remove it from inside
        self("unshare", "rm", "-rf", str(self.base / "storage"), str(self.base / "runroot"))
        pid = self.pause_process()
        if pid:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def podman():
    # podman refuses a runroot longer than 50 characters: pytest's tmp paths can be
    base = Path(tempfile.mkdtemp(prefix="hcp-", dir="/tmp"))
    runner = Podman(base)
    try:
        yield runner
    finally:
        runner.tear_down()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def image(podman, tmp_path_factory):
    """The busybox rootfs as a podman image (`podman import` of a tar, owned by root)."""
    work = tmp_path_factory.mktemp("podman-image")
    rootfs = make_busybox_rootfs(work / "rootfs")

    def owned_by_root(info):
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(work / "rootfs.tar", "w") as tar:
        tar.add(rootfs, arcname=".", filter=owned_by_root)
    podman.ok("import", str(work / "rootfs.tar"), IMAGE)
    return IMAGE


@pytest.fixture
def names(podman):
    """Names for a test's containers; whatever of them is left is removed after it."""
    made = []

    def name(label):
        made.append(f"handcar-{label}-{os.getpid()}")
        return made[-1]
    yield name
    if made:
        podman("rm", "--force", "--time", "0", *made)
