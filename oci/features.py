"""The runtime-spec `features` document (what `handcar features` prints).

It claims only what this build does on this host: the engine measures the host
(rootless/system/host.py) and passes the facts in; here they become the document.
"""

from . import seccomp
from .linux import CAPABILITIES, NAMESPACES
from .mounts import COPY_UP, FLAGS, PROPAGATION, RECURSIVE, RECURSIVE_ATIME
from .spec import HOOK_KINDS
from .state import OCI_VERSION
from .tuning import MEMPOLICY_FLAGS, MEMPOLICY_MODES

# What each seccomp action and flag needs: libseccomp's API level (seccomp_api_get: it
# counts what both libseccomp and the kernel do; 5 is user notification) and the
# kernel's name for the action in /proc/sys/kernel/seccomp/actions_avail.
SECCOMP_ACTIONS = {
    "SCMP_ACT_KILL": (1, "kill_thread"), "SCMP_ACT_KILL_THREAD": (1, "kill_thread"),
    "SCMP_ACT_KILL_PROCESS": (3, "kill_process"), "SCMP_ACT_TRAP": (1, "trap"),
    "SCMP_ACT_ERRNO": (1, "errno"), "SCMP_ACT_TRACE": (1, "trace"),
    "SCMP_ACT_ALLOW": (1, "allow"), "SCMP_ACT_LOG": (3, "log"),
    "SCMP_ACT_NOTIFY": (5, "user_notif"),
}
SECCOMP_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 2, "SECCOMP_FILTER_FLAG_LOG": 3,
                 "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
                 "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 7}


def mount_options(kernel, mount_setattr):
    """The mount options handcar does on a kernel (major, minor) with or without
    mount_setattr (the recursive ones); idmap, ridmap and mand it refuses."""
    names = set(FLAGS) | set(PROPAGATION) | set(COPY_UP)
    names.discard("mand")
    if kernel < (5, 10):
        names -= {"nosymfollow", "symfollow"}
    if mount_setattr:
        names |= set(RECURSIVE) | set(RECURSIVE_ATIME)
        if kernel < (5, 14):
            names -= {"rnosymfollow", "rsymfollow"}
    return sorted(names)


def features_document(last_cap, namespaces, version, cgroup_v2, seccomp_api=0,
                      seccomp_actions=(), systemd_available=False, kernel=(5, 12),
                      mount_setattr=True, numa=True, apparmor=False, selinux=False):
    """`last_cap`: the kernel's highest capability number; `namespaces`: the namespace
    kinds that can be made here; `version`: handcar's; `cgroup_v2`: whether this host
    mounts cgroup2; `seccomp_api`: libseccomp's API level (0: no libseccomp);
    `seccomp_actions`: the kernel's actions_avail words; `systemd_available`: whether the
    D-Bus library --systemd-cgroup needs is installed; `kernel`: (major, minor);
    `mount_setattr`: whether the kernel has it; `numa`: whether it has NUMA policies;
    `apparmor`, `selinux`: whether they are enabled (handcar then applies their labels)."""
    linux = {
        "namespaces": sorted(kind for kind in NAMESPACES if kind in namespaces),
        "capabilities": [name for name, number in CAPABILITIES.items() if number <= last_cap],
        "cgroup": {"v1": False, "v2": cgroup_v2, "systemd": systemd_available,
                   "systemdUser": systemd_available, "rdma": cgroup_v2},
        "seccomp": _seccomp(seccomp_api, set(seccomp_actions)),
        "apparmor": {"enabled": apparmor},
        "selinux": {"enabled": selinux},
        "intelRdt": {"enabled": False, "schemata": False, "monitoring": False},
        "mountExtensions": {"idmap": {"enabled": False}},
        "netDevices": {"enabled": False},
    }
    if numa:
        linux["memoryPolicy"] = {"modes": list(MEMPOLICY_MODES), "flags": list(MEMPOLICY_FLAGS)}
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": mount_options(kernel, mount_setattr),
        "linux": linux,
        "annotations": {"io.github.handcar.version": version},
        "potentiallyUnsafeConfigAnnotations": ["handcar."],
    }


def _seccomp(api_level, kernel_actions):
    if not api_level:
        return {"enabled": False}
    return {
        "enabled": True,
        "actions": [name for name, (level, word) in SECCOMP_ACTIONS.items()
                    if api_level >= level and word in kernel_actions],
        "operators": list(seccomp.OPERATORS),
        "archs": list(seccomp.ARCHES),
        "knownFlags": list(seccomp.FLAGS),
        "supportedFlags": [name for name, level in SECCOMP_FLAGS.items()
                           if api_level >= level],
    }
