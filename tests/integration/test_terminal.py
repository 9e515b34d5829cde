"""process.terminal: the pty goes to a --console-socket, or a foreground run proxies it."""

import os
import socket
import threading

import pytest

from harness import HANDCAR, run_in_pty


class ConsoleReceiver:
    """What conmon does: listen on a unix socket and take the pty master sent to it."""

    def __init__(self, path):
        self.path = str(path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)
        self.master = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        conn, _ = self.server.accept()
        with conn:
            _name, fds, _flags, _addr = socket.recv_fds(conn, 1024, 1)
        self.master = fds[0]

    def read_until(self, text, limit=50):
        data = b""
        while text.encode() not in data and limit:
            data += os.read(self.master, 1024)
            limit -= 1
        return data.decode()


@pytest.fixture
def receiver(tmp_path):
    r = ConsoleReceiver(tmp_path / "console.sock")
    yield r
    r.server.close()
    if r.master is not None:
        os.close(r.master)


def test_console_socket_gets_the_pty(handcar, bundle, receiver):
    bundle.process["terminal"] = True
    bundle.process["consoleSize"] = {"height": 30, "width": 100}
    bundle.sh("tty; stty size; read answer; echo got:$answer")
    handcar.ok_detached("create", "--console-socket", receiver.path, "-b", bundle.write(), "t")
    receiver.thread.join(5)
    assert receiver.master is not None
    handcar.ok("start", "t")
    first = receiver.read_until("30 100")
    assert "/dev/pts/0" in first and "30 100" in first
    os.write(receiver.master, b"yes\n")
    assert "got:yes" in receiver.read_until("got:yes")


def test_exec_tty_with_console_socket(handcar, bundle, receiver):
    handcar.ok_detached("run", "-d", "-b", bundle.args("sleep", "1000").write(), "e")
    handcar.ok_detached("exec", "-t", "-d", "--console-socket", receiver.path, "e", "tty")
    receiver.thread.join(5)
    assert "/dev/pts/" in receiver.read_until("\n")


def test_foreground_run_proxies_the_callers_terminal(handcar, bundle):
    bundle.process["terminal"] = True
    path = bundle.sh("tty; stty size; read answer; echo got:$answer; exit 5").write()
    text, status = run_in_pty([HANDCAR, "--root", str(handcar.root), "run", "-b", path, "fg"],
                              b"33 77", b"hello\n", window=(33, 77))
    assert "/dev/pts/0" in text and "got:hello" in text
    assert status == 5


def test_detached_terminal_without_a_socket_is_refused(handcar, bundle):
    bundle.process["terminal"] = True
    result = handcar("run", "-d", "-b", bundle.args("true").write(), "nots")
    assert result.returncode == 1 and "--console-socket" in result.stderr
    assert handcar("list", "-q").stdout == ""


def test_console_socket_without_terminal_is_refused(handcar, bundle, tmp_path):
    result = handcar("create", "--console-socket", str(tmp_path / "x.sock"), "-b",
                     bundle.args("true").write(), "noterm")
    assert result.returncode == 1 and "terminal: true" in result.stderr
