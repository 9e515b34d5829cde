"""Parent <-> child messages over a SOCK_SEQPACKET socketpair: one JSON object per packet.

The messages themselves are declared in rootless/child/protocol.py. A process reports
failure as an "error" message (errors.error_fields); `expect` (and the parent's message
loop in runtime/spawn.py) raise the exception it names, or a SetupError for the other
side's silent death (end of file).
"""

import os
import sys

import _socket   # socket's C half: socket.py imports enum, a start-up cost create pays

from oci import jsonio
from rootless.errors import HandcarError, SetupError, describe, error_fields, error_from_fields

MAX_MESSAGE = 65536
MAX_FDS = 4                  # fds one message may carry


class Channel:
    def __init__(self, sock):
        self.sock = sock

    @classmethod
    def pair(cls):
        parent, child = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        return cls(parent), cls(child)

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def send(self, message_type, fds=(), **fields):
        """A message; `fds` travel with it (SCM_RIGHTS) and arrive as message["fds"]."""
        data = jsonio.dumps({"type": message_type, **fields}).encode()
        if fds:
            # no array module: it imports collections.abc, out of reach of a child that
            # has joined a container's mount namespace
            packed = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
            self.sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, packed)])
        else:
            self.sock.send(data)

    def receive(self, timeout=None):
        """The next message, or None at end-of-file (the other side is gone)."""
        self.sock.settimeout(timeout)
        try:
            data, ancillary, flags, _ = self.sock.recvmsg(MAX_MESSAGE,
                                                          _socket.CMSG_SPACE(4 * MAX_FDS))
        except TimeoutError:
            raise SetupError("timed out waiting for the container's init") from None
        except ConnectionResetError:
            return None
        if flags & _socket.MSG_TRUNC:
            raise SetupError(f"a message between handcar's processes exceeded {MAX_MESSAGE} "
                             "bytes")
        if not data:
            return None
        message = jsonio.loads(data, explain=False)
        fds = []
        for level, kind, cmsg_data in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                fds += [int.from_bytes(cmsg_data[i:i + 4], sys.byteorder, signed=True)
                        for i in range(0, len(cmsg_data) - 3, 4)]
        for fd in fds:
            os.set_inheritable(fd, False)
        if fds:
            message["fds"] = fds
        return message

    def peer_gone(self):
        """Whether the other side has closed its end (or died), without waiting."""
        import select    # the child imported it with subprocess, before leaving the host
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return any(events & (select.POLLHUP | select.POLLERR) for _, events in poller.poll(0))

    def expect(self, kind, what, timeout=None, known=()):
        """Wait for a message of `kind`; `what` describes the step for error messages."""
        message = self.receive(timeout)
        if message is None:
            raise SetupError(f"{what}: the container's process exited unexpectedly")
        if message["type"] == "error":
            raise error_from_fields(message, known)
        if message["type"] != kind:
            raise SetupError(f"{what}: unexpected message {message['type']!r}")
        return message


def connect_unix(path, what):
    """A stream socket connected to the unix socket `path` (--console-socket, a seccomp
    agent), whose fd a child inherits; `what` names it in the error."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise HandcarError(f"{what} {path}: {err.strerror}") from None
    return sock


def run_child(channel, body, *args):
    """Run a child's body; never return: any error goes to the parent over the channel
    (or to stderr when the channel is gone), then the process leaves with os._exit."""
    code = 0
    try:
        body(channel, *args)
    except BaseException as err:  # noqa: BLE001 - everything must reach the parent
        code = 1
        try:
            channel.send("error", **error_fields(err))
        except BaseException:  # noqa: BLE001 - the channel is gone: stderr is all that is left
            os.write(2, f"handcar: {describe(err)}\n".encode())
    finally:
        os._exit(code)


def fork_with_channel(body, *args, close=()):
    """Fork a child that runs body(its end of a new channel, *args) under run_child: (its
    pid, our end). `close`: what else of ours the child must not keep."""
    parent_end, child_end = Channel.pair()
    sys.stdout.flush()                    # nothing buffered is written twice
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        parent_end.close()
        for item in close:
            item.close()
        run_child(child_end, body, *args)
    child_end.close()
    return pid, parent_end


# --- what a forked child keeps -----------------------------------------------------------

MAX_FD = 1 << 20                 # above any fd number a process here can have


def close_fds_from(first, keep):
    """Close every fd from `first` up, but those in `keep`: nothing of the parent's (a
    container's lock, the caller's stray fds) may reach a container or a helper."""
    for fd in sorted(keep):
        if fd >= first:
            os.closerange(first, fd)
            first = fd + 1
    os.closerange(first, MAX_FD)
