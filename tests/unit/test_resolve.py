import os

import pytest

from rootless.errors import SetupError
from rootless.mounts import make_in_root, resolve_in_root


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
    return str(r)


def test_plain_and_missing_paths(root):
    assert resolve_in_root(root, "/etc") == f"{root}/etc"
    assert resolve_in_root(root, "/new/dir") == f"{root}/new/dir"
    assert resolve_in_root(root, "/") == root


def test_symlinks_stay_inside(root):
    assert resolve_in_root(root, "/abs/passwd") == f"{root}/etc/passwd"
    assert resolve_in_root(root, "/up/etc") == f"{root}/etc"
    assert resolve_in_root(root, "/lib/x") == f"{root}/usr/lib/x"
    assert resolve_in_root(root, "/../../etc") == f"{root}/etc"


def test_symlink_loops_fail(root):
    with pytest.raises(SetupError, match="too many levels"):
        resolve_in_root(root, "/loop1/x")


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
