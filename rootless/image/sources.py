"""Where images come from, as ImageSources: the image's config document, its layers to
unpack (LayerSource: how to open one and the digests it must match) and the names the
source gives it. Nothing is unpacked here (store.py does that).

    oci:DIR[:TAG]                    an OCI image layout
    oci-archive:FILE[:TAG]           a tar of one
    docker-archive:FILE[:REPO[:TAG]] a `docker save` tar
    a registry                       registry.py (open_registry_image)
"""

import hashlib
import os

from oci import jsonio
from oci.image import (ImageError, check_digest, choose_manifest, docker_archive_entry,
                       is_index, layer_compression, manifest_parts)
from oci.record import Record

MAX_DOCUMENT = 4 << 20          # an index, manifest or config larger than this is refused


class LayerSource(Record):
    """One layer to unpack: how to open it (a binary file with peek()), the digests it
    must match; for a download, `wait` blocks until it is here and checked and `discard`
    removes it once unpacked (or not needed)."""
    FIELDS = {"open": None, "digest": None, "diff_id": None, "label": "", "size": None,
              "wait": None, "discard": None}


class ImageSource(Record):
    """An image to add to the store. `prefetch(indexes, directory, progress)`, when
    given, starts fetching those layers (before they are unpacked, in order)."""
    FIELDS = {"config": b"", "layers": (), "names": (), "digests": (), "digest": "",
              "where": "", "prefetch": None}


def read_json(data, where):
    try:
        return jsonio.loads(data)
    except ValueError as err:
        raise ImageError(f"{where}: not valid JSON: {err}") from None


# --- files: a directory or a tar -------------------------------------------------------------

class _Directory:
    def __init__(self, path, where):
        self.path, self.where = path, where

    def exists(self, name):
        return os.path.isfile(os.path.join(self.path, name))

    def read(self, name):
        path = os.path.join(self.path, name)
        try:
            with open(path, "rb") as f:
                return f.read(MAX_DOCUMENT + 1)
        except OSError as err:
            raise ImageError(f"{self.where}: {name}: {err.strerror}") from None

    def opener(self, name):
        path = os.path.join(self.path, name)
        return lambda: open(path, "rb")


class _Archive:
    def __init__(self, path, where):
        import tarfile
        self.path, self.where = path, where
        try:
            with tarfile.open(path, "r:") as archive:
                self.members = {m.name.removeprefix("./"): m for m in archive.getmembers()
                                if m.isfile()}
        except (OSError, tarfile.TarError) as err:
            raise ImageError(f"{where}: {getattr(err, 'strerror', None) or err}") from None

    def exists(self, name):
        return name.removeprefix("./") in self.members

    def read(self, name):
        with self.opener(name)() as f:
            return f.read(MAX_DOCUMENT + 1)

    def opener(self, name):
        import tarfile
        member = self.members.get(name.removeprefix("./"))
        if member is None:
            raise ImageError(f"{self.where}: {name} is missing from the archive")
        return lambda: tarfile.open(self.path, "r:").extractfile(member)


# --- OCI image layouts -------------------------------------------------------------------

def read_oci_layout(reference, platform):
    """oci:DIR[:TAG]."""
    where = f"oci:{reference.path}"
    return _read_layout(_Directory(reference.path, where), reference, platform, where)


def read_oci_archive(reference, platform):
    """oci-archive:FILE[:TAG]: the same, from a tar."""
    where = f"oci-archive:{reference.path}"
    return _read_layout(_Archive(reference.path, where), reference, platform, where)


def _read_layout(files, reference, platform, where):
    def blob_name(descriptor):
        return "blobs/sha256/" + check_digest(descriptor.get("digest"), where)

    def read_blob(descriptor):
        name = blob_name(descriptor)
        data = files.read(name)
        if hashlib.sha256(data).hexdigest() != name.rsplit("/", 1)[1]:
            raise ImageError(f"{where}: {name} does not match its digest")
        return data

    if not files.exists("index.json"):
        raise ImageError(f"{where}: no index.json (not an OCI image layout)")
    document = read_json(files.read("index.json"), f"{where}/index.json")
    tag = reference.tag
    for _depth in range(4):                       # an index may point at a (platform) index
        descriptor = choose_manifest(document, tag, platform, where)
        document = read_json(read_blob(descriptor), f"{where}: manifest")
        tag = ""
        if not is_index(document):
            break
    else:
        raise ImageError(f"{where}: indexes nested too deep")
    config, layer_descriptors = manifest_parts(document, where)
    layers = []
    for d in layer_descriptors:
        if "mediaType" in d:
            layer_compression(d, where)               # foreign layers: refused by name
        if not files.exists(blob_name(d)):
            raise ImageError(f"{where}: layer {d['digest']} is missing")
        layers.append(LayerSource(open=files.opener(blob_name(d)), digest=d["digest"],
                                  label=d["digest"][7:19], size=d.get("size")))
    return ImageSource(config=read_blob(config), layers=tuple(layers),
                       names=(str(reference),), where=where)


# --- docker-archive ----------------------------------------------------------------------------

def read_docker_archive(reference):
    """docker-archive:FILE[:REPO[:TAG]]: named by the reference and the archive's repo
    tags. Layers named by digest (blobs/sha256/HEX, newer docker) are checked against it."""
    where = f"docker-archive:{reference.path}"
    files = _Archive(reference.path, where)
    manifest = read_json(files.read("manifest.json"), f"{where}/manifest.json")
    config_name, layer_names, repo_tags = docker_archive_entry(manifest, reference.tag, where)
    layers = []
    for name in layer_names:
        if not files.exists(name):
            raise ImageError(f"{where}: layer {name} is missing from the archive")
        base = name.rsplit("/", 1)[-1]
        digest = f"sha256:{base}" if "/sha256/" in f"/{name}" and len(base) == 64 else None
        layers.append(LayerSource(open=files.opener(name), digest=digest, label=name[:19]))
    names = [str(reference)] + [n for n in repo_tags if n != str(reference)]
    return ImageSource(config=files.read(config_name), layers=tuple(layers),
                       names=tuple(names), where=where)


def read_file_source(reference, platform):
    """The ImageSource of an oci:, oci-archive: or docker-archive: reference."""
    if reference.kind == "oci":
        return read_oci_layout(reference, platform)
    if reference.kind == "oci-archive":
        return read_oci_archive(reference, platform)
    return read_docker_archive(reference)
