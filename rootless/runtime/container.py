"""The parent side of the container lifecycle: create, start, exec, kill, delete and run.

See init.py for the child side and the three-process protocol.
"""

import os
import sys
import time

from oci.record import Record
from rootless.runtime.cgroups import cgroupfs as cgroups
from rootless import log
from rootless.errors import HandcarError, NotFound, SetupError, SpecError, WrongStatus, step
from rootless.runtime.store import process_start_time, user_name, write_atomic

# start, kill and delete are hot verbs that need little of this module: what only create,
# run and exec need (fork machinery, hooks, terminals) is imported where it is used.

CHILD_TIMEOUT = 60          # seconds a child may take for one step before we give up
STOP_TIMEOUT = 10           # seconds to wait for a killed init to disappear
FORWARDED_SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2",
                     "SIGALRM", "SIGCONT", "SIGWINCH")
CREATE_HOOKS = ("prestart", "createRuntime", "createContainer")


class CreateOptions(Record):
    FIELDS = {
        "pid_file": None,
        "console_socket": None,
        "no_pivot": False,
        "no_new_keyring": False,
        "preserve_fds": 0,
        "systemd": False,         # --systemd-cgroup: ask systemd for a scope
        "cgroup": True,        # False: --cgroup-manager disabled, no cgroup of its own
    }


class ExecOptions(Record):
    FIELDS = {
        "pid_file": None,
        "console_socket": None,
        "detach": False,
        "preserve_fds": 0,
        "ignore_paused": False,
    }


def _stage(name):
    """A named point of create: HANDCAR_STOP_AT=name stops handcar there (SIGSTOP), for
    the fault tests (tests/integration/test_faults.py) to kill it at that point."""
    if os.environ.get("HANDCAR_STOP_AT") == name:
        os.kill(os.getpid(), 19)          # SIGSTOP, the same on every Linux architecture


def load_bundle(bundle):
    """(config.json text, Spec) of a bundle."""
    from oci import spec as oci_spec
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        raise HandcarError(f"no config.json in bundle {bundle}") from None
    except OSError as err:
        raise HandcarError(f"reading {path}: {err.strerror}") from None
    return text, oci_spec.loads(text, source=path)


def _check_preserved_fds(count):
    """--preserve-fds N passes fds 3..3+N-1: they must be the caller's, not whatever of
    ours would take their numbers."""
    for fd in range(3, 3 + count):
        try:
            os.fstat(fd)
        except OSError:
            raise HandcarError(f"--preserve-fds {count}: fd {fd} is not open") from None


def _check_runnable(spec, bundle):
    """Problems the spec layer cannot see: the rootfs, the namespaces a runtime needs."""
    problems = []
    rootfs = os.path.join(bundle, spec.root_path)
    if not os.path.isdir(rootfs):
        problems.append(f"root.path: {rootfs} is not a directory")
    if not spec.linux.namespace("mount"):
        problems.append("linux.namespaces: a mount namespace is required")
    if problems:
        raise SpecError(problems, os.path.join(bundle, "config.json"))
    return os.path.realpath(rootfs)


class Console:
    """Where a process's pty master goes: the caller's --console-socket, or (foreground
    run/exec) a socketpair whose other end we keep, to proxy the caller's terminal."""

    def __init__(self, child_end=None, our_end=None):
        self.child_end = child_end
        self.our_end = our_end
        self.master = None

    @classmethod
    def open(cls, process, console_socket, foreground):
        if not process.terminal:
            if console_socket:
                raise HandcarError("--console-socket is only for a process with "
                                   "terminal: true")
            return cls()
        from rootless.runtime import terminal
        if console_socket:
            return cls(terminal.connect_console_socket(console_socket))
        if foreground:
            import socket
            ours, theirs = socket.socketpair()
            return cls(theirs, ours)
        raise HandcarError("process.terminal is true: a detached container needs "
                           "--console-socket to hand its pty to (or set terminal to false)")

    @property
    def child_fd(self):
        return self.child_end.fileno() if self.child_end else -1

    def child_started(self):
        """After the child has its end: drop ours of it, and take the master if it's ours."""
        if self.child_end:
            self.child_end.close()
            self.child_end = None
        if self.our_end:
            from rootless.runtime import terminal
            self.master = terminal.receive_master(self.our_end)
            self.our_end.close()
            self.our_end = None

    def close(self):
        for end in (self.child_end, self.our_end):
            if end:
                end.close()
        if self.master is not None:
            os.close(self.master)


def _socket_activation():
    """(env, count) for the fds systemd passed us by socket activation, as runc passes
    them on: fds 3..3+count-1, LISTEN_FDS=count, LISTEN_PID=1."""
    try:
        count = int(os.environ.get("LISTEN_FDS", ""))
        listen_pid = int(os.environ.get("LISTEN_PID", ""))
    except ValueError:
        return (), 0
    if listen_pid != os.getpid() or count <= 0:
        return (), 0
    return (f"LISTEN_FDS={count}", "LISTEN_PID=1"), count


def create(store, container_id, bundle, options, foreground=False):
    """Create a container and leave its init waiting for `start`. Returns its Record
    (still locked), the channel to its init and its Console."""
    from oci.resources import controllers
    from rootless.runtime import userns
    from rootless.child.init import Launch
    bundle = os.path.realpath(bundle)
    store.path(container_id)                       # refuse a bad id before anything else
    _check_preserved_fds(options.preserve_fds)
    text, spec = load_bundle(bundle)
    rootfs = _check_runnable(spec, bundle)
    network = _network_setup(spec, bundle, store)
    if network:
        spec = network.prepare(spec)               # handcar networks: their user namespace
    mapping = userns.plan(spec.linux, os.geteuid(), os.getegid(), user_name(os.geteuid()))
    settings = spec.linux.cgroup_settings
    scope, cgroups_path = None, spec.linux.cgroups_path
    if options.systemd and options.cgroup:
        scope, cgroups_path = _systemd_scope(cgroups_path, container_id, settings)
    placement = None if scope else cgroups.plan_leaf(cgroups_path, container_id,
                                                     controllers(settings),
                                                     enabled=options.cgroup)
    if placement:
        _refuse_a_used_cgroup(store, container_id, placement[1])
    console = Console.open(spec.process, options.console_socket, foreground)
    try:
        # the cgroup is in the record before it exists: _discard (or a later delete, if
        # we die) finds it there
        record = store.reserve(container_id, bundle, spec.annotations, rootfs=rootfs,
                               cgroup=placement[1] if placement else None,
                               hooks=sorted(kind for kind, hs in spec.hooks.items() if hs))
    except BaseException:
        console.close()
        raise
    _stage("reserved")
    init_pid = fifo_fd = 0
    cgroup = listener = None
    try:
        if placement:
            cgroup = _make_cgroup(placement, settings)
        write_atomic(record.config_path, text)
        os.mkfifo(record.fifo_path, 0o622)
        os.chmod(record.fifo_path, 0o622)         # writable by the container's user
        fifo_fd = os.open(record.fifo_path, os.O_PATH | os.O_CLOEXEC)
        extra_env, listen_count = _socket_activation()
        launch_spec = spec
        if os.environ.get("NOTIFY_SOCKET", "").startswith("/"):
            from rootless.runtime import notify
            mount, env = notify.prepare(record)
            launch_spec = spec.replace(mounts=spec.mounts + (mount,))
            extra_env += env
            record.save(notify_socket=os.environ["NOTIFY_SOCKET"])
        listener = _seccomp_listener(spec)
        launch = Launch(container_id=container_id, spec=launch_spec, bundle=bundle,
                        parent_pid=os.getpid(),
                        caller_ids=(os.geteuid(), os.getegid()), rootfs=rootfs, mapping=mapping,
                        fifo_fd=fifo_fd, console_fd=console.child_fd, extra_env=extra_env,
                        listener_fd=listener.fileno() if listener else -1,
                        pass_fds=listen_count + options.preserve_fds,
                        no_pivot=options.no_pivot, no_new_keyring=options.no_new_keyring,
                        pause_for_hooks=any(spec.hooks.get(kind) for kind in CREATE_HOOKS),
                        send_namespaces=bool(network))

        def run_create_hooks(pid):
            from rootless.runtime import hooks
            state = record.state("creating", pid).to_json()
            hooks.run(spec.hooks, "prestart", state)
            hooks.run(spec.hooks, "createRuntime", state)
            return state

        _stage("spawning")
        channel, init_pid = _spawn(launch, run_create_hooks, cgroup,
                                   place=scope and (lambda pid: scope.start(record, pid)),
                                   on_init=network and network.take_namespaces)
        _stage("ready")
        if network:
            network.attach(record, init_pid)
        console.child_started()
        record.save(status="created", pid=init_pid, start_time=process_start_time(init_pid))
        if options.pid_file:
            write_atomic(os.path.abspath(options.pid_file), f"{init_pid}", 0o644)
        _stage("created")
        # the OCI state document, only for those who read it (its module costs ~0.4 ms)
        hooked = bool(spec.hooks.get("startContainer"))
        state = record.state("created").to_json() if hooked or listener else None
        channel.send("go", state=state if hooked else None,
                     listener_state=_listener_state(spec, state, init_pid) if listener else None)
        return record, channel, console
    except BaseException:
        if network:
            network.close()
        _discard(record, init_pid)
        console.close()
        raise
    finally:
        if fifo_fd:
            os.close(fifo_fd)
        if scope:
            scope.manager.close()
        if listener:
            listener.close()


def _seccomp_listener(spec):
    """A connection to the seccomp agent at linux.seccomp.listenerPath, for a filter with
    SCMP_ACT_NOTIFY (the process sends the notify fd there), or None."""
    seccomp = spec.linux.seccomp
    if seccomp is None or not seccomp.uses_notify():
        return None
    from rootless.child.seccomp import connect_listener
    return connect_listener(seccomp.listener_path)


def _listener_state(spec, state, pid):
    """What the seccomp agent gets with the notify fd of process `pid`, as JSON."""
    from oci import jsonio
    from oci.state import process_state
    return jsonio.dumps(process_state(state, pid, spec.linux.seccomp.listener_metadata))


def _discard(record, pid):
    """Undo a container that failed to come up: its process, cgroup and state. Never
    raises: the failure that brought us here is the one the user needs to see."""
    if pid:
        _send_signal(pid, cgroups.SIGKILL)
    _stop_systemd_unit(record)
    cgroup = cgroup_of(record)
    if cgroup:
        try:
            cgroup.remove()
        except HandcarError as err:
            log.warning(f"left cgroup {cgroup.path} behind: {err}")
    try:
        _stop_network(record)
    except HandcarError as err:
        log.warning(str(err))
    record.remove()


# --- network (rootless/network/, imported only for a container that has one) -------------

def _network_setup(spec, bundle, store):
    """The network set-up for a spec with a network annotation (checked before anything
    is reserved): slirp4netns's (handcar.network) or handcar networks' (handcar.networks);
    else None: a new network namespace alone needs nothing here (its init brings lo up)."""
    from oci.network import settings
    wanted = settings(spec, os.path.join(bundle, "config.json"))
    if wanted is None:
        return None
    if wanted.networks:
        from rootless.network import client
        return client.Setup(wanted, store.root)
    if wanted.network is None:
        return None
    from rootless.network import slirp as network
    return network.Setup(wanted)


def _stop_network(record):
    """Stop what runs for the container's network (slirp4netns) if anything does; tell
    the network daemon a container on its networks is gone."""
    if record.data.get("network"):
        from rootless.network import slirp as network
        network.stop(record)
    if record.data.get("networks") is not None:
        from rootless.network import client
        client.forget(os.path.dirname(record.path), record.id)


def _refuse_a_used_cgroup(store, container_id, leaf):
    """Before the container's record names its cgroup (delete removes what it names, and
    kills what is in it), make sure that cgroup is nobody else's."""
    if cgroups.Cgroup(leaf).pids():
        store.refuse_taken(container_id)          # our own id's: say so, as reserve would
        raise cgroups.CgroupError(f"cgroup {leaf} is in use by other processes")


def _make_cgroup(placement, settings):
    from oci.resources import controllers
    root, leaf = placement
    cgroup = cgroups.Cgroup(leaf)
    cgroup.create(root, controllers(settings))
    cgroup.apply(settings)
    return cgroup


class _Scope:
    """--systemd-cgroup: the scope systemd is to make for the container, once its first
    process exists (systemd makes a scope for running processes)."""

    def __init__(self, manager, slice_name, unit, settings):
        self.manager, self.slice, self.unit, self.settings = manager, slice_name, unit, settings

    def start(self, record, pid):
        """Have systemd put `pid` in the scope, then limit the scope's cgroup as any
        other container cgroup."""
        from oci.resources import controllers
        from rootless.runtime.cgroups.systemd import BusError
        record.save(systemd_unit=self.unit)       # before asking: _discard stops it
        try:
            self.manager.start_scope(self.unit, self.slice, pid,
                                     f"handcar container {record.id}", self.settings)
        except BusError as err:
            if err.name:          # refused: none of ours to stop (it may be another's)
                record.save(systemd_unit=None)
            raise
        leaf = cgroups.process_cgroup(pid)
        if os.path.basename(leaf) != self.unit:
            raise cgroups.CgroupError(f"systemd started {self.unit} but process {pid} is in "
                                      f"{leaf}, not in it")
        record.save(cgroup=leaf)
        cgroups.check_controllers(leaf, controllers(self.settings))
        cgroups.Cgroup(leaf).apply(self.settings)


def _systemd_scope(cgroups_path, container_id, settings):
    """(the _Scope to ask systemd for, None), or (None, the cgroupsPath to make directly
    instead, where systemd would have put it) when systemd cannot be reached (warned)."""
    from rootless.runtime.cgroups import systemd
    slice_name, unit = cgroups.systemd_unit(cgroups_path, container_id,
                                            systemd.default_slice())
    manager = systemd.connect("making the container's cgroup directly in your delegated "
                              f"subtree, as {slice_name}/{unit}")
    if manager:
        return _Scope(manager, slice_name, unit, settings), None
    return None, f"{cgroups.expand_slice(slice_name)}/{unit}"


def _stop_systemd_unit(record):
    """Stop the container's scope, if systemd made one. Warns rather than raises: the
    cgroup is removed directly after this."""
    unit = record.data.get("systemd_unit")
    if not unit:
        return
    from rootless.runtime.cgroups import systemd
    try:
        manager = systemd.connect(f"removing the cgroup of {unit} directly")
    except HandcarError as err:
        log.warning(str(err))
        return
    if manager:
        try:
            manager.stop(unit)
        finally:
            manager.close()


def _join_scope(cgroup, unit, pid):
    """Move exec's process into the container's scope; from outside the user's systemd
    tree (a login session's scope) only systemd may, as runc asks it to."""
    try:
        cgroup.add(pid)
    except cgroups.CgroupError:
        from rootless.runtime.cgroups import systemd
        manager = systemd.connect(f"the process cannot join {unit}")
        if manager is None:
            raise
        try:
            manager.attach(unit, pid)
        finally:
            manager.close()


def cgroup_of(record):
    """The container's Cgroup, or None when it runs without one of its own."""
    path = record.data.get("cgroup")
    return cgroups.Cgroup(path) if path else None


def _spawn(launch, on_hooks=None, cgroup=None, place=None, on_init=None):
    """Start the container's init (or exec's process), answer it, and return
    (channel, its pid) once it is ready. It is born in its namespaces where clone3 can
    make them all (init.namespaces_at_birth); otherwise an intermediate process joins and
    makes them, and forks it. Either is forked into `cgroup` where it can be; otherwise
    `place(pid)` puts it where it belongs, or else it is moved into `cgroup`.
    `on_init(fds)` takes the container's user and network namespaces as fds when
    launch.send_namespaces asks for them."""
    from rootless.system.channel import Channel
    from rootless.child.init import (before_fork, init_born_in_namespaces, intermediate, open_namespaces,
                       run_child, set_oom_score_adj)
    before_fork(launch)
    parent_end, child_end = Channel.pair()
    sys.stdout.flush()
    sys.stderr.flush()
    pid, born_in_cgroup, born_in_namespaces = _fork(cgroup, launch)
    if pid == 0:
        parent_end.close()
        run_child(child_end, init_born_in_namespaces if born_in_namespaces else intermediate,
                  launch)
    child_end.close()
    init_pid = 0
    hooks_asked = False           # init may ask before the intermediate names its pid

    def prepare(child):
        """Map the child's user namespace and put it in its cgroup."""
        _stage("prepare")
        if launch.mapping:
            from rootless.runtime import userns          # (create imported it to plan the mapping)
            userns.apply(launch.mapping, child)
        if place and not born_in_cgroup:
            place(child)
        elif cgroup and not born_in_cgroup:
            cgroup.add(child)
        parent_end.send("prepared")

    try:
        if born_in_namespaces:
            init_pid, pid = pid, 0
            # before "prepared": init then changes ids and becomes undumpable, out of reach
            # through /proc/PID
            if launch.send_namespaces:
                with step("opening the container's /proc/PID/ns"):
                    ns_dir = os.open(f"/proc/{init_pid}/ns",
                                     os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                fds = open_namespaces(ns_dir)
            else:
                fds = ()
            if launch.spec.process.oom_score_adj is not None:
                set_oom_score_adj(launch.spec.process.oom_score_adj, log.warning, init_pid)
            prepare(init_pid)
            if on_init:
                on_init(fds)
            _stage("init")
        ready = False
        while not (ready and init_pid):
            message = parent_end.receive(CHILD_TIMEOUT)
            kind = message and message["type"]
            if message is None:
                raise SetupError("the container's process exited before it was ready")
            elif kind == "prepare":
                prepare(pid)
            elif kind == "init":
                init_pid = message["pid"]
                if on_init:
                    on_init(message.get("fds", []))
                os.waitpid(pid, 0)
                pid = 0
                _stage("init")
            elif kind == "hooks":
                hooks_asked = True
            if hooks_asked and init_pid:
                hooks_asked = False
                parent_end.send("hooks-done", state=on_hooks(init_pid))
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
                _send_signal(child, cgroups.SIGKILL)
        if pid:
            os.waitpid(pid, 0)
        if born_in_namespaces:
            os.waitpid(init_pid, 0)       # our own child: no zombie left behind
        parent_end.close()
        raise


def _fork(cgroup, launch):
    """(pid, whether the child was born in `cgroup`, whether in its namespaces): clone3
    into the cgroup and with the namespaces where the kernel can; else a plain fork (the
    parent then moves the child, slowly, and an intermediate makes the namespaces, and
    says why where it cannot)."""
    from rootless.system import libc
    from rootless.child.init import namespaces_at_birth
    flags = namespaces_at_birth(launch)
    if cgroup:
        try:
            fd = os.open(cgroup.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise cgroups.CgroupError(f"opening cgroup {cgroup.path}: {err.strerror}") from None
        try:
            return libc.clone(flags or 0, fd), True, flags is not None
        except OSError as err:
            log.debug(f"clone3 into {cgroup.path}: {err.strerror}")
        finally:
            os.close(fd)
    if flags is not None:
        try:
            return libc.clone(flags), False, True
        except OSError as err:
            log.debug(f"clone3 with namespaces: {err.strerror}; using an intermediate")
    return os.fork(), False, False


def start(store, container_id):
    record = store.open(container_id)
    try:
        status = record.status()
        if status != "created":
            raise WrongStatus(f"cannot start a container that is {status}"
                              if status != "running" else
                              f"container {container_id} is already running")
        wait_until_ready = _start(record)
    finally:
        record.unlock()
    if wait_until_ready:
        wait_until_ready()


def _start(record):
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
        _run_warning_hooks(record, "poststart", "running")
    if notify_socket:
        return lambda: notify.forward_ready(notify_socket, record, host_notify)
    return None


def _run_warning_hooks(record, kind, status):
    from rootless.runtime import hooks
    try:
        hooks.run(record.load_spec().hooks, kind, record.state(status).to_json())
    except HandcarError as err:
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


def kill(store, container_id, signum, all_processes=False):
    record = store.open(container_id, lock=False)
    status = record.status()
    if status not in ("created", "running", "paused"):
        raise WrongStatus(f"cannot kill container {container_id}: it is {status}")
    cgroup = cgroup_of(record)
    if all_processes and cgroup:
        cgroup.kill(signum)
    elif all_processes:
        for pid in container_pids(record):
            _send_signal(pid, signum)
    else:
        _send_signal(record.pid, signum)


def _send_signal(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def container_pids(record):
    """The container's processes: its cgroup's, or else the init and every process in
    its pid namespace (init last). Without either, only the init can be told apart."""
    cgroup = cgroup_of(record)
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
        _stop_network(record)
        _stop_systemd_unit(record)
        cgroup = cgroup_of(record)
        if cgroup:
            cgroup.remove()
        if "poststop" in record.data.get("hooks", ()) and record.data["status"] != "creating":
            _run_warning_hooks(record, "poststop", "stopped")
        record.remove()
    finally:
        record.unlock()


def _stop(record):
    cgroup = cgroup_of(record)
    if cgroup and cgroup.exists():
        cgroup.kill()
        if cgroup.frozen():
            cgroup.freeze(False)          # let the killed processes run to their end
    for pid in container_pids(record):
        _send_signal(pid, cgroups.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT
    while record.init_alive():
        if time.monotonic() > deadline:
            raise HandcarError(f"container {record.id}: init {record.pid} did not die "
                               f"within {STOP_TIMEOUT}s of SIGKILL")
        time.sleep(0.005)


def run(store, container_id, bundle, options, detach=False, keep=False):
    """create + start; in the foreground, wait and return the container's exit status."""
    from rootless.system import libc
    if not detach:
        # Adopt the init when the intermediate exits, so we can wait for it.
        libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
    record, channel, console = create(store, container_id, bundle, options,
                                      foreground=not detach)
    with _ForwardingSignals(record.pid, console):
        try:
            wait_until_ready = _start(record)
        except BaseException:
            _discard(record, record.pid)
            console.close()
            channel.close()
            raise
        finally:
            record.unlock()
        if wait_until_ready:
            wait_until_ready()
        if detach:
            channel.close()
            console.close()
            return 0
        try:
            return _wait_foreground(record.pid, channel, console)
        finally:
            if not keep:
                delete(store, container_id, force=True)


# --- exec -------------------------------------------------------------------------------

def process_for_exec(base, args, env=(), user=None, additional_gids=(), cwd=None, caps=(),
                 no_new_privs=False, tty=False):
    """The process `exec` runs: the container's own process with runc exec's overrides."""
    changes = {"args": tuple(args), "terminal": tty, "console_size": None,
               "env": tuple(base.env) + tuple(env)}
    if user is not None or additional_gids:
        uid, gid = user if user is not None else (base.user.uid, None)
        gid = base.user.gid if gid is None else gid
        changes["user"] = base.user.replace(
            uid=uid, gid=gid, additional_gids=tuple(additional_gids) or base.user.additional_gids)
    if cwd:
        changes["cwd"] = cwd
    if no_new_privs:
        changes["no_new_privileges"] = True
    if caps and base.capabilities is not None:
        have = base.capabilities
        changes["capabilities"] = have.replace(
            bounding=have.bounding + tuple(caps), effective=have.effective + tuple(caps),
            permitted=have.permitted + tuple(caps),
            # ambient needs inheritable, which --cap does not add (as in runc)
            ambient=have.ambient + (tuple(caps) if have.inheritable else ()))
    return base.replace(**changes)


def load_process_file(path):
    from oci import jsonio
    from oci import spec as oci_spec
    try:
        with open(path) as f:
            data = jsonio.loads(f.read())
    except OSError as err:
        raise HandcarError(f"reading {path}: {err.strerror}") from None
    except ValueError as err:
        raise SpecError([f"not valid JSON: {err}"], path) from None
    return oci_spec.process_from_json(data, source=path)


def _namespaces_of(pid):
    """The namespaces of `pid` that differ from ours, as entries to join by path."""
    from oci import spec as oci_spec
    from oci.linux import NAMESPACES
    joined = []
    for kind, name in NAMESPACES.items():
        try:
            own = os.readlink(f"/proc/self/ns/{name}")
        except FileNotFoundError:
            continue                      # a namespace kind this kernel does not have
        path = f"/proc/{pid}/ns/{name}"
        try:
            if os.readlink(path) != own:
                joined.append(oci_spec.Namespace(kind, path))
        except FileNotFoundError:
            raise WrongStatus("cannot exec: the container's init has exited") from None
        except PermissionError:
            # until `start`, init is handcar's own process, which the container (and
            # we, without privileges) may not inspect
            raise WrongStatus("cannot exec into a container that is not started yet: "
                              "start it first") from None
    return tuple(joined)


def exec_(store, container_id, make_process, options):
    """Run a process in a running container, `make_process(the container's process)`
    (process_for_exec, or a --process file's); its exit status, or 0 when detached."""
    from rootless.system import libc
    from rootless.child.init import Launch
    _check_preserved_fds(options.preserve_fds)
    record = store.open(container_id, lock=False)
    status = record.status()
    if status == "paused" and not options.ignore_paused:
        raise WrongStatus(f"container {container_id} is paused (use --ignore-paused)")
    if status not in ("created", "running", "paused"):
        raise WrongStatus(f"cannot exec in a {status} container")
    spec = record.load_spec()
    process = make_process(spec.process)
    linux = spec.linux.replace(namespaces=_namespaces_of(record.pid),
                                time_offsets={})
    launch_spec = spec.replace(process=process, linux=linux)
    console = Console.open(process, options.console_socket, foreground=not options.detach)
    if not options.detach:
        libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
    listener = None
    try:
        listener = _seccomp_listener(spec)
        launch = Launch(container_id=container_id, spec=launch_spec,
                        bundle=record.data["bundle"], parent_pid=os.getpid(),
                        caller_ids=(os.geteuid(), os.getegid()), exec_into=True,
                        console_fd=console.child_fd, pass_fds=options.preserve_fds,
                        listener_fd=listener.fileno() if listener else -1)
        unit = record.data.get("systemd_unit")
        cgroup = cgroup_of(record)
        channel, pid = _spawn(launch, cgroup=cgroup, place=unit and cgroup and (
            lambda child: _join_scope(cgroup, unit, child)))
        try:
            console.child_started()
            channel.send("go", listener_state=_listener_state(
                spec, record.state().to_json(), pid) if listener else None)
            _wait_for_execve(channel)
            if options.pid_file:
                write_atomic(os.path.abspath(options.pid_file), f"{pid}", 0o644)
        except BaseException:
            _send_signal(pid, cgroups.SIGKILL)
            channel.close()
            raise
    except BaseException:
        console.close()
        raise
    finally:
        if listener:
            listener.close()
    if options.detach:
        channel.close()
        return 0
    with _ForwardingSignals(pid, console):
        return _wait_foreground(pid, channel, console)


def _wait_for_execve(channel):
    """Wait until the process has exec'd its program: its end of the channel is
    close-on-exec, so end-of-file means it did, a message that it could not. Only then
    may a pid file name it (conmon waits for that pid) and a detached exec succeed."""
    while True:
        message = channel.receive(CHILD_TIMEOUT)
        if message is None:
            return
        if message["type"] == "error":
            raise SetupError(message["msg"])


# --- waiting in the foreground ----------------------------------------------------------

class _ForwardingSignals:
    """While in the `with` block, pass the signals a user sends us on to the process
    (SIGWINCH stays with the terminal proxy when we have one)."""

    def __init__(self, pid, console):
        import _signal   # the signal module's C half: no enum to import
        self.signal = _signal.signal
        proxied = console.our_end or console.master is not None
        self.numbers = [getattr(_signal, name) for name in FORWARDED_SIGNALS
                        if not (proxied and name == "SIGWINCH")]
        self.pid = pid
        self.previous = {}

    def __enter__(self):
        for number in self.numbers:
            self.previous[number] = self.signal(
                number, lambda num, _frame: _send_signal(self.pid, num))
        return self

    def __exit__(self, *_exc):
        for number, handler in self.previous.items():
            self.signal(number, handler)


def _wait_foreground(pid, channel, console):
    """Wait for the process, proxying its terminal if we hold one; its exit status, 128+N
    when killed by signal N. Reports an exec failure the child sends on the channel."""
    if console.master is not None:
        from rootless.runtime import terminal
        wait_status = terminal.proxy(console.master, lambda block=False: _reap(pid, block))
        console.master = None
    else:
        wait_status = _reap(pid, block=True)
    try:
        message = channel.receive(0)
    except BlockingIOError:
        message = None
    channel.close()
    if message and message["type"] == "error":
        log.error(message["msg"])
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def _reap(pid, block):
    """Reap children (we are a subreaper) until `pid` exits: its wait status, or None
    when not blocking and it still runs."""
    while True:
        try:
            child, wait_status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            raise HandcarError(f"process {pid} is not ours to wait for") from None
        if child == pid:
            return wait_status
        if child == 0:
            return None


# --- cgroup verbs -----------------------------------------------------------------------

def _require_cgroup(record, what):
    cgroup = cgroup_of(record)
    if cgroup is None or not cgroup.exists():
        raise cgroups.CgroupError(f"cannot {what} container {record.id}: it has no cgroup "
                                  "of its own (no cgroup v2 subtree is delegated to you)")
    return cgroup


def pause(store, container_id):
    _freeze(store, container_id, True)


def resume(store, container_id):
    _freeze(store, container_id, False)


def _freeze(store, container_id, frozen):
    verb, wanted = ("pause", "running") if frozen else ("resume", "paused")
    record = store.open(container_id)
    try:
        status = record.status()
        if status != wanted:
            raise WrongStatus(f"cannot {verb} container {container_id}: it is {status}")
        _require_cgroup(record, verb).freeze(frozen)
    finally:
        record.unlock()


def update(store, container_id, settings):
    """Change a running container's limits (cgroup v2 file -> value)."""
    from oci.resources import controllers
    record = store.open(container_id)
    try:
        status = record.status()
        if status not in ("created", "running", "paused"):
            raise WrongStatus(f"cannot update container {container_id}: it is {status}")
        cgroup = _require_cgroup(record, "update")
        needed = controllers(settings)
        unit = record.data.get("systemd_unit")
        if unit:
            # the controllers systemd enabled for the scope (Delegate=yes) are all it gets
            cgroups.check_controllers(cgroup.path, needed)
            _tell_systemd(unit, settings)
        else:
            root = cgroups.delegated_root()
            if root is None or not cgroups.inside(root, cgroup.path):
                raise cgroups.CgroupError(f"cannot update container {container_id}: its "
                                          f"cgroup {cgroup.path} is not in a subtree "
                                          "delegated to you")
            cgroups.check_controllers(root, needed)
            cgroup.create(root, needed)   # enables what the new limits need
        cgroup.apply(settings)
    finally:
        record.unlock()


def _tell_systemd(unit, settings):
    """Give systemd a scope's new limits, so that it keeps them."""
    from rootless.runtime.cgroups import systemd
    manager = systemd.connect(f"writing the new limits to the cgroup of {unit} only")
    if manager:
        try:
            manager.set_properties(unit, settings)
        finally:
            manager.close()


def stats(store, container_id):
    """runc's stats event for a container: {"type": "stats", "id": ..., "data": {...}}."""
    record = store.open(container_id, lock=False)
    status = record.status()
    if status == "stopped":
        raise WrongStatus(f"container {container_id} is stopped")
    cgroup = _require_cgroup(record, "read the stats of")
    return {"type": "stats", "id": container_id, "data": cgroups.stats(cgroup)}


def events(store, container_id, interval, emit):
    """Emit a stats event every `interval` seconds and an oom event whenever the kernel
    OOM-kills in the container, until it stops."""
    record = store.open(container_id, lock=False)
    cgroup = _require_cgroup(record, "watch")
    oom_kills = cgroups.oom_kills(cgroup)
    while record.status() != "stopped":
        emit(stats(store, container_id))
        deadline = time.monotonic() + interval
        while time.monotonic() < deadline and record.init_alive():
            count = cgroups.oom_kills(cgroup)
            if count > oom_kills:
                oom_kills = count
                emit({"type": "oom", "id": container_id})
            time.sleep(min(0.2, interval))
