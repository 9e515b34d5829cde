"""Child-side code against a recording stand-in for its system calls (fake_syscalls.py):
the mount sequence of a rootfs, an injected failure named by its step, the order identity
is changed in, the order namespaces are joined in. No namespace, no privilege: the rootfs
is a directory of the test's, only the mount-table and identity calls are faked."""

import errno
import os

import pytest

from fake_syscalls import RecordingSyscalls
from oci import mounts as opts
from oci import spec as oci_spec
from rootless.child import identity, init, mounts
from rootless.errors import SetupError
from rootless.system import libc


def config(tmp_path, **changes):
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    document = {
        "ociVersion": "1.2.0", "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/work", "user": {"uid": 0, "gid": 0}},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "mode=755"]},
            {"destination": "/data", "type": "bind", "source": str(data_dir),
             "options": ["rbind", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"},
        ],
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]},
    }
    document.update(changes)
    return oci_spec.from_json(document)


def build(tmp_path, syscalls, **changes):
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir(exist_ok=True)
    builder = mounts.RootfsBuilder(config(tmp_path, **changes), str(rootfs), str(tmp_path),
                                   private_netns=False, private_cgroupns=False,
                                   syscalls=syscalls)
    builder.build()
    return str(rootfs)


def test_the_rootfs_is_built_in_the_configs_order(tmp_path):
    syscalls = RecordingSyscalls()
    rootfs = build(tmp_path, syscalls)
    mounts_made = [(source, fstype, flags) for _name, source, _target, fstype, flags, *_
                   in syscalls.named("mount")]
    # / slave first (nothing we do reaches the host), then the rootfs bound on itself
    assert mounts_made[:2] == [(None, None, opts.SLAVE | opts.REC),
                               (rootfs, None, opts.BIND | opts.REC)]
    sources = [source for source, _fstype, _flags in mounts_made[2:]]
    # proc, the /dev tmpfs, the bind and its read-only remount, /tmp, then /dev's nodes
    assert sources[:5] == ["proc", "tmpfs", str(tmp_path / "data"), None, "tmpfs"]
    assert mounts_made[2][1] == "proc" and mounts_made[3][1] == "tmpfs"
    remount_flags = mounts_made[5][2]
    assert remount_flags & opts.REMOUNT and remount_flags & opts.RDONLY
    nodes = sources[5:]
    assert nodes == [f"/dev/{name}" for name in mounts.DEFAULT_DEVICES]
    # every node made nosuid,noexec (runc's), each right after it is bound
    assert len(syscalls.named("mount_setattr")) == len(mounts.DEFAULT_DEVICES) + 1
    assert os.path.isdir(os.path.join(rootfs, "work"))          # the working directory


def test_an_injected_failure_is_named_by_its_step(tmp_path):
    def refuse_proc(call):
        return errno.EPERM if call[3] == "proc" else 0
    syscalls = RecordingSyscalls(fail={"mount": refuse_proc})
    with pytest.raises(SetupError, match="^mounting proc on /proc: Operation not permitted$"):
        build(tmp_path, syscalls)
    # nothing after the failing mount was attempted
    assert syscalls.named("mount")[-1][3] == "proc"


def test_entering_the_rootfs_pivots_and_detaches_the_old_root(tmp_path):
    syscalls = RecordingSyscalls()
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    builder = mounts.RootfsBuilder(config(tmp_path), str(rootfs), str(tmp_path), False,
                                   False, syscalls=syscalls)
    cwd = os.getcwd()
    try:
        builder.enter(no_pivot=False)
    finally:
        os.chdir(cwd)
    assert syscalls.calls == [("pivot_root", ".", "."), ("umount2", ".", libc.MNT_DETACH)]


class Channel:
    def __init__(self):
        self.sent = []

    def send(self, kind, **fields):
        self.sent.append((kind, fields))


def test_identity_changes_in_the_only_order_that_works(tmp_path):
    process = oci_spec.from_json({
        "ociVersion": "1.2.0", "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/", "noNewPrivileges": True,
                    "user": {"uid": 1000, "gid": 100, "additionalGids": [5]},
                    "capabilities": {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"],
                                     "permitted": ["CAP_CHOWN"],
                                     "inheritable": ["CAP_CHOWN"],
                                     "ambient": ["CAP_CHOWN"]}}}).process
    syscalls = RecordingSyscalls()
    last_cap = 40
    identity.set_identity(Channel(), process, last_cap, syscalls=syscalls)
    names = [call[0] for call in syscalls.calls]
    first = {name: names.index(name) for name in set(names)}
    dropped = [call[2] for call in syscalls.named("prctl") if call[1] == libc.PR_CAPBSET_DROP]
    # keep capabilities across the uid change; drop the bounding set while CAP_SETPCAP is
    # still there; groups, then gid, then uid; capabilities set for the new uid; no_new_privs
    assert syscalls.calls[0] == ("prctl", libc.PR_SET_KEEPCAPS, 1)
    assert dropped == [cap for cap in range(last_cap + 1) if cap != 0]   # CAP_CHOWN is 0
    assert first["setgroups"] < first["setresgid"] < first["setresuid"] < first["capset"]
    assert ("setresuid", 1000, 1000, 1000) in syscalls.calls
    assert ("prctl", libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_RAISE, 0) in syscalls.calls
    assert syscalls.calls[-1] == ("prctl", libc.PR_SET_NO_NEW_PRIVS, 1)


def test_namespaces_are_joined_user_first_and_mount_last():
    syscalls = RecordingSyscalls()
    fds = {kind: 100 + i for i, kind in enumerate(("mount", "network", "user", "pid"))}
    for kind in init.JOIN_ORDER:
        if kind in fds:
            init._join(fds, kind, syscalls)
    assert [call[1] for call in syscalls.calls] == [102, 101, 103, 100]
    assert syscalls.calls[0][2] == libc.NAMESPACE_FLAGS["user"]
