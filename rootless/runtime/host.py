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
    """What the features document says of this host (oci.features.features_document)."""
    from rootless.runtime.cgroups import cgroup2_mount
    from rootless.runtime.support import apparmor_enabled, selinux_enabled
    return {"last_cap": last_cap(), "namespaces": usable_namespaces(), "version": __version__,
            "cgroup_v2": cgroup2_mount() is not None, "seccomp_api": _seccomp_api_level(),
            "seccomp_actions": _seccomp_kernel_actions(),
            "systemd_available": _has_jeepney(), "kernel": kernel_version(),
            "mount_setattr": has_mount_setattr(),
            "numa": os.path.isdir("/sys/devices/system/node"),
            "apparmor": apparmor_enabled(), "selinux": selinux_enabled()}


def feature_words():
    """crun's --version line, in crun's order: +NAME for each of its features this build
    has here (systemd: jeepney installed; SELinux and AppArmor: enabled on this host, as
    handcar then applies their labels; capabilities always; seccomp: libseccomp loads)."""
    from rootless.runtime.support import apparmor_enabled, selinux_enabled
    found = (("+SYSTEMD", _has_jeepney()), ("+SELINUX", selinux_enabled()),
             ("+APPARMOR", apparmor_enabled()), ("+CAP", True),
             ("+SECCOMP", _seccomp_api_level() > 0))
    return [word for word, present in found if present]


def usable_namespaces():
    """The namespace kinds this kernel has and lets us make: a kind whose
    /proc/sys/user/max_*_namespaces is 0 cannot be made, nor (without root) a user
    namespace where Debian's kernel.unprivileged_userns_clone is 0."""
    usable = set()
    for kind, name in NAMESPACES.items():
        if not os.path.exists(f"/proc/self/ns/{name}"):
            continue
        limit = _read_int(f"/proc/sys/user/max_{name}_namespaces")
        if limit == 0:
            continue
        if kind == "user" and os.geteuid() != 0 \
                and _read_int("/proc/sys/kernel/unprivileged_userns_clone") == 0:
            continue
        usable.add(kind)
    return usable


def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def kernel_version():
    """(major, minor) of the running kernel."""
    numbers = os.uname().release.split("-", 1)[0].split(".")
    try:
        return int(numbers[0]), int(numbers[1])
    except (ValueError, IndexError):
        return (0, 0)


def has_mount_setattr():
    """Whether the kernel has mount_setattr (5.12), which the recursive options need."""
    import errno
    from rootless.system import libc
    try:
        libc.mount_setattr("/nonexistent/handcar-probe", 0)
    except OSError as err:
        return err.errno != errno.ENOSYS
    return True


def _has_jeepney():
    """Whether --systemd-cgroup can reach systemd (the optional jeepney package)."""
    from importlib.util import find_spec
    return find_spec("jeepney") is not None


def _seccomp_api_level():
    """libseccomp's API level (what both it and the kernel support), 0 without it."""
    from rootless.errors import SetupError
    from rootless.child.seccomp import api_level, library
    try:
        return api_level(library())
    except SetupError:
        return 0


def _seccomp_kernel_actions():
    try:
        with open("/proc/sys/kernel/seccomp/actions_avail") as f:
            return f.read().split()
    except OSError:
        return []
