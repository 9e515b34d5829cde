"""Reading a file of an image from its layer directories without mounting them, as
overlayfs would show it (a container's /etc/passwd, before the container exists): the
topmost layer holding a name wins, a whiteout (a 0/0 character device) hides it, an
opaque directory (user.overlay.opaque=y) hides what is below it, and symbolic links are
followed inside the image, never out of it. Layers fuse-overlayfs wrote may also hold its
own forms: user.fuseoverlayfs.opaque, a .wh..wh..opq file, .wh.NAME files."""

import os
import stat

MAX_SYMLINKS = 40
OPAQUE_XATTRS = ("user.overlay.opaque", "user.fuseoverlayfs.opaque")
OPAQUE_FILE = ".wh..wh..opq"
WHITEOUT_PREFIX = ".wh."


def read_image_file(layers, path, limit=1 << 20):
    """The text of a regular file of the image whose layer directories are `layers`
    (bottom first), or "" when it is missing, not a regular file, or unreadable."""
    from rootless.system.fs import read_regular_file
    found = _lookup(list(reversed(layers)), path)
    return "" if found is None else read_regular_file(found, limit)


def _is_whiteout(st):
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path):
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return os.path.lexists(os.path.join(path, OPAQUE_FILE))


def _lookup(top_first, path):
    """The host path of the entry `path` names in the merged tree, symbolic links on the
    way (and at the end) followed inside it; None when there is none."""
    todo = [p for p in reversed(path.split("/")) if p]
    done = []                     # the components resolved so far (real directories)
    dirs = list(top_first)        # the layers' directories that `done` is, top first
    links = 0
    while todo:
        part = todo.pop()
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
                dirs = _directories(top_first, done)
            continue
        entry, below = _entry(dirs, part)
        if entry is None:
            return None
        st = os.lstat(entry)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                return None
            target = os.readlink(entry)
            if target.startswith("/"):
                done, dirs = [], list(top_first)
            todo += [p for p in reversed(target.split("/")) if p]
            continue
        if stat.S_ISDIR(st.st_mode):
            done.append(part)
            dirs = below
            continue
        if todo:
            return None                                  # a file on the way
        return entry
    return None                                          # a directory: not a file


def _entry(dirs, name):
    """(the topmost entry `name` in these directories, or None; when it is a directory,
    the directories of the same name it merges with, top first)."""
    found, merged = None, []
    for directory in dirs:
        if os.path.lexists(os.path.join(directory, WHITEOUT_PREFIX + name)):
            break                                # fuse-overlayfs's whiteout
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if _is_whiteout(st):
            break
        if not stat.S_ISDIR(st.st_mode):
            if found is None:
                found = path
            break
        found = found or path
        merged.append(path)
        if _is_opaque(path):
            break
    return found, merged


def _directories(top_first, parts):
    """The layers' directories that the real directory `parts` is, top first."""
    dirs = list(top_first)
    for part in parts:
        _found, dirs = _entry(dirs, part)
    return dirs
