"""runtime-spec 1.2 and 1.3's process and kernel settings, done as the unprivileged user
(or refused by name, with nothing left behind)."""

import json
import os

import pytest

from harness import Handcar  # noqa: F401  (the fixtures come from conftest)
from rootless.system import libc


def run(handcar, bundle, script, name="f"):
    result = handcar("run", "-b", bundle.sh(script).write(), name)
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(handcar, bundle, expected, name="r"):
    """create fails with one line naming the field, and leaves nothing behind."""
    result = handcar("create", "-b", bundle.args("true").write(), name)
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert expected in result.stderr, result.stderr
    assert handcar("list", "-q").stdout == ""
    assert not handcar.root.exists() or os.listdir(handcar.root) == []
    return result.stderr


def test_io_priority_is_set_and_read_back_with_ioprio_get(handcar, bundle):
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
    assert run(handcar, bundle, "ionice -p $$").strip() == "idle"
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    path = bundle.args("sleep", "30").write()
    handcar.ok_detached("run", "-d", "-b", path, "io")
    pid = handcar.state("io")["pid"]
    assert libc.ioprio_get(pid) == 2 << 13 | 6       # what ioprio_get says of the process
    assert "best-effort: prio 6" in handcar.ok("exec", "io", "ionice", "-p", "1").stdout


def _stat_fields(text):
    """/proc/PID/stat's fields after the command name: (state, ...), numbered from 3."""
    return text.rsplit(")", 1)[1].split()


def test_scheduler_batch_with_a_higher_nice(handcar, bundle):
    bundle.process["scheduler"] = {"policy": "SCHED_BATCH", "nice": 11}
    fields = _stat_fields(run(handcar, bundle, "cat /proc/self/stat"))
    nice, policy = int(fields[19 - 3]), int(fields[41 - 3])
    assert (policy, nice) == (3, 11)


def test_scheduler_idle(handcar, bundle):
    bundle.process["scheduler"] = {"policy": "SCHED_IDLE"}
    fields = _stat_fields(run(handcar, bundle, "cat /proc/self/stat"))
    assert int(fields[41 - 3]) == 5


def test_memory_policy_shows_in_numa_maps(handcar, bundle):
    bundle.linux["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0"}
    maps = run(handcar, bundle, "cat /proc/self/numa_maps")
    assert maps and all(line.split()[1] == "bind:0" for line in maps.splitlines()), maps
    bundle.linux["memoryPolicy"] = {"mode": "MPOL_INTERLEAVE", "nodes": "0",
                                    "flags": ["MPOL_F_STATIC_NODES"]}
    first = run(handcar, bundle, "head -1 /proc/self/numa_maps")
    assert first.split()[1] == "interleave=static:0", first


def test_personality_linux32(handcar, bundle):
    machine = os.uname().machine
    if machine not in ("x86_64", "aarch64"):
        pytest.skip(f"no 32-bit personality to compare with on {machine}")
    bundle.linux["personality"] = {"domain": "LINUX32"}
    assert run(handcar, bundle, "uname -m").strip() in ("i686", "armv8l", "armv7l")
    bundle.linux["personality"] = {"domain": "LINUX"}
    assert run(handcar, bundle, "uname -m").strip() == machine


def test_exec_cpu_affinity_applies_to_exec_not_to_init(handcar, bundle, tmp_path):
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        pytest.skip("one CPU: no affinity to tell from the default")
    last = usable[-1]
    bundle.process["execCPUAffinity"] = {"initial": str(usable[0]), "final": str(last)}
    handcar.ok_detached("run", "-d", "-b", bundle.args("sleep", "30").write(), "aff")
    assert os.sched_getaffinity(handcar.state("aff")["pid"]) == set(usable)
    out = handcar.ok("exec", "aff", "grep", "Cpus_allowed_list", "/proc/self/status").stdout
    assert out.split()[-1] == str(last)
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["grep", "Cpus_allowed_list", "/proc/self/status"],
                                   "cwd": "/", "execCPUAffinity": {"final": str(usable[0])}}))
    out = handcar.ok("exec", "-p", str(process), "aff").stdout
    assert out.split()[-1] == str(usable[0])


@pytest.mark.skipif(os.geteuid() == 0, reason="root may use these; the unprivileged tier "
                                              "checks their refusal")
def test_what_needs_privilege_is_refused_by_name(handcar, bundle):
    bundle.process["scheduler"] = {"policy": "SCHED_FIFO", "priority": 10}
    refused(handcar, bundle, "process.scheduler: SCHED_FIFO at priority 10 needs "
                             "CAP_SYS_NICE on the host, or an RLIMIT_RTPRIO")
    bundle.process["scheduler"] = {"policy": "SCHED_OTHER", "nice": -5}
    refused(handcar, bundle, "process.scheduler.nice: -5 is below")
    del bundle.process["scheduler"]
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_RT", "priority": 0}
    refused(handcar, bundle, "process.ioPriority: IOPRIO_CLASS_RT needs CAP_SYS_ADMIN")


def test_what_this_host_cannot_do_is_refused_by_name(handcar, bundle):
    bundle.linux["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "63"}
    refused(handcar, bundle, "linux.memoryPolicy.nodes: node 63 is not one this process "
                             "may use here")
    del bundle.linux["memoryPolicy"]
    bundle.process["execCPUAffinity"] = {"final": "1023"}
    refused(handcar, bundle, "process.execCPUAffinity.final: CPU 1023 is not one")
    del bundle.process["execCPUAffinity"]
    if not os.path.exists("/sys/fs/selinux/enforce"):
        bundle.process["selinuxLabel"] = "system_u:system_r:container_t:s0"
        refused(handcar, bundle, "process.selinuxLabel: SELinux is not enabled on this host")
        del bundle.process["selinuxLabel"]
    bundle.linux["netDevices"] = {"eth0": {}}
    refused(handcar, bundle, "linux.netDevices: moving a host network device")
    del bundle.linux["netDevices"]
    bundle.linux["devices"] = [{"path": "/dev/null", "type": "c", "major": 1, "minor": 5}]
    refused(handcar, bundle, "linux.devices[0]: the host's /dev/null is c 1:3, not c 1:5")


def test_a_1_3_config_from_newer_tooling_runs(handcar, bundle):
    bundle.config["ociVersion"] = "1.3.0"
    bundle.config["somethingFromSpec1_4"] = {"ignored": True}
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 4}
    bundle.linux["resources"] = {"cpu": {"shares": 1024}, "memory": {"limit": -1},
                                 "devices": [{"allow": False, "access": "rwm"}]}
    assert run(handcar, bundle, "echo ok") == "ok\n"
