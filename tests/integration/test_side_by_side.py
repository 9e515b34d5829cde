"""Containers started side by side never trip over each other (issue 17): engines and
parallel CI jobs run many at once. Each loop is its own thread running handcar commands
one after another; the loops share one state root, one bundle and the delegated cgroup
subtree (the `handcar/` parent every container's leaf is made in, and that the last
delete removes)."""

import os
import threading

from harness import process_gone
from rootless.runtime.cgroups import DEFAULT_PARENT, delegated_root

LOOPS = 4
RUNS = 25


def side_by_side(work):
    """Run work(loop) for each loop in its own thread; the failures they met."""
    failures = []

    def loop(number):
        try:
            work(number)
        except AssertionError as err:
            failures.append(str(err))

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(LOOPS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def assert_nothing_left(handcar):
    assert handcar("list", "-q").stdout == ""
    root = delegated_root()
    if root:
        parent = os.path.join(root, DEFAULT_PARENT)
        leaves = os.listdir(parent) if os.path.isdir(parent) else []
        assert not [leaf for leaf in leaves if os.path.isdir(os.path.join(parent, leaf))]


def test_runs_side_by_side_all_succeed_and_leave_nothing(handcar, bundle):
    path = bundle.args("true").write()

    def work(loop):
        for run in range(RUNS):
            result = handcar("run", "-b", path, f"side-{loop}-{run}", timeout=60)
            assert result.returncode == 0, f"run {loop}-{run}: {result.stderr.strip()}"

    failures = side_by_side(work)
    assert not failures, f"{len(failures)} of {LOOPS * RUNS} runs failed: {failures[:5]}"
    assert_nothing_left(handcar)


def test_create_exec_delete_mixes_side_by_side(handcar, bundle):
    path = bundle.args("sleep", "1000").write()
    pids = []

    def work(loop):
        for run in range(RUNS // 5):
            name = f"mix-{loop}-{run}"
            result = handcar.detached("create", "-b", path, name, timeout=60)
            assert result.returncode == 0, f"create {name}: {result.stderr.strip()}"
            pids.append(handcar.state(name)["pid"])
            result = handcar("start", name, timeout=60)
            assert result.returncode == 0, f"start {name}: {result.stderr.strip()}"
            result = handcar("exec", name, "true", timeout=60)
            assert result.returncode == 0, f"exec {name}: {result.stderr.strip()}"
            result = handcar("delete", "--force", name, timeout=60)
            assert result.returncode == 0, f"delete {name}: {result.stderr.strip()}"

    failures = side_by_side(work)
    assert not failures, failures[:5]
    assert_nothing_left(handcar)
    assert all(process_gone(pid) for pid in pids)
