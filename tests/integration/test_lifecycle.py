"""create/start/state/kill/delete/run/list, as runc users know them."""

import json
import os
import signal
import subprocess
import time

from harness import HANDCAR, SUBUID_RANGE, needs_subids, process_gone


def test_run_prints_and_returns_the_exit_status(handcar, bundle):
    result = handcar("run", "-b", bundle.sh("echo hello from $(hostname); exit 3").write(), "c1")
    assert result.stdout == "hello from box\n"
    assert result.returncode == 3
    assert handcar("list", "-q").stdout == ""            # run without --keep deletes


def test_lifecycle(handcar, bundle, tmp_path):
    pid_file = tmp_path / "pid"
    bundle.args("sleep", "1000")
    handcar.ok_detached("create", "--bundle", bundle.write(), "--pid-file", str(pid_file), "c1")
    state = handcar.state("c1")
    assert state["status"] == "created"
    assert state["id"] == "c1" and state["bundle"] == str(bundle.path)
    assert state["pid"] == int(pid_file.read_text())
    pid = state["pid"]
    # Waiting for start: the process is not sleep yet.
    assert "sleep" not in open(f"/proc/{pid}/cmdline").read()

    handcar.ok("start", "c1")
    assert handcar.state("c1")["status"] == "running"
    assert open(f"/proc/{pid}/cmdline").read().split("\0")[0] == "sleep"
    # Container root is the user on the host.
    status = open(f"/proc/{pid}/status").read()
    uid_line = [line for line in status.splitlines() if line.startswith("Uid:")][0]
    assert uid_line.split()[1:] == [str(os.geteuid())] * 4

    again = handcar("start", "c1")
    assert again.returncode == 1 and "already running" in again.stderr

    handcar.ok("kill", "c1", "KILL")
    assert handcar.wait_status("c1", "stopped") == "stopped"
    assert handcar.state("c1")["pid"] == 0
    handcar.ok("delete", "c1")
    assert process_gone(pid)
    gone = handcar("state", "c1")
    assert gone.returncode == 1 and gone.stderr == "handcar: container c1 does not exist\n"
    second = handcar("delete", "c1")
    assert second.returncode == 1 and "does not exist" in second.stderr


def test_kill_takes_names_with_and_without_sig_and_numbers(handcar, bundle):
    bundle.sh("trap 'echo got USR1' USR1; trap 'exit 9' TERM; while :; do sleep 0.05; done")
    path = bundle.write()
    for signal_name in ("SIGKILL", "KILL", "9"):
        handcar.ok_detached("run", "-d", "-b", path, "k")
        handcar.ok("kill", "k", signal_name)
        assert handcar.wait_status("k", "stopped") == "stopped", signal_name
        handcar.ok("delete", "k")


def test_default_kill_signal_is_term(handcar, bundle):
    bundle.sh("trap 'exit 9' TERM; while :; do sleep 0.05; done")
    handcar.ok_detached("run", "--detach", "-b", bundle.write(), "t")
    time.sleep(0.2)
    handcar.ok("kill", "t")
    assert handcar.wait_status("t", "stopped") == "stopped"


def test_delete_refuses_a_running_container_without_force(handcar, bundle):
    handcar.ok_detached("run", "-d", "-b", bundle.args("sleep", "1000").write(), "r")
    pid = handcar.state("r")["pid"]
    refused = handcar("delete", "r")
    assert refused.returncode == 1
    assert refused.stderr.startswith("handcar: cannot delete container r that is not stopped")
    handcar.ok("delete", "--force", "r")
    assert process_gone(pid)
    assert handcar("list", "-q").stdout == ""


def test_delete_force_of_an_unknown_id_succeeds_like_runc(handcar):
    assert handcar("delete", "--force", "nothing").returncode == 0


def test_delete_of_a_created_container_kills_it(handcar, bundle):
    handcar.ok_detached("create", "-b", bundle.args("true").write(), "c")
    pid = handcar.state("c")["pid"]
    handcar.ok("delete", "c")
    assert process_gone(pid)


def test_create_with_an_existing_id_fails(handcar, bundle):
    path = bundle.args("true").write()
    handcar.ok_detached("create", "-b", path, "dup")
    second = handcar("create", "-b", path, "dup")
    assert second.returncode == 1
    assert second.stderr == "handcar: container dup already exists\n"
    assert handcar.state("dup")["status"] == "created"   # the first is untouched


def test_list_table_json_and_quiet(handcar, bundle):
    path = bundle.args("sleep", "1000").write()
    handcar.ok_detached("create", "-b", path, "a")
    handcar.ok_detached("run", "-d", "-b", path, "b")
    assert handcar.ok("list", "-q").stdout.split() == ["a", "b"]
    listed = json.loads(handcar.ok("list", "--format=json").stdout)
    assert [(c["id"], c["status"]) for c in listed] == [("a", "created"), ("b", "running")]
    table = handcar.ok("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[:3] == ["a", str(listed[0]["pid"]), "created"]


def test_foreground_run_forwards_signals(handcar, bundle):
    bundle.sh("trap 'echo caught; exit 7' TERM; echo ready; while :; do sleep 0.05; done")
    proc = subprocess.Popen([HANDCAR, "--root", str(handcar.root), "run", "-b", bundle.write(),
                             "fg"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert out == "caught\n" and proc.returncode == 7


def test_foreground_run_returns_128_plus_the_signal(handcar, bundle):
    bundle.sh("echo ready; exec sleep 1000")
    proc = subprocess.Popen([HANDCAR, "--root", str(handcar.root), "run", "-b", bundle.write(),
                             "sig"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    handcar.ok("kill", "sig", "KILL")
    assert proc.wait(timeout=10) == 128 + signal.SIGKILL


def test_run_keep_leaves_a_stopped_container(handcar, bundle):
    handcar("run", "--keep", "-b", bundle.args("true").write(), "kept")
    assert handcar.state("kept")["status"] == "stopped"
    handcar.ok("delete", "kept")


def test_pid_file_is_written_for_run_detached(handcar, bundle, tmp_path):
    pid_file = tmp_path / "run.pid"
    handcar.ok_detached("run", "-d", f"--pid-file={pid_file}", "-b", bundle.args("sleep", "100").write(),
               "p")
    assert int(pid_file.read_text()) == handcar.state("p")["pid"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("run.pid")] == ["run.pid"]


@needs_subids
def test_uid_map_shows_the_subordinate_range(handcar, bundle):
    result = handcar("run", "-b", bundle.args("cat", "/proc/self/uid_map").write(), "m")
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows == [["0", str(os.geteuid()), "1"],
                    ["1", str(SUBUID_RANGE[0]), str(SUBUID_RANGE[1])]]


@needs_subids
def test_files_of_uid_1000_belong_to_the_subordinate_id(handcar, bundle, tmp_path):
    shared = bundle.bind_writable(tmp_path / "shared", "/shared")
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    result = handcar("run", "-b", bundle.sh("id -u; echo hi > /shared/file").write(), "u")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1000\n"
    assert (shared / "file").stat().st_uid == SUBUID_RANGE[0] + 999


def test_bundle_without_a_user_namespace_gets_one(handcar, bundle):
    """A plain `runc spec` bundle: no user namespace, a network namespace, sysfs."""
    linux = bundle.linux
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "user"]
    linux["namespaces"].append({"type": "network"})
    del linux["uidMappings"], linux["gidMappings"]
    for mount in bundle.config["mounts"]:
        if mount["destination"] == "/sys":
            mount.update(type="sysfs", source="sysfs", options=["nosuid", "noexec", "nodev", "ro"])
    result = handcar("run", "-b", bundle.sh("head -1 /proc/self/uid_map; ls /sys/class/net").write(),
                     "plain")
    assert result.returncode == 0, result.stderr
    first, net = result.stdout.splitlines()[0].split(), result.stdout.splitlines()[1:]
    assert first == ["0", str(os.geteuid()), "1"]
    assert net == ["lo"]                                    # its own network namespace


def test_namespaces_with_a_path_are_joined(handcar, bundle):
    """As podman does: a second container joins the first one's user and network
    namespaces by path."""
    first = bundle.args("sleep", "1000")
    first.linux["namespaces"].append({"type": "network"})
    handcar.ok_detached("run", "-d", "-b", first.write(), "first")
    pid = handcar.state("first")["pid"]
    bundle.linux["namespaces"] = [
        {"type": "user", "path": f"/proc/{pid}/ns/user"},
        {"type": "network", "path": f"/proc/{pid}/ns/net"},
        {"type": "mount"}, {"type": "pid"}, {"type": "uts"}, {"type": "ipc"}]
    del bundle.linux["uidMappings"], bundle.linux["gidMappings"]
    result = handcar("run", "-b", bundle.sh(
        "readlink /proc/self/ns/net; readlink /proc/self/ns/user; readlink /proc/self/ns/mnt"
    ).write(), "second")
    assert result.returncode == 0, result.stderr
    net, user, mnt = result.stdout.split()
    assert net == os.readlink(f"/proc/{pid}/ns/net")
    assert user == os.readlink(f"/proc/{pid}/ns/user")
    assert mnt != os.readlink(f"/proc/{pid}/ns/mnt")


def test_joining_a_missing_namespace_fails_cleanly(handcar, bundle):
    bundle.linux["namespaces"].append({"type": "network", "path": "/proc/999999999/ns/net"})
    result = handcar("run", "-b", bundle.args("true").write(), "nojoin")
    assert result.returncode == 1
    assert result.stderr.startswith("handcar: opening the network namespace /proc/999999999/ns/net")
    assert handcar("list", "-q").stdout == ""
