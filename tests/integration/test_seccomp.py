"""linux.seccomp in real containers."""

import os

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


def test_a_broken_filter_fails_create_cleanly(handcar, bundle):
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x.sock",
                               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    result = handcar("create", "-b", bundle.args("true").write(), "bad")
    assert result.returncode == 1 and "SCMP_ACT_NOTIFY" in result.stderr
    assert handcar("list", "-q").stdout == ""
