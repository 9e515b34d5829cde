"""Mount options as config.json spells them, parsed into flags, propagation and data.

The flag values are Linux's mount(2) constants; this module only interprets the spec's
option strings (and lists them for the features document).
"""

from .record import Record

RDONLY, NOSUID, NODEV, NOEXEC, SYNCHRONOUS, REMOUNT, MANDLOCK, DIRSYNC = (
    0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80)
NOSYMFOLLOW, NOATIME, NODIRATIME, BIND, REC, SILENT = (
    0x100, 0x400, 0x800, 0x1000, 0x4000, 0x8000)
UNBINDABLE, PRIVATE, SLAVE, SHARED, RELATIME, I_VERSION, STRICTATIME, LAZYTIME = (
    0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x800000, 0x1000000, 0x2000000)

ATIME_FLAGS = NOATIME | RELATIME | STRICTATIME

# option -> (clear?, flag)
FLAGS = {
    "defaults": (False, 0),
    "ro": (False, RDONLY), "rw": (True, RDONLY),
    "nosuid": (False, NOSUID), "suid": (True, NOSUID),
    "nodev": (False, NODEV), "dev": (True, NODEV),
    "noexec": (False, NOEXEC), "exec": (True, NOEXEC),
    "sync": (False, SYNCHRONOUS), "async": (True, SYNCHRONOUS),
    "dirsync": (False, DIRSYNC),
    "remount": (False, REMOUNT),
    "mand": (False, MANDLOCK), "nomand": (True, MANDLOCK),
    "noatime": (False, NOATIME), "atime": (True, NOATIME),
    "nodiratime": (False, NODIRATIME), "diratime": (True, NODIRATIME),
    "relatime": (False, RELATIME), "norelatime": (True, RELATIME),
    "strictatime": (False, STRICTATIME), "nostrictatime": (True, STRICTATIME),
    "lazytime": (False, LAZYTIME), "nolazytime": (True, LAZYTIME),
    "silent": (False, SILENT), "loud": (True, SILENT),
    "iversion": (False, I_VERSION), "noiversion": (True, I_VERSION),
    "nosymfollow": (False, NOSYMFOLLOW), "symfollow": (True, NOSYMFOLLOW),
    "bind": (False, BIND), "rbind": (False, BIND | REC),
}

PROPAGATION = {
    "private": PRIVATE, "rprivate": PRIVATE | REC,
    "shared": SHARED, "rshared": SHARED | REC,
    "slave": SLAVE, "rslave": SLAVE | REC,
    "unbindable": UNBINDABLE, "runbindable": UNBINDABLE | REC,
}


# The recursive options: mount_setattr(2) with AT_RECURSIVE (Linux 5.12) sets or clears
# these MOUNT_ATTR_* bits on a mount and every mount below it.
ATTR_RDONLY, ATTR_NOSUID, ATTR_NODEV, ATTR_NOEXEC = 0x1, 0x2, 0x4, 0x8
ATTR__ATIME, ATTR_RELATIME, ATTR_NOATIME, ATTR_STRICTATIME = 0x70, 0x0, 0x10, 0x20
ATTR_NODIRATIME, ATTR_IDMAP, ATTR_NOSYMFOLLOW = 0x80, 0x100000, 0x200000

# option -> (clear?, attribute)
RECURSIVE = {
    "rro": (False, ATTR_RDONLY), "rrw": (True, ATTR_RDONLY),
    "rnosuid": (False, ATTR_NOSUID), "rsuid": (True, ATTR_NOSUID),
    "rnodev": (False, ATTR_NODEV), "rdev": (True, ATTR_NODEV),
    "rnoexec": (False, ATTR_NOEXEC), "rexec": (True, ATTR_NOEXEC),
    "rnodiratime": (False, ATTR_NODIRATIME), "rdiratime": (True, ATTR_NODIRATIME),
    "rnosymfollow": (False, ATTR_NOSYMFOLLOW), "rsymfollow": (True, ATTR_NOSYMFOLLOW),
}
# The access-time mode is one value (the kernel takes it with ATTR__ATIME cleared): the
# option -> the mode it sets. atime, nostrictatime: the kernel's default, relatime;
# norelatime: neither relatime nor noatime, so strictatime.
RECURSIVE_ATIME = {
    "rrelatime": ATTR_RELATIME, "ratime": ATTR_RELATIME, "rnostrictatime": ATTR_RELATIME,
    "rnoatime": ATTR_NOATIME, "rstrictatime": ATTR_STRICTATIME,
    "rnorelatime": ATTR_STRICTATIME,
}
# Id-mapped mounts (mounts[].uidMappings): recognized, to be refused by name.
IDMAP = ("idmap", "ridmap")

# runc's and crun's extensions, which podman writes: tmpcopyup fills a tmpfs with what the
# image has at its destination (podman asks for it on --tmpfs and --read-only's tmpfs).
COPY_UP = {"tmpcopyup": True, "notmpcopyup": False}


class ParsedOptions(Record):
    FIELDS = {
        "flags": 0,  # flags to set
        "cleared": 0,  # flags the options explicitly clear (rw, suid, dev, exec, ...)
        "propagation": (),
        "data": "",  # filesystem-specific options, comma-joined
        "copy_up": False,  # tmpcopyup
        "recursive_set": 0,  # MOUNT_ATTR_* bits for mount_setattr(AT_RECURSIVE)
        "recursive_clear": 0,
        "idmap": "",  # "idmap" or "ridmap" when asked for
    }


    @property
    def is_bind(self):
        return bool(self.flags & BIND)

    @property
    def recursive(self):
        """Whether any recursive option was given (rro, rnosuid, ...)."""
        return bool(self.recursive_set or self.recursive_clear)


def parse_options(options):
    flags = cleared = rec_set = rec_clear = 0
    propagation, data = [], []
    copy_up = False
    idmap = ""
    for option in options:
        if option in RECURSIVE:
            clear, attr = RECURSIVE[option]
            rec_set, rec_clear = (rec_set & ~attr, rec_clear | attr) if clear else \
                (rec_set | attr, rec_clear & ~attr)
        elif option in RECURSIVE_ATIME:
            rec_set = (rec_set & ~ATTR__ATIME) | RECURSIVE_ATIME[option]
            rec_clear |= ATTR__ATIME
        elif option in IDMAP:
            idmap = option
        elif option in COPY_UP:
            copy_up = COPY_UP[option]
        elif option in FLAGS:
            clear, flag = FLAGS[option]
            if clear:
                flags &= ~flag
                cleared |= flag
            else:
                flags |= flag
                cleared &= ~flag
        elif option in PROPAGATION:
            propagation.append(PROPAGATION[option])
        else:
            data.append(option)
    return ParsedOptions(flags, cleared, tuple(propagation), ",".join(data), copy_up,
                         rec_set, rec_clear, idmap)
