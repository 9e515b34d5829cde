"""--systemd-cgroup without a bus: unit names from cgroupsPath, slice paths, the D-Bus
properties handcar asks systemd for and how they are marshalled (jeepney)."""

import os

import pytest

from rootless.runtime import cgroups
from rootless.runtime import systemd
from rootless.errors import CgroupError

jeepney = pytest.importorskip("jeepney", reason="jeepney (the test extra) is not installed")


def test_systemd_unit_reads_cgroups_path_as_runc_does():
    assert cgroups.systemd_unit("", "c1") == ("user.slice", "handcar-c1.scope")
    assert cgroups.systemd_unit("", "c1", "system.slice") == ("system.slice", "handcar-c1.scope")
    assert cgroups.systemd_unit("user.slice:libpod:abc", "c1") == ("user.slice",
                                                                   "libpod-abc.scope")
    assert cgroups.systemd_unit(":p:n", "c1") == ("user.slice", "p-n.scope")
    assert cgroups.systemd_unit("a-b.slice::n", "c1") == ("a-b.slice", "n.scope")


@pytest.mark.parametrize("path, why", [
    ("/a/b", "need the form slice:prefix:name"),
    ("a.slice:b", "need the form slice:prefix:name"),
    ("a.slice:p:", "need the form slice:prefix:name"),
    ("a.slice:p:n.slice", "must name a scope"),
    ("a:p:n", "'a' is not a systemd slice name"),
    ("a--b.slice:p:n", "not a systemd slice name"),
    ("-a.slice:p:n", "not a systemd slice name"),
    ("a/b.slice:p:n", "not a systemd slice name"),
])
def test_bad_systemd_cgroups_paths(path, why):
    with pytest.raises(CgroupError, match=why):
        cgroups.systemd_unit(path, "c1")


def test_expand_slice():
    assert cgroups.expand_slice("-.slice") == ""
    assert cgroups.expand_slice("user.slice") == "/user.slice"
    assert cgroups.expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"


def test_scope_properties_are_runcs():
    assert systemd.scope_properties("user.slice", 42, "handcar container c1") == [
        ("Description", ("s", "handcar container c1")),
        ("Slice", ("s", "user.slice")),
        ("Delegate", ("b", True)),
        ("PIDs", ("au", [42])),
        ("DefaultDependencies", ("b", False)),
        ("MemoryAccounting", ("b", True)),
        ("CPUAccounting", ("b", True)),
        ("IOAccounting", ("b", True)),
        ("TasksAccounting", ("b", True)),
    ]


def test_resource_properties_from_cgroup_files():
    settings = {"memory.max": "33554432", "memory.low": "max", "memory.swap.max": "0",
                "pids.max": "max", "cpu.weight": "39", "cpu.max": "33333 100000",
                "io.weight": "default 100", "hugetlb.2MB.max": "0", "cpuset.cpus": "0"}
    assert systemd.resource_properties(settings) == [
        ("MemoryMax", ("t", 33554432)), ("MemoryLow", ("t", 2**64 - 1)),
        ("MemorySwapMax", ("t", 0)), ("TasksMax", ("t", 2**64 - 1)), ("CPUWeight", ("t", 39)),
        # 333330 us per second, rounded up to whole percents as runc does
        ("CPUQuotaPerSecUSec", ("t", 340000)),
        ("IOWeight", ("t", 100)),
    ]
    assert systemd.resource_properties({"cpu.max": "max 100000"}) == [
        ("CPUQuotaPerSecUSec", ("t", 2**64 - 1))]
    assert systemd.resource_properties({"cpu.max": "50000 50000"}) == [
        ("CPUQuotaPerSecUSec", ("t", 1000000))]
    # per-device weights have no single property: the files alone carry them
    assert systemd.resource_properties({"io.weight": ("default 100", "8:0 200")}) == []


class RecordingConnection:
    """Stands in for jeepney's blocking connection: marshals each call to bytes and back
    (what the bus would receive), answers StartTransientUnit with a job and its
    JobRemoved signal, as systemd does."""

    def __init__(self, result="done"):
        self.calls = []
        self.result = result
        self.queues = []

    def send_and_get_reply(self, message, timeout=None):
        from jeepney import Parser, new_method_return, new_signal, DBusAddress
        parser = Parser()
        parser.add_data(message.serialise(serial=len(self.calls) + 1))
        received = parser.get_next_message()
        self.calls.append(received)
        member = received.header.fields[jeepney.HeaderFields.member]
        if member == "StartTransientUnit":
            job = "/org/freedesktop/systemd1/job/7"
            signal = new_signal(DBusAddress(systemd.PATH, interface=systemd.INTERFACE),
                                "JobRemoved", "uoss", (7, job, received.body[0], self.result))
            for queue in self.queues:
                queue.append(signal)
            return new_method_return(received, "o", (job,))
        return new_method_return(received)

    def filter(self, rule, queue):
        self.queues.append(queue)
        return _Handle(queue)

    def recv_until_filtered(self, queue, timeout=None):
        if not queue:
            raise TimeoutError
        return queue.popleft()


class _Handle:
    def __init__(self, queue):
        self.queue = queue

    def __enter__(self):
        return self.queue

    def __exit__(self, *_exc):
        return False


def test_start_scope_marshals_start_transient_unit():
    connection = RecordingConnection()
    manager = systemd.Manager(connection)
    manager.start_scope("handcar-c1.scope", "user.slice", 42, "handcar container c1",
                        {"pids.max": "20"})
    add_match, start = connection.calls
    assert add_match.header.fields[jeepney.HeaderFields.member] == "AddMatch"
    assert "member='JobRemoved'" in add_match.body[0]
    fields = start.header.fields
    assert fields[jeepney.HeaderFields.destination] == "org.freedesktop.systemd1"
    assert fields[jeepney.HeaderFields.path] == "/org/freedesktop/systemd1"
    assert fields[jeepney.HeaderFields.interface] == "org.freedesktop.systemd1.Manager"
    assert fields[jeepney.HeaderFields.signature] == "ssa(sv)a(sa(sv))"
    unit, mode, properties, aux = start.body
    assert (unit, mode, aux) == ("handcar-c1.scope", "replace", [])
    assert dict(properties)["PIDs"] == ("au", [42])
    assert dict(properties)["Delegate"] == ("b", True)
    assert dict(properties)["TasksMax"] == ("t", 20)


def test_a_failed_job_is_an_error():
    manager = systemd.Manager(RecordingConnection(result="failed"))
    with pytest.raises(CgroupError, match="^systemd: starting x.scope: the job failed$"):
        manager.start_scope("x.scope", "user.slice", 42, "d", {})


def test_no_bus_no_manager(monkeypatch, capsys):
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/nonexistent")
    monkeypatch.setattr(systemd, "SYSTEM_BUS", "/nonexistent/bus")
    assert systemd.bus_address() is None
    assert systemd.connect("doing it directly") is None
    assert capsys.readouterr().err.endswith("to reach systemd with; doing it directly\n")


def test_without_jeepney_no_manager(monkeypatch, capsys):
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent")
    monkeypatch.setitem(__import__("sys").modules, "jeepney.io.blocking", None)
    assert systemd.connect("doing it directly") is None
    assert "the jeepney package" in capsys.readouterr().err


def test_a_bus_that_cannot_be_reached_is_an_error(monkeypatch, tmp_path):
    address = f"unix:path={tmp_path}/bus"
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
    with pytest.raises(CgroupError, match=f"^systemd: cannot connect to D-Bus at {address}: "
                                          "No such file or directory$"):
        systemd.connect("doing it directly")
    assert not os.path.exists(tmp_path / "bus")
