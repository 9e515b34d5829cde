"""--systemd-cgroup: a transient scope from systemd over D-Bus, as runc's systemd cgroup
driver asks for one.

The container's first process is forked where the caller is; the parent then asks the
manager (the user's systemd through the session bus, root's through the system bus) to
StartTransientUnit a `prefix-name.scope` in the slice, with Delegate=yes and that pid,
and waits for the job's JobRemoved signal. systemd moves the process into the scope's
cgroup; handcar reads where that is from /proc/PID/cgroup and uses it like any other
container cgroup (limits, freeze, kill, stats, exec, which systemd moves in where handcar
may not); delete stops the unit.

D-Bus is spoken through jeepney (pure Python, blocking, no threads): an optional
dependency (`pip install 'handcar[systemd]'`), imported only here. Without a bus or without
jeepney, the caller makes the cgroup itself where systemd would have (with a warning);
a bus that answers with an error fails the command, as runc does.
"""

import os
import time

from rootless import log
from rootless.errors import CgroupError

NAME = "org.freedesktop.systemd1"
PATH = "/org/freedesktop/systemd1"
INTERFACE = "org.freedesktop.systemd1.Manager"
JOB_TIMEOUT = 30              # seconds to wait for a job (and a reply), as runc waits
AUTH_TIMEOUT = 5              # seconds for the bus to let us in
SYSTEM_BUS = "/run/dbus/system_bus_socket"
UINT64_MAX = 2**64 - 1        # systemd's "infinity"


def default_slice():
    return "system.slice" if os.geteuid() == 0 else "user.slice"


def bus_address():
    """The D-Bus address of our systemd manager's bus, or None when there is none: the
    session bus for a user (DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus), the
    system bus for root."""
    if os.geteuid() == 0:
        address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
        socket_path = SYSTEM_BUS
    else:
        address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
        runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
        socket_path = os.path.join(runtime_dir, "bus") if runtime_dir else None
    if address:
        return address
    if socket_path and os.path.exists(socket_path):
        return "unix:path=" + socket_path
    return None


def connect(instead):
    """A Manager, or None when there is no bus or no jeepney to reach it with (warning
    that handcar does `instead`). Raises CgroupError when the bus cannot be reached."""
    address = bus_address()
    if address is None:
        why = ("no system D-Bus" if os.geteuid() == 0 else
               "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS, $XDG_RUNTIME_DIR/bus)")
        log.warning(f"{why} to reach systemd with; {instead}")
        return None
    try:
        from jeepney.io.blocking import open_dbus_connection
        from jeepney.wrappers import DBusErrorResponse
    except ImportError:
        log.warning("the jeepney package, which handcar talks to systemd with, is not "
                    f"installed (pip install 'handcar[systemd]'); {instead}")
        return None
    try:
        return Manager(open_dbus_connection(address, auth_timeout=AUTH_TIMEOUT))
    except (OSError, ValueError, RuntimeError, DBusErrorResponse) as err:
        raise CgroupError(f"systemd: cannot connect to D-Bus at {address}: "
                          f"{_describe(err)}") from None


class BusError(CgroupError):
    """A call failed: systemd (or the bus) answered with the D-Bus error `name`, or the
    connection broke (`name` is None)."""

    def __init__(self, what, err):
        self.name = getattr(err, "name", None)
        super().__init__(f"systemd: {what}: {_describe(err)}")


def _describe(err):
    if getattr(err, "name", None):                # a D-Bus error: its name and message
        return f"{err.name}: {' '.join(str(part) for part in err.data)}".strip()
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


class Manager:
    """A connection to systemd's Manager object."""

    def __init__(self, connection):
        from jeepney import DBusAddress
        self.connection = connection
        self.manager = DBusAddress(PATH, bus_name=NAME, interface=INTERFACE)

    def close(self):
        self.connection.close()

    def start_scope(self, unit, slice_name, pid, description, settings):
        """Have systemd make `unit` in `slice_name` with Delegate=yes and move `pid`
        into it; returns once the job is done."""
        properties = scope_properties(slice_name, pid, description) + \
            resource_properties(settings)
        start = (f"starting {unit}", "StartTransientUnit", "ssa(sv)a(sa(sv))", unit,
                 "replace", properties, [])
        try:
            result = self._run_job(*start)
        except BusError as err:
            if err.name != NAME + ".UnitExists":
                raise
            # a failed scope of that name (an OOM-killed container never deleted, say)
            # stays until reset; as runc, reset it and ask once more
            self._reset_failed(unit)
            result = self._run_job(*start)
        if result != "done":
            raise CgroupError(f"systemd: starting {unit}: the job {result}")

    def stop(self, unit):
        """Stop `unit` (systemd kills what is left in it and removes its cgroup) and
        forget it if it failed. Warns rather than raises: the caller removes leftovers."""
        try:
            result = self._run_job(f"stopping {unit}", "StopUnit", "ss", unit, "replace")
            if result != "done":
                log.warning(f"systemd: stopping {unit}: the job {result}")
        except BusError as err:
            if err.name != NAME + ".NoSuchUnit":  # gone already: what we wanted
                log.warning(str(err))
        except CgroupError as err:
            log.warning(str(err))
        self._reset_failed(unit)

    def _reset_failed(self, unit):
        try:
            self._call(f"resetting {unit}", "ResetFailedUnit", "s", unit)
        except CgroupError:
            pass                                  # not failed, or not there

    def set_properties(self, unit, settings):
        """Tell systemd the new limits of `unit` (`update`), so that it keeps them."""
        properties = resource_properties(settings)
        if properties:
            self._call(f"updating {unit}", "SetUnitProperties", "sba(sv)", unit, True,
                       properties)

    def attach(self, unit, pid):
        """Move `pid` into `unit`'s cgroup (systemd >= 238 may, where we may not)."""
        self._call(f"moving process {pid} into {unit}", "AttachProcessesToUnit", "ssau",
                   unit, "", [pid])

    def _call(self, what, method, signature, *args):
        from jeepney import new_method_call
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg
        message = new_method_call(self.manager, method, signature, args)
        try:
            return unwrap_msg(self.connection.send_and_get_reply(message,
                                                                 timeout=JOB_TIMEOUT))
        except TimeoutError:
            raise CgroupError(f"systemd: {what}: no answer within {JOB_TIMEOUT}s") from None
        except (OSError, DBusErrorResponse) as err:
            raise BusError(what, err) from None

    def _run_job(self, what, method, signature, *args):
        """Call a method that queues a job; wait for the job's JobRemoved signal and
        return its result ("done", "failed", "canceled", ...)."""
        from collections import deque
        from jeepney import MatchRule, message_bus
        rule = MatchRule(type="signal", interface=INTERFACE, member="JobRemoved", path=PATH)
        # listen before asking: the job may end before its reply reaches us
        self._call_bus(what, message_bus.AddMatch(rule))
        deadline = time.monotonic() + JOB_TIMEOUT
        with self.connection.filter(rule, queue=deque()) as removed:
            (job,) = self._call(what, method, signature, *args)
            while True:
                try:
                    signal = self.connection.recv_until_filtered(
                        removed, timeout=max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    raise CgroupError(f"systemd: {what}: the job did not finish within "
                                      f"{JOB_TIMEOUT}s") from None
                except OSError as err:
                    raise BusError(what, err) from None
                _job_id, job_path, _unit, result = signal.body
                if job_path == job:
                    return result

    def _call_bus(self, what, message):
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg
        try:
            unwrap_msg(self.connection.send_and_get_reply(message, timeout=JOB_TIMEOUT))
        except (OSError, DBusErrorResponse) as err:
            raise BusError(what, err) from None


# --- properties, as (name, (D-Bus signature, value)): jeepney's variants -----------------

def scope_properties(slice_name, pid, description):
    """What runc asks for a container's scope."""
    return [
        ("Description", ("s", description)),
        ("Slice", ("s", slice_name)),
        ("Delegate", ("b", True)),                # the container's cgroup is ours to manage
        ("PIDs", ("au", [pid])),
        ("DefaultDependencies", ("b", False)),    # no ordering against shutdown.target
        ("MemoryAccounting", ("b", True)),
        ("CPUAccounting", ("b", True)),
        ("IOAccounting", ("b", True)),
        ("TasksAccounting", ("b", True)),
    ]


_SIMPLE = (("memory.max", "MemoryMax"), ("memory.low", "MemoryLow"),
           ("memory.swap.max", "MemorySwapMax"), ("pids.max", "TasksMax"),
           ("cpu.weight", "CPUWeight"))


def resource_properties(settings):
    """The limits (cgroup v2 files -> values) systemd has properties for, so that it
    keeps them when it rewrites the unit's cgroup. handcar writes the files itself too,
    and those systemd has no property for (cpuset, io.max, hugetlb, unified keys)."""
    properties = []
    for file, name in _SIMPLE:
        if file in settings:
            value = settings[file]
            properties.append((name, ("t", UINT64_MAX if value == "max" else int(value))))
    if "cpu.max" in settings:
        quota, period = settings["cpu.max"].split()
        properties.append(("CPUQuotaPerSecUSec", ("t", _quota_per_second(quota, int(period)))))
    weight = settings.get("io.weight")
    if isinstance(weight, str) and weight.startswith("default "):
        properties.append(("IOWeight", ("t", int(weight.split()[1]))))
    return properties


def _quota_per_second(quota, period):
    """cpu.max's quota per period as systemd's CPUQuotaPerSecUSec, rounded up to whole
    percents as runc does (systemd keeps a percentage: rounding down would take away what
    the container's own cpu.max grants)."""
    if quota == "max":
        return UINT64_MAX
    per_second = int(quota) * 1_000_000 // period
    return -(-per_second // 10_000) * 10_000
