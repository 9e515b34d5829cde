"""A stand-in for systemd's user manager, served on a private D-Bus for the
--systemd-cgroup tests: the part of org.freedesktop.systemd1.Manager handcar uses.

    python systemd_mock.py BUS_ADDRESS DELEGATED_ROOT LOG [--fail start|job|UNIT]

StartTransientUnit makes DELEGATED_ROOT/<slice path>/<unit> (a-b.slice is a.slice/a-b.slice),
enables the controllers on the way down (as Delegate=yes does), moves the PIDs in, replies
with a job and emits JobRemoved(id, job, unit, "done"). StopUnit kills what is left in the
unit's cgroup and removes it; AttachProcessesToUnit moves pids into a unit. Every call is
logged to LOG as one JSON line. `--fail start` refuses StartTransientUnit with a D-Bus
error; `--fail job` lets its job fail; `--fail UNIT` starts with UNIT failed (it exists
until ResetFailedUnit).
Prints "ready" once it owns org.freedesktop.systemd1.
"""

import json
import os
import sys
import time

from jeepney import (DBusAddress, HeaderFields, MessageType, message_bus, new_error,
                     new_method_return, new_signal)
from jeepney.io.blocking import open_dbus_connection

NAME = "org.freedesktop.systemd1"
MANAGER = DBusAddress("/org/freedesktop/systemd1", interface=NAME + ".Manager")


class Mock:
    def __init__(self, connection, root, log_path, fail):
        self.connection, self.root, self.log_path, self.fail = connection, root, log_path, fail
        self.units = {}                   # unit -> its cgroup directory
        self.failed = {fail} if fail and fail.endswith(".scope") else set()
        self.jobs = 0

    def serve(self):
        while True:
            message = self.connection.receive()
            if message.header.message_type != MessageType.method_call:
                continue
            method = message.header.fields.get(HeaderFields.member)
            handler = getattr(self, method, None)
            self.log(method, message.body)
            if handler is None:
                self.connection.send(new_error(message, "org.freedesktop.DBus.Error."
                                               "UnknownMethod", "s", (f"no {method} here",)))
                continue
            handler(message, *message.body)

    def log(self, method, body):
        with open(self.log_path, "a") as f:
            f.write(json.dumps({"method": method, "args": body}) + "\n")

    def reply_job(self, message, unit, result):
        """Reply with a job path, then end the job (systemd ends jobs after replying)."""
        self.jobs += 1
        job = f"/org/freedesktop/systemd1/job/{self.jobs}"
        self.connection.send(new_method_return(message, "o", (job,)))
        self.connection.send(new_signal(MANAGER, "JobRemoved", "uoss",
                                        (self.jobs, job, unit, result)))

    def no_such_unit(self, message, unit):
        self.connection.send(new_error(message, NAME + ".NoSuchUnit", "s",
                                       (f"Unit {unit} not loaded.",)))

    def StartTransientUnit(self, message, unit, _mode, properties, _aux):
        if self.fail == "start":
            self.connection.send(new_error(message, "org.freedesktop.DBus.Error.AccessDenied",
                                           "s", ("the mock was told to refuse",)))
            return
        if self.fail == "job":
            self.reply_job(message, unit, "failed")
            return
        if unit in self.units or unit in self.failed:
            self.connection.send(new_error(message, NAME + ".UnitExists", "s",
                                           (f"Unit {unit} already exists.",)))
            return
        values = {name: value for name, (_signature, value) in properties}
        path = self.root
        for part in slice_path(values.get("Slice", "-.slice")) + [unit]:
            enable_controllers(path)
            path = os.path.join(path, part)
            os.makedirs(path, exist_ok=True)
        for pid in values.get("PIDs", []):
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write(str(pid))
        self.units[unit] = path
        self.reply_job(message, unit, "done")

    def StopUnit(self, message, unit, _mode):
        path = self.units.pop(unit, None)
        if path is None:
            self.no_such_unit(message, unit)
            return
        remove_cgroup(path)
        self.reply_job(message, unit, "done")

    def AttachProcessesToUnit(self, message, unit, subcgroup, pids):
        if unit not in self.units:
            self.no_such_unit(message, unit)
            return
        # systemd may move processes where its clients may not (the tests take the right
        # away with a read-only cgroup.procs): the mock, with a client's rights, lifts it
        procs = os.path.join(self.units[unit], subcgroup, "cgroup.procs")
        mode = os.stat(procs).st_mode
        os.chmod(procs, 0o644)
        try:
            for pid in pids:
                with open(procs, "w") as f:
                    f.write(str(pid))
        finally:
            os.chmod(procs, mode)
        self.connection.send(new_method_return(message))

    def ResetFailedUnit(self, message, unit):
        self.failed.discard(unit)
        self.connection.send(new_method_return(message))

    def SetUnitProperties(self, message, unit, _runtime, _properties):
        if unit not in self.units:
            self.no_such_unit(message, unit)
            return
        self.connection.send(new_method_return(message))


def slice_path(slice_name):
    """systemd's directories for a slice: a-b.slice -> a.slice/a-b.slice; -.slice -> none."""
    if slice_name == "-.slice":
        return []
    parts = slice_name[:-len(".slice")].split("-")
    return ["-".join(parts[:i + 1]) + ".slice" for i in range(len(parts))]


def enable_controllers(path):
    with open(os.path.join(path, "cgroup.controllers")) as f:
        available = f.read().split()
    for controller in available:
        try:
            with open(os.path.join(path, "cgroup.subtree_control"), "w") as f:
                f.write(f"+{controller}")
        except OSError:
            pass


def remove_cgroup(path):
    """What systemd does to a stopped scope: kill what is left, remove the cgroup (and the
    ones made inside it)."""
    if os.path.exists(os.path.join(path, "cgroup.kill")):
        with open(os.path.join(path, "cgroup.kill"), "w") as f:
            f.write("1")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(os.path.join(path, "cgroup.events")) as f:
            if "populated 0" in f.read().splitlines():
                break
        time.sleep(0.01)
    for directory, _subdirectories, _files in os.walk(path, topdown=False):
        os.rmdir(directory)


def main():
    address, root, log_path, *options = sys.argv[1:]
    fail = options[1] if options[:1] == ["--fail"] else None
    connection = open_dbus_connection(address)
    connection.send_and_get_reply(message_bus.RequestName(NAME))
    print("ready", flush=True)
    Mock(connection, root, log_path, fail).serve()


if __name__ == "__main__":
    main()
