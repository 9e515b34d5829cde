"""Socket activation fds and sd_notify, as systemd hands them to runc."""

import os
import socket
import subprocess

from harness import HANDCAR


def test_listen_fds_are_passed_on(handcar, bundle, tmp_path):
    activated = tmp_path / "activated"
    activated.write_text("socket-activated\n")
    path = bundle.sh('echo "$LISTEN_FDS $LISTEN_PID"; cat <&3').write()
    # LISTEN_PID names the process systemd handed the fds to: handcar itself, after exec.
    result = handcar.with_fd3(activated, "run", "-b", path, "act",
                              env="LISTEN_FDS=1 LISTEN_PID=$$")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1 1\nsocket-activated\n"


def test_listen_fds_for_another_process_are_ignored(handcar, bundle):
    result = handcar("run", "-b", bundle.sh('echo "[$LISTEN_FDS]"; ls /proc/self/fd | wc -l')
                     .write(), "notours", env={**os.environ, "LISTEN_FDS": "1", "LISTEN_PID": "1"})
    assert result.stdout == "[]\n4\n", result.stderr


def test_notify_socket_passes_ready_on_with_the_main_pid(handcar, bundle, tmp_path):
    host_socket = tmp_path / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(host_socket))
    receiver.settimeout(20)
    env = {**os.environ, "NOTIFY_SOCKET": str(host_socket)}
    bundle.own_rootfs()                              # mountpoints get made in it
    # busybox has no way to send a datagram to a unix socket: borrow the host's python3
    for directory in ("/usr", "/lib", "/lib64"):
        if os.path.exists(directory):
            bundle.config["mounts"].append({"destination": directory, "type": "bind",
                                            "source": directory, "options": ["rbind", "ro"]})
    send_ready = ("import os, socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
                  "s.sendto(b'STATUS=starting\\nREADY=1', os.environ['NOTIFY_SOCKET'])")
    bundle.sh(f'echo "$NOTIFY_SOCKET"; sleep 0.2; /usr/bin/python3 -c "{send_ready}"; '
              "sleep 1000")
    handcar.ok_detached("create", "-b", bundle.write(), "n", env=env)
    handcar.ok("start", "n", env=env)               # returns once READY=1 came through
    message = receiver.recv(1024).decode()
    assert message == f"READY=1\nMAINPID={handcar.state('n')['pid']}"
    receiver.close()
    out = (handcar.root.parent / "container.out").read_text()
    assert out.splitlines()[0] == "/run/notify/notify.sock"


def test_waiting_for_ready_does_not_hold_the_container(handcar, bundle, tmp_path):
    """A container that never says READY=1 keeps `start` waiting, not the other verbs."""
    import time
    host_socket = tmp_path / "never.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(host_socket))
    env = {**os.environ, "NOTIFY_SOCKET": str(host_socket)}
    handcar.ok_detached("create", "-b", bundle.args("sleep", "1000").write(), "mute", env=env)
    starter = subprocess.Popen([HANDCAR, "--root", str(handcar.root), "start", "mute"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while handcar.state("mute")["status"] != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        handcar.ok("delete", "--force", "mute", timeout=10)   # not blocked by start's wait
        assert starter.wait(timeout=10) == 0                   # which ends with the container
    finally:
        starter.kill()
        receiver.close()
