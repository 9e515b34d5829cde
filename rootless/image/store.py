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

Where images come from is sources.py; how a layer is applied to a rootfs, unpack.py.
"""

import fcntl
import hashlib
import os
import time

from oci import jsonio
from oci.image import ImageError, image_config, parse_reference
from oci.record import Record
from rootless.image.sources import read_docker_archive, read_oci_layout
from rootless.system.fs import remove_tree

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
            config_bytes, layers, names = read_oci_layout(reference)
        else:
            config_bytes, layers, names = read_docker_archive(reference)
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
        from rootless.image.unpack import unpack_layers
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
                userns.run_in_userns(mapping, unpack_layers, os.path.join(work, "rootfs"),
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
