"""Where a container's cgroup comes from: one interface, three ways (as crun's cgroup
manager: cgroup-internal.h).

- `Cgroupfs`: handcar makes the leaf itself, in the subtree delegated to the user
  (cgroups.py finds it and plans the leaf).
- `SystemdScope` (--systemd-cgroup): systemd makes a transient scope for the container's
  first process, over D-Bus (systemd.py); handcar then limits its cgroup like any other.
- `NoCgroup`: none of its own (--cgroup-manager disabled, or nothing delegated and no
  limit asked for).

create gets a manager from `for_create` before anything is reserved; every later verb
gets the container's from `of(record)`. What a manager does, in the order create uses it:

    refuse_if_used(store, id)   before the record names the cgroup (delete kills what is in it)
    make()                      the Cgroup to clone the first process into, or None
    place(record, pid)          a process born outside its cgroup goes in (systemd: the scope)
    close()                     what create held open (systemd's bus)

and for a container that exists: `cgroup`, `join(pid)` (exec), `update(id, settings)`,
`destroy()` (delete, or undoing a failed create).
"""

import os

from rootless import log
from rootless.errors import HandcarError
from rootless.runtime import cgroups
from rootless.runtime.cgroups import Cgroup, CgroupError


class NoCgroup:
    """A container without a cgroup of its own."""

    leaf = None
    cgroup = None

    def refuse_if_used(self, store, container_id):
        pass

    def make(self):
        return None

    def place(self, record, pid):
        pass

    def close(self):
        pass

    def join(self, pid):
        pass

    def update(self, container_id, settings):
        raise _no_cgroup("update", container_id)

    def destroy(self):
        pass


class Cgroupfs(NoCgroup):
    """A leaf cgroup handcar makes and removes itself; `root` is the delegated subtree
    (None for a container's cgroup found in its record: update looks it up again)."""

    def __init__(self, leaf, root=None, settings=None):
        self.leaf, self.root, self.settings = leaf, root, settings or {}
        self.cgroup = Cgroup(leaf)

    def refuse_if_used(self, store, container_id):
        if self.cgroup.pids():
            store.refuse_taken(container_id)      # our own id's: say so, as reserve would
            raise CgroupError(f"cgroup {self.leaf} is in use by other processes")

    def make(self):
        from oci.resources import controllers
        self.cgroup.create(self.root, controllers(self.settings))
        self.cgroup.apply(self.settings)
        return self.cgroup

    def place(self, record, pid):
        self.cgroup.add(pid)

    def join(self, pid):
        self.cgroup.add(pid)

    def update(self, container_id, settings):
        from oci.resources import controllers
        needed = controllers(settings)
        root = cgroups.delegated_root()
        if root is None or not cgroups.inside(root, self.cgroup.path):
            raise CgroupError(f"cannot update container {container_id}: its cgroup "
                              f"{self.cgroup.path} is not in a subtree delegated to you")
        cgroups.check_controllers(root, needed)
        self.cgroup.create(root, needed)          # enables what the new limits need
        self.cgroup.apply(settings)

    def destroy(self):
        self.cgroup.remove()


class SystemdScope(Cgroupfs):
    """--systemd-cgroup: the scope systemd makes for the container once its first process
    exists (systemd makes scopes for running processes). `manager` is the bus connection
    while create runs; later verbs connect when they need systemd."""

    def __init__(self, unit, slice_name=None, settings=None, manager=None, leaf=None):
        self.unit, self.slice, self.manager = unit, slice_name, manager
        self.settings = settings or {}
        self.leaf = leaf
        self.cgroup = Cgroup(leaf) if leaf else None

    def refuse_if_used(self, store, container_id):
        pass                                      # systemd refuses a scope that exists

    def make(self):
        return None                               # no cgroup before systemd makes it

    def place(self, record, pid):
        """Have systemd put `pid` in the scope, then limit the scope's cgroup as any other
        container cgroup."""
        from oci.resources import controllers
        from rootless.runtime.systemd import BusError
        record.save(systemd_unit=self.unit)       # before asking: a failed create stops it
        try:
            self.manager.start_scope(self.unit, self.slice, pid,
                                     f"handcar container {record.id}", self.settings)
        except BusError as err:
            if err.name:          # refused: none of ours to stop (it may be another's)
                record.save(systemd_unit=None)
            raise
        leaf = cgroups.process_cgroup(pid)
        if os.path.basename(leaf) != self.unit:
            raise CgroupError(f"systemd started {self.unit} but process {pid} is in "
                              f"{leaf}, not in it")
        record.save(cgroup=leaf)
        self.leaf, self.cgroup = leaf, Cgroup(leaf)
        cgroups.check_controllers(leaf, controllers(self.settings))
        self.cgroup.apply(self.settings)

    def close(self):
        if self.manager:
            self.manager.close()
            self.manager = None

    def join(self, pid):
        """Move exec's process into the scope; from outside the user's systemd tree (a
        login session's scope) only systemd may, as runc asks it to."""
        try:
            self.cgroup.add(pid)
        except CgroupError:
            manager = _connect(f"the process cannot join {self.unit}")
            if manager is None:
                raise
            try:
                manager.attach(self.unit, pid)
            finally:
                manager.close()

    def update(self, container_id, settings):
        from oci.resources import controllers
        # the controllers systemd enabled for the scope (Delegate=yes) are all it gets
        cgroups.check_controllers(self.cgroup.path, controllers(settings))
        manager = _connect(f"writing the new limits to the cgroup of {self.unit} only")
        if manager:                               # so that systemd keeps them
            try:
                manager.set_properties(self.unit, settings)
            finally:
                manager.close()
        self.cgroup.apply(settings)

    def destroy(self):
        """Stop the scope (warning rather than raising when systemd cannot be asked),
        then remove its cgroup directly if anything is left."""
        try:
            manager = _connect(f"removing the cgroup of {self.unit} directly")
        except HandcarError as err:
            log.warning(str(err))
            manager = None
        if manager:
            try:
                manager.stop(self.unit)
            finally:
                manager.close()
        if self.cgroup:
            self.cgroup.remove()


def _connect(instead):
    from rootless.runtime import systemd
    return systemd.connect(instead)


def _no_cgroup(what, container_id):
    return CgroupError(f"cannot {what} container {container_id}: it has no cgroup of its "
                       "own (no cgroup v2 subtree is delegated to you)")


def for_create(container_id, cgroups_path, settings, systemd=False, enabled=True):
    """The manager for a new container: checks that its limits can be enforced."""
    from oci.resources import controllers
    if systemd and enabled:
        from rootless.runtime import systemd as bus
        slice_name, unit = cgroups.systemd_unit(cgroups_path, container_id,
                                                 bus.default_slice())
        manager = bus.connect("making the container's cgroup directly in your delegated "
                              f"subtree, as {slice_name}/{unit}")
        if manager:
            return SystemdScope(unit, slice_name, settings, manager)
        # no systemd to ask: where systemd would have put it
        cgroups_path = f"{cgroups.expand_slice(slice_name)}/{unit}"
    placement = cgroups.plan_leaf(cgroups_path, container_id, controllers(settings),
                                   enabled=enabled)
    if placement is None:
        return NoCgroup()
    root, leaf = placement
    return Cgroupfs(leaf, root, settings)


def of(record):
    """The manager of an existing container, from what its record says."""
    leaf = record.data.get("cgroup")
    unit = record.data.get("systemd_unit")
    if unit:
        return SystemdScope(unit, leaf=leaf)
    return Cgroupfs(leaf) if leaf else NoCgroup()


def require(record, what):
    """The container's Cgroup, for a verb that needs one (pause, stats, events, update)."""
    cgroup = of(record).cgroup
    if cgroup is None or not cgroup.exists():
        raise _no_cgroup(what, record.id)
    return cgroup
