"""OCI images as the image-spec (and `docker save`) describe them: references, index,
manifest and config documents, platforms, media types (pure: the engine reads the files
and talks to registries, this reads the JSON).

    oci:DIR[:TAG]        an OCI image layout (index.json, blobs/sha256/...), as skopeo,
                         umoci and `podman save --format oci-dir` write it
    oci-archive:FILE[:TAG]
                         a tar of an OCI image layout (`podman save --format oci-archive`)
    docker-archive:FILE[:REPO[:TAG]]
                         a tar as `docker save` / `podman save` write it (manifest.json)
    docker://NAME        an image on a registry (oci.reference, oci.registries)
    a directory path     a rootfs to run as it is
    anything else        the name (or id) of an image already pulled, or a registry
                         image to pull
"""

import hashlib

from .errors import HandcarError
from .record import Record
from .runspec import ImageConfig

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
CONFIG_TYPES = ("application/vnd.oci.image.config.v1+json",
                "application/vnd.docker.container.image.v1+json")
# layer media type -> its compression ("" for a plain tar)
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
}
FOREIGN_LAYER_TYPES = (
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)
REF_NAME = "org.opencontainers.image.ref.name"
# os.uname().machine -> the image-spec's architecture
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
                 "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
                 "riscv64": "riscv64"}
HEX = frozenset("0123456789abcdef")


class ImageError(HandcarError):
    """An image is missing, malformed or does not match its digests."""


class Reference(Record):
    # kind: oci | oci-archive | docker-archive | docker (docker://NAME) | dir | name
    FIELDS = {"kind": None, "path": "", "tag": ""}

    def __str__(self):
        if self.kind in FILE_KINDS:
            return f"{self.kind}:{self.path}" + (f":{self.tag}" if self.tag else "")
        if self.kind == "docker":
            return f"docker://{self.path}"
        return self.path


FILE_KINDS = ("oci", "oci-archive", "docker-archive")    # images in local files


def parse_reference(text, exists, is_directory):
    """A Reference for what the user typed; `exists`/`is_directory` (of a host path) tell
    a path from a name, and where the path ends in `oci:DIR:TAG`, `oci-archive:FILE:TAG`
    and `docker-archive:FILE:REPO:TAG` (skopeo's and podman's syntax): at the first ':'
    whose prefix is a directory (oci) or a file (the archives); when none is, the whole
    text is the path (so a missing one is reported as typed)."""
    if text.startswith("docker://"):
        return Reference("docker", text[len("docker://"):])
    for kind in FILE_KINDS:
        if text.startswith(kind + ":"):
            rest = text[len(kind) + 1:]
            is_there = is_directory if kind == "oci" else (
                lambda path: exists(path) and not is_directory(path))
            path, tag = rest, ""
            colon = rest.find(":")
            while colon > 0:
                if is_there(rest[:colon]):
                    path, tag = rest[:colon], rest[colon + 1:]
                    break
                colon = rest.find(":", colon + 1)
            if not path:
                raise ImageError(f"{text}: missing the path after {kind}:")
            return Reference(kind, path, tag)
    if text.startswith(("/", "./", "../")) or text in (".", "..") or is_directory(text):
        return Reference("dir", text)
    return Reference("name", text)


def check_digest(digest, where):
    """The hex part of a sha256 digest, or ImageError."""
    algorithm, _, hex_part = str(digest).partition(":")
    if algorithm != "sha256" or len(hex_part) != 64 or not HEX.issuperset(hex_part):
        raise ImageError(f"{where}: unsupported or malformed digest {digest!r} "
                         "(expected sha256:<64 hex digits>)")
    return hex_part


def _require(document, key, kind, where):
    value = document.get(key) if isinstance(document, dict) else None
    if not isinstance(value, kind):
        raise ImageError(f"{where}: missing or malformed {key!r}")
    return value


def choose_manifest(index, tag, platform, where):
    """The descriptor to follow in an OCI layout's index: the one named `tag` (or the
    only one), and among platform-specific ones, `platform`'s (see choose_platform)."""
    manifests = _require(index, "manifests", list, where)
    if tag:
        named = [m for m in manifests if isinstance(m, dict)
                 and (m.get("annotations") or {}).get(REF_NAME) == tag]
        if not named:
            tags = sorted({(m.get("annotations") or {}).get(REF_NAME, "") for m in manifests
                           if isinstance(m, dict)} - {""})
            raise ImageError(f"{where}: no image tagged {tag!r}"
                             + (f" (tags: {', '.join(tags)})" if tags else ""))
        manifests = named
    if any(isinstance(m, dict) and m.get("platform") for m in manifests):
        return choose_platform({"manifests": manifests}, platform, where)
    if len(manifests) != 1:
        raise ImageError(f"{where}: holds {len(manifests)} images; name one with :TAG")
    descriptor = manifests[0]
    check_digest(_require(descriptor, "digest", str, where), where)
    return descriptor


def is_index(descriptor_or_document):
    return descriptor_or_document.get("mediaType") in INDEX_TYPES or (
        "manifests" in descriptor_or_document and "layers" not in descriptor_or_document)


def manifest_parts(manifest, where):
    """(config descriptor, [layer descriptors]) of an image manifest."""
    config = _require(manifest, "config", dict, where)
    check_digest(_require(config, "digest", str, f"{where}: config"), f"{where}: config")
    layers = _require(manifest, "layers", list, where)
    for i, layer in enumerate(layers):
        check_digest(_require(layer, "digest", str, f"{where}: layers[{i}]"),
                     f"{where}: layers[{i}]")
    return config, layers


def normalized_name(name):
    """A docker image name as docker and skopeo compare them: `busybox`,
    `busybox:latest`, `library/busybox` and `docker.io/library/busybox:latest` are one."""
    slash = name.rfind("/")
    if ":" not in name[slash + 1:] and "@" not in name:
        name += ":latest"
    first, _, rest = name.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + name                        # no registry: docker.io's
    domain, _, path = name.partition("/")
    if domain == "docker.io" and "/" not in path:
        name = f"docker.io/library/{path}"                # an official image
    return name


def docker_archive_entry(manifest, repo_tag, where):
    """(config path, [layer paths], [repo tags]) of the image in a docker-archive's
    manifest.json: the one tagged `repo_tag` (REPO:TAG, or REPO meaning REPO:latest), or
    the only one."""
    if not isinstance(manifest, list) or not manifest:
        raise ImageError(f"{where}: manifest.json lists no image")
    entries = manifest
    if repo_tag:
        wanted = normalized_name(repo_tag)
        entries = [e for e in manifest if isinstance(e, dict) and any(
            isinstance(t, str) and normalized_name(t) == wanted
            for t in e.get("RepoTags") or ())]
        if not entries:
            tags = sorted({t for e in manifest if isinstance(e, dict)
                           for t in e.get("RepoTags") or () if isinstance(t, str)})
            raise ImageError(f"{where}: no image tagged {repo_tag!r}"
                             + (f" (tags: {', '.join(tags)})" if tags else ""))
    if len(entries) != 1:
        raise ImageError(f"{where}: holds {len(entries)} images; name one with :REPO:TAG")
    entry = entries[0]
    config = _require(entry, "Config", str, where)
    layers = _require(entry, "Layers", list, where)
    if not all(isinstance(layer, str) for layer in layers):
        raise ImageError(f"{where}: malformed Layers")
    return config, layers, [t for t in entry.get("RepoTags") or () if isinstance(t, str)]


def image_config(document, where):
    """(ImageConfig, [diff_ids]) of an image config document."""
    if not isinstance(document, dict):
        raise ImageError(f"{where}: not an image config")
    rootfs = _require(document, "rootfs", dict, where)
    diff_ids = _require(rootfs, "diff_ids", list, f"{where}: rootfs")
    for i, digest in enumerate(diff_ids):
        check_digest(digest, f"{where}: rootfs.diff_ids[{i}]")
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ImageError(f"{where}: malformed config")

    def strings(key):
        value = config.get(key) or []
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ImageError(f"{where}: config.{key} must be a list of strings")
        return tuple(value)

    ports = config.get("ExposedPorts") or {}
    return ImageConfig(
        entrypoint=strings("Entrypoint"), cmd=strings("Cmd"), env=strings("Env"),
        workdir=str(config.get("WorkingDir") or ""), user=str(config.get("User") or ""),
        exposed_ports=tuple(sorted(ports)) if isinstance(ports, dict) else (),
        stop_signal=str(config.get("StopSignal") or ""),
    ), list(diff_ids)


# --- platforms ------------------------------------------------------------------------------

class Platform(Record):
    FIELDS = {"os": "linux", "architecture": "", "variant": ""}

    def __str__(self):
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


# os.uname().machine -> the variant the image-spec gives that machine's images
VARIANTS = {"aarch64": "v8", "armv7l": "v7", "armv6l": "v6"}
# what a machine of one variant also runs, best first (containerd's platform matching)
COMPATIBLE_VARIANTS = {("arm", "v8"): ("v8", "v7", "v6", "v5"),
                       ("arm", "v7"): ("v7", "v6", "v5"), ("arm", "v6"): ("v6", "v5"),
                       ("arm", ""): ("v7", "v6", "v5", ""),       # arm alone is v7
                       ("arm64", "v8"): ("v8", ""), ("arm64", ""): ("", "v8")}


def host_platform(machine):
    """The Platform of a host whose os.uname().machine is `machine`."""
    return Platform("linux", ARCHITECTURES.get(machine, machine), VARIANTS.get(machine, ""))


def parse_platform(text, default):
    """--platform OS/ARCH[/VARIANT] (or ARCH, or OS/ARCH): a Platform; what is left out
    comes from `default` (the host's) only for the os."""
    parts = text.split("/")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise ImageError(f"--platform {text!r}: expected OS/ARCH[/VARIANT], e.g. "
                         "linux/arm64 or linux/arm/v7")
    if len(parts) == 1:
        return Platform(default.os, parts[0], "")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def _platform_of(descriptor):
    platform = descriptor.get("platform") if isinstance(descriptor, dict) else None
    if not isinstance(platform, dict):
        return None
    return Platform(str(platform.get("os", "")), str(platform.get("architecture", "")),
                    str(platform.get("variant", "")))


def choose_platform(index, platform, where):
    """The descriptor in an index (OCI index or Docker manifest list) for `platform`: os
    and architecture equal, the variant the best the platform runs (arm64 without a
    variant is v8; a v7 arm runs v6 and v5). ImageError listing what the index offers."""
    manifests = _require(index, "manifests", list, where)
    preferred = COMPATIBLE_VARIANTS.get((platform.architecture, platform.variant),
                                        (platform.variant,))
    best, best_rank, offered = None, None, []
    for descriptor in manifests:
        offer = _platform_of(descriptor)
        if offer is None or offer.os == "unknown":     # attestations (buildx), not images
            continue
        offered.append(str(offer))
        if (offer.os, offer.architecture) != (platform.os, platform.architecture):
            continue
        if offer.variant in preferred:
            rank = preferred.index(offer.variant)
        elif not platform.variant:
            rank = len(preferred)              # no variant asked: any, after the preferred
        else:
            continue
        if best is None or rank < best_rank:
            best, best_rank = descriptor, rank
    if best is None:
        raise ImageError(f"{where}: no image for {platform} (it has "
                         + (", ".join(sorted(set(offered))) or "no platform images") + ")")
    check_digest(_require(best, "digest", str, where), where)
    return best


# --- layers ---------------------------------------------------------------------------------

def layer_compression(descriptor, where):
    """"", "gzip" or "zstd" for a layer descriptor of a manifest; ImageError for a foreign
    (non-distributable), encrypted or unknown layer, by its media type."""
    media_type = descriptor.get("mediaType", "")
    if media_type in FOREIGN_LAYER_TYPES:
        urls = descriptor.get("urls") or ()
        return _refuse(f"{where}: layer {descriptor.get('digest')} is a non-distributable "
                       f"(foreign) layer ({media_type}"
                       + (f", at {urls[0]}" if urls and isinstance(urls[0], str) else "")
                       + "): handcar does not fetch foreign layers")
    if media_type in LAYER_TYPES:
        return LAYER_TYPES[media_type]
    if "+encrypted" in media_type:
        return _refuse(f"{where}: layer {descriptor.get('digest')} is encrypted "
                       f"({media_type}): not supported")
    return _refuse(f"{where}: layer {descriptor.get('digest')} has the media type "
                   f"{media_type or '(none)'}, which is not a container image layer")


def _refuse(message):
    raise ImageError(message)


def chain_ids(diff_ids):
    """The image-spec's ChainIDs of a list of diff_ids: a layer's identity together with
    every layer below it (what an unpacked layer's content depends on)."""
    chain = []
    for diff_id in diff_ids:
        chain.append(diff_id if not chain else "sha256:" + hashlib.sha256(
            f"{chain[-1]} {diff_id}".encode()).hexdigest())
    return chain


def inspect_document(config, image_id, digest, names, digests, size):
    """podman's inspect fields for an image config document."""
    container_config = config.get("config") or {}
    return {
        "Id": image_id,
        "Digest": digest,
        "RepoTags": list(names),
        "RepoDigests": list(digests),
        "Created": config.get("created", ""),
        "Config": container_config,
        "Author": config.get("author", ""),
        "Architecture": config.get("architecture", ""),
        "Os": config.get("os", ""),
        **({"Variant": config["variant"]} if config.get("variant") else {}),
        "Size": size,
        "Labels": container_config.get("Labels"),
        "RootFS": {"Type": "layers",
                   "Layers": list((config.get("rootfs") or {}).get("diff_ids") or ())},
        "History": config.get("history") or [],
    }
