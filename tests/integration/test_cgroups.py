"""Containers in the cgroup v2 subtree delegated to the test user (scripts/test makes it).

This host's cgroup2 may lack memory/pids/cpu (a hybrid host has only hugetlb there): what
needs them is checked both ways here (enforced where present, refused by name where not),
and for real in the QEMU tier (scripts/vm-test).
"""

import json
import os
import time

import pytest

from rootless.runtime import cgroups

ROOT = cgroups.delegated_root()
pytestmark = pytest.mark.skipif(ROOT is None, reason="no cgroup v2 subtree is delegated to "
                                "this user (scripts/test delegates one when run as root)")
AVAILABLE = cgroups.available_controllers(ROOT) if ROOT else set()


def leaf_of(pid):
    """The host path of the cgroup `pid` is in."""
    with open(f"/proc/{pid}/cgroup") as f:
        own = [line[3:].strip() for line in f if line.startswith("0::")][0]
    return os.path.normpath(cgroups.cgroup2_mount() + own)


@pytest.fixture
def running(handcar, bundle):
    bundle.sh("sleep 1000 & sleep 1000 & wait")
    handcar.ok_detached("run", "-d", "-b", bundle.write(), "cg")
    return handcar.state("cg")["pid"]


def test_container_gets_its_own_leaf_and_sees_itself_at_the_root(handcar, bundle, running):
    assert leaf_of(running) == os.path.join(ROOT, "handcar", "cg")
    result = handcar("exec", "cg", "cat", "/proc/self/cgroup")
    assert result.stdout.splitlines()[-1] == "0::/"        # its own cgroup namespace
    # exec'd processes join the container's cgroup
    assert len(cgroups.Cgroup(leaf_of(running)).pids()) == 3


def test_cgroup_manager_disabled_runs_the_container_where_handcar_is(handcar, bundle):
    # crun's flag, which podman passes for --cgroups=disabled
    handcar.ok_detached("--cgroup-manager", "disabled", "run", "-d", "-b",
                        bundle.args("sleep", "100").write(), "nocg")
    with open("/proc/self/cgroup") as f:
        own = [line for line in f if line.startswith("0::")]
    with open(f"/proc/{handcar.state('nocg')['pid']}/cgroup") as f:
        assert [line for line in f if line.startswith("0::")] == own
    assert not os.path.exists(os.path.join(ROOT, "handcar", "nocg"))
    handcar.ok("delete", "--force", "nocg")


def test_cgroups_path_is_taken_under_the_delegated_root(handcar, bundle):
    bundle.linux["cgroupsPath"] = "/custom/place"
    handcar.ok_detached("run", "-d", "-b", bundle.args("sleep", "100").write(), "cp")
    assert leaf_of(handcar.state("cp")["pid"]) == os.path.join(ROOT, "custom", "place")
    handcar.ok("delete", "--force", "cp")
    assert not os.path.exists(os.path.join(ROOT, "custom", "place"))
    os.rmdir(os.path.join(ROOT, "custom"))        # the parent it named stays, as with runc


def test_a_cgroup_in_use_is_refused_and_left_alone(handcar, bundle, running):
    # another container's cgroup, named by cgroupsPath: create must not join it, nor, in
    # failing, remove it (delete removes the cgroup a record names, and kills what is in it)
    leaf = leaf_of(running)
    bundle.linux["cgroupsPath"] = os.path.relpath(leaf, ROOT)
    result = handcar("create", "-b", bundle.args("true").write(), "intruder")
    assert (result.returncode, result.stderr) == (
        1, f"handcar: cgroup {leaf} is in use by other processes\n")
    assert handcar("list", "-q").stdout.split() == ["cg"]
    assert handcar.state("cg")["status"] == "running"
    assert len(cgroups.Cgroup(leaf).pids()) == 3


def test_pause_and_resume(handcar, running):
    leaf = cgroups.Cgroup(leaf_of(running))
    handcar.ok("pause", "cg")
    assert handcar.state("cg")["status"] == "paused"
    assert "frozen 1" in leaf.read("cgroup.events").splitlines()
    refused = handcar("pause", "cg")
    assert refused.returncode == 1 and "paused" in refused.stderr
    handcar.ok("resume", "cg")
    assert handcar.state("cg")["status"] == "running"
    assert "frozen 0" in leaf.read("cgroup.events").splitlines()


def test_exec_into_a_paused_container_needs_ignore_paused(handcar, running):
    handcar.ok("pause", "cg")
    result = handcar("exec", "cg", "true")
    assert result.returncode == 1 and "--ignore-paused" in result.stderr
    handcar.ok("resume", "cg")


def test_kill_all_empties_the_cgroup_and_delete_removes_it(handcar, running):
    leaf = cgroups.Cgroup(leaf_of(running))
    assert len(leaf.pids()) == 3
    handcar.ok("kill", "--all", "cg", "KILL")
    deadline = time.monotonic() + 5
    while leaf.pids() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert leaf.pids() == []
    handcar.ok("delete", "cg")
    assert not os.path.exists(leaf.path)


def test_ps_lists_the_cgroups_processes(handcar, running):
    pids = json.loads(handcar.ok("ps", "-f", "json", "cg").stdout)
    assert sorted(pids) == sorted(cgroups.Cgroup(leaf_of(running)).pids())
    assert len(pids) == 3


def test_events_stats(handcar, running):
    event = json.loads(handcar.ok("events", "--stats", "cg").stdout)
    assert event["type"] == "stats" and event["id"] == "cg"
    assert "cpu" in event["data"]
    if "hugetlb" in AVAILABLE:
        assert "2MB" in event["data"]["hugetlb"]


def test_events_stream_until_the_container_stops(handcar, bundle):
    handcar.ok_detached("run", "-d", "-b", bundle.args("sleep", "1").write(), "ev")
    result = handcar("events", "--interval", "200ms", "ev", timeout=20)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0 and len(lines) >= 2
    assert all(line["type"] == "stats" and line["id"] == "ev" for line in lines)


def test_update_pids_limit(handcar, running):
    result = handcar("update", "--pids-limit", "30", "cg")
    if "pids" in AVAILABLE:
        assert result.returncode == 0, result.stderr
        assert cgroups.Cgroup(leaf_of(running)).read("pids.max").strip() == "30"
    else:
        assert result.returncode == 1
        assert "the pids controller is not available" in result.stderr


def test_update_from_a_resources_file(handcar, running, tmp_path):
    if "hugetlb" not in AVAILABLE:
        pytest.skip("this host's cgroup2 has no hugetlb controller to update")
    doc = tmp_path / "resources.json"
    doc.write_text(json.dumps({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]}))
    handcar.ok("update", "-r", str(doc), "cg")
    assert cgroups.Cgroup(leaf_of(running)).read("hugetlb.2MB.max").strip() == "2097152"


def test_hugetlb_limit_from_the_config(handcar, bundle):
    if "hugetlb" not in AVAILABLE:
        pytest.skip("this host's cgroup2 has no hugetlb controller")
    bundle.linux["resources"] = {"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}
    handcar.ok_detached("run", "-d", "-b", bundle.args("sleep", "100").write(), "huge")
    leaf = cgroups.Cgroup(leaf_of(handcar.state("huge")["pid"]))
    assert leaf.read("hugetlb.2MB.max").strip() == "0"


def test_a_limit_the_host_cannot_enforce_is_refused(handcar, bundle):
    missing = sorted({"memory", "pids", "cpu"} - AVAILABLE)
    if not missing:
        pytest.skip("this host delegates memory, pids and cpu: the VM tier covers limits")
    controller = missing[0]
    bundle.linux["resources"] = {"memory": {"limit": 33554432}, "pids": {"limit": 20},
                                 "cpu": {"shares": 512}}
    result = handcar("create", "-b", bundle.args("true").write(), "limited")
    assert result.returncode == 1
    assert f"the {controller} controller is not available" in result.stderr
    assert handcar("list", "-q").stdout == ""
    assert not os.path.exists(os.path.join(ROOT, "handcar", "limited"))


def test_a_limit_that_cannot_be_written_leaves_no_cgroup(handcar, bundle):
    if "hugetlb" not in AVAILABLE:
        pytest.skip("this host's cgroup2 has no hugetlb controller")
    bundle.linux["resources"] = {"unified": {"hugetlb.2MB.max": "not-a-number"}}
    result = handcar("create", "-b", bundle.args("true").write(), "badvalue")
    assert result.returncode == 1
    assert result.stderr.startswith("handcar: writing 'not-a-number' to ")
    assert "hugetlb.2MB.max: Invalid argument" in result.stderr
    assert not os.path.exists(os.path.join(ROOT, "handcar", "badvalue"))
    assert handcar("list", "-q").stdout == ""


def test_run_whose_start_fails_leaves_no_cgroup(handcar, bundle):
    bundle.config["hooks"] = {"startContainer": [{"path": "/bin/false"}]}
    result = handcar("run", "-b", bundle.args("true").write(), "nostart")
    assert result.returncode == 1 and "startContainer hook" in result.stderr
    assert not os.path.exists(os.path.join(ROOT, "handcar", "nostart"))
    assert handcar("list", "-q").stdout == ""


def test_delete_removes_cgroups_made_inside_the_container(handcar, running):
    leaf = leaf_of(running)
    os.mkdir(os.path.join(leaf, "made-inside"))     # as a nested runtime or systemd would
    handcar.ok("delete", "--force", "cg")
    assert not os.path.exists(leaf)
