import pytest

from oci.errors import SpecError
from oci.resources import (controllers, cpu_weight, io_weight, parse_resources, swap_max)


def settings(doc):
    return parse_resources(doc)


def test_runc_conversions():
    # crun's and runc's curve: both ends, and the v1 default onto the v2 default
    assert cpu_weight(2) == 1 and cpu_weight(1024) == 100 and cpu_weight(262144) == 10000
    weights = [cpu_weight(shares) for shares in range(2, 262145, 97)]
    assert weights == sorted(weights) and 1 <= min(weights) and max(weights) <= 10000
    assert io_weight(10) == 1 and io_weight(1000) == 10000 and io_weight(500) == 4950


@pytest.mark.parametrize("swap,memory,expected", [
    (None, None, None), (0, 100, None), (-1, 100, "max"), (None, -1, "max"),
    (300, 100, "200"), (100, 100, "0")])
def test_swap(swap, memory, expected):
    assert swap_max(swap, memory) == expected


@pytest.mark.parametrize("swap,memory", [(50, 100), (100, None), (100, -1)])
def test_bad_swap(swap, memory):
    with pytest.raises(ValueError):
        swap_max(swap, memory)


def test_every_section():
    got = settings({
        "memory": {"limit": 33554432, "reservation": 1048576, "swap": 67108864},
        "cpu": {"shares": 512, "quota": 50000, "period": 200000, "burst": 1000, "idle": 0,
                "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 20},
        "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 10}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 0}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "rdma": {"mlx4_0": {"hcaHandles": 3, "hcaObjects": 100}},
        "unified": {"memory.high": "30M", "cgroup.max.depth": "2",
                    "hugetlb.1GB.rsvd.max": "0"},
    })
    assert got == {
        "memory.max": "33554432", "memory.low": "1048576", "memory.swap.max": "33554432",
        "cpu.weight": "59", "cpu.max": "50000 200000", "cpu.max.burst": "1000", "cpu.idle": "0",
        "cpuset.cpus": "0-1", "cpuset.mems": "0", "pids.max": "20",
        "io.weight": ("default 4950", "8:0 1"),
        "io.max": ("8:0 rbps=1000", "8:16 wiops=max"),
        "hugetlb.2MB.max": "4194304", "rdma.max": ("mlx4_0 hca_handle=3 hca_object=100",),
        "memory.high": "30M", "cgroup.max.depth": "2", "hugetlb.1GB.rsvd.max": "0",
    }
    assert controllers(got) == {"memory", "cpu", "cpuset", "pids", "io", "hugetlb", "rdma"}


def test_unlimited_values():
    assert settings({"memory": {"limit": -1}, "pids": {"limit": -1},
                     "cpu": {"quota": -1, "period": 100000}}) == {
        "memory.max": "max", "memory.swap.max": "max", "pids.max": "max",
        "cpu.max": "max 100000"}


def test_nothing_asked_means_nothing_written():
    assert settings({}) == {}
    # containerd's default spec: cgroup v1's default share is cgroup v2's default weight,
    # which create leaves out (a kernel default is no limit: test_spec_fields.py)
    assert settings({"cpu": {"shares": 1024}}) == {"cpu.weight": "100"}
    assert settings({"devices": [{"allow": False, "access": "rwm"}]}) == {}


def test_problems_are_reported_with_paths():
    with pytest.raises(SpecError) as info:
        settings({"memory": {"limit": "lots", "swap": 5},
                  "cpu": {"realtimeRuntime": 5, "shares": -3},
                  "hugepageLimits": [{"pageSize": "2M", "limit": 1}],
                  "unified": {"cgroup.procs": "1", "../../x": "1", "Memory.max": "1"},
                  "blockIO": {"weight": 5}})
    problems = info.value.problems
    for expected in ("linux.resources.memory.limit: must be an integer",
                     "linux.resources.memory.swap: a swap limit needs a memory limit",
                     "linux.resources.cpu.realtimeRuntime: realtime scheduling is a cgroup v1",
                     "linux.resources.cpu.shares: must be >= 0",
                     "linux.resources.hugepageLimits[0].pageSize: must look like 2MB",
                     "linux.resources.unified.cgroup.procs: is not a cgroup v2 interface",
                     "linux.resources.unified.../../x: is not a cgroup v2 interface",
                     "linux.resources.unified.Memory.max: is not a cgroup v2 interface",
                     "linux.resources.blockIO.weight: must be between 10 and 1000"):
        assert any(p.startswith(expected) for p in problems), (expected, problems)


def test_config_json_carries_the_settings():
    from oci.spec import from_json
    spec = from_json({"ociVersion": "1.2.0", "root": {"path": "r"},
                      "process": {"args": ["sh"], "cwd": "/"},
                      "linux": {"namespaces": [{"type": "mount"}],
                                "resources": {"pids": {"limit": 7}}}})
    assert spec.linux.cgroup_settings == {"pids.max": "7"}
