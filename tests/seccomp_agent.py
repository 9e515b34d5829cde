"""A tiny seccomp agent for the tests: it receives a notify fd with the container process
state, as runtime-spec says a runtime sends them (SCM_RIGHTS, the state's `fds` naming the
fd), and answers each notification with what `decide` returns."""

import fcntl
import json
import os
import select
import socket
import struct
import threading

# ioctls on a seccomp notify fd (linux/seccomp.h): _IOWR('!', 0, struct seccomp_notif)
# and _IOWR('!', 1, struct seccomp_notif_resp)
NOTIF_RECV = 0xC0502100
NOTIF_SEND = 0xC0182101
NOTIF_SIZE = 80           # id u64, pid u32, flags u32, seccomp_data (nr, arch, ip, args[6])
FLAG_CONTINUE = 1         # SECCOMP_USER_NOTIF_FLAG_CONTINUE: run the system call after all


def receive(sock):
    """(container process state, notify fd) from a runtime's message on `sock`."""
    data, fds, _flags, _addr = socket.recv_fds(sock, 65536, 4)
    state = json.loads(data)
    return state, fds[state["fds"].index("seccompFd")]


def answer_one(notify_fd, decide):
    """Receive one notification and answer it: decide(syscall number) returns
    (value, -errno) to fake the result, or None to let the system call run."""
    request = bytearray(NOTIF_SIZE)
    fcntl.ioctl(notify_fd, NOTIF_RECV, request)
    notification_id, _pid, _flags, syscall = struct.unpack_from("QIIi", request)
    result = decide(syscall)
    value, error, flags = (0, 0, FLAG_CONTINUE) if result is None else (*result, 0)
    fcntl.ioctl(notify_fd, NOTIF_SEND, struct.pack("QqiI", notification_id, value, error,
                                                   flags))


class Agent:
    """Listens on `path`; serves the first runtime that connects from a thread. `state`
    and `answered` tell the test what happened."""

    def __init__(self, path, decide):
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.decide = decide
        self.state = None
        self.answered = 0
        self.error = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            self.server.settimeout(30)
            conn, _ = self.server.accept()
            with conn:
                self.state, notify_fd = receive(conn)
            try:
                self._answer(notify_fd)
            finally:
                os.close(notify_fd)
        except Exception as err:  # noqa: BLE001 - reported to the test by stop()
            self.error = err

    def _answer(self, notify_fd):
        poller = select.poll()
        poller.register(notify_fd, select.POLLIN)
        while not self.stopping.is_set():
            events = poller.poll(100)
            if any(mask & select.POLLHUP for _fd, mask in events):
                return                        # every filtered process has exited
            if events:
                answer_one(notify_fd, self.decide)
                self.answered += 1

    def stop(self):
        self.stopping.set()
        self.thread.join(10)
        self.server.close()
        if self.error:
            raise self.error
