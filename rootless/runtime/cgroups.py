"""Cgroup v2, inside the subtree delegated to the user.

The cgroup2 mount comes from /proc/self/mountinfo (hosts differ: /sys/fs/cgroup on unified
hosts, /sys/fs/cgroup/unified on hybrid ones). The caller's cgroup comes from
/proc/self/cgroup; the delegated root is the highest ancestor of it the caller may manage
(writable directory, cgroup.procs and cgroup.subtree_control), which is what systemd's
Delegate=yes gives a user@.service. A container gets its own leaf below it, with the
controllers its limits need enabled on the way down.

Without a delegated subtree, a container that asks for no limits still runs, outside any
cgroup of its own; asking for limits, pause or stats then says what is missing.
"""

import errno
import os
import time

from rootless.errors import CgroupError

DEFAULT_PARENT = "handcar"
SIGKILL = 9                 # the same on every Linux architecture (and no enum to import)
FREEZE_TIMEOUT = 10
CREATE_ATTEMPTS = 20        # walks down to the leaf while other deletes remove its parents


def cgroup2_mount(mountinfo="/proc/self/mountinfo"):
    """Where cgroup2 is mounted, or None."""
    from rootless.system.mountinfo import mounts
    try:
        for point, root, fstype in mounts(mountinfo):
            if fstype == "cgroup2" and root == "/":
                return point
    except OSError:
        pass
    return None


def own_cgroup(path="/proc/self/cgroup"):
    """The caller's cgroup v2 path (the '0::' line), e.g. '/user.slice/...'."""
    with open(path) as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return None


def _manageable(directory):
    return all(os.access(os.path.join(directory, name), os.W_OK)
               for name in ("", "cgroup.procs", "cgroup.subtree_control"))


def delegated_root(mount=None, own=None):
    """The host path of the highest cgroup above (or at) ours that we may manage."""
    mount = mount or cgroup2_mount()
    if mount is None:
        return None
    own = own if own is not None else own_cgroup()
    if own is None:
        return None
    found = None
    current = os.path.normpath(mount + own)
    while inside(mount, current) and _manageable(current):
        found = current
        if current == mount:
            break
        current = os.path.dirname(current)
    return found


def inside(top, path):
    return path == top or path.startswith(top.rstrip("/") + "/")


def available_controllers(directory):
    with open(os.path.join(directory, "cgroup.controllers")) as f:
        return set(f.read().split())


def v1_controllers(path="/proc/self/cgroup"):
    """The controllers this host has on cgroup v1 hierarchies (a v1 or hybrid host)."""
    found = set()
    try:
        with open(path) as f:
            for line in f:
                number, names, _ = line.split(":", 2)
                if number != "0":
                    found.update(name for name in names.split(",") if "=" not in name)
    except OSError:
        pass
    return found


def _missing_controller_help(controller, where):
    if controller in v1_controllers():
        # docker and containerd on such a host ask for v1 limits: no delegation helps
        return (f"the {controller} controller is not available in {where}: this host has "
                "it on cgroup v1 (a v1 or hybrid host), and handcar sets limits through "
                "cgroup v2 only")
    return (f"the {controller} controller is not available in {where}: ask for it to be "
            f"delegated to you (systemd: Delegate=yes on your user@.service, or "
            f"`Delegate={controller}`; then log in again or `loginctl enable-linger`)")


def check_controllers(root, needed):
    have = available_controllers(root)
    for controller in sorted(needed):
        if controller not in have:
            raise CgroupError("linux.resources: " + _missing_controller_help(controller, root))


def plan_leaf(cgroups_path, container_id, needed, root=None, enabled=True):
    """(delegated root, host path of the container's cgroup), or None when it runs
    without one (none delegated, or not `enabled`: --cgroup-manager disabled). Raises
    CgroupError when the limits asked for cannot be enforced."""
    if not enabled:
        if needed:
            raise CgroupError(f"linux.resources asks for {', '.join(sorted(needed))} limits, "
                              "but cgroups are disabled (--cgroup-manager disabled)")
        return None
    root = root if root is not None else delegated_root()
    if root is None:
        if needed:
            raise CgroupError(f"linux.resources asks for {', '.join(sorted(needed))} limits, "
                              "but no cgroup v2 subtree is delegated to you; "
                              + _missing_controller_help(sorted(needed)[0], "your cgroup"))
        return None
    check_controllers(root, needed)
    relative = cgroups_path.strip("/") if cgroups_path else f"{DEFAULT_PARENT}/{container_id}"
    if ":" in relative and not cgroups_path.startswith("/"):
        # systemd's slice:prefix:name, without a systemd to ask: where systemd would put it
        slice_name, unit = systemd_unit(cgroups_path, container_id)
        relative = f"{expand_slice(slice_name)}/{unit}".strip("/")
    leaf = os.path.normpath(os.path.join(root, relative))
    if not inside(root, leaf) or leaf == root:
        raise CgroupError(f"linux.cgroupsPath {cgroups_path!r} leaves your delegated "
                          f"cgroup {root}")
    return root, leaf


def systemd_unit(cgroups_path, container_id, default_slice="user.slice"):
    """(slice, scope unit) of a systemd cgroupsPath, `slice:prefix:name`, read as runc
    reads it: an empty path is default_slice:handcar:ID, an empty slice the default one,
    and the scope is prefix-name.scope (name.scope without a prefix)."""
    parts = cgroups_path.split(":") if cgroups_path else ["", "handcar", container_id]
    if len(parts) != 3 or not parts[2]:
        raise CgroupError(f"linux.cgroupsPath {cgroups_path!r}: systemd cgroups need the "
                          "form slice:prefix:name (e.g. user.slice:handcar:ID)")
    slice_name, prefix, name = parts
    slice_name = slice_name or default_slice
    expand_slice(slice_name)                      # checks it
    if name.endswith(".slice") or "/" in prefix + name:
        raise CgroupError(f"linux.cgroupsPath {cgroups_path!r}: {name!r} must name a scope "
                          "(handcar asks systemd for a scope, not a slice)")
    return slice_name, f"{prefix}-{name}.scope" if prefix else f"{name}.scope"


def expand_slice(slice_name):
    """The cgroup path systemd gives a slice, relative to its manager's: a-b.slice is
    /a.slice/a-b.slice, and -.slice (the root slice) is ''."""
    if slice_name == "-.slice":
        return ""
    stem = slice_name[:-len(".slice")]
    components = stem.split("-")
    if (not slice_name.endswith(".slice") or "/" in slice_name or not stem
            or "" in components):
        raise CgroupError(f"{slice_name!r} is not a systemd slice name (like user.slice "
                          "or user-handcar.slice)")
    return "".join(f"/{'-'.join(components[:i + 1])}.slice" for i in range(len(components)))


def process_cgroup(pid):
    """The host path of the cgroup v2 a process is in."""
    mount = cgroup2_mount()
    if mount is None:
        raise CgroupError("no cgroup2 mount in /proc/self/mountinfo")
    try:
        own = own_cgroup(f"/proc/{pid}/cgroup")
    except FileNotFoundError:
        raise CgroupError(f"process {pid} exited") from None
    if own is None:
        raise CgroupError(f"process {pid} is in no cgroup v2")
    return os.path.normpath(mount + own)


class Cgroup:
    """A container's leaf cgroup (host path)."""

    def __init__(self, path):
        self.path = path

    def file(self, name):
        return os.path.join(self.path, name)

    def read(self, name):
        with open(self.file(name)) as f:
            return f.read()

    def write(self, name, value):
        try:
            with open(self.file(name), "w") as f:
                f.write(value)
        except OSError as err:
            raise CgroupError(f"writing {value.strip()!r} to {self.file(name)}: "
                              f"{err.strerror}") from None

    def exists(self):
        return os.path.isdir(self.path)

    def create(self, root, needed):
        """Make the leaf, enabling from `root` down to its parent every controller there
        is (as runc does: stats and later updates need them), and at least `needed`.

        Another container's delete removes the shared default parent (`handcar/`) when it
        is empty: between our mkdir of it and of our leaf in it, it may be gone (ENOENT,
        or ENODEV writing a removed cgroup's files). The walk then starts again; once
        our leaf exists, the parent is not empty and stays."""
        for _attempt in range(CREATE_ATTEMPTS):
            try:
                self._walk_down(root, needed)
                return
            except _ParentRemoved:
                continue
        raise CgroupError(f"creating cgroup {self.path}: its parent cgroup was removed "
                          f"{CREATE_ATTEMPTS} times while it was being made")

    def _walk_down(self, root, needed):
        current = root
        for part in os.path.relpath(self.path, root).split("/"):
            _enable(current, needed)
            current = os.path.join(current, part)
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                pass
            except FileNotFoundError:
                raise _ParentRemoved() from None
            except OSError as err:
                raise CgroupError(f"creating cgroup {current}: {err.strerror}") from None

    def apply(self, settings):
        for name, value in settings.items():
            for line in (value if isinstance(value, tuple) else (value,)):
                self.write(name, line)

    def add(self, pid):
        self.write("cgroup.procs", str(pid))

    def pids(self):
        try:
            return [int(pid) for pid in self.read("cgroup.procs").split()]
        except FileNotFoundError:
            return []

    def frozen(self):
        try:
            return self.read("cgroup.freeze").strip() == "1"
        except FileNotFoundError:
            return False

    def freeze(self, frozen=True):
        """Freeze or thaw, and wait until cgroup.events says it is done."""
        self.write("cgroup.freeze", "1" if frozen else "0")
        want = f"frozen {1 if frozen else 0}"
        deadline = time.monotonic() + FREEZE_TIMEOUT
        while want not in self.read("cgroup.events").splitlines():
            if time.monotonic() > deadline:
                raise CgroupError(f"{self.path} did not {'freeze' if frozen else 'thaw'} "
                                  f"within {FREEZE_TIMEOUT}s")
            time.sleep(0.001)

    def kill(self, signum=SIGKILL):
        """Signal every process in the cgroup (cgroup.kill for SIGKILL where it exists)."""
        if signum == SIGKILL and os.path.exists(self.file("cgroup.kill")):
            self.write("cgroup.kill", "1")
            return
        for pid in self.pids():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def remove(self, timeout=5):
        """Kill what is left in the leaf, then remove it, its own child cgroups first (and
        an empty default parent)."""
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            return                        # (systemd may remove a scope's cgroup meanwhile)
        for entry in entries:             # cgroups made inside the container
            if entry.is_dir(follow_symlinks=False):
                Cgroup(entry.path).remove(timeout)
        deadline = time.monotonic() + timeout
        while True:
            if self.pids():
                self.kill()
            try:
                os.rmdir(self.path)
                break
            except FileNotFoundError:
                break
            except OSError as err:
                if err.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(f"removing cgroup {self.path}: {err.strerror}") from None
                time.sleep(0.005)
        parent = os.path.dirname(self.path)
        if os.path.basename(parent) == DEFAULT_PARENT:
            try:
                os.rmdir(parent)
            except OSError:
                pass                      # other containers still there


class _ParentRemoved(Exception):
    """A cgroup on the way down to a new leaf was removed meanwhile (Cgroup.create)."""


def _enable(directory, needed):
    path = os.path.join(directory, "cgroup.subtree_control")
    try:
        with open(path) as f:
            enabled = set(f.read().split())
        missing = sorted(available_controllers(directory) - enabled)
    except FileNotFoundError:
        raise _ParentRemoved() from None
    if not missing:
        return
    try:
        with open(path, "w") as f:
            f.write(" ".join(f"+{c}" for c in missing))
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENODEV):
            raise _ParentRemoved() from None
        lacking = sorted(set(needed) - enabled)
        if err.errno == errno.EBUSY and not lacking:
            return                        # our caller lives here; no limit needs them
        if err.errno == errno.EBUSY:
            raise CgroupError(f"cannot enable {', '.join(lacking)} below {directory}: it holds "
                              "processes itself (cgroup v2 allows controllers only for "
                              "cgroups without processes); run handcar from a child "
                              "cgroup") from None
        raise CgroupError(f"enabling {', '.join(missing)} in {path}: {err.strerror}") from None


# --- statistics, in runc's shape ----------------------------------------------------------

UNLIMITED = 2**64 - 1


def _read(cgroup, name):
    try:
        return cgroup.read(name)
    except (FileNotFoundError, PermissionError):
        return None


def _number(text):
    text = text.strip()
    return UNLIMITED if text == "max" else int(text)


def _flat_keyed(text):
    """'key value' lines -> {key: int}."""
    result = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            result[key] = int(value)
    return result


def oom_kills(cgroup):
    return _flat_keyed(_read(cgroup, "memory.events")).get("oom_kill", 0)


def stats(cgroup):
    data = {}
    cpu = _flat_keyed(_read(cgroup, "cpu.stat"))
    if cpu:
        data["cpu"] = {
            "usage": {"total": cpu.get("usage_usec", 0) * 1000,
                      "kernel": cpu.get("system_usec", 0) * 1000,
                      "user": cpu.get("user_usec", 0) * 1000},
            "throttling": {"periods": cpu.get("nr_periods", 0),
                           "throttledPeriods": cpu.get("nr_throttled", 0),
                           "throttledTime": cpu.get("throttled_usec", 0) * 1000},
        }
    current = _read(cgroup, "memory.current")
    if current is not None:
        raw = _flat_keyed(_read(cgroup, "memory.stat"))
        events = _flat_keyed(_read(cgroup, "memory.events"))
        memory = {"usage": {"usage": _number(current),
                            "limit": _number(_read(cgroup, "memory.max") or "max"),
                            "failcnt": events.get("max", 0)},
                  "cache": raw.get("file", 0), "raw": raw}
        peak = _read(cgroup, "memory.peak")
        if peak is not None:
            memory["usage"]["max"] = _number(peak)
        swap = _read(cgroup, "memory.swap.current")
        if swap is not None:
            memory["swap"] = {"usage": _number(swap),
                              "limit": _number(_read(cgroup, "memory.swap.max") or "max"),
                              "failcnt": 0}
        data["memory"] = memory
    pids = _read(cgroup, "pids.current")
    if pids is not None:
        data["pids"] = {"current": _number(pids),
                        "limit": _number(_read(cgroup, "pids.max") or "max")}
    io = _read(cgroup, "io.stat")
    if io:
        entries = []
        for line in io.splitlines():
            device, *fields = line.split()
            major, minor = (int(n) for n in device.split(":"))
            values = dict(field.split("=") for field in fields)
            for key, op in (("rbytes", "Read"), ("wbytes", "Write")):
                if key in values:
                    entries.append({"major": major, "minor": minor, "op": op,
                                    "value": int(values[key])})
        data["blkio"] = {"ioServiceBytesRecursive": entries}
    hugetlb = {}
    for name in sorted(os.listdir(cgroup.path)):
        if name.startswith("hugetlb.") and name.endswith(".current"):
            size = name[len("hugetlb."):-len(".current")]
            hugetlb[size] = {
                "usage": _number(_read(cgroup, name)),
                "max": _number(_read(cgroup, f"hugetlb.{size}.max") or "max"),
                "failcnt": _flat_keyed(_read(cgroup, f"hugetlb.{size}.events")).get("max", 0),
            }
    if hugetlb:
        data["hugetlb"] = hugetlb
    return data
