"""libc through _ctypes: the system calls Python's os module lacks (in 3.11), and a fork
into a cgroup. Every wrapper raises OSError with errno and a filename, as os does.
(libseccomp has its own binding, through the whole of ctypes, in seccomp.py.)

_ctypes is ctypes' C half. The ctypes package on top of it defines every C type, loader
and helper there is, which costs create, run and exec ~1 ms of start-up (a third of
everything they import): the few C types and the function pointers used here are
declared below exactly as ctypes declares them."""

import _ctypes
import os
import sys


class c_int(_ctypes._SimpleCData):
    _type_ = "i"


class c_long(_ctypes._SimpleCData):
    _type_ = "l"


class c_ulong(_ctypes._SimpleCData):
    _type_ = "L"


class c_uint32(_ctypes._SimpleCData):
    _type_ = "I"


class c_uint64(_ctypes._SimpleCData):
    _type_ = "Q"


class _LibcFunction(_ctypes.CFuncPtr):
    """A libc function (ctypes.CDLL(None, use_errno=True)'s): C calling convention,
    returns an int, errno kept for get_errno; arguments are ints, bytes or None."""
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class _PythonFunction(_ctypes.CFuncPtr):
    """A function of the interpreter's own C API (ctypes.pythonapi's): called with the GIL
    held."""
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_PYTHONAPI
    _restype_ = None


class _Program:
    """The running program and the libraries it has loaded (libc, and the interpreter's
    API: python3 links it in), as dlopen(NULL) gives them."""
    _handle = _ctypes.dlopen(None, os.RTLD_NOW)


class _libc:
    """The libc functions used here, looked up once, on import: in the parent, so that
    the forked children do not copy the pages a lookup touches."""
    syscall = _LibcFunction(("syscall", _Program))
    mount = _LibcFunction(("mount", _Program))
    umount2 = _LibcFunction(("umount2", _Program))
    unshare = _LibcFunction(("unshare", _Program))
    setns = _LibcFunction(("setns", _Program))
    prctl = _LibcFunction(("prctl", _Program))
    setdomainname = _LibcFunction(("setdomainname", _Program))
    capget = _LibcFunction(("capget", _Program))
    capset = _LibcFunction(("capset", _Program))
    personality = _LibcFunction(("personality", _Program))
    ioctl = _LibcFunction(("ioctl", _Program))


class _python:
    """The interpreter's fork hooks (what os.fork calls around fork)."""
    PyOS_BeforeFork = _PythonFunction(("PyOS_BeforeFork", _Program))
    PyOS_AfterFork_Parent = _PythonFunction(("PyOS_AfterFork_Parent", _Program))
    PyOS_AfterFork_Child = _PythonFunction(("PyOS_AfterFork_Child", _Program))


# Namespace clone flags.
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = {
    "user": CLONE_NEWUSER, "mount": CLONE_NEWNS, "pid": CLONE_NEWPID, "network": CLONE_NEWNET,
    "ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS, "cgroup": CLONE_NEWCGROUP, "time": CLONE_NEWTIME,
}

# mount(2) flags are oci/mounts.py's; these two only the engine uses.
MS_MOVE = 0x2000
MNT_DETACH = 0x2

# prctl(2).
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYSCALLS = {  # name -> number, per architecture (glibc has no wrapper for these)
    "x86_64": {"pivot_root": 155, "keyctl": 250, "clone3": 435, "openat2": 437,
               "mount_setattr": 442, "sched_setattr": 314, "ioprio_set": 251,
               "ioprio_get": 252, "set_mempolicy": 238, "get_mempolicy": 239},
    "aarch64": {"pivot_root": 41, "keyctl": 219, "clone3": 435, "openat2": 437,
                "mount_setattr": 442, "sched_setattr": 274, "ioprio_set": 30,
                "ioprio_get": 31, "set_mempolicy": 237, "get_mempolicy": 236},
}
for _numbers in _SYSCALLS.values():   # the new mount API: one number on every architecture
    _numbers.update(open_tree=428, move_mount=429, fsopen=430, fsconfig=431, fsmount=432)
_MACHINE = os.uname().machine    # once: the rootfs build makes ~90 of these calls
CLONE_INTO_CGROUP = 0x200000000
SIGCHLD = 17


def _check(result, filename=None):
    if result == -1:
        err = _ctypes.get_errno()
        raise OSError(err, os.strerror(err), filename)
    return result


def _syscall(name, *args, filename=None):
    try:
        number = _SYSCALLS[_MACHINE][name]
    except KeyError:
        raise OSError(38, f"{name} is not supported on {_MACHINE}") from None
    return _check(_libc.syscall(c_long(number), *args), filename)


def _bytes(path):
    return None if path is None else os.fsencode(path)


def mount(source, target, fstype, flags=0, data=None):
    _check(_libc.mount(_bytes(source), _bytes(target), _bytes(fstype),
                       c_ulong(flags), _bytes(data)), target)


def umount2(target, flags=0):
    _check(_libc.umount2(_bytes(target), flags), target)


def pivot_root(new_root, put_old):
    _syscall("pivot_root", _bytes(new_root), _bytes(put_old), filename=new_root)


def unshare(flags):
    _check(_libc.unshare(flags))


def setns(fd, nstype=0, filename=None):
    _check(_libc.setns(fd, nstype), filename)


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    return _check(_libc.prctl(option, c_ulong(arg2), c_ulong(arg3), c_ulong(arg4),
                              c_ulong(arg5)))


def setdomainname(name):
    data = name.encode()
    _check(_libc.setdomainname(data, len(data)))


# Network device flags (SIOCSIFFLAGS) and struct ifreq: a 16-byte name, then the flags
# (a short) in a 24-byte union.
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFNAMSIZ = 16
IFREQ_SIZE = 40


def set_interface_flags(sock_fd, name, flags):
    """ioctl(SIOCSIFFLAGS) on a socket: the interface `name` of the socket's network
    namespace gets `flags` (the kernel keeps the flags it owns, such as LOOPBACK)."""
    request = name.encode().ljust(IFNAMSIZ, b"\0") + flags.to_bytes(2, sys.byteorder)
    _check(_libc.ioctl(sock_fd, c_ulong(SIOCSIFFLAGS), request.ljust(IFREQ_SIZE, b"\0")),
           name)


def join_session_keyring(name):
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING): a fresh session keyring named `name`."""
    _syscall("keyctl", c_long(1), _bytes(name))


# openat2(2) resolve flags.
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


class _OpenHow(_ctypes.Structure):
    _fields_ = [("flags", c_uint64), ("mode", c_uint64), ("resolve", c_uint64)]


def openat2(dir_fd, path, flags, resolve):
    """openat2(2) (Linux 5.6): a new fd for `path` under `dir_fd`, resolved as `resolve`
    says. OSError ENOSYS where the kernel (or a seccomp filter around us) lacks it."""
    how = _OpenHow(flags=flags, resolve=resolve)
    return _syscall("openat2", c_int(dir_fd), _bytes(path), _ctypes.byref(how),
                    c_ulong(_ctypes.sizeof(how)), filename=path)


# mount_setattr(2), and the *at flags the new mount API takes.
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1


class _MountAttr(_ctypes.Structure):
    _fields_ = [(name, c_uint64) for name in ("attr_set", "attr_clr", "propagation",
                                               "userns_fd")]


def mount_setattr(path, attr_set, recursive=False, attr_clr=0, dir_fd=AT_FDCWD):
    """mount_setattr(2) (Linux 5.12) on the mount at `path` (and, recursive, on every
    mount below it): sets the MOUNT_ATTR_* flags `attr_set` and clears `attr_clr`, in one
    call for a whole tree where a remount changes one mount, and without touching any
    other flag (so none the kernel locks). An empty `path` means the mount `dir_fd` is (one
    made by open_tree or fsmount, attached or not). OSError ENOSYS where the kernel (or a
    seccomp filter around us) lacks it."""
    attr = _MountAttr(attr_set=attr_set, attr_clr=attr_clr)
    flags = (AT_RECURSIVE if recursive else 0) | (0 if path else AT_EMPTY_PATH)
    _syscall("mount_setattr", c_int(dir_fd), _bytes(path), c_uint32(flags),
             _ctypes.byref(attr), c_ulong(_ctypes.sizeof(attr)), filename=path or None)


# The new mount API (Linux 5.2): a mount as an fd, made or copied where it is, and
# attached elsewhere later, even in another mount namespace.
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
FSOPEN_CLOEXEC = 0x1
FSMOUNT_CLOEXEC = 0x1
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4


def open_tree(path, flags, dir_fd=AT_FDCWD):
    """open_tree(2): an fd of the mount at `path`; with OPEN_TREE_CLONE (| AT_RECURSIVE),
    of a detached copy of it (and of the mounts below it), as a bind mount would make."""
    return _syscall("open_tree", c_int(dir_fd), _bytes(path),
                    c_uint32(flags | (0 if path else AT_EMPTY_PATH)), filename=path or None)


def move_mount(from_fd, to_path, to_fd=AT_FDCWD, from_path=""):
    """move_mount(2): attach the mount `from_fd` is (open_tree's or fsmount's) at
    `to_path` (relative to `to_fd`; empty: on `to_fd` itself)."""
    flags = (0 if from_path else MOVE_MOUNT_F_EMPTY_PATH) | \
        (0 if to_path else MOVE_MOUNT_T_EMPTY_PATH)
    _syscall("move_mount", c_int(from_fd), _bytes(from_path), c_int(to_fd), _bytes(to_path),
             c_uint32(flags), filename=to_path or None)


def fsopen(fstype):
    """fsopen(2): a filesystem context for `fstype`, to configure with fsconfig."""
    return _syscall("fsopen", _bytes(fstype), c_uint32(FSOPEN_CLOEXEC), filename=fstype)


def fsconfig(fs_fd, key=None, value=None, command=FSCONFIG_SET_STRING):
    """fsconfig(2): set the option `key` to the string `value`, or run `command`."""
    _syscall("fsconfig", c_int(fs_fd), c_uint32(command), _bytes(key), _bytes(value),
             c_int(0))


def fsmount(fs_fd, attr_flags=0):
    """fsmount(2): a detached mount of the configured filesystem, as an fd."""
    return _syscall("fsmount", c_int(fs_fd), c_uint32(FSMOUNT_CLOEXEC), c_uint32(attr_flags))


# Process attributes of runtime-spec 1.2 and 1.3 (the values are oci/tuning.py's).

class _SchedAttr(_ctypes.Structure):
    _fields_ = [("size", c_uint32), ("sched_policy", c_uint32), ("sched_flags", c_uint64),
                ("sched_nice", c_int), ("sched_priority", c_uint32),
                ("sched_runtime", c_uint64), ("sched_deadline", c_uint64),
                ("sched_period", c_uint64)]


def sched_setattr(policy, flags=0, nice=0, priority=0, runtime=0, deadline=0, period=0):
    """sched_setattr(2) on this thread (what its children inherit)."""
    attr = _SchedAttr(size=_ctypes.sizeof(_SchedAttr), sched_policy=policy,
                      sched_flags=flags, sched_nice=nice, sched_priority=priority,
                      sched_runtime=runtime, sched_deadline=deadline, sched_period=period)
    _syscall("sched_setattr", c_int(0), _ctypes.byref(attr), c_uint32(0))


IOPRIO_WHO_PROCESS = 1


def ioprio_set(value, pid=0):
    _syscall("ioprio_set", c_int(IOPRIO_WHO_PROCESS), c_int(pid), c_int(value))


def ioprio_get(pid=0):
    return _syscall("ioprio_get", c_int(IOPRIO_WHO_PROCESS), c_int(pid))


def set_mempolicy(mode, nodes):
    """set_mempolicy(2): `mode` (with its flags) over the nodes numbered in `nodes`."""
    words = max(nodes, default=0) // 64 + 1
    mask = (c_ulong * words)()
    for node in nodes:
        mask[node // 64] |= 1 << (node % 64)
    # maxnode counts one more bit than the mask holds (the kernel drops the last one)
    _syscall("set_mempolicy", c_int(mode), mask if nodes else None,
             c_ulong(words * 64 + 1 if nodes else 0))


def get_mempolicy():
    """(mode, set of nodes) of this thread's memory policy."""
    mode = c_int()
    mask = (c_ulong * 16)()
    _syscall("get_mempolicy", _ctypes.byref(mode), mask, c_ulong(16 * 64), None, c_ulong(0))
    return mode.value, {word * 64 + bit for word in range(16) for bit in range(64)
                        if mask[word] >> bit & 1}


def personality(persona):
    """personality(2); returns the previous one."""
    return _check(_libc.personality(c_ulong(persona)))


class _CloneArgs(_ctypes.Structure):
    _fields_ = [(name, c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size",
        "tls", "set_tid", "set_tid_size", "cgroup")]


def clone(flags=0, cgroup_fd=None):
    """os.fork() through clone3: the child starts in the new namespaces `flags` name
    (CLONE_NEW*), and in the cgroup `cgroup_fd` names when one is given (moving a process
    into a new cgroup afterwards waits for an RCU grace period, ~15 ms; being born there
    does not). Python's own fork bookkeeping is done around the system call exactly as
    os.fork does it."""
    if cgroup_fd is not None:
        flags |= CLONE_INTO_CGROUP
    args = _CloneArgs(flags=flags, exit_signal=SIGCHLD,
                      cgroup=cgroup_fd if cgroup_fd is not None else 0)
    _python.PyOS_BeforeFork()
    try:
        pid = _syscall("clone3", _ctypes.byref(args), c_ulong(_ctypes.sizeof(args)))
    except OSError:
        _python.PyOS_AfterFork_Parent()
        raise
    if pid == 0:
        _python.PyOS_AfterFork_Child()
    else:
        _python.PyOS_AfterFork_Parent()
    return pid


class _CapHeader(_ctypes.Structure):
    _fields_ = [("version", c_uint32), ("pid", c_int)]


class _CapData(_ctypes.Structure):
    _fields_ = [("effective", c_uint32), ("permitted", c_uint32), ("inheritable", c_uint32)]


_CAP_V3 = 0x20080522


def capget():
    """This thread's (effective, permitted, inheritable) capability sets as 64-bit masks."""
    header = _CapHeader(_CAP_V3, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(_ctypes.byref(header), data))
    return tuple(getattr(data[0], name) | getattr(data[1], name) << 32
                 for name in ("effective", "permitted", "inheritable"))


def capset(effective, permitted, inheritable):
    """Set this thread's capability sets from 64-bit masks."""
    header = _CapHeader(_CAP_V3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(_ctypes.byref(header), data))


# --- the seam -----------------------------------------------------------------------------
#
# The system calls child-side code makes (the rootfs builder, identity, the intermediate's
# namespaces), behind one object, so that a test can watch them: SYSCALLS is the real
# thing, these wrappers and the os module's own; those functions take it as a parameter
# that defaults to it, and tests/unit/fake_syscalls.py passes one that records each call
# instead, and can make any of them fail.

class Syscalls:
    # the mount table
    mount = staticmethod(mount)
    umount2 = staticmethod(umount2)
    pivot_root = staticmethod(pivot_root)
    mount_setattr = staticmethod(mount_setattr)
    # namespaces
    unshare = staticmethod(unshare)
    setns = staticmethod(setns)
    # identity and capabilities
    prctl = staticmethod(prctl)
    capget = staticmethod(capget)
    capset = staticmethod(capset)
    setgroups = staticmethod(os.setgroups)
    setresgid = staticmethod(os.setresgid)
    setresuid = staticmethod(os.setresuid)


SYSCALLS = Syscalls()
