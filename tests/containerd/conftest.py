"""The containerd tier (containerd_daemon.py has the daemon): containerd started for the
session and stopped after the last test whatever happened; the image is a `docker save`
archive of the integration tier's busybox rootfs, `ctr images import`ed."""

import shutil
import tempfile
from pathlib import Path

import pytest

from containerd_daemon import Containerd
from daemons import per_test_timeout  # noqa: F401,I100 - a fixture
from imagebuild import write_docker_archive
from harness import make_busybox_rootfs


@pytest.fixture(autouse=True)
def time_limit(per_test_timeout):
    """Every test here has TEST_TIMEOUT seconds."""


@pytest.fixture(scope="session")
def containerd():
    base = Path(tempfile.mkdtemp(prefix="hcc-", dir="/tmp"))   # unix socket paths are short
    runner = Containerd(base)
    try:
        runner.daemon.wait_ready(runner.ready)
        yield runner
    finally:
        runner.tear_down()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def image(containerd, tmp_path_factory):
    work = tmp_path_factory.mktemp("containerd-image")
    archive = work / "busybox.tar"
    write_docker_archive(archive, make_busybox_rootfs(work / "rootfs"),
                         repo_tag="handcar-test/busybox:latest")
    # the native snapshotter (copies) works on any filesystem, overlayfs not on all
    containerd.ok("images", "import", "--snapshotter", "native", str(archive))
    return "docker.io/handcar-test/busybox:latest"
