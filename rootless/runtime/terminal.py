"""Terminals, the parent's half: the two ways a container's pty master reaches a user.

The child (rootless/child/terminal.py) opens the pty inside the container and sends the
master over a unix socket with SCM_RIGHTS, as runc does. That socket is either the
caller's --console-socket (conmon, podman -t) or, for a foreground `run`/`exec`, one end
of a socketpair whose other end we hold: we then proxy the caller's terminal to the master
(raw mode, window size, SIGWINCH).
"""

import errno
import fcntl
import os
import select
import signal
import socket
import termios
import tty

from rootless.errors import HandcarError

def connect_console_socket(path):
    """A connected socket fd for --console-socket (kept across fork for the child)."""
    from rootless.system.channel import connect_unix
    return connect_unix(path, "connecting to the console socket")


def receive_master(sock, timeout=60):
    sock.settimeout(timeout)
    try:
        _data, fds, _flags, _addr = socket.recv_fds(sock, 1024, 1)
    except (TimeoutError, OSError) as err:
        raise HandcarError(f"receiving the container's pty: {err}") from None
    if not fds:
        raise HandcarError("the container exited before sending its pty")
    return fds[0]


def _copy_window_size(master):
    try:
        size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def proxy(master, child_exited):
    """Copy the caller's stdin to the pty and its output to stdout until the child exits
    (child_exited() returns a wait status or None) and the pty has no more output.
    Returns the wait status."""
    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
        _copy_window_size(master)
        previous_winch = signal.signal(signal.SIGWINCH, lambda *_: _copy_window_size(master))
    readers = [master, 0]
    status = None
    try:
        while True:
            if status is None:
                status = child_exited()
            ready, _, _ = select.select(readers, [], [], 0.05)
            if master in ready:
                data = _read(master)
                if not data:
                    break                 # every holder of the slave has closed it
                _write_all(1, data)
            elif status is not None:
                break                     # exited, and nothing more to read
            if 0 in ready:
                data = _read(0)
                if data:
                    _write_all(master, data)
                else:
                    readers.remove(0)     # stdin ended: pass an end-of-file on
                    _write_all(master, b"\x04")
        while status is None:
            status = child_exited(block=True)
        return status
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
            signal.signal(signal.SIGWINCH, previous_winch)
        os.close(master)


def _read(fd):
    try:
        return os.read(fd, 65536)
    except OSError as err:
        if err.errno == errno.EIO:        # the pty's slave side is gone
            return b""
        raise


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]
