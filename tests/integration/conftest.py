"""Real containers, run by the unprivileged user on a busybox rootfs.

Every test gets its own state root; whatever containers it leaves are force-deleted, and
the test fails if any of their processes outlive that.
"""

import json
import os
import shutil
import subprocess
import time

import pytest

from harness import BUSYBOX, MISSING, Bundle, Handcar, process_gone


def pytest_collection_modifyitems(items):
    for item in items:
        if MISSING and "integration" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=MISSING))


@pytest.fixture(scope="session")
def rootfs_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
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


@pytest.fixture
def handcar(tmp_path):
    runner = Handcar(tmp_path / "state", tmp_path / "handcar.log")
    yield runner
    leftover_pids = []
    for container_id in runner("list", "-q").stdout.split():
        state = json.loads(runner("state", container_id).stdout or "{}")
        if state.get("pid"):
            leftover_pids.append(state["pid"])
        runner("delete", "--force", container_id)
    deadline = time.monotonic() + 5
    while not all(process_gone(pid) for pid in leftover_pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert all(process_gone(pid) for pid in leftover_pids), "container processes outlived delete"


@pytest.fixture
def bundle(tmp_path, rootfs_template):
    path = tmp_path / "bundle"
    path.mkdir()
    return Bundle(path, rootfs_template)
