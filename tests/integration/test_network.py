"""Networking (issue 5): lo in a new network namespace, slirp4netns through the
handcar.network annotation, ports through handcar.ports, and nothing of it left behind.

Every address here is on this machine: the host's loopback, or slirp4netns's network
inside the container's own namespace (10.0.2.2 is the host's 127.0.0.1 from there)."""

import json
import os
import shutil
import socket
import time
import urllib.request

import pytest

from harness import (SLIRP4NETNS, free_port, host_server, needs_slirp4netns,  # noqa: F401
                     port_is_free, process_gone, wait_until)

def own_slirp4netns_pids():
    """The live slirp4netns processes of this user."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/comm") as f:
                if f.read().strip() != "slirp4netns":
                    continue
            if os.stat(f"/proc/{name}").st_uid != os.geteuid():
                continue
        except OSError:
            continue
        if not process_gone(int(name)):
            pids.append(int(name))
    return pids


def with_network(bundle, network=None, ports=None):
    bundle.linux["namespaces"].append({"type": "network"})
    if network:
        bundle.config.setdefault("annotations", {})["handcar.network"] = network
    if ports:
        bundle.config.setdefault("annotations", {})["handcar.ports"] = ports
    return bundle


def record_of(handcar, container_id):
    with open(handcar.root / container_id / "state.json") as f:
        return json.load(f)


# --- lo ---------------------------------------------------------------------------------

def test_lo_is_up_in_a_new_network_namespace(handcar, bundle):
    """No annotation: the namespace's only link is lo, and it is up and carries traffic."""
    with_network(bundle).sh("ip -o link; httpd -p 127.0.0.1:8080 -h /; "
                            "wget -q -O - http://127.0.0.1:8080/etc/passwd")
    result = handcar.ok("run", "-b", bundle.write(), "lo")
    links = [line for line in result.stdout.splitlines() if ": <" in line]
    assert len(links) == 1 and links[0].split(":")[1].strip() == "lo", result.stdout
    assert "<LOOPBACK,UP,LOWER_UP>" in links[0], links[0]      # as `ip link set lo up` leaves it
    assert "root:x:0:0" in result.stdout


# --- slirp4netns ------------------------------------------------------------------------

@needs_slirp4netns
def test_allow_host_loopback_reaches_the_hosts_127_0_0_1(handcar, bundle, host_server):
    with_network(bundle, "slirp4netns:allow_host_loopback=true").sh(
        f"ip -o link show lo; timeout 10 wget -q -O - http://10.0.2.2:{host_server}/file.txt")
    result = handcar.ok("run", "-b", bundle.write(), "loopback")
    assert "served from the host" in result.stdout
    assert ",UP" in result.stdout.splitlines()[0]          # slirp4netns sets lo up too


@needs_slirp4netns
def test_plain_slirp4netns_cannot_reach_the_hosts_loopback(handcar, bundle, host_server):
    with_network(bundle, "slirp4netns").sh(
        f"timeout 10 wget -q -O - http://10.0.2.2:{host_server}/file.txt; echo status=$?")
    result = handcar.ok("run", "-b", bundle.write(), "noloopback")
    assert "served from the host" not in result.stdout
    assert "status=0" not in result.stdout, result.stdout


@needs_slirp4netns
def test_slirp4netns_options_reach_the_container(handcar, bundle):
    with_network(bundle, "slirp4netns:mtu=1500,cidr=10.9.8.0/24").sh("ip -o addr show tap0; "
                                                                    "ip -o link show tap0")
    result = handcar.ok("run", "-b", bundle.write(), "options")
    assert "inet 10.9.8.100/24" in result.stdout
    assert "mtu 1500" in result.stdout


@needs_slirp4netns
def test_a_published_port_serves_the_host_until_delete(handcar, bundle, tmp_path):
    port = free_port()
    www = bundle.bind_writable(tmp_path / "www", "/www")
    (www / "index.html").write_text("hello from the container\n")
    with_network(bundle, "slirp4netns", f"127.0.0.1:{port}:8080").args(
        "httpd", "-f", "-p", "8080", "-h", "/www")
    handcar.ok_detached("run", "-d", "-b", bundle.write(), "web")
    record = record_of(handcar, "web")
    assert record["annotations"]["handcar.ports"] == f"127.0.0.1:{port}:8080"
    assert handcar.state("web")["annotations"]["handcar.ports"] == f"127.0.0.1:{port}:8080"
    slirp_pid = record["network"]["slirp4netns"][0]
    assert not process_gone(slirp_pid)
    page = None
    deadline = time.monotonic() + 10
    while page is None and time.monotonic() < deadline:
        try:
            page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
        except OSError:
            time.sleep(0.1)                 # httpd is not listening yet
    assert page == b"hello from the container\n"
    assert not port_is_free(port)
    handcar.ok("delete", "--force", "web")
    assert process_gone(slirp_pid)
    assert port_is_free(port)


@needs_slirp4netns
def test_a_host_port_in_use_fails_before_start_and_leaves_nothing(handcar, bundle, tmp_path):
    marker = tmp_path / "started"
    bundle.bind_writable(tmp_path / "out", "/out")
    before = set(own_slirp4netns_pids())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with_network(bundle, "slirp4netns", f"127.0.0.1:{port}:80").sh("touch /out/started")
        result = handcar.detached("run", "-d", "-b", bundle.write(), "busy")
    assert result.returncode == 1
    assert result.stderr == (f"handcar: cannot publish 127.0.0.1:{port}->80/tcp: host port "
                             f"127.0.0.1:{port}/tcp is already in use\n")
    assert not marker.exists()
    assert handcar.ok("list", "-q").stdout == ""
    assert not (handcar.root / "busy").exists()
    assert set(own_slirp4netns_pids()) <= before


@needs_slirp4netns
def test_slirp4netns_stops_when_the_container_stops(handcar, bundle):
    with_network(bundle, "slirp4netns").args("sleep", "100")
    handcar.ok_detached("run", "-d", "-b", bundle.write(), "stops")
    network = record_of(handcar, "stops")["network"]
    slirp_pid, watcher_pid = network["slirp4netns"][0], network["watcher"][0]
    assert not process_gone(slirp_pid) and not process_gone(watcher_pid)
    handcar.ok("kill", "stops", "KILL")
    assert wait_until(lambda: process_gone(slirp_pid) and process_gone(watcher_pid)), \
        "slirp4netns outlived the container"
    assert (handcar.root / "stops").exists()          # not deleted: it stopped by itself
    handcar.ok("delete", "stops")


@needs_slirp4netns
def test_no_slirp4netns_remains_after_ten_short_containers(handcar, bundle):
    before = set(own_slirp4netns_pids())
    with_network(bundle, "slirp4netns").args("true")
    path = bundle.write()
    for number in range(10):
        handcar.ok("run", "-b", path, f"short{number}")
    assert handcar.ok("list", "-q").stdout == ""
    assert wait_until(lambda: set(own_slirp4netns_pids()) <= before)


@pytest.mark.parametrize("network", [None, "slirp4netns"], ids=["lo", "slirp4netns"])
def test_no_fd_of_the_network_set_up_reaches_the_container(handcar, bundle, network):
    if network and not SLIRP4NETNS:
        pytest.skip("slirp4netns is not installed (scripts/test installs it)")
    with_network(bundle, network, network and f"127.0.0.1:{free_port()}:80").sh(
        "ls /proc/self/fd")
    result = handcar.ok("run", "-b", bundle.write(), "fds")
    assert result.stdout.split() == ["0", "1", "2", "3"]   # 3: the directory ls reads


def test_missing_slirp4netns_is_one_clear_line(handcar, bundle, tmp_path):
    """A PATH with newuidmap and newgidmap but no slirp4netns."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for helper in ("newuidmap", "newgidmap"):
        if shutil.which(helper):
            os.symlink(shutil.which(helper), bin_dir / helper)
    with_network(bundle, "slirp4netns").args("true")
    result = handcar.detached("run", "-b", bundle.write(), "nohelper",
                              env={**os.environ, "PATH": str(bin_dir)})
    assert result.returncode == 1
    assert result.stderr == ("handcar: slirp4netns is not installed (install the slirp4netns "
                             "package; handcar.network asks for it)\n")
    assert handcar.ok("list", "-q").stdout == ""


def test_a_failing_slirp4netns_is_one_clear_line(handcar, bundle, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "slirp4netns"
    fake.write_text("#!/bin/sh\necho 'open(\"/dev/net/tun\"): Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    with_network(bundle, "slirp4netns").args("true")
    result = handcar.detached("run", "-b", bundle.write(), "failing",
                              env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert result.returncode == 1
    assert result.stderr == ("handcar: slirp4netns failed: open(\"/dev/net/tun\"): "
                             "Permission denied\n")
    assert handcar.ok("list", "-q").stdout == ""


def test_bad_network_annotations_are_spec_errors(handcar, bundle):
    bundle.config["annotations"] = {"handcar.network": "slirp4netns:mtu=big",
                                    "handcar.ports": "80"}
    result = handcar("run", "-b", bundle.write(), "bad")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    for problem in ("annotations.handcar.network: mtu=big: expected a number",
                    "annotations.handcar.network: needs a network namespace",
                    "annotations.handcar.ports: port '80': expected"):
        assert problem in result.stderr
