"""linux.seccomp through libseccomp, bound with ctypes; imported only for a config with a
filter (libseccomp is then required, and its absence a clear error) and by `features`.

The filter is built in the child while it still sees the host's filesystem (libseccomp is
loaded from there), and loaded just before execve (without noNewPrivileges, init keeps
CAP_SYS_ADMIN until then: loading a filter needs it).

SCMP_ACT_NOTIFY: the parent connects to linux.seccomp.listenerPath while it can see the
host, and hands the connection to the child; once the filter is loaded, the child sends
the listener the notify fd (SCM_RIGHTS) with the container process state, as runc does:
{"ociVersion", "fds": ["seccompFd"], "pid", "metadata", "state"}.
"""

import _socket   # socket's C half: no enum to import
import ctypes
import os
import sys

from rootless.errors import SetupError

_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000, "SCMP_ACT_NOTIFY": 0x7FC00000,
}
_OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
              "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# scmp_filter_attr values (libseccomp's seccomp.h)
_ATTR_NNP, _ATTR_TSYNC, _ATTR_LOG, _ATTR_SSB, _ATTR_WAITKILL = 3, 4, 6, 7, 10
_FLAG_ATTRIBUTES = {"SECCOMP_FILTER_FLAG_TSYNC": _ATTR_TSYNC,
                    "SECCOMP_FILTER_FLAG_LOG": _ATTR_LOG,
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _ATTR_SSB,
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": _ATTR_WAITKILL}
_UNKNOWN = -1                         # __NR_SCMP_ERROR: no such system call here
EPERM = 1


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def library():
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        raise SetupError("linux.seccomp asks for a filter, but libseccomp is not installed "
                         "(Debian and Ubuntu: libseccomp2)") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    for name in ("seccomp_arch_add", "seccomp_attr_set", "seccomp_rule_add_array",
                 "seccomp_load"):
        getattr(lib, name).restype = ctypes.c_int
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_notify_fd.restype = ctypes.c_int
    lib.seccomp_notify_fd.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    return lib


def action_code(action, errno_value):
    code = _ACTIONS[action]
    if action == "SCMP_ACT_ERRNO":
        code |= (EPERM if errno_value is None else errno_value) & 0xFFFF
    return code


def _check(rc, what):
    if rc < 0:
        raise SetupError(f"seccomp: {what}: {os.strerror(-rc)}")


class Filter:
    """A libseccomp filter context built from an oci.seccomp.Filter."""

    def __init__(self, spec_filter):
        self.lib = lib = library()
        default = action_code(spec_filter.default_action, spec_filter.default_errno)
        self.ctx = lib.seccomp_init(default)
        if not self.ctx:
            raise SetupError("seccomp: cannot create a filter (seccomp_init failed)")
        for arch in spec_filter.architectures:
            token = lib.seccomp_arch_resolve_name(arch[len("SCMP_ARCH_"):].lower().encode())
            if token == 0:
                continue                  # an architecture this libseccomp does not know
            rc = lib.seccomp_arch_add(self.ctx, token)
            if rc != -17:                 # EEXIST: the native one is there already
                _check(rc, f"adding architecture {arch}")
        # no_new_privs is the config's to set (noNewPrivileges), not libseccomp's
        _check(lib.seccomp_attr_set(self.ctx, _ATTR_NNP, 0), "leaving no_new_privs alone")
        for flag in spec_filter.flags:
            _check(lib.seccomp_attr_set(self.ctx, _FLAG_ATTRIBUTES[flag], 1), f"setting {flag}")
        for rule in spec_filter.rules:
            self._add(rule, default)

    def _add(self, rule, default):
        action = action_code(rule.action, rule.errno)
        if action == default:
            return                        # libseccomp refuses it; it changes nothing anyway
        # Conditions on different arguments must all hold (one rule); several on the same
        # argument are alternatives (one rule each), as runc reads them.
        indexes = [c.index for c in rule.conditions]
        groups = ([rule.conditions] if len(set(indexes)) == len(indexes)
                  else [(c,) for c in rule.conditions])
        for name in rule.names:
            number = self.lib.seccomp_syscall_resolve_name(name.encode())
            if number == _UNKNOWN:
                continue                  # unknown to this kernel/libseccomp: skipped, as runc does
            for group in groups:
                array = (_ArgCmp * max(len(group), 1))(*[
                    _ArgCmp(c.index, _OPERATORS[c.op], c.value, c.value_two) for c in group])
                _check(self.lib.seccomp_rule_add_array(self.ctx, action, number, len(group),
                                                       array), f"adding a rule for {name}")

    def load(self, listener=None, process_state=""):
        """Load the filter. With a listener (a socket connected to the seccomp agent),
        send it the notify fd with the container process state (a JSON string), and
        nothing else: the filter now applies, and even a close it forbids could kill us
        (both fds are close-on-exec)."""
        _check(self.lib.seccomp_load(self.ctx), "loading the filter")
        if listener is None:
            return
        notify_fd = self.lib.seccomp_notify_fd(self.ctx)
        _check(notify_fd, "getting the notify fd")
        try:
            listener.sendmsg([process_state.encode()], [(
                _socket.SOL_SOCKET, _socket.SCM_RIGHTS, notify_fd.to_bytes(4, sys.byteorder))])
        except OSError as err:
            raise SetupError(f"seccomp: sending the notify fd to the agent: "
                             f"{err.strerror}") from None
        finally:
            listener.detach()


def connect_listener(path):
    """A socket connected to the seccomp agent at `path` (its fd goes to the child)."""
    from rootless.system.channel import connect_unix
    return connect_unix(path, "linux.seccomp.listenerPath: connecting to the seccomp agent at")
