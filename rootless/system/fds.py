"""File descriptors a forked child must not carry into a container or a helper."""

import os

MAX_FD = 1 << 20                 # above any fd number a process here can have


def close_fds_from(first, keep):
    """Close every fd from `first` up, but those in `keep`."""
    for fd in sorted(keep):
        if fd >= first:
            os.closerange(first, fd)
            first = fd + 1
    os.closerange(first, MAX_FD)
