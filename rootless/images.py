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
"""

import hashlib
import os
import sys
import time

from oci import jsonio
from oci.image import (ImageError, check_digest, choose_manifest, docker_archive_entry,
                       image_config, is_index, manifest_parts, parse_reference)
from oci.record import Record
from .store import _remove_tree

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20


class Image(Record):
    FIELDS = {"id": "", "path": "", "names": (), "size": 0, "created": "", "layers": ()}

    @property
    def rootfs(self):
        return os.path.join(self.path, "rootfs")

    def config(self):
        with open(os.path.join(self.path, "config.json"), "rb") as f:
            return image_config(jsonio.loads(f.read()), f"image {self.id[:12]}")[0]


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
            if name in image.names or name + ":latest" in image.names:
                return image
        if len(name) >= 4:
            matches = [i for i in images if i.id.startswith(name.removeprefix("sha256:"))]
            if len(matches) == 1:
                return matches[0]
        return None

    # --- pull -----------------------------------------------------------------------------

    def pull(self, text, mapping):
        """Import `oci:DIR[:TAG]` or `docker-archive:FILE[:TAG]`; the Image."""
        reference = parse_reference(text, os.path.exists, os.path.isdir)
        if reference.kind == "oci":
            config_bytes, layers, names = _read_oci_layout(reference)
        elif reference.kind == "docker-archive":
            config_bytes, layers, names = _read_docker_archive(reference)
        else:
            raise ImageError(f"{text}: pull takes oci:DIR[:TAG] or docker-archive:FILE[:TAG]")
        names = [str(reference)] + [n for n in names if n != str(reference)]
        image_id = hashlib.sha256(config_bytes).hexdigest()
        config, diff_ids = image_config(jsonio.loads(config_bytes), f"{text}: config")
        if len(diff_ids) != len(layers):
            raise ImageError(f"{text}: the config names {len(diff_ids)} layers, the manifest "
                             f"{len(layers)}")
        layers = [layer.replace(diff_id=diff_id) for layer, diff_id in zip(layers, diff_ids)]
        existing = self.find(image_id)
        if existing is None:
            self._unpack(image_id, config_bytes, layers, mapping)
        return self._add_names(image_id, names)

    def _add_names(self, image_id, names):
        """Give these names to the image (taking them from any other image)."""
        for image in self.images():
            if image.id != image_id and set(names) & set(image.names):
                self._write_meta(image.replace(names=tuple(n for n in image.names
                                                           if n not in names)))
        image = self._load(image_id)
        image = image.replace(names=tuple(dict.fromkeys(image.names + tuple(names))))
        self._write_meta(image)
        return image

    def _write_meta(self, image):
        from .store import write_atomic
        write_atomic(os.path.join(image.path, "image.json"), jsonio.dumps({
            "names": list(image.names), "size": image.size, "created": image.created,
            "layers": list(image.layers)}), 0o644)

    def _unpack(self, image_id, config_bytes, layers, mapping):
        from . import userns
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

    def remove(self, image, mapping):
        """Delete an image's files (owned by the container's ids: removed from inside)."""
        trash = os.path.join(self.root, f".rm-{image.id[:12]}-{os.getpid()}")
        os.rename(image.path, trash)
        remove_owned_tree(trash, mapping)


def remove_owned_tree(path, mapping):
    """Remove a tree whose files belong to a container's ids (a copy, an image, an
    overlay's upper layer), from a user namespace mapped like the container's."""
    from . import userns
    if mapping is None or mapping.direct:
        _make_removable(path)
        _remove_tree(path)
        return
    userns.run_in_userns(mapping, _remove_tree, path)


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
    layers = [LayerSource(open=(lambda path=blob(d): open(path, "rb")), digest=d["digest"],
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
    namespace). Writes each layer's unpacked size to `size_fd`."""
    import gzip
    import tarfile                           # imported before chroot: needed after it
    files = [layer.open() for layer in layers]
    os.chroot(rootfs)
    os.chdir("/")
    progress = sys.stderr.isatty()
    for number, (layer, raw) in enumerate(zip(layers, files), 1):
        if progress:
            print(f"\rhandcar: unpacking layer {number}/{len(layers)} {layer.label}",
                  end="", file=sys.stderr, flush=True)
        compressed = _HashingReader(raw)
        magic = raw.peek(4)[:4] if hasattr(raw, "peek") else b""
        if magic.startswith(ZSTD_MAGIC):
            raise ImageError(f"layer {layer.label}: zstd-compressed layers are not supported")
        stream = gzip.GzipFile(fileobj=compressed) if magic.startswith(GZIP_MAGIC) \
            else compressed
        uncompressed = _HashingReader(stream) if stream is not compressed else compressed
        with tarfile.open(fileobj=uncompressed, mode="r|") as tar:
            apply_layer(tar)
        diff_id = uncompressed.drain()
        digest = compressed.drain() if uncompressed is not compressed else diff_id
        if layer.digest and digest != layer.digest:
            raise ImageError(f"layer {layer.label}: content does not match its digest "
                             f"{layer.digest}")
        if diff_id != layer.diff_id:
            raise ImageError(f"layer {layer.label}: content does not match the config's "
                             f"diff_id {layer.diff_id}")
        os.write(size_fd, f"{uncompressed.count}\n".encode())
        raw.close()
    if progress:
        print(file=sys.stderr)


def apply_layer(tar, root="/"):
    """Extract one layer tar onto `root`, applying its whiteouts (`.wh.NAME` deletes NAME
    from the layers below; `.wh..wh..opq` empties a directory of them). Device nodes
    cannot be made without privileges and are skipped, as rootless podman does."""
    import tarfile
    trusted = {"filter": tarfile.fully_trusted_filter} if hasattr(
        tarfile, "fully_trusted_filter") else {}
    this_layer = set()
    for member in tar:
        path = _clean(member.name)
        if path is None:
            raise ImageError(f"layer entry {member.name!r} leaves the image")
        if not path:
            continue
        directory, _, base = path.rpartition("/")
        host = os.path.join(root, path)
        if base == ".wh..wh..opq":
            parent = os.path.join(root, directory)
            for entry in _listdir(parent):
                if os.path.join(directory, entry).lstrip("/") not in this_layer:
                    _remove(os.path.join(parent, entry))
            continue
        if base.startswith(".wh."):
            _remove(os.path.join(root, directory, base[4:]))
            continue
        if member.ischr() or member.isblk():
            continue
        try:
            existing_is_dir = os.path.isdir(host) and not os.path.islink(host)
            if os.path.lexists(host) and not (member.isdir() and existing_is_dir):
                _remove(host)
        except OSError:
            pass
        tar.extract(member, root, numeric_owner=True, **trusted)
        this_layer.add(path)


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


def _listdir(path):
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        _remove_tree(path)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
