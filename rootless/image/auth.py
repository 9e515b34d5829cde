"""Registry credentials, kept and found where podman and docker keep them:

    $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else
    ~/.config/containers/auth.json      what `handcar login` writes (mode 0600)
    ~/.config/containers/auth.json      also read (containers' older place)
    $DOCKER_CONFIG/config.json, else ~/.docker/config.json   docker's, read

Each file maps registries (or a registry's namespace: quay.io/org) to
{"auth": base64("user:password")}, and may name credential helpers: "credHelpers"
{registry: NAME} or "credsStore": NAME, meaning `docker-credential-NAME get` (the
registry on stdin, {"Username", "Secret"} on stdout), as docker and podman run them.

A secret is never printed, logged or put on a command line (helpers get the registry on
stdin; a password comes from a terminal or --password-stdin), and the files that hold
one are written 0600 in 0700 directories.
"""

import base64
import os

from oci import jsonio
from oci.image import ImageError
from oci.record import Record

DOCKER_HUB_KEYS = ("docker.io", "index.docker.io", "registry-1.docker.io")


class Credentials(Record):
    FIELDS = {"username": "", "secret": "", "source": ""}

    def __repr__(self):                      # never the secret, even in a traceback
        return f"Credentials(username={self.username!r}, source={self.source!r})"


def auth_file(override=None):
    """The auth.json that login writes and logout changes."""
    if override:
        return override
    if os.environ.get("REGISTRY_AUTH_FILE"):
        return os.environ["REGISTRY_AUTH_FILE"]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "containers", "auth.json")
    return _legacy_auth_file()


def _legacy_auth_file():
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"),
                                                               ".config")
    return os.path.join(config, "containers", "auth.json")


def _docker_config():
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"),
                                                                ".docker")
    return os.path.join(directory, "config.json")


def auth_files():
    """The files credentials are looked up in, in order."""
    files = [auth_file()]
    for path in (_legacy_auth_file(), _docker_config()):
        if path not in files:
            files.append(path)
    return files


def normalize_key(key):
    """An auths key as containers/image compares them: no scheme, docker's v1 URL
    (https://index.docker.io/v1/) meaning docker.io."""
    had_scheme = "://" in key
    key = key.partition("://")[2] if had_scheme else key
    if had_scheme:
        key = key.partition("/")[0]              # a URL: its host alone
    host, slash, rest = key.partition("/")
    if host in DOCKER_HUB_KEYS:
        host = "docker.io"
    return host + slash + rest


def _read(path):
    try:
        with open(path, "rb") as f:
            document = jsonio.loads(f.read())
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ImageError(f"{path}: {err.strerror}") from None
    except ValueError as err:
        raise ImageError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(document, dict):
        raise ImageError(f"{path}: not a JSON object")
    return document


def lookup(registry, repository=""):
    """The Credentials for a registry (host[:port]), the most specific entry for
    `repository` (quay.io/org/app, then quay.io/org, then quay.io) first; None when no
    file has any."""
    wanted = []
    parts = f"{registry}/{repository}".rstrip("/").split("/")
    for end in range(len(parts), 0, -1):
        wanted.append("/".join(parts[:end]))
    for path in auth_files():
        document = _read(path)
        if document is None:
            continue
        helper = (document.get("credHelpers") or {}).get(registry)
        if helper:
            return _from_helper(helper, registry, path)
        auths = {normalize_key(k): v for k, v in (document.get("auths") or {}).items()
                 if isinstance(v, dict)}
        for key in wanted:
            if key in auths and auths[key].get("auth"):
                return _decode(auths[key]["auth"], f"{path} ({key})")
        if document.get("credsStore"):
            found = _from_helper(document["credsStore"], registry, path, missing_ok=True)
            if found:
                return found
    return None


def _decode(encoded, source):
    try:
        username, colon, secret = base64.b64decode(encoded).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise ImageError(f"{source}: the auth entry is not base64 of user:password") from None
    if not colon:
        raise ImageError(f"{source}: the auth entry is not base64 of user:password")
    return Credentials(username, secret, source)


def _from_helper(name, registry, source, missing_ok=False):
    """`docker-credential-NAME get`, the registry on stdin."""
    import subprocess
    program = f"docker-credential-{name}"
    try:
        result = subprocess.run([program, "get"], input=registry, capture_output=True,
                                text=True, timeout=60)
    except FileNotFoundError:
        raise ImageError(f"{source} names the credential helper {name}, but {program} is "
                         "not installed") from None
    except subprocess.TimeoutExpired:
        raise ImageError(f"{program} get did not answer in 60 seconds") from None
    if result.returncode != 0:
        if missing_ok or "credentials not found" in result.stdout + result.stderr:
            return None
        raise ImageError(f"{program} get failed with status {result.returncode}")
    try:
        answer = jsonio.loads(result.stdout)
        username, secret = answer["Username"], answer["Secret"]
    except (ValueError, KeyError, TypeError):
        raise ImageError(f"{program} get did not answer with "
                         "{\"Username\": ..., \"Secret\": ...}") from None
    if username == "<token>":
        raise ImageError(f"{program} gave an identity token for {registry}: handcar "
                         "supports user names and passwords only")
    return Credentials(username, secret, f"{program}")


# --- login and logout ---------------------------------------------------------------------------

def store(registry, credentials, path):
    """Save credentials for a registry in auth.json (0600, written whole)."""
    document = _read(path) or {}
    auths = document.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise ImageError(f"{path}: \"auths\" is not an object")
    token = base64.b64encode(f"{credentials.username}:{credentials.secret}".encode())
    auths[registry] = {"auth": token.decode()}
    _write(path, document)


def forget(registry, everything, path):
    """Remove a registry's entry (or all of them); whether there was one."""
    document = _read(path)
    if document is None:
        return False
    auths = document.get("auths") or {}
    if everything:
        found = bool(auths)
        document["auths"] = {}
    else:
        keys = [k for k in auths if normalize_key(k) == normalize_key(registry)]
        found = bool(keys)
        for key in keys:
            del auths[key]
    if found:
        _write(path, document)
    return found


def _write(path, document):
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)                     # whatever the umask
        os.write(fd, jsonio.dumps(document, indent=1).encode() + b"\n")
    finally:
        os.close(fd)
    os.rename(tmp, path)
