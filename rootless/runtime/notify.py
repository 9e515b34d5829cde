"""sd_notify through the container, as runc does it.

When the caller (systemd, for a Type=notify unit) sets NOTIFY_SOCKET, the container gets a
socket of ours at /run/notify/notify.sock instead: `create` bind-mounts its directory and
sets the variable, `start` (or `run`) listens on it, and the first READY=1 the container
sends is passed on to the caller's socket with MAINPID set to the container's init.
"""

import os
import socket

from rootless.errors import HandcarError

CONTAINER_DIR = "/run/notify"
SOCKET_NAME = "notify.sock"


def prepare(record):
    """(extra mount, extra env) for a container whose caller wants notifications."""
    from oci.spec import Mount
    directory = os.path.join(record.path, "notify")
    os.mkdir(directory)
    os.chmod(directory, 0o777)              # the container's user must reach the socket
    mount = Mount(destination=CONTAINER_DIR, type="bind", source=directory,
                  options=("bind", "nosuid", "nodev", "noexec"))
    return mount, (f"NOTIFY_SOCKET={CONTAINER_DIR}/{SOCKET_NAME}",)


def listen(record):
    """Bind the container's notify socket (done by `start`, before the process runs)."""
    path = os.path.join(record.path, "notify", SOCKET_NAME)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o777)
    return sock


def forward_ready(sock, record, host_path):
    """Wait until the container says READY=1 (or its init exits), then tell the caller."""
    sock.settimeout(0.1)
    try:
        while True:
            try:
                message = sock.recv(4096)
            except TimeoutError:
                if not record.init_alive():
                    return
                continue
            if b"READY=1" in message.split(b"\n"):
                break
        client = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            client.sendto(f"READY=1\nMAINPID={record.pid}".encode(), host_path)
        except OSError as err:
            raise HandcarError(f"notifying {host_path}: {err.strerror}") from None
        finally:
            client.close()
    finally:
        sock.close()

