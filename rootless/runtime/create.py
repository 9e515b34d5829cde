"""create (and run, which is create + start + wait): validate the bundle, reserve the id,
make the cgroup, spawn init in its namespaces, run the create hooks, record `created`.
Failure anywhere undoes what was made (discard)."""

import os

from oci.record import Record
from oci.spec import MOUNT_PROGRAM_ANNOTATION
from rootless import log
from rootless.errors import HandcarError, SpecError
from rootless.child import protocol
from rootless.runtime import network, spawn
from rootless.runtime import cgroup_manager
from rootless.runtime.foreground import Console, ForwardingSignals, wait_foreground
from rootless.runtime.processes import SIGKILL, send_signal
from rootless.runtime.store import CREATED, CREATING, process_start_time, user_name, write_atomic

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
        "config": None,        # crun's --config FILE: instead of the bundle's config.json
    }


def load_bundle(bundle, path=None):
    """(config.json text, Spec) of a bundle, or of the config file `path` (--config)."""
    from oci import spec as oci_spec
    named = path is not None
    path = path or os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        raise HandcarError(f"--config {path}: no such file" if named else
                           f"no config.json in bundle {bundle}") from None
    except OSError as err:
        raise HandcarError(f"reading {path}: {err.strerror}") from None
    return text, oci_spec.loads(text, source=path)


def _check_runnable(spec, bundle):
    """Problems the spec layer cannot see: the rootfs, the namespaces a runtime needs."""
    problems = []
    rootfs = os.path.join(bundle, spec.root_path)
    if not os.path.isdir(rootfs):
        problems.append(f"root.path: {rootfs} is not a directory")
    if not spec.linux.namespace("mount"):
        problems.append("linux.namespaces: a mount namespace is required")
    if not any(os.path.normpath("/" + m.destination.lstrip("/")) == "/proc" for m in spec.mounts):
        problems.append("mounts: nothing is mounted on /proc, which handcar's init needs in "
                        "the container (add {\"destination\": \"/proc\", \"type\": "
                        "\"proc\", \"source\": \"proc\"})")
    if problems:
        raise SpecError(problems, os.path.join(bundle, "config.json"))
    return os.path.realpath(rootfs)


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
    from rootless.runtime import userns
    from rootless.child.init import Launch
    bundle = os.path.realpath(bundle)
    store.path(container_id)                       # refuse a bad id before anything else
    spawn.check_preserved_fds(options.preserve_fds)
    text, spec = load_bundle(bundle, options.config)
    rootfs = _check_runnable(spec, bundle)
    if spec.host_dependent():                    # (issue 17) refused before anything exists
        from rootless.runtime import support
        support.check(spec, os.path.join(bundle, "config.json"), log.warning)
    root_mount = None
    if MOUNT_PROGRAM_ANNOTATION in spec.annotations:
        from rootless.runtime import fuse_root
        root_mount = fuse_root.setup(spec, bundle)
    net = network.setup(spec, bundle, store)
    if net:
        spec = net.prepare(spec)                   # handcar networks: their user namespace
    mapping = userns.plan(spec.linux, os.geteuid(), os.getegid(), user_name(os.geteuid()))
    cgroups = cgroup_manager.for_create(container_id, spec.linux.cgroups_path,
                                        spec.linux.cgroup_settings, systemd=options.systemd,
                                        enabled=options.cgroup)
    cgroups.refuse_if_used(store, container_id)
    console = Console.open(spec.process, options.console_socket, foreground)
    try:
        # the cgroup is in the record before it exists: discard (or a later delete, if
        # we die) finds it there
        record = store.reserve(container_id, bundle, spec.annotations, rootfs=rootfs,
                               cgroup=cgroups.leaf,
                               hooks=sorted(kind for kind, hs in spec.hooks.items() if hs))
    except BaseException:
        console.close()
        cgroups.close()
        raise
    spawn.stage("reserved")
    init_pid = fifo_fd = 0
    listener = None
    try:
        cgroup = cgroups.make()
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
        listener = spawn.seccomp_listener(spec)
        launch = Launch(container_id=container_id, spec=launch_spec, bundle=bundle,
                        parent_pid=os.getpid(),
                        caller_ids=(os.geteuid(), os.getegid()), rootfs=rootfs, mapping=mapping,
                        fifo_fd=fifo_fd, console_fd=console.child_fd, extra_env=extra_env,
                        listener_fd=listener.fileno() if listener else -1,
                        pass_fds=listen_count + options.preserve_fds,
                        no_pivot=options.no_pivot, no_new_keyring=options.no_new_keyring,
                        pause_for_hooks=any(spec.hooks.get(kind) for kind in CREATE_HOOKS),
                        send_namespaces=_namespaces_to_send(net, root_mount),
                        mount_root=bool(root_mount))

        def run_create_hooks(pid):
            from rootless.runtime import hooks
            state = record.state(CREATING, pid).to_json()
            hooks.run(spec.hooks, "prestart", state)
            hooks.run(spec.hooks, "createRuntime", state)
            return state

        def take_namespaces(pid, fds):
            named = dict(zip(launch.send_namespaces, fds))
            if net:
                net.take_namespaces((named["user"], named["net"]))
                net.begin(record, pid)
            if root_mount:
                user = os.dup(named["user"]) if net else named["user"]
                root_mount.take_namespaces(user, named["mnt"])

        spawn.stage("spawning")
        channel, init_pid = spawn.spawn(
            launch, run_create_hooks, cgroup, place=lambda pid: cgroups.place(record, pid),
            on_init=(net or root_mount) and take_namespaces,
            on_mount_root=root_mount and (
                lambda pid, data: root_mount.mount(record, pid, rootfs, data)))
        spawn.stage("ready")
        if net:
            net.attach(record, init_pid)
        console.child_started()
        record.save(status=CREATED, pid=init_pid, start_time=process_start_time(init_pid))
        if options.pid_file:
            write_atomic(os.path.abspath(options.pid_file), f"{init_pid}", 0o644)
        spawn.stage("created")
        # the OCI state document, only for those who read it (its module costs ~0.4 ms)
        hooked = bool(spec.hooks.get("startContainer"))
        state = record.state(CREATED).to_json() if hooked or listener else None
        channel.send(protocol.GO, state=state if hooked else None,
                     listener_state=spawn.listener_state(spec, state, init_pid)
                     if listener else None)
        return record, channel, console
    except BaseException:
        if net:
            net.close()
        discard(record, init_pid)
        console.close()
        raise
    finally:
        if root_mount:
            root_mount.close()
        if fifo_fd:
            os.close(fifo_fd)
        cgroups.close()
        if listener:
            listener.close()


def _namespaces_to_send(net, root_mount):
    """The container's namespaces create takes as fds (Launch.send_namespaces): the
    network set-up joins its user and network namespaces, the root mount's watcher its
    user and mount namespaces."""
    names = ()
    if net or root_mount:
        names += ("user",)
    if net:
        names += ("net",)
    if root_mount:
        names += ("mnt",)
    return names


def discard(record, pid):
    """Undo a container that failed to come up: its process, cgroup and state. Never
    raises: the failure that brought us here is the one the user needs to see."""
    if pid:
        send_signal(pid, SIGKILL)
    cgroups = cgroup_manager.of(record)
    try:
        cgroups.destroy()
    except HandcarError as err:
        log.warning(f"left cgroup {cgroups.leaf} behind: {err}")
    try:
        network.stop(record)
        if record.data.get("root_mount"):
            from rootless.runtime import fuse_root
            fuse_root.stop(record)
    except HandcarError as err:
        log.warning(str(err))
    record.remove()


def run(store, container_id, bundle, options, detach=False, keep=False):
    """create + start; in the foreground, wait and return the container's exit status."""
    from rootless.runtime import lifecycle      # (start and delete: run's, not create's)
    from rootless.system import libc
    if not detach:
        # Adopt the init when the intermediate exits, so we can wait for it.
        libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
    record, channel, console = create(store, container_id, bundle, options,
                                      foreground=not detach)
    with ForwardingSignals(record.pid, console):
        try:
            wait_until_ready = lifecycle.let_run(record)
        except BaseException:
            discard(record, record.pid)
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
            return wait_foreground(record.pid, channel, console)
        finally:
            if not keep:
                lifecycle.delete(store, container_id, force=True)
