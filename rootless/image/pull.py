"""Getting an image into the store: from a file (oci:, oci-archive:, docker-archive:) or
from a registry (a name, or docker://NAME), and the image `run IMAGE` means under its
--pull policy (podman's words: missing, always, never, newer)."""

import os

from oci.image import FILE_KINDS, ImageError, host_platform, parse_platform
from rootless import log
from rootless.image.store import absolute_reference

PULL_POLICIES = ("missing", "always", "never", "newer")


def platform_from(platform_text=None, arch=None):
    """The platform to pull: --platform, else --arch on the host's os, else the host's."""
    host = host_platform(os.uname().machine)
    if platform_text:
        return parse_platform(platform_text, host)
    if arch:
        return parse_platform(arch, host)
    return host


def pull(store, text, platform, progress):
    """Add the image `text` names to the store (a file's, or a registry's); the Image."""
    reference = absolute_reference(text)
    if reference.kind in FILE_KINDS:
        from rootless.image.sources import read_file_source
        return store.add(read_file_source(reference, platform), progress)
    if reference.kind == "dir":
        raise ImageError(f"{text}: a directory is a rootfs to run, not an image to pull "
                         "(oci:DIR pulls an OCI layout)")
    from rootless.image.registry import pull_from_registry
    return pull_from_registry(store, reference.path, platform, progress)


def image_for_run(store, text, policy, platform, progress):
    """The Image `run` uses for `text` (a name, id, registry reference or file), pulled
    as `policy` says."""
    reference = absolute_reference(text)
    if reference.kind in FILE_KINDS:
        if policy == "never":
            found = store.find(str(reference))
            if found is None:
                raise ImageError(f"{text}: not in the store, and --pull never")
            return found
        return pull(store, text, platform, progress)   # re-read: the file may have changed
    local = None
    if reference.kind != "docker":                 # registries.conf only when needed
        local = store.find(text) or store.find(text, local_names(text))
    if policy == "never":
        if local is None:
            raise ImageError(f"no such image {text!r} in the store, and --pull never "
                             "(handcar images lists them)")
        return local
    if local is not None and policy == "missing":
        return local
    if local is not None and policy == "newer":
        from rootless.image.registry import is_newer_on_registry
        try:
            if not is_newer_on_registry(store, local, text, platform):
                return local
        except ImageError as err:
            log.warning(f"{text}: cannot check for a newer image ({err}): using the stored one")
            return local
    return pull(store, text, platform, progress)


def local_names(text):
    """The fully qualified names a short or familiar name may mean locally (with their
    default tag), as registries.conf and the alias cache resolve it (never asking: an
    image stored under any of them is the one); () when `text` is no registry name."""
    from oci.reference import parse
    from rootless.image.config import registries_conf
    try:
        parse(text)
    except ImageError:
        return ()
    from oci.registries import candidates
    from rootless.image.config import cached_aliases
    try:
        return tuple(str(c.reference) for c in candidates(registries_conf(), text,
                                                          cached_aliases()))
    except ImageError:
        return ()
