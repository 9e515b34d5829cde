"""A container's processes from outside: naming signals, sending them, finding them."""

import os

from rootless.errors import HandcarError

SIGKILL = 9                 # the same on every Linux architecture (and no enum to import)


def parse_signal(text):
    import _signal   # the signal module's C half: the numbers, without its enum import
    name = text.upper()
    if name.isdigit():
        number = int(name)
        if number <= 0 or number >= _signal.NSIG:
            raise HandcarError(f"invalid signal {text}")
        return number
    if not name.startswith("SIG"):
        name = "SIG" + name
    number = getattr(_signal, name, None)
    if name.startswith("SIG_") or not isinstance(number, int):
        raise HandcarError(f"unknown signal {text!r}")
    return number


def send_signal(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def container_pids(record):
    """The container's processes: its cgroup's, or else the init and every process in
    its pid namespace (init last). Without either, only the init can be told apart."""
    from rootless.runtime.cgroup_manager import of
    cgroup = of(record).cgroup
    if cgroup and cgroup.exists():
        return cgroup.pids()
    pids = []
    try:
        own_ns = os.readlink(f"/proc/{record.pid}/ns/pid")
    except OSError:
        return [record.pid]
    if own_ns == os.readlink("/proc/self/ns/pid"):
        return [record.pid]
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != record.pid:
            try:
                if os.readlink(f"/proc/{name}/ns/pid") == own_ns:
                    pids.append(int(name))
            except OSError:
                continue
    return pids + [record.pid]
