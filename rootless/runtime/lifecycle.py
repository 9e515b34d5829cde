"""The verbs on a container that exists: start, kill, delete, pause, resume, update, stats
and events. start, kill and delete are hot verbs: what only create, run and exec need
(fork machinery, hooks, terminals) is not imported here."""

import os
import time

from rootless import log
from rootless.errors import HandcarError, NotFound, SetupError, WrongStatus
from rootless.runtime import cgroups
from rootless.runtime import cgroup_manager
from rootless.runtime.processes import SIGKILL, container_pids, send_signal
from rootless.runtime.store import ALIVE, CREATED, CREATING, PAUSED, RUNNING, STOPPED

STOP_TIMEOUT = 10           # seconds to wait for a killed init to disappear


def start(store, container_id):
    record = store.open(container_id)
    try:
        status = record.status()
        if status != CREATED:
            raise WrongStatus(f"cannot start a container that is {status}"
                              if status != RUNNING else
                              f"container {container_id} is already running")
        wait_until_ready = let_run(record)
    finally:
        record.unlock()
    if wait_until_ready:
        wait_until_ready()


def let_run(record):
    """Let the process run, and its poststart hooks. Returns what is left to do once the
    container's lock is released (waiting for READY=1 when the caller set NOTIFY_SOCKET),
    or None."""
    host_notify = record.data.get("notify_socket")
    if host_notify:
        from rootless.runtime import notify
        notify_socket = notify.listen(record)
    else:
        notify_socket = None
    _release_init(record)
    if "poststart" in record.data.get("hooks", ()):
        _run_warning_hooks(record, "poststart", RUNNING)
    if notify_socket:
        return lambda: notify.forward_ready(notify_socket, record, host_notify)
    return None


def _run_warning_hooks(record, kind, status):
    from rootless.runtime import hooks
    try:
        hooks.run_warning(record.load_spec().hooks, kind, record.state(status).to_json(),
                          log.warning)
    except HandcarError as err:           # the saved config could not be read back
        log.warning(str(err))


def _release_init(record):
    """Open exec.fifo for reading, which lets init (blocked opening it for writing) go on;
    it answers "0" when it is about to exec, or "E<why>" when a startContainer hook failed."""
    import select
    fd = os.open(record.fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(100):
                answer = os.read(fd, 4096)
                if answer == b"0":
                    break
                if answer.startswith(b"E"):
                    raise SetupError(answer[1:].decode(errors="replace"))
            if not record.init_alive():
                raise SetupError("cannot start: the container's init has exited")
    finally:
        os.close(fd)
        os.unlink(record.fifo_path)


def kill(store, container_id, signum, all_processes=False):
    """Signal the container's init, or with --all every process it has. As runc: --all of
    a stopped container signals its (no) processes and succeeds; a plain kill of one fails
    with runc's "container not running", the words engines (containerd's shim, CRI-O) take
    for "already gone" when they race a container's exit."""
    record = store.open(container_id, lock=False)
    status = record.status()
    cgroup = cgroup_manager.of(record).cgroup
    if status == STOPPED and all_processes:
        if cgroup and cgroup.exists():
            cgroup.kill(signum)           # what its init left behind, as runc signals it
        return
    if status not in ALIVE:
        raise WrongStatus(f"cannot kill container {container_id}: container not running "
                          f"(it is {status})")
    if all_processes and cgroup:
        cgroup.kill(signum)
    elif all_processes:
        for pid in container_pids(record):
            send_signal(pid, signum)
    else:
        send_signal(record.pid, signum)


def delete(store, container_id, force=False):
    try:
        record = store.open(container_id)
    except NotFound:
        if force:
            return                        # as runc: nothing to delete is fine with --force
        raise
    try:
        status = record.status()
        if status in (RUNNING, PAUSED) and not force:
            raise WrongStatus(f"cannot delete container {container_id} that is not stopped: "
                              f"{status} (use --force)")
        if status != STOPPED:
            _stop(record)
        from rootless.runtime import network    # (delete alone needs it)
        network.stop(record)
        if record.data.get("root_mount"):             # fuse-overlayfs: runtime/fuse_root.py
            from rootless.runtime import fuse_root
            fuse_root.stop(record)
        cgroup_manager.of(record).destroy()
        if "poststop" in record.data.get("hooks", ()) and record.data["status"] != CREATING:
            _run_warning_hooks(record, "poststop", STOPPED)
        record.remove()
    finally:
        record.unlock()


def _stop(record):
    cgroup = cgroup_manager.of(record).cgroup
    if cgroup and cgroup.exists():
        cgroup.kill()
        if cgroup.frozen():
            cgroup.freeze(False)          # let the killed processes run to their end
    for pid in container_pids(record):
        send_signal(pid, SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT
    while record.init_alive():
        if time.monotonic() > deadline:
            raise HandcarError(f"container {record.id}: init {record.pid} did not die "
                               f"within {STOP_TIMEOUT}s of SIGKILL")
        time.sleep(0.005)


def pause(store, container_id):
    _freeze(store, container_id, True)


def resume(store, container_id):
    _freeze(store, container_id, False)


def _freeze(store, container_id, frozen):
    verb, wanted = ("pause", RUNNING) if frozen else ("resume", PAUSED)
    record = store.open(container_id)
    try:
        status = record.status()
        if status != wanted:
            raise WrongStatus(f"cannot {verb} container {container_id}: it is {status}")
        cgroup_manager.require(record, verb).freeze(frozen)
    finally:
        record.unlock()


def update(store, container_id, settings):
    """Change a running container's limits (cgroup v2 file -> value)."""
    record = store.open(container_id)
    try:
        status = record.status()
        if status not in ALIVE:
            raise WrongStatus(f"cannot update container {container_id}: it is {status}")
        cgroup_manager.require(record, "update")
        cgroup_manager.of(record).update(container_id, settings)
    finally:
        record.unlock()


def stats(store, container_id):
    """runc's stats event for a container: {"type": "stats", "id": ..., "data": {...}}."""
    record = store.open(container_id, lock=False)
    status = record.status()
    if status == STOPPED:
        raise WrongStatus(f"container {container_id} is stopped")
    cgroup = cgroup_manager.require(record, "read the stats of")
    return {"type": "stats", "id": container_id, "data": cgroups.stats(cgroup)}


def events(store, container_id, interval, emit):
    """Emit a stats event every `interval` seconds and an oom event whenever the kernel
    OOM-kills in the container, until it stops."""
    record = store.open(container_id, lock=False)
    cgroup = cgroup_manager.require(record, "watch")
    oom_kills = cgroups.oom_kills(cgroup)
    while record.status() != STOPPED:
        emit(stats(store, container_id))
        deadline = time.monotonic() + interval
        while time.monotonic() < deadline and record.init_alive():
            count = cgroups.oom_kills(cgroup)
            if count > oom_kills:
                oom_kills = count
                emit({"type": "oom", "id": container_id})
            time.sleep(min(0.2, interval))
