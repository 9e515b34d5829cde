"""exec into a running container, and ps."""

import json
import os

import pytest

from harness import needs_subids


@pytest.fixture
def running(handcar, bundle):
    bundle.args("sleep", "1000")
    handcar.ok_detached("run", "-d", "-b", bundle.write(), "box")
    return "box"


def test_exec_runs_as_container_root_and_returns_the_status(handcar, running):
    result = handcar("exec", running, "id", "-u")
    assert result.returncode == 0 and result.stdout == "0\n"
    assert handcar("exec", running, "sh", "-c", "exit 4").returncode == 4


def test_exec_joins_the_containers_namespaces(handcar, running):
    pid = handcar.state(running)["pid"]
    result = handcar("exec", running, "sh", "-c", "for n in user mnt pid net uts ipc; do "
                                                   "readlink /proc/self/ns/$n; done; hostname")
    lines = result.stdout.split()
    expected = [os.readlink(f"/proc/{pid}/ns/{n}") for n in ("user", "mnt", "pid", "net", "uts", "ipc")]
    assert lines[:-1] == expected and lines[-1] == "box"


@needs_subids
def test_exec_flags(handcar, running):
    result = handcar("exec", "-u", "1000:1000", "-g", "100", "--cwd", "/tmp", "-e", "FOO=bar",
                     running, "sh", "-c", "id -u; id -g; id -G; pwd; echo $FOO")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:5] == ["1000", "1000", "1000 100", "/tmp", "bar"]


def test_exec_keeps_the_containers_limits_and_capabilities(handcar, running):
    result = handcar("exec", "--cap", "CAP_CHOWN", running, "sh", "-c",
                     "grep -E 'CapBnd|NoNewPrivs' /proc/self/status; ulimit -n")
    fields = dict(line.split(":\t") for line in result.stdout.splitlines()[:2])
    assert int(fields["CapBnd"], 16) == (1 << 0) | (1 << 5) | (1 << 10) | (1 << 29)
    assert fields["NoNewPrivs"] == "1"
    assert result.stdout.splitlines()[2] == "1024"


def test_exec_process_file(handcar, running, tmp_path):
    process = {"args": ["sh", "-c", "echo $GREETING from $(pwd)"], "cwd": "/bin",
               "env": ["GREETING=hi", "PATH=/bin"], "user": {"uid": 0, "gid": 0}}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    result = handcar("exec", "--process", str(path), running)
    assert result.returncode == 0 and result.stdout == "hi from /bin\n"
    path.write_text(json.dumps({"args": ["true"], "cwd": "relative"}))
    bad = handcar("exec", "-p", str(path), running)
    assert bad.returncode == 1 and "cwd: must be an absolute path" in bad.stderr


def test_exec_detached_writes_the_pid_file_and_ps_lists_it(handcar, running, tmp_path):
    pid_file = tmp_path / "exec.pid"
    handcar.ok_detached("exec", "-d", "--pid-file", str(pid_file), running, "sleep", "300")
    pid = int(pid_file.read_text())
    assert open(f"/proc/{pid}/cmdline").read().split("\0")[:2] == ["sleep", "300"]
    listed = json.loads(handcar.ok("ps", "--format", "json", running).stdout)
    assert sorted(listed) == sorted([pid, handcar.state(running)["pid"]])
    table = handcar.ok("ps", running).stdout.splitlines()
    assert "PID" in table[0].split() and len(table) == 3
    assert any(line.split()[1] == str(pid) for line in table[1:])
    custom = handcar.ok("ps", running, "-o", "pid,args").stdout.splitlines()
    assert custom[0].split() == ["PID", "COMMAND"] and len(custom) == 3


def test_failed_exec_leaves_no_pid_file(handcar, running, tmp_path):
    pid_file = tmp_path / "exec.pid"
    result = handcar("exec", "--pid-file", str(pid_file), running, "no-such-program")
    assert result.returncode == 1
    assert result.stderr == 'handcar: exec: "no-such-program": executable file not found in $PATH\n'
    assert not pid_file.exists()


@pytest.mark.parametrize("detach", [False, True])
def test_a_program_that_fails_execve_fails_exec(handcar, bundle, tmp_path, detach):
    # /scripts/script passes the checks made before start (it exists and is executable),
    # but its interpreter is missing: execve itself fails, after a pid file could be written
    scripts = bundle.bind_writable(tmp_path / "scripts", "/scripts")
    (scripts / "script").write_text("#!/no/such/shell\n")
    (scripts / "script").chmod(0o755)
    handcar.ok_detached("run", "-d", "-b", bundle.args("sleep", "1000").write(), "box")
    pid_file = tmp_path / "exec.pid"
    result = handcar.detached("exec", *(["-d"] if detach else []), "--pid-file", str(pid_file),
                              "box", "/scripts/script")
    assert result.returncode == 1
    assert result.stderr == 'handcar: exec: "/scripts/script": no such file or directory\n'
    assert not pid_file.exists()


def test_exec_refuses_a_stopped_container(handcar, bundle):
    handcar("run", "--keep", "-b", bundle.args("true").write(), "gone")
    result = handcar("exec", "gone", "true")
    assert result.returncode == 1 and result.stderr == "handcar: cannot exec in a stopped container\n"
    missing = handcar("exec", "nothing", "true")
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_exec_passes_preserved_fds(handcar, running, tmp_path):
    data = tmp_path / "data"
    data.write_text("through fd 3\n")
    result = handcar.with_fd3(data, "exec", "--preserve-fds", "1", running, "sh", "-c",
                              "cat <&3")
    assert result.stdout == "through fd 3\n", result.stderr


def test_features(handcar):
    doc = json.loads(handcar.ok("features").stdout)
    assert doc["ociVersionMax"] == "1.3.0"
    from rootless.runtime.host import kernel_version
    if kernel_version() >= (5, 12):
        assert {"rro", "rnosuid", "rnoexec"} <= set(doc["mountOptions"])
    assert "user" in doc["linux"]["namespaces"]
    assert "CAP_SYS_ADMIN" in doc["linux"]["capabilities"]
    assert "rbind" in doc["mountOptions"]
    assert doc["linux"]["cgroup"]["v2"] is True and doc["linux"]["cgroup"]["v1"] is False
    # the test extra installs jeepney, which --systemd-cgroup talks to systemd with
    assert doc["linux"]["cgroup"]["systemdUser"] is True
    assert doc["linux"]["seccomp"]["enabled"] is True
    assert "SCMP_CMP_MASKED_EQ" in doc["linux"]["seccomp"]["operators"]
    assert "SCMP_ACT_NOTIFY" in doc["linux"]["seccomp"]["actions"]
    assert doc["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer",
                            "poststart", "poststop"]


def test_exec_with_an_oom_score_adj_in_the_config(handcar, bundle):
    # podman's configs carry one: exec's process sets it before it joins the container's
    # mount namespace, where /proc/self would not be its own
    bundle.process["oomScoreAdj"] = 100
    handcar.ok_detached("run", "-d", "-b", bundle.sh("sleep 30").write(), "oom")
    result = handcar.ok("exec", "oom", "cat", "/proc/self/oom_score_adj")
    assert result.stdout == "100\n"
