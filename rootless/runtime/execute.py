"""exec: run another process in a running container, in all of its namespaces and its
cgroup, with the container's process settings and runc exec's overrides."""

import os

from oci.record import Record
from rootless.errors import CgroupError, HandcarError, SpecError, WrongStatus
from rootless.child import protocol
from rootless.runtime import spawn
from rootless.runtime import cgroup_manager
from rootless.runtime.foreground import Console, ForwardingSignals, wait_foreground
from rootless.runtime.processes import SIGKILL, send_signal
from rootless.runtime.store import ALIVE, PAUSED, write_atomic


class ExecOptions(Record):
    FIELDS = {
        "pid_file": None,
        "console_socket": None,
        "detach": False,
        "preserve_fds": 0,
        "ignore_paused": False,
        "cgroup": None,        # crun's --cgroup: a sub-cgroup of the container's to run in
    }


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
    spawn.check_preserved_fds(options.preserve_fds)
    record = store.open(container_id, lock=False)
    status = record.status()
    if status == PAUSED and not options.ignore_paused:
        raise WrongStatus(f"container {container_id} is paused (use --ignore-paused)")
    if status not in ALIVE:
        raise WrongStatus(f"cannot exec in a {status} container")
    spec = record.load_spec()
    return start_process(record, spec_for_exec(spec, make_process(spec.process), record.pid),
                         options)


def spec_for_exec(spec, process, pid):
    """The container's spec, to start `process` in the namespaces of its init `pid`."""
    if process.tuned() or process.apparmor_profile or process.selinux_label:   # (issue 17)
        from rootless.runtime import support
        support.check_process(process, "process", bool(spec.linux.namespace("user")))
    linux = spec.linux.replace(namespaces=_namespaces_of(pid), time_offsets={})
    return spec.replace(process=process, linux=linux)


def start_process(record, launch_spec, options, debug=None, before_go=None):
    """Start launch_spec.process in the container of `record` (exec's half after the
    checks; the debug verb's too): its exit status, or 0 when detached. `debug`: the
    debug verb's plan for the children (rootless/child/debug.py); `before_go(pid)` runs
    once the process is ready, before it is let go."""
    from rootless.system import libc
    from rootless.child.init import Launch
    process = launch_spec.process
    console = Console.open(process, options.console_socket, foreground=not options.detach)
    if not options.detach:
        libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
    listener = None
    try:
        listener = spawn.seccomp_listener(launch_spec)
        launch = Launch(container_id=record.id, spec=launch_spec,
                        bundle=record.data["bundle"], parent_pid=os.getpid(),
                        caller_ids=(os.geteuid(), os.getegid()), exec_into=True,
                        console_fd=console.child_fd, pass_fds=options.preserve_fds,
                        listener_fd=listener.fileno() if listener else -1, debug=debug)
        cgroups = cgroup_manager.of(record)
        if options.cgroup:                         # crun's exec --cgroup SUB
            cgroups = cgroup_manager.Cgroupfs(_sub_cgroup(record, cgroups.cgroup,
                                                          options.cgroup))
        channel, pid = spawn.spawn(launch, cgroup=cgroups.cgroup, place=cgroups.join)
        try:
            console.child_started()
            if before_go:
                before_go(pid)
            channel.send(protocol.GO, listener_state=spawn.listener_state(
                launch_spec, record.state().to_json(), pid) if listener else None)
            _wait_for_execve(channel)
            if options.pid_file:
                write_atomic(os.path.abspath(options.pid_file), f"{pid}", 0o644)
        except BaseException:
            send_signal(pid, SIGKILL)
            spawn.reap_killed(pid)
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
    with ForwardingSignals(pid, console):
        return wait_foreground(pid, channel, console)


def _sub_cgroup(record, cgroup, sub):
    """exec --cgroup SUB: the path of the existing cgroup SUB below the container's."""
    parts = [part for part in sub.split("/") if part not in ("", ".")]
    if ".." in parts or not parts:
        raise HandcarError(f"exec --cgroup {sub}: a path below the container's cgroup, "
                           "without '..'")
    if cgroup is None:
        raise CgroupError(f"exec --cgroup {sub}: container {record.id} has no cgroup of its "
                          "own")
    path = os.path.join(cgroup.path, *parts)
    if not os.path.isdir(path):
        raise CgroupError(f"exec --cgroup {sub}: {path} does not exist")
    return path


def _wait_for_execve(channel):
    """Wait until the process has exec'd its program: its end of the channel is
    close-on-exec, so end-of-file means it did, a message that it could not. Only then
    may a pid file name it (conmon waits for that pid) and a detached exec succeed."""
    while True:
        message = channel.receive(spawn.CHILD_TIMEOUT)
        if message is None:
            return
        if message["type"] == protocol.ERROR:
            raise protocol.error_from(message)
