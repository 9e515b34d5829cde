"""The parent side of the container lifecycle: create, start, kill, delete and run.

See init.py for the child side and the three-process protocol.
"""

import os
import select
import signal
import sys
import time
from dataclasses import dataclass

from oci import spec as oci_spec
from . import libc, log, userns
from .channel import Channel
from .errors import HandcarError, NotFound, SetupError, SpecError, WrongStatus
from .init import Launch, intermediate, run_child
from .store import process_start_time, user_name, write_atomic

CHILD_TIMEOUT = 60          # seconds a child may take for one step before we give up
STOP_TIMEOUT = 10           # seconds to wait for a killed init to disappear
FORWARDED_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM,
                     signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGCONT,
                     signal.SIGWINCH)


@dataclass(frozen=True)
class CreateOptions:
    pid_file: str | None = None
    console_socket: str | None = None
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0


def load_bundle(bundle):
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        raise HandcarError(f"no config.json in bundle {bundle}") from None
    except OSError as err:
        raise HandcarError(f"reading {path}: {err.strerror}") from None
    return oci_spec.loads(text, source=path)


def _check_runnable(spec, bundle, options):
    """Problems the spec layer cannot see: the rootfs, the namespaces a runtime needs."""
    problems = []
    rootfs = os.path.join(bundle, spec.root_path)
    if not os.path.isdir(rootfs):
        problems.append(f"root.path: {rootfs} is not a directory")
    if not spec.linux.namespace("mount"):
        problems.append("linux.namespaces: a mount namespace is required")
    if spec.process.terminal and not options.console_socket:
        problems.append("process.terminal: true needs --console-socket "
                        "(or set terminal to false)")
    if problems:
        raise SpecError(problems, os.path.join(bundle, "config.json"))
    return os.path.realpath(rootfs)


def create(store, container_id, bundle, options):
    """Create a container and leave its init waiting for `start`; returns its Record
    (still locked) and the channel to its init."""
    bundle = os.path.realpath(bundle)
    store.path(container_id)                       # refuse a bad id before anything else
    spec = load_bundle(bundle)
    rootfs = _check_runnable(spec, bundle, options)
    mapping = userns.plan(spec.linux, os.geteuid(), os.getegid(), user_name(os.geteuid()))
    record = store.reserve(container_id, bundle, spec.annotations)
    init_pid = fifo_fd = 0
    try:
        record.save(rootfs=rootfs)
        os.mkfifo(record.fifo_path, 0o622)
        os.chmod(record.fifo_path, 0o622)         # writable by the container's user
        fifo_fd = os.open(record.fifo_path, os.O_PATH | os.O_CLOEXEC)
        launch = Launch(container_id=container_id, spec=spec, bundle=bundle, rootfs=rootfs,
                        mapping=mapping, fifo_fd=fifo_fd, parent_pid=os.getpid(),
                        preserve_fds=options.preserve_fds, no_pivot=options.no_pivot,
                        no_new_keyring=options.no_new_keyring)
        channel, init_pid = _spawn(launch)
        record.save(status="created", pid=init_pid,
                    start_time=process_start_time(init_pid))
        if options.pid_file:
            write_atomic(os.path.abspath(options.pid_file), f"{init_pid}", 0o644)
        channel.send("go")
        return record, channel
    except BaseException:
        if init_pid:
            _kill_quietly(init_pid)
        record.remove()
        raise
    finally:
        if fifo_fd:
            os.close(fifo_fd)


def _spawn(launch):
    """Fork the intermediate, answer it, and return (channel, init pid) once init is ready."""
    parent_end, child_end = Channel.pair()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        parent_end.close()
        run_child(child_end, intermediate, launch)
    child_end.close()
    init_pid = 0
    try:
        ready = False
        while not (ready and init_pid):
            message, _ = parent_end.receive(CHILD_TIMEOUT)
            kind = message and message["type"]
            if message is None:
                raise SetupError("the container's process exited before it was ready")
            elif kind == "userns":
                userns.apply(launch.mapping, pid)
                parent_end.send("mapped")
            elif kind == "init":
                init_pid = message["pid"]
                os.waitpid(pid, 0)
                pid = 0
            elif kind == "ready":
                ready = True
            elif kind == "warning":
                log.warning(message["msg"])
            elif kind == "debug":
                log.debug(message["msg"])
            elif kind == "error":
                raise SetupError(message["msg"])
        return parent_end, init_pid
    except BaseException:
        for child in (pid, init_pid):
            if child:
                _kill_quietly(child)
        if pid:
            os.waitpid(pid, 0)
        parent_end.close()
        raise


def _kill_quietly(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start(store, container_id):
    record = store.open(container_id)
    try:
        status = record.status()
        if status != "created":
            raise WrongStatus(f"cannot start a container that is {status}"
                              if status != "running" else
                              f"container {container_id} is already running")
        _release_init(record)
    finally:
        record.unlock()


def _release_init(record):
    """Open exec.fifo for reading, which lets init (blocked opening it for writing) go on
    to exec; init writes one byte once it has the fifo open."""
    fd = os.open(record.fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(100) and os.read(fd, 1) == b"0":
                break
            if not record.init_alive():
                raise SetupError("cannot start: the container's init has exited")
    finally:
        os.close(fd)
    os.unlink(record.fifo_path)


def parse_signal(text):
    name = text.upper()
    if name.isdigit():
        number = int(name)
        if number <= 0 or number >= signal.NSIG:
            raise HandcarError(f"invalid signal {text}")
        return number
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise HandcarError(f"unknown signal {text!r}") from None


def kill(store, container_id, signum, all_processes=False):
    record = store.open(container_id, lock=False)
    status = record.status()
    if status not in ("created", "running", "paused"):
        raise WrongStatus(f"cannot kill container {container_id}: it is {status}")
    if all_processes:
        for pid in _container_pids(record):
            _signal(pid, signum)
    else:
        _signal(record.pid, signum)


def _signal(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _container_pids(record):
    """The init and every process in its pid namespace (init last). Without a private
    pid namespace only the init can be told apart from the host's processes."""
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


def delete(store, container_id, force=False):
    try:
        record = store.open(container_id)
    except NotFound:
        if force:
            return                        # as runc: nothing to delete is fine with --force
        raise
    try:
        status = record.status()
        if status in ("running", "paused") and not force:
            raise WrongStatus(f"cannot delete container {container_id} that is not stopped: "
                              f"{status} (use --force)")
        if status != "stopped":
            _stop(record)
        record.remove()
    finally:
        record.unlock()


def _stop(record):
    for pid in _container_pids(record):
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT
    while record.init_alive():
        if time.monotonic() > deadline:
            raise HandcarError(f"container {record.id}: init {record.pid} did not die "
                               f"within {STOP_TIMEOUT}s of SIGKILL")
        time.sleep(0.005)


def run(store, container_id, bundle, options, detach=False, keep=False):
    """create + start; in the foreground, wait and return the container's exit status."""
    if not detach:
        # Adopt the init when the intermediate exits, so we can wait for it.
        libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
    record, channel = create(store, container_id, bundle, options)
    try:
        _release_init(record)
    except BaseException:
        _kill_quietly(record.pid)
        record.remove()
        raise
    finally:
        record.unlock()
    if detach:
        channel.close()
        return 0
    try:
        status = _wait_foreground(record.pid, channel)
    finally:
        if not keep:
            delete(store, container_id, force=True)
    return status


def _wait_foreground(pid, channel):
    """Forward signals to the container until its init exits; its exit status, 128+N
    when killed by signal N. Reports an exec failure the init sends on the channel."""
    previous = {}
    for signum in FORWARDED_SIGNALS:
        previous[signum] = signal.signal(signum, lambda s, _f: _signal(pid, s))
    try:
        while True:
            child, wait_status = os.waitpid(-1, 0)
            if child == pid:
                break
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    try:
        message, _ = channel.receive(0)
    except BlockingIOError:
        message = None
    channel.close()
    if message and message["type"] == "error":
        log.error(message["msg"])
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code
