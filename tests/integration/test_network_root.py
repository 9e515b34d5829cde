"""Networking when root runs handcar (scripts/test runs these as root): a bundle without a
user namespace, where the lo helper and slirp4netns join no user namespace."""

import os
import shutil

import pytest

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (scripts/test runs it as root)")]


def as_real_root(bundle):
    linux = bundle.linux
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "user"]
    del linux["uidMappings"], linux["gidMappings"]
    linux["namespaces"].append({"type": "network"})
    return bundle


def test_root_gets_lo_up_without_a_user_namespace(handcar, bundle):
    as_real_root(bundle).sh("ip -o link")
    result = handcar.ok("run", "-b", bundle.write(), "rootlo")
    assert result.stdout.count(": <") == 1 and "lo: <LOOPBACK,UP" in result.stdout


@pytest.mark.skipif(shutil.which("slirp4netns") is None, reason="slirp4netns is not installed")
def test_root_gets_slirp4netns_without_a_user_namespace(handcar, bundle):
    as_real_root(bundle).sh("ip -o addr show tap0")
    bundle.config["annotations"] = {"handcar.network": "slirp4netns"}
    result = handcar.ok("run", "-b", bundle.write(), "rootslirp")
    assert "inet 10.0.2.100/24" in result.stdout
