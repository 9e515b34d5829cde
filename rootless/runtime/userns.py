"""The user namespace: which ids to map, whether the caller may map them, and mapping them.

Planning happens in the parent before any fork, so a mapping the caller is not allowed
gets a clear error and nothing is created. Applying writes /proc/PID/{uid,gid}_map
directly where the kernel lets an unprivileged process do so (only its own id), and
otherwise runs the setuid helpers newuidmap/newgidmap, which check /etc/subuid and
/etc/subgid themselves.
"""

import os
import stat
from oci.record import Record

from oci.spec import IDMapping
from rootless.child import protocol
from rootless.errors import HelperFailed, UsernsError

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"


class MappingPlan(Record):
    FIELDS = {
        "uid_mappings": None,
        "gid_mappings": None,
        "direct": None,  # True: write the maps ourselves; False: newuidmap/newgidmap
    }

    def maps_caller(self, uid, gid):
        """Whether the caller's own host uid and gid are both mapped."""
        return (any(m.host_id <= uid < m.host_id + m.size for m in self.uid_mappings)
                and any(m.host_id <= gid < m.host_id + m.size for m in self.gid_mappings))


def subordinate_ranges(path, user_name, uid):
    """[(start, count)] granted to the user in /etc/subuid or /etc/subgid (by name or id)."""
    ranges = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return ranges
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (user_name, str(uid)):
            continue
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if count > 0:
            ranges.append((start, count))
    return ranges


def plan(linux, euid, egid, user_name):
    """The MappingPlan for a config, or None when no new user namespace is made."""
    userns = linux.namespace("user")
    if userns and userns.path:
        return None                                   # joined, already mapped
    if linux.uid_mappings:
        uid_mappings, gid_mappings = linux.uid_mappings, linux.gid_mappings
    elif euid == 0 and not userns:
        return None                                   # root without a user namespace
    else:
        uid_mappings = _default_mappings(euid, subordinate_ranges(SUBUID, user_name, euid))
        gid_mappings = _default_mappings(egid, subordinate_ranges(SUBGID, user_name, euid))
    for kind, mappings, own in (("uid", uid_mappings, euid), ("gid", gid_mappings, egid)):
        # Without root inside, the caller must be itself there (keep-id): the process that
        # made the namespace keeps its capabilities in it under its own id.
        if not maps_root(mappings) and not any(m.container_id == own == m.host_id
                                               for m in mappings):
            raise UsernsError(f"linux.{kind}Mappings: container {kind} 0, or your own "
                              f"{kind} {own} as itself, must be mapped")
    if euid == 0:
        return MappingPlan(tuple(uid_mappings), tuple(gid_mappings), direct=True)
    _check_allowed("uid", uid_mappings, euid, SUBUID, user_name, euid)
    _check_allowed("gid", gid_mappings, egid, SUBGID, user_name, euid)
    only_own = (len(uid_mappings) == 1 and uid_mappings[0].host_id == euid
                and len(gid_mappings) == 1 and gid_mappings[0].host_id == egid)
    if not only_own:
        check_helpers()
    return MappingPlan(tuple(uid_mappings), tuple(gid_mappings), direct=only_own)


def maps_root(mappings):
    return any(m.container_id == 0 for m in mappings)


def _default_mappings(own_id, ranges):
    """Container 0 is the caller; 1..N are the caller's first subordinate range."""
    mappings = [IDMapping(0, own_id, 1)]
    if ranges:
        start, count = ranges[0]
        mappings.append(IDMapping(1, start, count))
    return mappings


def _check_allowed(kind, mappings, own_id, path, user_name, uid):
    ranges = subordinate_ranges(path, user_name, uid)
    for i, m in enumerate(mappings):
        if m.size == 1 and m.host_id == own_id:
            continue
        if any(start <= m.host_id and m.host_id + m.size <= start + count
               for start, count in ranges):
            continue
        where = f"linux.{kind}Mappings[{i}]"
        if not ranges:
            raise UsernsError(
                f"{where}: no entry for {user_name} in {path}; ask an administrator for a "
                f"range (usermod --add-sub{kind}s 100000-165535 {user_name})")
        allowed = ", ".join(f"{s}-{s + c - 1}" for s, c in ranges)
        raise UsernsError(f"{where}: host {kind}s {m.host_id}-{m.host_id + m.size - 1} are "
                          f"outside your ranges in {path} ({allowed})")


def check_helpers():
    from rootless.runtime.host import find_program
    for helper in ("newuidmap", "newgidmap"):
        path = find_program(helper, also=("/usr/bin", "/usr/sbin", "/bin"))
        if not path:
            raise UsernsError(f"{helper} not found: install the uidmap package "
                              "(it maps your subordinate ids)")
        st = os.stat(path)
        if not (st.st_mode & stat.S_ISUID and st.st_uid == 0) and not _has_file_caps(path):
            raise UsernsError(f"{path} is neither setuid root nor has file capabilities; "
                              "reinstall the uidmap package")


def _has_file_caps(path):
    try:
        return bool(os.getxattr(path, "security.capability"))
    except OSError:
        return False


def apply(mapping_plan, pid):
    """Map the user namespace of process `pid` (called by the parent)."""
    if mapping_plan.direct:
        if os.geteuid() != 0:
            _write_proc(pid, "setgroups", "deny")     # required before an unprivileged gid_map
        _write_proc(pid, "uid_map", _map_text(mapping_plan.uid_mappings))
        _write_proc(pid, "gid_map", _map_text(mapping_plan.gid_mappings))
        return
    # The two helpers are independent: run them side by side (each is the whole start of a
    # setuid program, a few ms), then check them in order.
    helpers = []
    try:
        for name, mappings in (("newuidmap", mapping_plan.uid_mappings),
                               ("newgidmap", mapping_plan.gid_mappings)):
            helpers.append(_Helper(name, pid, mappings))
    finally:                          # a helper that started is waited for, whatever happens
        results = [helper.wait() for helper in helpers]
    for helper, (status, errors) in zip(helpers, results):
        if status != 0:
            raise HelperFailed(helper.argv, status, errors)


class _Helper:
    """newuidmap or newgidmap, started; posix_spawn rather than subprocess, which costs
    create a noticeable part of its start-up to import."""

    def __init__(self, name, pid, mappings):
        self.argv = [name, str(pid)]
        for m in mappings:
            self.argv += [str(m.container_id), str(m.host_id), str(m.size)]
        self.errors, write_end = os.pipe()
        try:
            self.pid = os.posix_spawnp(name, self.argv, os.environ, file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, write_end, 2)])
        except BaseException:
            os.close(self.errors)
            raise
        finally:
            os.close(write_end)

    def wait(self):
        """(exit status, stderr)."""
        with open(self.errors, "rb") as errors:
            output = errors.read()
        _, wait_status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(wait_status), output.decode(errors="replace")


def _map_text(mappings):
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)


def _write_proc(pid, name, text):
    path = f"/proc/{pid}/{name}"
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as err:
        raise UsernsError(f"writing {path}: {err.strerror}") from None


def default_plan(euid, egid, name):
    """The mapping a container gets when its config names no mappings (and what image
    layers are unpacked with, so their owners come out the same inside)."""
    from oci.spec import Linux, Namespace
    return plan(Linux(namespaces=(Namespace("user"),)), euid, egid, name)


def keep_id_mappings(own_id, ranges):
    """podman's --userns=keep-id: the caller's id is itself inside, the ids around it come
    from the first subordinate range. Without a range, only the caller's own id."""
    mappings = [IDMapping(own_id, own_id, 1)]
    if ranges and ranges[0][1] > own_id:
        start, count = ranges[0]
        if own_id:
            mappings.insert(0, IDMapping(0, start, own_id))
        mappings.append(IDMapping(own_id + 1, start + own_id, count - own_id))
    return tuple(mappings)


def run_in_userns(mapping_plan, function, *args):
    """Run function(*args) in a child process that is root in a new user (and mount)
    namespace mapped by `mapping_plan`: how files owned by a container's ids are made,
    copied and removed. Raises what the child reported."""
    from rootless.system.channel import fork_with_channel
    pid, parent_end = fork_with_channel(_userns_child, function, args)
    try:
        parent_end.expect(protocol.PREPARE, "entering a user namespace", timeout=30)
        apply(mapping_plan, pid)
        parent_end.send(protocol.PREPARED)
        parent_end.expect(protocol.DONE, "working in the user namespace")
    finally:
        parent_end.close()
        os.waitpid(pid, 0)


def _userns_child(channel, function, args):
    from rootless.system import libc
    libc.prctl(libc.PR_SET_PDEATHSIG, 9)
    libc.unshare(libc.CLONE_NEWUSER | libc.CLONE_NEWNS)
    channel.send(protocol.PREPARE)
    channel.expect(protocol.PREPARED, "mapping the user namespace")
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    function(*args)
    channel.send(protocol.DONE)
