"""What this host lets this caller do of what a config asks, found out before anything is
created: each field that cannot be honoured here is refused by name, with why (the spec
layer, oci/, has refused what no host could do). Imported only for a config that asks for
one of these fields (oci.spec.Spec.host_dependent).

Without privilege on the host (root in its first user namespace), the kernel refuses a
realtime or deadline scheduler, the realtime I/O class, and a nice value below the
caller's own unless RLIMIT_RTPRIO / RLIMIT_NICE allow them.
"""

import os
import stat

from oci.errors import SpecError
from oci.tuning import REALTIME_POLICIES

INFINITE = 2**63


def check(spec, source, warn):
    """Refuse (SpecError) what `spec` asks and this host cannot do; `warn(text)` what is
    done differently from what was asked."""
    problems = check_process(spec.process, "process", raise_them=False)
    linux = spec.linux
    if linux.memory_policy:
        problems += _memory_policy(linux.memory_policy)
    if linux.mount_label and not selinux_enabled():
        problems.append("linux.mountLabel: SELinux is not enabled on this host")
    problems += _devices(spec, warn)
    if problems:
        raise SpecError(problems, source)


def check_process(process, where, source="process", raise_them=True):
    """The problems of a process's own fields (create's, or exec's); raised as a
    SpecError from `source` when raise_them."""
    problems = []
    privileged = host_root()
    if process.scheduler and not privileged:
        problems += _scheduler(process.scheduler, process.rlimits, f"{where}.scheduler")
    prio = process.io_priority
    if prio and prio.io_class == "IOPRIO_CLASS_RT" and not privileged:
        problems.append(f"{where}.ioPriority: IOPRIO_CLASS_RT needs CAP_SYS_ADMIN or "
                        "CAP_SYS_NICE on the host (root)")
    affinity = process.exec_cpu_affinity
    if affinity:
        usable = os.sched_getaffinity(0)
        for which in ("initial", "final"):
            missing = (getattr(affinity, which) or set()) - usable
            if missing:
                problems.append(f"{where}.execCPUAffinity.{which}: CPU "
                                f"{_listed(missing)} is not one this process may use here "
                                f"({_listed(usable)})")
    if process.apparmor_profile and not apparmor_enabled():
        problems.append(f"{where}.apparmorProfile: AppArmor is not enabled on this host")
    if process.selinux_label and not selinux_enabled():
        problems.append(f"{where}.selinuxLabel: SELinux is not enabled on this host")
    if problems and raise_them:
        raise SpecError(problems, source)
    return problems


def host_root():
    """Whether we are root in the host's user namespace (all capabilities count there)."""
    if os.geteuid() != 0:
        return False
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return True


def _soft_limit(rlimits, name):
    """The soft limit `name` the process will have: the config's, or else ours now."""
    for limit in rlimits:
        if limit.type == name:
            return INFINITE if limit.soft >= INFINITE else limit.soft
    import resource
    soft = resource.getrlimit(getattr(resource, name))[0]
    return INFINITE if soft == resource.RLIM_INFINITY else soft


def _scheduler(sched, rlimits, field):
    problems = []
    if sched.policy == "SCHED_DEADLINE":
        problems.append(f"{field}: SCHED_DEADLINE needs CAP_SYS_NICE on the host (root)")
    elif sched.policy in REALTIME_POLICIES:
        limit = _soft_limit(rlimits, "RLIMIT_RTPRIO")
        if sched.priority > limit:
            problems.append(f"{field}: {sched.policy} at priority {sched.priority} needs "
                            "CAP_SYS_NICE on the host, or an RLIMIT_RTPRIO of at least "
                            f"{sched.priority} (it is {limit})")
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if sched.nice < current and "SCHED_FLAG_KEEP_PARAMS" not in sched.flags:
        limit = _soft_limit(rlimits, "RLIMIT_NICE")
        if 20 - sched.nice > limit:
            problems.append(f"{field}.nice: {sched.nice} is below this process's "
                            f"{current}: that needs CAP_SYS_NICE on the host, or an "
                            f"RLIMIT_NICE of at least {20 - sched.nice} (it is {limit})")
    return problems


def _memory_policy(policy):
    field = "linux.memoryPolicy"
    if not os.path.isdir("/sys/devices/system/node"):
        return [f"{field}: this kernel has no NUMA support (CONFIG_NUMA)"]
    if "MPOL_F_RELATIVE_NODES" in policy.flags:
        return []                     # numbered within the allowed nodes, whatever they are
    allowed = _allowed_nodes()
    missing = policy.nodes - allowed
    if missing:
        return [f"{field}.nodes: node {_listed(missing)} is not one this process may use "
                f"here ({_listed(allowed)})"]
    return []


def _allowed_nodes():
    from oci.tuning import parse_list
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Mems_allowed_list:"):
                return parse_list(line.split(":", 1)[1].strip())
    return frozenset({0})


def _listed(numbers):
    return ",".join(str(n) for n in sorted(numbers))


def apparmor_enabled():
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled():
    return os.path.exists("/sys/fs/selinux/enforce")


_NODE_TYPES = {"c": stat.S_ISCHR, "u": stat.S_ISCHR, "b": stat.S_ISBLK, "p": stat.S_ISFIFO}


def _devices(spec, warn):
    """linux.devices are the host's nodes bound in (no mknod without privilege): each
    must be on the host as the config describes it. Its mode and owner stay the host's
    (a bound node cannot be changed): a warning says so where the config asks for other
    ones."""
    problems = []
    for i, device in enumerate(spec.linux.devices):
        field = f"linux.devices[{i}]"
        try:
            st = os.stat(device.path)
        except OSError as err:
            problems.append(f"{field}: {device.path} on the host: {err.strerror} (devices "
                            "are bind mounts of the host's nodes)")
            continue
        kind = ("c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode)
                else "p" if stat.S_ISFIFO(st.st_mode) else "not a device")
        numbers = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        if not _NODE_TYPES[device.type](st.st_mode) or (
                device.type != "p" and numbers != f"{device.major}:{device.minor}"):
            problems.append(f"{field}: the host's {device.path} is {kind}"
                            f"{' ' + numbers if kind in 'cb' else ''}, not {device.type}"
                            f"{'' if device.type == 'p' else f' {device.major}:{device.minor}'}"
                            " (devices are bind mounts of the host's nodes)")
            continue
        mode = stat.S_IMODE(st.st_mode)
        if device.file_mode is not None and device.file_mode != mode:
            warn(f"{field}: {device.path} keeps the host's mode {mode:o}, not fileMode "
                 f"{device.file_mode:o} (a bound node cannot be changed)")
        for key, wanted, host_id, mappings in (
                ("uid", device.uid, st.st_uid, spec.linux.uid_mappings),
                ("gid", device.gid, st.st_gid, spec.linux.gid_mappings)):
            if wanted is not None and _container_id(spec, host_id, mappings) != wanted:
                warn(f"{field}: {device.path} keeps the host's owner ({key} {host_id} on "
                     f"the host), not {key} {wanted} (a bound node cannot be changed)")
    return problems


def _container_id(spec, host_id, mappings):
    """`host_id` as the container sees it (None where it is not mapped)."""
    if not spec.linux.namespace("user"):
        return host_id
    for mapping in mappings:
        if mapping.host_id <= host_id < mapping.host_id + mapping.size:
            return host_id - mapping.host_id + mapping.container_id
    return None
