"""The one tree copy (system/fs.py copy_tree, copy_directory): what tmpcopyup, an image's
vfs layers and flattened roots rely on, on a plain directory."""

import os
import stat

from rootless.system.fs import copy_directory


def test_a_tree_is_copied_with_its_links_modes_and_times(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    (source / "dir" / "sub").mkdir(parents=True)
    (source / "dir" / "file").write_text("content")
    os.chmod(source / "dir" / "file", 0o4751)
    os.link(source / "dir" / "file", source / "hard")             # another name, one file
    os.symlink("dir", source / "link")                            # not followed
    os.mkfifo(source / "fifo", 0o640)
    os.utime(source / "dir" / "file", ns=(1_000_000_000, 2_000_000_000))
    os.utime(source / "dir", ns=(3_000_000_000, 4_000_000_000))
    target.mkdir()
    copy_directory(str(source), str(target))
    copied = os.stat(target / "dir" / "file")
    assert (target / "dir" / "file").read_text() == "content"
    assert stat.S_IMODE(copied.st_mode) == 0o4751 and copied.st_mtime_ns == 2_000_000_000
    assert os.stat(target / "hard").st_ino == copied.st_ino and copied.st_nlink == 2
    assert os.readlink(target / "link") == "dir" and not (target / "link" / "x").exists()
    assert stat.S_ISFIFO(os.lstat(target / "fifo").st_mode)
    assert (target / "dir" / "sub").is_dir()
    # a directory's time is set once its content is in it
    assert os.stat(target / "dir").st_mtime_ns == 4_000_000_000
