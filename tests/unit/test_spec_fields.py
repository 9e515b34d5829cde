"""runtime-spec 1.2 and 1.3's fields: each translated into what its system call takes, or
refused by name with why."""

import pytest

from oci import mounts as opts
from oci import spec as oci_spec
from oci import tuning
from oci.errors import SpecError
from oci.resources import parse_resources


def config(process=None, linux=None, **top):
    doc = {"ociVersion": "1.3.0", "root": {"path": "rootfs"},
           "process": dict({"args": ["sh"], "cwd": "/"}, **(process or {})),
           "linux": dict({"namespaces": [{"type": "mount"}]}, **(linux or {}))}
    doc.update(top)
    return doc


def load(**parts):
    return oci_spec.from_json(config(**parts))


def problems(**parts):
    with pytest.raises(SpecError) as info:
        oci_spec.from_json(config(**parts))
    return info.value.problems


def refused(expected, **parts):
    found = problems(**parts)
    assert any(p.startswith(expected) for p in found), (expected, found)
    return found


# --- process.scheduler -------------------------------------------------------------------

def test_scheduler_becomes_sched_setattr_values():
    sched = load(process={"scheduler": {"policy": "SCHED_BATCH", "nice": 7,
                                        "flags": ["SCHED_FLAG_RESET_ON_FORK",
                                                  "SCHED_FLAG_KEEP_PARAMS"]}}).process.scheduler
    assert (sched.policy_number, sched.nice, sched.priority, sched.flag_bits) == (3, 7, 0, 0x11)
    fifo = load(process={"scheduler": {"policy": "SCHED_FIFO", "priority": 10}}).process.scheduler
    assert (fifo.policy_number, fifo.priority) == (1, 10)
    deadline = load(process={"scheduler": {
        "policy": "SCHED_DEADLINE", "runtime": 10**6, "deadline": 2 * 10**6,
        "period": 4 * 10**6}}).process.scheduler
    assert (deadline.policy_number, deadline.runtime, deadline.period) == (6, 10**6, 4 * 10**6)


@pytest.mark.parametrize("scheduler,expected", [
    ({"nice": 1}, "process.scheduler.policy: required"),
    ({"policy": "SCHED_WHATEVER"}, "process.scheduler.policy: must be one of"),
    ({"policy": "SCHED_ISO"}, "process.scheduler.policy: SCHED_ISO is not implemented"),
    ({"policy": "SCHED_OTHER", "nice": 20}, "process.scheduler.nice: must be between -20"),
    ({"policy": "SCHED_RR"}, "process.scheduler.priority: SCHED_RR takes a priority"),
    ({"policy": "SCHED_OTHER", "priority": 5}, "process.scheduler.priority: must be 0"),
    ({"policy": "SCHED_BATCH", "runtime": 5}, "process.scheduler.runtime: is for SCHED_DEADLINE"),
    ({"policy": "SCHED_DEADLINE"}, "process.scheduler: SCHED_DEADLINE needs a runtime"),
    ({"policy": "SCHED_DEADLINE", "runtime": 9, "deadline": 5},
     "process.scheduler: SCHED_DEADLINE needs runtime <= deadline"),
    ({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_UTIL_CLAMP_MIN"]},
     "process.scheduler.flags: SCHED_FLAG_UTIL_CLAMP_MIN: the spec has no field"),
    ({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_RECLAIM"]},
     "process.scheduler.flags: SCHED_FLAG_RECLAIM is for SCHED_DEADLINE"),
])
def test_bad_schedulers_are_refused(scheduler, expected):
    refused(expected, process={"scheduler": scheduler})


# --- process.ioPriority, execCPUAffinity ------------------------------------------------

@pytest.mark.parametrize("io_class,number", [("IOPRIO_CLASS_RT", 1), ("IOPRIO_CLASS_BE", 2),
                                             ("IOPRIO_CLASS_IDLE", 3)])
def test_io_priority_is_class_and_level(io_class, number):
    prio = load(process={"ioPriority": {"class": io_class, "priority": 5}}).process.io_priority
    assert prio.value == number << 13 | 5


@pytest.mark.parametrize("prio,expected", [
    ({"class": "IOPRIO_CLASS_BE", "priority": 8}, "process.ioPriority.priority: must be <= 7"),
    ({"class": "IOPRIO_CLASS_NONE", "priority": 0}, "process.ioPriority.class: must be one of"),
    ({"priority": 1}, "process.ioPriority.class: required"),
])
def test_bad_io_priorities(prio, expected):
    refused(expected, process={"ioPriority": prio})


def test_exec_cpu_affinity_lists():
    affinity = load(process={"execCPUAffinity": {"initial": "7", "final": "0-3,7"}}) \
        .process.exec_cpu_affinity
    assert affinity.initial == {7} and affinity.final == {0, 1, 2, 3, 7}
    assert load(process={"execCPUAffinity": {"final": ""}}).process.exec_cpu_affinity == \
        tuning.CPUAffinity(None, None)
    refused("process.execCPUAffinity.final: '3-1'", process={"execCPUAffinity": {"final": "3-1"}})
    refused("process.execCPUAffinity.initial: 'a'", process={"execCPUAffinity": {"initial": "a"}})


def test_exec_takes_the_same_fields():
    process = oci_spec.process_from_json({"args": ["true"], "cwd": "/",
                                          "ioPriority": {"class": "IOPRIO_CLASS_IDLE",
                                                         "priority": 0},
                                          "execCPUAffinity": {"final": "1"}})
    assert process.io_priority.value == 3 << 13 and process.exec_cpu_affinity.final == {1}
    assert process.tuned() and not load().process.tuned()


# --- linux.memoryPolicy, linux.personality ----------------------------------------------

def test_memory_policy_becomes_set_mempolicy_values():
    policy = load(linux={"memoryPolicy": {"mode": "MPOL_INTERLEAVE", "nodes": "0-2,5",
                                          "flags": ["MPOL_F_STATIC_NODES"]}}).linux.memory_policy
    assert policy.nodes == {0, 1, 2, 5} and policy.mode_and_flags == 3 | 1 << 15
    local = load(linux={"memoryPolicy": {"mode": "MPOL_LOCAL"}}).linux.memory_policy
    assert local.mode_and_flags == 4 and not local.nodes


@pytest.mark.parametrize("policy,expected", [
    ({"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes: MPOL_BIND needs at least one node"),
    ({"mode": "MPOL_DEFAULT", "nodes": "0"}, "linux.memoryPolicy.nodes: MPOL_DEFAULT takes no"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES",
                                                   "MPOL_F_RELATIVE_NODES"]},
     "linux.memoryPolicy.flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]},
     "linux.memoryPolicy.flags: MPOL_F_NUMA_BALANCING goes with MPOL_BIND"),
    ({"mode": "MPOL_LOCAL", "flags": ["MPOL_F_STATIC_NODES"]},
     "linux.memoryPolicy.flags: MPOL_LOCAL takes no node flags"),
    ({"mode": "MPOL_NOPE"}, "linux.memoryPolicy.mode: must be one of"),
    ({"mode": "MPOL_BIND", "nodes": "0-"}, "linux.memoryPolicy.nodes: '0-' is not a list"),
])
def test_bad_memory_policies(policy, expected):
    refused(expected, linux={"memoryPolicy": policy})


def test_personality():
    assert load(linux={"personality": {"domain": "LINUX32"}}).linux.personality.value == 8
    assert load(linux={"personality": {"domain": "LINUX"}}).linux.personality.value == 0
    refused("linux.personality.domain: must be one of",
            linux={"personality": {"domain": "SVR4"}})
    refused("linux.personality.flags: ADDR_NO_RANDOMIZE: the spec defines no",
            linux={"personality": {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}})


# --- what is refused whatever the host ---------------------------------------------------

@pytest.mark.parametrize("platform", ["windows", "solaris", "freebsd", "zos", "vm"])
def test_other_platforms_are_refused(platform):
    refused(f"{platform}: ", **{platform: {"something": 1}})


def test_net_devices_and_intel_rdt_are_refused():
    refused("linux.netDevices: moving a host network device into the container needs "
            "CAP_NET_ADMIN", linux={"netDevices": {"eth1": {"name": "net1"}}})
    refused("linux.intelRdt: handcar does not implement Intel RDT",
            linux={"intelRdt": {"closID": "guaranteed_group"}})
    assert load(linux={"netDevices": {}}).linux is not None


def test_idmapped_mounts_and_mand_are_refused():
    bind = {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind"],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}
    found = refused("mounts[0].uidMappings: id-mapped mounts are not supported", mounts=[bind])
    assert any(p.startswith("mounts[0].gidMappings: id-mapped") for p in found)
    refused("mounts[0].options: ridmap: id-mapped mounts", mounts=[
        {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind",
                                                                                "ridmap"]}])
    refused("mounts[0].options: mand: mandatory locking is gone", mounts=[
        {"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["mand"]}])


def test_device_denied_by_the_rules_is_refused():
    fuse = {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229}
    deny_all = [{"allow": False, "access": "rwm"}]
    refused("linux.devices[0]: /dev/fuse (c 10:229) is denied by linux.resources.devices",
            linux={"devices": [fuse], "resources": {"devices": deny_all}})
    allowed = deny_all + [{"allow": True, "type": "c", "major": 10, "minor": 229,
                           "access": "rwm"}]
    assert load(linux={"devices": [fuse], "resources": {"devices": allowed}}).linux.devices
    # only making the node (m) allowed is no access
    mknod_only = deny_all + [{"allow": True, "type": "c", "major": -1, "minor": -1,
                              "access": "m"}]
    refused("linux.devices[0]: /dev/fuse", linux={"devices": [fuse],
                                                 "resources": {"devices": mknod_only}})
    refused("linux.resources.devices[0].access: must be made of r, w and m",
            linux={"resources": {"devices": [{"allow": True, "access": "rx"}]}})


# --- linux.resources: cgroup v1 alone, and the kernel's defaults --------------------------

@pytest.mark.parametrize("resources,expected", [
    ({"memory": {"kernel": 1 << 20}}, "linux.resources.memory.kernel: kernel memory limits"),
    ({"memory": {"kernelTCP": 1 << 20}}, "linux.resources.memory.kernelTCP: kernel TCP"),
    ({"memory": {"swappiness": 10}}, "linux.resources.memory.swappiness: cgroup v2 has no"),
    ({"memory": {"disableOOMKiller": True}}, "linux.resources.memory.disableOOMKiller: "),
    ({"memory": {"useHierarchy": False}}, "linux.resources.memory.useHierarchy: "),
    ({"memory": {"checkBeforeUpdate": True}}, "linux.resources.memory.checkBeforeUpdate: "),
    ({"network": {"classID": 1048577}}, "linux.resources.network: network classes"),
    ({"blockIO": {"leafWeight": 10}}, "linux.resources.blockIO.leafWeight: leaf weights"),
    ({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "leafWeight": 300}]}},
     "linux.resources.blockIO.weightDevice[0].leafWeight: leaf weights"),
])
def test_cgroup_v1_settings_are_refused(resources, expected):
    refused(expected, linux={"resources": resources})


def test_settings_that_ask_for_nothing_are_accepted():
    spec = load(linux={"resources": {
        "memory": {"kernel": -1, "kernelTCP": -1, "disableOOMKiller": False,
                   "useHierarchy": True, "swappiness": 2**64 - 1},
        "network": {}, "blockIO": {"leafWeight": 0}}})
    assert spec.linux.cgroup_settings == {}


def test_kernel_defaults_are_no_limit_at_create_but_written_by_update():
    # containerd's default spec: cpu.shares 1024 must not need the cpu controller
    defaults = {"cpu": {"shares": 1024, "quota": -1, "period": 100000}, "pids": {"limit": -1},
                "memory": {"limit": -1}, "blockIO": {"weight": 500}}
    assert load(linux={"resources": defaults}).linux.cgroup_settings == {
        "io.weight": "default 4950"}
    assert parse_resources(defaults) == {
        "cpu.weight": "100", "cpu.max": "max 100000", "pids.max": "max", "memory.max": "max",
        "memory.swap.max": "max", "io.weight": "default 4950"}


def test_a_pids_limit_of_zero_is_a_limit():
    assert load(linux={"resources": {"pids": {"limit": 0}}}).linux.cgroup_settings == {
        "pids.max": "0"}


# --- recursive mount options --------------------------------------------------------------

def test_recursive_options_become_mount_setattr_bits():
    parsed = opts.parse_options(["rbind", "rro", "rnosuid", "rnodev", "rnoexec",
                                 "rnodiratime", "rnosymfollow"])
    assert parsed.flags == opts.BIND | opts.REC and parsed.data == ""
    assert parsed.recursive_set == (opts.ATTR_RDONLY | opts.ATTR_NOSUID | opts.ATTR_NODEV
                                    | opts.ATTR_NOEXEC | opts.ATTR_NODIRATIME
                                    | opts.ATTR_NOSYMFOLLOW)
    assert parsed.recursive_clear == 0
    cleared = opts.parse_options(["rro", "rrw", "rsuid", "rdev", "rexec", "rdiratime"])
    assert cleared.recursive_set == 0
    assert cleared.recursive_clear == (opts.ATTR_RDONLY | opts.ATTR_NOSUID | opts.ATTR_NODEV
                                       | opts.ATTR_NOEXEC | opts.ATTR_NODIRATIME)
    assert not opts.parse_options(["rbind", "ro"]).recursive


@pytest.mark.parametrize("option,mode", [
    ("rnoatime", opts.ATTR_NOATIME), ("rstrictatime", opts.ATTR_STRICTATIME),
    ("rrelatime", opts.ATTR_RELATIME), ("ratime", opts.ATTR_RELATIME),
    ("rnostrictatime", opts.ATTR_RELATIME), ("rnorelatime", opts.ATTR_STRICTATIME)])
def test_recursive_atime_options_set_one_mode(option, mode):
    # the kernel takes an access-time mode only with all of MOUNT_ATTR__ATIME cleared
    parsed = opts.parse_options(["rnoatime", option])
    assert parsed.recursive_set & opts.ATTR__ATIME == mode
    assert parsed.recursive_clear & opts.ATTR__ATIME == opts.ATTR__ATIME
    assert parsed.recursive


def test_parse_list():
    assert tuning.parse_list("0-3,7") == {0, 1, 2, 3, 7}
    assert tuning.parse_list("5") == {5}
    for bad in ("", "a", "1-", "-1", "1,,2", "4-2"):
        with pytest.raises(ValueError):
            tuning.parse_list(bad)
