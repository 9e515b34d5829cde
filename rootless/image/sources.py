"""Where images come from: an OCI image layout (oci:DIR[:TAG]) or a `docker save` tar
(docker-archive:FILE[:REPO[:TAG]]). Each reader returns the image's config document, the
layers to unpack (LayerSource: how to open one and the digests it must match) and the
names the source gives it; nothing is unpacked here."""

import hashlib
import os

from oci import jsonio
from oci.image import (ImageError, check_digest, choose_manifest, docker_archive_entry,
                       host_platform, is_index, manifest_parts)
from oci.record import Record


class LayerSource(Record):
    """One layer to unpack: how to open it, and the digests it must match."""
    FIELDS = {"open": None, "digest": None, "diff_id": None, "label": ""}


def _read_json(data, where):
    try:
        return jsonio.loads(data)
    except ValueError as err:
        raise ImageError(f"{where}: not valid JSON: {err}") from None


def read_oci_layout(reference):
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
    platform = host_platform(os.uname().machine)
    for _depth in range(4):                       # an index may point at a (platform) index
        descriptor = choose_manifest(document, tag, platform, where)
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


def read_docker_archive(reference):
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
