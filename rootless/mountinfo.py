"""/proc/self/mountinfo: the mounts a process sees, in the order they were made (proc(5))."""

import os


def mounts(path="/proc/self/mountinfo"):
    """(mount point, root within its filesystem, filesystem type) of every mount."""
    with open(path, "rb") as f:
        for line in f:
            fields = line.split()
            separator = fields.index(b"-", 6)         # after the optional fields
            yield unescape(fields[4]), unescape(fields[3]), fields[separator + 1].decode()


def unescape(field):
    """A path as the kernel writes it (bytes, with a space, tab, newline or backslash as
    \\ooo in octal), as os names paths."""
    if b"\\" not in field:
        return os.fsdecode(field)
    head, *escaped = field.split(b"\\")
    return os.fsdecode(head + b"".join(bytes((int(part[:3], 8),)) + part[3:]
                                       for part in escaped))
