"""The image store: images pulled from an OCI layout or a docker-archive, each unpacked
once into a directory of its own, then shared read-only by every container made from it.

    DATA/images/<id>/rootfs        the layers applied in order (whiteouts done)
    DATA/images/<id>/config.json   the image's config document, as pulled
    DATA/images/<id>/image.json    {"names": [...], "layers": [diff_ids], "size": N, ...}

<id> is the hex sha256 of the config document, which names every layer by its diff_id:
the same image is unpacked once whatever it is pulled from. Layers are checked against
their digests while they are unpacked, in a user namespace mapped as the container's
will be (so a file of uid 33 in the image is uid 33 inside), chrooted into the new rootfs
(so no path in a layer, and no symlink an earlier layer made, reaches outside it).

A pull unpacks into DATA/images/.pull-<id12>-<pid> and renames it into place; an image
being removed is renamed to .rm-<id12>-<pid> first. What a killed process left of either
is removed by the next pull or removal. Names are changed under an flock on DATA/images.
"""

import fcntl
import hashlib
import os
import stat
import sys
import time

from oci import jsonio
from oci.image import (ImageError, check_digest, choose_manifest, docker_archive_entry,
                       image_config, is_index, manifest_parts, parse_reference)
from oci.record import Record
from rootless.errors import os_error_message
from rootless.system.fs import remove_tree

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"              # the whiteout that empties its directory
WHITEOUT_META = ".wh..wh."           # aufs's own bookkeeping (.wh..wh.plnk): not content
MAX_SYMLINKS = 40                    # as the kernel's path lookup (ELOOP)
WORK_PREFIXES = (".pull-", ".rm-")


class Image(Record):
    FIELDS = {"id": "", "path": "", "names": (), "size": 0, "created": "", "layers": ()}

    @property
    def rootfs(self):
        return os.path.join(self.path, "rootfs")

    def config(self):
        with open(os.path.join(self.path, "config.json"), "rb") as f:
            return image_config(jsonio.loads(f.read()), f"image {self.id[:12]}")[0]

    def name_for(self, text):
        """The name of this image that `text` means (`text` itself, or `text:latest`), or
        None when it is none of them (an id, say)."""
        for name in (text, text + ":latest"):
            if name in self.names:
                return name
        return None


class LayerSource(Record):
    """One layer to unpack: how to open it, and the digests it must match."""
    FIELDS = {"open": None, "digest": None, "diff_id": None, "label": ""}


class ImageStore:
    def __init__(self, data_dir):
        self.root = os.path.join(data_dir, "images")

    # --- lookup -------------------------------------------------------------------------

    def images(self):
        try:
            ids = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        found = []
        for image_id in ids:
            if len(image_id) == 64:
                try:
                    found.append(self._load(image_id))
                except (OSError, ValueError):
                    continue                 # being removed
        return found

    def _load(self, image_id):
        path = os.path.join(self.root, image_id)
        with open(os.path.join(path, "image.json"), "rb") as f:
            meta = jsonio.loads(f.read())
        return Image(id=image_id, path=path, names=tuple(meta.get("names", ())),
                     size=meta.get("size", 0), created=meta.get("created", ""),
                     layers=tuple(meta.get("layers", ())))

    def find(self, name):
        """The image with this name, id or id prefix (at least 4 digits), or None."""
        images = self.images()
        for image in images:
            if image.name_for(name):
                return image
        if len(name) >= 4:
            matches = [i for i in images if i.id.startswith(name.removeprefix("sha256:"))]
            if len(matches) == 1:
                return matches[0]
        return None

    # --- pull -----------------------------------------------------------------------------

    def pull(self, text, mapping):
        """Import `oci:DIR[:TAG]` or `docker-archive:FILE[:REPO[:TAG]]`; the Image. It is
        named by the reference with its path made absolute (`oci:img` in two directories
        names two images) and by the archive's repo tags."""
        reference = absolute_reference(text)
        if reference.kind not in ("oci", "docker-archive"):
            raise ImageError(f"{text}: pull takes oci:DIR[:TAG] or "
                             "docker-archive:FILE[:REPO[:TAG]]")
        if reference.kind == "oci":
            config_bytes, layers, names = _read_oci_layout(reference)
        else:
            config_bytes, layers, names = _read_docker_archive(reference)
        names = [str(reference)] + [n for n in names if n != str(reference)]
        image_id = hashlib.sha256(config_bytes).hexdigest()
        config, diff_ids = image_config(jsonio.loads(config_bytes), f"{text}: config")
        if len(diff_ids) != len(layers):
            raise ImageError(f"{text}: the config names {len(diff_ids)} layers, the manifest "
                             f"{len(layers)}")
        layers = [layer.replace(diff_id=diff_id) for layer, diff_id in zip(layers, diff_ids)]
        self._remove_leftovers(mapping)
        if not os.path.isdir(os.path.join(self.root, image_id)):
            self._unpack(image_id, config_bytes, layers, mapping)
        return self._add_names(image_id, names)

    def untag(self, image, name):
        """Take `name` from the image (docker's rmi NAME of an image with other names);
        the Image as it is now. Its files stay, even when it has no name left."""
        with _Lock(self.root):
            image = self._load(image.id)
            if name not in image.names:
                raise ImageError(f"image {image.id[:12]} is not named {name!r}")
            image = image.replace(names=tuple(n for n in image.names if n != name))
            self._write_meta(image)
        return image

    def remove(self, image, mapping):
        """Delete the image, whatever names it has (docker's rmi ID, or rmi NAME of its
        last name). Its files belong to the container's ids: removed from inside."""
        self._remove_leftovers(mapping)
        trash = os.path.join(self.root, f".rm-{image.id[:12]}-{os.getpid()}")
        with _Lock(self.root):
            os.rename(image.path, trash)
        remove_owned_tree(trash, mapping)

    def _add_names(self, image_id, names):
        """Give these names to the image (taking them from any other image)."""
        with _Lock(self.root):
            for image in self.images():
                if image.id != image_id and set(names) & set(image.names):
                    self._write_meta(image.replace(names=tuple(n for n in image.names
                                                               if n not in names)))
            try:
                image = self._load(image_id)
            except FileNotFoundError:
                raise ImageError(f"image {image_id[:12]} was removed while it was being "
                                 "pulled") from None
            image = image.replace(names=tuple(dict.fromkeys(image.names + tuple(names))))
            self._write_meta(image)
        return image

    def _write_meta(self, image):
        from rootless.runtime.store import write_atomic
        write_atomic(os.path.join(image.path, "image.json"), jsonio.dumps({
            "names": list(image.names), "size": image.size, "created": image.created,
            "layers": list(image.layers)}), 0o644)

    def _remove_leftovers(self, mapping):
        """Remove the work directories of pulls and removals whose process is gone (killed
        half-way): their files belong to the container's ids, which the user cannot
        delete from outside."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return
        for name in names:
            pid = name.rpartition("-")[2]
            if name.startswith(WORK_PREFIXES) and pid.isdigit() and not _alive(int(pid)):
                remove_owned_tree(os.path.join(self.root, name), mapping)

    def _unpack(self, image_id, config_bytes, layers, mapping):
        from rootless.runtime import userns
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        work = os.path.join(self.root, f".pull-{image_id[:12]}-{os.getpid()}")
        os.mkdir(work, 0o700)
        try:
            os.mkdir(os.path.join(work, "rootfs"), 0o755)
            with open(os.path.join(work, "config.json"), "wb") as f:
                f.write(config_bytes)
            sizes = []
            size_read, size_write = os.pipe()
            try:
                userns.run_in_userns(mapping, _unpack_layers, os.path.join(work, "rootfs"),
                                     layers, size_write)
            finally:
                os.close(size_write)
                with open(size_read, "rb") as f:
                    sizes = [int(n) for n in f.read().split()]
            image = Image(id=image_id, path=work, size=sum(sizes),
                          created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          layers=tuple(layer.diff_id for layer in layers))
            self._write_meta(image)
            try:
                os.rename(work, os.path.join(self.root, image_id))
            except OSError:
                pass                         # pulled meanwhile by someone else: theirs
        finally:
            if os.path.exists(work):
                remove_owned_tree(work, mapping)


def absolute_reference(text):
    """The Reference of what the user typed, an oci: or docker-archive: path made
    absolute: str() of it is the name a pull gives the image (find it by that)."""
    reference = parse_reference(text, os.path.exists, os.path.isdir)
    if reference.kind in ("oci", "docker-archive"):
        reference = reference.replace(path=os.path.abspath(reference.path))
    return reference


class _Lock:
    """An exclusive flock on a directory, for a `with` block."""

    def __init__(self, path):
        self.path = path
        self.fd = -1

    def __enter__(self):
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_exc):
        os.close(self.fd)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                                 # someone else's: alive
    return True


def remove_owned_tree(path, mapping):
    """Remove a tree whose files belong to a container's ids (a copy, an image, an
    overlay's upper layer), from a user namespace mapped like the container's."""
    from rootless.runtime import userns
    if mapping is None or mapping.direct:
        _make_removable(path)
        remove_tree(path)
        return
    userns.run_in_userns(mapping, remove_tree, path)


def _make_removable(path):
    """The caller's own tree: let it delete what it wrote read-only (overlay's work dir)."""
    for directory, subdirs, _files in os.walk(path):
        for name in subdirs:
            try:
                os.chmod(os.path.join(directory, name), 0o700)
            except OSError:
                pass


# --- reading sources --------------------------------------------------------------------

def _read_json(data, where):
    try:
        return jsonio.loads(data)
    except ValueError as err:
        raise ImageError(f"{where}: not valid JSON: {err}") from None


def _read_oci_layout(reference):
    layout = reference.path
    where = f"oci:{layout}"

    def blob(descriptor):
        hex_digest = check_digest(descriptor.get("digest"), where)
        return os.path.join(layout, "blobs", "sha256", hex_digest)

    def read_blob(descriptor):
        path = blob(descriptor)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as err:
            raise ImageError(f"{where}: {path}: {err.strerror}") from None
        if hashlib.sha256(data).hexdigest() != os.path.basename(path):
            raise ImageError(f"{where}: {path} does not match its digest")
        return data

    try:
        with open(os.path.join(layout, "index.json"), "rb") as f:
            document = _read_json(f.read(), f"{where}/index.json")
    except FileNotFoundError:
        raise ImageError(f"{where}: no index.json (not an OCI image layout)") from None
    except OSError as err:
        raise ImageError(f"{where}: {err.strerror}") from None
    tag = reference.tag
    machine = os.uname().machine
    for _depth in range(4):                       # an index may point at a (platform) index
        descriptor = choose_manifest(document, tag, machine, where)
        document = _read_json(read_blob(descriptor), f"{where}: manifest")
        tag = ""
        if not is_index(document):
            break
    else:
        raise ImageError(f"{where}: indexes nested too deep")
    config, layer_descriptors = manifest_parts(document, where)
    layers = [LayerSource(open=(lambda path=blob(d): open(path, "rb")),  # noqa: B008
                          digest=d["digest"],
                          label=d["digest"][7:19]) for d in layer_descriptors]
    for d in layer_descriptors:
        if not os.path.isfile(blob(d)):
            raise ImageError(f"{where}: layer {d['digest']} is missing")
    return read_blob(config), layers, []


def _read_docker_archive(reference):
    import tarfile
    where = f"docker-archive:{reference.path}"
    try:
        archive = tarfile.open(reference.path, "r:")
    except (OSError, tarfile.TarError) as err:
        raise ImageError(f"{where}: {getattr(err, 'strerror', None) or err}") from None
    with archive:
        members = {m.name.lstrip("./"): m for m in archive.getmembers() if m.isfile()}

    def read(name):
        member = members.get(name.lstrip("./"))
        if member is None:
            raise ImageError(f"{where}: {name} is missing from the archive")
        with tarfile.open(reference.path, "r:") as tar, tar.extractfile(member) as f:
            return f.read()

    manifest = _read_json(read("manifest.json"), f"{where}/manifest.json")
    config_name, layer_names, repo_tags = docker_archive_entry(manifest, reference.tag, where)
    for name in layer_names:
        if name.lstrip("./") not in members:
            raise ImageError(f"{where}: layer {name} is missing from the archive")

    def opener(name):
        def open_layer():
            tar = tarfile.open(reference.path, "r:")
            return tar.extractfile(members[name.lstrip("./")])
        return open_layer

    # Layers named by digest (blobs/sha256/HEX, newer docker) are checked against it.
    layers = []
    for name in layer_names:
        base = name.rsplit("/", 1)[-1]
        digest = f"sha256:{base}" if "/sha256/" in f"/{name}" and len(base) == 64 else None
        layers.append(LayerSource(open=opener(name), digest=digest, label=name[:19]))
    return read(config_name), layers, repo_tags


# --- unpacking (in the user namespace) --------------------------------------------------

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


def _unpack_layers(rootfs, layers, size_fd):
    """Apply each layer to `rootfs`, in order, chrooted there (runs as root in the user
    namespace). Writes each layer's unpacked size to `size_fd`; an error names the layer."""
    import gzip     # noqa: F401  imported before the chroot: nothing can be
    import tarfile  # noqa: F401  imported after it (_unpack_layer finds
    import zlib     # noqa: F401  them in sys.modules)
    files = [layer.open() for layer in layers]
    _enter_rootfs(rootfs)
    progress = sys.stderr.isatty()
    for number, (layer, raw) in enumerate(zip(layers, files), 1):
        if progress:
            print(f"\rhandcar: unpacking layer {number}/{len(layers)} {layer.label}",
                  end="", file=sys.stderr, flush=True)
        try:
            size = _unpack_layer(layer, raw)
        except ImageError as err:
            raise ImageError(f"layer {layer.label}: {err}") from None
        except OSError as err:
            raise ImageError(f"layer {layer.label}: {os_error_message(err)}") from None
        os.write(size_fd, f"{size}\n".encode())
        raw.close()
    if progress:
        print(file=sys.stderr)


def _unpack_layer(layer, raw):
    """Apply one layer onto / and check it against its digests; its unpacked size."""
    import gzip
    import tarfile
    import zlib
    compressed = _HashingReader(raw)
    magic = raw.peek(4)[:4] if hasattr(raw, "peek") else b""
    if magic.startswith(ZSTD_MAGIC):
        raise ImageError("zstd-compressed layers are not supported")
    gzipped = magic.startswith(GZIP_MAGIC)
    uncompressed = _HashingReader(gzip.GzipFile(fileobj=compressed)) if gzipped \
        else compressed
    try:
        with tarfile.open(fileobj=uncompressed, mode="r|") as tar:
            apply_layer(tar)
        diff_id = uncompressed.drain()
    except (gzip.BadGzipFile, zlib.error, EOFError, tarfile.TarError) as err:
        if layer.digest and compressed.drain() != layer.digest:
            raise ImageError(f"content does not match its digest {layer.digest}") from None
        what = "not valid gzip data" if gzipped and not isinstance(err, tarfile.TarError) \
            else "not a valid tar archive"
        raise ImageError(f"{what} ({str(err) or type(err).__name__})") from None
    digest = compressed.drain() if gzipped else diff_id
    if layer.digest and digest != layer.digest:
        raise ImageError(f"content does not match its digest {layer.digest}")
    if diff_id != layer.diff_id:
        raise ImageError(f"content does not match the config's diff_id {layer.diff_id}")
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
    cannot be made without privileges and are skipped, as rootless podman does.

    The directories on an entry's way are resolved inside `root`: a symlink is followed
    as if `root` were / (as containerd's archive.Apply and docker's chrooted unpacking
    do), a missing directory is made; the entry itself replaces whatever is at its
    name, never written through it. A whiteout follows no symlink: it deletes only what
    its own path names. A hard link's target must be a name in the image that exists.

    Run it only chrooted into the rootfs, as root in the container's user namespace,
    with root="/" (as _unpack_layers does): the chroot is what keeps a symlink a layer
    makes from reaching the host's files whatever the resolution here misses. The unit
    tests call it on a plain directory with layers that are safe so."""
    import tarfile
    trusted = {"filter": tarfile.fully_trusted_filter} if hasattr(
        tarfile, "fully_trusted_filter") else {}
    this_layer = set()                   # what it made (real paths): kept by its opaque marker
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
        this_layer.add(real)


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
        for name in _listdir(here):
            if (f"{directory}/{name}" if directory else name) not in this_layer:
                _remove(os.path.join(here, name))
    else:
        _remove(os.path.join(here, base[len(WHITEOUT):]))


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
