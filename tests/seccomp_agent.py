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
    """Listens on `path`, each runtime that connects served from a thread of its own:
    `states` and `answered` tell the test what happened."""

    def __init__(self, path, decide):
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.server.settimeout(0.1)
        self.decide = decide
        self.states = []
        self.answered = 0
        self.errors = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                state, notify_fd = receive(conn)
            self.states.append(state)
            thread = threading.Thread(target=self._answer, args=(notify_fd,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _answer(self, notify_fd):
        try:
            poller = select.poll()
            poller.register(notify_fd, select.POLLIN)
            while not self.stopping.is_set():
                events = poller.poll(100)
                if any(mask & select.POLLHUP for _fd, mask in events):
                    return                    # every filtered process has exited
                if events:
                    answer_one(notify_fd, self.decide)
                    self.answered += 1
        except Exception as err:  # noqa: BLE001 - reported to the test by stop()
            self.errors.append(err)
        finally:
            os.close(notify_fd)

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(10)
        self.server.close()
        if self.errors:
            raise self.errors[0]
