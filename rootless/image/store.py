"""The image store: layers unpacked once each, and images as chains of them.

    DATA/store/driver                "overlay", "fuse-overlayfs" or "vfs": how layers are
                                     kept and containers' roots made (chosen once)
    DATA/store/layers/<chain>/diff   a layer's files; <chain> is the hex of its ChainID
    DATA/store/layers/<chain>/layer.json   {"diff_id", "chain_id", "parent", "size"}
    DATA/store/l/<chain[:12]>        -> ../layers/<chain>/diff: short names for overlay
    DATA/store/images/<id>/config.json     the image's config document, as pulled
    DATA/store/images/<id>/image.json      {"names", "digests", "diff_ids", "size", ...}
    DATA/store/tmp/                  layers and images being made, downloads, removals
    DATA/store/locks/<chain>         one flock per layer being unpacked
    DATA/store/lock                  flock: shared by pulls and by runs preparing a
                                     container's root, exclusive for removals

<id> is the hex sha256 of the config document (podman's image ID), which names every
layer by its diff_id. A layer is keyed by its ChainID (its diff_id together with those
of every layer below it), not its diff_id alone: a layer is unpacked on top of the ones
below it (a hard link to a file below copies that file in), so its tree depends on them.
Two images with a common base share the base's layers; a pull unpacks only what the
store lacks.

With the overlay driver, a layer's diff is what overlayfs keeps as an upper directory in
a user namespace (Linux 5.11+): whiteouts are 0/0 character devices, opaque directories
carry user.overlay.opaque; a container's root is an overlay of its image's layers and a
writable layer of its own. Where overlayfs cannot be mounted in a user namespace, the
fuse-overlayfs driver keeps layers the same way and mounts them with fuse-overlayfs
(system/fuse_overlay.py) instead, where that is installed; else the vfs driver keeps each
layer as the whole tree up to it, and a container gets a copy (slow, said once when the
store is made). containers-storage.conf(5)'s driver and mount_program choose one.

Layer files belong to the container's ids: they are made and removed by a process in
a user namespace mapped as containers are (worker.py). A layer or image is made in tmp/
and renamed into place when complete, so a pull killed at any moment leaves nothing the
store trusts; what a dead process left in tmp/ is removed by the next pull or removal.

Where images come from is sources.py (and registry.py); unpacking a layer, unpack.py.
"""

import fcntl
import hashlib
import os
import time

from oci import jsonio
from oci.image import ImageError, chain_ids, image_config, parse_reference
from oci.record import Record
from rootless import log
from rootless.errors import HandcarError
from rootless.image import unpack  # noqa: F401 - its worker calls, before a worker forks
from rootless.image.unpack import MOUNT_LOG
from rootless.image.worker import Worker, in_userns, worker_call
from rootless.runtime.store import write_atomic
from rootless.system.fs import make_searchable, remove_tree

DRIVERS = ("overlay", "fuse-overlayfs", "vfs")
LAYERED = ("overlay", "fuse-overlayfs")     # drivers whose layers are overlay upper dirs
SHORT = 12                    # hex digits of a layer's short name in l/


class Image(Record):
    FIELDS = {"id": "", "path": "", "names": (), "digests": (), "size": 0, "created": "",
              "pulled": "", "diff_ids": (), "digest": ""}

    @property
    def chain(self):
        """The hex ChainIDs of its layers, bottom first."""
        return [chain_id[7:] for chain_id in chain_ids(list(self.diff_ids))]

    def config_document(self):
        with open(os.path.join(self.path, "config.json"), "rb") as f:
            return jsonio.loads(f.read())

    def config(self):
        return image_config(self.config_document(), f"image {self.id[:12]}")[0]

    def name_for(self, text):
        """The name of this image that `text` means (`text` itself, or `text:latest`), or
        None when it is none of them (an id, say)."""
        for name in (text, text + ":latest"):
            if name in self.names:
                return name
        return None


class ImageStore:
    def __init__(self, data_dir, mapping):
        self.data_dir = data_dir
        self.mapping = mapping                # the containers' mapping: files' owners
        self.root = os.path.join(data_dir, "store")
        self.images_dir = os.path.join(self.root, "images")
        self.layers_dir = os.path.join(self.root, "layers")
        self.links_dir = os.path.join(self.root, "l")
        self.tmp = os.path.join(self.root, "tmp")
        self._ready = False
        self._program = None                  # mount_program(), once found

    # --- lookup -------------------------------------------------------------------------

    def images(self):
        self._setup()
        found = []
        for image_id in sorted(_listdir(self.images_dir)):
            if len(image_id) == 64:
                try:
                    found.append(self._load(image_id))
                except (OSError, ValueError):
                    continue                 # being removed
        return found

    def _load(self, image_id):
        path = os.path.join(self.images_dir, image_id)
        with open(os.path.join(path, "image.json"), "rb") as f:
            meta = jsonio.loads(f.read())
        return Image(id=image_id, path=path, names=tuple(meta.get("names", ())),
                     digests=tuple(meta.get("digests", ())), size=meta.get("size", 0),
                     created=meta.get("created", ""), pulled=meta.get("pulled", ""),
                     diff_ids=tuple(meta.get("diff_ids", ())), digest=meta.get("digest", ""))

    def find(self, name, qualified=()):
        """The image named `name` (or one of the fully qualified names it may mean, in
        order), or with this id or id prefix (at least 4 digits); None when none is."""
        return self.match(name, qualified)[0]

    def match(self, name, qualified=()):
        """(the Image `find` finds, the name of it that matched or None for an id or a
        digest), or (None, None)."""
        images = self.images()
        for candidate in (name, *qualified):
            for image in images:
                if image.name_for(candidate):
                    return image, image.name_for(candidate)
                if candidate in image.digests:
                    return image, None
        if len(name) >= 4:
            matches = [i for i in images if i.id.startswith(name.removeprefix("sha256:"))]
            if len(matches) == 1:
                return matches[0], None
        return None, None

    def layer_size(self, chain):
        try:
            with open(os.path.join(self.layers_dir, chain, "layer.json"), "rb") as f:
                return jsonio.loads(f.read()).get("size", 0)
        except (OSError, ValueError):
            return 0

    # --- the driver and the store's directories ------------------------------------------

    def _setup(self):
        """Make the store's directories, choose its driver, remove what dead processes
        left, and move images of the old per-image layout over (once per process)."""
        if self._ready:
            return
        self._ready = True
        for path in (self.root, self.images_dir, self.layers_dir, self.links_dir, self.tmp,
                     os.path.join(self.root, "locks")):
            os.makedirs(path, mode=0o700, exist_ok=True)
        self.driver()
        self._remove_leftovers()
        if os.path.isdir(os.path.join(self.data_dir, "images")):
            from rootless.image.migrate import migrate_legacy_images
            migrate_legacy_images(self)

    def driver(self):
        """overlay, fuse-overlayfs or vfs, chosen when the store is made: what
        storage.conf asks for, else the kernel's overlayfs where it mounts in a user
        namespace (5.11 and later, with userxattr), else fuse-overlayfs where installed."""
        path = os.path.join(self.root, "driver")
        try:
            with open(path) as f:
                driver = f.read().strip()
            if driver in DRIVERS:
                return driver
        except FileNotFoundError:
            pass
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        driver = self._choose_driver()
        write_atomic(path, driver + "\n", 0o644)
        return driver

    def _choose_driver(self):
        from rootless.image.config import storage_conf
        from rootless.runtime.host import find_program
        from rootless.system.fuse_overlay import PROGRAM
        wanted, program = storage_conf()
        if wanted == "vfs":
            return "vfs"
        if program:
            self._probe(program)                 # asked for: its failure is the error
            return "fuse-overlayfs"
        if self._overlay_works(None):
            return "overlay"
        program = find_program(PROGRAM)
        if program and self._overlay_works(program):
            log.debug("overlayfs cannot be mounted in a user namespace here (Linux 5.11 "
                      "or later can): containers' roots are mounted with fuse-overlayfs")
            return "fuse-overlayfs"
        log.warning("overlayfs cannot be mounted in a user namespace here (Linux 5.11 "
                    "or later can) and fuse-overlayfs is not installed: image layers are "
                    "stored as whole trees and each container gets a copy of its image, "
                    "which is slow and takes space")
        return "vfs"

    def mount_program(self):
        """fuse-overlayfs's path where the store mounts with it, else None (looked for
        once: a pull asks for every layer)."""
        if self._program or self.driver() != "fuse-overlayfs":
            return self._program
        from rootless.image.config import storage_conf
        from rootless.runtime.host import find_program
        from rootless.system.fuse_overlay import PROGRAM
        program = storage_conf()[1] or find_program(PROGRAM)
        if not program:
            raise ImageError(f"the image store {self.root} mounts layers with "
                             "fuse-overlayfs, which is not installed (apt-get install "
                             "fuse-overlayfs)")
        self._program = program
        return program

    def _overlay_works(self, program):
        try:
            self._probe(program)
            return True
        except ImageError as err:
            log.debug(f"{program or 'overlayfs'} in a user namespace: {err}")
            return False

    def _probe(self, program):
        probe = os.path.join(self.tmp, f"overlay-probe-{os.getpid()}")
        os.makedirs(probe)
        try:
            for part in ("lower", "upper", "work", "merged"):
                os.mkdir(os.path.join(probe, part))
            in_userns(self.mapping, "probe_overlay", probe, program)
        finally:
            in_userns(self.mapping, "remove_tree", probe)

    def lock(self, exclusive=False):
        """The store's lock: shared by pulls and by runs preparing a container's root,
        exclusive for removals (which must not take a layer a pull is building on)."""
        self._setup()
        return _Lock(os.path.join(self.root, "lock"), exclusive)

    def _remove_leftovers(self):
        """Remove what pulls and removals whose process is gone (killed half-way) left in
        tmp/: their files belong to the container's ids."""
        for name in _listdir(self.tmp):
            pid = name.rpartition("-")[2].partition(".")[0]
            if pid.isdigit() and not _alive(int(pid)):
                path = os.path.join(self.tmp, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    in_userns(self.mapping, "remove_tree", path)
                else:
                    os.unlink(path)

    # --- adding an image ---------------------------------------------------------------

    def add(self, source, progress=None):
        """Add the image a source (sources.ImageSource) describes: unpack the layers the
        store lacks, write the image, give it the source's names; the Image."""
        config_bytes = source.config
        image_id = hashlib.sha256(config_bytes).hexdigest()
        try:
            document = jsonio.loads(config_bytes)
        except ValueError as err:
            raise ImageError(f"{source.where}: the config is not valid JSON: {err}") from None
        _config, diff_ids = image_config(document, f"{source.where}: config")
        if len(diff_ids) != len(source.layers):
            raise ImageError(f"{source.where}: the config names {len(diff_ids)} layers, the "
                             f"manifest {len(source.layers)}")
        layers = [layer.replace(diff_id=diff_id)
                  for layer, diff_id in zip(source.layers, diff_ids)]
        chain = [chain_id[7:] for chain_id in chain_ids(diff_ids)]
        with self.lock():
            missing = [i for i, hex_id in enumerate(chain) if not self._has_layer(hex_id)]
            if missing:
                # the worker is forked before the source starts its download threads
                with Worker(self.mapping, layers) as worker:
                    if source.prefetch:
                        source.prefetch(missing, self.tmp, progress)
                    for index in missing:
                        self._make_layer(worker, layers, index, chain, progress)
            elif progress:
                progress.all_stored(len(chain))
            for hex_id in chain:
                self._link(hex_id)
            if not os.path.isdir(os.path.join(self.images_dir, image_id)):
                self._write_image(image_id, config_bytes, document, diff_ids, source)
            return self._add_names(image_id, source.names, source.digests)

    def _has_layer(self, hex_id):
        return os.path.isfile(os.path.join(self.layers_dir, hex_id, "layer.json"))

    def _make_layer(self, worker, layers, index, chain, progress):
        hex_id = chain[index]
        layer = layers[index]
        with _Lock(os.path.join(self.root, "locks", hex_id), exclusive=True):
            if self._has_layer(hex_id):             # another pull made it meanwhile
                if layer.discard:
                    layer.discard()
                return
            if layer.wait:
                layer.wait()                        # downloaded and checked
            work = os.path.join(self.tmp, f"layer-{hex_id[:SHORT]}-{os.getpid()}")
            os.mkdir(work, 0o700)
            try:
                for part, mode in (("diff", 0o755), ("work", 0o700), ("merged", 0o700)):
                    os.mkdir(os.path.join(work, part), mode)
                driver = self.driver()
                if driver in LAYERED:
                    lowers = [f"l/{below[:SHORT]}" for below in reversed(chain[:index])]
                else:
                    lowers = [os.path.join(self.layers_dir, chain[index - 1], "diff")] \
                        if index else []
                started = time.monotonic()
                size = worker.call("unpack_layer", index, work, lowers, driver, self.root,
                                   self.mount_program())
                worker.call("remove_tree", os.path.join(work, "work"))
                if os.path.exists(os.path.join(work, MOUNT_LOG)):
                    os.unlink(os.path.join(work, MOUNT_LOG))
                os.rmdir(os.path.join(work, "merged"))
                write_atomic(os.path.join(work, "layer.json"), jsonio.dumps({
                    "chain_id": f"sha256:{hex_id}", "diff_id": layer.diff_id,
                    "parent": f"sha256:{chain[index - 1]}" if index else "",
                    "size": size}), 0o644)
                os.rename(work, os.path.join(self.layers_dir, hex_id))    # now trusted
            except BaseException:
                if os.path.exists(work):
                    worker.call("remove_tree", work)
                raise
            finally:
                if layer.discard:
                    layer.discard()
            self._link(hex_id)
            if progress:
                progress.unpacked(layer, size, time.monotonic() - started)

    def _link(self, hex_id):
        """l/<short> -> ../layers/<chain>/diff (made again if a killed pull missed it)."""
        link = os.path.join(self.links_dir, hex_id[:SHORT])
        target = f"../layers/{hex_id}/diff"
        try:
            if os.readlink(link) == target:
                return
        except FileNotFoundError:
            pass
        tmp = f"{link}.{os.getpid()}.tmp"
        os.symlink(target, tmp)
        os.replace(tmp, link)

    def _write_image(self, image_id, config_bytes, document, diff_ids, source):
        work = os.path.join(self.tmp, f"image-{image_id[:SHORT]}-{os.getpid()}")
        os.mkdir(work, 0o700)
        try:
            with open(os.path.join(work, "config.json"), "wb") as f:
                f.write(config_bytes)
            created = document.get("created") if isinstance(document.get("created"),
                                                            str) else ""
            image = Image(id=image_id, path=work, digest=source.digest,
                          size=sum(self.layer_size(c) for c in
                                   (c[7:] for c in chain_ids(diff_ids))),
                          pulled=_now(), created=created or _now(),
                          diff_ids=tuple(diff_ids))
            self._write_meta(image)
            try:
                os.rename(work, os.path.join(self.images_dir, image_id))
            except OSError:
                pass                         # added meanwhile by another pull: theirs
        finally:
            if os.path.exists(work):
                remove_tree(work)

    # --- names --------------------------------------------------------------------------

    def _add_names(self, image_id, names, digests=()):
        """Give these names to the image (taking them from any other image)."""
        with _Lock(os.path.join(self.root, "names.lock"), exclusive=True):
            for image in self.images():
                if image.id != image_id and set(names) & set(image.names):
                    self._write_meta(image.replace(names=tuple(n for n in image.names
                                                               if n not in names)))
            try:
                image = self._load(image_id)
            except FileNotFoundError:
                raise ImageError(f"image {image_id[:12]} was removed while it was being "
                                 "pulled") from None
            image = image.replace(names=tuple(dict.fromkeys(image.names + tuple(names))),
                                  digests=tuple(dict.fromkeys(image.digests
                                                              + tuple(digests))))
            self._write_meta(image)
        return image

    def untag(self, image, name):
        """Take `name` from the image (docker's rmi NAME of an image with other names);
        the Image as it is now. Its files stay, even when it has no name left."""
        with _Lock(os.path.join(self.root, "names.lock"), exclusive=True):
            image = self._load(image.id)
            if name not in image.names:
                raise ImageError(f"image {image.id[:12]} is not named {name!r}")
            image = image.replace(names=tuple(n for n in image.names if n != name))
            self._write_meta(image)
        return image

    def _write_meta(self, image):
        write_atomic(os.path.join(image.path, "image.json"), jsonio.dumps({
            "names": list(image.names), "digests": list(image.digests), "size": image.size,
            "created": image.created, "pulled": image.pulled,
            "diff_ids": list(image.diff_ids), "digest": image.digest}), 0o644)

    # --- removing -------------------------------------------------------------------------

    def remove(self, image):
        """Delete the image, whatever names it has, and every layer no other image uses.
        (The caller checked that no container uses it.)"""
        with self.lock(exclusive=True):
            trash = os.path.join(self.tmp, f"rm-image-{image.id[:SHORT]}-{os.getpid()}")
            os.rename(image.path, trash)
            if os.path.isdir(os.path.join(trash, "rootfs")):     # the containers' ids'
                in_userns(self.mapping, "remove_tree", trash)
            else:
                remove_tree(trash)
            self._remove_unused_layers()

    def remove_unused_layers(self):
        """Remove the layers no image uses (a failed or killed pull's)."""
        with self.lock(exclusive=True):
            self._remove_unused_layers()

    def _remove_unused_layers(self):
        """Layers no image's chain holds (those of removed images, or of a pull killed
        before it wrote its image). Called with the store locked exclusively."""
        used = set()
        for image in self.images():
            used.update(image.chain)
        for hex_id in _listdir(self.layers_dir):
            if hex_id in used:
                continue
            trash = os.path.join(self.tmp, f"rm-layer-{hex_id[:SHORT]}-{os.getpid()}")
            os.rename(os.path.join(self.layers_dir, hex_id), trash)
            link = os.path.join(self.links_dir, hex_id[:SHORT])
            if os.path.islink(link) and os.readlink(link) == f"../layers/{hex_id}/diff":
                os.unlink(link)
            try:
                os.unlink(os.path.join(self.root, "locks", hex_id))
            except FileNotFoundError:
                pass
            in_userns(self.mapping, "remove_tree", trash)

    # --- a container's root ---------------------------------------------------------------

    def lower_dirs(self, image):
        """The image's layer directories, bottom first."""
        return [os.path.join(self.layers_dir, hex_id, "diff") for hex_id in image.chain]

    def overlay_lowers(self, image, bundle):
        """overlayfs's lowerdir value for a container of `image` whose bundle is `bundle`
        (its mounts are made from the bundle directory, as runc's are): short relative
        names through the bundle's `l` link to the store's, topmost first."""
        for hex_id in image.chain:
            self._link(hex_id)
        link = os.path.join(bundle, "l")
        if not os.path.islink(link):
            os.symlink(self.links_dir, link)
        return ":".join(f"l/{hex_id[:SHORT]}" for hex_id in reversed(image.chain))

    def read_file(self, image, path):
        """The text of a regular file of the image ("" when it has none there)."""
        from rootless.image.tree import read_image_file
        layers = self.lower_dirs(image)
        if self.driver() == "vfs":
            layers = layers[-1:]                 # the top layer is the whole tree
        return read_image_file(layers, path)

    def rootfs(self, image):
        """A directory holding the image's whole tree, for what needs one on the host
        (handcar debug --image): with vfs the top layer; with overlay a flattened copy,
        images/<id>/rootfs, made the first time it is asked for (removed with the image)."""
        if self.driver() == "vfs":
            return self.lower_dirs(image)[-1] if image.chain else None
        path = os.path.join(image.path, "rootfs")
        if os.path.isdir(path):
            return path
        with self.lock():
            work = os.path.join(self.tmp, f"rootfs-{image.id[:SHORT]}-{os.getpid()}")
            os.mkdir(work, 0o700)
            try:
                for part in ("rootfs", "upper", "work", "merged"):
                    os.mkdir(os.path.join(work, part), 0o755)
                for hex_id in image.chain:
                    self._link(hex_id)
                lowers = [f"l/{hex_id[:SHORT]}" for hex_id in reversed(image.chain)]
                in_userns(self.mapping, "flatten", self.root, lowers, work,
                          self.mount_program())
                try:
                    os.rename(os.path.join(work, "rootfs"), path)
                except OSError:
                    pass                         # made meanwhile by another process
            finally:
                in_userns(self.mapping, "remove_tree", work)
        return path

    def copy_root(self, image, destination):
        """vfs: the container's root, a copy of the image's top layer (the whole tree)."""
        top = self.lower_dirs(image)[-1:] or []
        if top:
            in_userns(self.mapping, "copy_layer", top[0], destination)


def absolute_reference(text):
    """The Reference of what the user typed, a file path made absolute: str() of it is
    the name a pull gives the image (find it by that)."""
    from oci.image import FILE_KINDS
    reference = parse_reference(text, os.path.exists, os.path.isdir)
    if reference.kind in FILE_KINDS:
        reference = reference.replace(path=os.path.abspath(reference.path))
    return reference


def remove_owned_tree(path, mapping):
    """Remove a tree whose files belong to a container's ids (a copy, an overlay's upper
    layer), from a user namespace mapped like the container's."""
    if mapping is None or mapping.direct:
        make_searchable(path)
        remove_tree(path)
        return
    in_userns(mapping, "remove_tree", path)


class _Lock:
    """An flock on a file, for a `with` block."""

    def __init__(self, path, exclusive):
        self.path = path
        self.exclusive = exclusive
        self.fd = -1

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
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


def _listdir(path):
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- worker calls (in the user namespace) ------------------------------------------------

@worker_call
def probe_overlay(_context, probe, program):
    from rootless.image.unpack import mount_overlay, overlay_options
    from rootless.system import libc
    libc.unshare(libc.CLONE_NEWNS)
    try:
        mount_overlay(program, os.path.join(probe, "merged"), overlay_options(
            [f"{probe}/lower"], f"{probe}/upper", f"{probe}/work"), probe)
    except OSError as err:
        raise ImageError(f"mounting overlayfs: {err.strerror}") from None
    except HandcarError as err:
        raise ImageError(str(err)) from None


@worker_call
def copy_layer(_context, source, destination):
    from rootless.system.fs import copy_directory
    copy_directory(source, destination)


@worker_call
def flatten(_context, store_root, lowers, work, program):
    """Copy the tree of an overlay of `lowers` into `work`/rootfs (store.rootfs)."""
    from rootless.image.unpack import mount_overlay, overlay_options
    from rootless.system.fs import copy_directory
    from rootless.system import libc
    libc.unshare(libc.CLONE_NEWNS)
    os.chdir(store_root)
    merged = os.path.join(work, "merged")
    mount_overlay(program, merged, overlay_options(
        lowers, os.path.join(work, "upper"), os.path.join(work, "work")), work)
    copy_directory(merged, os.path.join(work, "rootfs"))
