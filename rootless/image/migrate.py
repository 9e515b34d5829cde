"""Images of the old layout (before the layer store): DATA/images/<id>/rootfs, one whole
tree per image. Each is pulled again into the layer store from the oci:, oci-archive: or
docker-archive: file it was named after, when that file is still there, and keeps its
names; otherwise it is dropped with a warning saying to pull it again. An old image a
container still runs from stays until that container is removed (its overlay names the
old tree): never half-usable.
"""

import os

from oci import jsonio
from oci.image import FILE_KINDS, host_platform, parse_reference
from rootless import log
from rootless.errors import HandcarError
from rootless.image.worker import in_userns


def migrate_legacy_images(store):
    legacy = os.path.join(store.data_dir, "images")
    for image_id in sorted(os.listdir(legacy)):
        path = os.path.join(legacy, image_id)
        if len(image_id) != 64:
            if image_id.startswith((".pull-", ".rm-")):   # what a killed old pull left
                in_userns(store.mapping, "remove_tree", path)
            continue
        if _used_by_a_container(store.data_dir, path):
            continue
        names = _names(path)
        if not _pull_again(store, image_id, names):
            log.warning(f"image {image_id[:12]} ({', '.join(names) or 'no name'}) was "
                        "stored by an older handcar and cannot be moved to the layer store: "
                        "pull it again")
        in_userns(store.mapping, "remove_tree", path)
    try:
        os.rmdir(legacy)
    except OSError:
        pass                                   # an image a container still uses


def _names(path):
    try:
        with open(os.path.join(path, "image.json"), "rb") as f:
            return list(jsonio.loads(f.read()).get("names", ()))
    except (OSError, ValueError):
        return []


def _pull_again(store, image_id, names):
    from rootless.image.sources import read_file_source
    platform = host_platform(os.uname().machine)
    for name in names:
        reference = parse_reference(name, os.path.exists, os.path.isdir)
        if reference.kind not in FILE_KINDS or not os.path.exists(reference.path):
            continue
        try:
            image = store.add(read_file_source(reference, platform).replace(names=()))
        except HandcarError as err:
            log.debug(f"moving image {image_id[:12]} from {name}: {err}")
            continue
        if image.id == image_id:
            store._add_names(image.id, names)
            log.warning(f"image {image_id[:12]} moved to the layer store (pulled again "
                        f"from {name})")
            return True
        if not image.names:
            store.remove(image)                # the file holds another image now
    return False


def _used_by_a_container(data_dir, image_path):
    containers = os.path.join(data_dir, "containers")
    rootfs = os.path.join(image_path, "rootfs")
    try:
        names = os.listdir(containers)
    except FileNotFoundError:
        return False
    for name in names:
        try:
            with open(os.path.join(containers, name, "config.json")) as f:
                if f"lowerdir={rootfs}" in f.read():
                    return True
        except OSError:
            continue
    return False

