"""A foreground `run` or `exec`: the caller's terminal (Console), the signals it passes on,
and waiting for the process's exit status."""

import os

from rootless import log
from rootless.child import protocol
from rootless.errors import HandcarError
from rootless.runtime.processes import send_signal

FORWARDED_SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2",
                     "SIGALRM", "SIGCONT", "SIGWINCH")


class Console:
    """Where a process's pty master goes: the caller's --console-socket, or (foreground
    run/exec) a socketpair whose other end we keep, to proxy the caller's terminal."""

    def __init__(self, child_end=None, our_end=None):
        self.child_end = child_end
        self.our_end = our_end
        self.master = None

    @classmethod
    def open(cls, process, console_socket, foreground):
        if not process.terminal:
            if console_socket:
                raise HandcarError("--console-socket is only for a process with "
                                   "terminal: true")
            return cls()
        from rootless.runtime import terminal
        if console_socket:
            return cls(terminal.connect_console_socket(console_socket))
        if foreground:
            import socket
            ours, theirs = socket.socketpair()
            return cls(theirs, ours)
        raise HandcarError("process.terminal is true: a detached container needs "
                           "--console-socket to hand its pty to (or set terminal to false)")

    @property
    def child_fd(self):
        return self.child_end.fileno() if self.child_end else -1

    def child_started(self):
        """After the child has its end: drop ours of it, and take the master if it's ours."""
        if self.child_end:
            self.child_end.close()
            self.child_end = None
        if self.our_end:
            from rootless.runtime import terminal
            self.master = terminal.receive_master(self.our_end)
            self.our_end.close()
            self.our_end = None

    def close(self):
        for end in (self.child_end, self.our_end):
            if end:
                end.close()
        if self.master is not None:
            os.close(self.master)


class ForwardingSignals:
    """While in the `with` block, pass the signals a user sends us on to the process
    (SIGWINCH stays with the terminal proxy when we have one)."""

    def __init__(self, pid, console):
        import _signal   # the signal module's C half: no enum to import
        self.signal = _signal.signal
        proxied = console.our_end or console.master is not None
        self.numbers = [getattr(_signal, name) for name in FORWARDED_SIGNALS
                        if not (proxied and name == "SIGWINCH")]
        self.pid = pid
        self.previous = {}

    def __enter__(self):
        for number in self.numbers:
            self.previous[number] = self.signal(
                number, lambda num, _frame: send_signal(self.pid, num))
        return self

    def __exit__(self, *_exc):
        for number, handler in self.previous.items():
            self.signal(number, handler)


def wait_foreground(pid, channel, console):
    """Wait for the process, proxying its terminal if we hold one; its exit status, 128+N
    when killed by signal N. Reports an exec failure the child sends on the channel."""
    if console.master is not None:
        from rootless.runtime import terminal
        wait_status = terminal.proxy(console.master, lambda block=False: _reap(pid, block))
        console.master = None
    else:
        wait_status = _reap(pid, block=True)
    try:
        message = channel.receive(0)
    except BlockingIOError:
        message = None
    channel.close()
    if message and message["type"] == protocol.ERROR:
        log.error(message["msg"])
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def _reap(pid, block):
    """Reap children (we are a subreaper) until `pid` exits: its wait status, or None
    when not blocking and it still runs."""
    while True:
        try:
            child, wait_status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            raise HandcarError(f"process {pid} is not ours to wait for") from None
        if child == pid:
            return wait_status
        if child == 0:
            return None
