"""The container's process: identity, capabilities, limits, environment, fds."""

import os

import pytest

from harness import needs_subids


def run(handcar, bundle, script, name="p", **kwargs):
    result = handcar("run", "-b", bundle.sh(script).write(), name, **kwargs)
    assert result.returncode == 0, result.stderr
    return result.stdout


def status_field(text, field):
    return [line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.startswith(field + ":")][0]


def test_capabilities_and_no_new_privileges(handcar, bundle):
    out = run(handcar, bundle, "cat /proc/self/status")
    kill, net_bind, audit_write = 1 << 5, 1 << 10, 1 << 29
    expected = kill | net_bind | audit_write
    for field in ("CapBnd", "CapEff", "CapPrm", "CapAmb"):
        assert int(status_field(out, field), 16) == expected, field
    assert status_field(out, "NoNewPrivs") == "1"


def test_capabilities_as_configured(handcar, bundle):
    bundle.process["capabilities"] = {"bounding": ["CAP_CHOWN", "CAP_KILL"],
                                      "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]}
    bundle.process["noNewPrivileges"] = False
    out = run(handcar, bundle, "cat /proc/self/status")
    assert int(status_field(out, "CapBnd"), 16) == (1 << 0) | (1 << 5)
    # root's execve grants the bounding set (no file capabilities involved)
    assert int(status_field(out, "CapEff"), 16) == (1 << 0) | (1 << 5)
    assert status_field(out, "NoNewPrivs") == "0"


@needs_subids
def test_user_groups_and_home(handcar, bundle):
    bundle.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [100, 1000]}
    out = run(handcar, bundle, "id -u; id -g; id -G; echo $HOME")
    uid, gid, groups, home = out.split("\n")[:4]
    assert (uid, gid, home) == ("1000", "1000", "/home/user")
    assert sorted(groups.split()) == ["100", "1000"]


def test_env_cwd_umask_and_rlimits(handcar, bundle):
    bundle.process.update(env=["PATH=/bin", "FOO=bar baz"], cwd="/tmp/work",
                          rlimits=[{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}])
    bundle.process["user"]["umask"] = 0o027
    out = run(handcar, bundle, "echo $FOO; pwd; umask; ulimit -n; ulimit -Hn")
    assert out.split("\n")[:5] == ["bar baz", "/tmp/work", "0027", "321", "654"]


def test_hostname_and_pid_namespace(handcar, bundle):
    bundle.config["domainname"] = "example.org"
    out = run(handcar, bundle, "hostname; cat /proc/sys/kernel/domainname; echo $$")
    assert out.split("\n")[:3] == ["box", "example.org", "1"]


def test_only_stdio_and_preserved_fds_reach_the_process(handcar, bundle, tmp_path):
    passed = tmp_path / "passed"
    passed.write_text("passed along\n")
    path = bundle.sh("ls /proc/self/fd; cat <&3").write()
    result = handcar.with_fd3(passed, "run", "--preserve-fds", "1", "-b", path, "fds")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    fds = sorted(int(fd) for fd in lines[:-1])
    assert fds[:4] == [0, 1, 2, 3] and len(fds) == 5      # ls shows its own directory fd too
    assert lines[-1] == "passed along"


def test_fds_are_not_passed_without_preserve(handcar, bundle, tmp_path):
    stray = open(tmp_path / "stray", "w")
    try:
        result = handcar("run", "-b", bundle.sh("ls /proc/self/fd | wc -l").write(), "nofds",
                         pass_fds=(stray.fileno(),))
    finally:
        stray.close()
    assert result.stdout.strip() == "4"                   # 0, 1, 2 and ls's own


def test_time_namespace_offsets(handcar, bundle):
    bundle.linux["namespaces"].append({"type": "time"})
    bundle.linux["timeOffsets"] = {"boottime": {"secs": 86400 * 365}}
    out = run(handcar, bundle, "cut -d. -f1 /proc/uptime")
    assert int(out) >= 86400 * 365


def test_sysctl_in_private_namespaces(handcar, bundle):
    bundle.linux["sysctl"] = {"kernel.shmmni": "1234"}
    bundle.config["linux"]["readonlyPaths"].remove("/proc/sys")
    assert run(handcar, bundle, "cat /proc/sys/kernel/shmmni").strip() == "1234"


def test_missing_program_fails_create_with_podmans_words(handcar, bundle):
    result = handcar("create", "-b", bundle.args("no-such-program").write(), "missing")
    assert result.returncode == 1
    assert result.stderr == ('handcar: exec: "no-such-program": executable file not found '
                             'in $PATH\n')
    assert handcar("list", "-q").stdout == ""
    result = handcar("run", "-b", bundle.args("/bin/nothere").write(), "missing2")
    assert "no such file or directory" in result.stderr and result.returncode == 1


def test_no_new_keyring_is_accepted(handcar, bundle):
    result = handcar("run", "--no-new-keyring", "-b", bundle.args("true").write(), "k2")
    assert result.returncode == 0, result.stderr


def test_unlimited_rlimits_as_podman_writes_them(handcar, bundle):
    import resource
    if resource.getrlimit(resource.RLIMIT_CORE)[1] != resource.RLIM_INFINITY:
        pytest.skip("this host limits core dumps: an unlimited hard limit cannot be asked for")
    bundle.process["rlimits"] = [{"type": "RLIMIT_CORE", "soft": 0,
                                  "hard": 18446744073709551615}]
    assert run(handcar, bundle, "ulimit -Hc; ulimit -c").split() == ["unlimited", "0"]


def test_a_limit_above_the_callers_is_one_clear_line(handcar, bundle):
    hard = __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)[1]
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard + 1}]
    result = handcar("run", "-b", bundle.args("true").write(), "toohigh")
    assert result.returncode == 1
    assert result.stderr.startswith(f"handcar: setting RLIMIT_NOFILE to 1024/{hard + 1}: ")


@needs_subids
def test_exec_user_without_a_group_keeps_the_process_group(handcar, bundle):
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    handcar.ok_detached("run", "-d", "-b", bundle.args("sleep", "100").write(), "grp")
    assert handcar("exec", "-u", "1000", "grp", "id", "-g").stdout == "1000\n"
    assert handcar("exec", "-u", "0:0", "grp", "id", "-g").stdout == "0\n"


def test_preserved_fds_must_be_open(handcar, bundle):
    result = handcar("run", "--preserve-fds", "40", "-b", bundle.args("true").write(), "nofd")
    assert result.returncode == 1 and "--preserve-fds 40: fd 3 is not open" in result.stderr


def test_oom_score_adj_is_raised_and_a_lowering_is_a_warning(handcar, bundle):
    with open("/proc/self/oom_score_adj") as f:
        ours = int(f.read())
    bundle.process["oomScoreAdj"] = min(ours + 100, 1000)
    result = handcar("run", "-b", bundle.sh("cat /proc/self/oom_score_adj").write(), "oom")
    assert (result.returncode, result.stdout) == (0, f"{min(ours + 100, 1000)}\n"), result.stderr
    if ours > -1000 and os.geteuid() != 0:
        bundle.process["oomScoreAdj"] = -1000
        result = handcar("run", "-b", bundle.write(), "lower")
        assert result.returncode == 0 and result.stdout == f"{ours}\n"
        assert "cannot set oomScoreAdj to -1000" in result.stderr


def test_builtin_init_stays_pid_1_reaps_and_passes_signals_on(handcar, bundle):
    # handcar.init=builtin (the friendly --init without catatonit or tini)
    bundle.config.setdefault("annotations", {})["handcar.init"] = "builtin"
    path = bundle.sh("echo pid=$$; cat /proc/1/comm; "
                     "sh -c 'sleep 0.1 &' ; sleep 0.3; "
                     "grep -l '^State:.*Z' /proc/[0-9]*/status | wc -l; "
                     "trap 'echo got-term; exit 7' TERM; "
                     "kill -TERM 1; sleep 5 & wait").write()
    result = handcar("run", "-b", path, "with-init")
    lines = result.stdout.split()
    assert lines[0] != "pid=1", "the command is not PID 1"
    assert lines[1] in ("handcar", "python3"), "PID 1 is handcar's init"
    assert lines[2] == "0", "the orphaned sleep was reaped"
    assert "got-term" in lines and result.returncode == 7, result
