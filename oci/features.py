"""The runtime-spec `features` document (what `handcar features` prints)."""

from .linux import CAPABILITIES, NAMESPACES
from . import seccomp
from .mounts import COPY_UP, FLAGS, PROPAGATION
from .spec import HOOK_KINDS
from .state import OCI_VERSION


def features_document(last_cap, namespaces, version, cgroup_v2, seccomp_available,
                      systemd_available=False):
    """`last_cap`: the kernel's highest capability number; `namespaces`: the namespace
    kinds this kernel has; `version`: handcar's; `cgroup_v2`: whether this host mounts
    cgroup2; `seccomp_available`: whether libseccomp loads; `systemd_available`: whether
    the D-Bus library --systemd-cgroup needs is installed. Only what this build does is
    claimed."""
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted(set(FLAGS) | set(PROPAGATION) | set(COPY_UP)),
        "linux": {
            "namespaces": sorted(kind for kind in NAMESPACES if kind in namespaces),
            "capabilities": [name for name, number in CAPABILITIES.items()
                             if number <= last_cap],
            "cgroup": {"v1": False, "v2": cgroup_v2, "systemd": systemd_available,
                       "systemdUser": systemd_available, "rdma": False},
            "seccomp": _seccomp(seccomp_available),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"io.github.handcar.version": version},
    }


def _seccomp(available):
    if not available:
        return {"enabled": False}
    return {
        "enabled": True,
        "actions": list(seccomp.ACTIONS),
        "operators": list(seccomp.OPERATORS),
        "archs": list(seccomp.ARCHES),
        "knownFlags": list(seccomp.FLAGS),
        "supportedFlags": list(seccomp.FLAGS),
    }
