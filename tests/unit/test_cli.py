import json
import signal
import subprocess
import sys

import pytest

from rootless.runtime.processes import parse_signal
from rootless.errors import HandcarError

VERBS = ["create", "start", "run", "exec", "state", "kill", "delete", "list", "spec", "ps",
         "features"]


def handcar(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "rootless", *args], capture_output=True,
                          text=True, timeout=30, **kwargs)


@pytest.mark.parametrize("text,number", [("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("9", 9),
                                          ("TERM", 15), ("SIGUSR1", int(signal.SIGUSR1))])
def test_parse_signal(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["SIGNOPE", "0", "999", "-1"])
def test_parse_bad_signal(text):
    with pytest.raises(HandcarError):
        parse_signal(text)


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_short_help(verb):
    result = handcar(verb, "-h")
    assert result.returncode == 0
    assert result.stdout.startswith(f"Usage: handcar {verb}")


def test_version_and_crun_feature_line():
    import ctypes
    from importlib.util import find_spec
    result = handcar("--version")
    assert result.returncode == 0 and result.stdout.startswith("handcar version ")
    words = result.stdout.splitlines()[-1].split()
    assert all(word.startswith("+") for word in words) and "+CAP" in words
    try:
        ctypes.CDLL("libseccomp.so.2")
        has_seccomp = True
    except OSError:
        has_seccomp = False
    assert ("+SECCOMP" in words) == has_seccomp
    assert ("+SYSTEMD" in words) == (find_spec("jeepney") is not None)
    assert "+EBPF" not in words and "+CRIU" not in words


@pytest.mark.parametrize("given,path", [(None, None), ("/l", "/l"), ("log.txt", "log.txt"),
                                        ("file:/var/log/x", "/var/log/x")])
def test_log_destinations(given, path):
    from rootless.cli.commands import _log_file
    assert _log_file(given) == path


@pytest.mark.parametrize("given", ["journald:handcar", "syslog:x", "file:"])
def test_log_destinations_handcar_cannot_write(given):
    from rootless.cli.commands import _log_file
    from rootless.errors import UsageError
    with pytest.raises(UsageError):
        _log_file(given)


def test_usage_error_exits_2():
    result = handcar("kill")
    assert result.returncode == 2 and "Missing argument" in result.stderr


def test_spec_writes_the_runc_default(tmp_path):
    assert handcar("spec", "--bundle", str(tmp_path)).returncode == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["process"]["args"] == ["sh"] and config["root"]["path"] == "rootfs"
    again = handcar("spec", f"--bundle={tmp_path}")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_spec_rootless(tmp_path):
    assert handcar("spec", "--rootless", "-b", str(tmp_path)).returncode == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert {"type": "user"} in config["linux"]["namespaces"]
    assert config["linux"]["uidMappings"][0]["hostID"] == __import__("os").geteuid()


def test_errors_are_one_line_and_json_logged(tmp_path):
    log = tmp_path / "log.json"
    result = handcar("--root", str(tmp_path / "state"), "--log", str(log),
                     "--log-format", "json", "state", "nope")
    assert result.returncode == 1
    assert result.stderr == "handcar: container nope does not exist\n"
    entry = json.loads(log.read_text())
    assert entry["level"] == "error" and entry["msg"] == "container nope does not exist"
    assert entry["time"].endswith("Z")


def test_list_of_an_empty_root(tmp_path):
    result = handcar("--root", str(tmp_path / "none"), "list", "--format", "json")
    assert result.returncode == 0 and json.loads(result.stdout) == []


@pytest.mark.parametrize("flags", [["--cgroup-manager", "disabled"], ["--cgroup-manager=systemd"],
                                   ["--systemd-cgroup"], ["--rootless", "true"], ["--debug"]])
def test_runc_and_crun_global_flags_are_accepted(tmp_path, flags):
    result = handcar(*flags, "--root", str(tmp_path), "list", "-q")
    assert result.returncode == 0 and result.stdout == ""


def test_exec_needs_a_command_or_a_process_file(tmp_path):
    result = handcar("--root", str(tmp_path), "exec", "box")
    assert result.returncode == 2 and "missing the command" in result.stderr


def test_a_reader_that_stops_early_is_no_error():
    """`handcar features | head -1`: the pipe closes under handcar's output."""
    import os
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, "-m", "rootless", "features"], stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (0, "")
