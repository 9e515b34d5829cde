"""Bad input gets one clear line and a non-zero exit, and leaves nothing behind."""

import json
import os

from harness import SUBUID_RANGE, needs_subids


def nothing_left(handcar):
    assert handcar("list", "-q").stdout == ""
    state_root = handcar.root
    assert not state_root.exists() or os.listdir(state_root) == []


def test_truncated_config(handcar, bundle):
    path = bundle.args("true").write()
    config = bundle.path / "config.json"
    config.write_text(config.read_text()[:200])
    result = handcar("--log", str(handcar.log), "--log-format", "json", "create", "-b", path, "t")
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"handcar: invalid {config}: not valid JSON")
    entries = [json.loads(line) for line in handcar.log.read_text().splitlines()]
    assert len(entries) == 1 and entries[0]["level"] == "error"
    assert entries[0]["msg"] == result.stderr[len("handcar: "):].strip()
    nothing_left(handcar)


def test_invalid_config_lists_every_problem(handcar, bundle):
    bundle.process["cwd"] = "relative"
    bundle.linux["uidMappings"][0]["size"] = 0
    result = handcar("create", "-b", bundle.write(), "bad")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "process.cwd: must be an absolute path" in result.stderr
    assert "linux.uidMappings[0].size: must be > 0" in result.stderr
    nothing_left(handcar)


def test_missing_bundle_and_rootfs(handcar, bundle, tmp_path):
    result = handcar("create", "-b", str(tmp_path / "nowhere"), "x")
    assert result.returncode == 1 and "no config.json in bundle" in result.stderr
    bundle.config["root"]["path"] = str(tmp_path / "norootfs")
    result = handcar("create", "-b", bundle.write(), "x")
    assert result.returncode == 1 and "root.path:" in result.stderr
    nothing_left(handcar)


def test_bad_ids_are_refused(handcar, bundle):
    path = bundle.args("true").write()
    for bad in ("../x", "a/b", "", "..", "x" * 1025, "x" * 2000):
        result = handcar("create", "-b", path, bad)
        assert result.returncode == 1 and "invalid container id" in result.stderr, bad
    nothing_left(handcar)


@needs_subids
def test_mapping_outside_the_subordinate_range(handcar, bundle):
    if os.geteuid() == 0:
        return
    start, count = SUBUID_RANGE
    bundle.linux["uidMappings"][1] = {"containerID": 1, "hostID": start, "size": count + 1}
    result = handcar("create", "-b", bundle.args("true").write(), "outside")
    assert result.returncode == 1
    assert "linux.uidMappings[1]: host uids" in result.stderr and "outside your ranges" in result.stderr
    nothing_left(handcar)


def test_failure_inside_the_container_cleans_up(handcar, bundle, tmp_path):
    bundle.config["mounts"].append({"destination": "/x", "type": "bind",
                                    "source": str(tmp_path / "does-not-exist"),
                                    "options": ["bind"]})
    result = handcar("create", "-b", bundle.args("true").write(), "fails")
    assert result.returncode == 1
    assert result.stderr.startswith("handcar: mounting bind on /x: bind source ")
    nothing_left(handcar)


def test_terminal_without_console_socket_is_refused(handcar, bundle):
    bundle.process["terminal"] = True
    result = handcar("create", "-b", bundle.args("true").write(), "tty")
    assert result.returncode == 1 and "--console-socket" in result.stderr
    nothing_left(handcar)


def test_kill_and_start_of_a_stopped_container(handcar, bundle):
    handcar("run", "--keep", "-b", bundle.args("true").write(), "done")
    killed = handcar("kill", "done", "KILL")
    assert killed.returncode == 1 and "stopped" in killed.stderr
    started = handcar("start", "done")
    assert started.returncode == 1 and "stopped" in started.stderr
    handcar.ok("delete", "done")


def test_with_a_log_file_warnings_go_there_and_not_to_stderr(handcar, bundle, tmp_path):
    # as runc's --log: conmon gives `create` the container's stdio, so a warning on
    # stderr would land in the container's logs (here: no user bus for --systemd-cgroup)
    log = tmp_path / "log.json"
    env = {key: value for key, value in os.environ.items()
           if key not in ("DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR")}
    result = handcar.detached("--systemd-cgroup", "--log", str(log), "--log-format", "json",
                              "create", "-b", bundle.sh("true").write(), "c1", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["level"] for entry in entries] == ["warning"]
    assert "systemd" in entries[0]["msg"]
