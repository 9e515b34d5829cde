"""Everyday docker commands with `docker run --runtime handcar`, dockerd run as root.

docker calls handcar as root (through containerd's runc shim, with its own --root), so
handcar runs in its root mode: no user namespace unless the config asks for one, and
the cgroup docker names in linux.cgroupsPath (cgroupfs driver: /PARENT/ID) made under
the host's cgroup v2 mount (at /sys/fs/cgroup/unified on a hybrid host).
"""

import os
import time

import pytest

from daemons import (cgroup2_mount, cgroup_of, run_on_a_terminal, v1_controllers,
                     v2_controllers)
from dockerd import MISSING
from harness import wait_until

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="dockerd as root: scripts/test runs this tier as root"),
    pytest.mark.skipif(bool(MISSING), reason=str(MISSING)),
]

# A container that stops quickly on SIGTERM (as pid 1 it has no default action).
SERVE_UNTIL_TERM = "echo started; echo to-stderr >&2; trap 'exit 0' TERM; while :; do sleep 0.1; done"


def run(docker, *args, **kwargs):
    return docker("run", "--runtime", "handcar", *args, **kwargs)


def detached(docker, name, image, *command):
    docker.ok("run", "--runtime", "handcar", "-d", "--name", name, image, *command)
    return name


def test_run_prints_and_returns_the_exit_status(docker, image):
    result = run(docker, "--rm", image, "sh", "-c", "echo hello from handcar; exit 3")
    assert (result.returncode, result.stdout) == (3, "hello from handcar\n"), result.stderr
    assert docker.ok("ps", "--all", "--quiet").stdout == ""       # --rm removed it


def test_a_program_that_cannot_run_is_126_and_a_missing_one_127(docker, image):
    # docker reads handcar's error back from the --log file containerd's shim passes
    missing_program = run(docker, "--rm", image, "/no/such/program")
    assert missing_program.returncode == 127
    assert ('exec: "/no/such/program": stat /no/such/program: no such file or directory'
            in missing_program.stderr)
    denied = run(docker, "--rm", image, "/etc/passwd")
    assert denied.returncode == 126
    assert 'exec: "/etc/passwd": permission denied' in denied.stderr


def test_a_detached_container_is_handcars(docker, image, names):
    name = detached(docker, names("detached"), image, "sh", "-c", SERVE_UNTIL_TERM)
    container_id, pid = docker.inspect(name, "{{.Id}} {{.State.Pid}}").split()
    assert docker.inspect(name, "{{.HostConfig.Runtime}}") == "handcar"
    # handcar's own record of it, where docker has handcar keep its state
    state = docker.handcar("state", container_id)
    assert state.returncode == 0, state.stderr
    assert '"status": "running"' in state.stdout and f'"pid": {pid}' in state.stdout
    # docker's cgroupfs driver named a cgroup: handcar made it in cgroup v2
    assert cgroup_of(pid) == os.path.join(cgroup2_mount(), docker.cgroup_parent, container_id)

    result = docker("exec", name, "sh", "-c", "echo in the container; exit 4")
    assert (result.returncode, result.stdout) == (4, "in the container\n"), result.stderr
    # as with runc, docker reports a failed exec as 126 whatever the reason (on stdout)
    result = docker("exec", name, "/no/such/program")
    assert result.returncode == 126
    assert ('"/no/such/program": stat /no/such/program: no such file or directory'
            in result.stdout + result.stderr)

    assert wait_until(lambda: docker.ok("logs", name).stdout == "started\n")
    assert docker.ok("logs", name).stderr == "to-stderr\n"
    started = time.monotonic()
    docker.ok("stop", "--time", "20", name)
    assert time.monotonic() - started < 10          # it stopped on SIGTERM, not SIGKILL
    assert docker.inspect(name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"
    docker.ok("rm", name)
    assert docker("inspect", name).returncode != 0
    # nothing of it is left: handcar's state, its cgroup
    assert docker.handcar("state", container_id).returncode != 0
    assert not os.path.exists(os.path.join(cgroup2_mount(), docker.cgroup_parent, container_id))


def test_terminals(docker, image, names):
    result = run(docker, "--rm", "-t", image, "tty")
    assert result.returncode == 0 and result.stdout.startswith("/dev/pts/"), result.stderr
    name = detached(docker, names("tty"), image, "sleep", "1000")
    result = docker("exec", "-t", name, "tty")
    assert result.returncode == 0 and result.stdout.startswith("/dev/pts/"), result.stderr
    status, output = run_on_a_terminal(docker.command("exec", "-it", name, "sh"),
                                       b"echo $((6 * 7))exec; exit 6\n", docker.env)
    assert status == 6 and b"42exec" in output, output
    docker.ok("rm", "--force", name)


def test_run_interactive_with_a_terminal(docker, image):
    """run -it from a terminal: docker's shim takes the pty from --console-socket."""
    status, output = run_on_a_terminal(
        docker.command("run", "--runtime", "handcar", "--rm", "-it", image, "sh"),
        b"echo $((6 * 7))done; stty size; exit 5\n", docker.env)
    assert status == 5, output
    assert b"42done" in output


def test_kill_and_restart(docker, image, names):
    name = detached(docker, names("restart"), image, "sleep", "1000")
    first = docker.inspect(name, "{{.State.Pid}}")
    docker.ok("kill", name)
    assert wait_until(lambda: docker.inspect(name, "{{.State.Status}}") == "exited")
    assert docker.inspect(name, "{{.State.ExitCode}}") == "137"
    docker.ok("restart", "--time", "1", name)
    assert docker.inspect(name, "{{.State.Status}}") == "running"
    assert docker.inspect(name, "{{.State.Pid}}") != first
    docker.ok("kill", "--signal", "TERM", name)        # sleep as pid 1 ignores it
    time.sleep(0.5)
    assert docker.inspect(name, "{{.State.Status}}") == "running"
    docker.ok("rm", "--force", name)


def test_pause_and_unpause_freeze_its_cgroup(docker, image, names):
    """The cgroup v2 freezer (cgroup.freeze) needs no controller: it works on a hybrid
    host's v2 mount too."""
    name = detached(docker, names("pause"), image, "sh", "-c",
                    "while :; do date +%s%N > /tmp/tick; sleep 0.05; done")
    cgroup = cgroup_of(docker.inspect(name, "{{.State.Pid}}"))
    docker.ok("pause", name)
    assert docker.inspect(name, "{{.State.Status}}") == "paused"
    assert "frozen 1" in open(os.path.join(cgroup, "cgroup.events")).read()
    assert docker("exec", name, "true").returncode != 0      # docker refuses: paused
    docker.ok("unpause", name)
    assert docker.inspect(name, "{{.State.Status}}") == "running"
    assert "frozen 0" in open(os.path.join(cgroup, "cgroup.events")).read()
    before = docker.ok("exec", name, "cat", "/tmp/tick").stdout
    assert wait_until(lambda: docker.ok("exec", name, "cat", "/tmp/tick").stdout != before)
    docker.ok("rm", "--force", name)


def test_top_lists_the_containers_processes(docker, image, names):
    name = detached(docker, names("top"), image, "sh", "-c", "sleep 1000 & exec sleep 2000")
    pid = docker.inspect(name, "{{.State.Pid}}")
    assert wait_until(lambda: "sleep 1000" in docker.ok("top", name).stdout)
    rows = [line.split(None, 1) for line in docker.ok("top", name, "-o", "pid,args")
            .stdout.splitlines()[1:]]
    assert sorted(row[1] for row in rows) == ["sleep 1000", "sleep 2000"]
    assert pid in [row[0] for row in rows]
    docker.ok("rm", "--force", name)


def test_init_is_docker_init(docker, image):
    result = run(docker, "--rm", "--init", image, "sh", "-c",
                 "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$")
    assert result.returncode == 0, result.stderr
    cmdline, shell_pid = result.stdout.splitlines()
    assert cmdline.split()[:3] == ["/sbin/docker-init", "--", "sh"]
    assert shell_pid != "1"


def test_read_only_root_and_tmpfs_mounts(docker, image):
    result = run(docker, "--rm", "--read-only", "--tmpfs", "/scratch:size=1m", image, "sh", "-c",
                 "touch /x 2>/dev/null || echo read-only; echo b > /scratch/b && cat /scratch/b; "
                 "grep ' /scratch ' /proc/mounts")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["read-only", "b"]
    assert lines[2].startswith("tmpfs /scratch tmpfs rw,") and "size=1024k" in lines[2]


def test_a_limit_handcar_cannot_set_is_a_clear_error(docker, image, names):
    """handcar sets limits through cgroup v2 only. Where the host's v2 mount has no
    memory controller (a hybrid or v1 host: docker's limits are v1 there) docker's
    --memory fails with handcar's error naming it, and leaves nothing behind; where it
    has one, the limit is set."""
    name = names("limit")
    result = run(docker, "--name", name, "--memory", "64m", image, "sh", "-c",
                 "cat /sys/fs/cgroup/memory.max 2>/dev/null || "
                 "cat /sys/fs/cgroup/unified/memory.max")
    mount = cgroup2_mount()
    if "memory" not in v2_controllers(mount):
        assert result.returncode == 125, result.stdout
        assert ("OCI runtime create failed: linux.resources: the memory controller is not "
                f"available in {mount}: ") in result.stderr
        if "memory" in v1_controllers():
            assert ("this host has it on cgroup v1 (a v1 or hybrid host), and handcar sets "
                    "limits through cgroup v2 only") in result.stderr
        container_id = docker.inspect(name, "{{.Id}}")
        assert docker.handcar("state", container_id).returncode != 0
        assert not os.path.exists(os.path.join(mount, docker.cgroup_parent, container_id))
    else:
        assert (result.returncode, result.stdout) == (0, "67108864\n"), result.stderr
    docker.ok("rm", "--force", name)
