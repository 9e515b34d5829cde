"""Parent <-> child messages over a SOCK_SEQPACKET socketpair: one JSON object per packet,
with file descriptors riding along as SCM_RIGHTS where a message needs them.

A child reports failure as {"type": "error", "msg": ...}; the parent's `expect` turns that
(or the child's silent death, seen as end-of-file) into a SetupError.
"""

import os
import socket

from oci import jsonio
from .errors import SetupError

MAX_MESSAGE = 65536


class Channel:
    def __init__(self, sock):
        self.sock = sock

    @classmethod
    def pair(cls):
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(parent), cls(child)

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def send(self, kind, fds=(), **fields):
        data = jsonio.dumps({"type": kind, **fields}).encode()
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.send(data)

    def receive(self, timeout=None):
        """(message, fds); message is None at end-of-file (the other side is gone)."""
        self.sock.settimeout(timeout)
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_MESSAGE, 16)
        except (socket.timeout, TimeoutError):
            raise SetupError("timed out waiting for the container's init") from None
        except ConnectionResetError:
            return None, []
        return (jsonio.loads(data) if data else None), fds

    def expect(self, kind, what, timeout=None, on_warning=None):
        """Wait for a message of `kind`; `what` describes the step for error messages."""
        while True:
            message, fds = self.receive(timeout)
            if message is None:
                raise SetupError(f"{what}: the container's process exited unexpectedly")
            if message["type"] == "warning" and on_warning:
                on_warning(message["msg"])
                continue
            if message["type"] == "error":
                for fd in fds:
                    os.close(fd)
                raise SetupError(message["msg"])
            if message["type"] != kind:
                raise SetupError(f"{what}: unexpected message {message['type']!r}")
            message["fds"] = fds
            return message
