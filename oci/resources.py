"""linux.resources as cgroup v2 files: the conversions runc and crun use.

`cgroup_v2_settings` reads a linux.resources object (config.json's, or `update`'s) and
returns {file name: value}; a value that is a tuple is written line by line (io.max takes
one device per write). Problems are reported through the Reader with their JSON paths.
What only cgroup v1 has (kernel memory, swappiness, turning the OOM killer off, network
classes and priorities, realtime cpu, leaf weights) is refused by name, unless it asks for
what the kernel does anyway (-1 for no kernel memory limit). Device rules are read and
checked (device_rules), but are not cgroup v2 files: enforcing them takes eBPF.
"""

from . import reader as k

_ALLOWED_CGROUP_KEYS = ("cgroup.max.depth", "cgroup.max.descendants")
_CONTROLLER_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_FILE_CHARACTERS = _CONTROLLER_CHARACTERS | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ.")
int64 = k.integer(-2**63, 2**63 - 1)


def cpu_weight(shares):
    """cpu.shares (2..262144) -> cpu.weight (1..10000) as crun (1.23) and runc (1.3)
    convert it: a curve through both ends and the defaults, 1024 -> 100."""
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    from math import ceil, log2
    bits = log2(shares)
    return ceil(10 ** ((bits * bits + 125 * bits) / 612.0 - 7.0 / 34.0))


# What a new cgroup has already: a setting asking for it is no limit, and needs no
# controller (containerd's default spec asks for cpu.shares 1024 where cpu may not be
# delegated). `update` still writes them: they undo a limit.
KERNEL_DEFAULTS = {
    "memory.max": "max", "memory.swap.max": "max", "cpu.weight": "100",
    "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0", "pids.max": "max",
    "io.weight": "default 100",
}


def without_defaults(settings):
    """`settings` less what a new cgroup has anyway (KERNEL_DEFAULTS)."""
    return {name: value for name, value in settings.items()
            if KERNEL_DEFAULTS.get(name) != value}


# linux.resources fields of cgroup v1 alone -> the value that asks for nothing (accepted)
_V1_ONLY_MEMORY = {
    "kernel": (-1, 0), "kernelTCP": (-1, 0),
    "swappiness": (2**64 - 1, -1),   # unset, as some engines write it
    "disableOOMKiller": (False,), "useHierarchy": (True,),
}
_V1_WHY = {
    "kernel": "kernel memory limits exist only in cgroup v1",
    "kernelTCP": "kernel TCP memory limits exist only in cgroup v1",
    "swappiness": "cgroup v2 has no per-cgroup swappiness",
    "disableOOMKiller": "cgroup v2 cannot turn the OOM killer off",
    "useHierarchy": "cgroup v2 always accounts hierarchically",
}


def io_weight(blkio_weight):
    """blkio weight (10..1000) -> io.weight (1..10000), as runc converts it."""
    return 1 + ((blkio_weight - 10) * 9999) // 990


def swap_max(swap, memory):
    """OCI's memory.swap is memory+swap; cgroup v2's memory.swap.max is swap alone.
    Returns the value to write, None for "leave it", or raises ValueError."""
    if memory == -1 and swap in (None, 0):
        return "max"                     # unlimited memory means unlimited swap too
    if swap in (None, 0):
        return None
    if swap == -1:
        return "max"
    if memory in (None, 0, -1):
        raise ValueError("a swap limit needs a memory limit")
    if swap < memory:
        raise ValueError(f"swap ({swap}) must be >= limit ({memory}): it counts memory+swap")
    return str(swap - memory)


def cgroup_v2_settings(r, data, where="linux.resources"):
    settings = {}
    memory = r.object(data.get("memory"), f"{where}.memory")
    mpath = f"{where}.memory"
    limit = r.field(memory, "limit", mpath, int64, None)
    if limit:
        settings["memory.max"] = "max" if limit == -1 else str(limit)
    reservation = r.field(memory, "reservation", mpath, int64, None)
    if reservation:
        settings["memory.low"] = "max" if reservation == -1 else str(reservation)
    try:
        swap = swap_max(r.field(memory, "swap", mpath, int64, None), limit)
        if swap is not None:
            settings["memory.swap.max"] = swap
    except ValueError as err:
        r.fail(f"{mpath}.swap", str(err))
    for key, harmless in _V1_ONLY_MEMORY.items():
        if memory.get(key) is not None and memory[key] not in harmless:
            r.fail(f"{mpath}.{key}", _V1_WHY[key])
    if memory.get("checkBeforeUpdate"):
        r.fail(f"{mpath}.checkBeforeUpdate", "handcar does not compare a new limit with the "
                                            "usage before writing it")

    cpu = r.object(data.get("cpu"), f"{where}.cpu")
    cpath = f"{where}.cpu"
    shares = r.field(cpu, "shares", cpath, k.integer(0, 262144), None)
    if shares:           # (1024, the default, is weight 100: no limit at create, see above)
        settings["cpu.weight"] = str(cpu_weight(max(shares, 2)))
    quota = r.field(cpu, "quota", cpath, int64, None)
    period = r.field(cpu, "period", cpath, k.integer(0, 1_000_000), None)
    if quota or period:
        settings["cpu.max"] = f"{quota if quota and quota > 0 else 'max'} {period or 100000}"
    burst = r.field(cpu, "burst", cpath, k.uint64, None)
    if burst is not None:
        settings["cpu.max.burst"] = str(burst)
    idle = r.field(cpu, "idle", cpath, k.integer(0, 1), None)
    if idle is not None:
        settings["cpu.idle"] = str(idle)
    for key in ("realtimeRuntime", "realtimePeriod"):
        if cpu.get(key):
            r.fail(f"{cpath}.{key}", "realtime scheduling is a cgroup v1 feature")
    for key, file in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
        value = r.field(cpu, key, cpath, k.string, "")
        if value:
            settings[file] = value

    pids = r.object(data.get("pids"), f"{where}.pids")
    pids_limit = r.field(pids, "limit", f"{where}.pids", int64, None)
    if pids_limit is not None:
        # 0 is a limit too: no new process at all (runtime-spec 1.3)
        settings["pids.max"] = str(pids_limit) if pids_limit >= 0 else "max"

    _block_io(r, r.object(data.get("blockIO"), f"{where}.blockIO"), f"{where}.blockIO",
              settings)

    for i, item in enumerate(r.field(data, "hugepageLimits", where, k.list_of(k.raw_object), ())):
        path = f"{where}.hugepageLimits[{i}]"
        size = r.field(item, "pageSize", path, k.string, "", required=True)
        if size and not _hugepage_size(size):
            r.fail(f"{path}.pageSize", f"must look like 2MB or 1GB, not {size!r}")
            continue
        value = r.field(item, "limit", path, k.uint64, None, required=True)
        if size and value is not None:
            settings[f"hugetlb.{size}.max"] = str(value)

    network = r.field(data, "network", where, k.raw_object, {})
    if network.get("classID") or network.get("priorities"):
        r.fail(f"{where}.network", "network classes and priorities (net_cls, net_prio) "
                                   "exist only in cgroup v1")

    rdma = r.field(data, "rdma", where, k.raw_object, {})
    for device, limits in rdma.items():
        path = f"{where}.rdma.{device}"
        limits = r.object(limits, path)
        parts = [device]
        for key, name in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")):
            value = r.field(limits, key, path, k.uint32, None)
            if value is not None:
                parts.append(f"{name}={value}")
        if len(parts) > 1:
            settings.setdefault("rdma.max", ())
            settings["rdma.max"] += (" ".join(parts),)

    unified = r.field(data, "unified", where, k.string_map, {})
    for key, value in unified.items():
        if not _interface_file(key) or (key.startswith("cgroup.")
                                          and key not in _ALLOWED_CGROUP_KEYS):
            r.fail(f"{where}.unified.{key}", "is not a cgroup v2 interface file "
                                            "handcar lets a config write")
            continue
        settings[key] = value
    return settings


def _hugepage_size(size):
    """2MB, 1GB, 64KB: digits and a unit."""
    return len(size) > 2 and size[:-2].isdigit() and size[-2:] in ("KB", "MB", "GB")


def _interface_file(key):
    """controller.file: a lower-case controller name, then letters (hugetlb.2MB.max),
    digits, '_' and '.', and no '/' (so no way out of the cgroup's directory)."""
    controller, dot, rest = key.partition(".")
    return (bool(dot) and bool(rest) and controller[:1].isalpha()
            and _CONTROLLER_CHARACTERS.issuperset(controller)
            and _FILE_CHARACTERS.issuperset(rest))


def _block_io(r, data, where, settings):
    if data.get("leafWeight"):
        r.fail(f"{where}.leafWeight", "leaf weights exist only in cgroup v1 (CFQ)")
    weight = r.field(data, "weight", where, k.integer(0, 1000), None)
    if weight:
        if weight < 10:
            r.fail(f"{where}.weight", "must be between 10 and 1000")
        else:
            settings["io.weight"] = f"default {io_weight(weight)}"
    lines = []
    for i, item in enumerate(r.field(data, "weightDevice", where, k.list_of(k.raw_object), ())):
        path = f"{where}.weightDevice[{i}]"
        device = _device(r, item, path)
        value = r.field(item, "weight", path, k.integer(10, 1000), None)
        if item.get("leafWeight"):
            r.fail(f"{path}.leafWeight", "leaf weights exist only in cgroup v1 (CFQ)")
        elif value is None:
            r.fail(path, "needs a weight")
        if device and value:
            lines.append(f"{device} {io_weight(value)}")
    if lines:
        settings["io.weight"] = tuple(([settings["io.weight"]] if "io.weight" in settings
                                       else []) + lines)
    throttles = []
    for key, name in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                      ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
        for i, item in enumerate(r.field(data, key, where, k.list_of(k.raw_object), ())):
            path = f"{where}.{key}[{i}]"
            device = _device(r, item, path)
            rate = r.field(item, "rate", path, k.uint64, None, required=True)
            if device and rate is not None:
                throttles.append(f"{device} {name}={rate if rate else 'max'}")
    if throttles:
        settings["io.max"] = tuple(throttles)


def _device(r, item, path):
    major = r.field(item, "major", path, int64, None, required=True)
    minor = r.field(item, "minor", path, int64, None, required=True)
    return None if major is None or minor is None else f"{major}:{minor}"


class DeviceRule:
    """One linux.resources.devices entry: kind a, c or b; major and minor None for any."""
    __slots__ = ("allow", "kind", "major", "minor", "access")

    def __init__(self, allow, kind, major, minor, access):
        self.allow, self.kind, self.major, self.minor, self.access = (
            allow, kind, major, minor, access)

    def matches(self, kind, major, minor):
        return (self.kind in ("a", kind) and self.major in (None, major)
                and self.minor in (None, minor))


def device_rules(r, data, where="linux.resources"):
    """The device allow list, checked: a tuple of DeviceRule in the config's order."""
    rules = []
    for i, item in enumerate(r.field(data, "devices", where, k.list_of(k.raw_object), ())):
        path = f"{where}.devices[{i}]"
        allow = r.field(item, "allow", path, k.boolean, None, required=True)
        kind = r.field(item, "type", path, k.one_of("a", "c", "b"), "a")
        major = r.field(item, "major", path, int64, None)
        minor = r.field(item, "minor", path, int64, None)
        access = r.field(item, "access", path, k.string, "rwm")
        if access and not set(access) <= set("rwm"):
            r.fail(f"{path}.access", f"must be made of r, w and m, not {access!r}")
        if allow is not None:
            rules.append(DeviceRule(allow, kind, None if major == -1 else major,
                                    None if minor == -1 else minor, access or "rwm"))
    return tuple(rules)


def device_allowed(rules, kind, major, minor):
    """Whether reading and writing device (kind, major, minor) is allowed by `rules` (the
    last rule that matches decides; with none, it is allowed, as in cgroup v1's list)."""
    allowed = True
    for rule in rules:
        if rule.matches(kind, major, minor) and ("r" in rule.access or "w" in rule.access):
            allowed = rule.allow
    return allowed


def controllers(settings):
    """The cgroup v2 controllers that writing `settings` needs."""
    needed = {name.split(".", 1)[0] for name in settings}
    needed.discard("cgroup")
    return needed


def parse_resources(data, source="resources"):
    """An `update -r` document (a linux.resources object) -> settings."""
    r = k.Reader(source)
    settings = cgroup_v2_settings(r, r.object(data, "linux.resources"))
    r.raise_problems()
    return settings
