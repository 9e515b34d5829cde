"""Containers' roots mounted with fuse-overlayfs, where the kernel cannot mount overlayfs in
a user namespace (chosen here through containers-storage.conf's mount_program, as a user
of such a kernel would; this kernel could do without): the image as the container sees
it, the daemon out of the container's sight, and nothing left once the container goes."""

import json
import os
import shutil

import pytest

from harness import needs_subids, wait_until
from test_friendly import Friendly, name_for
from imagebuild import write_oci_layout

FUSE_OVERLAYFS = shutil.which("fuse-overlayfs")

pytestmark = [needs_subids, pytest.mark.skipif(
    not FUSE_OVERLAYFS or not os.access("/dev/fuse", os.R_OK | os.W_OK),
    reason="fuse-overlayfs or a usable /dev/fuse is missing (scripts/test installs it and "
           "opens /dev/fuse as desktops do)")]


def fuse_daemons():
    """{pid: command line} of this user's fuse-overlayfs processes."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if os.stat(f"/proc/{name}").st_uid == os.getuid() and \
                    os.path.basename(argv[0]) == b"fuse-overlayfs":
                found[int(name)] = b" ".join(argv).decode()
        except OSError:
            continue
    return found


@pytest.fixture
def fuse(handcar, tmp_path, rootfs_template):
    """handcar's friendly mode with an image store that mounts with fuse-overlayfs."""
    conf = tmp_path / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "overlay"\n\n[storage.options.overlay]\n'
                    f'mount_program = "{FUSE_OVERLAYFS}"\n')
    work = tmp_path / "work"
    work.mkdir()
    runner = Friendly(handcar, tmp_path / "storage", work)
    runner.env["CONTAINERS_STORAGE_CONF"] = str(conf)
    runner.image = "oci:" + str(tmp_path / "layout")
    write_oci_layout(tmp_path / "layout", rootfs_template)
    before = set(fuse_daemons())
    yield runner
    for name in runner.bundles():
        runner("rm", "-f", name)
    assert wait_until(lambda: not set(fuse_daemons()) - before, timeout=10), \
        f"fuse-overlayfs left running: {fuse_daemons()}"


def test_the_store_mounts_with_fuse_overlayfs_and_the_image_is_whole(fuse):
    result = fuse.ok("run", "--rm", fuse.image)
    assert (fuse.storage / "store" / "driver").read_text() == "fuse-overlayfs\n"
    lines = result.stdout.splitlines()
    assert lines[1:3] == ["hello from the upper layer", "no-etc-group"]   # whiteout kept
    # the root is fuse-overlayfs's; an unprivileged user of the image reads its files and
    # writes what the image lets it (a copy up made for it); the daemon is out of sight
    script = ("grep ' / / ' /proc/self/mountinfo | grep -o 'fuse.fuse-overlayfs'; id -u; "
              "cat /srv/owned-by-33; echo more >> /srv/owned-by-33; cat /srv/owned-by-33; "
              "touch /srv/not-mine 2>/dev/null || echo refused; "
              "ps -o comm | grep -c fuse-overlayfs")
    result = fuse("run", "--rm", "-u", "33", fuse.image, "sh", "-c", script)
    assert result.stdout.split() == ["fuse.fuse-overlayfs", "33", "www", "www", "more",
                                     "refused", "0"], result.stderr
    # without a network of its own to set up, too (create then sends the watcher only the
    # user and mount namespaces)
    assert fuse.ok("run", "--rm", "--network", "none", fuse.image, "cat",
                   "/srv/owned-by-33").stdout == "www\n"


def test_a_containers_writes_live_in_its_own_layer_until_it_is_removed(fuse):
    name = name_for(fuse, "fuse")
    fuse.ok("run", "-d", "--name", name, fuse.image, "sh", "-c",
            "echo kept > /written; rm /srv/owned-by-33; sleep 600")
    assert wait_until(lambda: fuse("exec", name, "cat", "/written").stdout == "kept\n")
    assert fuse("exec", name, "ls", "/srv").stdout.split().count("owned-by-33") == 0
    daemons = fuse_daemons()
    assert len([cmd for cmd in daemons.values() if name in cmd or "rootfs" in cmd]) >= 1
    fuse.ok("rm", "-f", name)
    assert wait_until(lambda: not set(daemons) & set(fuse_daemons()), timeout=10), \
        "rm stops the container's fuse-overlayfs"
    # a new container of the image sees the image, not the removed one's changes
    result = fuse.ok("run", "--rm", fuse.image, "sh", "-c",
                     "ls /written 2>/dev/null; cat /srv/owned-by-33")
    assert result.stdout == "www\n"


def test_the_daemon_goes_when_the_container_dies(fuse):
    name = name_for(fuse, "dies")
    before = set(fuse_daemons())
    fuse.ok("run", "-d", "--name", name, fuse.image, "sleep", "600")
    started = set(fuse_daemons()) - before
    assert len(started) == 1
    pid = json.loads(fuse.ok("state", name).stdout)["pid"]
    os.kill(pid, 9)
    assert wait_until(lambda: not started & set(fuse_daemons()), timeout=10), \
        "the watcher ends fuse-overlayfs once init is gone, before any rm"
    fuse.ok("rm", name)


def test_a_mount_program_that_is_not_there_is_one_clear_error(fuse, tmp_path):
    conf = tmp_path / "broken.conf"
    conf.write_text('[storage.options.overlay]\nmount_program = "/nonexistent/fuse-overlayfs"\n')
    fuse.env["CONTAINERS_STORAGE_CONF"] = str(conf)
    result = fuse("run", "--rm", fuse.image, "true")
    assert result.returncode == 125
    assert result.stderr.strip().splitlines()[-1].endswith(
        "mount_program /nonexistent/fuse-overlayfs is not an executable file")
    assert not (fuse.storage / "store" / "driver").exists(), "no store made on a bad config"
