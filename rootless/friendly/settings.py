"""The user's defaults for the friendly verbs: ~/.config/handcar/config.toml (the XDG
config dir; $HANDCAR_CONFIG names another file).

    network = "slirp4netns"          # the default --network
    storage = "~/.local/share/handcar"   # images and friendly containers
    seccomp_profile = "default"      # "default", "unconfined" or a JSON file
    init = false                     # --init by default
"""

import os

from oci.record import Record
from rootless.errors import HandcarError

KEYS = {
    "network": (str, "a network mode such as \"slirp4netns\", \"none\" or \"host\""),
    "storage": (str, "a directory"),
    "seccomp_profile": (str, "\"default\", \"unconfined\" or the path of a JSON profile"),
    "init": (bool, "true or false"),
}


class Settings(Record):
    FIELDS = {"network": None, "storage": None, "seccomp_profile": "default", "init": False,
              "source": None}


_cached = []


def config_path():
    if os.environ.get("HANDCAR_CONFIG"):
        return os.environ["HANDCAR_CONFIG"]
    import platformdirs
    return os.path.join(platformdirs.user_config_dir("handcar"), "config.toml")


def settings():
    """The Settings, read once per process."""
    if not _cached:
        _cached.append(load(config_path()))
    return _cached[0]


def load(path):
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        text = None
    except OSError as err:
        raise HandcarError(f"{path}: {err.strerror}") from None
    values = parse(text, path) if text is not None else {}
    if not values.get("storage"):
        import platformdirs
        values["storage"] = platformdirs.user_data_dir("handcar")
    values["storage"] = os.path.expanduser(values["storage"])
    return Settings(source=path if text is not None else None, **values)


def parse(text, path):
    """The checked values of a config.toml's text."""
    try:
        import tomllib
    except ModuleNotFoundError:              # Python < 3.11
        import tomli as tomllib
    try:
        document = tomllib.loads(text.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise HandcarError(f"{path}: not valid TOML: {err}") from None
    values = {}
    for key, value in document.items():
        if key not in KEYS:
            raise HandcarError(f"{path}: unknown key {key!r} (known: {', '.join(KEYS)})")
        kind, allowed = KEYS[key]
        if type(value) is not kind:
            raise HandcarError(f"{path}: {key} must be {allowed}, not {value!r}")
        values[key] = value
    if "network" in values:
        from oci.runspec import network_kind
        try:
            network_kind(values["network"])
        except HandcarError as err:
            raise HandcarError(f"{path}: network: {err}") from None
    return values
