"""config.json as immutable records, loaded with every problem reported together.

linux.resources is kept as JSON beside the cgroup v2 settings made of it; linux.seccomp
becomes an oci.seccomp.Filter.
"""

from . import jsonio
from . import reader as k
from .errors import SpecError
from .linux import NAMESPACES, RLIMITS, ROOTFS_PROPAGATIONS, sysctl_namespace
from .reader import Reader
from .record import Record
from .resources import cgroup_v2_settings, device_allowed, device_rules, without_defaults
from .seccomp import filter_from_json

# handcar's friendly mode: the overlay on / is mounted by this program (fuse-overlayfs)
MOUNT_PROGRAM_ANNOTATION = "handcar.mount-program"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer",
              "poststart", "poststop")


class User(Record):
    FIELDS = {
        "uid": 0,
        "gid": 0,
        "umask": None,
        "additional_gids": (),
    }


class Rlimit(Record):
    FIELDS = {
        "type": None,
        "soft": None,
        "hard": None,
    }


class Capabilities(Record):
    FIELDS = {
        "bounding": (),
        "effective": (),
        "permitted": (),
        "inheritable": (),
        "ambient": (),
    }


class Process(Record):
    FIELDS = {
        "args": None,
        "cwd": "/",
        "env": (),
        "terminal": False,
        "console_size": None,  # (height, width)
        "user": User(),
        "capabilities": None,  # None: leave the set as the runtime has it
        "rlimits": (),
        "no_new_privileges": False,
        "oom_score_adj": None,
        "apparmor_profile": "",
        "selinux_label": "",
        "scheduler": None,  # oci.tuning.Scheduler
        "io_priority": None,  # oci.tuning.IOPriority
        "exec_cpu_affinity": None,  # oci.tuning.CPUAffinity (exec's processes only)
    }

    def tuned(self):
        """Whether the process asks for any of scheduler, ioPriority, execCPUAffinity
        (the engine then imports what sets them)."""
        return bool(self.scheduler or self.io_priority or self.exec_cpu_affinity)

    def env_value(self, name, default=None):
        return env_value(self.env, name, default)


def env_value(env, name, default=None):
    """The value of `name` in a KEY=VALUE list (the last one wins, as in execve)."""
    prefix = name + "="
    for item in reversed(env):
        if item.startswith(prefix):
            return item[len(prefix):]
    return default


class Mount(Record):
    FIELDS = {
        "destination": None,
        "type": "",
        "source": "",
        "options": (),
    }


IDMAPPED_MOUNTS = ("id-mapped mounts are not supported: without privilege the kernel "
                   "allows them only on a filesystem mounted inside the container's user "
                   "namespace, never on a bind of the host's")


class Hook(Record):
    FIELDS = {
        "path": None,
        "args": (),
        "env": (),
        "timeout": None,
    }


class Namespace(Record):
    FIELDS = {
        "type": None,
        "path": "",
    }


class IDMapping(Record):
    FIELDS = {
        "container_id": None,
        "host_id": None,
        "size": None,
    }


class Device(Record):
    FIELDS = {
        "type": None,
        "path": None,
        "major": 0,
        "minor": 0,
        "file_mode": None,
        "uid": None,
        "gid": None,
    }


class Linux(Record):
    FIELDS = {
        "namespaces": (),
        "uid_mappings": (),
        "gid_mappings": (),
        "time_offsets": {},  # clock -> (secs, nanosecs)
        "devices": (),
        "cgroups_path": "",
        "resources": {},
        "cgroup_settings": {},  # cgroup v2 file -> value
        "rootfs_propagation": "",
        "seccomp": None,  # oci.seccomp.Filter
        "sysctl": {},
        "masked_paths": (),
        "readonly_paths": (),
        "memory_policy": None,  # oci.tuning.MemoryPolicy
        "personality": None,  # oci.tuning.Personality
        "mount_label": "",
    }

    def namespace(self, kind):
        """The Namespace entry of `kind`, or None when the container shares the caller's."""
        for ns in self.namespaces:
            if ns.type == kind:
                return ns
        return None


class Spec(Record):
    FIELDS = {
        "oci_version": None,
        "root_path": None,
        "root_readonly": False,
        "process": None,
        "hostname": "",
        "domainname": "",
        "mounts": (),
        "hooks": {},  # kind -> tuple of Hook
        "annotations": {},
        "linux": Linux(),
    }

    def tuned(self):
        """Whether the process asks for a scheduler, an I/O priority, CPU affinity, a
        memory policy, a personality or LSM labels (which rootless/child/tuning.py sets)."""
        process, linux = self.process, self.linux
        return bool(process.tuned() or linux.memory_policy or linux.personality
                    or process.apparmor_profile or process.selinux_label)

    def host_dependent(self):
        """Whether the spec asks for something this host or caller may not be able to do
        (which the engine then checks before it starts anything)."""
        return bool(self.tuned() or self.linux.devices or self.linux.mount_label)


def supported_version(version):
    """Any 1.x.y, with a -prerelease or +build suffix (1.0.2-dev, 1.3.0-rc.1, 1.3.0+dev):
    the spec keeps compatibility within a major version, and what a later 1.x adds is
    an unknown property, which a runtime ignores."""
    parts = version.split("+", 1)[0].split("-", 1)[0].split(".")
    return len(parts) == 3 and parts[0] == "1" and all(p.isdigit() for p in parts[1:])


# Sections of config.json for other platforms, and fields handcar recognizes but does not
# do: each is refused by name, with why (runtime-spec: "Runtimes MUST generate an error
# when invalid or unsupported values are encountered"). The rest of what handcar cannot
# do depends on the host and the caller, and is refused by the engine before it starts
# anything (rootless/runtime/support.py).
OTHER_PLATFORMS = {
    "windows": "is for Windows containers; handcar runs Linux ones",
    "solaris": "is for Solaris zones; handcar runs Linux containers",
    "freebsd": "is for FreeBSD jails; handcar runs Linux containers",
    "zos": "is for z/OS; handcar runs Linux containers",
    "vm": "asks for a virtual machine; handcar runs containers",
}


# --- loading ---------------------------------------------------------------------------

def loads(text, source="config.json"):
    """Parse and validate a config.json document."""
    try:
        data = jsonio.loads(text)
    except ValueError as err:
        raise SpecError([f"not valid JSON: {err}"], source) from None
    return from_json(data, source)


def from_json(data, source="config.json"):
    r = Reader(source)
    data = r.object(data, "")
    spec = _spec(r, data)
    r.raise_problems()
    return spec


def process_from_json(data, source="process.json"):
    """A process document, as `exec --process` takes it."""
    r = Reader(source)
    process = _process(r, r.object(data, ""), "")
    r.raise_problems()
    return process


def _spec(r, data):
    version = r.field(data, "ociVersion", "", k.string, "", required=True)
    if isinstance(data.get("ociVersion"), str) and not supported_version(version):
        r.fail("ociVersion", f"unsupported version {version!r} (handcar takes 1.x.y: "
                             "runtime-spec 1.0.0 to 1.3.0, and later 1.x)")
    for platform, why in OTHER_PLATFORMS.items():
        if data.get(platform) is not None:
            r.fail(platform, why)
    root = r.object(data.get("root"), "root")
    if "root" not in data:
        r.fail("root", "required")
    if "process" not in data:
        r.fail("process", "required")
    linux = _linux(r, r.object(data.get("linux"), "linux"))
    spec = Spec(
        oci_version=version,
        root_path=r.field(root, "path", "root", k.string, "", required="root" in data),
        root_readonly=r.field(root, "readonly", "root", k.boolean, False),
        process=_process(r, r.object(data.get("process"), "process"), "process")
        if "process" in data else None,
        hostname=r.field(data, "hostname", "", k.string, ""),
        domainname=r.field(data, "domainname", "", k.string, ""),
        mounts=r.field(data, "mounts", "", k.list_of(_mount), ()),
        hooks=_hooks(r, r.object(data.get("hooks"), "hooks")),
        annotations=r.field(data, "annotations", "", k.string_map, {}),
        linux=linux,
    )
    if "root" in data and not spec.root_path:
        r.fail("root.path", "must not be empty")
    if (spec.hostname or spec.domainname) and not linux.namespace("uts"):
        r.fail("hostname", "needs a private uts namespace (add {\"type\": \"uts\"})")
    return spec


def _process(r, data, where):
    def at(key):
        return f"{where}.{key}" if where else key

    tuning = _tuning() if any(data.get(key) is not None for key in (
        "scheduler", "ioPriority", "execCPUAffinity")) else None

    args = r.field(data, "args", where, k.string_list, (), required=True)
    if "args" in data and not args:
        r.fail(at("args"), "must name a program")
    env = r.field(data, "env", where, k.string_list, ())
    for i, item in enumerate(env):
        if "=" not in item:
            r.fail(f"{at('env')}[{i}]", f"must be KEY=VALUE, not {item!r}")
    user_data = r.object(data.get("user"), at("user"))
    user = User(
        uid=r.field(user_data, "uid", at("user"), k.uint32, 0),
        gid=r.field(user_data, "gid", at("user"), k.uint32, 0),
        umask=r.field(user_data, "umask", at("user"), k.integer(0, 0o7777), None),
        additional_gids=r.field(user_data, "additionalGids", at("user"), k.list_of(k.uint32), ()),
    )
    caps = None
    if data.get("capabilities") is not None:
        caps_data = r.object(data["capabilities"], at("capabilities"))
        caps = Capabilities(**{
            name: r.field(caps_data, name, at("capabilities"), k.string_list, ())
            for name in ("bounding", "effective", "permitted", "inheritable", "ambient")
        })
    console = r.object(data.get("consoleSize"), at("consoleSize"))
    console_size = None
    if console:
        console_size = (r.field(console, "height", at("consoleSize"), k.uint32, 0, required=True),
                        r.field(console, "width", at("consoleSize"), k.uint32, 0, required=True))
    rlimits = r.field(data, "rlimits", where, k.list_of(_rlimit), ())
    seen = set()
    for limit in rlimits:
        if limit.type in seen:
            r.fail(at("rlimits"), f"{limit.type} is given twice")
        seen.add(limit.type)
    return Process(
        args=args,
        cwd=r.field(data, "cwd", where, k.absolute_path, "/", required=True),
        env=env,
        terminal=r.field(data, "terminal", where, k.boolean, False),
        console_size=console_size,
        user=user,
        capabilities=caps,
        rlimits=rlimits,
        no_new_privileges=r.field(data, "noNewPrivileges", where, k.boolean, False),
        oom_score_adj=r.field(data, "oomScoreAdj", where, k.integer(-1000, 1000), None),
        apparmor_profile=r.field(data, "apparmorProfile", where, k.string, ""),
        selinux_label=r.field(data, "selinuxLabel", where, k.string, ""),
        scheduler=tuning.scheduler(r, r.object(data["scheduler"], at("scheduler")), where)
        if data.get("scheduler") is not None else None,
        io_priority=tuning.io_priority(r, r.object(data["ioPriority"], at("ioPriority")),
                                       where)
        if data.get("ioPriority") is not None else None,
        exec_cpu_affinity=tuning.cpu_affinity(
            r, r.object(data["execCPUAffinity"], at("execCPUAffinity")), where)
        if data.get("execCPUAffinity") is not None else None,
    )


def _rlimit(r, value, path, default):
    data = r.object(value, path)
    kind = r.field(data, "type", path, k.one_of(*RLIMITS), None, required=True)
    soft = r.field(data, "soft", path, k.uint64, 0, required=True)
    hard = r.field(data, "hard", path, k.uint64, 0, required=True)
    if soft > hard:
        r.fail(path, f"soft limit {soft} is above hard limit {hard}")
    return Rlimit(kind, soft, hard) if kind else default


def _mount(r, value, path, default):
    data = r.object(value, path)
    destination = r.field(data, "destination", path, k.string, None, required=True)
    if destination == "":
        r.fail(f"{path}.destination", "must not be empty")
    mount = Mount(
        destination=destination or "",
        type=r.field(data, "type", path, k.string, ""),
        source=r.field(data, "source", path, k.string, ""),
        options=r.field(data, "options", path, k.string_list, ()),
    )
    for key in ("uidMappings", "gidMappings"):
        if data.get(key):
            r.fail(f"{path}.{key}", IDMAPPED_MOUNTS)
    for option in mount.options:
        if option in ("idmap", "ridmap"):
            r.fail(f"{path}.options", f"{option}: {IDMAPPED_MOUNTS}")
        elif option == "mand":
            r.fail(f"{path}.options", "mand: mandatory locking is gone from Linux (5.15)")
    return mount if destination else default


def _hook(r, value, path, default):
    data = r.object(value, path)
    hook = Hook(
        path=r.field(data, "path", path, k.absolute_path, None, required=True),
        args=r.field(data, "args", path, k.string_list, ()),
        env=r.field(data, "env", path, k.string_list, ()),
        timeout=r.field(data, "timeout", path, k.integer(1), None),
    )
    return hook if hook.path else default


def _hooks(r, data):
    hooks = {}
    for kind in data:
        if kind not in HOOK_KINDS:
            r.fail(f"hooks.{kind}", f"unknown hook kind (known: {', '.join(HOOK_KINDS)})")
            continue
        hooks[kind] = r.field(data, kind, "hooks", k.list_of(_hook), ())
    return hooks


def _namespace(r, value, path, default):
    data = r.object(value, path)
    kind = r.field(data, "type", path, k.one_of(*NAMESPACES), None, required=True)
    ns_path = r.field(data, "path", path, k.absolute_path, "")
    return Namespace(kind, ns_path) if kind else default


def _mapping(r, value, path, default):
    data = r.object(value, path)
    mapping = IDMapping(
        container_id=r.field(data, "containerID", path, k.uint32, None, required=True),
        host_id=r.field(data, "hostID", path, k.uint32, None, required=True),
        size=r.field(data, "size", path, k.integer(1, k.UINT32_MAX), None, required=True),
    )
    return default if None in (mapping.container_id, mapping.host_id, mapping.size) else mapping


def _check_mappings(r, mappings, where):
    for i, a in enumerate(mappings):
        for b in mappings[:i]:
            for attr, label in (("container_id", "container"), ("host_id", "host")):
                lo_a, lo_b = getattr(a, attr), getattr(b, attr)
                if lo_a < lo_b + b.size and lo_b < lo_a + a.size:
                    r.fail(where, f"{label} ids {lo_a}-{lo_a + a.size - 1} overlap "
                                  f"{lo_b}-{lo_b + b.size - 1}")


def _device(r, value, path, default):
    data = r.object(value, path)
    kind = r.field(data, "type", path, k.one_of("c", "b", "u", "p"), None, required=True)
    device = Device(
        type=kind,
        path=r.field(data, "path", path, k.absolute_path, None, required=True),
        major=r.field(data, "major", path, k.integer(0), 0, required=kind in ("c", "b", "u")),
        minor=r.field(data, "minor", path, k.integer(0), 0, required=kind in ("c", "b", "u")),
        file_mode=r.field(data, "fileMode", path, k.integer(0, 0o7777), None),
        uid=r.field(data, "uid", path, k.uint32, None),
        gid=r.field(data, "gid", path, k.uint32, None),
    )
    return device if kind and device.path else default


def _check_device_rules(r, devices, rules):
    """A device in linux.devices that the device rules deny is refused: handcar binds it
    in, and cannot enforce rules (that takes eBPF, which takes privilege)."""
    for i, device in enumerate(devices):
        if device.type == "p":
            continue
        kind = "b" if device.type == "b" else "c"
        if not device_allowed(rules, kind, device.major, device.minor):
            r.fail(f"linux.devices[{i}]", f"{device.path} ({kind} {device.major}:"
                                          f"{device.minor}) is denied by linux.resources."
                                          "devices, and handcar cannot enforce device rules "
                                          "(that takes eBPF): leave it out or allow it")


def _time_offsets(r, data):
    offsets = {}
    for clock, value in data.items():
        path = f"linux.timeOffsets.{clock}"
        if clock not in ("monotonic", "boottime"):
            r.fail(path, "must be monotonic or boottime")
            continue
        entry = r.object(value, path)
        offsets[clock] = (r.field(entry, "secs", path, k.integer(-2**63, 2**63 - 1), 0),
                          r.field(entry, "nanosecs", path, k.integer(0, 999_999_999), 0))
    return offsets


def _tuning():
    """oci.tuning, imported only for a config that uses one of its fields."""
    from . import tuning
    return tuning


def _linux(r, data):
    resources = r.field(data, "resources", "linux", k.raw_object, {})
    tuning = _tuning() if any(data.get(key) is not None for key in (
        "memoryPolicy", "personality")) else None
    namespaces = r.field(data, "namespaces", "linux", k.list_of(_namespace), ())
    kinds = [ns.type for ns in namespaces]
    for kind in set(kinds):
        if kinds.count(kind) > 1:
            r.fail("linux.namespaces", f"{kind} is given more than once")
    linux = Linux(
        namespaces=namespaces,
        uid_mappings=r.field(data, "uidMappings", "linux", k.list_of(_mapping), ()),
        gid_mappings=r.field(data, "gidMappings", "linux", k.list_of(_mapping), ()),
        time_offsets=_time_offsets(r, r.object(data.get("timeOffsets"), "linux.timeOffsets")),
        devices=r.field(data, "devices", "linux", k.list_of(_device), ()),
        cgroups_path=r.field(data, "cgroupsPath", "linux", k.string, ""),
        resources=resources,
        cgroup_settings=without_defaults(cgroup_v2_settings(r, resources)),
        rootfs_propagation=r.field(data, "rootfsPropagation", "linux",
                                   k.one_of(*ROOTFS_PROPAGATIONS), ""),
        seccomp=(filter_from_json(r, data["seccomp"]) if data.get("seccomp") is not None
                 else None),
        sysctl=r.field(data, "sysctl", "linux", k.string_map, {}),
        masked_paths=r.field(data, "maskedPaths", "linux", k.list_of(k.absolute_path), ()),
        readonly_paths=r.field(data, "readonlyPaths", "linux", k.list_of(k.absolute_path), ()),
        memory_policy=tuning.memory_policy(r, r.object(data["memoryPolicy"],
                                                       "linux.memoryPolicy"))
        if data.get("memoryPolicy") is not None else None,
        personality=tuning.personality(r, r.object(data["personality"],
                                                   "linux.personality"))
        if data.get("personality") is not None else None,
        mount_label=r.field(data, "mountLabel", "linux", k.string, ""),
    )
    _check_device_rules(r, linux.devices, device_rules(r, resources))
    if data.get("netDevices"):
        r.field(data, "netDevices", "linux", k.raw_object, {})
        r.fail("linux.netDevices", "moving a host network device into the container needs "
                                   "CAP_NET_ADMIN in the host's network namespace: handcar "
                                   "does not do it")
    if data.get("intelRdt") is not None:
        r.fail("linux.intelRdt", "handcar does not implement Intel RDT (resctrl, which "
                                 "only root may write)")
    _check_mappings(r, linux.uid_mappings, "linux.uidMappings")
    _check_mappings(r, linux.gid_mappings, "linux.gidMappings")
    userns = linux.namespace("user")
    if (linux.uid_mappings or linux.gid_mappings) and (not userns or userns.path):
        r.fail("linux.uidMappings", "mappings need a new user namespace "
                                    "(a {\"type\": \"user\"} entry without a path)")
    if bool(linux.uid_mappings) != bool(linux.gid_mappings):
        r.fail("linux.gidMappings" if linux.uid_mappings else "linux.uidMappings",
               "uidMappings and gidMappings must be given together")
    if linux.time_offsets and not linux.namespace("time"):
        r.fail("linux.timeOffsets", "needs a time namespace")
    for key in linux.sysctl:
        needed = sysctl_namespace(key)
        if needed is None:
            r.fail(f"linux.sysctl.{key}", "is not namespaced and cannot be set in a container")
        elif not linux.namespace(needed):
            r.fail(f"linux.sysctl.{key}", f"needs a private {needed} namespace")
    return linux
