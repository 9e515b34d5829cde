"""The fast path and click parse the same declarations to the same values."""

import pytest

from rootless.cli import clickcli as cli
from rootless.cli import commands, verbs

PLAIN = [
    ["create", "-b", "/b", "--pid-file=/p", "c1"],
    ["create", "--bundle=/b", "--console-socket", "/s", "--no-pivot", "--no-new-keyring", "c1"],
    ["--root", "/r", "--log-format=json", "--log", "/l", "run", "-d", "--preserve-fds", "2", "x"],
    ["--debug", "--systemd-cgroup", "--rootless", "true", "start", "c1"],
    ["--cgroup-manager=disabled", "state", "c1"],
    ["exec", "-t", "-e", "A=1", "-e", "B=2", "-u", "1000:100", "-g", "5", "-g", "6", "box",
     "sh", "-c", "echo -n hi --not-an-option"],
    ["exec", "--process", "/p.json", "--pid-file", "/x", "-d", "box"],
    ["kill", "box", "KILL"], ["kill", "--all", "box"], ["kill", "box"],
    ["delete", "-f", "box"], ["delete", "box"],
    ["list", "-q"], ["list", "--format", "json"], ["list"],
    ["ps", "-f", "json", "box"], ["ps", "box", "-ef"], ["ps", "box", "-o", "pid,args"],
    ["pause", "box"], ["resume", "box"],
    ["events", "--stats", "box"], ["events", "--interval=1s", "box"],
    ["update", "--pids-limit", "3", "--memory", "64m", "box"], ["update", "-r", "-", "box"],
    ["spec", "--rootless", "-b", "/b"], ["features"],
    ["run", "--", "c1"],
    ["image", "inspect", "--platform", "linux/arm64", "busybox"], ["image", "ls", "-q"],
    ["image", "rm", "-f", "busybox"], ["image", "prune"],
    ["network", "create", "--subnet", "10.89.7.0/24", "net"], ["network", "rm", "-f", "net"],
    ["create", "--config", "/c.json", "c1"], ["run", "-f", "c.json", "-b", "/b", "-d", "x"],
    ["delete", "--regex", "^box"], ["delete", "-r", "-f", "b.*"],
    ["exec", "--cgroup", "sub", "box", "true"],
    ["--log=file:/l", "--log-level", "error", "list"],
    ["debug", "-t", "-i", "--tools", "/t", "--mount-at=/opt/x", "box"],
    ["debug", "--image", "oci:/l", "--privileged-debug", "-u", "1000", "-e", "A=1", "box",
     "strace", "-p", "1"],
    ["debug", "--shared", "--target-root", "box", "sh", "-c", "ps -ef"],
]

UNUSUAL = [
    [], ["-h"], ["--help"], ["create", "-h"], ["--version"], ["bogus"], ["create"],
    ["create", "--nope", "c1"], ["create", "--preserve-fds", "x", "c1"],
    ["create", "--preserve-fds", "-1", "c1"], ["--log-format", "xml", "list"],
    ["kill", "a", "b", "c"], ["create", "-b"], ["delete", "--force=yes", "c1"],
]


def through_click(argv, monkeypatch):
    seen = {}

    class FakeGlobals:
        def __init__(self, **values):
            seen["globals"] = values
    monkeypatch.setattr(commands, "Globals", FakeGlobals)
    monkeypatch.setattr(cli, "handler",
                        lambda name: lambda g, **values: seen.update(verb=name, values=values))
    assert cli.click_main(argv) in (None, 0)
    return seen["globals"], seen["verb"], seen["values"]


@pytest.mark.parametrize("argv", PLAIN, ids=" ".join)
def test_fast_path_agrees_with_click(argv, monkeypatch):
    parsed = verbs.parse(argv)
    assert parsed is not None, "a plain command line must not need click"
    global_values, verb, values = parsed
    assert (global_values, verb.name, values) == through_click(argv, monkeypatch)


@pytest.mark.parametrize("argv", UNUSUAL, ids=" ".join)
def test_unusual_command_lines_go_to_click(argv):
    assert verbs.parse(argv) is None


def test_every_verb_has_a_handler_and_every_handler_a_verb():
    assert set(verbs.HANDLERS) == set(verbs.VERBS)
    for name, verb in verbs.VERBS.items():
        function = verbs.handler(name)
        params = function.__code__.co_varnames[:function.__code__.co_argcount]
        declared = {o.dest for o in verb.options} | {a.dest for a in verb.args}
        assert declared >= set(params[1:]), name


def test_the_fast_path_does_not_import_click():
    import subprocess
    import sys
    code = ("import sys; from rootless.cli.verbs import parse; "
            "parse(['--root', '/r', 'create', '-b', '/b', 'c1']); "
            "print('click' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False"
