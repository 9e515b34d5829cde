"""The child side of `handcar debug` (the parent's is rootless/runtime/debug.py): the
tools tree copied before the container's mount namespace is joined, the debug session's
own view of the container made after, and the tools' loader for their programs.

    intermediate (child/init.py), in the container's user namespace:
      clone_tools   a copy of the tools tree, detached and read-only (open_tree with
                    OPEN_TREE_CLONE), made in a private copy of the caller's mounts
      ... joins the container's other namespaces, its mount namespace last ...
      enter_view    sideload (the default): a private copy of the container's mounts
                    (slave: nothing made in it reaches the container), the tools attached
                    at --mount-at (move_mount). The container's rootfs is never written
                    to: where the mount point is missing, the directory that would hold
                    it is covered, in this copy only, by a read-only tmpfs with a bind
                    mount of each of its entries and the path to the tools. A toolbox
                    of dynamically linked programs is covered the same way, with
                    LAUNCHERS beside its entries (see _add_launchers).
                    shared: the tools attached in the container's own mount namespace, on
                    an empty directory it has (the parent's keeper removes them).
                    side-car: a root of the tools tree's entries, the container's root at
                    /target, its /proc, /dev and /sys at theirs, a private /tmp.
    the debug process (exec_init): through_loader, for a dynamically linked program of
                    the tools named by its own path.

Nothing here writes anywhere but into tmpfs mounts it makes itself.
"""

import errno
import os
import stat

from oci import mounts as opts
from oci.record import Record
from rootless.child import mounts        # (imported now: out of reach once in the container)
from rootless.errors import SetupError, step
from rootless.system import elf, fs, libc

SIDELOAD, SHARED, SIDECAR = "sideload", "shared", "sidecar"
SIDECAR_TARGET = "target"
SIDECAR_FROM_TARGET = ("proc", "dev", "sys")      # the container's, at the same places
LAUNCHERS = ".handcar-bin"        # in the tools' view: a launcher for each of their programs
_CLONE = libc.OPEN_TREE_CLONE | libc.OPEN_TREE_CLOEXEC | libc.AT_RECURSIVE
_TOOLS_ATTRIBUTES = libc.MOUNT_ATTR_RDONLY | libc.MOUNT_ATTR_NOSUID | libc.MOUNT_ATTR_NODEV


class DebugPlan(Record):
    FIELDS = {
        "tools": "",           # the tools tree: a directory on the host
        "mode": SIDELOAD,      # SIDELOAD, SHARED or SIDECAR
        "mount_at": "",        # sideload and shared: where the session sees the tools
        # directories of the tools tree (relative to it) holding shared libraries: its
        # dynamically linked programs run through its own loader with these
        "library_dirs": (),
        # (name, program, loader) for the programs of the tools' bin directories (paths
        # relative to the tools; loader "" for a static one), when some are dynamically
        # linked: the session gets LAUNCHERS, in its PATH (sideload only)
        "programs": (),
        # (mount point, device, inode) of --shared tools that a killed session left in the
        # container's mount namespace: taken out first
        "stale_mounts": (),
    }


_tools = -1               # the detached copy of the tools tree, in the intermediate
_remount_tools = False    # the kernel has no mount_setattr (before Linux 5.12): the tools
                          # are made read-only by a remount once attached


# --- the intermediate ---------------------------------------------------------------------

def clone_tools(plan):
    """Once in the container's user namespace, before its mount namespace: copy the tools
    tree. Copying a mount needs CAP_SYS_ADMIN over the mount namespace it is in: a
    private copy of ours, owned by the container's user namespace, gives that, and goes
    away when we join the container's."""
    global _tools, _remount_tools
    with step("making a mount namespace to copy the tools in"):
        libc.unshare(libc.CLONE_NEWNS)
    try:
        _tools = libc.open_tree(plan.tools, _CLONE)
    except PermissionError:
        raise SetupError(f"copying the tools tree {plan.tools}: permission denied to the "
                         "container's root (the path must be open to it)") from None
    except OSError as err:
        raise SetupError(f"copying the tools tree {plan.tools}: {err.strerror}") from None
    try:
        libc.mount_setattr("", _TOOLS_ATTRIBUTES, recursive=True, dir_fd=_tools)
    except OSError as err:
        if err.errno != errno.ENOSYS:
            raise SetupError(f"making the tools read-only: {err.strerror}") from None
        _remount_tools = True


def enter_view(plan):
    """Once in the container's mount namespace: the debug session's view of it."""
    for mount_at, device, inode in plan.stale_mounts:
        try:
            st = os.stat(mount_at)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (device, inode):     # still those tools there
            with step(f"taking a killed session's tools out of {mount_at}"):
                libc.umount2(mount_at, libc.MNT_DETACH)
    if plan.mode == SHARED:
        _attach_shared(plan.mount_at)
    elif plan.mode == SIDECAR:
        _sidecar()
    else:
        _sideload(plan)
    os.close(_tools)


def _attach_tools(path, to_fd=libc.AT_FDCWD, shown_at=None):
    """Attach the tools at `path` (relative to `to_fd`), seen at `shown_at` (or `path`)."""
    shown_at = shown_at or path
    with step(f"mounting the tools at {shown_at}"):
        libc.move_mount(_tools, path, to_fd)
    if _remount_tools:                    # (a side-car's, over our root, cannot be reached)
        with step(f"making the tools at {shown_at} read-only"):
            mounts.remount(shown_at, opts.RDONLY | opts.NOSUID | opts.NODEV)


def _attach_shared(mount_at):
    """--shared: the tools in the container's own mount namespace, where its processes
    see them too; on an empty directory it has, as nothing may be made in its rootfs."""
    if not _is_empty_directory(mount_at):
        raise SetupError(f"--shared needs --mount-at to name an empty directory the "
                         f"container has ({mount_at} is not one): nothing is created in "
                         "the container")
    _attach_tools(mount_at)


def _sideload(plan):
    mount_at = plan.mount_at
    _private_namespace()
    if _is_empty_directory(mount_at):
        _attach_tools(mount_at)
        if plan.programs:
            _add_launchers(plan)
        return
    holder, missing = _deepest_existing(mount_at)
    with step(f"opening {holder}"):
        below = os.open(holder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        cover = _cover(below, holder, new_dirs=(missing,))
        _attach_tools(missing, cover, shown_at=os.path.join(holder, missing))
        if plan.programs:
            _add_launchers(plan)
        _make_read_only(cover)
        if holder == "/":
            _enter_root(cover)
        os.close(cover)
    finally:
        os.close(below)


def _add_launchers(plan):
    """Cover the tools (attached) with their own entries and LAUNCHERS: a static launcher
    for each dynamically linked program, running it with the tools' loader and libraries
    (elf.launcher), and a link to each of the others. The container may have no loader
    at the path the tools' programs name, or another one: the tools' shell could not run
    them by themselves."""
    prefix = plan.mount_at.rstrip("/") + "/"
    cover = _cover(_tools, plan.mount_at, new_dirs=(LAUNCHERS,), on_fd=True)
    directory = os.open(LAUNCHERS, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=cover)
    try:
        for name, program, loader in plan.programs:
            with step(f"making a launcher for {program}"):
                if not loader:
                    os.symlink(prefix + program, name, dir_fd=directory)
                    continue
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                             0o755, dir_fd=directory)
                with open(fd, "wb") as f:
                    f.write(elf.launcher(loader_command(plan, prefix + program, name,
                                                        prefix + loader)))
    finally:
        os.close(directory)
    _make_read_only(cover)
    os.close(cover)


def loader_command(plan, program, name, loader):
    """The command line that runs the tools' `program` (as `name`) with their `loader`
    and libraries, in the session's view."""
    prefix = plan.mount_at.rstrip("/") + "/"
    command = [loader, "--library-path", ":".join(prefix + d for d in plan.library_dirs)]
    if os.path.basename(program) != name:
        command += ["--argv0", name]      # (glibc 2.33 or later): multi-call programs
    return command + [program]


def _sidecar():
    """The tools' entries as the root, the container's root at /target; its /proc, /dev
    and /sys where the tools' programs look for them; a /tmp of the session's own."""
    with step("copying the container's root"):
        container = libc.open_tree("/", _CLONE)
    try:
        _private_namespace()
        # attached (on our root, out of sight) so that its entries can be copied
        with step("mounting the tools"):
            libc.move_mount(_tools, "/")
        extras = (SIDECAR_TARGET, "tmp") + SIDECAR_FROM_TARGET
        cover = _cover(_tools, "the tools", new_dirs=extras, on_fd=True)
        with step("mounting the container's root at /target"):
            libc.move_mount(container, SIDECAR_TARGET, to_fd=cover)
        for name in SIDECAR_FROM_TARGET:
            source = f"{SIDECAR_TARGET}/{name}"
            if _is_directory(source, cover):
                with step(f"mounting the container's /{name}"):
                    _bind(source, cover, name, cover)
        tmp = _new_tmpfs(mode="1777", size="64m")
        with step("mounting a /tmp"):
            libc.move_mount(tmp, "tmp", to_fd=cover)
        os.close(tmp)
        _make_read_only(cover)
        _enter_root(cover)
        os.close(cover)
    finally:
        os.close(container)


def _private_namespace():
    """A mount namespace of the session's own, a copy of the container's: what is mounted
    in it reaches no one else (slave: the container's later mounts still reach it)."""
    with step("making the debug session's mount namespace"):
        libc.unshare(libc.CLONE_NEWNS)
        libc.mount(None, "/", None, opts.REC | opts.SLAVE)


def _cover(below, name, new_dirs, on_fd=False):
    """A tmpfs mounted over the directory `below` (an fd; attached at the path `name`,
    or on the fd itself with `on_fd`), holding what it holds as bind mounts (symlinks as
    copies) and the directories `new_dirs` (made, with their parents, in the tmpfs only).
    Its fd, attached. Entries named like a new directory's first component are left out."""
    made = {path.split("/", 1)[0] for path in new_dirs}
    listed = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=below)
    try:
        names = [entry for entry in os.listdir(listed) if entry not in made]
        covered = os.fstat(listed)
    finally:
        os.close(listed)
    cover = _new_tmpfs(mode="0755")
    kinds = {}
    try:
        _copy_owner(covered, cover)
        for entry in names:
            with step(f"covering {name}: {entry}"):
                kinds[entry] = _placeholder(below, cover, entry)
        for path in new_dirs:
            _makedirs(cover, path)
        with step(f"covering {name}"):
            if on_fd:
                libc.move_mount(cover, "", to_fd=below)
            else:
                libc.move_mount(cover, name)
        for entry in names:
            if kinds[entry] != stat.S_IFLNK:
                with step(f"covering {name}: binding {entry}"):
                    _bind(entry, below, entry, cover)
    except BaseException:
        os.close(cover)
        raise
    return cover


def _placeholder(below, cover, entry):
    """What `entry` of `below` gets in the cover before it is bound there: a directory, an
    empty file (for any other non-directory), or a copy of a symlink. Its kind."""
    kind = stat.S_IFMT(os.stat(entry, dir_fd=below, follow_symlinks=False).st_mode)
    if kind == stat.S_IFDIR:
        os.mkdir(entry, 0o755, dir_fd=cover)
    elif kind == stat.S_IFLNK:
        os.symlink(os.readlink(entry, dir_fd=below), entry, dir_fd=cover)
    else:
        os.close(os.open(entry, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644,
                         dir_fd=cover))
    return kind


def _makedirs(dir_fd, path):
    current = os.dup(dir_fd)
    try:
        for part in path.split("/"):
            try:
                os.mkdir(part, 0o755, dir_fd=current)
            except FileExistsError:
                pass
            following = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW |
                                os.O_CLOEXEC, dir_fd=current)
            os.close(current)
            current = following
    finally:
        os.close(current)


def _copy_owner(st, cover):
    """The cover's root as the covered directory (whose stat is `st`): its mode, and its
    owner where the container's user namespace maps it."""
    root = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=cover)
    try:
        os.fchmod(root, stat.S_IMODE(st.st_mode))
        try:
            os.fchown(root, st.st_uid, st.st_gid)
        except OSError:
            pass                          # an owner the container does not map
    finally:
        os.close(root)


def _new_tmpfs(**options):
    """A detached tmpfs, as an fd (fsopen, fsconfig, fsmount)."""
    with step("making a tmpfs"):
        context = libc.fsopen("tmpfs")
        try:
            for key, value in options.items():
                libc.fsconfig(context, key, value)
            libc.fsconfig(context, command=libc.FSCONFIG_CMD_CREATE)
            return libc.fsmount(context, libc.MOUNT_ATTR_NOSUID | libc.MOUNT_ATTR_NODEV)
        finally:
            os.close(context)


def _make_read_only(mount_fd):
    """The cover read-only once made (its bind mounts keep their own flags): nothing
    written in the session's view lands where the container cannot see it."""
    try:
        libc.mount_setattr("", libc.MOUNT_ATTR_RDONLY, dir_fd=mount_fd)
    except OSError as err:
        if err.errno != errno.ENOSYS:             # before Linux 5.12: left writable
            raise SetupError(f"making the debug view read-only: {err.strerror}") from None


def _enter_root(mount_fd):
    """Make the mount `mount_fd` (attached over our root) our root."""
    with step("entering the debug session's root"):
        os.fchdir(mount_fd)
        os.chroot(".")
        os.chdir("/")


def _is_directory(path, dir_fd=None):
    try:
        return stat.S_ISDIR(os.stat(path, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _is_empty_directory(path):
    try:
        return stat.S_ISDIR(os.stat(path).st_mode) and not os.listdir(path)
    except OSError:
        return False


def _deepest_existing(path):
    """(the deepest directory on `path` that exists in the container, the rest of `path`
    below it), symlinks followed as the container would (we are in its root). The rest
    is never empty: an existing path that is not an empty directory is the container's."""
    resolved = os.path.realpath(path)
    holder, missing = resolved, []
    while not os.path.lexists(holder):
        holder, name = os.path.split(holder)
        missing.insert(0, name)
    if not missing:
        raise SetupError(f"--mount-at {path}: the container has it (and it is not an "
                         "empty directory): choose a path it does not use")
    if not _is_directory(holder):
        raise SetupError(f"--mount-at {path}: {holder} is not a directory in the container")
    return holder, "/".join(missing)


# --- the debug process --------------------------------------------------------------------

def through_loader(launch, path):
    """(program, launch) to exec: a dynamically linked program of the tools runs through
    the tools' own loader and libraries (ld.so --library-path), which the container may
    not have at the paths the program names (a glibc tool in a scratch or Alpine one)."""
    plan = launch.debug
    prefix = plan.mount_at.rstrip("/") + "/"
    if not plan.library_dirs or plan.mode == SIDECAR or not path.startswith(prefix):
        return path, launch
    try:
        interpreter = elf.interpreter(path)
    except OSError:
        return path, launch
    if interpreter is None:
        return path, launch
    loader = fs.resolve_in_root(plan.mount_at, interpreter)
    if not os.path.isfile(loader):
        return path, launch               # not the tools' to serve: the container's, maybe
    process = launch.spec.process
    argv = loader_command(plan, path, os.path.basename(process.args[0]), loader)
    spec = launch.spec.replace(process=process.replace(args=(*argv, *process.args[1:])))
    return loader, launch.replace(spec=spec)


def _bind(source, source_fd, target, target_fd):
    """A bind mount through the new mount API: a clone of the tree at `source` (below
    the directory `source_fd`) attached at `target` (below `target_fd`)."""
    tree = libc.open_tree(source, _CLONE, dir_fd=source_fd)
    try:
        libc.move_mount(tree, target, to_fd=target_fd)
    finally:
        os.close(tree)
