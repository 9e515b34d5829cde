"""Real containers, run by the unprivileged user on a busybox rootfs (the fixtures are in
harness.py, shared with the VM tier)."""

import pytest

from harness import MISSING, bundle, handcar, rootfs_template  # noqa: F401 - fixtures


def pytest_collection_modifyitems(items):
    for item in items:
        if MISSING and "integration" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=MISSING))
