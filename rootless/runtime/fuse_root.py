"""A container root that fuse-overlayfs mounts: the handcar.mount-program annotation,
which handcar's friendly mode sets where its image store cannot use the kernel's
overlayfs (image/store.py). The config's overlay mount on / is then not the kernel's:

  init      asks for its root as it builds the rootfs (MOUNT_ROOT, child/protocol.py)
            and waits until it is there.
  watcher   forked by create: joins init's user and mount namespaces, becomes root
            there and starts fuse-overlayfs on the rootfs (system/fuse_overlay.py), says
            so, then waits on a pidfd of init. When init exits, the watcher exits and
            fuse-overlayfs, its child, gets SIGTERM: the mount goes with its namespace.

fuse-overlayfs runs outside the container's pid namespace and cgroup, as podman's does:
the container cannot see it, signal it or reach the image store through its fds, and it
does not count against the container's limits. The pids of both are in the record
("root_mount"), so delete and a failed create kill whatever of them still runs.
"""

import os

from oci.errors import SpecError
from oci.spec import MOUNT_PROGRAM_ANNOTATION as ANNOTATION
from rootless.errors import SetupError, step
from rootless.runtime.store import process_start_time

LOG_FILE = "fuse-overlayfs.log"           # in the container's state directory
OVERLAY_OPTIONS = ("lowerdir", "upperdir", "workdir", "userxattr")


def setup(spec, bundle):
    """A Setup for a spec with the annotation, checked; else None."""
    program = spec.annotations.get(ANNOTATION)
    if program is None:
        return None
    where = f"annotation {ANNOTATION}"
    if not (program.startswith("/") and os.path.isfile(program)
            and os.access(program, os.X_OK)):
        raise SpecError([f"{where}: {program!r} is not the absolute path of a program"])
    roots = [m for m in spec.mounts if m.destination == "/"]
    if len(roots) != 1 or roots[0].type != "overlay":
        raise SpecError([f"{where}: the config has no overlay mount on / for it to make"])
    for option in roots[0].options:
        if option.split("=", 1)[0] not in OVERLAY_OPTIONS:
            raise SpecError([f"{where}: the overlay on / has option {option!r}, which "
                             "only the kernel's overlayfs takes"])
    return Setup(program, bundle)


class Setup:
    def __init__(self, program, bundle):
        self.program = program
        self.bundle = bundle
        self.namespaces = ()              # (user, mnt) fds, from on_init

    def take_namespaces(self, user, mnt):
        self.namespaces = (user, mnt)

    def mount(self, record, init_pid, rootfs, data):
        """Start the watcher and fuse-overlayfs for init; return once the root is
        mounted, their pids in the record."""
        try:
            pidfd = os.pidfd_open(init_pid)
        except ProcessLookupError:
            raise SetupError("the container's init exited before its root was mounted") \
                from None
        ready_read, ready_write = os.pipe2(os.O_CLOEXEC)
        log_path = os.path.join(record.path, LOG_FILE)
        try:
            watcher = os.fork()
            if watcher == 0:
                os.close(ready_read)
                _watcher(self, pidfd, data, rootfs, log_path, ready_write)
            os.close(ready_write)
            ready_write = -1
            answer = os.read(ready_read, 4096).decode(errors="replace")
        finally:
            os.close(pidfd)
            os.close(ready_read)
            if ready_write >= 0:
                os.close(ready_write)
        processes = {"watcher": [watcher, process_start_time(watcher)]}
        if answer.isdigit():
            processes["fuse-overlayfs"] = [int(answer), process_start_time(int(answer))]
        record.save(root_mount=processes)
        if not answer.isdigit():
            os.waitpid(watcher, 0)
            raise SetupError(answer[1:] or "the root mount's watcher exited")

    def close(self):
        for fd in self.namespaces:
            os.close(fd)
        self.namespaces = ()


def _watcher(setup, pidfd, data, rootfs, log_path, ready_write):
    """The watcher's body (see the module's docstring): it never returns."""
    code = 1
    try:
        from rootless.runtime.processes import hold_until_exit
        from rootless.system import libc
        from rootless.system.fuse_overlay import start
        user, mnt = setup.namespaces
        with step("joining the container's user namespace"):
            if os.readlink(f"/proc/self/fd/{user}") != os.readlink("/proc/self/ns/user"):
                libc.setns(user, libc.NAMESPACE_FLAGS["user"])
                os.setresgid(0, 0, 0)      # root there: fuse-overlayfs makes files as it
                os.setresuid(0, 0, 0)
        with step("joining the container's mount namespace"):
            libc.setns(mnt, libc.NAMESPACE_FLAGS["mount"])
        os.chdir(setup.bundle)            # the overlay's relative paths are the bundle's
        daemon = start(setup.program, data, rootfs, log_path)
        os.write(ready_write, str(daemon).encode())
        code = 0
        hold_until_exit(pidfd, keep=())
    except BaseException as err:         # noqa: BLE001 - the parent reads what failed
        os.write(ready_write, f"E{err}".encode())
    finally:
        os._exit(code)


def stop(record):
    """Kill the watcher and fuse-overlayfs if they still run; wait until they are gone."""
    from rootless.runtime.processes import stop_recorded
    stop_recorded(record.id, record.data.get("root_mount") or {})
