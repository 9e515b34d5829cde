import errno
import json
import os
import socket

import pytest

import seccomp_agent
from oci.state import OCI_VERSION, process_state

from oci.errors import SpecError
from oci.spec import from_json
from rootless.system import libc
from rootless.child import seccomp


def spec_with(seccomp_doc):
    return from_json({"ociVersion": "1.2.0", "root": {"path": "r"},
                      "process": {"args": ["sh"], "cwd": "/"},
                      "linux": {"namespaces": [{"type": "mount"}], "seccomp": seccomp_doc}})


DENY_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64",
                                                                  "SCMP_ARCH_AARCH64"],
              "syscalls": [{"names": ["mkdir", "mkdirat", "no_such_syscall"],
                            "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES},
                           {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                            "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}]}


def test_the_spec_layer_reads_a_filter():
    f = spec_with(DENY_MKDIR).linux.seccomp
    assert f.default_action == "SCMP_ACT_ALLOW"
    assert f.rules[0].names == ("mkdir", "mkdirat", "no_such_syscall")
    assert f.rules[0].errno == errno.EACCES
    assert f.rules[1].conditions[0].index == 1 and f.rules[1].conditions[0].value == 10


def test_problems_are_reported_with_paths():
    with pytest.raises(SpecError) as info:
        spec_with({"defaultAction": "SCMP_ACT_BOGUS",
                   "architectures": ["SCMP_ARCH_Z80"], "flags": ["NOPE"],
                   "syscalls": [{"names": [], "action": "SCMP_ACT_NOTIFY",
                                 "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_XX"}]}]})
    found = info.value.problems
    for expected in ("linux.seccomp.defaultAction: must be one of",
                     "linux.seccomp.architectures[0]: must be one of",
                     "linux.seccomp.flags[0]: must be one of",
                     "linux.seccomp.syscalls[0].names: must name at least one",
                     "linux.seccomp.syscalls[0].args[0].index: must be <= 5",
                     "linux.seccomp.syscalls[0].args[0].op: must be one of",
                     "linux.seccomp.listenerPath: SCMP_ACT_NOTIFY needs a listener"):
        assert any(p.startswith(expected) for p in found), (expected, found)


def test_notify_sends_the_fd_with_the_state_and_the_agent_answers(tmp_path):
    doc = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/unused",
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
            seccomp.Filter(spec_with(doc).linux.seccomp).load(
                theirs, json.dumps(process_state({"id": "c"}, os.getpid(), "meta")))
            os.mkdir(tmp_path / "faked")           # the agent says it is done...
            os._exit(42 if not (tmp_path / "faked").exists() else 1)   # ...but did nothing
        except BaseException:  # noqa: BLE001 - a forked child must never return
            os._exit(99)
    theirs.close()
    try:
        state, notify_fd = seccomp_agent.receive(ours)
        seccomp_agent.answer_one(notify_fd, lambda syscall: (0, 0))
        os.close(notify_fd)
    finally:
        _, status = os.waitpid(pid, 0)
        ours.close()
    assert os.waitstatus_to_exitcode(status) == 42
    assert state == {"ociVersion": OCI_VERSION, "fds": ["seccompFd"], "pid": pid,
                     "metadata": "meta", "state": {"id": "c"}}


def in_a_filtered_child(doc, test):
    """Run test() in a child with the filter loaded (no_new_privs, as a container has it);
    the child's exit status is test()'s return value."""
    pid = os.fork()
    if pid == 0:
        try:
            libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
            seccomp.Filter(spec_with(doc).linux.seccomp).load()
            os._exit(test())
        except BaseException:  # noqa: BLE001 - a forked child must never return
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_rules_are_enforced(tmp_path):
    def mkdir_then_kill():
        try:
            os.mkdir(tmp_path / "denied")
            return 1
        except PermissionError:
            pass
        os.kill(os.getpid(), 0)                    # signal 0 is not filtered
        try:
            os.kill(os.getpid(), 10)               # SIGUSR1 (arg1 == 10) is
            return 2
        except PermissionError:
            return 42
    assert in_a_filtered_child(DENY_MKDIR, mkdir_then_kill) == 42
    assert not (tmp_path / "denied").exists()


def test_default_errno():
    doc = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS,
           "syscalls": [{"names": ["exit_group", "exit", "getpid", "write", "rt_sigreturn",
                                   "brk", "mmap", "munmap", "futex"],
                         "action": "SCMP_ACT_ALLOW"}]}

    def chdir_fails_with_enosys():
        try:
            os.chdir("/")
        except OSError as err:
            return 42 if err.errno == errno.ENOSYS else 3
        return 4
    assert in_a_filtered_child(doc, chdir_fails_with_enosys) == 42
