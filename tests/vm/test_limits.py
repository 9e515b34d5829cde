"""cgroup v2 limits with real controllers: run inside the QEMU guest by scripts/vm-test.

Python is slow under software emulation, so each test makes few handcar calls.
"""

import json
import os
import time

from rootless.runtime import cgroups

ROOT = cgroups.delegated_root()


def leaf(container_id):
    return cgroups.Cgroup(os.path.join(ROOT, "handcar", container_id))


def test_the_delegated_root_has_the_controllers():
    assert ROOT == os.environ["DELEGATED_CGROUP"]
    assert {"memory", "pids", "cpu"} <= cgroups.available_controllers(ROOT)


def test_memory_hog_is_oom_killed(handcar, bundle):
    bundle.linux["resources"] = {"memory": {"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024}}
    result = handcar("run", "-b", bundle.args("dd", "if=/dev/zero", "of=/dev/null",
                                             "bs=64M", "count=1").write(), "hog", timeout=300)
    assert result.returncode == 137, result.stderr


def test_limits_are_written_and_held_and_updated(handcar, bundle):
    bundle.linux["resources"] = {"memory": {"limit": 33554432},
                                 "cpu": {"quota": 50000, "period": 100000},
                                 "pids": {"limit": 20}}
    # ash exits when a fork fails: fork from a child shell, and exec the last sleep
    bundle.sh("sh -c 'for i in $(seq 40); do sleep 1000 & done' 2>/dev/null; exec sleep 1000")
    handcar.ok_detached("run", "-d", "-b", bundle.write(), "lim", timeout=300)
    cg = leaf("lim")
    assert cg.read("memory.max").strip() == "33554432"
    assert cg.read("cpu.max").strip() == "50000 100000"
    assert cg.read("pids.max").strip() == "20"
    def refused_forks():
        return int(dict(line.split() for line in cg.read("pids.events").splitlines())["max"])
    deadline = time.monotonic() + 120
    while refused_forks() == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert refused_forks() > 0                    # the 21st fork was refused ...
    assert int(cg.read("pids.current")) <= 20     # ... and the limit held
    handcar.ok("update", "--pids-limit", "30", "lim", timeout=300)
    assert cg.read("pids.max").strip() == "30"


def test_pause_resume_stats_and_delete(handcar, bundle):
    handcar.ok_detached("run", "-d", "-b", bundle.args("sleep", "1000").write(), "p",
                        timeout=300)
    cg = leaf("p")
    handcar.ok("pause", "p", timeout=300)
    assert "frozen 1" in cg.read("cgroup.events").splitlines()
    assert handcar.state("p")["status"] == "paused"
    handcar.ok("resume", "p", timeout=300)
    assert "frozen 0" in cg.read("cgroup.events").splitlines()
    event = json.loads(handcar.ok("events", "--stats", "p", timeout=300).stdout)
    assert event["data"]["memory"]["usage"]["usage"] > 0
    assert event["data"]["pids"]["current"] == 1
    handcar.ok("delete", "--force", "p", timeout=300)
    assert not os.path.exists(cg.path)
