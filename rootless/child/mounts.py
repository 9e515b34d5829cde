"""The container's root filesystem, built by init inside its new mount namespace.

Every mount destination is resolved inside the rootfs (symlinks are followed as if the
rootfs were `/`), and the final mount goes through an O_PATH descriptor whose real path is
checked to be inside the rootfs, so a hostile image cannot send a mount elsewhere.
Without root, device nodes cannot be made: they are bind mounts of the host's nodes, and
remounts keep the flags the kernel locks on mounts inherited from the host.
"""

import errno
import os
import stat

from oci import mounts as opts
from rootless.system import libc
from rootless.system import mountinfo
from rootless.errors import SetupError, step

DEFAULT_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_SYMLINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"),
                ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr"),
                ("pts/ptmx", "ptmx"))
MAX_SYMLINKS = 255

# statvfs f_flag bit -> mount flag, for the flags a remount must keep.
_STATVFS_FLAGS = ((os.ST_RDONLY, opts.RDONLY), (os.ST_NOSUID, opts.NOSUID),
                  (os.ST_NODEV, opts.NODEV), (os.ST_NOEXEC, opts.NOEXEC),
                  (os.ST_NOATIME, opts.NOATIME), (os.ST_NODIRATIME, opts.NODIRATIME),
                  (os.ST_RELATIME, opts.RELATIME))


# --- paths inside the rootfs ------------------------------------------------------------
#
# Where the kernel has openat2 (Linux 5.6), it resolves paths with RESOLVE_IN_ROOT: the
# way a process chrooted into the rootfs would see them, in one system call. Elsewhere a
# walk does the same in Python. Either way the result is opened again (O_PATH, no
# symlinks allowed on the way where openat2 can say so) and checked to be inside the
# rootfs before anything is mounted on it or made in it.

_IN_ROOT = libc.RESOLVE_IN_ROOT | libc.RESOLVE_NO_MAGICLINKS
_NO_LINKS_BENEATH = libc.RESOLVE_BENEATH | libc.RESOLVE_NO_SYMLINKS | libc.RESOLVE_NO_MAGICLINKS
_have_openat2 = None                 # found out on first use


def has_openat2():
    global _have_openat2
    if _have_openat2 is None:
        try:
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
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for end in range(len(parts), -1, -1):
            try:
                fd = libc.openat2(root_fd, "/".join(parts[:end]) or ".",
                                  os.O_PATH | os.O_CLOEXEC, _IN_ROOT)
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
    resolved = _relative(root, found)
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


def _mount_point_of(path):
    """The mount point of the mount that holds `path`."""
    best = "/"
    for point, _root, _fstype in mountinfo.mounts():
        if _inside(point, path) and len(point) > len(best):
            best = point
    return best


def _inside(root, path):
    return root == "/" or path == root or path.startswith(root + "/")


def _relative(root, host_path):
    """`host_path` relative to `root` ("." for `root` itself), both normalized; None where
    it is not inside `root`. (What os.path.relpath says here, at a twentieth of its cost:
    a rootfs build asks ~80 times.)"""
    root, host_path = os.path.normpath(root), os.path.normpath(host_path)
    if host_path == root:
        return "."
    below = root if root == "/" else root + "/"
    return host_path[len(below):] if host_path.startswith(below) else None


def _relative_inside(root, host_path):
    """_relative, for a path that must be inside `root`."""
    relative = _relative(root, host_path)
    if relative is None:
        raise SetupError(f"{host_path} is outside the container's rootfs {root}")
    return relative


def open_in_root(root, host_path, flags=os.O_PATH):
    """An fd for `host_path` (a path resolve_in_root gave), checked to be inside `root`:
    with openat2, opened from `root` with no symlink allowed on the way (one planted
    since resolving fails); without, opened O_NOFOLLOW and its real path checked."""
    relative = _relative_inside(root, host_path)
    if has_openat2():
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = libc.openat2(root_fd, relative, flags | os.O_NOFOLLOW | os.O_CLOEXEC,
                              _NO_LINKS_BENEATH)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.EXDEV):
                raise SetupError(f"{host_path} changed into a symlink since it was resolved "
                                 "in the container's rootfs") from None
            raise
        finally:
            os.close(root_fd)
    else:
        fd = os.open(host_path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    return _checked_inside(root, fd, host_path)


def _checked_inside(root, fd, host_path):
    """`fd` (of `host_path`), once its real path is seen to be inside `root`; closed and
    refused otherwise."""
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        return fd                         # no /proc here (after pivot_root): openat2 checked
    if not _inside(root, real):
        os.close(fd)
        raise SetupError(f"{host_path} resolves to {real}, outside the container's rootfs")
    return fd


class opened_in_root:
    """`with opened_in_root(root, path) as fd_path:` a /proc/self/fd path for `path`,
    checked to still be inside `root` once open (closing the gap between resolving a path
    and mounting on it)."""

    def __init__(self, root, host_path):
        self.root, self.host_path = root, host_path

    def __enter__(self):
        self.fd = open_in_root(self.root, self.host_path)
        return f"/proc/self/fd/{self.fd}"

    def __exit__(self, *_exc):
        os.close(self.fd)
        return False


class made_in_root(opened_in_root):
    """`with made_in_root(root, path) as (host_path, fd_path):` make_in_root, and a
    /proc/self/fd path for what it made or found, checked as opened_in_root checks (the
    descriptor that made it is the one mounted on: no second open)."""

    def __init__(self, root, path, directory=True):
        self.root, self.path, self.directory = root, path, directory

    def __enter__(self):
        host_path, self.fd = _make_and_open_in_root(self.root, self.path, self.directory)
        return host_path, f"/proc/self/fd/{self.fd}"


def make_in_root(root, path, directory=True):
    """Resolve `path` inside `root` and create it (a directory, or an empty file for a
    file bind mount) with its parents if it does not exist. Returns the host path."""
    host, fd = _make_and_open_in_root(root, path, directory)
    os.close(fd)
    return host


def _make_and_open_in_root(root, path, directory):
    """make_in_root's host path, and an O_PATH fd of it checked to be inside `root`."""
    host = resolve_in_root(root, path)
    if directory:
        return host, _makedirs_in_root(root, host)
    return host, _make_file_in_root(root, host)


def _make_file_in_root(root, host):
    """An O_PATH fd of `host`, checked to be inside `root`; an empty file (with its
    missing parents) where nothing is there yet."""
    if os.path.lexists(host):
        return open_in_root(root, host)
    parent = _makedirs_in_root(root, os.path.dirname(host))
    name = os.path.basename(host)
    try:
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o644, dir_fd=parent))
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    finally:
        os.close(parent)
    return _checked_inside(root, fd, host)


def _makedirs_in_root(root, host):
    """An O_PATH fd of directory `host`, checked to be inside `root`. Where it is missing,
    it is made with its missing parents, each one in its parent's fd and opened without
    following symlinks (one planted meanwhile is refused)."""
    if has_openat2():
        try:
            # Usually it is there: one call, which refuses symlinks on the way as the walk
            # below does.
            return open_in_root(root, host, os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            pass
    relative = _relative_inside(root, host)
    parent = open_in_root(root, root, os.O_PATH | os.O_DIRECTORY)
    try:
        for part in ([] if relative == "." else relative.split("/")):
            try:
                os.mkdir(part, 0o755, dir_fd=parent)
            except FileExistsError:
                if stat.S_ISLNK(os.stat(part, dir_fd=parent, follow_symlinks=False).st_mode):
                    raise SetupError(f"{host}: {part} changed into a symlink while being "
                                     "created") from None
            child = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                            dir_fd=parent)
            os.close(parent)
            parent = child
    except BaseException:
        os.close(parent)
        raise
    return _checked_inside(root, parent, host)


# --- flags ------------------------------------------------------------------------------

def locked_flags(path):
    """The flags of the mount at `path` that an unprivileged remount must keep."""
    flags = 0
    f_flag = os.statvfs(path).f_flag
    for st_bit, ms_bit in _STATVFS_FLAGS:
        if f_flag & st_bit:
            flags |= ms_bit
    if not flags & (opts.NOATIME | opts.RELATIME):
        flags |= opts.STRICTATIME
    return flags


def remount(path, flags, cleared=0):
    """Remount the bind mount at `path` with `flags` added to what it has."""
    kept = locked_flags(path) & ~cleared
    if flags & opts.ATIME_FLAGS:
        kept &= ~opts.ATIME_FLAGS
    libc.mount(None, path, None, opts.BIND | opts.REMOUNT | kept | flags)


# --- the rootfs -------------------------------------------------------------------------

class RootfsBuilder:
    def __init__(self, spec, rootfs, bundle, private_netns, private_cgroupns):
        self.spec = spec
        self.root = rootfs                 # a real path: symlinks resolved by the parent
        self.bundle = bundle
        self.private_netns = private_netns
        self.private_cgroupns = private_cgroupns

    def build(self):
        """Everything up to pivot_root (which `enter` does)."""
        linux = self.spec.linux
        # From the bundle, as runc builds it: a relative path in a mount's options (the
        # short lowerdir names of an image's overlay, see image/store.py) is the bundle's.
        # (A container root mapped to an id that may not enter the bundle stays where it
        # is: only relative options would need it.)
        try:
            os.chdir(self.bundle)
        except OSError:
            pass
        propagation = opts.PROPAGATION.get(linux.rootfs_propagation, opts.SLAVE | opts.REC)
        with step("making / " + (linux.rootfs_propagation or "rslave")):
            libc.mount(None, "/", None, propagation)
        with step(f"binding the rootfs {self.root}"):
            if propagation & opts.SHARED:
                # pivot_root refuses a new root whose parent mount is shared.
                libc.mount(None, _mount_point_of(self.root), None, opts.PRIVATE)
            libc.mount(self.root, self.root, None, opts.BIND | opts.REC)
        for mount in self.spec.mounts:
            self.mount(mount)
        if any(os.path.normpath(m.destination) == "/dev" for m in self.spec.mounts):
            self.populate_dev()
        for device in linux.devices:
            self.bind_device(device.path, device.path)
        cwd = self.spec.process.cwd
        with step(f"creating the working directory {cwd}"):
            make_in_root(self.root, cwd)

    def mount(self, mount):
        parsed = opts.parse_options(mount.options)
        what = f"mounting {mount.type or 'bind'} on {mount.destination}"
        with step(what):
            if mount.type == "bind" or parsed.is_bind:
                self.bind(self._source(mount.source), mount.destination, parsed)
            elif mount.type == "sysfs" and not self.private_netns:
                # sysfs can only be mounted by the owner of the network namespace.
                self.bind("/sys", mount.destination, opts.parse_options(
                    ("rbind",) + tuple(mount.options)))
            elif mount.type in ("cgroup", "cgroup2"):
                self.mount_cgroup(mount, parsed)
            else:
                self.mount_fs(mount, parsed)
            if parsed.propagation:
                target = resolve_in_root(self.root, mount.destination)
                for flag in parsed.propagation:
                    libc.mount(None, target, None, flag)

    def _source(self, source):
        return source if source.startswith("/") else os.path.join(self.bundle, source)

    def bind(self, source, destination, parsed):
        is_dir = os.path.isdir(source)
        if not is_dir and not os.path.exists(source):
            raise SetupError(f"bind source {source} does not exist")
        with made_in_root(self.root, destination, directory=is_dir) as (target, fd_path):
            libc.mount(source, fd_path, None, parsed.flags & (opts.BIND | opts.REC))
        extra = parsed.flags & ~(opts.BIND | opts.REC | opts.REMOUNT)
        if extra or parsed.cleared:
            with opened_in_root(self.root, target) as fd_path:
                remount(fd_path, extra, parsed.cleared)
                if parsed.flags & opts.REC and extra & opts.RDONLY:
                    _submounts_readonly(target, fd_path)

    def mount_fs(self, mount, parsed):
        with made_in_root(self.root, mount.destination) as (target, fd_path):
            if not (parsed.copy_up and mount.type == "tmpfs"):
                self._mount_fs_on(fd_path, mount, parsed)
                return
            # what the tmpfs covers stays reachable through a descriptor opened before
            covered = os.open(fd_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                self._mount_fs_on(fd_path, mount, parsed)
                with step("copying what the image has there into it (tmpcopyup)"), \
                        opened_in_root(self.root, target) as tmpfs_path:
                    tmpfs = os.open(tmpfs_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    try:
                        copy_tree(covered, tmpfs)
                    finally:
                        os.close(tmpfs)
            finally:
                os.close(covered)

    def _mount_fs_on(self, fd_path, mount, parsed):
        libc.mount(mount.source or mount.type, fd_path, mount.type,
                   parsed.flags & ~opts.REMOUNT, parsed.data or None)

    def mount_cgroup(self, mount, parsed):
        """A private cgroup2 mount where the host is unified and the container has its own
        cgroup namespace (it then shows the container's own subtree); otherwise a
        read-only rbind of the host's /sys/fs/cgroup."""
        host_unified = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        if self.private_cgroupns and (host_unified or mount.type == "cgroup2"):
            with made_in_root(self.root, mount.destination) as (_target, fd_path):
                try:
                    libc.mount("cgroup2", fd_path, "cgroup2", parsed.flags, None)
                    return
                except OSError as err:
                    if err.errno not in (errno.EPERM, errno.EBUSY, errno.EINVAL):
                        raise
        self.bind("/sys/fs/cgroup", mount.destination, opts.parse_options(
            ("rbind",) + tuple(mount.options)))

    def bind_device(self, host_path, container_path):
        _check_host_device(host_path)
        with step(f"binding device {container_path}"):
            with made_in_root(self.root, container_path, directory=False) as (_target,
                                                                              fd_path):
                libc.mount(host_path, fd_path, None, opts.BIND)

    def populate_dev(self):
        """The default nodes and links in the /dev a mount made. That is usually a new
        tmpfs, empty: they are made in one descriptor of it rather than each resolved on
        its own (a node's descriptor is still checked before it is mounted on). A name
        already there goes the general way (resolved in the rootfs, as the image's
        symlinks say)."""
        links = DEV_SYMLINKS
        if os.path.exists("/proc/kcore"):
            links += (("/proc/kcore", "core"),)
        with step("opening /dev"):
            dev_path = resolve_in_root(self.root, "/dev")
            # Nodes are mounted in this directory, never on it (a node cannot be bound on
            # a directory): it stays what /dev is while they are.
            dev = open_in_root(self.root, dev_path, os.O_PATH | os.O_DIRECTORY)
        try:
            for name in DEFAULT_DEVICES:
                if _lexists_in(dev, name):
                    self.bind_device(f"/dev/{name}", f"/dev/{name}")
                else:
                    self._bind_new_device(dev, dev_path, name)
            for target, name in links:
                with step(f"linking /dev/{name}"):
                    try:
                        os.symlink(target, name, dir_fd=dev)
                    except FileExistsError:
                        self._link_over(target, name)
        finally:
            os.close(dev)

    def _bind_new_device(self, dev, dev_path, name):
        """The host's /dev/`name` bound on a new file `name` in `dev`."""
        host_path = f"/dev/{name}"
        _check_host_device(host_path)
        with step(f"binding device {host_path}"):
            made = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                           | os.O_CLOEXEC, 0o644, dir_fd=dev)
            node = _checked_inside(self.root, made, f"{dev_path}/{name}")
            try:
                # the descriptor that made the file is the mount's target
                libc.mount(host_path, f"/proc/self/fd/{node}", None, opts.BIND)
            finally:
                os.close(node)

    def _link_over(self, target, name):
        """/dev/`name` -> `target` where the image has that name in /dev already: ptmx is
        replaced, the others are kept."""
        path = resolve_in_root(self.root, f"/dev/{name}")
        if name == "ptmx" and os.path.lexists(path):
            os.unlink(path)
        if not os.path.lexists(path):
            os.symlink(target, path)

    def enter(self, no_pivot):
        with step(f"entering the rootfs {self.root}"):
            os.chdir(self.root)
            if no_pivot:
                libc.mount(self.root, "/", None, libc.MS_MOVE)
                os.chroot(".")
            else:
                # pivot_root(".", ".") stacks the old root on the new one; detaching "."
                # then removes the old root without needing a directory for it.
                libc.pivot_root(".", ".")
                libc.umount2(".", libc.MNT_DETACH)
            os.chdir("/")
        propagation = self.spec.linux.rootfs_propagation
        if propagation:
            # Now that the rootfs is "/", give it the propagation the config asks for.
            with step(f"making the rootfs {propagation}"):
                libc.mount(None, "/", None, opts.PROPAGATION[propagation])


def _lexists_in(dir_fd, name):
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _check_host_device(host_path):
    if not os.path.exists(host_path):
        raise SetupError(f"device {host_path} does not exist on the host (without root, "
                         "devices are bind mounts of the host's)")


def _open_directory(name, dir_fd):
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                   dir_fd=dir_fd)


def copy_tree(source_fd, target_fd):
    """Copy the content of one directory into another (both open descriptors): files,
    directories, symlinks and fifos, with their owners and modes."""
    with os.scandir(source_fd) as entries:
        for entry in entries:
            _copy_entry(entry.name, entry.stat(follow_symlinks=False), source_fd, target_fd)


def _copy_entry(name, st, source_fd, target_fd):
    if stat.S_ISDIR(st.st_mode):
        os.mkdir(name, 0o700, dir_fd=target_fd)
        source, target = _open_directory(name, source_fd), _open_directory(name, target_fd)
        try:
            copy_tree(source, target)
        finally:
            os.close(source)
            os.close(target)
    elif stat.S_ISREG(st.st_mode):
        _copy_file(name, source_fd, target_fd)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=source_fd), name, dir_fd=target_fd)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(name, 0o600, dir_fd=target_fd)
    else:
        return                            # sockets and devices: not for a tmpfs
    os.chown(name, st.st_uid, st.st_gid, dir_fd=target_fd, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):      # after chown, which clears setuid bits
        os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=target_fd)


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


def _submounts_readonly(top, fd_path):
    """A remount changes one mount: make the rest of a read-only rbind (at `top`, open at
    `fd_path`) read-only too: /sys and /sys/fs/cgroup from the host would otherwise stay
    writable below it. mount_setattr does the whole tree in one call (setting read-only
    never touches a flag the kernel locks); where it cannot, each submount is remounted."""
    try:
        libc.mount_setattr(fd_path, libc.MOUNT_ATTR_RDONLY, recursive=True)
        return
    except OSError as err:
        if err.errno not in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
            raise
    # A mount point appears once for each mount stacked on it; remounting the path
    # changes the top one, which is all a remount can reach: once is enough.
    points = dict.fromkeys(mountinfo.mount_points())
    for point in points:
        if point.startswith(top + "/"):
            with step(f"making {point} read-only"):
                remount(point, opts.RDONLY)


def finish_rootfs(spec):
    """After pivot_root: masked paths, read-only paths, a read-only root."""
    for path in spec.linux.masked_paths:
        mask_path(path)
    for path in spec.linux.readonly_paths:
        make_readonly(path)
    if spec.root_readonly:
        with step("remounting / read-only"):
            remount("/", opts.RDONLY)


def mask_path(path):
    target = resolve_in_root("/", path)
    if not os.path.exists(target):
        return
    with step(f"masking {path}"):
        if os.path.isdir(target):
            libc.mount("tmpfs", target, "tmpfs", opts.RDONLY, None)
        else:
            libc.mount("/dev/null", target, None, opts.BIND)


def make_readonly(path):
    target = resolve_in_root("/", path)
    if not os.path.exists(target):
        return
    with step(f"making {path} read-only"):
        libc.mount(target, target, None, opts.BIND | opts.REC)
        remount(target, opts.RDONLY)
