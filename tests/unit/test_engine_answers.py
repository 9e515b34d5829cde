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
    hold, release = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(release)
        os.read(hold, 1)                                # alive until its start time is read
        os._exit(0)
    start_time = st.process_start_time(pid)
    os.close(release)
    os.waitpid(pid, 0)                                  # reaped: the pid is gone
    os.close(hold)
    assert start_time is not None
    record = store.reserve("gone", str(tmp_path), {})
    record.save(status=st.CREATED, pid=pid, start_time=start_time)
    record.unlock()
    return store


def test_the_status_of_a_container_whose_init_died_is_stopped(stopped):
    assert stopped.open("gone", lock=False).status() == st.STOPPED


def test_an_init_that_was_gone_when_it_was_recorded_is_not_alive(stopped):
    record = stopped.open("gone")
    record.save(start_time=None)                        # process_start_time of a zombie
    assert record.status() == st.STOPPED
    record.unlock()


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
