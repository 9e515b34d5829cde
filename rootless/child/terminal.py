"""Terminals, the child's half: a pty opened inside the container (its own devpts
instance), its slave made the process's controlling terminal and stdio, its master sent to
the parent's side (rootless/runtime/terminal.py) over a unix socket with SCM_RIGHTS."""

import fcntl
import os
import socket
import struct
import termios

_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431


def open_pty():
    """(master, slave) fds of a new pty from the devpts behind /dev/ptmx."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0" * 4))[0]
    slave = os.open(f"/dev/pts/{number}", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    return master, slave


def set_window_size(fd, rows, columns):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def attach(console_fd, size, owner):
    """Give this process a pty: its master goes to `console_fd`, its slave becomes the
    controlling terminal and fds 0-2. `owner` is (uid, gid) for the slave."""
    master, slave = open_pty()
    if size:
        set_window_size(slave, *size)
    os.fchown(slave, *owner)
    sock = socket.socket(fileno=console_fd)
    try:
        socket.send_fds(sock, [b"/dev/ptmx"], [master])
    finally:
        sock.close()
        os.close(master)
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)
