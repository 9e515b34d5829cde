"""Faults: handcar killed in the middle of create, creates racing each other, many runs in
a row. Nothing may be left that `delete --force` cannot remove, and nothing at all after
it: no process, mount, cgroup or state."""

import json
import os
import subprocess
import time

import pytest

from harness import BUSYBOX, HANDCAR, process_gone
from rootless.runtime.cgroups import delegated_root

STAGES = ("reserved", "spawning", "prepare", "init", "ready", "created")


def processes():
    """{pid: ppid} of every process."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    found[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    return found


def descendants(pid):
    parents = processes()
    found, grew = set(), True
    while grew:
        grew = False
        for child, parent in parents.items():
            if (parent == pid or parent in found) and child not in found:
                found.add(child)
                grew = True
    return found


def mount_points():
    with open("/proc/self/mountinfo") as f:
        return sorted(line.split()[4] for line in f)


def wait_until(condition, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.02)


class Create:
    """`handcar create` in the background, stopped at `stage` (HANDCAR_STOP_AT) if given."""

    def __init__(self, handcar, bundle_path, container_id, stage=None):
        self.handcar, self.id = handcar, container_id
        env = dict(os.environ)
        if stage:
            env["HANDCAR_STOP_AT"] = stage
        self.err_path = handcar.root.parent / f"create-{container_id}.err"
        with open(handcar.root.parent / "container.out", "a") as out, \
                open(self.err_path, "w") as err:
            self.process = subprocess.Popen(
                [HANDCAR, "--root", str(handcar.root), "create", "-b", bundle_path,
                 container_id], stdout=out, stderr=err, env=env)

    def stopped(self):
        with open(f"/proc/{self.process.pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "T"

    def wait_stopped(self):
        wait_until(lambda: self.process.poll() is not None or self.stopped(),
                   what="handcar to stop")
        assert self.process.poll() is None, f"create ended instead: {self.stderr()}"

    def wait(self):
        return self.process.wait(30)

    def stderr(self):
        return self.err_path.read_text()

    def state_file(self):
        try:
            with open(self.handcar.root / self.id / "state.json") as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def cgroup_pids(self):
        path = self.state_file().get("cgroup")
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                return {int(pid) for pid in f.read().split()}
        except (TypeError, FileNotFoundError):
            return set()


def kill_and_clean_up(handcar, create, mounts_before):
    """SIGKILL the stopped create: its processes must die by themselves, then delete
    --force must leave nothing."""
    cgroup = create.state_file().get("cgroup")
    doomed = descendants(create.process.pid) | create.cgroup_pids()
    create.process.kill()
    create.wait()
    wait_until(lambda: all(process_gone(pid) for pid in doomed) and not create.cgroup_pids(),
               what="the container's processes to die with handcar")
    status = handcar.state(create.id)["status"]
    assert status == "stopped", status
    handcar.ok("delete", "--force", create.id)
    assert not (handcar.root / create.id).exists()
    assert cgroup is None or not os.path.exists(cgroup)
    assert handcar("list", "-q").stdout == ""
    assert mount_points() == mounts_before


@pytest.mark.parametrize("stage", STAGES)
def test_sigkill_at_each_stage_of_create(handcar, bundle, stage):
    mounts_before = mount_points()
    create = Create(handcar, bundle.args("sleep", "1000").write(), "killed", stage)
    create.wait_stopped()
    if stage in ("init", "ready", "created"):
        assert create.cgroup_pids() or descendants(create.process.pid), "no container yet?"
    kill_and_clean_up(handcar, create, mounts_before)


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_sigkill_while_a_create_hook_sleeps(handcar, bundle, tmp_path, kind):
    """createRuntime hooks run in handcar, createContainer hooks in init: either way the
    hook dies with handcar (a parent-death signal; init watches the channel)."""
    started = tmp_path / "hook-started"
    bundle.config["hooks"] = {kind: [{        # both run before pivot_root: host paths
        "path": BUSYBOX, "args": ["sh", "-c", f"echo $$ > {started}; exec sleep 1000"]}]}
    mounts_before = mount_points()
    create = Create(handcar, bundle.args("sleep", "1000").write(), "hooked")
    wait_until(lambda: started.exists() and started.read_text().strip(),
               what="the hook to start")
    hook_pid = int(started.read_text())
    assert create.process.poll() is None
    create.process.send_signal(19)        # SIGSTOP, so that what it started is counted
    create.wait_stopped()
    if kind == "createRuntime":
        assert hook_pid in descendants(create.process.pid)
    kill_and_clean_up(handcar, create, mounts_before)


def test_ten_concurrent_creates_all_succeed(handcar, bundle):
    path = bundle.args("sleep", "1000").write()
    ids = [f"c{i}" for i in range(10)]
    creates = [Create(handcar, path, container_id) for container_id in ids]
    for create in creates:
        assert create.wait() == 0, create.stderr()
    assert handcar("list", "-q").stdout.split() == sorted(ids)
    assert {handcar.state(container_id)["status"] for container_id in ids} == {"created"}


def test_two_concurrent_creates_of_one_id_succeed_once(handcar, bundle):
    path = bundle.args("sleep", "1000").write()
    for attempt in range(3):
        container_id = f"same{attempt}"
        creates = [Create(handcar, path, container_id) for _ in range(2)]
        codes = [create.wait() for create in creates]
        assert sorted(codes) == [0, 1], [create.stderr() for create in creates]
        loser = creates[codes.index(1)].stderr()
        assert loser == f"handcar: container {container_id} already exists\n"
        assert handcar.state(container_id)["status"] == "created"     # the winner is intact
        handcar.ok("start", container_id)
        assert handcar.wait_status(container_id, "running") == "running"


def test_a_hundred_runs_leak_nothing(handcar, bundle):
    """A hundred run/delete cycles: no fd of ours, no process, no state, no cgroup left."""
    path = bundle.args("true").write()
    own_fds = len(os.listdir("/proc/self/fd"))
    before = set(processes())
    started = time.monotonic()
    for i in range(100):
        result = handcar("run", "-b", path, f"r{i}")
        assert result.returncode == 0, result.stderr
    elapsed = time.monotonic() - started
    print(f"100 runs of true: {elapsed:.1f}s")
    assert elapsed < 60
    assert handcar("list", "-q").stdout == ""
    assert os.listdir(handcar.root) == []
    assert len(os.listdir("/proc/self/fd")) == own_fds
    new = [pid for pid in set(processes()) - before if not process_gone(pid)]
    with_our_root = []
    for pid in new:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if str(handcar.root).encode() in f.read():
                    with_our_root.append(pid)
        except FileNotFoundError:
            pass
    assert with_our_root == []
    parent = os.path.join(delegated_root() or "/nonexistent", "handcar")
    if os.path.isdir(parent):                  # removed when its last container goes
        assert [name for name in os.listdir(parent) if name.startswith("r")] == []


def test_concurrent_runs_and_deletes_do_not_trip_over_each_other(handcar, bundle):
    """Containers coming and going at once: the last one out removes the shared parent
    cgroup while others are being created in it."""
    path = bundle.args("true").write()
    for round_ in range(3):
        runs = [subprocess.Popen([HANDCAR, "--root", str(handcar.root), "run", "-b", path,
                                  f"p{round_}-{i}"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for i in range(8)]
        for run in runs:
            out, err = run.communicate(timeout=60)
            assert run.returncode == 0, err
    assert handcar("list", "-q").stdout == ""


def test_a_foreground_run_holds_only_stdio_and_its_channel(handcar, bundle, tmp_path):
    """What handcar keeps open while it waits for a container: nothing of the state
    directory (its lock, exec.fifo), no leftover of create."""
    out = bundle.bind_writable(tmp_path / "out", "/out")
    path = bundle.sh("touch /out/started; sleep 10").write()
    with open(tmp_path / "run.out", "w") as sink:
        run = subprocess.Popen([HANDCAR, "--root", str(handcar.root), "run", "-b", path, "fg"],
                               stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
    try:
        wait_until(lambda: (out / "started").exists(), what="the container to start")
        fds = {int(fd): os.readlink(f"/proc/{run.pid}/fd/{fd}")
               for fd in os.listdir(f"/proc/{run.pid}/fd")}
    finally:
        run.kill()
        run.wait()
    assert sorted(fds)[:3] == [0, 1, 2] and len(fds) == 4, fds
    assert fds[max(fds)].startswith("socket:"), fds


def children_of(pid):
    return [child for child, parent in processes().items() if parent == pid]


@pytest.mark.parametrize("time_namespace", [False, True])
def test_init_is_born_in_its_namespaces_unless_an_intermediate_is_needed(
        handcar, bundle, time_namespace):
    """Where clone3 can make every namespace with init, init is create's own child and
    PID 1 from birth; a time namespace (its offsets are written before a process is in
    it) needs the intermediate, which has forked init and exited by the "init" stage."""
    if time_namespace:
        bundle.linux["namespaces"].append({"type": "time"})
    mounts_before = mount_points()
    create = Create(handcar, bundle.args("sleep", "1000").write(), "born", "init")
    create.wait_stopped()
    children = children_of(create.process.pid)
    if time_namespace:
        assert children == [] and create.cgroup_pids(), "no intermediate, or no init?"
    else:
        assert len(children) == 1, children
        with open(f"/proc/{children[0]}/status") as f:
            ns_pids = next(line for line in f if line.startswith("NSpid:")).split()[1:]
        assert ns_pids == [str(children[0]), "1"]
    kill_and_clean_up(handcar, create, mounts_before)
