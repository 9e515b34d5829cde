"""Build small OCI images for the tests: an OCI image layout and a docker-archive of the
same image, from the busybox rootfs plus a second layer that whites out /etc/group and adds
/etc/motd (what `skopeo copy` and `docker save` would write)."""

import gzip
import hashlib
import io
import json
import os
import tarfile


def _tar_of_directory(root, uid=0):
    """A layer tar of `root` (owner `uid`: files of container root)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory, subdirs, files in os.walk(root):
            subdirs.sort()
            for name in sorted(subdirs + files):
                path = os.path.join(directory, name)
                info = tar.gettarinfo(path, os.path.relpath(path, root))
                info.uid = info.gid = uid
                info.uname = info.gname = ""
                if info.isfile():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buffer.getvalue()


def tar_of_entries(entries):
    """A layer tar from (name, bytes or None for a directory or a ("symlink"|"hardlink",
    target) tuple, mode, uid[, {xattr name: bytes}]) entries; extended attributes as
    `tar --xattrs` writes them (PAX SCHILY.xattr.NAME records)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode, uid, *xattrs in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid = mode, uid, uid
            info.pax_headers = {f"SCHILY.xattr.{key}": value.decode("utf-8", "surrogateescape")
                                for key, value in (xattrs[0] if xattrs else {}).items()}
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(data, tuple):
                info.type = tarfile.SYMTYPE if data[0] == "symlink" else tarfile.LNKTYPE
                info.linkname = data[1]
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_layers(rootfs):
    """The two uncompressed layer tars of the test image."""
    base = _tar_of_directory(rootfs)
    upper = tar_of_entries([
        ("etc", None, 0o755, 0),
        ("etc/.wh.group", b"", 0o644, 0),
        ("etc/motd", b"hello from the upper layer\n", 0o644, 0),
        ("srv", None, 0o755, 0),
        ("srv/owned-by-33", b"www\n", 0o640, 33),
    ])
    return [base, upper]


def image_config(diff_ids, greeting="from-the-image"):
    return {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin", f"GREETING={greeting}"], "WorkingDir": "/srv",
                   "Cmd": ["sh", "-c", "echo $GREETING in $(pwd); cat /etc/motd; "
                                       "test -e /etc/group || echo no-etc-group"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }


def write_oci_layout(directory, rootfs, tag="latest", compress=True,
                     greeting="from-the-image"):
    """An OCI image layout in `directory`; returns the image's config digest (a new
    `greeting` makes a new image of the same layers)."""
    return write_layout_of_layers(directory, image_layers(rootfs), tag, compress, greeting)


def write_layout_of_layers(directory, layers, tag="latest", compress=True,
                           greeting="from-the-image", store=None, media_type=None,
                           config=None):
    """An OCI image layout in `directory` of these layer tars (stored gzipped, plain, or
    as `store(tar)` makes them, with `media_type`); returns the image's config digest.
    `config` changes the config document (a function of it)."""
    blobs = os.path.join(directory, "blobs", "sha256")
    os.makedirs(blobs)

    def put(data):
        digest = sha256(data)
        with open(os.path.join(blobs, digest[7:]), "wb") as f:
            f.write(data)
        return digest

    diff_ids = [sha256(layer) for layer in layers]
    if store is None:
        store = (lambda layer: gzip.compress(layer, mtime=0)) if compress else bytes
    stored = [store(layer) for layer in layers]
    document = image_config(diff_ids, greeting)
    config = json.dumps(config(document) if config else document).encode()
    layer_type = media_type or ("application/vnd.oci.image.layer.v1.tar"
                                + ("+gzip" if compress else ""))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(config), "size": len(config)},
        "layers": [{"mediaType": layer_type, "digest": put(blob), "size": len(blob)}
                   for blob in stored],
    }).encode()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(manifest),
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    with open(os.path.join(directory, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(directory, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return sha256(config)


def write_docker_archive(path, rootfs, repo_tag="handcar-test/busybox:latest",
                         greeting="from-the-archive"):
    """A `docker save` tar of the same layers (as <id>/layer.tar, as docker < 25)."""
    return write_docker_archive_of(path, [(image_layers(rootfs), [repo_tag], greeting)])[0]


def write_docker_archive_of(path, images):
    """A `docker save` tar of several images, each (layer tars, repo tags, greeting);
    returns their config digests."""
    members, manifest, digests = {}, [], []
    for layers, repo_tags, greeting in images:
        diff_ids = [sha256(layer) for layer in layers]
        config = json.dumps(image_config(diff_ids, greeting)).encode()
        config_name = sha256(config)[7:] + ".json"
        members[config_name] = config
        names = []
        for layer in layers:
            name = f"{sha256(layer)[7:]}/layer.tar"
            members[name] = layer
            names.append(name)
        manifest.append({"Config": config_name, "RepoTags": repo_tags, "Layers": names})
        digests.append(sha256(config))
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return digests
