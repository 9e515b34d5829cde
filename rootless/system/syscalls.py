"""The system calls the child side makes, behind one object, so that a test can watch them.

`SYSCALLS` is the real thing: libc's wrappers (libc.py) and the os module's own. The rootfs
builder (child/mounts.py), identity (child/identity.py) and the intermediate's
namespaces take it as a parameter that defaults to it; tests/unit/fake_syscalls.py passes
one that records each call instead, and can make any of them fail.
"""

import os

from rootless.system import libc


class Syscalls:
    # the mount table
    mount = staticmethod(libc.mount)
    umount2 = staticmethod(libc.umount2)
    pivot_root = staticmethod(libc.pivot_root)
    mount_setattr = staticmethod(libc.mount_setattr)
    # namespaces
    unshare = staticmethod(libc.unshare)
    setns = staticmethod(libc.setns)
    # identity and capabilities
    prctl = staticmethod(libc.prctl)
    capget = staticmethod(libc.capget)
    capset = staticmethod(libc.capset)
    setgroups = staticmethod(os.setgroups)
    setresgid = staticmethod(os.setresgid)
    setresuid = staticmethod(os.setresuid)


SYSCALLS = Syscalls()
