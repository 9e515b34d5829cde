"""The docker tier (dockerd.py has the daemons): root dockerd for test_docker.py, rootless
dockerd for test_rootless_docker.py, each started for the session and stopped after the
last test whatever happened; the image is `docker import`ed from the busybox rootfs of
the integration tier."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from dockerd import IMAGE, RootDocker, RootlessDocker, busybox_tar
from daemons import per_test_timeout  # noqa: F401,I100 - a fixture; dockerd puts tests/ on sys.path


@pytest.fixture(autouse=True)
def time_limit(per_test_timeout):
    """Every test here has TEST_TIMEOUT seconds."""


@pytest.fixture(scope="session")
def docker():
    base = Path(tempfile.mkdtemp(prefix="hcd-", dir="/tmp"))   # unix socket paths are short
    runner = RootDocker(base)
    try:
        runner.daemon.wait_ready(runner.ready)
        yield runner
    finally:
        runner.tear_down()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def image(docker, tmp_path_factory):
    docker.ok("import", str(busybox_tar(tmp_path_factory.mktemp("docker-image"))), IMAGE)
    return IMAGE


@pytest.fixture(scope="session")
def rootless_docker():
    base = Path(tempfile.mkdtemp(prefix="hcr-", dir="/tmp"))
    runner = RootlessDocker(base)
    try:
        runner.daemon.wait_ready(runner.ready)
        yield runner
    finally:
        runner.tear_down()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def rootless_image(rootless_docker, tmp_path_factory):
    directory = tmp_path_factory.mktemp("rootless-docker-image")
    rootless_docker.ok("import", str(busybox_tar(directory)), IMAGE)
    return IMAGE


@pytest.fixture
def names():
    """Names for a test's containers (docker's removes what is left at the end)."""
    return lambda label: f"handcar-{label}-{os.getpid()}"
