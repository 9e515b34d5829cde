"""Real containers, run by the unprivileged user on a busybox rootfs.

Every test gets its own state root; whatever containers it leaves are force-deleted, and
the test fails if any of their processes outlive that.
"""

import time

import pytest

from harness import MISSING, Bundle, Handcar, make_busybox_rootfs, process_gone


def pytest_collection_modifyitems(items):
    for item in items:
        if MISSING and "integration" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=MISSING))


@pytest.fixture(scope="session")
def rootfs_template(tmp_path_factory):
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def handcar(tmp_path):
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
