"""The Kubernetes tier's node: its own containerd (Debian's package, 1.6) with the CRI
plugin, a runtime handler for handcar and one for runc, a CNI bridge network for the pods
(Debian's containernetworking-plugins) and the images of kube_images.py; and `Node`, which
makes pods and containers through the CRI (cri.py) as the kubelet does and looks at what
they became on the node."""

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import kube_images

HERE = Path(__file__).resolve().parent
HANDCAR = Path(sys.executable).with_name("handcar")
CNI_PLUGINS = "/usr/lib/cni"            # Debian's containernetworking-plugins
# The test bench's addresses (RFC 2544): the pods' network exists only inside the guest
POD_SUBNET = "198.18.0.0/24"
# Where each handler keeps its containers' state: the shim's `Root` option (the snippet's
# for handcar, the shim's default for runc) and the CRI's namespace
STATE_ROOTS = {"handcar": "/run/containerd/handcar/k8s.io", "runc": "/run/containerd/runc/k8s.io"}
CGROUP_ROOT = Path("/sys/fs/cgroup")


SNIPPET = HERE.parent.parent / "contrib" / "containerd" / "config.toml"


def containerd_config(work):
    """containerd's configuration: the node's own places, the pause image and the pods'
    network, then contrib/containerd/config.toml as users append it (the runtime handler
    "handcar": runc's shim with handcar as its binary, and runc's own entry), with this
    handcar's path put in."""
    snippet = SNIPPET.read_text().replace('BinaryName = "/usr/local/bin/handcar"',
                                          f'BinaryName = "{HANDCAR}"')
    assert str(HANDCAR) in snippet, f"{SNIPPET} changed: where is its BinaryName?"
    return f"""\
version = 2
root = "{work}/root"
state = "{work}/state"

[grpc]
  address = "{work}/containerd.sock"

[ttrpc]
  address = "{work}/containerd.sock.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{kube_images.PAUSE}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_PLUGINS}"
    conf_dir = "{work}/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

""" + snippet


def cni_config(work):
    return json.dumps({
        "cniVersion": "1.0.0", "name": "handcar-test",
        "plugins": [{"type": "bridge", "bridge": "cni-handcar", "isGateway": True,
                     "ipMasq": False,
                     "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]],
                              "dataDir": f"{work}/ipam"}}]})


class Node:
    """containerd with the CRI plugin, as a Kubernetes node runs it."""

    def __init__(self, work, cri):
        self.work = work
        self.cri = cri
        self.pb = cri.messages
        self.log_root = work / "pods"

    # ---- pods and containers, as the kubelet asks for them

    def pod_config(self, name):
        uid = uuid.uuid4().hex
        log_directory = self.log_root / uid
        log_directory.mkdir(parents=True)
        return {"metadata": {"name": name, "uid": uid, "namespace": "handcar-test"},
                "hostname": name, "log_directory": str(log_directory),
                "linux": {"cgroup_parent": f"/kubepods/pod{uid}",
                          # one pid namespace for the pod (shareProcessNamespace: true)
                          "security_context": {"namespace_options": {"pid": "POD"}}}}

    def run_pod(self, handler, name):
        config = self.pod_config(name)
        answer = self.cri.call("RunPodSandbox", {"config": config, "runtime_handler": handler})
        return Pod(answer.pod_sandbox_id, config, handler)

    def remove_pod(self, pod):
        self.cri.call("StopPodSandbox", {"pod_sandbox_id": pod.id})
        self.cri.call("RemovePodSandbox", {"pod_sandbox_id": pod.id})

    def create_container(self, pod, name, command, linux=None):
        config = {"metadata": {"name": name}, "image": {"image": kube_images.WORKLOAD},
                  "command": command, "log_path": f"{name}.log",
                  "linux": linux or {"security_context": {"namespace_options": {"pid": "POD"}}}}
        answer = self.cri.call("CreateContainer", {"pod_sandbox_id": pod.id, "config": config,
                                                   "sandbox_config": pod.config})
        return answer.container_id

    def run_container(self, pod, name, command, linux=None):
        container_id = self.create_container(pod, name, command, linux)
        self.cri.call("StartContainer", {"container_id": container_id})
        return container_id

    def status(self, container_id):
        return self.cri.call("ContainerStatus", {"container_id": container_id}).status

    def wait_state(self, container_id, state, timeout=60):
        wanted = self.pb.ContainerState.Value(state)
        deadline = time.monotonic() + timeout
        while (status := self.status(container_id)).state != wanted:
            if time.monotonic() > deadline:
                raise AssertionError(f"container {container_id} is still "
                                     f"{self.pb.ContainerState.Name(status.state)}, not {state}")
            time.sleep(0.5)
        return status

    def exec(self, container_id, *command):
        return self.cri.call("ExecSync", {"container_id": container_id, "cmd": list(command),
                                          "timeout": 120})

    def pid(self, container_id=None, pod=None):
        """The host pid of a container's (or a pod's sandbox's) first process."""
        if pod is not None:
            info = self.cri.call("PodSandboxStatus", {"pod_sandbox_id": pod.id, "verbose": True}).info
        else:
            info = self.cri.call("ContainerStatus", {"container_id": container_id, "verbose": True}).info
        return json.loads(info["info"])["pid"]

    def cgroup(self, container_id):
        """The container's cgroup directory, from its process's /proc/PID/cgroup."""
        for line in Path(f"/proc/{self.pid(container_id)}/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return CGROUP_ROOT / line[3:].lstrip("/")
        raise AssertionError(f"container {container_id}: no cgroup v2 entry")

    def log(self, pod, name):
        path = Path(pod.config["log_directory"]) / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def not_found(self, call):
        """That `call()` fails with the CRI's NOT_FOUND."""
        import grpc
        try:
            call()
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e.details()
        else:
            raise AssertionError("found, where it should not be")

    def runtime_state(self, handler, container_id):
        """What the handler's own binary says of the container (its `state`), or None when
        it does not know it: the proof that this handler, and not another, runs it."""
        binary = str(HANDCAR) if handler == "handcar" else "runc"
        result = subprocess.run([binary, "--root", STATE_ROOTS[handler], "state", container_id],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            assert "not exist" in result.stderr or "no such" in result.stderr.lower(), result.stderr
            return None
        return json.loads(result.stdout)


class Pod:
    def __init__(self, pod_id, config, handler):
        self.id, self.config, self.handler = pod_id, config, handler


def start_containerd(work):
    log = open(work / "containerd.log", "wb")
    process = subprocess.Popen(["containerd", "--config", str(work / "config.toml")],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    log.close()
    return process


def wait_until_ready(process, cri, work, timeout=180):
    """Until the CRI plugin answers with its runtime and network ready."""
    import grpc
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError("containerd exited: " + (work / "containerd.log").read_text()[-3000:])
        try:
            conditions = {c.type: c for c in cri.call("Status").status.conditions}
            if all(c.status for c in conditions.values()) and len(conditions) >= 2:
                return
            waiting_for = "; ".join(f"{c.type}: {c.message}" for c in conditions.values() if not c.status)
        except grpc.RpcError as e:
            waiting_for = e.details()
        if time.monotonic() > deadline:
            raise RuntimeError(f"containerd's CRI plugin is not ready after {timeout} s: {waiting_for}")
        time.sleep(0.5)


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


