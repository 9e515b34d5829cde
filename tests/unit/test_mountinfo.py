import os

from rootless.system import mountinfo


def test_mounts_are_read_in_order_with_their_root_and_type(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "40 22 8:1 /srv/data /mnt/my\\040data rw master:3 propagate_from:1 - ext4 /dev/sda1 rw\n")
    assert list(mountinfo.mounts(str(info))) == [
        ("/", "/", "ext4"), ("/sys/fs/cgroup", "/", "tmpfs"),
        ("/mnt/my data", "/srv/data", "ext4")]


def test_mount_points_alone_stacked_ones_each_time(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "40 22 8:1 /srv/data /mnt/my\\040data rw master:3 propagate_from:1 - ext4 /dev/sda1 rw\n"
        "41 40 0:28 / /mnt/my\\040data rw - tmpfs tmpfs rw\n")
    assert list(mountinfo.mount_points(str(info))) == ["/", "/mnt/my data", "/mnt/my data"]


def test_a_long_mountinfo_is_read_whole(tmp_path):
    info = tmp_path / "mountinfo"
    lines = [f"{n} 1 0:{n} / /m/{n:05} rw - tmpfs tmpfs rw\n" for n in range(3000)]
    info.write_text("".join(lines))                           # ~140 KiB: several reads
    assert list(mountinfo.mount_points(str(info))) == [f"/m/{n:05}" for n in range(3000)]


def test_paths_are_unescaped_as_the_kernel_escapes_them():
    assert mountinfo.unescape(b"/a\\040b\\011c\\012d\\134e") == "/a b\tc\nd\\e"
    # anything else is the path's own bytes, as os.fsdecode has them (UTF-8 is not
    # mistaken for escapes, as a unicode_escape decoding did)
    assert mountinfo.unescape("/home/josé/x\\040y".encode()) == "/home/josé/x y"
    assert mountinfo.unescape(b"/bad\xffname") == os.fsdecode(b"/bad\xffname")


def test_this_process_sees_its_root():
    assert ("/" in {point for point, _root, _fstype in mountinfo.mounts()})
