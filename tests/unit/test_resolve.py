import errno
import os

import pytest

from rootless.system import libc
from rootless.child import mounts
from rootless.errors import SetupError
from rootless.child.mounts import make_in_root, open_in_root
from rootless.system import fs
from fake_syscalls import RecordingSyscalls
from rootless.system.fs import resolve_in_root


@pytest.fixture(params=["openat2", "walk"], autouse=True)
def resolver(request, monkeypatch):
    """Every test runs with openat2(RESOLVE_IN_ROOT) and with the walk that stands in for
    it on kernels before 5.6."""
    if request.param == "openat2":
        if not fs.has_openat2():
            pytest.skip(f"this kernel ({os.uname().release}) has no openat2")
    else:
        monkeypatch.setattr(fs, "_have_openat2", False)
    return request.param


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "usr" / "lib").mkdir(parents=True)
    os.symlink("/etc", r / "abs")                 # absolute: means the rootfs's /etc
    os.symlink("../../../../..", r / "up")        # climbs: stops at the rootfs
    os.symlink("usr/lib", r / "lib")
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    os.symlink("/missing/deeper", r / "dangling")
    return str(r)


def test_plain_and_missing_paths(root):
    assert resolve_in_root(root, "/etc") == f"{root}/etc"
    assert resolve_in_root(root, "/new/dir") == f"{root}/new/dir"
    assert resolve_in_root(root, "/") == root
    assert resolve_in_root(root, "/etc/new/../x") == f"{root}/etc/x"


def test_symlinks_stay_inside(root):
    assert resolve_in_root(root, "/abs/passwd") == f"{root}/etc/passwd"
    assert resolve_in_root(root, "/up/etc") == f"{root}/etc"
    assert resolve_in_root(root, "/lib/x") == f"{root}/usr/lib/x"
    assert resolve_in_root(root, "/../../etc") == f"{root}/etc"
    assert resolve_in_root(root, "/dangling/x") == f"{root}/missing/deeper/x"


def test_symlink_loops_fail(root):
    with pytest.raises(SetupError, match="too many levels"):
        resolve_in_root(root, "/loop1/x")


def test_the_kernel_resolves_when_it_can(root, resolver, monkeypatch):
    walked = []
    real_walk = fs._walk
    monkeypatch.setattr(fs, "_walk", lambda *args: walked.append(args) or real_walk(*args))
    assert resolve_in_root(root, "/lib") == f"{root}/usr/lib"
    assert bool(walked) == (resolver == "walk")


def test_make_in_root_never_creates_outside(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), os.path.join(root, "evil"))
    made = make_in_root(root, "/evil/sub/dir")
    assert made == f"{root}{outside}/sub/dir"
    assert os.path.isdir(made)
    assert os.listdir(outside) == []
    file_made = make_in_root(root, "/abs/file", directory=False)
    assert os.path.isfile(file_made) and file_made == f"{root}/etc/file"


def test_a_symlink_planted_after_resolving_is_refused(root, tmp_path):
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    target = resolve_in_root(root, "/planted/sub")
    os.symlink(str(outside), os.path.join(root, "planted"))   # the race, won by the image
    with pytest.raises(SetupError):
        os.close(open_in_root(root, target))
    with pytest.raises(SetupError, match="symlink"):
        mounts._makedirs_in_root(root, target)
    assert os.listdir(outside) == ["sub"] and os.listdir(outside / "sub") == []


def test_open_in_root_refuses_paths_outside(root, tmp_path):
    with pytest.raises(SetupError, match="outside"):
        open_in_root(root, str(tmp_path))


def test_relative_paths_below_the_root_only():
    assert fs.relative("/r/rootfs", "/r/rootfs") == "."
    assert fs.relative("/r/rootfs", "/r/rootfs/etc/x") == "etc/x"
    assert fs.relative("/r/rootfs", "/r/rootfs/etc/../../x") is None
    assert fs.relative("/r/rootfs", "/r/rootfs2/x") is None       # a sibling's name
    assert fs.relative("/r/rootfs", "/r") is None
    assert fs.relative("/", "/proc/sys") == "proc/sys"            # after pivot_root
    assert fs.relative("/", "/") == "."


def test_made_in_root_gives_the_checked_descriptor_of_what_it_made(root):
    with mounts.made_in_root(root, "/abs/new/dir") as (host, fd_path):
        assert host == f"{root}/etc/new/dir"
        assert os.readlink(fd_path) == host
    with mounts.made_in_root(root, "/etc") as (host, fd_path):     # there already
        assert os.readlink(fd_path) == f"{root}/etc"
    with mounts.made_in_root(root, "/lib/node", directory=False) as (host, fd_path):
        assert os.readlink(fd_path) == f"{root}/usr/lib/node" and os.path.isfile(host)
    with pytest.raises(OSError):
        os.readlink(fd_path)                                       # closed on the way out


def test_a_symlink_planted_inside_the_root_is_refused_too(root):
    target = resolve_in_root(root, "/moved/sub")
    os.mkdir(os.path.join(root, "moved"))
    os.mkdir(os.path.join(root, "moved", "sub"))                   # it is there: one open
    os.rename(os.path.join(root, "moved"), os.path.join(root, "elsewhere"))
    os.symlink("elsewhere", os.path.join(root, "moved"))
    with pytest.raises(SetupError, match="symlink"):
        mounts._makedirs_in_root(root, target)


# --- read-only rbinds all the way down (the real thing: tests/integration/test_mounts.py) --

def _readonly_calls(monkeypatch, setattr_errno):
    syscalls = RecordingSyscalls(fail={"mount_setattr": setattr_errno})
    monkeypatch.setattr(mounts.mountinfo, "mount_points",
                        lambda: ["/", "/r/sys", "/r/sys/fs/cgroup", "/r/sys/fs/cgroup",
                                 "/r/sysfoo", "/other"])
    monkeypatch.setattr(mounts, "remount", lambda path, flags, syscalls: syscalls.calls.append(
        ("remount", path)))
    mounts._submounts_readonly("/r/sys", "/proc/self/fd/7", syscalls)
    return syscalls.calls


def test_a_read_only_rbind_is_made_read_only_below_in_one_call(monkeypatch):
    assert _readonly_calls(monkeypatch, 0) == [
        ("mount_setattr", "/proc/self/fd/7", libc.MOUNT_ATTR_RDONLY, ("recursive", True))]


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.EPERM, errno.EINVAL])
def test_without_mount_setattr_each_submount_is_remounted_once(monkeypatch, code):
    # an older kernel, or a seccomp filter around handcar, that refuses mount_setattr
    assert _readonly_calls(monkeypatch, code)[1:] == [("remount", "/r/sys/fs/cgroup")]


def test_mount_setattr_failing_otherwise_is_an_error(monkeypatch):
    with pytest.raises(OSError):
        _readonly_calls(monkeypatch, errno.EBADF)
