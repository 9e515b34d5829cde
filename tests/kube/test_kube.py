"""Pods and containers through containerd's CRI, each step with handcar as the runtime
handler and again with runc (the `handler` fixture): the calls the kubelet makes, and what
they should have done checked on the node itself (cgroups, namespaces, the handler's own
`state` of each container)."""

import ipaddress
import os
import re
import time
from pathlib import Path


from kubenode import POD_SUBNET

SANDBOX_READY, SANDBOX_NOTREADY = 0, 1
LOG_LINE = re.compile(r"^\S+ (stdout|stderr) F (.*)$")   # the CRI's log format, whole lines


def log_lines(node, pod, name):
    return [LOG_LINE.match(line).groups() for line in node.log(pod, name).splitlines()]


def wait_for_log(node, pod, name, count, timeout=60):
    deadline = time.monotonic() + timeout
    while len(lines := log_lines(node, pod, name)) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    return lines


def test_the_pod_runs_under_the_handler(node, handler, pod):
    status = node.cri.call("PodSandboxStatus", {"pod_sandbox_id": pod.id}).status
    assert status.state == SANDBOX_READY
    assert status.runtime_handler == handler
    assert ipaddress.ip_address(status.network.ip) in ipaddress.ip_network(POD_SUBNET)
    # the pause container is the handler's: its own state says so
    state = node.runtime_state(handler, pod.id)
    assert state["status"] == "running"
    assert state["pid"] == node.pid(pod=pod)
    assert Path(f"/proc/{state['pid']}/cmdline").read_bytes().split(b"\0")[0] == b"/bin/sleep"


def test_a_container_starts_and_logs(node, handler, pod):
    container = node.run_container(pod, "logger", ["sh", "-c",
                                   "echo hello from $(hostname); echo to stderr >&2; exec sleep 1000"])
    status = node.wait_state(container, "CONTAINER_RUNNING")
    assert status.started_at > 0 and status.finished_at == 0
    assert node.runtime_state(handler, container)["status"] == "running"
    assert sorted(wait_for_log(node, pod, "logger", 2)) == [
        ("stderr", "to stderr"), ("stdout", f"hello from shared-{handler}")]


def test_exec_sync_gives_output_and_exit_status(node, handler, pod):
    container = node.run_container(pod, "exec-target", ["sleep", "1000"])
    node.wait_state(container, "CONTAINER_RUNNING")
    answer = node.exec(container, "sh", "-c", "echo out; echo err >&2; exit 5")
    assert (answer.stdout, answer.stderr, answer.exit_code) == (b"out\n", b"err\n", 5)
    answer = node.exec(container, "cat", "/proc/1/cmdline")   # the pod's pid namespace
    assert answer.exit_code == 0 and answer.stdout.split(b"\0")[0] == b"/bin/sleep"


def test_container_stats(node, handler, pod):
    container = node.run_container(pod, "busy", ["sh", "-c",
                                   "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 1000"])
    node.wait_state(container, "CONTAINER_RUNNING")
    stats = node.cri.call("ContainerStats", {"container_id": container}).stats
    assert stats.attributes.id == container
    assert stats.cpu.usage_core_nano_seconds.value > 0
    assert stats.memory.working_set_bytes.value > 0


def test_an_exit_code_is_recorded(node, handler, pod):
    container = node.run_container(pod, "exits", ["sh", "-c", "echo leaving; exit 3"])
    status = node.wait_state(container, "CONTAINER_EXITED")
    assert status.exit_code == 3
    # (not finished_at >= started_at: containerd notes the start when the runtime's `start`
    # returns, and so fast a process may be gone by then)
    assert status.finished_at > status.created_at > 0 and status.started_at > 0
    assert status.reason == "Error"
    assert wait_for_log(node, pod, "exits", 1) == [("stdout", "leaving")]
    # containerd deleted it through the handler (`kill --all`, `delete`) once it had its
    # exit status: the handler's own record is gone, the CRI's stays until it is removed
    assert node.runtime_state(handler, container) is None
    node.cri.call("RemoveContainer", {"container_id": container})
    node.not_found(lambda: node.status(container))


def test_stop_and_remove_a_container(node, handler, pod):
    container = node.run_container(pod, "stoppable", ["sh", "-c",
                                   "trap 'echo got TERM; exit 7' TERM; echo ready; sleep 1000 & wait"])
    assert wait_for_log(node, pod, "stoppable", 1) == [("stdout", "ready")]   # the trap is set
    node.cri.call("StopContainer", {"container_id": container, "timeout": 60})
    status = node.status(container)
    assert status.state == node.pb.CONTAINER_EXITED
    assert status.exit_code == 7
    assert wait_for_log(node, pod, "stoppable", 2)[1] == ("stdout", "got TERM")
    node.cri.call("RemoveContainer", {"container_id": container})
    node.not_found(lambda: node.status(container))
    assert node.runtime_state(handler, container) is None


def test_a_memory_limit_is_set_and_raised(node, handler, pod):
    mib = 1024 * 1024
    container = node.run_container(pod, "limited", ["sleep", "1000"], linux={
        "resources": {"memory_limit_in_bytes": 64 * mib},
        "security_context": {"namespace_options": {"pid": "POD"}}})
    node.wait_state(container, "CONTAINER_RUNNING")
    cgroup = node.cgroup(container)
    assert cgroup.parent.name == f"pod{pod.config['metadata']['uid']}"   # the pod's cgroup_parent
    assert (cgroup / "memory.max").read_text().strip() == str(64 * mib)
    node.cri.call("UpdateContainerResources", {"container_id": container,
                                               "linux": {"memory_limit_in_bytes": 128 * mib}})
    assert (cgroup / "memory.max").read_text().strip() == str(128 * mib)


def test_a_container_sees_its_own_cgroup(node, handler, pod):
    container = node.run_container(pod, "own-cgroup", ["sleep", "1000"], linux={
        "resources": {"memory_limit_in_bytes": 96 * 1024 * 1024},
        "security_context": {"namespace_options": {"pid": "POD"}}})
    node.wait_state(container, "CONTAINER_RUNNING")
    # its cgroup namespace is rooted at its cgroup, mounted at /sys/fs/cgroup
    assert node.exec(container, "cat", "/proc/self/cgroup").stdout == b"0::/\n"
    answer = node.exec(container, "cat", "/sys/fs/cgroup/memory.max")
    assert answer.stdout.strip() == str(96 * 1024 * 1024).encode(), answer.stderr
    assert b"kubepods" not in node.exec(container, "ls", "/sys/fs/cgroup").stdout


def test_a_read_only_root_filesystem(node, handler, pod):
    container = node.run_container(pod, "read-only", ["sleep", "1000"], linux={
        "security_context": {"readonly_rootfs": True, "namespace_options": {"pid": "POD"}}})
    node.wait_state(container, "CONTAINER_RUNNING")
    answer = node.exec(container, "touch", "/written")
    assert answer.exit_code != 0
    assert b"Read-only file system" in answer.stderr
    root_mount = [line.split() for line in node.exec(container, "cat", "/proc/mounts").stdout
                  .decode().splitlines() if line.split()[1] == "/"]
    assert "ro" in root_mount[-1][3].split(",")


def test_two_containers_share_the_pods_namespaces(node, handler, pod):
    first = node.run_container(pod, "first", ["sleep", "1001"])
    second = node.run_container(pod, "second", ["sleep", "1002"])
    node.wait_state(first, "CONTAINER_RUNNING")
    node.wait_state(second, "CONTAINER_RUNNING")
    pause = node.pid(pod=pod)

    def namespaces(container):
        answer = node.exec(container, "sh", "-c",
                           "for kind in net ipc uts pid mnt; do readlink /proc/self/ns/$kind; done")
        assert answer.exit_code == 0, answer.stderr
        return answer.stdout.decode().split()

    of_pod = [os.readlink(f"/proc/{pause}/ns/{kind}") for kind in ("net", "ipc", "uts", "pid", "mnt")]
    first_ns, second_ns = namespaces(first), namespaces(second)
    assert first_ns[:4] == second_ns[:4] == of_pod[:4]     # network, IPC, UTS, pid: the pod's
    assert len({first_ns[4], second_ns[4], of_pod[4]}) == 3  # each its own mounts
    # one pid namespace: each sees the other's process
    processes = node.exec(second, "ps", "-o", "args").stdout.decode()
    assert "sleep 1001" in processes and "sleep 1002" in processes


def test_stop_and_remove_a_pod(node, handler):
    pod = node.run_pod(handler, f"short-lived-{handler}")
    container = node.run_container(pod, "inside", ["sleep", "1000"])
    node.wait_state(container, "CONTAINER_RUNNING")
    cgroup = node.cgroup(container)
    node.cri.call("StopPodSandbox", {"pod_sandbox_id": pod.id})
    assert node.status(container).state == node.pb.CONTAINER_EXITED
    status = node.cri.call("PodSandboxStatus", {"pod_sandbox_id": pod.id}).status
    assert status.state == SANDBOX_NOTREADY
    node.cri.call("RemovePodSandbox", {"pod_sandbox_id": pod.id})
    node.not_found(lambda: node.cri.call("PodSandboxStatus", {"pod_sandbox_id": pod.id}))
    node.not_found(lambda: node.status(container))
    assert node.runtime_state(handler, pod.id) is None
    assert node.runtime_state(handler, container) is None
    assert not cgroup.exists()
