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


# --- the processes handcar starts beside a container (slirp4netns, fuse-overlayfs) -----------

STOP_TIMEOUT = 5                       # seconds for killed helpers to disappear


def hold_until_exit(pidfd, keep):
    """A watcher's last part: let go of the caller's stdio and fds (all but `keep`),
    leave its session, and return once the process behind `pidfd` has exited."""
    import select
    from rootless.system.channel import close_fds_from
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):                  # hold none of the caller's pipes or terminal
        os.dup2(null, fd)
    close_fds_from(3, keep=set(keep) | {pidfd})
    os.setsid()
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    while not poller.poll():
        pass


def stop_recorded(container_id, processes, wait=True):
    """Kill the processes of `processes` ({name: [pid, start time]}, as a record keeps
    them) that still run, and (unless not `wait`) wait until they are gone."""
    import time
    from rootless.runtime.store import process_start_time
    running = []
    for name, (pid, start_time) in processes.items():
        if pid and start_time is not None and process_start_time(pid) == start_time:
            try:
                os.kill(pid, SIGKILL)
                running.append((name, pid, start_time))
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, pid, start_time in running if wait else ():
        while process_start_time(pid) == start_time:
            if time.monotonic() > deadline:
                raise HandcarError(f"container {container_id}: {name} (pid {pid}) did not "
                                   f"exit within {STOP_TIMEOUT}s of SIGKILL")
            time.sleep(0.005)
