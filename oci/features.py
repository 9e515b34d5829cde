"""The runtime-spec `features` document (what `handcar features` prints)."""

from .linux import CAPABILITIES, NAMESPACES
from .mounts import FLAGS, PROPAGATION
from .spec import HOOK_KINDS
from .state import OCI_VERSION


def features_document(last_cap, namespaces, version, cgroup_v2):
    """`last_cap`: the kernel's highest capability number; `namespaces`: the namespace
    kinds this kernel has; `version`: handcar's; `cgroup_v2`: whether this host mounts
    cgroup2. Only what this build does is claimed."""
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted(set(FLAGS) | set(PROPAGATION)),
        "linux": {
            "namespaces": sorted(kind for kind in NAMESPACES if kind in namespaces),
            "capabilities": [name for name, number in CAPABILITIES.items()
                             if number <= last_cap],
            "cgroup": {"v1": False, "v2": cgroup_v2, "systemd": False, "systemdUser": False,
                       "rdma": False},
            "seccomp": {"enabled": False},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"io.github.handcar.version": version},
    }
