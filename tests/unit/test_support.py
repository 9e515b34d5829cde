"""What this host and caller cannot do of a config, refused by name before create."""

import os

import pytest

from oci import spec as oci_spec
from oci.errors import SpecError
from rootless.runtime import support


def load(process=None, linux=None):
    doc = {"ociVersion": "1.3.0", "root": {"path": "rootfs"},
           "process": dict({"args": ["sh"], "cwd": "/"}, **(process or {})),
           "linux": dict({"namespaces": [{"type": "mount"}]}, **(linux or {}))}
    return oci_spec.from_json(doc)


def problems(spec, in_userns=True):
    return support.check_process(spec.process, "process", in_userns, raise_them=False)


def rlimit(name, soft):
    return {"type": name, "soft": soft, "hard": max(soft, 99)}


def test_realtime_scheduling_needs_rtprio_in_a_user_namespace():
    fifo = {"policy": "SCHED_FIFO", "priority": 10}
    found = problems(load(process={"scheduler": fifo,
                                   "rlimits": [rlimit("RLIMIT_RTPRIO", 0)]}))
    assert found == ["process.scheduler: SCHED_FIFO at priority 10 needs CAP_SYS_NICE on the "
                     "host, or an RLIMIT_RTPRIO of at least 10 (it is 0)"]
    assert problems(load(process={"scheduler": fifo,
                                  "rlimits": [rlimit("RLIMIT_RTPRIO", 10)]})) == []
    deadline = {"policy": "SCHED_DEADLINE", "runtime": 10**6, "deadline": 10**7}
    assert problems(load(process={"scheduler": deadline})) == [
        "process.scheduler: SCHED_DEADLINE needs CAP_SYS_NICE on the host (root)"]


def test_a_nice_below_ours_needs_rlimit_nice():
    current = os.getpriority(os.PRIO_PROCESS, 0)
    lower = max(current - 1, -20)
    if lower == current:
        pytest.skip("this process already runs at nice -20")
    sched = {"policy": "SCHED_OTHER", "nice": lower}
    found = problems(load(process={"scheduler": sched, "rlimits": [rlimit("RLIMIT_NICE", 0)]}))
    assert len(found) == 1 and found[0].startswith(f"process.scheduler.nice: {lower} is below")
    assert problems(load(process={"scheduler": sched,
                                  "rlimits": [rlimit("RLIMIT_NICE", 40)]})) == []
    higher = {"policy": "SCHED_BATCH", "nice": min(current + 1, 19)}
    assert problems(load(process={"scheduler": higher, "rlimits": [rlimit("RLIMIT_NICE", 0)]})) == []


def test_realtime_io_class_and_unusable_cpus():
    spec = load(process={"ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": 0},
                         "execCPUAffinity": {"final": "4095"}})
    found = problems(spec)
    assert found[0].startswith("process.ioPriority: IOPRIO_CLASS_RT needs CAP_SYS_ADMIN")
    assert found[1].startswith("process.execCPUAffinity.final: CPU 4095 is not one this "
                               "process may use here")
    usable = ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0)))
    assert problems(load(process={"execCPUAffinity": {"initial": usable}})) == []


def test_lsm_labels_where_the_lsm_is_off():
    spec = load(process={"apparmorProfile": "x", "selinuxLabel": "y"})
    found = problems(spec)
    assert ("process.apparmorProfile: AppArmor is not enabled on this host" in found) == \
        (not support.apparmor_enabled())
    assert ("process.selinuxLabel: SELinux is not enabled on this host" in found) == \
        (not support.selinux_enabled())


def test_memory_policy_nodes_must_be_usable():
    if not os.path.isdir("/sys/devices/system/node"):
        pytest.skip("this kernel has no NUMA support")
    with pytest.raises(SpecError) as info:
        support.check(load(linux={"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0,1023"}}),
                      "config.json", print)
    assert info.value.problems == [
        f"linux.memoryPolicy.nodes: node 1023 is not one this process may use here "
        f"({','.join(str(n) for n in sorted(support._allowed_nodes()))})"]
    support.check(load(linux={"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "1023",
                                               "flags": ["MPOL_F_RELATIVE_NODES"]}}),
                  "config.json", print)


def test_devices_must_be_the_hosts():
    warnings = []
    null = {"path": "/dev/null", "type": "c", "major": 1, "minor": 3}
    support.check(load(linux={"devices": [null]}), "c", warnings.append)
    assert warnings == []
    with pytest.raises(SpecError) as info:
        support.check(load(linux={"devices": [
            dict(null, minor=5), dict(null, type="b"),
            {"path": "/dev/handcar-none", "type": "c", "major": 1, "minor": 3}]}),
            "c", warnings.append)
    assert info.value.problems[0] == ("linux.devices[0]: the host's /dev/null is c 1:3, not "
                                      "c 1:5 (devices are bind mounts of the host's nodes)")
    assert info.value.problems[1].startswith("linux.devices[1]: the host's /dev/null is c 1:3, "
                                             "not b 1:3")
    assert info.value.problems[2].startswith("linux.devices[2]: /dev/handcar-none on the "
                                             "host: No such file or directory")
    mode = os.stat("/dev/null").st_mode & 0o7777
    support.check(load(linux={"devices": [dict(null, fileMode=0o600 if mode != 0o600 else 0o644,
                                               uid=12345)]}), "c", warnings.append)
    assert len(warnings) == 2
    assert warnings[0].startswith("linux.devices[0]: /dev/null keeps the host's mode")
    assert warnings[1].startswith("linux.devices[0]: /dev/null keeps the host's owner (uid 0")


def test_host_privilege_does_not_count_in_a_user_namespace(monkeypatch):
    monkeypatch.setattr(support, "host_root", lambda: True)
    spec = load(process={"ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": 0}})
    assert problems(spec, in_userns=False) == []
    assert len(problems(spec, in_userns=True)) == 1
