"""/proc/self/mountinfo: the mounts a process sees, in the order they were made (proc(5))."""

import os


def mounts(path="/proc/self/mountinfo"):
    """(mount point, root within its filesystem, filesystem type) of every mount."""
    for line in _lines(path):
        fields = line.split()
        separator = fields.index(b"-", 6)         # after the optional fields
        yield unescape(fields[4]), unescape(fields[3]), fields[separator + 1].decode()


def mount_points(path="/proc/self/mountinfo"):
    """The mount point of every mount (a point appears once for each mount stacked on it):
    the fifth field, without splitting the rest of the line."""
    for line in _lines(path):
        yield unescape(line.split(b" ", 5)[4])


def _lines(path):
    # In one go, not through a buffered file: the kernel says its files are 1 KiB blocks,
    # and a container's ~60 mounts then take six reads.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).splitlines()


def unescape(field):
    """A path as the kernel writes it (bytes, with a space, tab, newline or backslash as
    \\ooo in octal), as os names paths."""
    if b"\\" not in field:
        return os.fsdecode(field)
    head, *escaped = field.split(b"\\")
    return os.fsdecode(head + b"".join(bytes((int(part[:3], 8),)) + part[3:]
                                       for part in escaped))
