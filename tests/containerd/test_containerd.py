"""containerd's own client with handcar: `ctr run --runc-binary handcar`, containerd run as
root. runc's shim calls handcar as root, with the spec containerd writes by default."""

import os
import re

import pytest

from containerd_daemon import HANDCAR, MISSING, recorder
from daemons import cgroup2_mount, cgroup_of, run_on_a_terminal
from harness import wait_until

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="containerd as root: scripts/test runs this tier as root"),
    pytest.mark.skipif(bool(MISSING), reason=str(MISSING)),
]

# The shim's flags before the verb: --root DIR --log FILE --log-format json
GLOBAL_FLAGS = re.compile(r"^(--\S+ \S+ )*")
# Stops on SIGTERM with a status of its own (as pid 1 it has no default action).
SERVE_UNTIL_TERM = "echo started; trap 'exit 7' TERM; while :; do sleep 0.1; done"


def test_run_prints_and_returns_the_exit_status(containerd, image):
    # containerd's default spec carries cpu.shares 1024: no limit, so no cpu controller
    # is needed for it (a hybrid host's cgroup v2 has none)
    result = containerd("run", "--rm", *containerd.run_flags(), image, f"run-{os.getpid()}",
                        "sh", "-c", "echo hello from handcar; exit 3")
    assert (result.returncode, result.stdout) == (3, "hello from handcar\n"), result.stderr
    assert containerd.handcar("list", "-q").stdout == ""


def test_a_missing_program_fails_the_run_and_leaves_nothing(containerd, image):
    name = f"missing-{os.getpid()}"
    result = containerd("run", "--rm", *containerd.run_flags(), image, name, "/no/such/program")
    assert result.returncode != 0
    assert ('OCI runtime create failed: exec: "/no/such/program": stat /no/such/program: '
            "no such file or directory") in result.stderr
    assert containerd.handcar("list", "-q").stdout == ""
    assert not os.path.exists(os.path.join(cgroup2_mount(), containerd.namespace, name))


def test_exec_kill_and_delete(containerd, image):
    """A detached container through its life, with a runtime that records what runc's
    shim asks of handcar: its delete comes twice (delete, then delete --force, which
    must succeed for a container the first one removed)."""
    name = f"life-{os.getpid()}"
    calls = containerd.base / f"{name}.calls"
    runtime = recorder(containerd.base / f"{name}.runtime", calls)
    log = containerd.base / f"{name}.log"
    containerd.ok("run", "--detach", "--log-uri", f"file://{log}",
                  *containerd.run_flags(runtime), image, name, "sh", "-c", SERVE_UNTIL_TERM)
    pid, status = containerd.tasks()[name]
    assert status == "RUNNING"
    state = containerd.handcar("state", name)
    assert state.returncode == 0 and f'"pid": {pid}' in state.stdout, state.stderr
    assert cgroup_of(pid) == os.path.join(cgroup2_mount(), containerd.namespace, name)
    assert wait_until(lambda: log.exists() and log.read_text() == "started\n")

    result = containerd("task", "exec", "--exec-id", "e1", name, "sh", "-c",
                        "echo in the container; exit 4")
    assert (result.returncode, result.stdout) == (4, "in the container\n"), result.stderr
    status, output = run_on_a_terminal(
        containerd.command("task", "exec", "--tty", "--exec-id", "e2", name, "tty"), b"",
        containerd.env)
    assert status == 0 and b"/dev/pts/" in output, output
    containerd.ok("task", "pause", name)
    assert containerd.tasks()[name][1] == "PAUSED"
    assert "frozen 1" in open(os.path.join(cgroup_of(pid), "cgroup.events")).read()
    containerd.ok("task", "resume", name)
    assert containerd.tasks()[name][1] == "RUNNING"

    containerd.ok("task", "kill", name)                       # SIGTERM
    assert wait_until(lambda: containerd.tasks()[name][1] == "STOPPED")
    result = containerd.ok("task", "delete", name)
    assert f"task {name} exit with non-zero exit code 7" in result.stderr
    assert name not in containerd.tasks()
    assert containerd.handcar("state", name).returncode != 0
    assert not os.path.exists(os.path.join(cgroup2_mount(), containerd.namespace, name))
    # containerd has no task to delete twice, and asks handcar nothing more
    asked = calls.read_text()
    assert containerd("task", "delete", name).returncode != 0
    assert calls.read_text() == asked
    containerd.ok("container", "delete", name)

    made = [line.split(" ", 1) for line in asked.splitlines()]
    verbs = [GLOBAL_FLAGS.sub("", call).split() for _, call in made]
    assert [(status, verb[0]) for (status, _), verb in zip(made, verbs)] == [
        ("0", "create"), ("0", "start"), ("0", "exec"), ("0", "exec"), ("0", "pause"),
        ("0", "resume"), ("0", "kill"), ("0", "delete"), ("0", "delete")], asked
    assert verbs[-2:] == [["delete", name], ["delete", "--force", name]], asked


def test_the_snippet_registers_a_cri_runtime_handler(containerd):
    """contrib/containerd/config.toml appended to a config.toml shaped as Debian's: the
    CRI plugin starts with it (it does not when runc's entry is missing), and the
    handler is runc's shim with handcar as its binary."""
    plugins = containerd.ok("plugins", "ls").stdout
    assert re.search(r"^io\.containerd\.grpc\.v1\s+cri\s+\S+\s+ok\s*$", plugins, re.M), plugins
    dumped = containerd.dump_config()
    handler = dumped.split('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.handcar]')[1]
    assert 'runtime_type = "io.containerd.runc.v2"' in handler.split("[plugins.")[0]
    assert f'BinaryName = "{HANDCAR}"' in handler
    assert '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]' in dumped
    assert 'bin_dir = "/usr/lib/cni"' in dumped          # the rest of the CRI section kept
