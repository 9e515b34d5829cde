"""Paths inside a root directory (a container's rootfs, an image's), resolved as a process
chrooted there would see them: the one resolver handcar has. The rootfs builder
(child/mounts.py) opens and mounts on what it gives; the friendly mode reads an image's
files through it."""

import errno
import os
import stat

from rootless.errors import SetupError

MAX_SYMLINKS = 255

# # Where the kernel has openat2 (Linux 5.6), it resolves paths with RESOLVE_IN_ROOT: the
# way a process chrooted into the rootfs would see them, in one system call. Elsewhere a
# walk does the same in Python. Either way the result is opened again (O_PATH, no
# symlinks allowed on the way where openat2 can say so) and checked to be inside the
# rootfs before anything is mounted on it or made in it.

_have_openat2 = None                 # found out on first use


def has_openat2():
    global _have_openat2
    if _have_openat2 is None:
        try:
            from rootless.system import libc    # (not on delete's path: remove_tree)
            os.close(libc.openat2(-100, "/", os.O_PATH | os.O_CLOEXEC, 0))   # AT_FDCWD
            _have_openat2 = True
        except OSError as err:
            if err.errno not in (errno.ENOSYS, errno.EPERM):
                raise
            _have_openat2 = False
    return _have_openat2


def resolve_in_root(root, path):
    """The host path of `path` inside `root`, following symlinks as the container would:
    absolute links and '..' never leave `root`. Missing components are kept as given."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if has_openat2():
        try:
            return _resolve_with_openat2(root, parts, path)
        except _NoProcFs:
            pass                          # after pivot_root, in a container without /proc
    return _walk(root, [], parts, path)


class _NoProcFs(Exception):
    pass


def _resolve_with_openat2(root, parts, path):
    """The kernel resolves the longest part of `path` that exists; the walk finishes (what
    is left starts with a missing name, or a symlink to one)."""
    from rootless.system import libc
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for end in range(len(parts), -1, -1):
            try:
                fd = libc.openat2(root_fd, "/".join(parts[:end]) or ".",
                                  os.O_PATH | os.O_CLOEXEC,
                                  libc.RESOLVE_IN_ROOT | libc.RESOLVE_NO_MAGICLINKS)
                break
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as err:
                if err.errno == errno.ELOOP:
                    raise SetupError(f"resolving {path}: too many levels of symbolic links "
                                     "(or a /proc magic link)") from None
                raise
    finally:
        os.close(root_fd)
    try:
        found = os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        raise _NoProcFs() from None
    finally:
        os.close(fd)
    resolved = relative(root, found)
    if resolved is None:
        return _walk(root, [], parts, path)   # `root` is not spelled as the kernel sees it
    if end == len(parts):
        return found
    return _walk(root, [] if resolved == "." else resolved.split("/"), parts[end:], path)


def _walk(root, current, parts, path):
    """Resolve `parts` below the components `current` (already resolved) of `root`, one
    lstat at a time, the way RESOLVE_IN_ROOT does."""
    parts = list(parts)
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if current:
                current.pop()
            continue
        host = os.path.join(root, *current, part)
        try:
            st = os.lstat(host)
        except (FileNotFoundError, NotADirectoryError):
            current.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            current.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise SetupError(f"resolving {path}: too many levels of symbolic links")
        target = os.readlink(host)
        if target.startswith("/"):
            current = []
        parts = [p for p in target.split("/") if p] + parts
    return os.path.join(root, *current)


def inside(root, path):
    """Whether `path` is `root` or below it (both normalized)."""
    return root == "/" or path == root or path.startswith(root + "/")


def relative(root, host_path):
    """`host_path` relative to `root` ("." for `root` itself), both normalized; None where
    it is not inside `root`. (What os.path.relpath says here, at a twentieth of its cost:
    a rootfs build asks ~80 times.)"""
    root, host_path = os.path.normpath(root), os.path.normpath(host_path)
    if host_path == root:
        return "."
    below = root if root == "/" else root + "/"
    return host_path[len(below):] if host_path.startswith(below) else None


def remove_tree(path):
    """shutil.rmtree(path, ignore_errors=True), without importing shutil on delete's path."""
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            remove_tree(entry.path)
        else:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def _open_directory(name, dir_fd):
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                   dir_fd=dir_fd)


def copy_tree(source_fd, target_fd):
    """Copy the content of one directory into another (both open descriptors): files,
    directories, symlinks and fifos, with their owners, modes and times, a file's hard
    links as hard links (sockets and device nodes are left out: a user without root cannot
    make them). The one tree copy: tmpcopyup's tmpfs, an image's layers and root where no
    overlay can be mounted, an image flattened for handcar debug."""
    _TreeCopy(target_fd).copy(source_fd, target_fd, "")


class _TreeCopy:
    def __init__(self, top_fd):
        self.top_fd = top_fd
        self.first_names = {}             # (device, inode) of a linked file -> its copy's path

    def copy(self, source_fd, target_fd, below):
        with os.scandir(source_fd) as entries:
            for entry in entries:
                self.entry(entry.name, entry.stat(follow_symlinks=False), source_fd,
                           target_fd, below)

    def entry(self, name, st, source_fd, target_fd, below):
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(name, 0o700, dir_fd=target_fd)
            source, target = _open_directory(name, source_fd), _open_directory(name, target_fd)
            try:
                self.copy(source, target, f"{below}{name}/")
            finally:
                os.close(source)
                os.close(target)
        elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1 \
                and (st.st_dev, st.st_ino) in self.first_names:
            os.link(self.first_names[st.st_dev, st.st_ino], name, src_dir_fd=self.top_fd,
                    dst_dir_fd=target_fd, follow_symlinks=False)
            return                        # one inode: owner, mode and times are set
        elif stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1:
                self.first_names[st.st_dev, st.st_ino] = below + name
            _copy_file(name, source_fd, target_fd)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=source_fd), name, dir_fd=target_fd)
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(name, 0o600, dir_fd=target_fd)
        else:
            return                        # sockets and devices
        os.chown(name, st.st_uid, st.st_gid, dir_fd=target_fd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):  # after chown, which clears setuid bits
            os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=target_fd)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=target_fd,
                 follow_symlinks=False)


def _copy_file(name, source_fd, target_fd):
    source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=source_fd)
    try:
        target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=target_fd)
        try:
            while os.sendfile(target, source, None, 1 << 20):
                pass
        finally:
            os.close(target)
    finally:
        os.close(source)


def copy_directory(source, destination):
    """copy_tree between two paths: the content of `source` into the directory
    `destination`, which exists."""
    source_fd = _open_directory(source, None)
    try:
        target_fd = _open_directory(destination, None)
        try:
            copy_tree(source_fd, target_fd)
        finally:
            os.close(target_fd)
    finally:
        os.close(source_fd)


def read_regular_file(path, limit=1 << 20):
    """The text of the regular file at `path` (a final symlink not followed), or "" when
    it is missing, not a regular file, or unreadable: an image's file, read for the user
    and group names, which a hostile image must not turn into /dev/zero or a fifo."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return ""
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return f.read(limit).decode(errors="replace")


def make_searchable(path):
    """Let a removal enter the directories of a tree written without permissions
    (overlay's work directory leaves a d--------- one)."""
    for directory, subdirs, _files in os.walk(path):
        for name in subdirs:
            try:
                os.chmod(os.path.join(directory, name), 0o700)
            except OSError:
                pass
