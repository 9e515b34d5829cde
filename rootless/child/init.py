"""The child side of create and exec: the container's init (create) or the exec'd
process, and the intermediate process that starts them where one is needed.

    parent ──clone3──▶ init, born in its new namespaces (create, when none is joined by
                       path and there is no time namespace: namespaces_at_birth); the
                       parent maps its user namespace at once, init becomes root there,
                       makes its cgroup namespace, and goes on as below.
    parent ──fork──▶ intermediate (exec, joins by path, a time namespace): joins/unshares
                     the user namespace and asks the parent to map it, becomes root there,
                     joins/unshares the other namespaces, forks init (PID 1 of a new pid
                     namespace) or exec's process, reports its pid, exits.
                     init: builds the rootfs, pivots, sets identity, capabilities and
                     limits, reports ready, waits for the parent's go, then blocks on
                     exec.fifo until `start`, and execs the process.

Nothing here returns into the CLI: each child runs its body under `run_child`, which
reports any error to the parent over the channel and leaves with os._exit.
"""

import errno
import os

import _signal   # the C halves of signal and socket: their Python modules import
import _socket   # enum, a start-up cost the child would pay after fork
from oci.record import Record

from oci.spec import DEFAULT_PATH, env_value
from rootless.child import protocol
from rootless.system.channel import run_child
from rootless.errors import CommandNotFound, CommandNotRunnable, HandcarError, SetupError, step
from rootless.system import libc
from rootless.system.channel import close_fds_from
from rootless.system.libc import SYSCALLS

# The children's own modules, imported by the intermediate (_import_what_the_child_needs):
# the parent, which imports this module to fork, has no use for them.
host = identity = mounts = resource = hooks = terminal = tuning = None
debug_view = None                # rootless/child/debug.py, for `handcar debug`
seccomp_filter = None            # built there too, loaded just before execve

# setns order: user first (it grants the rights to join the rest), mount last (after it,
# the other namespace paths would be looked up in the container's filesystem).
BUILTIN_INIT = "handcar.init"    # annotation: "builtin" makes init stay PID 1 (see below)
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


class Launch(Record):
    """Everything the children need, worked out by the parent before forking."""
    FIELDS = {
        "container_id": None,
        "spec": None,  # oci.spec.Spec; for exec, its process is the exec'd one
        "bundle": None,
        "parent_pid": None,
        "caller_ids": (0, 0),  # the parent's (euid, egid), on the host
        "exec_into": False,  # True: exec into a running container, no rootfs to build
        "rootfs": "",
        "mapping": None,  # userns.MappingPlan, or None
        # exec.fifo opened O_PATH by the parent: the container's root may not be able to
        # reach the state directory
        "fifo_fd": -1,
        "console_fd": -1,  # where the pty master goes when process.terminal is set
        "listener_fd": -1,  # connected to linux.seccomp.listenerPath: the notify fd goes there
        "extra_env": (),  # LISTEN_FDS and friends, added by the parent
        "pass_fds": 0,  # fds 3..3+N-1 reach the process
        "no_pivot": False,
        "no_new_keyring": False,
        # stop before pivot_root for the prestart, createRuntime and createContainer hooks
        "pause_for_hooks": False,
        # the container's namespaces whose fds go to the parent, named as in /proc/PID/ns
        # ("user", "net", "mnt"): what its network set-up and root mount need
        "send_namespaces": (),
        # init asks the parent to mount its root (MOUNT_ROOT): runtime/fuse_root.py
        "mount_root": False,
        # `handcar debug`: its plan (rootless/child/debug.py DebugPlan), or None
        "debug": None,
    }

    def kept_fds(self):
        return {fd for fd in (self.fifo_fd, self.console_fd, self.listener_fd) if fd >= 0}


# --- the intermediate -------------------------------------------------------------------

def intermediate(channel, launch, syscalls=SYSCALLS):
    syscalls.prctl(libc.PR_SET_PDEATHSIG, _signal.SIGKILL)
    if os.getppid() != launch.parent_pid:
        os._exit(1)                       # the parent died before we set the signal
    affinity = launch.spec.process.exec_cpu_affinity
    if launch.exec_into and affinity and affinity.initial:
        # where exec's process starts (the CPUs it may run on before the final set)
        with step("setting process.execCPUAffinity.initial"):
            os.sched_setaffinity(0, affinity.initial)
    # Nothing of the parent's (the container's lock, the caller's stray fds) may reach
    # the container: keep only stdio, the preserved fds and the channel.
    close_fds_from(3 + launch.pass_fds, keep={channel.fileno()} | launch.kept_fds())
    linux = launch.spec.linux
    to_join = {ns.type: ns.path for ns in linux.namespaces if ns.path}
    fds = {}
    try:
        for kind, path in to_join.items():
            with step(f"opening the {kind} namespace {path}"):
                fds[kind] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        if launch.spec.process.oom_score_adj is not None:
            # here: init may not write its own /proc entries (it is made undumpable,
            # below), and after joining a container's mount namespace (exec) /proc is
            # the container's, where this process has no pid
            set_oom_score_adj(launch.spec.process.oom_score_adj,
                              lambda text: channel.send(protocol.WARNING, msg=text))
        # our /proc/PID/ns, opened while /proc is the host's (a mount namespace joined
        # by path brings the container's /proc, where this process has no pid)
        ns_dir = os.open("/proc/self/ns", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) \
            if launch.send_namespaces else None
        if "user" in fds:
            _join(fds, "user", syscalls)
        elif launch.mapping:
            with step("creating the user namespace"):
                syscalls.unshare(libc.CLONE_NEWUSER)
        # The parent maps the user namespace (and moves us into the container's cgroup
        # where we were not born in it) before we make a cgroup namespace, which is
        # rooted where we are then.
        channel.send(protocol.PREPARE)
        _import_what_the_child_needs(launch)          # while the parent maps us
        channel.expect(protocol.PREPARED, "mapping the user namespace and placing the cgroup")
        if "user" in fds:
            _become_root()
        else:
            _become_root_unless_the_caller_is_mapped(launch)
        if launch.debug:
            debug_view.clone_tools(launch.debug)      # before the container's mounts
        for kind in JOIN_ORDER:
            if kind in fds and kind != "user":
                _join(fds, kind, syscalls)
        if launch.debug:
            debug_view.enter_view(launch.debug)       # the debug session's own mounts
    finally:
        for fd in fds.values():
            os.close(fd)
    new = 0
    for ns in linux.namespaces:
        if not ns.path and ns.type != "user":
            new |= libc.NAMESPACE_FLAGS[ns.type]
    with step("creating namespaces"):
        syscalls.unshare(new)
    if linux.time_offsets:
        with step("setting the time namespace offsets"), \
                open("/proc/self/timens_offsets", "w") as f:
            for clock, (secs, nanos) in linux.time_offsets.items():
                f.write(f"{clock} {secs} {nanos}\n")
    # The process forked next is in the container's pid namespace but runs handcar's
    # python until execve: the container must not reach its /proc entries (exe is the
    # host's interpreter, fds lead to the host: CVE-2019-5736, CVE-2024-21626). Not
    # dumpable, only a ptracer privileged on the host can; execve makes it dumpable.
    syscalls.prctl(libc.PR_SET_DUMPABLE, 0)
    pid = os.fork()
    if pid == 0:
        run_child(channel, exec_init if launch.exec_into else container_init, launch)
    # The parent may need the container's user and network namespaces (slirp4netns, lo):
    # once init has changed its ids it can no longer reach them through /proc/PID/ns.
    channel.send(protocol.INIT, pid=pid, fds=open_namespaces(ns_dir, launch.send_namespaces)
                 if ns_dir is not None else ())


def _become_root_unless_the_caller_is_mapped(launch):
    """Become root in the new user namespace, unless the caller's own ids are mapped
    (keep-id: the caller is itself inside, and what we make in its directories stays its
    own); the creator of a user namespace has every capability in it whatever its id."""
    if launch.mapping and not launch.mapping.maps_caller(*launch.caller_ids):
        _become_root()


def _become_root():
    with step("becoming root in the user namespace"):
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)


def open_namespaces(ns_dir, names):
    """fds of the container's namespaces `names`, from its /proc/PID/ns directory
    `ns_dir` (closed here): what the network set-up and the root mount need (on_init)."""
    fds = []
    try:
        for name in names:
            with step(f"opening the container's {name} namespace"):
                fds.append(os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=ns_dir))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    finally:
        os.close(ns_dir)
    return fds


# --- or init, born in its namespaces ------------------------------------------------------

def namespaces_at_birth(launch):
    """The clone flags that make a new container's namespaces with its init, in one
    clone3, so that no intermediate is needed; None where one is: a namespace joined by
    path (setns has an order, see JOIN_ORDER), a time namespace (its offsets must be
    written before a process is in it), exec. The cgroup namespace is left out: init
    makes it once the parent has placed it (see init_born_in_namespaces)."""
    namespaces = launch.spec.linux.namespaces
    if launch.exec_into or any(ns.path or ns.type == "time" for ns in namespaces):
        return None
    flags = libc.CLONE_NEWUSER if launch.mapping else 0
    for ns in namespaces:
        if ns.type not in ("user", "cgroup"):
            flags |= libc.NAMESPACE_FLAGS[ns.type]
    return flags


def init_born_in_namespaces(channel, launch, syscalls=SYSCALLS):
    """The container's init when clone3 made its namespaces (namespaces_at_birth): the
    intermediate's work less the joins and the fork. The parent maps the user namespace
    (and places the cgroup, sets oomScoreAdj and takes the namespaces it needs) as soon
    as we exist, without being asked: we are in the user namespace from birth. The
    parent's death shows on the channel, which everything here waits on; until it has
    mapped us, a parent-death signal makes it quiet too (getppid() cannot tell here: the
    parent is outside our pid namespace)."""
    syscalls.prctl(libc.PR_SET_PDEATHSIG, _signal.SIGKILL)
    close_fds_from(3 + launch.pass_fds, keep={channel.fileno()} | launch.kept_fds())
    _import_what_the_child_needs(launch)              # while the parent maps us
    channel.expect(protocol.PREPARED, "mapping the user namespace and placing the cgroup")
    syscalls.prctl(libc.PR_SET_PDEATHSIG, 0)             # init outlives create
    _become_root_unless_the_caller_is_mapped(launch)
    syscalls.prctl(libc.PR_SET_DUMPABLE, 0)              # why: see intermediate()
    if any(ns.type == "cgroup" for ns in launch.spec.linux.namespaces):
        with step("creating the cgroup namespace"):
            syscalls.unshare(libc.CLONE_NEWCGROUP)       # rooted where the parent placed us
    container_init(channel, launch)


def before_fork(launch):
    """The parent's part before it forks the intermediate. The intermediate imports the
    children's modules while the parent runs newuidmap and newgidmap for it; without
    those to wait for, the parent imports them now: a forked child pays about three times
    as much for an import (it copies every page of the parent's that importing touches)."""
    if not launch.mapping or launch.mapping.direct:
        _import_the_childrens_modules(launch)


def _import_the_childrens_modules(launch):
    global host, identity, mounts, resource, hooks, terminal, tuning, debug_view
    import resource
    from rootless.child import identity
    from rootless.runtime import host
    if launch.debug:
        from rootless.child import debug as debug_view
    if not launch.exec_into:
        from rootless.child import mounts
    if any(launch.spec.hooks.values()):
        from rootless.runtime import hooks
    if launch.spec.process.terminal:
        from rootless.child import terminal
    if launch.spec.tuned():
        from rootless.child import tuning


def _import_what_the_child_needs(launch):
    """handcar imports lazily, but after pivot_root (or setns into the container's mount
    namespace) its own files are out of reach: import now what will be needed there."""
    global seccomp_filter
    _import_the_childrens_modules(launch)             # (done already, when before_fork did)
    if launch.spec.linux.seccomp is not None:
        from rootless.child import seccomp      # libseccomp is loaded from the host's filesystem
        seccomp_filter = seccomp.Filter(launch.spec.linux.seccomp)


def _join(fds, kind, syscalls=SYSCALLS):
    with step(f"joining the {kind} namespace"):
        syscalls.setns(fds[kind], libc.NAMESPACE_FLAGS[kind])


# --- init -------------------------------------------------------------------------------

def container_init(channel, launch):
    spec, linux = launch.spec, launch.spec.linux
    last_cap = _start_session(channel, launch)
    private = {ns.type for ns in linux.namespaces if not ns.path}
    if "network" in private:
        _bring_loopback_up()
    builder = mounts.RootfsBuilder(spec, launch.rootfs, launch.bundle,
                                   private_netns="network" in private,
                                   private_cgroupns="cgroup" in private,
                                   mount_root=launch.mount_root and (
                                       lambda data: _ask_for_root(channel, data)))
    builder.build()
    if launch.pause_for_hooks:
        # The parent runs prestart and createRuntime hooks now; createContainer hooks run
        # here, in the container's namespaces but before pivot_root.
        channel.send(protocol.HOOKS)
        message = channel.expect(protocol.HOOKS_DONE, "running createRuntime hooks")
        hooks.run(spec.hooks, "createContainer", message["state"], channel.peer_gone)
    builder.enter(launch.no_pivot)
    if spec.hostname:
        with step("setting the hostname"):
            _socket.sethostname(spec.hostname)
    if spec.domainname:
        with step("setting the domain name"):
            libc.setdomainname(spec.domainname)
    for key, value in linux.sysctl.items():
        with step(f"setting sysctl {key}"), \
                open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)
    _attach_console(launch)
    mounts.finish_rootfs(spec)
    path, env = _prepare_process(channel, launch, last_cap)

    message = _wait_for_go(channel)
    with step("waiting for start on exec.fifo"):
        fifo = os.open(f"/proc/self/fd/{launch.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.close(launch.fifo_fd)
    try:
        if spec.hooks.get("startContainer"):
            hooks.run(spec.hooks, "startContainer", message["state"])
    except HandcarError as err:
        os.write(fifo, f"E{err}".encode())
        raise
    os.write(fifo, b"0")
    os.close(fifo)
    if spec.annotations.get(BUILTIN_INIT) == "builtin":
        _stay_as_init(channel)
    exec_process(channel, launch, path, env, message.get("listener_state"))


def _ask_for_root(channel, data):
    """The parent mounts the overlay (overlayfs's mount `data`) on our rootfs, in our
    namespaces, with fuse-overlayfs: a daemon the container must not see (runtime/
    fuse_root.py). Then a mount namespace of our own, a copy with the overlay in it:
    pivot_root moves the root of every process of the namespace it is made in whose
    root is the old one, and the daemon's must stay where its files are."""
    channel.send(protocol.MOUNT_ROOT, data=data)
    channel.expect(protocol.ROOT_MOUNTED, "mounting the container's root")
    with step("creating the container's mount namespace"):
        libc.unshare(libc.CLONE_NEWNS)


def _bring_loopback_up():
    """lo up in the container's new network namespace, as runc does: one SIOCSIFFLAGS on
    a socket made here, in that namespace, while we are root in its user namespace (a
    fresh lo has only LOOPBACK, which the kernel keeps: IFF_UP is all there is to set)."""
    with step("bringing lo up in the container's network namespace"):
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        try:
            libc.set_interface_flags(sock.fileno(), "lo", libc.IFF_UP)
        finally:
            sock.close()


def _stay_as_init(channel):
    """`handcar run --init` where neither catatonit nor tini is installed: this process
    stays PID 1, passes the signals it gets on to the command (forked here, execed by
    the caller) and reaps every orphan, and leaves with the command's status. Returns in
    the child only."""
    child = os.fork()
    if child == 0:
        return
    channel.close()
    for signum in _signal.valid_signals():
        if signum not in (_signal.SIGKILL, _signal.SIGSTOP, _signal.SIGCHLD):
            try:
                _signal.signal(signum, lambda number, _frame: os.kill(child, number))
            except (OSError, ValueError):
                pass
    while True:
        pid, status = os.wait()
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)


def exec_init(channel, launch):
    """A process exec'd into a running container (its namespaces already joined)."""
    affinity = launch.spec.process.exec_cpu_affinity
    if affinity:
        tuning.set_affinity(affinity.final, "final")   # in the container's cgroup now
    last_cap = _start_session(channel, launch)
    _attach_console(launch)
    path, env = _prepare_process(channel, launch, last_cap)
    if launch.debug:
        path, launch = debug_view.through_loader(launch, path)
    message = _wait_for_go(channel)
    exec_process(channel, launch, path, env, message.get("listener_state"))


def _start_session(channel, launch):
    os.umask(0o022)
    os.setsid()
    if not launch.no_new_keyring:
        _join_session_keyring(launch.container_id)
    return host.last_cap()


def _attach_console(launch):
    process = launch.spec.process
    if process.terminal:
        with step("setting up the terminal"):
            terminal.attach(launch.console_fd, process.console_size,
                            (process.user.uid, process.user.gid))


def _prepare_process(channel, launch, last_cap):
    """Limits, identity, working directory and environment; returns (program, env)."""
    process = launch.spec.process
    for limit in process.rlimits:
        # 2**64-1 (what podman writes for "unlimited") and above 2**63 mean infinity
        soft, hard = (resource.RLIM_INFINITY if value >= 2**63 else value
                      for value in (limit.soft, limit.hard))
        try:
            resource.setrlimit(getattr(resource, limit.type), (soft, hard))
        except (OSError, ValueError) as err:
            raise SetupError(f"setting {limit.type} to {limit.soft}/{limit.hard}: "
                             f"{getattr(err, 'strerror', None) or err}") from None
    if tuning:
        tuning.apply(process, launch.spec.linux)       # before capabilities are dropped
    # Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: keep it until then.
    identity.set_identity(channel, process, last_cap,
                 keep_admin=seccomp_filter is not None and not process.no_new_privileges)
    with step(f"changing to the working directory {process.cwd}"):
        os.chdir(process.cwd)
    if process.user.umask is not None:
        os.umask(process.user.umask)
    env = with_home(list(process.env) + list(launch.extra_env), process.user.uid)
    return find_executable(process.args[0], env_value(env, "PATH", DEFAULT_PATH)), env


def _wait_for_go(channel):
    channel.send(protocol.READY)
    message = channel.receive()
    if message is None or message["type"] != protocol.GO:
        os._exit(1)                       # the parent gave up: do not run the process
    return message


def exec_process(channel, launch, path, env, listener_state=None):
    """Hand the process only fds 0-2 and the preserved ones, default signal handling, and
    exec it. On failure, say why on the channel (the parent of a `run` is listening).

    The seccomp filter is loaded last, so that it needs to allow nothing of handcar's own
    (the exchanges with the parent, exec.fifo, changing identity): after it, only the
    notify fd goes to its listener (when there is one) and execve runs."""
    args = launch.spec.process.args
    for signum in _signal.valid_signals():
        if signum not in (_signal.SIGKILL, _signal.SIGSTOP):
            try:
                _signal.signal(signum, _signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
    _limit_fds(3 + launch.pass_fds, keep=channel.fileno())
    argv, environ = list(args), dict(item.split("=", 1) for item in env)
    if tuning:
        tuning.set_exec_labels(launch.spec.process)
    if seccomp_filter:
        listener = _socket.socket(fileno=launch.listener_fd) if launch.listener_fd >= 0 else None
        seccomp_filter.load(listener, listener_state)
    try:
        os.execve(path, argv, environ)
    except OSError as err:
        raise _exec_error(err, f'exec: "{args[0]}": {err.strerror.lower()}') from None


def _limit_fds(first_closed, keep):
    """Mark every fd >= first_closed close-on-exec, and the preserved ones inheritable."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if 3 <= fd < first_closed:
                os.set_inheritable(fd, True)
            elif fd >= first_closed and fd != keep:
                os.set_inheritable(fd, False)
        except OSError:
            pass                          # the fd of the listdir itself


def set_oom_score_adj(value, warn, pid="self"):
    """Set a process's oom_score_adj, from the host's user namespace: lowering it needs
    CAP_SYS_RESOURCE there. Without it, warn(text) and leave it as it is."""
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(value))
    except PermissionError:
        warn(f"cannot set oomScoreAdj to {value} without privileges; left as it is")


def _join_session_keyring(container_id):
    try:
        libc.join_session_keyring(container_id)
    except OSError as err:
        if err.errno not in (errno.ENOSYS, errno.EPERM, errno.EACCES, errno.EDQUOT):
            raise SetupError(f"creating a session keyring: {err.strerror}") from None


def with_home(env, uid):
    """The process env, with HOME from the container's /etc/passwd if it has none."""
    env = list(env)
    if env_value(env, "HOME") is None:
        env.append(f"HOME={_home_of(uid)}")
    return env


def _home_of(uid):
    try:
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def find_executable(name, search_path):
    """Like execvp's search, but done before start so a missing program fails create
    (with the words podman maps to exit status 127)."""
    if "/" in name:
        if not os.path.exists(name):
            raise CommandNotFound(f'exec: "{name}": stat {name}: no such file or directory')
        if os.path.isdir(name) or not os.access(name, os.X_OK):
            raise CommandNotRunnable(f'exec: "{name}": permission denied')
        return name
    for directory in search_path.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CommandNotFound(f'exec: "{name}": executable file not found in $PATH')


def _exec_error(err, text):
    """execve's failure as the error kind whose exit status docker and podman give it."""
    if err.errno == errno.ENOENT:
        return CommandNotFound(text)
    if err.errno in (errno.EACCES, errno.EPERM):
        return CommandNotRunnable(text)
    return SetupError(text)
