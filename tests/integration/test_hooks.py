"""OCI hooks run at their points with the state JSON on stdin."""

import json
import os
import stat

import pytest


@pytest.fixture
def hook_script(tmp_path):
    """A hook that appends its kind, argv[1:], an env var and the state it got to a log."""
    log = tmp_path / "hooks.log"
    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\n"
                      f'printf "%s %s %s " "$1" "$2" "$MARK" >> {log}\n'
                      f"cat >> {log}\n"
                      f"echo >> {log}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.chmod(tmp_path, 0o755)
    return script, log


def entries(log):
    result = []
    for line in log.read_text().splitlines():
        kind, arg, mark, state = line.split(" ", 3)
        result.append((kind, arg, mark, json.loads(state)))
    return result


def test_hooks_run_in_order_with_the_state(handcar, bundle, hook_script):
    script, log = hook_script
    bundle.config["hooks"] = {
        kind: [{"path": str(script), "args": ["hook", kind, "x"], "env": ["MARK=m"]}]
        for kind in ("prestart", "createRuntime", "poststart", "poststop")}
    bundle.config["hooks"]["createContainer"] = [{"path": str(script),
                                                  "args": ["hook", "createContainer", "y"]}]
    handcar.ok_detached("create", "-b", bundle.args("sleep", "100").write(), "h")
    pid = handcar.state("h")["pid"]
    handcar.ok("start", "h")
    handcar.ok("kill", "h", "KILL")
    handcar.wait_status("h", "stopped")
    handcar.ok("delete", "h")
    got = entries(log)
    assert [(k, a, m) for k, a, m, _ in got] == [
        ("prestart", "x", "m"), ("createRuntime", "x", "m"), ("createContainer", "y", ""),
        ("poststart", "x", "m"), ("poststop", "x", "m")]
    for kind, _, _, state in got:
        assert state["id"] == "h" and state["bundle"] == str(bundle.path), kind
    statuses = {kind: (state["status"], state["pid"]) for kind, _, _, state in got}
    assert statuses["createRuntime"] == ("creating", pid)
    assert statuses["poststart"] == ("running", pid)
    assert statuses["poststop"][0] == "stopped"


def test_start_container_hook_runs_in_the_container(handcar, bundle, hook_script):
    script, log = hook_script
    rootfs = bundle.own_rootfs()
    inner = rootfs / "hook.sh"
    inner.write_text("#!/bin/sh\n(cat; echo; hostname) > /tmp/seen-state\n")
    inner.chmod(0o755)
    bundle.config["hooks"] = {"startContainer": [{"path": "/hook.sh"}]}
    result = handcar("run", "-b", bundle.sh("cat /tmp/seen-state").write(), "sc")
    assert result.returncode == 0, result.stderr
    state_json, hostname = result.stdout.splitlines()
    assert json.loads(state_json)["id"] == "sc" and hostname == "box"


def test_failing_create_hook_fails_create_and_cleans_up(handcar, bundle):
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sh",
                                                 "args": ["sh", "-c", "echo nope >&2; exit 3"]}]}
    result = handcar("create", "-b", bundle.args("true").write(), "bad")
    assert result.returncode == 1
    assert result.stderr == "handcar: createRuntime hook /bin/sh exited with status 3: nope\n"
    assert handcar("list", "-q").stdout == ""


def test_hook_timeout(handcar, bundle):
    bundle.config["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "10"],
                                            "timeout": 1}]}
    result = handcar("create", "-b", bundle.args("true").write(), "slow")
    assert result.returncode == 1 and "timed out after 1s" in result.stderr
    assert handcar("list", "-q").stdout == ""


def test_failing_start_container_hook_fails_start(handcar, bundle):
    bundle.config["hooks"] = {"startContainer": [{"path": "/bin/false"}]}
    handcar.ok_detached("create", "-b", bundle.args("sleep", "100").write(), "sf")
    result = handcar("start", "sf")
    assert result.returncode == 1 and "startContainer hook /bin/false exited" in result.stderr
    assert handcar.wait_status("sf", "stopped") == "stopped"


def test_poststart_and_poststop_failures_are_warnings(handcar, bundle):
    bundle.config["hooks"] = {kind: [{"path": "/bin/false"}] for kind in ("poststart", "poststop")}
    result = handcar("run", "-b", bundle.args("true").write(), "warn")
    assert result.returncode == 0
    assert "handcar: warning: poststart hook /bin/false exited with status 1" in result.stderr
    assert "handcar: warning: poststop hook /bin/false exited with status 1" in result.stderr


def test_a_failing_poststart_or_poststop_hook_does_not_stop_the_next(handcar, bundle,
                                                                   hook_script):
    script, log = hook_script
    bundle.config["hooks"] = {
        kind: [{"path": "/bin/false"}, {"path": str(script), "args": ["hook", kind, "after"]},
               {"path": "/nonexistent/hook"},
               {"path": str(script), "args": ["hook", kind, "last"]}]
        for kind in ("poststart", "poststop")}
    result = handcar("run", "-b", bundle.args("true").write(), "next")
    assert result.returncode == 0, result.stderr
    assert [(kind, arg) for kind, arg, _, _ in entries(log)] == [
        ("poststart", "after"), ("poststart", "last"), ("poststop", "after"),
        ("poststop", "last")]
    for kind in ("poststart", "poststop"):
        assert f"handcar: warning: {kind} hook /bin/false exited with status 1" in result.stderr
        assert f"handcar: warning: {kind} hook /nonexistent/hook: " in result.stderr
