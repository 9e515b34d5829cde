"""The image verbs, as podman users expect them: pull, images, image inspect, rmi, image
prune, login and logout (their flags are declared in cli/verbs.py)."""

import os

from oci import jsonio
from oci.image import inspect_document
from rootless.errors import HandcarError, NotFound


def _store():
    from rootless.friendly.run import image_store
    return image_store()


def pull(text, quiet, platform, arch):
    """Pull an image; print its ID."""
    from rootless.image.progress import progress_for
    from rootless.image.pull import platform_from, pull as pull_image
    progress = progress_for(quiet)
    try:
        image = pull_image(_store(), text, platform_from(platform, arch), progress)
    finally:
        progress.close()
    print(image.id)


# --- listing and inspecting ----------------------------------------------------------------

def images(quiet, show_all):
    """REPOSITORY TAG IMAGE ID CREATED SIZE, a row per name; the total on disk, where
    layers are shared, after them."""
    from rootless.output import ago, human_size, print_table
    store = _store()
    found = store.images()
    if quiet:
        for image in found:
            if image.names or show_all:
                print(image.id[:12])
        return
    rows = [("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")]
    for image in found:
        if not image.names and not show_all:
            continue
        for name in image.names or ("<none>",):
            repository, tag = split_tag(name)
            rows.append((repository, tag, image.id[:12], ago(image.created),
                         human_size(image.size)))
    print_table(rows)
    layers = {hex_id for image in found for hex_id in image.chain}
    on_disk = sum(store.layer_size(hex_id) for hex_id in layers)
    listed = sum(image.size for image in found)
    if found and on_disk != listed:
        print(f"Total: {len(found)} images, {human_size(on_disk)} on disk "
              f"({human_size(listed - on_disk)} in layers they share, stored once)")


def split_tag(name):
    """(repository, tag) of an image name as podman shows them."""
    if "@" in name:
        return name.partition("@")[0], "<none>"
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash and colon > 0:
        return name[:colon], name[colon + 1:]
    return name, "<none>"


def inspect(names, platform, arch):
    """podman's `image inspect` JSON for each image; with --platform (or --arch), of the
    registry's image for that platform, without pulling it."""
    from rootless.image.pull import local_names, platform_from
    store = _store()
    documents = []
    for text in names:
        if platform or arch:
            from rootless.image.registry import inspect_remote
            documents.append(inspect_remote(text, platform_from(platform, arch)))
            continue
        image = store.find(text, local_names(text))
        if image is None:
            raise NotFound(f"no such image {text}")
        documents.append(inspect_document(image.config_document(), image.id, image.digest,
                                          image.names, image.digests, image.size))
    print(jsonio.dumps(documents, indent=4))


# --- removing ---------------------------------------------------------------------------------

def containers_using(image):
    """The friendly containers made from `image` (their bundle names its id)."""
    from rootless.friendly.run import containers_dir
    users = []
    try:
        names = sorted(os.listdir(containers_dir()))
    except FileNotFoundError:
        return users
    for name in names:
        try:
            with open(os.path.join(containers_dir(), name, "image-id")) as f:
                if f.read().strip() == image.id:
                    users.append(name)
        except OSError:
            continue
    return users


def rmi(container_store, names, force):
    """docker's rmi: a name is taken off its image, which is deleted (with the layers no
    other image uses) once it has no name left, or when it was named by id; an image a
    container uses stays unless -f, which removes the containers too."""
    from rootless.friendly.run import remove_container
    from rootless.image.pull import local_names
    from rootless.image.store import absolute_reference
    store = _store()
    for text in names:
        name = str(absolute_reference(text))
        image, tag = store.match(name, local_names(text))
        if image is None:
            raise NotFound(f"no such image {text}")
        deleting = tag is None or image.names == (tag,)
        users = containers_using(image) if deleting else []
        if users and not force:
            raise HandcarError(f"image {text} is used by container {', '.join(users)} "
                               "(handcar rm them first, or rmi -f)")
        if tag is not None:
            store.untag(image, tag)
            print(f"Untagged: {tag}")
        if not deleting:
            continue
        for container in users:
            remove_container(container_store, container)
        store.remove(image)
        print(f"Deleted: {image.id}")


def prune():
    """Remove dangling images (no name, no container) and the layers only they used, or
    that no image uses (those of pulls that failed)."""
    store = _store()
    for image in store.images():
        if not image.names and not containers_using(image):
            store.remove(image)
            print(image.id)
    store.remove_unused_layers()


# --- credentials (the storage is rootless/image/auth.py) ----------------------------------

def login(registry, username, password_stdin, authfile, tls_verify):
    """`handcar login`: ask for what is missing, check it with the registry, save it."""
    import sys
    from rootless.errors import UsageError
    from rootless.image.auth import Credentials, auth_file, normalize_key, store
    from rootless.image.registry import RegistryClient, check_login
    registry = normalize_key(registry.removeprefix("docker://")).rstrip("/")
    if "/" in registry:
        raise UsageError(f"login {registry}: give a registry (host[:port]), not a "
                         "repository")
    if not username:
        if not sys.stdin.isatty() or password_stdin:
            raise UsageError("login: give the user name with -u (there is no terminal to "
                             "ask it on)" if not password_stdin else
                             "login: --password-stdin needs -u USER")
        username = input("Username: ").strip()
    if password_stdin:
        secret = sys.stdin.read().rstrip("\r\n")
    elif sys.stdin.isatty():
        import getpass
        secret = getpass.getpass("Password: ")
    else:
        raise UsageError("login: no terminal to ask the password on: use --password-stdin")
    if not username or not secret:
        raise UsageError("login: the user name and the password must not be empty")
    credentials = Credentials(username, secret, "login")
    check_login(RegistryClient.for_host(registry, credentials, verify=tls_verify))
    where = store(registry, credentials, auth_file(authfile))
    from rootless import log
    log.debug(f"the credentials for {registry} are kept by {where}")
    print("Login Succeeded!")


def logout(registry, everything, authfile):
    from rootless.image.auth import auth_file, forget, normalize_key
    path = auth_file(authfile)
    registry = normalize_key((registry or "").removeprefix("docker://")).rstrip("/")
    if not forget(registry, everything, path):
        raise NotFound(f"not logged in to {registry}" if not everything
                       else f"no credentials in {path}")
    print("Removed login credentials for all registries" if everything
          else f"Removed login credentials for {registry}")
