"""The cgroup engine on a fake cgroupfs tree (plain directories and files)."""

import os

import pytest

from rootless.runtime import cgroups
from rootless.errors import CgroupError


def make_cgroup(path, controllers="", enabled=""):
    os.makedirs(path, exist_ok=True)
    for name, text in (("cgroup.controllers", controllers), ("cgroup.subtree_control", enabled),
                       ("cgroup.procs", ""), ("cgroup.freeze", "0"),
                       ("cgroup.events", "populated 0\nfrozen 0\n")):
        with open(os.path.join(path, name), "w") as f:
            f.write(text)


@pytest.fixture
def tree(tmp_path):
    top = tmp_path / "cg"
    make_cgroup(top / "user.slice" / "u", "memory pids hugetlb")
    make_cgroup(top / "user.slice" / "u" / "session", "")
    return top


def test_cgroup2_mount_is_read_from_mountinfo(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw\n")
    assert cgroups.cgroup2_mount(str(info)) == "/sys/fs/cgroup/unified"


def test_own_cgroup(tmp_path):
    path = tmp_path / "cgroup"
    path.write_text("9:name=systemd:/\n1:cpu:/\n0::/user.slice/u/session\n")
    assert cgroups.own_cgroup(str(path)) == "/user.slice/u/session"


def test_delegated_root_is_the_highest_manageable_ancestor(tree, monkeypatch):
    manageable = {str(tree / "user.slice" / "u"), str(tree / "user.slice" / "u" / "session")}
    monkeypatch.setattr(cgroups, "_manageable", lambda d: d in manageable)
    assert cgroups.delegated_root(str(tree), "/user.slice/u/session") == str(tree / "user.slice" / "u")
    monkeypatch.setattr(cgroups, "_manageable", lambda d: False)
    assert cgroups.delegated_root(str(tree), "/user.slice/u/session") is None


def test_plan_leaf(tree):
    root = str(tree / "user.slice" / "u")
    assert cgroups.plan_leaf("", "c1", set(), root) == (root, f"{root}/handcar/c1")
    assert cgroups.plan_leaf("/my/box", "c1", {"memory"}, root) == (root, f"{root}/my/box")
    assert cgroups.plan_leaf("user.slice:handcar:c1", "c1", set(), root) == (
        root, f"{root}/user.slice/handcar-c1.scope")
    with pytest.raises(CgroupError, match="leaves your delegated cgroup"):
        cgroups.plan_leaf("/../../escape", "c1", set(), root)


def test_cgroup_manager_disabled_makes_no_leaf(tree):
    root = str(tree / "user.slice" / "u")
    assert cgroups.plan_leaf("/my/box", "c1", set(), root, enabled=False) is None
    with pytest.raises(CgroupError, match="asks for memory limits, but cgroups are disabled"):
        cgroups.plan_leaf("", "c1", {"memory"}, root, enabled=False)


def test_missing_controller_is_named_with_how_to_get_it(tree, monkeypatch):
    monkeypatch.setattr(cgroups, "v1_controllers", lambda: set())    # a unified host
    root = str(tree / "user.slice" / "u")
    with pytest.raises(CgroupError, match="the cpu controller is not available in .*Delegate=yes"):
        cgroups.plan_leaf("", "c1", {"memory", "cpu"}, root)


def test_a_controller_on_cgroup_v1_is_named_as_such(tree, monkeypatch, tmp_path):
    proc_cgroup = tmp_path / "cgroup"         # a hybrid host's /proc/self/cgroup
    proc_cgroup.write_text("9:name=systemd:/\n4:memory:/\n1:cpu,cpuacct:/\n0::/\n")
    assert cgroups.v1_controllers(str(proc_cgroup)) == {"memory", "cpu", "cpuacct"}
    monkeypatch.setattr(cgroups, "v1_controllers", lambda: {"memory", "cpu", "cpuacct"})
    root = str(tree / "user.slice" / "u")
    with pytest.raises(CgroupError, match="the cpu controller is not available in .*: this "
                                          "host has it on cgroup v1 .*cgroup v2 only"):
        cgroups.plan_leaf("", "c1", {"cpu"}, root)


def test_without_delegation(monkeypatch):
    monkeypatch.setattr(cgroups, "delegated_root", lambda: None)
    assert cgroups.plan_leaf("", "c1", set()) is None         # no limits: runs without one
    with pytest.raises(CgroupError, match="asks for memory, pids limits, but no cgroup v2 "
                                          "subtree is delegated to you"):
        cgroups.plan_leaf("", "c1", {"pids", "memory"})


def test_create_enables_controllers_on_the_way_down_and_applies(tree):
    root = str(tree / "user.slice" / "u")
    make_cgroup(f"{root}/handcar", "memory pids hugetlb")  # as the kernel fills it
    leaf = cgroups.Cgroup(f"{root}/handcar/c1")
    leaf.create(root, {"memory", "pids"})
    # every available controller, as runc enables them
    assert open(f"{root}/cgroup.subtree_control").read() == "+hugetlb +memory +pids"
    assert open(f"{root}/handcar/cgroup.subtree_control").read() == "+hugetlb +memory +pids"
    assert os.path.isdir(leaf.path)
    leaf.apply({"pids.max": "20", "io.max": ("8:0 rbps=1", "8:16 wbps=2")})
    assert open(f"{leaf.path}/pids.max").read() == "20"
    assert open(f"{leaf.path}/io.max").read() == "8:16 wbps=2"     # one write per line


def test_already_enabled_controllers_are_not_rewritten(tree):
    root = str(tree / "user.slice" / "u")
    with open(f"{root}/cgroup.subtree_control", "w") as f:
        f.write("memory pids hugetlb")
    cgroups.Cgroup(f"{root}/leaf").create(root, {"memory"})
    assert open(f"{root}/cgroup.subtree_control").read() == "memory pids hugetlb"


def test_freeze_waits_for_cgroup_events(tree, monkeypatch):
    leaf = cgroups.Cgroup(str(tree / "user.slice" / "u" / "session"))
    monkeypatch.setattr(cgroups, "FREEZE_TIMEOUT", 0.05)
    with pytest.raises(CgroupError, match="did not freeze"):
        leaf.freeze(True)                    # the fake never reports frozen
    with open(leaf.file("cgroup.events"), "w") as f:
        f.write("populated 1\nfrozen 1\n")
    leaf.freeze(True)
    assert leaf.frozen()


def test_stats_in_runcs_shape(tree):
    leaf = cgroups.Cgroup(str(tree / "user.slice" / "u" / "session"))
    files = {
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\n"
                    "nr_throttled 1\nthrottled_usec 20\n",
        "memory.current": "4096\n", "memory.max": "max\n", "memory.peak": "8192\n",
        "memory.stat": "anon 1024\nfile 2048\n", "memory.events": "max 3\noom_kill 1\n",
        "pids.current": "2\n", "pids.max": "20\n",
        "io.stat": "8:0 rbytes=100 wbytes=200 rios=1 wios=2\n",
        "hugetlb.2MB.current": "0\n", "hugetlb.2MB.max": "0\n", "hugetlb.2MB.events": "max 0\n",
    }
    for name, text in files.items():
        with open(leaf.file(name), "w") as f:
            f.write(text)
    data = cgroups.stats(leaf)
    assert data["cpu"]["usage"] == {"total": 1500000, "kernel": 500000, "user": 1000000}
    assert data["cpu"]["throttling"]["throttledPeriods"] == 1
    assert data["memory"]["usage"] == {"usage": 4096, "limit": cgroups.UNLIMITED,
                                       "failcnt": 3, "max": 8192}
    assert data["memory"]["cache"] == 2048 and data["memory"]["raw"]["anon"] == 1024
    assert data["pids"] == {"current": 2, "limit": 20}
    assert data["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 100},
        {"major": 8, "minor": 0, "op": "Write", "value": 200}]
    assert data["hugetlb"] == {"2MB": {"usage": 0, "max": 0, "failcnt": 0}}
    assert cgroups.oom_kills(leaf) == 1


def _child_exits_with_its_cgroup():
    with open("/proc/self/cgroup") as f:
        own = [line[3:].strip() for line in f if line.startswith("0::")][0]
    os.write(1, own.encode())
    os._exit(0)


def _exec_launch():
    """A launch that needs no namespaces at birth (exec's): only the cgroup is at stake."""
    from oci.spec import Spec
    from rootless.child.init import Launch
    return Launch(spec=Spec(), exec_into=True)


def test_fork_falls_back_when_clone3_cannot_place_the_child(tmp_path):
    from rootless.runtime import spawn
    pid, born, in_namespaces = spawn.fork_child(cgroups.Cgroup(str(tmp_path)),  # not a cgroup
                                               _exec_launch())
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert born is False and in_namespaces is False


@pytest.mark.skipif(cgroups.delegated_root() is None, reason="no delegated cgroup v2 subtree "
                    "here (scripts/test delegates one to the test user)")
def test_fork_is_born_in_the_cgroup(tmp_path):
    from rootless.runtime import spawn
    leaf = cgroups.Cgroup(os.path.join(cgroups.delegated_root(), "handcar", "clone3-test"))
    leaf.create(cgroups.delegated_root(), set())
    read_end, write_end = os.pipe()
    pid, born, _ = spawn.fork_child(leaf, _exec_launch())
    if pid == 0:
        os.dup2(write_end, 1)
        _child_exits_with_its_cgroup()
    os.close(write_end)
    seen = os.read(read_end, 4096).decode()
    os.waitpid(pid, 0)
    leaf.remove()
    assert born is True
    assert cgroups.cgroup2_mount() + seen == leaf.path


@pytest.mark.skipif(cgroups.delegated_root() is None, reason="no delegated cgroup v2 subtree "
                    "here (scripts/test delegates one to the test user)")
def test_remove_takes_child_cgroups_first():
    leaf = cgroups.Cgroup(os.path.join(cgroups.delegated_root(), "handcar", "nested-test"))
    leaf.create(cgroups.delegated_root(), set())
    os.makedirs(os.path.join(leaf.path, "a", "b"))
    leaf.remove()
    assert not os.path.exists(leaf.path)


def test_create_survives_a_delete_removing_the_shared_parent_meanwhile(tree, monkeypatch):
    # Another container's delete removes the empty default parent (`handcar/`) just after
    # this create made it, twice: the walk starts again instead of failing with ENOENT.
    root = str(tree / "user.slice" / "u")
    parent = os.path.join(root, cgroups.DEFAULT_PARENT)
    real_mkdir = os.mkdir
    removals = []

    def mkdir_then_lose_the_parent(path, mode=0o777):
        real_mkdir(path, mode)
        if path == parent:
            make_cgroup(path, "memory pids hugetlb")      # what the kernel gives a new cgroup
            if len(removals) < 2:
                removals.append(path)
                for name in os.listdir(path):
                    os.unlink(os.path.join(path, name))
                os.rmdir(path)

    monkeypatch.setattr(os, "mkdir", mkdir_then_lose_the_parent)
    leaf = cgroups.Cgroup(os.path.join(parent, "c1"))
    leaf.create(root, set())
    assert len(removals) == 2 and os.path.isdir(leaf.path)


def test_create_gives_up_naming_the_cgroup_when_the_parent_never_stays(tree, monkeypatch):
    root = str(tree / "user.slice" / "u")
    monkeypatch.setattr(cgroups, "_enable", lambda directory, needed: (_ for _ in ()).throw(
        cgroups._ParentRemoved()) if directory != root else None)
    with pytest.raises(CgroupError, match=r"creating cgroup .*/handcar/c1: its parent cgroup "
                                          r"was removed 20 times"):
        cgroups.Cgroup(os.path.join(root, "handcar", "c1")).create(root, set())
