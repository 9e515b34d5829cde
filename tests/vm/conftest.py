"""The VM tier: tests that run inside the throwaway QEMU guest booted by scripts/vm-test.

The guest has a pure cgroup v2 hierarchy with the memory, pids, cpu, io and cpuset
controllers delegated (systemd's Delegate=yes) to the unprivileged user running the tests;
$DELEGATED_CGROUP is that subtree, and the tests run in $DELEGATED_CGROUP/app.slice/vm-run.scope.
Outside the guest (DELEGATED_CGROUP unset) every test here is skipped, with a reason.

Python runs under software emulation in the guest: a handcar invocation costs seconds, so
keep these tests few and to the point.
"""

import os
import sys
import time
import uuid
from pathlib import Path

import pytest

# The busybox bundle and handcar fixtures are the integration tier's (tests/integration/harness.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
from harness import bundle, handcar, rootfs_template  # noqa: E402,F401 - fixtures

HERE = Path(__file__).resolve().parent
CGROUP_ROOT = Path("/sys/fs/cgroup")
NOT_IN_VM = "tests/vm runs inside the QEMU guest: use scripts/vm-test"
IN_VM = bool(os.environ.get("DELEGATED_CGROUP"))


# Each test's limit in the guest (pytest-timeout): under software emulation a handcar call
# takes seconds, so the default of pyproject.toml is raised; a test may raise it further.
TEST_TIMEOUT = 180


def pytest_collection_modifyitems(config, items):
    # a conftest's hook sees every collected item: touch only those under tests/vm
    mine = [item for item in items if HERE in Path(item.path).resolve().parents]
    for item in mine:
        if not IN_VM:
            item.add_marker(pytest.mark.skip(reason=NOT_IN_VM))
        elif item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))


def pytest_report_header(config):
    if not IN_VM:
        return None
    delegated = Path(os.environ["DELEGATED_CGROUP"])
    try:
        controllers = (delegated / "cgroup.controllers").read_text().strip()
    except OSError as e:
        controllers = f"unreadable: {e}"
    return [f"VM tier: uid {os.getuid()}, cgroup {cgroup_of_self()}",
            f"delegated cgroup {delegated}: {controllers}",
            f"each test's timeout: {TEST_TIMEOUT} s unless it says otherwise"]


def cgroup_of_self():
    """This process's cgroup v2 directory, from the "0::" line of /proc/self/cgroup."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return CGROUP_ROOT / line[3:].lstrip("/")
    raise AssertionError("no cgroup v2 entry (0::) in /proc/self/cgroup")


@pytest.fixture(scope="session")
def delegated_cgroup():
    """The delegated subtree ($DELEGATED_CGROUP) as a Path."""
    return Path(os.environ["DELEGATED_CGROUP"])


@pytest.fixture
def own_cgroup():
    """The cgroup directory the tests run in (from /proc/self/cgroup)."""
    return cgroup_of_self()


@pytest.fixture
def scratch_cgroup(delegated_cgroup):
    """A fresh, empty cgroup in the delegated subtree (a sibling of the tests' own scope,
    so processes can be moved between the two) offering every delegated controller;
    removed afterwards, once whatever was moved into it has gone."""
    path = delegated_cgroup / "app.slice" / f"test-{uuid.uuid4().hex[:8]}.scope"
    path.mkdir()
    yield path
    procs = path / "cgroup.procs"
    if procs.exists() and procs.read_text().split():
        (path / "cgroup.kill").write_text("1")
    for _ in range(500):
        try:
            path.rmdir()
            break
        except OSError:
            time.sleep(0.01)
    else:
        pytest.fail(f"could not remove {path}")
