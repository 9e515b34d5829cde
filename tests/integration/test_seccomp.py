"""linux.seccomp in real containers."""

import errno
import os

import pytest

from harness import needs_subids
from oci.profiles import default_seccomp
from seccomp_agent import Agent

DENY_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                            "errnoRet": 1},
                           {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                            "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}]}


def test_a_rule_makes_mkdir_fail_and_creates_nothing(handcar, bundle, tmp_path):
    shared = bundle.bind_writable(tmp_path / "shared", "/shared")
    bundle.linux["seccomp"] = DENY_MKDIR
    result = handcar("run", "-b", bundle.sh("mkdir /shared/x").write(), "sc")
    assert result.returncode == 1 and "Operation not permitted" in result.stderr
    assert os.listdir(shared) == []


def test_filter_mode_arguments_and_exec(handcar, bundle):
    bundle.linux["seccomp"] = DENY_MKDIR
    bundle.sh("grep Seccomp: /proc/self/status; kill -0 $$ && echo kill-0-ok; "
              "kill -USR1 $$ 2>/dev/null || echo usr1-refused; exec sleep 1000")
    handcar.ok_detached("run", "-d", "-b", bundle.write(), "f")
    result = handcar("exec", "f", "sh", "-c", "grep Seccomp: /proc/self/status; mkdir /tmp/y")
    assert result.stdout.split() == ["Seccomp:", "2"]          # exec joins the filter
    assert result.returncode == 1
    out = (handcar.root.parent / "container.out").read_text().splitlines()
    assert out[0].split() == ["Seccomp:", "2"]
    assert out[1:3] == ["kill-0-ok", "usr1-refused"]


def test_filter_without_no_new_privileges(handcar, bundle):
    bundle.process["noNewPrivileges"] = False
    bundle.linux["seccomp"] = DENY_MKDIR
    result = handcar("run", "-b", bundle.sh("grep -E 'Seccomp:|NoNewPrivs:' /proc/self/status; "
                                           "mkdir /tmp/z").write(), "nnp")
    assert result.returncode == 1
    assert result.stdout.split() == ["NoNewPrivs:", "0", "Seccomp:", "2"]


def test_a_missing_seccomp_agent_fails_create_cleanly(handcar, bundle, tmp_path):
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                               "listenerPath": str(tmp_path / "nobody.sock"),
                               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    result = handcar("create", "-b", bundle.args("true").write(), "bad")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "connecting to the seccomp agent at" in result.stderr
    assert handcar("list", "-q").stdout == ""


# What busybox's echo and sleep need, and nothing of handcar's: no socket calls (the
# exchanges with the parent), no openat or close (exec.fifo), no setresuid, capset or prctl.
STRICT = {"defaultAction": "SCMP_ACT_ERRNO",
          "syscalls": [{"names": ["execve", "brk", "arch_prctl", "set_tid_address",
                                  "set_robust_list", "rseq", "prlimit64", "readlink",
                                  "getrandom", "mmap", "munmap", "mprotect", "newfstatat",
                                  "uname", "getpid", "getppid", "getuid", "write", "nanosleep",
                                  "clock_nanosleep", "restart_syscall", "rt_sigreturn",
                                  "exit", "exit_group"],
                        "action": "SCMP_ACT_ALLOW"}]}


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_the_filter_is_loaded_last_in_run_and_in_exec(handcar, bundle, no_new_privileges):
    bundle.process["noNewPrivileges"] = no_new_privileges
    bundle.linux["seccomp"] = STRICT
    result = handcar("run", "-b", bundle.args("echo", "strict").write(), "strict")
    assert (result.returncode, result.stdout) == (0, "strict\n"), result.stderr
    handcar.ok_detached("run", "-d", "-b", bundle.args("sleep", "1000").write(), "sleeper")
    result = handcar("exec", "sleeper", "echo", "in exec")
    assert (result.returncode, result.stdout) == (0, "in exec\n"), result.stderr


@pytest.mark.parametrize("with_capabilities", [True, False])
@pytest.mark.parametrize("uid", [0, pytest.param(1000, marks=needs_subids)])
def test_a_filter_without_no_new_privileges_leaves_the_capabilities_as_configured(
        handcar, bundle, uid, with_capabilities):
    """init keeps CAP_SYS_ADMIN to load the filter; execve must drop it."""
    bundle.process["noNewPrivileges"] = False
    bundle.process["user"] = {"uid": uid, "gid": uid}
    if not with_capabilities:
        del bundle.process["capabilities"]
    path = bundle.sh("grep ^Cap /proc/$$/status").write()
    without = handcar("run", "-b", path, "plain")
    assert without.returncode == 0, without.stderr
    bundle.linux["seccomp"] = DENY_MKDIR
    filtered = handcar("run", "-b", bundle.write(), "filtered")
    assert filtered.returncode == 0, filtered.stderr
    assert filtered.stdout == without.stdout
    assert len(without.stdout.splitlines()) == 5


def notify_mkdir(bundle, agent_path):
    bundle.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(agent_path),
        "listenerMetadata": "from the test",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_a_seccomp_agent_gets_the_notify_fd_and_answers(handcar, bundle, tmp_path,
                                                        no_new_privileges):
    answers = iter([(0, 0), (0, -errno.EXDEV)])      # a faked success, then an error
    agent = Agent(tmp_path / "agent.sock", lambda syscall: next(answers))
    bundle.process["noNewPrivileges"] = no_new_privileges
    notify_mkdir(bundle, tmp_path / "agent.sock")
    result = handcar("run", "-b", bundle.sh("mkdir /tmp/a && echo a-made; mkdir /tmp/b; "
                                            "ls -d /tmp/a /tmp/b 2>&1").write(), "notified")
    agent.stop()
    assert result.stdout.splitlines()[0] == "a-made"
    assert result.stdout.count("No such file or directory") == 2    # nothing was made
    assert "Invalid cross-device link" in result.stderr
    assert agent.answered == 2
    [state] = agent.states
    assert state["fds"] == ["seccompFd"] and state["metadata"] == "from the test"
    assert state["state"]["id"] == "notified" and state["state"]["status"] == "created"
    assert state["pid"] == state["state"]["pid"] > 0


def test_exec_sends_the_agent_a_notify_fd_of_its_own(handcar, bundle, tmp_path):
    agent = Agent(tmp_path / "agent.sock", lambda syscall: (0, -errno.EXDEV))
    notify_mkdir(bundle, tmp_path / "agent.sock")
    handcar.ok_detached("run", "-d", "-b", bundle.args("sleep", "1000").write(), "box")
    result = handcar("exec", "box", "mkdir", "/tmp/c")
    agent.stop()
    assert result.returncode == 1 and "Invalid cross-device link" in result.stderr
    init, process = agent.states
    assert process["state"]["status"] == "running" and process["state"]["id"] == "box"
    assert process["state"]["pid"] == init["pid"] != process["pid"]


def test_the_friendly_modes_default_profile(handcar, bundle):
    """Podman's allow-list: ordinary work goes on; chroot without CAP_SYS_CHROOT fails
    with EPERM before the kernel looks at the path (which would give ENOENT)."""
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    bundle.sh("grep Seccomp: /proc/self/status; echo hi > /tmp/f && cat /tmp/f; "
              "mkdir /tmp/d && ls /tmp | wc -l; ps -o pid,comm | grep -c ps; id -u; "
              "sleep 0 && uname -s && date +%Y | wc -c; chroot /nowhere true 2>&1; true")
    unfiltered = handcar("run", "-b", bundle.write(), "unfiltered")
    assert "No such file or directory" in unfiltered.stdout.splitlines()[-1]
    bounding = bundle.process["capabilities"]["bounding"]
    bundle.linux["seccomp"] = default_seccomp(os.uname().machine, bounding).to_json()
    result = handcar("run", "-b", bundle.write(), "default-profile")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["Seccomp:", "2"]
    assert lines[1:7] == ["hi", "2", "1", "0", "Linux", "5"]
    assert "Operation not permitted" in lines[7]
