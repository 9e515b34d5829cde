"""--systemd-cgroup against a mock of systemd's user manager (systemd_mock.py) on a private
dbus-daemon: this host has no systemd. The mock makes scopes under the test user's
delegated cgroup, as a user manager with Delegate=yes would."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from rootless.runtime import cgroups

ROOT = cgroups.delegated_root()
DBUS_DAEMON = shutil.which("dbus-daemon") or "/usr/bin/dbus-daemon"
MOCK = os.path.join(os.path.dirname(__file__), "systemd_mock.py")
pytestmark = [
    pytest.mark.skipif(ROOT is None, reason="no cgroup v2 subtree is delegated to this user "
                       "(scripts/test delegates one when run as root)"),
    pytest.mark.skipif(not os.path.exists(DBUS_DAEMON), reason="dbus-daemon is not "
                       "installed (scripts/test installs it as root)"),
]
AVAILABLE = cgroups.available_controllers(ROOT) if ROOT else set()
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""
NO_BUS = {key: value for key, value in os.environ.items()
          if key not in ("DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR")}


class Systemd:
    """A private bus (its socket is `runtime_dir`/bus, as in $XDG_RUNTIME_DIR) with the
    mock manager on it."""

    def __init__(self, fail=None):
        self.runtime_dir = tempfile.mkdtemp(prefix="handcar-bus-")   # short: a socket path
        self.log = os.path.join(self.runtime_dir, "calls.log")
        config = os.path.join(self.runtime_dir, "bus.conf")
        with open(config, "w") as f:
            f.write(BUS_CONFIG.format(socket=os.path.join(self.runtime_dir, "bus")))
        self.daemon = subprocess.Popen([DBUS_DAEMON, f"--config-file={config}", "--nofork",
                                        "--print-address"], stdout=subprocess.PIPE, text=True)
        self.address = self.daemon.stdout.readline().strip()
        self.mock = subprocess.Popen([sys.executable, MOCK, self.address, ROOT, self.log]
                                     + (["--fail", fail] if fail else []),
                                     stdout=subprocess.PIPE, text=True)
        assert self.mock.stdout.readline().strip() == "ready"
        self.env = dict(NO_BUS, DBUS_SESSION_BUS_ADDRESS=self.address)

    def calls(self, method=None):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            calls = [json.loads(line) for line in f]
        return [call["args"] for call in calls if method in (None, call["method"])]

    def stop(self):
        for process in (self.mock, self.daemon):
            process.kill()
            process.wait()
            process.stdout.close()
        shutil.rmtree(self.runtime_dir)


@pytest.fixture
def start_systemd():
    started = []

    def start(fail=None):
        started.append(Systemd(fail))
        return started[-1]
    yield start
    for systemd in started:
        systemd.stop()


@pytest.fixture
def systemd(start_systemd):
    return start_systemd()


def leaf_of(pid):
    return cgroups.process_cgroup(pid)


def scope_path(unit, slice_path="user.slice"):
    return os.path.join(ROOT, slice_path, unit)


def properties(call):
    return {name: value for name, (_signature, value) in call[2]}


def wait_empty(cgroup):
    deadline = time.monotonic() + 5
    while cgroup.pids() and time.monotonic() < deadline:
        time.sleep(0.02)
    return cgroup.pids()


def test_container_lands_in_its_scope_with_its_limits(handcar, bundle, systemd):
    bundle.linux["cgroupsPath"] = "user.slice:handcar:sd1"
    resources = {}
    if "hugetlb" in AVAILABLE:
        resources["hugepageLimits"] = [{"pageSize": "2MB", "limit": 0}]
    if "pids" in AVAILABLE:
        resources["pids"] = {"limit": 40}
    bundle.linux["resources"] = resources
    bundle.sh("sleep 1000 & sleep 1000 & wait")
    result = handcar.ok_detached("--systemd-cgroup", "run", "-d", "-b", bundle.write(), "sd1",
                                 env=systemd.env)
    assert result.stderr == ""                              # no fallback warning
    pid = handcar.state("sd1")["pid"]
    scope = cgroups.Cgroup(scope_path("handcar-sd1.scope"))
    assert leaf_of(pid) == scope.path
    (call,) = systemd.calls("StartTransientUnit")
    assert call[0] == "handcar-sd1.scope"
    asked = properties(call)
    assert asked["Slice"] == "user.slice" and asked["Delegate"] is True
    assert asked["Description"] == "handcar container sd1"
    assert len(asked["PIDs"]) == 1
    if "hugetlb" in AVAILABLE:
        assert scope.read("hugetlb.2MB.max").strip() == "0"
    if "pids" in AVAILABLE:
        assert scope.read("pids.max").strip() == "40" and asked["TasksMax"] == 40
    # exec joins the scope; the container sees itself at the root of its cgroup namespace
    result = handcar("exec", "sd1", "cat", "/proc/self/cgroup")
    assert result.stdout.splitlines()[-1] == "0::/"
    assert len(scope.pids()) == 3
    event = json.loads(handcar.ok("events", "--stats", "sd1").stdout)
    assert event["type"] == "stats" and "cpu" in event["data"]


def test_pause_resume_kill_all_and_delete_go_through_the_scope(handcar, bundle, systemd):
    bundle.linux["cgroupsPath"] = "user-handcar.slice:box:sd2"      # a nested slice
    bundle.sh("sleep 1000 & sleep 1000 & wait")
    handcar.ok_detached("--cgroup-manager", "systemd", "run", "-d", "-b", bundle.write(),
                        "sd2", env=systemd.env)
    scope = cgroups.Cgroup(scope_path("box-sd2.scope", "user.slice/user-handcar.slice"))
    assert leaf_of(handcar.state("sd2")["pid"]) == scope.path
    handcar.ok("pause", "sd2")
    assert handcar.state("sd2")["status"] == "paused"
    assert "frozen 1" in scope.read("cgroup.events").splitlines()
    handcar.ok("resume", "sd2")
    assert "frozen 0" in scope.read("cgroup.events").splitlines()
    assert len(scope.pids()) == 3
    handcar.ok("kill", "--all", "sd2", "KILL")
    assert wait_empty(scope) == []
    handcar.ok("delete", "sd2", env=systemd.env)
    assert systemd.calls("StopUnit") == [["box-sd2.scope", "replace"]]
    assert not os.path.exists(scope.path)
    assert handcar("list", "-q").stdout == ""


def test_exec_that_may_not_join_the_scope_itself_asks_systemd(handcar, bundle, systemd):
    handcar.ok_detached("--systemd-cgroup", "run", "-d", "-b",
                        bundle.args("sleep", "100").write(), "sdx", env=systemd.env)
    scope = cgroups.Cgroup(scope_path("handcar-sdx.scope"))
    # as for a caller in a login session's scope under real systemd: only systemd may
    procs = scope.file("cgroup.procs")
    mode = os.stat(procs).st_mode
    os.chmod(procs, 0o444)
    try:
        result = handcar("exec", "sdx", "cat", "/proc/self/cgroup", env=systemd.env)
    finally:
        os.chmod(procs, mode)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "0::/"          # in the scope, not beside it
    (call,) = systemd.calls("AttachProcessesToUnit")
    assert call[:2] == ["handcar-sdx.scope", ""]


def test_the_bus_is_found_in_xdg_runtime_dir_and_a_default_scope_is_named(handcar, bundle,
                                                                         systemd):
    env = dict(NO_BUS, XDG_RUNTIME_DIR=systemd.runtime_dir)
    handcar.ok_detached("--systemd-cgroup", "run", "-d", "-b",
                        bundle.args("sleep", "100").write(), "sd3", env=env)
    assert leaf_of(handcar.state("sd3")["pid"]) == scope_path("handcar-sd3.scope")
    handcar.ok("delete", "--force", "sd3", env=env)
    assert not os.path.exists(scope_path("handcar-sd3.scope"))


def test_without_a_bus_the_cgroup_is_made_directly_with_a_warning(handcar, bundle):
    bundle.linux["cgroupsPath"] = "user.slice:handcar:fb"
    result = handcar.ok_detached("--systemd-cgroup", "run", "-d", "-b",
                                 bundle.args("sleep", "100").write(), "fb", env=NO_BUS)
    assert result.stderr == ("handcar: warning: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS,"
                             " $XDG_RUNTIME_DIR/bus) to reach systemd with; making the "
                             "container's cgroup directly in your delegated subtree, as "
                             "user.slice/handcar-fb.scope\n")
    leaf = scope_path("handcar-fb.scope")
    assert leaf_of(handcar.state("fb")["pid"]) == leaf
    handcar.ok("pause", "fb")
    handcar.ok("resume", "fb")
    handcar.ok("delete", "--force", "fb", env=NO_BUS)
    assert not os.path.exists(leaf)


def test_a_bad_systemd_cgroups_path_is_refused(handcar, bundle, systemd):
    bundle.linux["cgroupsPath"] = "/not/a/slice"
    result = handcar("--systemd-cgroup", "create", "-b", bundle.args("true").write(), "bad",
                     env=systemd.env)
    assert result.returncode == 1
    assert result.stderr == ("handcar: linux.cgroupsPath '/not/a/slice': systemd cgroups need "
                             "the form slice:prefix:name (e.g. user.slice:handcar:ID)\n")
    assert systemd.calls() == [] and handcar("list", "-q").stdout == ""


@pytest.mark.parametrize("fail, why, cleaned_up", [
    # refused: systemd made nothing, and is asked to stop nothing
    ("start", "org.freedesktop.DBus.Error.AccessDenied: the mock was told to refuse", []),
    # a failed job may leave a failed unit: stopped, and systemd told to forget it
    ("job", "the job failed", [["handcar-sdf.scope"]]),
])
def test_a_manager_that_fails_leaves_nothing_behind(handcar, bundle, start_systemd, fail, why,
                                                    cleaned_up):
    systemd = start_systemd(fail)
    ours = cgroups.Cgroup(leaf_of(os.getpid()))
    before = set(ours.pids())
    result = handcar("--systemd-cgroup", "create", "-b", bundle.args("true").write(), "sdf",
                     env=systemd.env)
    assert result.returncode == 1
    assert result.stderr == f"handcar: systemd: starting handcar-sdf.scope: {why}\n"
    assert handcar("list", "-q").stdout == ""
    assert not os.path.exists(scope_path("handcar-sdf.scope"))
    deadline = time.monotonic() + 5                  # the killed child may still be exiting
    while not set(ours.pids()) <= before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert set(ours.pids()) <= before                # no process left behind
    assert systemd.calls("ResetFailedUnit") == cleaned_up
    assert [call[:1] for call in systemd.calls("StopUnit")] == cleaned_up


def test_a_failed_scope_of_the_same_name_is_reset_first(handcar, bundle, start_systemd):
    systemd = start_systemd("handcar-sdr.scope")
    handcar.ok_detached("--systemd-cgroup", "run", "-d", "-b",
                        bundle.args("sleep", "100").write(), "sdr", env=systemd.env)
    assert leaf_of(handcar.state("sdr")["pid"]) == scope_path("handcar-sdr.scope")
    assert systemd.calls("ResetFailedUnit") == [["handcar-sdr.scope"]]
    assert len(systemd.calls("StartTransientUnit")) == 2


def test_a_scope_name_in_use_is_refused_and_left_alone(handcar, bundle, systemd):
    bundle.linux["cgroupsPath"] = "user.slice:handcar:same"
    handcar.ok_detached("--systemd-cgroup", "run", "-d", "-b",
                        bundle.args("sleep", "100").write(), "first", env=systemd.env)
    result = handcar("--systemd-cgroup", "create", "-b", bundle.write(), "second",
                     env=systemd.env)
    assert result.returncode == 1
    assert result.stderr == ("handcar: systemd: starting handcar-same.scope: org.freedesktop."
                             "systemd1.UnitExists: Unit handcar-same.scope already exists.\n")
    assert handcar("list", "-q").stdout == "first\n"
    assert systemd.calls("StopUnit") == []                 # the first one's scope is not ours
    assert leaf_of(handcar.state("first")["pid"]) == scope_path("handcar-same.scope")


def test_update_tells_systemd_the_limits_it_has_properties_for(handcar, bundle, systemd):
    bundle.linux["cgroupsPath"] = "user.slice:handcar:sdu"
    handcar.ok_detached("--systemd-cgroup", "run", "-d", "-b",
                        bundle.args("sleep", "100").write(), "sdu", env=systemd.env)
    scope = cgroups.Cgroup(scope_path("handcar-sdu.scope"))
    result = handcar("update", "--pids-limit", "30", "sdu", env=systemd.env)
    if "pids" in AVAILABLE:
        assert result.returncode == 0, result.stderr
        assert scope.read("pids.max").strip() == "30"
        (call,) = systemd.calls("SetUnitProperties")
        assert call[0] == "handcar-sdu.scope" and call[2] == [["TasksMax", ["t", 30]]]
    else:
        assert result.returncode == 1
        assert "the pids controller is not available in " + scope.path in result.stderr
        assert systemd.calls("SetUnitProperties") == []


def test_update_writes_limits_systemd_has_no_property_for_into_the_scope(handcar, bundle,
                                                                       systemd, tmp_path):
    if "hugetlb" not in AVAILABLE:
        pytest.skip("this host's cgroup2 has no hugetlb controller to update")
    bundle.linux["cgroupsPath"] = "user.slice:handcar:sdh"
    handcar.ok_detached("--systemd-cgroup", "run", "-d", "-b",
                        bundle.args("sleep", "100").write(), "sdh", env=systemd.env)
    doc = tmp_path / "resources.json"
    doc.write_text(json.dumps({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]}))
    handcar.ok("update", "-r", str(doc), "sdh", env=systemd.env)
    scope = cgroups.Cgroup(scope_path("handcar-sdh.scope"))
    assert scope.read("hugetlb.2MB.max").strip() == "2097152"
    assert systemd.calls("SetUnitProperties") == []        # nothing systemd would keep


def test_set_unit_properties_over_the_bus(handcar, bundle, systemd, monkeypatch):
    from rootless.runtime import systemd as systemd_client
    from rootless.errors import CgroupError
    handcar.ok_detached("--systemd-cgroup", "run", "-d", "-b",
                        bundle.args("sleep", "100").write(), "sdp", env=systemd.env)
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", systemd.address)
    manager = systemd_client.connect("unused")
    try:
        manager.set_properties("handcar-sdp.scope", {"pids.max": "30", "memory.max": "max",
                                                     "cpu.max": "50000 100000"})
        with pytest.raises(CgroupError, match=r"^systemd: updating gone.scope: "
                                              r"org.freedesktop.systemd1.NoSuchUnit: "):
            manager.set_properties("gone.scope", {"pids.max": "30"})
    finally:
        manager.close()
    call = systemd.calls("SetUnitProperties")[0]
    assert call == ["handcar-sdp.scope", True, [["MemoryMax", ["t", 2**64 - 1]],
                                                ["TasksMax", ["t", 30]],
                                                ["CPUQuotaPerSecUSec", ["t", 500000]]]]
