"""OCI images as the image-spec (and `docker save`) describe them: references, index,
manifest and config documents (pure: the engine reads the files, this reads the JSON).

    oci:DIR[:TAG]        an OCI image layout (index.json, blobs/sha256/...), as skopeo,
                         umoci and `podman save --format oci-dir` write it
    docker-archive:FILE[:REPO[:TAG]]
                         a tar as `docker save` / `podman save` write it (manifest.json)
    a directory path     a rootfs to run as it is
    anything else        the name (or id) of an image already pulled
"""

from .errors import HandcarError
from .record import Record
from .runspec import ImageConfig

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
REF_NAME = "org.opencontainers.image.ref.name"
# os.uname().machine -> the image-spec's architecture
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
                 "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
                 "riscv64": "riscv64"}
HEX = frozenset("0123456789abcdef")


class ImageError(HandcarError):
    """An image is missing, malformed or does not match its digests."""


class Reference(Record):
    FIELDS = {"kind": None, "path": "", "tag": ""}   # kind: oci | docker-archive | dir | name

    def __str__(self):
        if self.kind == "oci":
            return f"oci:{self.path}" + (f":{self.tag}" if self.tag else "")
        if self.kind == "docker-archive":
            return f"docker-archive:{self.path}" + (f":{self.tag}" if self.tag else "")
        return self.path


def parse_reference(text, exists, is_directory):
    """A Reference for what the user typed; `exists`/`is_directory` (of a host path) tell
    a path from a name, and where the path ends in `oci:DIR:TAG` and
    `docker-archive:FILE:REPO:TAG` (skopeo's and podman's syntax): at the first ':' whose
    prefix is a directory (oci) or a file (docker-archive); when none is, the whole text
    is the path (so a missing one is reported as typed)."""
    for kind in ("oci", "docker-archive"):
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


def choose_manifest(index, tag, machine, where):
    """The descriptor to follow in an index: the one named `tag` (or the only one), and
    among platform-specific ones, this machine's."""
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
    with_platform = [m for m in manifests if isinstance(m, dict) and m.get("platform")]
    if with_platform:
        arch = ARCHITECTURES.get(machine, machine)
        manifests = [m for m in with_platform
                     if m["platform"].get("architecture") == arch
                     and m["platform"].get("os", "linux") == "linux"]
        if not manifests:
            raise ImageError(f"{where}: no image for linux/{arch}")
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
