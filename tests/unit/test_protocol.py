"""The parent/child protocol (rootless/child/protocol.py) over a real socketpair, in-process:
errors keep their kind and errno on the way, the parent's loop (runtime/spawn.py's) turns
them into the exception the child raised, and exit statuses come from the kind."""

import errno
import os

import pytest

from rootless.child import protocol
from rootless.errors import (CommandNotFound, CommandNotRunnable, HandcarError, SetupError,
                             UsageError, exit_status, with_docker_statuses)
from rootless.system.channel import Channel


def in_child(body):
    """Run `body(channel)` in a forked child under run_child; the parent's end."""
    parent_end, child_end = Channel.pair()
    pid = os.fork()
    if pid == 0:
        parent_end.close()
        protocol.run_child(child_end, body)
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
