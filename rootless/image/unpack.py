"""Unpacking a layer, in the user namespace the container will have (so a file of uid 33
in the image is uid 33 inside): checked against its digests as it is read, its
whiteouts applied, nothing reaching outside the layer's tree (chrooted there, and
importing nothing after the chroot), entries' extended attributes set (file
capabilities, user.*). gzip, zstd and plain tar layers."""

import errno
import hashlib
import os
import stat
import sys

from oci.image import ImageError
from rootless import log
from rootless.errors import HandcarError, os_error_message
from rootless.image.worker import worker_call
from rootless.system.fs import copy_directory, remove_tree

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"              # the whiteout that empties its directory
WHITEOUT_META = ".wh..wh."           # aufs's own bookkeeping (.wh..wh.plnk): not content
MOUNT_LOG = "mount.log"              # fuse-overlayfs's output, in a worker call's directory
MAX_SYMLINKS = 40                    # as the kernel's path lookup (ELOOP)
XATTR_RECORD = "SCHILY.xattr."       # a PAX record naming an entry's extended attribute
# overlayfs's and fuse-overlayfs's own (the store's metadata): never a layer's to set
OVERLAY_XATTRS = ("user.overlay.", "trusted.overlay.", "user.fuseoverlayfs.")


class _HashingReader:
    """A file object that hashes what is read through it."""

    def __init__(self, raw):
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0

    def read(self, size=-1):
        data = self.raw.read(size)
        self.hash.update(data)
        self.count += len(data)
        return data

    def drain(self):
        while self.read(CHUNK):
            pass
        return "sha256:" + self.hash.hexdigest()


@worker_call
def unpack_layer(layers, index, work, lowers, driver, links, program=None):
    """A worker call (rootless/image/worker.py): apply layers[index] into `work`/diff,
    the layer's new directory, and return its unpacked size. With lower layers, it is
    applied on top of them, as a container would see them:

    - overlay: an overlay of `lowers` (names in the `links` directory, topmost first)
      with `work`/diff as its upper directory, so what the layer deletes becomes the
      whiteouts and opaque directories overlayfs itself writes there, in the form it
      reads in a user namespace (userxattr), and a hard link to a file below copies
      the file up; fuse-overlayfs: the same, mounted by `program`;
    - vfs: a copy of the layer below (a directory holding the whole tree up to it).

    Chrooted there for the unpacking itself (see apply_layer); an error names the layer."""
    import gzip  # noqa: F401 - imported before the chroot: nothing can be imported
    import tarfile  # noqa: F401 - after it (_unpack_layer finds them in sys.modules)
    import zlib  # noqa: F401
    from rootless.system import libc
    layer = layers[index]
    diff = os.path.join(work, "diff")
    root = diff
    try:
        if lowers and driver != "vfs":
            root = os.path.join(work, "merged")
            libc.unshare(libc.CLONE_NEWNS)       # the overlay goes with this process
            os.chdir(links)                      # short relative names: see mount_data
            mount_overlay(program, root,
                          overlay_options(lowers, diff, os.path.join(work, "work")), work)
        elif lowers:
            copy_directory(lowers[0], diff)
        raw = layer.open()
        if raw.peek(4)[:4].startswith(ZSTD_MAGIC):
            _import_zstd()
    except HandcarError as err:                  # ImageError, fuse-overlayfs's SetupError
        raise ImageError(f"layer {layer.label}: {err}") from None
    except OSError as err:
        raise ImageError(f"layer {layer.label}: {os_error_message(err)}") from None
    log.hold_file()                          # the --log file, before its path is the image's
    _enter_rootfs(root)
    try:
        return _unpack_layer(layer, raw)
    except ImageError as err:
        raise ImageError(f"layer {layer.label}: {err}") from None
    except OSError as err:
        raise ImageError(f"layer {layer.label}: {os_error_message(err)}") from None
    finally:
        raw.close()


def mount_overlay(program, target, data, log_dir):
    """Mount an overlay (overlayfs's mount `data`) on `target`, in this process's mount
    namespace: with the kernel's overlayfs, or with fuse-overlayfs (`program`), whose
    daemon ends with this process."""
    if program:
        from rootless.system.fuse_overlay import start
        start(program, data, target, os.path.join(log_dir, MOUNT_LOG))
    else:
        from rootless.system import libc
        libc.mount("overlay", target, "overlay", 0, data)


def overlay_options(lowers, upper, work):
    """overlay's mount data: `lowers` topmost first. The data is one page (4096 bytes),
    so lower layers are named by short links relative to the mounting process's working
    directory (l/<12 hex digits>: 15 bytes a layer), as containers/storage does."""
    data = f"lowerdir={':'.join(lowers)}"
    if upper:
        data += f",upperdir={upper},workdir={work}"
    data += ",userxattr"
    if len(data) >= 4096:
        raise ImageError(f"{len(lowers)} layers are more than one overlay mount can stack "
                         f"({len(data)} bytes of mount options, 4095 at most)")
    return data


def _import_zstd():
    try:
        import zstandard  # noqa: F401 - imported before the chroot, used by _unpack_layer
    except ImportError:
        raise ImageError("a zstd-compressed layer needs the zstandard module (pip install "
                         "zstandard; handcar depends on it)") from None


def _unpack_layer(layer, raw):
    """Apply one layer onto / and check it against its digests; its unpacked size."""
    import gzip
    import tarfile
    import zlib
    compressed = _HashingReader(raw)
    magic = raw.peek(4)[:4] if hasattr(raw, "peek") else b""
    compression, errors = "", (EOFError, tarfile.TarError)
    if magic.startswith(GZIP_MAGIC):
        compression, errors = "gzip", errors + (gzip.BadGzipFile, zlib.error)
        uncompressed = _HashingReader(gzip.GzipFile(fileobj=compressed))
    elif magic.startswith(ZSTD_MAGIC):
        zstandard = sys.modules["zstandard"]     # imported before the chroot
        compression, errors = "zstd", errors + (zstandard.ZstdError,)
        uncompressed = _HashingReader(zstandard.ZstdDecompressor().stream_reader(
            compressed, read_across_frames=True, closefd=False))
    else:
        uncompressed = compressed
    try:
        with tarfile.open(fileobj=uncompressed, mode="r|") as tar:
            skipped = apply_layer(tar)
        diff_id = uncompressed.drain()
    except errors as err:
        if layer.digest and compressed.drain() != layer.digest:
            raise ImageError(f"content does not match its digest {layer.digest}") from None
        what = f"not valid {compression} data" if compression and not isinstance(
            err, tarfile.TarError) else "not a valid tar archive"
        raise ImageError(f"{what} ({str(err) or type(err).__name__})") from None
    digest = compressed.drain() if compression else diff_id
    if layer.digest and digest != layer.digest:
        raise ImageError(f"content does not match its digest {layer.digest}")
    if diff_id != layer.diff_id:
        raise ImageError(f"content does not match the config's diff_id {layer.diff_id}")
    if skipped:
        log.debug(f"layer {layer.label}: extended attributes not set: {', '.join(sorted(skipped))} "
                  "(overlayfs's are the store's; trusted.* and security.* other than "
                  "security.capability need privileges a user namespace lacks)")
    return uncompressed.count


def _enter_rootfs(rootfs):
    """chroot into the rootfs being unpacked, and import nothing from then on: we are
    root in the user namespace, and a module the image put at a path on sys.path (or a
    finder's) would run as that root."""
    os.chroot(rootfs)
    os.chdir("/")
    _stop_importing()


def _stop_importing():
    """Keep only the importers that read nothing from the filesystem (built-in and frozen
    modules): everything else must be imported already, and is found in sys.modules."""
    import _frozen_importlib                 # always loaded: it is the import system
    sys.path.clear()
    sys.path_hooks.clear()
    sys.path_importer_cache.clear()
    sys.meta_path[:] = [finder for finder in sys.meta_path if finder in (
        _frozen_importlib.BuiltinImporter, _frozen_importlib.FrozenImporter)]


def apply_layer(tar, root="/"):
    """Extract one layer tar onto `root`, applying its whiteouts (`.wh.NAME` deletes NAME
    from the layers below; `.wh..wh..opq` empties a directory of them). Device nodes
    cannot be made without privileges and are skipped, as rootless podman does. The
    names of the extended attributes that were not set are returned (see _set_xattrs).

    The directories on an entry's way are resolved inside `root`: a symlink is followed
    as if `root` were / (as containerd's archive.Apply and docker's chrooted unpacking
    do), a missing directory is made; the entry itself replaces whatever is at its
    name, never written through it. A whiteout follows no symlink: it deletes only what
    its own path names. A hard link's target must be a name in the image that exists.

    Run it only chrooted into the rootfs, as root in the container's user namespace,
    with root="/" (as unpack_layer does): the chroot is what keeps a symlink a layer
    makes from reaching the host's files whatever the resolution here misses. The unit
    tests call it on a plain directory with layers that are safe so."""
    import tarfile
    trusted = {"filter": tarfile.fully_trusted_filter} if hasattr(
        tarfile, "fully_trusted_filter") else {}
    this_layer = set()                   # what it made (real paths): kept by its opaque marker
    skipped = set()                      # names of extended attributes not set
    for member in tar:
        path = _clean(member.name)
        if path is None:
            raise ImageError(f"entry {member.name!r} leaves the image")
        directory, _, base = path.rpartition("/")
        if not path or base != OPAQUE and any(part.startswith(WHITEOUT_META)
                                              for part in path.split("/")):
            continue
        if base.startswith(WHITEOUT):
            _whiteout(root, directory, base, this_layer)
            continue
        if member.ischr() or member.isblk():
            continue
        parent = _resolve(root, directory, path)
        real = f"{parent}/{base}" if parent else base
        target = os.path.join(root, real)
        try:
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and not (member.isdir() and stat.S_ISDIR(mode)):
            _remove(target)
        if member.islnk():
            os.link(_link_source(root, member), target, follow_symlinks=False)
        else:
            member.name = real
            tar.extract(member, root, numeric_owner=True, **trusted)
        _set_xattrs(member, target, skipped)
        this_layer.add(real)
    return skipped


def _set_xattrs(member, path, skipped):
    """Set the entry's extended attributes (PAX SCHILY.xattr.NAME records), after its
    owner (a chown clears security.capability). A file capability (v2, as setcap writes
    it) set by root in the user namespace is stored by the kernel as v3 with the
    namespace's root as its owner: it applies in containers of this mapping and nowhere
    else. overlayfs's own attributes (user.overlay.*, trusted.overlay.*) are dropped: the
    store's overlays read them as whiteouts, opaque directories and redirects, which a
    layer must not fake. What the kernel refuses in a user namespace (trusted.*,
    security.* but capabilities, a user.* on a symlink; EPERM or ENOTSUP) is skipped, as
    rootless podman ignores it. Skipped names are added to `skipped`."""
    for key, value in member.pax_headers.items():
        if not key.startswith(XATTR_RECORD):
            continue
        name = key[len(XATTR_RECORD):]
        if name.startswith(OVERLAY_XATTRS):
            skipped.add(name)
            continue
        try:
            os.setxattr(path, name, value.encode("utf-8", "surrogateescape"),
                        follow_symlinks=False)
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise ImageError(f"{member.name}: extended attribute {name}: "
                                 f"{os_error_message(err)}") from None
            skipped.add(name)


def _clean(name):
    """A member name relative to the root, or None if it climbs out of it."""
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            return None
        parts.append(part)
    return "/".join(parts)


def _resolve(root, directory, entry, make=True):
    """`directory` (clean, relative to `root`) as the relative path of the real directory
    it leads to: symlinks on the way followed inside `root`, missing directories made
    (`make`), as docker does, except where a symlink points (a dangling link is an
    error, as in docker). ImageError when the way is not a directory."""
    done = []
    todo = [(part, False) for part in reversed(directory.split("/")) if part]
    link, links = "", 0
    while todo:
        part, through_link = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        here = os.path.join(root, *done, part)
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            if through_link:
                raise ImageError(f"{entry}: the symbolic link {link} points to a missing "
                                 "directory") from None
            if not make:
                raise ImageError(f"{entry}: {'/'.join(done + [part])} is missing") from None
            os.mkdir(here, 0o755)
            mode = stat.S_IFDIR
        if stat.S_ISLNK(mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise ImageError(f"{entry}: too many levels of symbolic links")
            link = "/".join(done + [part])
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            todo += [(p, True) for p in reversed(target.split("/"))]
            continue
        if not stat.S_ISDIR(mode):
            raise ImageError(f"{entry}: {'/'.join(done + [part])} is not a directory")
        done.append(part)
    return "/".join(done)


def _whiteout(root, directory, base, this_layer):
    """Apply the whiteout `directory/base`, its directory reached without following any
    symlink (a whiteout must not delete what a link points at)."""
    entry = f"{directory}/{base}" if directory else base
    if base != OPAQUE and base[len(WHITEOUT):] in ("", ".", ".."):
        raise ImageError(f"{entry}: a whiteout must name a file")
    here = root
    for part in directory.split("/") if directory else ():
        here = os.path.join(here, part)
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            return                           # nothing there to delete
        if stat.S_ISLNK(mode):
            raise ImageError(f"{entry}: {os.path.relpath(here, root)} is a symbolic link, "
                             "not a directory (a whiteout does not follow links)")
        if not stat.S_ISDIR(mode):
            raise ImageError(f"{entry}: {os.path.relpath(here, root)} is not a directory")
    if base == OPAQUE:
        prefix = f"{directory}/" if directory else ""
        if directory and not any(made.startswith(prefix) for made in this_layer):
            _make_empty(here)
            return
        for name in _listdir(here):
            if prefix + name not in this_layer:
                _remove(os.path.join(here, name))
    else:
        _remove(os.path.join(here, base[len(WHITEOUT):]))


def _make_empty(path):
    """Empty a directory by making it anew (as it was): on an overlay, the new directory
    is an opaque one (one xattr) rather than a whiteout for each name below it."""
    st = os.lstat(path)
    _remove(path)
    os.mkdir(path, 0o700)
    os.chown(path, st.st_uid, st.st_gid)
    os.chmod(path, stat.S_IMODE(st.st_mode))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _link_source(root, member):
    """Where a hard link entry's target is: a name in the image that exists."""
    name = _clean(member.linkname)
    if not name:
        raise ImageError(f"{member.name}: hard link to {member.linkname!r}, outside the "
                         "image")
    directory, _, base = name.rpartition("/")
    source = os.path.join(root, _resolve(root, directory, member.name, make=False), base)
    if not os.path.lexists(source):
        raise ImageError(f"{member.name}: hard link to {member.linkname!r}, which is "
                         "missing")
    return source


def _listdir(path):
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        remove_tree(path)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
