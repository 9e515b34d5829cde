"""Facts about this host that the features document reports."""

import os

from oci.linux import CAPABILITIES, NAMESPACES
from rootless.version import __version__


def find_program(name, also=()):
    """The path of program `name` on $PATH (then in the directories `also`), or None:
    shutil.which without importing shutil."""
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep) + list(also):
        candidate = os.path.abspath(os.path.join(directory or ".", name))
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def last_cap():
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAPABILITIES.values())


def host_facts():
    available = {kind for kind, name in NAMESPACES.items()
                 if os.path.exists(f"/proc/self/ns/{name}")}
    from rootless.runtime.cgroups.cgroupfs import cgroup2_mount
    return {"last_cap": last_cap(), "namespaces": available, "version": __version__,
            "cgroup_v2": cgroup2_mount() is not None, "seccomp_available": _has_libseccomp(),
            "systemd_available": _has_jeepney()}


def _has_jeepney():
    """Whether --systemd-cgroup can reach systemd (the optional jeepney package)."""
    from importlib.util import find_spec
    return find_spec("jeepney") is not None


def _has_libseccomp():
    from rootless.errors import SetupError
    from rootless.child.seccomp import library
    try:
        library()
        return True
    except SetupError:
        return False
