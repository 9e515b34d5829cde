"""Who the container's process is: groups, uid and gid, capabilities and no_new_privs,
set in the only order that works (see set_identity). Its system calls go through
`syscalls` (libc.SYSCALLS), so tests can check that order."""

from oci.linux import CAPABILITIES
from rootless.child import protocol
from rootless.errors import SetupError, step
from rootless.system import libc
from rootless.system.libc import SYSCALLS


def _cap_mask(names, last_cap, channel, warned):
    mask = 0
    for name in names:
        number = CAPABILITIES.get(name)
        if number is None or number > last_cap:
            if name not in warned:
                warned.add(name)
                channel.send(protocol.WARNING, msg=f"ignoring capability {name}: "
                                            "unknown to this kernel")
            continue
        mask |= 1 << number
    return mask


def set_identity(channel, process, last_cap, keep_admin=False, syscalls=SYSCALLS):
    """Groups, uid/gid and capabilities, in the only order that works: drop the bounding
    set while we still have CAP_SETPCAP, change ids keeping capabilities, then set them.

    keep_admin: also keep CAP_SYS_ADMIN (permitted and effective), which a seccomp filter
    loaded without no_new_privs needs, until execve. execve drops it by itself: it gives
    root the bounding and inheritable sets, others their ambient set, never what was
    permitted before."""
    caps = process.capabilities
    user = process.user
    warned = set()
    if caps is not None or (keep_admin and user.uid != 0):
        with step("keeping capabilities across the change of user"):
            syscalls.prctl(libc.PR_SET_KEEPCAPS, 1)
    if caps is not None:
        with step("dropping bounding capabilities"):
            keep = _cap_mask(caps.bounding, last_cap, channel, warned)
            for cap in range(last_cap + 1):
                if not keep & (1 << cap):
                    syscalls.prctl(libc.PR_CAPBSET_DROP, cap)
    if _setgroups_allowed():
        with step("setting additional groups"):
            syscalls.setgroups(list(user.additional_gids))
    elif user.additional_gids:
        raise SetupError("process.user.additionalGids: cannot set groups in a user namespace "
                         "mapped with your own id only (add subordinate ids to the mapping)")
    with step(f"switching to uid {user.uid} gid {user.gid}"):
        syscalls.setresgid(user.gid, user.gid, user.gid)
        syscalls.setresuid(user.uid, user.uid, user.uid)
    admin = (1 << CAPABILITIES["CAP_SYS_ADMIN"]) if keep_admin else 0
    if caps is not None:
        permitted = _cap_mask(caps.permitted, last_cap, channel, warned)
        inheritable = _cap_mask(caps.inheritable, last_cap, channel, warned)
        with step("setting capabilities"):
            syscalls.capset(_cap_mask(caps.effective, last_cap, channel, warned) | admin,
                        permitted | admin, inheritable)
            syscalls.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)
        # The kernel raises an ambient capability only if it is permitted and inheritable;
        # like runc, skip the others rather than fail (runc's own default spec has them).
        ambient = _cap_mask(caps.ambient, last_cap, channel, warned)
        for cap in range(last_cap + 1):
            if ambient & (1 << cap):
                if permitted & inheritable & (1 << cap):
                    with step("raising ambient capabilities"):
                        syscalls.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_RAISE, cap)
                else:
                    channel.send(protocol.DEBUG, msg=f"ambient capability {cap} skipped: "
                                              "not both permitted and inheritable")
    elif admin and user.uid != 0:
        with step("keeping CAP_SYS_ADMIN for the seccomp filter"):
            syscalls.capset(admin, admin, syscalls.capget()[2])
    if process.no_new_privileges:
        with step("setting no_new_privs"):
            syscalls.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)


def _setgroups_allowed():
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "allow"
    except FileNotFoundError:
        return True
