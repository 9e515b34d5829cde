"""Registry image references as docker, podman and skopeo read them (the grammar of
distribution's `reference` package): NAME[:TAG][@DIGEST], with or without `docker://`.

    busybox                      docker.io/library/busybox:latest
    ghcr.io/org/app:sha          a name whose first component is a host (it has a '.' or
    localhost:5000/app@sha256:…  a ':', or is `localhost`) is fully qualified
    myorg/app                    a short name: which registry it means is registries.conf's
                                 business (oci.registries), docker.io when nothing says

Pure: nothing here touches the network or the filesystem.
"""

import re

from .image import ImageError
from .record import Record

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
MAX_NAME = 255

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = (rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
           r"(?::[0-9]+)?")
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_PATH = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(_TAG)
_DIGEST_RE = re.compile(_DIGEST)
_HEX64 = re.compile(r"[a-f0-9]{64}")


class DockerReference(Record):
    """A parsed reference. `domain` is "" for a short name (no registry in it); `tag` is
    "" when none was given (see `with_default_tag`)."""
    FIELDS = {"domain": "", "path": "", "tag": "", "digest": ""}

    @property
    def name(self):
        """The repository with its registry: docker.io/library/busybox."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def is_short(self):
        return not self.domain

    def with_default_tag(self):
        """`latest` when neither a tag nor a digest was given (docker's TagNameOnly)."""
        return self if self.tag or self.digest else self.replace(tag="latest")

    def __str__(self):
        return self.name + (f":{self.tag}" if self.tag else "") + (
            f"@{self.digest}" if self.digest else "")

    @property
    def familiar(self):
        """How docker prints it: busybox:latest for docker.io/library/busybox:latest."""
        text = str(self)
        if self.domain == DEFAULT_DOMAIN:
            text = text[len(DEFAULT_DOMAIN) + 1:]
            if text.startswith(OFFICIAL_PREFIX) and "/" not in self.path[len(OFFICIAL_PREFIX):]:
                text = text[len(OFFICIAL_PREFIX):]
        return text


def looks_qualified(first_component):
    """Whether the first component of a name is a registry host, as docker decides it."""
    return ("." in first_component or ":" in first_component
            or first_component == "localhost" or first_component.lower() != first_component)


def parse(text):
    """A DockerReference for NAME[:TAG][@DIGEST] (a `docker://` prefix allowed), the
    registry kept as written: "" for a short name. ImageError naming what is wrong."""
    original = text
    text = text.removeprefix("docker://")
    if not text:
        raise ImageError("an empty image name")
    if _HEX64.fullmatch(text):
        raise ImageError(f"{original}: a 64-digit hex string is an image ID, not a name to "
                         "pull")
    name, _, digest = text.partition("@")
    if digest and not _DIGEST_RE.fullmatch(digest):
        raise ImageError(f"{original}: invalid digest {digest!r}")
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not _TAG_RE.fullmatch(tag):
            raise ImageError(f"{original}: invalid tag {tag!r}")
    domain, path = "", name
    first, sep, rest = name.partition("/")
    if sep and looks_qualified(first):
        if not _DOMAIN_RE.fullmatch(first):
            raise ImageError(f"{original}: invalid registry name {first!r}")
        domain, path = first, rest
    if path.lower() != path:
        raise ImageError(f"{original}: repository name must be lowercase")
    if not _PATH.fullmatch(path):
        raise ImageError(f"{original}: invalid reference format (a name is lowercase "
                         "letters, digits and separators . _ - /)")
    if len(name) > MAX_NAME:
        raise ImageError(f"{original}: repository name longer than {MAX_NAME} characters")
    return DockerReference(domain, path, tag, digest)


def qualify(reference, domain):
    """The reference on registry `domain` (docker.io's one-component names get library/;
    index.docker.io is docker.io)."""
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    path = reference.path
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return reference.replace(domain=domain, path=path)


def parse_normalized(text):
    """A fully qualified DockerReference as docker reads any name: short names on
    docker.io (ParseNormalizedNamed). No tag is added."""
    reference = parse(text)
    return qualify(reference, reference.domain or DEFAULT_DOMAIN)
