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
from rootless.system.libc import SYSCALLS
from rootless.system import mountinfo
from rootless.system.fs import copy_tree, has_openat2, inside, relative, resolve_in_root
from rootless.errors import SetupError, step

DEFAULT_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_SYMLINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"),
                ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr"),
                ("pts/ptmx", "ptmx"))

# statvfs f_flag bit -> mount flag, for the flags a remount must keep.
_STATVFS_FLAGS = ((os.ST_RDONLY, opts.RDONLY), (os.ST_NOSUID, opts.NOSUID),
                  (os.ST_NODEV, opts.NODEV), (os.ST_NOEXEC, opts.NOEXEC),
                  (os.ST_NOATIME, opts.NOATIME), (os.ST_NODIRATIME, opts.NODIRATIME),
                  (os.ST_RELATIME, opts.RELATIME))




def _relative_inside(root, host_path):
    """fs.relative, for a path that must be inside `root`."""
    below = relative(root, host_path)
    if below is None:
        raise SetupError(f"{host_path} is outside the container's rootfs {root}")
    return below


_NO_LINKS_BENEATH = libc.RESOLVE_BENEATH | libc.RESOLVE_NO_SYMLINKS | libc.RESOLVE_NO_MAGICLINKS


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
    if not inside(root, real):
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


_ACCESS_TIME = opts.ATIME_FLAGS | opts.NODIRATIME


def remount(path, flags, cleared=0, syscalls=SYSCALLS):
    """Remount the bind mount at `path` with `flags` added to what it has. In a user
    namespace the kernel locks the access-time flags of a mount that came from the host:
    where the options ask for others, the mount keeps its own (as crun does) rather than
    fail with EPERM."""
    locked = locked_flags(path)
    kept = locked & ~cleared
    if flags & opts.ATIME_FLAGS:
        kept &= ~opts.ATIME_FLAGS
    try:
        syscalls.mount(None, path, None, opts.BIND | opts.REMOUNT | kept | flags)
    except PermissionError:
        if not (flags | cleared) & _ACCESS_TIME:
            raise
        syscalls.mount(None, path, None, opts.BIND | opts.REMOUNT | (kept & ~_ACCESS_TIME)
                       | (flags & ~_ACCESS_TIME) | (locked & _ACCESS_TIME))


def set_recursive(fd_path, parsed, syscalls=SYSCALLS):
    """The recursive options (rro, rnosuid, ...) on the mount open at `fd_path` and every
    mount below it, with one mount_setattr(AT_RECURSIVE). Access-time options the kernel
    refuses (locked on mounts from the host, in a user namespace) are left as the mounts
    have them, as remount does."""
    attr_set, attr_clr = parsed.recursive_set, parsed.recursive_clear
    try:
        try:
            syscalls.mount_setattr(fd_path, attr_set, recursive=True, attr_clr=attr_clr)
        except PermissionError:
            access_time = opts.ATTR__ATIME | opts.ATTR_NODIRATIME
            if not (attr_set | attr_clr) & access_time:
                raise
            syscalls.mount_setattr(fd_path, attr_set & ~access_time, recursive=True,
                                   attr_clr=attr_clr & ~access_time)
    except OSError as err:
        if err.errno == errno.ENOSYS:
            raise SetupError("recursive mount options need mount_setattr (Linux 5.12)") \
                from None
        if err.errno == errno.EPERM:
            raise SetupError("the kernel refuses a recursive option: a mount in this tree "
                             "came from the host with that flag locked (without privilege "
                             "it can be made stricter, not looser)") from None
        raise


def restrict_device(fd_path, syscalls=SYSCALLS):
    """A bound device node nosuid and noexec, as runc's are (mount_setattr changes only
    these two flags; a remount must repeat the others)."""
    try:
        syscalls.mount_setattr(fd_path, opts.ATTR_NOSUID | opts.ATTR_NOEXEC)
    except OSError as err:
        if err.errno != errno.ENOSYS:
            raise
        remount(fd_path, opts.NOSUID | opts.NOEXEC, syscalls=syscalls)


# --- the rootfs -------------------------------------------------------------------------

class RootfsBuilder:
    def __init__(self, spec, rootfs, bundle, private_netns, private_cgroupns, syscalls=SYSCALLS,
                 mount_root=None):
        self.spec = spec
        self.mount_root = mount_root       # mount_root(data): the overlay on / (fuse_root)
        self.syscalls = syscalls           # the system calls (a recording fake in tests)
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
        # rslave: the host's mounts and unmounts reach the container, nothing goes back.
        # The config's rootfsPropagation is the rootfs's own, given to it once it is "/"
        # (enter): made here, on every mount, it would stop the rootfs being bound at all
        # (an unbindable tree) or let the container's mounts reach the host (shared).
        with step("making / rslave"):
            self.syscalls.mount(None, "/", None, opts.SLAVE | opts.REC)
        with step(f"binding the rootfs {self.root}"):
            self.syscalls.mount(self.root, self.root, None, opts.BIND | opts.REC)
        for mount in self.spec.mounts:
            self.mount(mount)
        # A /dev bound from elsewhere (the host's, say) is the container's as it is, as
        # runc leaves it: nothing is made or bound in someone else's directory.
        dev = _dev_mount(self.spec.mounts)
        dev_bound = dev and (dev.type == "bind" or opts.parse_options(dev.options).is_bind)
        if dev and not dev_bound:
            self.populate_dev()
        for device in linux.devices:
            if not (dev_bound and inside("/dev", os.path.normpath(device.path))):
                self.bind_device(device.path, device.path)
        cwd = self.spec.process.cwd
        with step(f"creating the working directory {cwd}"):
            make_in_root(self.root, cwd)

    def mount(self, mount):
        parsed = opts.parse_options(mount.options)
        what = f"mounting {mount.type or 'bind'} on {mount.destination}"
        with step(what):
            if self.mount_root and mount.destination == "/" and mount.type == "overlay":
                self.mount_root(parsed.data)
                return
            if mount.type == "bind" or parsed.is_bind:
                target = self.bind(self._source(mount.source), mount.destination, parsed)
            elif mount.type == "sysfs" and not self.private_netns:
                target = self.mount_sysfs_of_a_joined_netns(mount, parsed)
            elif mount.type in ("cgroup", "cgroup2"):
                target = self.mount_cgroup(mount, parsed)
            else:
                target = self.mount_fs(mount, parsed)
            if parsed.recursive:
                with step("setting its recursive options"), \
                        opened_in_root(self.root, target) as fd_path:
                    set_recursive(fd_path, parsed, self.syscalls)
            if parsed.propagation:
                target = resolve_in_root(self.root, mount.destination)
                for flag in parsed.propagation:
                    self.syscalls.mount(None, target, None, flag)

    def _source(self, source):
        return source if source.startswith("/") else os.path.join(self.bundle, source)

    def bind(self, source, destination, parsed):
        is_dir = os.path.isdir(source)
        if not is_dir and not os.path.exists(source):
            raise SetupError(f"bind source {source} does not exist")
        with made_in_root(self.root, destination, directory=is_dir) as (target, fd_path):
            self.syscalls.mount(source, fd_path, None, parsed.flags & (opts.BIND | opts.REC))
        extra = parsed.flags & ~(opts.BIND | opts.REC | opts.REMOUNT)
        if extra or parsed.cleared:
            with opened_in_root(self.root, target) as fd_path:
                remount(fd_path, extra, parsed.cleared, self.syscalls)
                if parsed.flags & opts.REC and extra & opts.RDONLY:
                    _submounts_readonly(target, fd_path, self.syscalls)
        return target

    def mount_fs(self, mount, parsed):
        with made_in_root(self.root, mount.destination) as (target, fd_path):
            if mount.type == "tmpfs" and not _has_mode(parsed.data):
                # crun's rule: a tmpfs without mode= has its mount point's
                mode = stat.S_IMODE(os.stat(fd_path).st_mode)
                parsed = parsed.replace(data=",".join(filter(None, (parsed.data,
                                                                    f"mode={mode:o}"))))
            if not (parsed.copy_up and mount.type == "tmpfs"):
                self._mount_fs_on(fd_path, mount, parsed)
                return target
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
        return target

    def mount_sysfs_of_a_joined_netns(self, mount, parsed):
        """sysfs in a network namespace the container joined (a pod's, podman's): only a
        process privileged over that namespace's owner may mount one. Root on the host
        can (under Kubernetes: the container then has its own /sys/fs/cgroup to mount its
        cgroup on); anyone else gets a read-only rbind of the host's /sys instead."""
        try:
            return self.mount_fs(mount, parsed)
        except OSError as err:
            if err.errno != errno.EPERM:
                raise
        return self.bind("/sys", mount.destination, opts.parse_options(
            ("rbind",) + tuple(mount.options)))

    def _mount_fs_on(self, fd_path, mount, parsed):
        data = parsed.data
        label = self.spec.linux.mount_label
        if label and mount.type not in ("proc", "sysfs", "cgroup", "cgroup2"):
            data = ",".join(filter(None, (data, f'context="{label}"')))   # SELinux's
        self.syscalls.mount(mount.source or mount.type, fd_path, mount.type,
                   parsed.flags & ~opts.REMOUNT, data or None)

    def mount_cgroup(self, mount, parsed):
        """A private cgroup2 mount where the host is unified and the container has its own
        cgroup namespace (it then shows the container's own subtree); otherwise a
        read-only rbind of the host's /sys/fs/cgroup."""
        host_unified = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        if self.private_cgroupns and (host_unified or mount.type == "cgroup2"):
            with made_in_root(self.root, mount.destination) as (target, fd_path):
                try:
                    self.syscalls.mount("cgroup2", fd_path, "cgroup2", parsed.flags, None)
                    return target
                except OSError as err:
                    if err.errno not in (errno.EPERM, errno.EBUSY, errno.EINVAL):
                        raise
        return self.bind("/sys/fs/cgroup", mount.destination, opts.parse_options(
            ("rbind",) + tuple(mount.options)))

    def bind_device(self, host_path, container_path):
        _check_host_device(host_path)
        with step(f"binding device {container_path}"):
            with made_in_root(self.root, container_path, directory=False) as (target,
                                                                              fd_path):
                self.syscalls.mount(host_path, fd_path, None, opts.BIND)
            with opened_in_root(self.root, target) as fd_path:   # the bound node, now
                restrict_device(fd_path, self.syscalls)

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
                    if name == "ptmx" and _lexists_in(dev, name):
                        os.unlink(name, dir_fd=dev)      # ours is devpts's: pts/ptmx
                    try:
                        os.symlink(target, name, dir_fd=dev)
                    except FileExistsError:
                        pass                             # the image's own link is kept
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
                self.syscalls.mount(host_path, f"/proc/self/fd/{node}", None, opts.BIND)
            finally:
                os.close(node)
            bound = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dev)
            try:
                restrict_device(f"/proc/self/fd/{bound}", self.syscalls)
            finally:
                os.close(bound)

    def enter(self, no_pivot):
        with step(f"entering the rootfs {self.root}"):
            os.chdir(self.root)
            if no_pivot:
                self.syscalls.mount(self.root, "/", None, libc.MS_MOVE)
                os.chroot(".")
            else:
                # pivot_root(".", ".") stacks the old root on the new one; detaching "."
                # then removes the old root without needing a directory for it.
                self.syscalls.pivot_root(".", ".")
                self.syscalls.umount2(".", libc.MNT_DETACH)
            os.chdir("/")
        propagation = self.spec.linux.rootfs_propagation
        if propagation:
            # Now that the rootfs is "/", give it the propagation the config asks for.
            with step(f"making the rootfs {propagation}"):
                self.syscalls.mount(None, "/", None, opts.PROPAGATION[propagation])


def _dev_mount(mounts):
    """The last mount on /dev (the one the container sees there), or None."""
    found = None
    for mount in mounts:
        if os.path.normpath("/" + mount.destination.lstrip("/")) == "/dev":
            found = mount
    return found


def _has_mode(data):
    return any(option.startswith("mode=") for option in data.split(","))


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


def _submounts_readonly(top, fd_path, syscalls=SYSCALLS):
    """A remount changes one mount: make the rest of a read-only rbind (at `top`, open at
    `fd_path`) read-only too: /sys and /sys/fs/cgroup from the host would otherwise stay
    writable below it. mount_setattr does the whole tree in one call (setting read-only
    never touches a flag the kernel locks); where it cannot, each submount is remounted."""
    try:
        syscalls.mount_setattr(fd_path, libc.MOUNT_ATTR_RDONLY, recursive=True)
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
                remount(point, opts.RDONLY, syscalls=syscalls)


def finish_rootfs(spec, syscalls=SYSCALLS):
    """After pivot_root: masked paths, read-only paths, a read-only root."""
    for path in spec.linux.masked_paths:
        mask_path(path, syscalls)
    for path in spec.linux.readonly_paths:
        make_readonly(path, syscalls)
    if spec.root_readonly:
        with step("remounting / read-only"):
            remount("/", opts.RDONLY, syscalls=syscalls)


def mask_path(path, syscalls=SYSCALLS):
    target = resolve_in_root("/", path)
    if not os.path.exists(target):
        return
    with step(f"masking {path}"):
        if os.path.isdir(target):
            syscalls.mount("tmpfs", target, "tmpfs", opts.RDONLY, None)
        else:
            syscalls.mount("/dev/null", target, None, opts.BIND)


def make_readonly(path, syscalls=SYSCALLS):
    target = resolve_in_root("/", path)
    if not os.path.exists(target):
        return
    with step(f"making {path} read-only"):
        syscalls.mount(target, target, None, opts.BIND | opts.REC)
        remount(target, opts.RDONLY, syscalls=syscalls)
