"""The one thing handcar reads in an ELF file: the program interpreter (PT_INTERP) that
a dynamically linked program names, e.g. /lib64/ld-linux-x86-64.so.2; a static program
names none."""

import os

PT_INTERP = 3
MAX_INTERPRETER = 4096


def interpreter(path):
    """The interpreter `path` names, None for a static ELF program or a file that is not
    ELF (a script, say). OSError when it cannot be read."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _interpreter(fd)
    finally:
        os.close(fd)


def _interpreter(fd):
    header = os.pread(fd, 64, 0)
    if len(header) < 52 or header[:4] != b"\x7fELF" or header[4] not in (1, 2):
        return None
    wide = header[4] == 2                          # ELFCLASS64
    order = "little" if header[5] == 1 else "big"

    def number(data, offset, size):
        return int.from_bytes(data[offset:offset + size], order)

    if wide:
        table, entry_size, count = number(header, 32, 8), number(header, 54, 2), \
            number(header, 56, 2)
    else:
        table, entry_size, count = number(header, 28, 4), number(header, 42, 2), \
            number(header, 44, 2)
    entries = os.pread(fd, entry_size * count, table)
    for index in range(count):
        entry = entries[index * entry_size:(index + 1) * entry_size]
        if len(entry) < (56 if wide else 32) or number(entry, 0, 4) != PT_INTERP:
            continue
        offset, size = (number(entry, 8, 8), number(entry, 32, 8)) if wide else \
            (number(entry, 4, 4), number(entry, 16, 4))
        name = os.pread(fd, min(size, MAX_INTERPRETER), offset)
        return os.fsdecode(name.split(b"\0", 1)[0])
    return None


def is_static(path):
    """Whether `path` is an ELF program that names no interpreter (runs anywhere)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, 4, 0) == b"\x7fELF" and _interpreter(fd) is None
    finally:
        os.close(fd)
