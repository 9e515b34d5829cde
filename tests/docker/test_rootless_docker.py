"""Rootless docker with `docker run --runtime handcar`: dockerd-rootless.sh (dockerd in
rootlesskit's user namespace) as the unprivileged test user.

dockerd is root in that user namespace, so it calls handcar as root there: handcar
takes the namespace it is in as the container's (no user namespace of its own), and its
cgroup below the user's delegated one.
"""

import os

import pytest

from dockerd import MISSING_ROOTLESS
from harness import SUBUID_RANGE, wait_until

pytestmark = [
    pytest.mark.skipif(os.geteuid() == 0, reason="rootless docker runs as the unprivileged "
                                                 "user: scripts/test runs this test as that user"),
    pytest.mark.skipif(bool(MISSING_ROOTLESS), reason=str(MISSING_ROOTLESS)),
]


def test_run(rootless_docker, rootless_image):
    result = rootless_docker("run", "--runtime", "handcar", "--rm", rootless_image, "sh", "-c",
                             "echo hello from handcar; cat /proc/self/uid_map; exit 3")
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "hello from handcar"
    # rootlesskit's mapping: container root is this user, the rest its subordinate ids
    assert lines[1].split() == ["0", str(os.geteuid()), "1"]
    assert lines[2].split() == ["1", str(SUBUID_RANGE[0]), str(SUBUID_RANGE[1])]
    missing = rootless_docker("run", "--runtime", "handcar", "--rm", rootless_image,
                              "/no/such/program")
    assert missing.returncode == 127, missing.stderr


def test_exec_and_logs(rootless_docker, rootless_image, names):
    name = names("rootless")
    rootless_docker.ok("run", "--runtime", "handcar", "-d", "--name", name, rootless_image,
                       "sh", "-c", "echo started; echo to-stderr >&2; exec sleep 1000")
    try:
        assert rootless_docker.inspect(name, "{{.HostConfig.Runtime}}") == "handcar"
        result = rootless_docker("exec", name, "sh", "-c", "echo in the container; exit 4")
        assert (result.returncode, result.stdout) == (4, "in the container\n"), result.stderr
        assert wait_until(lambda: rootless_docker.ok("logs", name).stdout == "started\n")
        assert rootless_docker.ok("logs", name).stderr == "to-stderr\n"
    finally:
        rootless_docker("rm", "--force", name)
