"""What a hostile container may try against handcar's own processes: while init (or the
process `exec` starts) is still handcar, none of its /proc entries (exe, fds, cwd) may be
reachable from the container (the classes of CVE-2019-5736 and CVE-2024-21626)."""


def test_the_container_cannot_reach_inits_proc_entries_before_exec(handcar, bundle, tmp_path):
    """A startContainer hook runs in the container while init is still handcar's python."""
    out = bundle.bind_writable(tmp_path / "out", "/out")
    bundle.config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": [
        "sh", "-c", "readlink -v /proc/1/exe > /out/exe 2>&1; ls /proc/1/fd/ > /out/fd 2>&1; "
                    "ls /proc/1/cwd/ > /out/cwd 2>&1; cat /proc/1/environ > /out/env 2>&1; "
                    "true"]}]}
    result = handcar("run", "-b", bundle.args("true").write(), "peek")
    assert result.returncode == 0, result.stderr
    for name in ("exe", "fd", "cwd", "env"):
        assert "Permission denied" in (out / name).read_text(), (name, (out / name).read_text())


def test_exec_into_a_created_container_is_refused_clearly(handcar, bundle):
    handcar.ok_detached("create", "-b", bundle.args("true").write(), "made")
    result = handcar("exec", "made", "true")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "start it first" in result.stderr
