"""oci/profiles.py: the friendly mode's default seccomp profile (podman's allow-list)."""

import ctypes
import errno
import os

from oci import reader
from oci.profiles import ALLOWED, DENIED, default_seccomp
from oci.seccomp import filter_from_json
from rootless.system import libc
from rootless.child import seccomp


def actions(profile, name):
    """[(action, errno, conditions)] of the rules naming `name`."""
    return [(rule.action, rule.errno, rule.conditions) for rule in profile.rules
            if name in rule.names]


def test_what_is_not_listed_fails_with_enosys_and_the_native_arches_are_named():
    profile = default_seccomp("x86_64")
    assert (profile.default_action, profile.default_errno) == ("SCMP_ACT_ERRNO", errno.ENOSYS)
    assert profile.architectures == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")
    assert default_seccomp("aarch64").architectures == ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")
    assert default_seccomp("z80").architectures == ()


def test_allowed_denied_and_by_machine():
    profile = default_seccomp("x86_64")
    assert actions(profile, "mkdir") == [("SCMP_ACT_ALLOW", None, ())]
    assert actions(profile, "swapon") == [("SCMP_ACT_ERRNO", errno.EPERM, ())]
    assert actions(profile, "arch_prctl") == [("SCMP_ACT_ALLOW", None, ())]
    assert actions(default_seccomp("aarch64"), "arch_prctl") == []
    assert actions(default_seccomp("aarch64"), "set_tls") == [("SCMP_ACT_ALLOW", None, ())]
    assert not set(ALLOWED) & set(DENIED)


def test_capabilities_decide_some():
    without = default_seccomp("x86_64", ["CAP_KILL"])
    with_caps = default_seccomp("x86_64", ["CAP_SYS_CHROOT", "CAP_SYS_PTRACE"])
    assert actions(without, "chroot") == [("SCMP_ACT_ERRNO", errno.EPERM, ())]
    assert actions(with_caps, "chroot") == [("SCMP_ACT_ALLOW", None, ())]
    assert actions(with_caps, "ptrace") == [("SCMP_ACT_ALLOW", None, ())]
    assert actions(with_caps, "sethostname") == [("SCMP_ACT_ERRNO", errno.EPERM, ())]
    # setns is allowed either way (podman's allow-list names it before the CAP_SYS_ADMIN
    # rule, and the first rule wins)
    assert actions(without, "setns") == [("SCMP_ACT_ALLOW", None, ())]


def test_personality_and_audit_sockets_by_argument():
    profile = default_seccomp("x86_64")
    personas = [rule[2][0].value for rule in actions(profile, "personality")]
    assert personas == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
    sockets = actions(profile, "socket")
    assert sockets[0][:2] == ("SCMP_ACT_ERRNO", errno.EINVAL)
    assert [(c.index, c.op, c.value) for c in sockets[0][2]] == [(0, "SCMP_CMP_EQ", 16),
                                                                 (2, "SCMP_CMP_EQ", 9)]
    assert actions(default_seccomp("x86_64", ["CAP_AUDIT_WRITE"]), "socket") == [
        ("SCMP_ACT_ALLOW", None, ())]


def test_the_profile_is_a_linux_seccomp_object_and_back():
    profile = default_seccomp("x86_64", ["CAP_SYS_NICE"])
    r = reader.Reader("config.json")
    assert filter_from_json(r, profile.to_json()) == profile
    assert r.problems == []


def test_loaded_it_allows_ordinary_work_and_refuses_the_rest(tmp_path):
    """In a child (no_new_privs, as a container has it): mkdir works, chroot fails with
    EPERM rather than the kernel's ENOENT, a persona not on the list with ENOSYS."""
    def errno_of(call, *args):
        try:
            call(*args)
            return 0
        except OSError as err:
            return err.errno

    def personality(persona):
        if ctypes.CDLL(None, use_errno=True).personality(persona) == -1:
            raise OSError(ctypes.get_errno(), "personality")

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
            seccomp.Filter(default_seccomp(os.uname().machine)).load()
            found = (errno_of(os.mkdir, tmp_path / "made"),
                     errno_of(os.chroot, tmp_path / "missing"),
                     errno_of(personality, 0x0040000))          # ADDR_NO_RANDOMIZE
            os.write(write_end, repr(found).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as f:
        assert f.read() == repr((0, errno.EPERM, errno.ENOSYS))
