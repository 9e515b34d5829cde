"""Starting a container's init, or exec's process, and answering it: the parent's half of
the protocol declared in rootless/child/protocol.py. What create and exec share of it lives
here too: the --preserve-fds check, the seccomp agent's connection, the fault-test stages.
"""

import os
import sys

from rootless import log
from rootless.errors import CgroupError, HandcarError, SetupError, step
from rootless.runtime.processes import SIGKILL, send_signal

CHILD_TIMEOUT = 60          # seconds a child may take for one step before we give up


def stage(name):
    """A named point of create: HANDCAR_STOP_AT=name stops handcar there (SIGSTOP), for
    the fault tests (tests/integration/test_faults.py) to kill it at that point."""
    if os.environ.get("HANDCAR_STOP_AT") == name:
        os.kill(os.getpid(), 19)          # SIGSTOP, the same on every Linux architecture


def check_preserved_fds(count):
    """--preserve-fds N passes fds 3..3+N-1: they must be the caller's, not whatever of
    ours would take their numbers."""
    for fd in range(3, 3 + count):
        try:
            os.fstat(fd)
        except OSError:
            raise HandcarError(f"--preserve-fds {count}: fd {fd} is not open") from None


def seccomp_listener(spec):
    """A connection to the seccomp agent at linux.seccomp.listenerPath, for a filter with
    SCMP_ACT_NOTIFY (the process sends the notify fd there), or None."""
    seccomp = spec.linux.seccomp
    if seccomp is None or not seccomp.uses_notify():
        return None
    from rootless.child.seccomp import connect_listener
    return connect_listener(seccomp.listener_path)


def listener_state(spec, state, pid):
    """What the seccomp agent gets with the notify fd of process `pid`, as JSON."""
    from oci import jsonio
    from oci.state import process_state
    return jsonio.dumps(process_state(state, pid, spec.linux.seccomp.listener_metadata))


def spawn(launch, on_hooks=None, cgroup=None, place=None, on_init=None, on_mount_root=None):
    """Start the container's init (or exec's process), answer it, and return
    (channel, its pid) once it is ready. It is born in its namespaces where clone3 can
    make them all (init.namespaces_at_birth); otherwise an intermediate process joins and
    makes them, and forks it. Either is forked into `cgroup` where it can be; otherwise
    `place(pid)` puts it where it belongs, or else it is moved into `cgroup`.
    `on_init(pid, fds)` takes init's pid and the container's namespaces as fds when
    launch.send_namespaces names them (in its order); `on_mount_root(init_pid, data)`
    mounts init's root when init asks (launch.mount_root)."""
    from rootless.system.channel import Channel
    from rootless.child import protocol
    from rootless.child.init import (before_fork, init_born_in_namespaces, intermediate,
                                     open_namespaces, set_oom_score_adj)
    from rootless.system.channel import run_child
    before_fork(launch)
    parent_end, child_end = Channel.pair()
    sys.stdout.flush()
    sys.stderr.flush()
    pid, born_in_cgroup, born_in_namespaces = fork_child(cgroup, launch)
    if pid == 0:
        parent_end.close()
        run_child(child_end, init_born_in_namespaces if born_in_namespaces else intermediate,
                  launch)
    child_end.close()
    children = Children(pid, 0)

    def prepare(child):
        """Map the child's user namespace and put it in its cgroup."""
        stage("prepare")
        if launch.mapping:
            from rootless.runtime import userns          # (create imported it to plan the mapping)
            userns.apply(launch.mapping, child)
        if place and not born_in_cgroup:
            place(child)
        elif cgroup and not born_in_cgroup:
            cgroup.add(child)
        parent_end.send(protocol.PREPARED)

    try:
        if born_in_namespaces:
            children.intermediate, children.init = 0, pid
            # before "prepared": init then changes ids and becomes undumpable, out of reach
            # through /proc/PID
            if launch.send_namespaces:
                with step("opening the container's /proc/PID/ns"):
                    ns_dir = os.open(f"/proc/{pid}/ns", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                fds = open_namespaces(ns_dir, launch.send_namespaces)
            else:
                fds = ()
            if launch.spec.process.oom_score_adj is not None:
                set_oom_score_adj(launch.spec.process.oom_score_adj, log.warning, pid)
            prepare(pid)
            if on_init:
                on_init(pid, fds)
            stage("init")
        return parent_end, answer(parent_end, children, prepare, on_hooks, on_init,
                                  on_mount_root=on_mount_root)
    except BaseException:
        for child in (children.intermediate, children.init):
            if child:
                send_signal(child, SIGKILL)
        if children.intermediate:
            os.waitpid(children.intermediate, 0)
        if children.init:
            reap_killed(children.init)    # no zombie left behind (see reap_killed)
        parent_end.close()
        raise


def reap_killed(pid):
    """Wait for a process we killed where it is our child (born so, or we are the subreaper
    it went to): no zombie left behind, which a container's init would inherit."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


class Children:
    """What spawn has started and not yet handed over: the intermediate (0 when there is
    none, or once it has exited) and init (0 until it is named)."""

    def __init__(self, intermediate, init):
        self.intermediate, self.init = intermediate, init


def _reap(pid):
    os.waitpid(pid, 0)


def answer(channel, children, prepare, on_hooks=None, on_init=None, reap=_reap,
           timeout=CHILD_TIMEOUT, on_mount_root=None):
    """The parent's half of the protocol (child/protocol.py's diagram): answer the child
    until init is ready; init's pid. `children` is kept current, for the caller to kill
    what is left when this raises: the child's own error, its silent death, a timeout."""
    from rootless.child import protocol
    hooks_asked = ready = False
    root_asked = None                     # MOUNT_ROOT's data, until init is named
    while not (ready and children.init):
        message = channel.receive(timeout)
        if message is None:
            raise SetupError("the container's process exited before it was ready")
        kind = message["type"]
        if kind == protocol.PREPARE:
            prepare(children.intermediate)
        elif kind == protocol.INIT:
            children.init = message["pid"]
            if on_init:
                on_init(children.init, message.get("fds", []))
            reap(children.intermediate)
            children.intermediate = 0
            stage("init")
        elif kind == protocol.MOUNT_ROOT:
            root_asked = message["data"]
        elif kind == protocol.HOOKS:
            hooks_asked = True
        elif kind == protocol.READY:
            ready = True
        elif kind == protocol.WARNING:
            log.warning(message["msg"])
        elif kind == protocol.DEBUG:
            log.debug(message["msg"])
        elif kind == protocol.ERROR:
            raise protocol.error_from(message)
        else:
            raise SetupError(f"unexpected message {kind!r} from the container's process")
        if root_asked is not None and children.init:     # (as hooks, below)
            if on_mount_root is None:
                raise SetupError("the container's process asked for its root to be mounted")
            on_mount_root(children.init, root_asked)
            root_asked = None
            channel.send(protocol.ROOT_MOUNTED)
        if hooks_asked and children.init:   # init may ask before the intermediate names it
            hooks_asked = False
            channel.send(protocol.HOOKS_DONE, state=on_hooks(children.init))
    return children.init


def fork_child(cgroup, launch):
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
            raise CgroupError(f"opening cgroup {cgroup.path}: {err.strerror}") from None
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
