"""What engines read from handcar's answers when they race a container's exit (issue 20).

containerd's runc shim calls `kill --all ID 9` after every exit and takes a failing kill
whose words contain "container not running" (or "does not exist") for "already gone";
`delete` of a container that is gone must say "does not exist" (or succeed with --force).
These run the verbs' functions on a state root with a container whose init has exited:
no namespaces needed."""

import os

import pytest

from rootless.errors import NotFound, WrongStatus
from rootless.runtime import lifecycle
from rootless.runtime import store as st


@pytest.fixture
def stopped(tmp_path):
    """A store holding container `gone`, created, whose init has since exited."""
    store = st.Store(str(tmp_path / "state"))
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    start_time = st.process_start_time(pid)
    os.waitpid(pid, 0)                                  # reaped: the pid is gone
    record = store.reserve("gone", str(tmp_path), {})
    record.save(status=st.CREATED, pid=pid, start_time=start_time)
    record.unlock()
    return store


def test_the_status_of_a_container_whose_init_died_is_stopped(stopped):
    assert stopped.open("gone", lock=False).status() == st.STOPPED


def test_kill_all_of_a_stopped_container_succeeds_as_runcs(stopped):
    lifecycle.kill(stopped, "gone", 9, all_processes=True)


def test_a_plain_kill_of_a_stopped_container_says_container_not_running(stopped):
    with pytest.raises(WrongStatus, match="container not running"):
        lifecycle.kill(stopped, "gone", 9)


def test_delete_of_a_stopped_container_then_again(stopped):
    lifecycle.delete(stopped, "gone")
    with pytest.raises(NotFound, match="container gone does not exist"):
        lifecycle.delete(stopped, "gone")
    lifecycle.delete(stopped, "gone", force=True)      # --force: nothing to do is fine


def test_kill_of_a_container_that_does_not_exist(stopped):
    with pytest.raises(NotFound, match="does not exist"):
        lifecycle.kill(stopped, "never", 9, all_processes=True)
