"""Where containers' tools keep their registry configuration, found as containers/image
finds it (podman, skopeo and buildah read the same files):

    registries.conf   $CONTAINERS_REGISTRIES_CONF, else ~/.config/containers/
                      registries.conf when it exists, else /etc/containers/registries.conf;
                      then /etc/containers/registries.conf.d/*.conf and
                      ~/.config/containers/registries.conf.d/*.conf, in name order
    short-name-aliases.conf   the aliases recorded when a user chose a short name's
                      registry at the prompt: $XDG_CACHE_HOME/containers/, else
                      ~/.cache/containers/ (root's: /var/cache/containers/)
    certs.d           ~/.config/containers/certs.d/HOST[:PORT]/, else
                      /etc/containers/certs.d/HOST[:PORT]/, else /etc/docker/certs.d/...:
                      *.crt are CAs, *.cert and *.key a client certificate and its key
    storage.conf      $CONTAINERS_STORAGE_CONF, else ~/.config/containers/storage.conf
                      when it exists, else /etc/containers/storage.conf: only `driver`
                      and the overlay driver's `mount_program` mean something to
                      handcar ($STORAGE_DRIVER overrides the driver, as in podman)
    auth files        auth.py
"""

import os

from oci.image import ImageError

SYSTEM_CONF = "/etc/containers/registries.conf"
SYSTEM_CONF_DIR = "/etc/containers/registries.conf.d"
SYSTEM_CERTS_DIRS = ("/etc/containers/certs.d", "/etc/docker/certs.d")
SYSTEM_STORAGE_CONF = "/etc/containers/storage.conf"


def user_config_dir():
    return os.path.join(os.path.expanduser("~"), ".config", "containers")


def registries_conf_files():
    """The registries.conf files that apply, in the order they merge."""
    main = os.environ.get("CONTAINERS_REGISTRIES_CONF")
    if not main:
        user = os.path.join(user_config_dir(), "registries.conf")
        main = user if os.path.exists(user) else SYSTEM_CONF
    files = [main] if os.path.exists(main) else []
    for directory in (SYSTEM_CONF_DIR, os.path.join(user_config_dir(), "registries.conf.d")):
        try:
            names = sorted(n for n in os.listdir(directory) if n.endswith(".conf"))
        except (FileNotFoundError, NotADirectoryError):
            continue
        files += [os.path.join(directory, name) for name in names]
    return files


def registries_conf():
    """The merged RegistriesConf of this user's files."""
    from oci.registries import merge, parse_file
    files = registries_conf_files()
    settings = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as err:
            raise ImageError(f"{path}: {err.strerror}") from None
        settings.append(parse_file(text, path))
    return merge(settings, files)


def alias_cache_file():
    if os.geteuid() == 0:
        return "/var/cache/containers/short-name-aliases.conf"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                             ".cache")
    return os.path.join(cache, "containers", "short-name-aliases.conf")


def cached_aliases():
    """The short-name alias cache's aliases ({} when there is no cache)."""
    from oci.registries import parse_alias_cache
    path = alias_cache_file()
    try:
        with open(path, encoding="utf-8") as f:
            return parse_alias_cache(f.read(), path)
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ImageError(f"{path}: {err.strerror}") from None


def record_alias(short, name):
    """Add short = name to the alias cache (made 0600 in a 0700 directory; a lock file
    beside it, as containers/image keeps, serializes writers)."""
    import fcntl
    from oci.registries import alias_cache_text
    path = alias_cache_file()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        aliases = cached_aliases()
        aliases[short] = name
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, alias_cache_text(aliases).encode())
        finally:
            os.close(fd)
        os.rename(tmp, path)
    finally:
        os.close(lock)


def certs_dir(host):
    """The certs.d directory for a registry host[:port], or None."""
    for base in (os.path.join(user_config_dir(), "certs.d"), *SYSTEM_CERTS_DIRS):
        path = os.path.join(base, host)
        if os.path.isdir(path):
            return path
    return None


def tls_files(host):
    """([CA files], [(client cert, key)]) from the host's certs.d directory."""
    directory = certs_dir(host)
    if directory is None:
        return [], []
    names = sorted(os.listdir(directory))
    cas = [os.path.join(directory, n) for n in names if n.endswith(".crt")]
    pairs = []
    for name in names:
        if name.endswith(".cert"):
            key = name[:-len(".cert")] + ".key"
            if key not in names:
                raise ImageError(f"{directory}: {name} has no key ({key})")
            pairs.append((os.path.join(directory, name), os.path.join(directory, key)))
        elif name.endswith(".key") and name[:-len(".key")] + ".cert" not in names:
            raise ImageError(f"{directory}: {name} has no certificate "
                             f"({name[:-len('.key')]}.cert)")
    return cas, pairs


def storage_conf():
    """(driver, mount_program) that containers-storage.conf(5) asks for: the driver
    "overlay", "vfs" or None (unset: handcar chooses), and fuse-overlayfs's path or None.
    Read when an image store is made, which then keeps its choice."""
    path = os.environ.get("CONTAINERS_STORAGE_CONF")
    if not path:
        user = os.path.join(user_config_dir(), "storage.conf")
        path = user if os.path.exists(user) else SYSTEM_STORAGE_CONF
    storage = {}
    if os.path.exists(path):
        try:
            import tomllib
        except ImportError:                       # Python 3.10
            import tomli as tomllib
        try:
            with open(path, "rb") as f:
                storage = tomllib.load(f).get("storage") or {}
        except (OSError, ValueError) as err:
            raise ImageError(f"{path}: {getattr(err, 'strerror', None) or err}") from None
    driver = os.environ.get("STORAGE_DRIVER") or storage.get("driver") or None
    if driver not in (None, "overlay", "vfs"):
        from rootless import log
        where = "STORAGE_DRIVER" if os.environ.get("STORAGE_DRIVER") else path
        log.warning(f"{where}: handcar has no {driver!r} storage driver (only overlay "
                    "and vfs): it chooses one itself")
        driver = None
    options = storage.get("options") or {}
    program = (options.get("overlay") or {}).get("mount_program") or \
        options.get("mount_program") or None
    if program and driver == "vfs":
        program = None
    if program and not (os.path.isfile(program) and os.access(program, os.X_OK)):
        raise ImageError(f"{path}: mount_program {program} is not an executable file")
    return driver, program
