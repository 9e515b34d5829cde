"""The VM tier works: unprivileged, in a delegated cgroup v2 subtree with every controller,
user namespaces with the subordinate ids, and handcar runs."""

import os
import subprocess
import sys
from pathlib import Path

CONTROLLERS = {"cpu", "cpuset", "io", "memory", "pids"}


def test_runs_unprivileged():
    assert os.getuid() != 0 and os.geteuid() != 0
    assert os.getgid() != 0 and os.getegid() != 0


def test_delegated_cgroup_has_every_controller(delegated_cgroup):
    assert delegated_cgroup.is_dir()
    assert Path("/sys/fs/cgroup/cgroup.controllers").exists(), "not a pure cgroup v2 host"
    assert CONTROLLERS <= set((delegated_cgroup / "cgroup.controllers").read_text().split())
    assert CONTROLLERS <= set((delegated_cgroup / "cgroup.subtree_control").read_text().split())
    assert delegated_cgroup.stat().st_uid == os.getuid()


def test_tests_run_inside_the_delegated_subtree(delegated_cgroup, own_cgroup):
    assert delegated_cgroup in own_cgroup.parents, f"{own_cgroup} is not under {delegated_cgroup}"
    assert str(os.getpid()) in (own_cgroup / "cgroup.procs").read_text().split()


def test_limits_can_be_set_and_are_enforced(scratch_cgroup):
    assert CONTROLLERS <= set((scratch_cgroup / "cgroup.controllers").read_text().split())
    (scratch_cgroup / "memory.max").write_text("67108864")
    assert (scratch_cgroup / "memory.max").read_text().strip() == "67108864"
    (scratch_cgroup / "cpu.max").write_text("50000 100000")
    assert (scratch_cgroup / "cpu.max").read_text().split() == ["50000", "100000"]
    (scratch_cgroup / "pids.max").write_text("1")
    # the shell moves itself in, then cannot fork
    result = subprocess.run(
        ["/bin/sh", "-c", 'echo $$ > "$1/cgroup.procs" && /bin/true && echo forked', "sh",
         str(scratch_cgroup)], capture_output=True, text=True, timeout=60)
    assert "forked" not in result.stdout
    assert result.returncode != 0
    assert "max 1" in (scratch_cgroup / "pids.events").read_text()


def test_user_namespace_with_subordinate_ids():
    result = subprocess.run(["unshare", "--user", "--map-root-user", "id", "-u"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
    # newuidmap/newgidmap (setuid) with the user's /etc/subuid and /etc/subgid ranges
    result = subprocess.run(["unshare", "--user", "--map-auto", "cat", "/proc/self/uid_map",
                             "/proc/self/gid_map"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["0", "100000", "65536"], ["0", "100000", "65536"]]


def test_handcar_version():
    result = subprocess.run([sys.executable, "-m", "rootless", "--version"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("handcar version ")
