"""Registry credentials, kept and found where podman and docker keep them:

    $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else
    ~/.config/containers/auth.json      what `handcar login` writes (mode 0600)
    ~/.config/containers/auth.json      also read (containers' older place)
    $DOCKER_CONFIG/config.json, else ~/.docker/config.json   docker's, read

Each file maps registries (or a registry's namespace: quay.io/org) to
{"auth": base64("user:password")} or an identity token ({"identitytoken": ...}, an
OAuth2 refresh token for the registry's token server), and may name credential helpers:
"credHelpers" {registry: NAME} or "credsStore": NAME, meaning the program
docker-credential-NAME, as docker and podman run it:

    get      the registry on stdin; {"Username", "Secret"} on stdout (Username "<token>":
             the Secret is an identity token)
    store    {"ServerURL", "Username", "Secret"} on stdin (login)
    erase    the registry on stdin (logout)
    list     {registry: user} on stdout (logout --all of a credsStore)

`login` stores through the helper the auth file it writes names for the registry
(credHelpers), as podman does, or through its credsStore, as docker does (podman has no
credsStore); otherwise in the file. `logout` erases through the same helpers.

A secret is never printed, logged or put on a command line (helpers get it on stdin; a
password comes from a terminal or --password-stdin), and the files that hold one are
written 0600 in 0700 directories.
"""

import base64
import os

from oci import jsonio
from oci.image import ImageError
from oci.record import Record
from rootless import log

DOCKER_HUB_KEYS = ("docker.io", "index.docker.io", "registry-1.docker.io")


class Credentials(Record):
    """A user name and password, or an identity token (then `username` may be empty)."""
    FIELDS = {"username": "", "secret": "", "source": "", "identity_token": ""}

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
        helper = _helpers(document, path).get(registry)
        if helper:
            return _from_helper(helper, registry, path)
        auths = {normalize_key(k): v for k, v in (document.get("auths") or {}).items()
                 if isinstance(v, dict)}
        for key in wanted:
            if key in auths and (auths[key].get("auth") or auths[key].get("identitytoken")):
                return _decode(auths[key], f"{path} ({key})")
        if _store_of(document, path):
            found = _from_helper(_store_of(document, path), registry, path,
                                 missing_ok=True)
            if found:
                return found
    return None


def _helpers(document, path):
    helpers = document.get("credHelpers") or {}
    if not isinstance(helpers, dict):
        raise ImageError(f"{path}: \"credHelpers\" is not an object")
    return helpers


def _store_of(document, path):
    name = document.get("credsStore") or ""
    if not isinstance(name, str):
        raise ImageError(f"{path}: \"credsStore\" is not a string")
    return name


def _decode(entry, source):
    """An auths entry: "auth" (base64 of user:password) and/or "identitytoken"."""
    token = entry.get("identitytoken") or ""
    if not isinstance(token, str):
        raise ImageError(f"{source}: the identitytoken entry is not a string")
    try:
        decoded = base64.b64decode(entry.get("auth") or "").decode()
    except (ValueError, UnicodeDecodeError):
        raise ImageError(f"{source}: the auth entry is not base64 of user:password") from None
    username, colon, secret = decoded.partition(":")
    if token:                                    # "auth" then holds the user name, if any
        return Credentials(username, "", source, identity_token=token)
    if not colon:
        raise ImageError(f"{source}: the auth entry is not base64 of user:password")
    return Credentials(username, secret, source)


def _run_helper(name, action, data, source):
    """docker-credential-NAME ACTION with `data` on stdin: the CompletedProcess."""
    import subprocess
    program = f"docker-credential-{name}"
    try:
        return subprocess.run([program, action], input=data, capture_output=True,
                              text=True, timeout=60)
    except FileNotFoundError:
        raise ImageError(f"{source} names the credential helper {name}, but {program} is "
                         "not installed") from None
    except subprocess.TimeoutExpired:
        raise ImageError(f"{program} {action} did not answer in 60 seconds") from None


def _not_found(result):
    return "credentials not found" in (result.stdout + result.stderr).lower()


def _helper_failed(name, action, result, secret=""):
    """The ImageError for a helper that failed: its own first line of output, unless
    that holds the secret it was given."""
    said = (result.stdout.strip() or result.stderr.strip()).partition("\n")[0]
    if secret and secret in said:
        said = ""
    return ImageError(f"docker-credential-{name} {action} failed with status "
                      f"{result.returncode}" + (f": {said[:200]}" if said else ""))


def _from_helper(name, registry, source, missing_ok=False):
    """`docker-credential-NAME get`, the registry on stdin."""
    program = f"docker-credential-{name}"
    result = _run_helper(name, "get", registry, source)
    if result.returncode != 0:
        if missing_ok or _not_found(result):
            return None
        raise _helper_failed(name, "get", result)
    try:
        answer = jsonio.loads(result.stdout)
        username, secret = answer["Username"], answer["Secret"]
    except (ValueError, KeyError, TypeError):
        raise ImageError(f"{program} get did not answer with "
                         "{\"Username\": ..., \"Secret\": ...}") from None
    if username == "<token>":                    # docker's marker of an identity token
        return Credentials("", "", program, identity_token=secret)
    return Credentials(username, secret, program)


# --- login and logout ---------------------------------------------------------------------------

def store(registry, credentials, path):
    """Save credentials for a registry: through the credential helper the auth file at
    `path` names for it (credHelpers, else credsStore), else in the file itself (0600,
    written whole). Where they went, for the user."""
    document = _read(path) or {}
    auths = document.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise ImageError(f"{path}: \"auths\" is not an object")
    helper = _helpers(document, path).get(registry) or _store_of(document, path)
    if helper:
        request = jsonio.dumps({"ServerURL": registry, "Username": credentials.username,
                                "Secret": credentials.secret})
        result = _run_helper(helper, "store", request, path)
        if result.returncode != 0:
            raise _helper_failed(helper, "store", result, credentials.secret)
        log.debug(f"stored the credentials for {registry} through "
                  f"docker-credential-{helper}")
        if _drop_entries(auths, registry):       # an older password must not shadow it
            _write(path, document)
        return f"docker-credential-{helper}"
    _drop_entries(auths, registry)
    token = base64.b64encode(f"{credentials.username}:{credentials.secret}".encode())
    auths[registry] = {"auth": token.decode()}
    _write(path, document)
    return path


def _drop_entries(auths, registry):
    keys = [k for k in auths if normalize_key(k) == normalize_key(registry)]
    for key in keys:
        del auths[key]
    return bool(keys)


def forget(registry, everything, path):
    """Remove a registry's credentials (or all of them) from the auth file at `path` and
    from the credential helpers it names; whether there were any."""
    document = _read(path)
    if document is None:
        return False
    auths = document.get("auths") or {}
    helpers = _helpers(document, path)
    creds_store = _store_of(document, path)
    found = changed = False
    if everything:
        for host, helper in helpers.items():
            found |= _erase(helper, host, path)
        if creds_store:
            for host in _listed(creds_store, path):
                found |= _erase(creds_store, host, path)
        changed = bool(auths)
        document["auths"] = {}                   # the helpers named stay: configuration
    else:
        for helper in dict.fromkeys(h for h in (helpers.get(registry), creds_store) if h):
            found |= _erase(helper, registry, path)
        changed = _drop_entries(auths, registry)
    if changed:
        _write(path, document)
    return found or changed


def _erase(helper, registry, path):
    """`docker-credential-NAME erase`, the registry on stdin: whether it had any."""
    result = _run_helper(helper, "erase", registry, path)
    if result.returncode == 0:
        log.debug(f"erased the credentials for {registry} in docker-credential-{helper}")
        return True
    if _not_found(result):
        return False
    raise _helper_failed(helper, "erase", result)


def _listed(helper, path):
    """The registries a helper keeps credentials for (`list`)."""
    result = _run_helper(helper, "list", "", path)
    if result.returncode != 0:
        raise _helper_failed(helper, "list", result)
    try:
        listed = jsonio.loads(result.stdout or "{}")
    except ValueError:
        listed = None
    if not isinstance(listed, dict):
        raise ImageError(f"docker-credential-{helper} list did not answer with "
                         "{\"registry\": \"user\", ...}")
    return list(listed)


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
