"""handcar run by root: scripts/test runs these as root (the rest run unprivileged)."""

import os
import shutil
import tempfile

import pytest

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (scripts/test runs it as root)")]


def test_root_without_a_user_namespace_is_real_root(handcar, bundle):
    linux = bundle.linux
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "user"]
    del linux["uidMappings"], linux["gidMappings"]
    result = handcar("run", "-b", bundle.sh("cat /proc/self/uid_map; hostname").write(), "r1")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert rows[0].split() == ["0", "0", "4294967295"] and rows[1] == "box"


@pytest.fixture
def reachable_rootfs(rootfs_template):
    """A rootfs that container root, mapped to an unprivileged host id, can reach."""
    top = tempfile.mkdtemp(dir="/var/tmp", prefix="handcar-root-test.")
    os.chmod(top, 0o755)
    shutil.copytree(rootfs_template, f"{top}/rootfs", symlinks=True)
    yield f"{top}/rootfs"
    shutil.rmtree(top)


def test_root_with_a_user_namespace_maps_as_asked(handcar, bundle, reachable_rootfs):
    bundle.config["root"]["path"] = reachable_rootfs
    maps = [{"containerID": 0, "hostID": 300000, "size": 65536}]
    bundle.linux["uidMappings"] = maps
    bundle.linux["gidMappings"] = maps
    result = handcar("run", "-b", bundle.args("cat", "/proc/self/uid_map").write(), "r2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "300000", "65536"]


def test_root_gets_realtime_scheduling_and_io_class(handcar, bundle):
    """What the unprivileged tier sees refused (test_process_tuning.py) is done for root:
    a realtime scheduler and the realtime I/O class."""
    linux = bundle.linux
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "user"]
    del linux["uidMappings"], linux["gidMappings"]
    bundle.process["scheduler"] = {"policy": "SCHED_FIFO", "priority": 7}
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_RT", "priority": 2}
    result = handcar("run", "-b", bundle.sh("cat /proc/self/stat; ionice -p $$").write(), "rt")
    assert result.returncode == 0, result.stderr
    stat, ionice = result.stdout.splitlines()
    fields = stat.rsplit(")", 1)[1].split()
    assert (int(fields[41 - 3]), int(fields[40 - 3])) == (1, 7)     # policy, rt_priority
    assert ionice.strip() == "realtime: prio 2"


def test_root_in_a_user_namespace_is_refused_realtime_io_by_name(handcar, bundle):
    # capabilities in the container's own user namespace do not count on the host
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_RT", "priority": 2}
    result = handcar("run", "-b", bundle.args("true").write(), "rt2")
    assert result.returncode == 1
    assert "process.ioPriority: IOPRIO_CLASS_RT needs CAP_SYS_ADMIN" in result.stderr
    assert handcar("list", "-q").stdout == ""
