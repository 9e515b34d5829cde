"""The Kubernetes tier: pods through containerd's CRI plugin with handcar as the runtime
handler, and the same steps with runc (the tier proves itself).

It runs as root in the QEMU guest that scripts/vm-test boots with `scripts/vm-run --root`
(a pure cgroup v2 host: $HANDCAR_VM is "root" there); anywhere else every test here is
skipped, with a reason. The session starts its own containerd on a socket of its own
(kubenode.py) and imports the pause and workload images it builds (kube_images.py).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import cri  # noqa: E402
import kube_images  # noqa: E402
from kubenode import (CNI_PLUGINS, HANDCAR, Node, cni_config, containerd_config,  # noqa: E402
                      start_containerd, stop, wait_until_ready)

IN_GUEST = os.environ.get("HANDCAR_VM") == "root"
NOT_IN_GUEST = ("tests/kube runs as root in the QEMU guest: use scripts/vm-test "
                "(HANDCAR_SKIP_KUBE=1 skips it there)")
# Each test's limit (pytest-timeout): a pod costs containerd, its shim and the runtime
# several seconds each under software emulation
TEST_TIMEOUT = 300
HANDLERS = ["handcar", "runc"]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE not in Path(item.path).resolve().parents:
            continue
        if not IN_GUEST:
            item.add_marker(pytest.mark.skip(reason=NOT_IN_GUEST))
        elif item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))


@pytest.fixture(scope="session")
def node(tmp_path_factory):
    for program in ("containerd", "ctr", "containerd-shim-runc-v2", "runc", f"{CNI_PLUGINS}/bridge"):
        assert shutil.which(program), f"{program} is missing: scripts/vm-test installs it"
    assert HANDCAR.exists(), f"{HANDCAR} is missing"
    work = tmp_path_factory.mktemp("kube")
    (work / "cni").mkdir()
    (work / "cni/10-handcar-test.conflist").write_text(cni_config(work))
    (work / "config.toml").write_text(containerd_config(work))
    kube_images.build_archive(work / "images.tar")
    client = cri.Client(work / "containerd.sock", *cri.generate_stubs(tmp_path_factory.mktemp("stubs")))
    process = start_containerd(work)
    try:
        wait_until_ready(process, client, work)
        subprocess.run(["ctr", "--address", str(work / "containerd.sock"), "--namespace", "k8s.io",
                        "images", "import", str(work / "images.tar")],
                       check=True, capture_output=True, timeout=180)
        yield Node(work, client)
    finally:
        client.close()
        stop(process)


@pytest.fixture(scope="module", params=HANDLERS)
def handler(request):
    return request.param


@pytest.fixture(scope="module")
def pod(node, handler):
    """A running pod whose containers share its pid namespace (and, as always, its network,
    IPC and UTS namespaces)."""
    pod = node.run_pod(handler, f"shared-{handler}")
    yield pod
    node.remove_pod(pod)
