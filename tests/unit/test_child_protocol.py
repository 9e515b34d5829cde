"""The parent/child protocol (rootless/child/protocol.py) over a real socketpair, in-process:
errors keep their kind and errno on the way, the parent's loop (runtime/spawn.py's) turns
them into the exception the child raised, and exit statuses come from the kind."""

import errno
import os

import pytest

from rootless.child import protocol
from rootless.errors import (CommandNotFound, CommandNotRunnable, HandcarError, SetupError,
                             UsageError, exit_status, with_docker_statuses)
from rootless.system.channel import Channel, run_child


def in_child(body):
    """Run `body(channel)` in a forked child under run_child; the parent's end."""
    parent_end, child_end = Channel.pair()
    pid = os.fork()
    if pid == 0:
        parent_end.close()
        run_child(child_end, body)
    child_end.close()
    return parent_end, pid


@pytest.mark.parametrize("raised", [SetupError("mounting /proc: busy"),
                                    CommandNotFound('exec: "x": executable file not found'),
                                    CommandNotRunnable('exec: "/x": permission denied')])
def test_an_error_in_the_child_reaches_the_parent_as_the_same_kind(raised):
    channel, pid = in_child(lambda ch: (_ for _ in ()).throw(raised))
    message = channel.receive(5)
    os.waitpid(pid, 0)
    assert message["type"] == protocol.ERROR
    err = protocol.error_from(message)
    assert type(err) is type(raised) and str(err) == str(raised)


def test_an_os_error_keeps_its_errno_and_becomes_a_setup_error():
    def body(channel):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/nope")
    channel, pid = in_child(body)
    err = protocol.error_from(channel.receive(5))
    os.waitpid(pid, 0)
    assert isinstance(err, SetupError) and err.errno == errno.ENOENT
    assert str(err) == "/nope: No such file or directory"


def test_expect_raises_the_childs_error_and_names_a_silent_death():
    def body(channel):
        channel.send(protocol.PREPARE)
        raise CommandNotFound('exec: "sh": executable file not found in $PATH')
    channel, pid = in_child(body)
    assert channel.expect(protocol.PREPARE, "waiting")["type"] == protocol.PREPARE
    with pytest.raises(CommandNotFound):
        channel.expect(protocol.READY, "waiting")
    os.waitpid(pid, 0)
    channel, pid = in_child(lambda ch: os._exit(3))
    with pytest.raises(SetupError, match="starting: the container's process exited"):
        channel.expect(protocol.READY, "starting")
    os.waitpid(pid, 0)


def test_the_child_never_returns_into_the_caller():
    channel, pid = in_child(lambda ch: None)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0       # os._exit(0), not a second CLI
    assert channel.receive(5) is None


def test_exit_statuses_come_from_the_kind_and_the_mode():
    runc = [exit_status(e) for e in (HandcarError("x"), UsageError("x"),
                                     CommandNotFound("x"), CommandNotRunnable("x"))]
    assert runc == [1, 2, 1, 1]
    docker = []
    for err in (HandcarError("x"), CommandNotFound("x"), CommandNotRunnable("x"),
                OSError(errno.EIO, "I/O error")):
        with pytest.raises(type(err)) as caught, with_docker_statuses():
            raise err
        docker.append(exit_status(caught.value))
    assert docker == [125, 127, 126, 125]
    # the words alone no longer decide: a SetupError that merely mentions them is 125
    with pytest.raises(SetupError) as caught, with_docker_statuses():
        raise SetupError('exec: "x": executable file not found in $PATH')
    assert exit_status(caught.value) == 125


# --- the parent's loop (runtime/spawn.answer), against a scripted child in a thread ----

def scripted_child(script):
    """A channel whose other end a thread drives: each step is a message to send, or
    ("expect", kind) to wait for; the thread's log of what it received."""
    import threading
    parent_end, child_end = Channel.pair()
    received = []

    def play():
        for step in script:
            if step[0] == "expect":
                message = child_end.receive(5)
                received.append(message and message["type"])
                if message is None or message["type"] != step[1]:
                    break
            elif step[0] == "close":
                break
            else:
                child_end.send(step[0], **(step[1] if len(step) > 1 else {}))
        child_end.close()

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    return parent_end, received, thread


def test_the_loop_prepares_names_init_runs_the_hooks_and_waits_for_ready(capsys):
    from rootless.runtime import spawn
    channel, received, thread = scripted_child([
        (protocol.PREPARE,), ("expect", protocol.PREPARED),
        (protocol.HOOKS,),                          # asks before the intermediate names init
        (protocol.INIT, {"pid": 4242, "fds": []}), ("expect", protocol.HOOKS_DONE),
        (protocol.WARNING, {"msg": "ignoring capability CAP_X"}), (protocol.READY,),
        ("expect", protocol.GO)])
    calls = []

    def prepare(pid):
        calls.append(("prepare", pid))
        channel.send(protocol.PREPARED)
    children = spawn.Children(99, 0)
    init = spawn.answer(channel, children, prepare,
                        on_hooks=lambda pid: calls.append(("hooks", pid)) or "STATE",
                        on_init=lambda pid, fds: calls.append(("init", pid, fds)),
                        reap=lambda pid: calls.append(("reap", pid)))
    channel.send(protocol.GO)
    thread.join(5)
    assert init == 4242 and (children.intermediate, children.init) == (0, 4242)
    # the hooks run once init is known, after the intermediate is reaped
    assert calls == [("prepare", 99), ("init", 4242, []), ("reap", 99), ("hooks", 4242)]
    assert received == [protocol.PREPARED, protocol.HOOKS_DONE, protocol.GO]
    assert "ignoring capability CAP_X" in capsys.readouterr().err


def test_the_loop_raises_the_childs_error_with_its_kind():
    from rootless.runtime import spawn
    channel, _, thread = scripted_child([
        (protocol.INIT, {"pid": 7}),
        (protocol.ERROR, {"msg": 'exec: "x": executable file not found in $PATH',
                          "errno": None, "kind": "CommandNotFound"})])
    children = spawn.Children(5, 0)
    with pytest.raises(CommandNotFound, match="executable file not found"):
        spawn.answer(channel, children, prepare=None, reap=lambda pid: None)
    thread.join(5)
    assert children.init == 7                       # for the caller to kill


def test_the_loop_names_an_early_death_and_a_silent_child():
    from rootless.runtime import spawn
    channel, _, thread = scripted_child([(protocol.INIT, {"pid": 7}), ("close",)])
    with pytest.raises(SetupError, match="exited before it was ready"):
        spawn.answer(channel, spawn.Children(5, 0), prepare=None, reap=lambda pid: None)
    thread.join(5)
    channel, _, thread = scripted_child([("expect", protocol.GO)])
    with pytest.raises(SetupError, match="timed out waiting for the container's init"):
        spawn.answer(channel, spawn.Children(5, 0), prepare=None, timeout=0.2)
    channel.close()
    thread.join(5)


def test_a_root_asked_for_before_init_is_named_is_mounted_once_it_is():
    from rootless.runtime import spawn
    channel, received, thread = scripted_child([
        (protocol.PREPARE,), ("expect", protocol.PREPARED),
        (protocol.MOUNT_ROOT, {"data": "lowerdir=l/a,upperdir=upper,workdir=work"}),
        (protocol.INIT, {"pid": 4242, "fds": []}), ("expect", protocol.ROOT_MOUNTED),
        (protocol.READY,), ("expect", protocol.GO)])
    calls = []

    def prepare(pid):
        channel.send(protocol.PREPARED)
    init = spawn.answer(channel, spawn.Children(99, 0), prepare, reap=lambda pid: None,
                        on_mount_root=lambda pid, data: calls.append((pid, data)))
    channel.send(protocol.GO)
    thread.join(5)
    assert init == 4242
    assert calls == [(4242, "lowerdir=l/a,upperdir=upper,workdir=work")]
    assert received == [protocol.PREPARED, protocol.ROOT_MOUNTED, protocol.GO]


def test_a_root_mount_nobody_arranged_for_is_an_error():
    from rootless.runtime import spawn
    channel, _, thread = scripted_child([
        (protocol.INIT, {"pid": 7}), (protocol.MOUNT_ROOT, {"data": "lowerdir=x"}),
        ("expect", protocol.ROOT_MOUNTED)])
    with pytest.raises(SetupError, match="asked for its root to be mounted"):
        spawn.answer(channel, spawn.Children(5, 0), prepare=None, reap=lambda pid: None)
    channel.close()
    thread.join(5)
