"""fuse-overlayfs: overlayfs in user space, for where the kernel cannot mount overlayfs in
a user namespace (before Linux 5.11, or where a distribution or the store's filesystem
refuses it). Run as root in the container's user namespace, in the mount namespace the
overlay belongs to; it reads the layers the kernel's overlayfs writes there (0/0
character-device whiteouts, user.overlay.opaque) and writes its own opaque directories as
user.fuseoverlayfs.opaque (image/tree.py reads both).

The daemon runs in the foreground (-f) as a child of the process that starts it, which
learns its pid that way and waits until the mount is there; it gets SIGTERM when that
parent exits (the mount then goes with the mount namespace)."""

import os
import time

from rootless.errors import SetupError

PROGRAM = "fuse-overlayfs"
MOUNT_TIMEOUT = 10              # seconds for the mount to appear
KERNEL_ONLY = ("userxattr",)    # overlayfs options fuse-overlayfs does not take
NOISE = "unknown argument ignored"   # what fuse-overlayfs says of options libfuse passes on


def mount_data(overlay_data):
    """fuse-overlayfs's -o value for overlayfs's mount data (comma-separated): the
    kernel-only options dropped, allow_other added (the container's processes run as
    other ids than the daemon's root)."""
    kept = [option for option in overlay_data.split(",")
            if option and option not in KERNEL_ONLY]
    return ",".join(kept + ["allow_other"])


def start(program, overlay_data, target, log_path):
    """Mount an overlay (overlayfs's mount data, relative paths from our working
    directory) on `target` with fuse-overlayfs; its pid once the mount is there. Its
    output goes to `log_path`, whose last line names what failed."""
    before = os.stat(target).st_dev
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        pid = os.fork()
        if pid == 0:
            _exec_daemon(program, mount_data(overlay_data), target, log_fd)
    finally:
        os.close(log_fd)
    deadline = time.monotonic() + MOUNT_TIMEOUT
    while os.stat(target).st_dev == before:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            raise SetupError(f"{program} could not mount {target}{last_line(log_path)}")
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise SetupError(f"{program} did not mount {target} within {MOUNT_TIMEOUT}s")
        time.sleep(0.002)
    return pid


def _exec_daemon(program, data, target, log_fd):
    code = 127
    try:
        from rootless.system import libc
        from rootless.system.channel import close_fds_from
        libc.prctl(libc.PR_SET_PDEATHSIG, 15)        # SIGTERM: unmount, exit
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        close_fds_from(3, keep=())        # none of the caller's pipes, locks or terminal
        os.execv(program, [program, "-f", "-o", data, target])
    except OSError as err:                # (stderr is the log by now; log_fd is closed)
        os.write(2, f"{program}: {err.strerror}\n".encode())
    finally:
        os._exit(code)


def last_line(log_path):
    """': <the last line the daemon wrote that says something>', or ''."""
    try:
        with open(log_path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip() and NOISE not in line]
    except OSError:
        return ""
    return f": {lines[-1]}" if lines else ""
