"""libc through ctypes: the system calls Python's os module lacks (in 3.11), and a fork
into a cgroup. Every wrapper raises OSError with errno and a filename, as os does.
(libseccomp has its own binding, in seccomp.py.)"""

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

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
    "x86_64": {"pivot_root": 155, "keyctl": 250, "clone3": 435, "openat2": 437},
    "aarch64": {"pivot_root": 41, "keyctl": 219, "clone3": 435, "openat2": 437},
}
_MACHINE = os.uname().machine    # once: the rootfs build makes ~90 of these calls
CLONE_INTO_CGROUP = 0x200000000
SIGCHLD = 17


def _check(result, filename=None):
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), filename)
    return result


def _syscall(name, *args, filename=None):
    try:
        number = _SYSCALLS[_MACHINE][name]
    except KeyError:
        raise OSError(38, f"{name} is not supported on {_MACHINE}") from None
    return _check(_libc.syscall(ctypes.c_long(number), *args), filename)


def _bytes(path):
    return None if path is None else os.fsencode(path)


def mount(source, target, fstype, flags=0, data=None):
    _check(_libc.mount(_bytes(source), _bytes(target), _bytes(fstype),
                       ctypes.c_ulong(flags), _bytes(data)), target)


def umount2(target, flags=0):
    _check(_libc.umount2(_bytes(target), flags), target)


def pivot_root(new_root, put_old):
    _syscall("pivot_root", _bytes(new_root), _bytes(put_old), filename=new_root)


def unshare(flags):
    _check(_libc.unshare(flags))


def setns(fd, nstype=0, filename=None):
    _check(_libc.setns(fd, nstype), filename)


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    return _check(_libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)))


def setdomainname(name):
    data = name.encode()
    _check(_libc.setdomainname(data, len(data)))


def join_session_keyring(name):
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING): a fresh session keyring named `name`."""
    _syscall("keyctl", ctypes.c_long(1), _bytes(name))


# openat2(2) resolve flags.
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def openat2(dir_fd, path, flags, resolve):
    """openat2(2) (Linux 5.6): a new fd for `path` under `dir_fd`, resolved as `resolve`
    says. OSError ENOSYS where the kernel (or a seccomp filter around us) lacks it."""
    how = _OpenHow(flags=flags, resolve=resolve)
    return _syscall("openat2", ctypes.c_int(dir_fd), _bytes(path), ctypes.byref(how),
                    ctypes.c_size_t(ctypes.sizeof(how)), filename=path)


class _CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
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
    ctypes.pythonapi.PyOS_BeforeFork()
    try:
        pid = _syscall("clone3", ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    except OSError:
        ctypes.pythonapi.PyOS_AfterFork_Parent()
        raise
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
    else:
        ctypes.pythonapi.PyOS_AfterFork_Parent()
    return pid


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_CAP_V3 = 0x20080522


def capget():
    """This thread's (effective, permitted, inheritable) capability sets as 64-bit masks."""
    header = _CapHeader(_CAP_V3, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data))
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
    _check(_libc.capset(ctypes.byref(header), data))
