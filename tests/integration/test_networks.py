"""handcar networks (issue 18): containers that reach each other by name, rootless.

Every container here runs the busybox rootfs as an image (a rootfs directory), as the
unprivileged user. Servers are busybox httpd serving a file of the test's; clients are
busybox wget, whose static build here dies of SIGSEGV on a refused connection: a failure
is told by the absence of the page in the output, never by wget's words or status.

A network's way out is pasta or slirp4netns, as a containers.conf of the test's own
chooses (XDG_CONFIG_HOME): every test runs with handcar's default (slirp4netns where
installed), those marked BOTH with the other helper too."""

import ipaddress
import json
import os
import shutil
import socket
import subprocess

import pytest

from harness import (HANDCAR, PASTA, SLIRP4NETNS, free_port, needs_slirp4netns,  # noqa: F401
                     port_is_free, process_gone, serve_a_file, wait_until)
from test_friendly import Friendly, friendly, name_for, storage  # noqa: F401 - fixtures

PAGE = "served over a handcar network"
DEFAULT_HELPER = "slirp4netns" if SLIRP4NETNS else "pasta"   # handcar's, without containers.conf
HELPERS = ("pasta", "slirp4netns")
# a test marked so runs under both helpers (the others under the default only)
BOTH = pytest.mark.parametrize("helper", HELPERS, indirect=True)


@pytest.fixture
def helper(request, friendly, tmp_path):
    """The network helper of this test (the default, or BOTH's parameter), chosen by a
    containers.conf in the test's own XDG_CONFIG_HOME."""
    chosen = getattr(request, "param", DEFAULT_HELPER)
    if not shutil.which(chosen):
        pytest.skip(f"{chosen} is not installed (scripts/test installs it)")
    config = tmp_path / "xdg-config"
    (config / "containers").mkdir(parents=True)
    (config / "containers" / "containers.conf").write_text(
        f'[network]\ndefault_rootless_network_cmd = "{chosen}"\n')
    friendly.env["XDG_CONFIG_HOME"] = str(config)
    return chosen


class Networks:
    """The test's networks (unique names: the definitions live in the session's storage),
    removed at the end: then nothing of theirs may run."""

    def __init__(self, friendly):
        self.friendly = friendly
        self.names = []

    def create(self, suffix, *options):
        name = name_for(self.friendly, suffix)
        result = self.friendly("network", "create", *options, name)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{name}\n"
        self.names.append(name)
        return name

    def inspect(self, name):
        return json.loads(self.friendly.ok("network", "inspect", name).stdout)[0]

    def run_dir(self):
        return self.friendly.handcar.root / "@networks"


def helper_pid(document):
    """The pid of a running network's pasta or slirp4netns, or None."""
    return (document.get("outbound") or {}).get("pid")


@pytest.fixture
def networks(friendly, helper):
    made = Networks(friendly)
    yield made
    running = [made.inspect(name) for name in made.names
               if name in friendly("network", "ls", "-q").stdout.split()]
    pids = [pid for document in running for pid in (document.get("daemon"),
                                                    helper_pid(document)) if pid]
    for name in made.names:
        friendly("network", "rm", "-f", name)
    assert wait_until(lambda: all(process_gone(pid) for pid in pids)), \
        "the network daemon or a helper (pasta, slirp4netns) outlived the networks"
    left = sorted(set(friendly("network", "ls", "-q").stdout.split()) & set(made.names))
    assert not left, f"networks left: {left}"


@pytest.fixture
def www(tmp_path):
    """A directory with index.html, for httpd -h."""
    path = tmp_path / "www"
    path.mkdir()
    (path / "index.html").write_text(PAGE + "\n")
    path.chmod(0o755)
    return path


def serve(friendly, rootfs, www, name, *options):
    """A detached httpd container on port 80, serving `www`."""
    friendly.detached("run", "-d", "--name", name, "-v", f"{www}:/www:ro", *options,
                      str(rootfs), "httpd", "-f", "-p", "80", "-h", "/www")
    return name


def fetch(target):
    """A shell line: wget the page of `target`, retried while its server starts (its
    failure shows as the absence of the page)."""
    return (f"for i in $(seq 50); do timeout 5 wget -q -O - http://{target}/ && break; "
            "sleep 0.1; done 2>/dev/null")


def client(friendly, rootfs, network, script, *options):
    """The output of a --rm container on `network` running `script`."""
    result = friendly("run", "--rm", "--network", network, *options, str(rootfs),
                      "sh", "-c", script, timeout=60)
    assert result.returncode in (0, 1, 139), result.stderr      # 139: wget's SIGSEGV
    return result.stdout


def host_address():
    """This host's address on its default route (what slirp4netns reaches the host by)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))          # no packet is sent: a route is looked up
        return probe.getsockname()[0]


@pytest.fixture
def host_wide_server(tmp_path):
    """An HTTP server on every address of the host (not only its loopback); its port."""
    yield from serve_a_file(tmp_path / "served", "index.html", "0.0.0.0")


# --- names --------------------------------------------------------------------------------

@BOTH
def test_a_server_is_reached_by_name_and_alias(friendly, networks, helper, rootfs_template,
                                               www):
    net = networks.create("net")
    web = serve(friendly, rootfs_template, www, name_for(friendly, "web"), "--network", net,
                "--network-alias", "www.example")
    output = client(friendly, rootfs_template, net,
                    f"{fetch(web)}; echo ---; {fetch('www.example')}; echo ---; "
                    "cat /etc/resolv.conf")
    by_name, by_alias, resolv = output.split("---\n")
    assert by_name == by_alias == PAGE + "\n"
    document = networks.inspect(net)
    assert resolv == f"nameserver {document['gateway']}\n"
    assert document["containers"][web]["aliases"] == ["www.example"]
    assert ipaddress.ip_address(document["containers"][web]["address"]) in \
        ipaddress.ip_network(document["subnet"])
    assert document["outbound"]["helper"] == helper
    assert not process_gone(document["outbound"]["pid"])


def test_ip_asks_for_the_address(friendly, networks, rootfs_template, www):
    net = networks.create("net", "--subnet", "10.211.7.0/24")
    web = serve(friendly, rootfs_template, www, name_for(friendly, "web"), "--network", net,
                "--ip", "10.211.7.77")
    assert client(friendly, rootfs_template, net, fetch("10.211.7.77")) == PAGE + "\n"
    assert networks.inspect(net)["containers"][web]["address"] == "10.211.7.77"
    taken = friendly("run", "--rm", "--network", net, "--ip", "10.211.7.77",
                     str(rootfs_template), "true")
    assert taken.returncode == 125
    assert "address 10.211.7.77 is taken on network" in taken.stderr
    outside = friendly("run", "--rm", "--network", net, "--ip", "10.211.8.1",
                       str(rootfs_template), "true")
    assert outside.returncode == 125 and "not a container address" in outside.stderr


def test_a_killed_containers_name_is_gone_at_once(friendly, networks, rootfs_template, www):
    net = networks.create("net")
    web = serve(friendly, rootfs_template, www, name_for(friendly, "web"), "--network", net)
    watcher = name_for(friendly, "watcher")
    friendly.detached("run", "-d", "--name", watcher, "--network", net, str(rootfs_template),
                      "sleep", "1000")
    address = networks.inspect(net)["containers"][web]["address"]
    assert address in friendly.ok("exec", watcher, "nslookup", web).stdout
    friendly.ok("kill", web, "KILL")
    assert friendly.handcar.wait_status(web, "stopped") == "stopped"
    looked_up = friendly("exec", watcher, "nslookup", web)
    assert address not in looked_up.stdout
    assert web not in networks.inspect(net)["containers"]
    # the name and the address are free again
    again = serve(friendly, rootfs_template, www, name_for(friendly, "web2"), "--network",
                  net, "--ip", address, "--network-alias", web)
    assert again
    assert friendly.ok("exec", watcher, "sh", "-c", fetch(web)).stdout == PAGE + "\n"
    friendly.ok("rm", "-f", web, again, watcher)


# --- connect and disconnect --------------------------------------------------------------

def test_connect_and_disconnect_a_running_container(friendly, networks, rootfs_template, www):
    front, back = networks.create("front"), networks.create("back")
    db = serve(friendly, rootfs_template, www, name_for(friendly, "db"), "--network", back)
    app = name_for(friendly, "app")
    friendly.detached("run", "-d", "--name", app, "--network", front, str(rootfs_template),
                      "sleep", "1000")
    assert PAGE not in friendly("exec", app, "sh", "-c", fetch(db)).stdout
    friendly.ok("network", "connect", "--alias", "api", back, app)
    assert friendly.ok("exec", app, "sh", "-c", fetch(db)).stdout == PAGE + "\n"
    links = friendly.ok("exec", app, "ip", "-o", "-4", "addr").stdout
    assert " eth0 " in links and " eth1 " in links
    on_back = networks.inspect(back)["containers"][app]
    assert on_back["aliases"] == ["api"]
    assert on_back["address"] in friendly.ok("exec", db, "nslookup", "api").stdout
    friendly.ok("network", "disconnect", back, app)
    assert " eth1 " not in friendly.ok("exec", app, "ip", "-o", "addr").stdout
    assert PAGE not in friendly("exec", app, "sh", "-c", fetch(db)).stdout
    assert app not in networks.inspect(back)["containers"]
    friendly.ok("rm", "-f", app, db)


def test_a_container_not_started_on_a_network_cannot_be_connected(friendly, networks,
                                                                  rootfs_template):
    net = networks.create("net", "--internal")
    loner = name_for(friendly, "loner")
    friendly.detached("run", "-d", "--name", loner, "--network", "none",
                      str(rootfs_template), "sleep", "1000")
    result = friendly("network", "connect", net, loner)
    assert result.returncode == 125
    assert f"container {loner} was not started on a handcar network" in result.stderr
    friendly.ok("rm", "-f", loner)


# --- isolation ---------------------------------------------------------------------------

@BOTH
def test_an_internal_network_has_no_way_out(friendly, networks, rootfs_template, www,
                                           host_wide_server):
    inside = networks.create("inside", "--internal")
    host = host_address()
    web = serve(friendly, rootfs_template, www, name_for(friendly, "web"), "--network",
                inside)
    output = client(friendly, rootfs_template, inside,
                    f"{fetch(web)}; echo ---; ip route; echo ---; "
                    f"timeout 5 wget -q -O - http://10.0.2.2:{host_wide_server}/; "
                    f"timeout 5 wget -q -O - http://{host}:{host_wide_server}/")
    reached, routes, outside = output.split("---\n")
    assert reached == PAGE + "\n"                          # its own containers: yes
    assert "default" not in routes
    assert "served from the host" not in outside
    assert networks.inspect(inside)["outbound"] is None
    # the same wget gets through from a network with a way out (the host by its address,
    # through the helper), but not to the host's loopback (neither maps it)
    out = networks.create("out")
    reached = client(friendly, rootfs_template, out,
                     f"timeout 5 wget -q -O - http://{host}:{host_wide_server}/; echo ---; "
                     f"for gateway in $(ip route | sed -n 's/^default via \\([^ ]*\\).*/\\1/p'); "
                     f"do timeout 5 wget -q -O - http://$gateway:{host_wide_server}/; done")
    through_address, through_gateway = reached.split("---\n")
    assert "served from the host" in through_address
    assert "served from the host" not in through_gateway
    friendly.ok("rm", "-f", web)


def test_two_networks_are_isolated(friendly, networks, rootfs_template, www):
    one, two = networks.create("one"), networks.create("two")
    web = serve(friendly, rootfs_template, www, name_for(friendly, "web"), "--network", one)
    address = networks.inspect(one)["containers"][web]["address"]
    assert client(friendly, rootfs_template, one, fetch(web)) == PAGE + "\n"
    output = client(friendly, rootfs_template, two,
                    f"timeout 5 wget -q -O - http://{web}/; timeout 5 wget -q -O - http://{address}/; "
                    f"nslookup {web}")
    assert PAGE not in output and address not in output
    friendly.ok("rm", "-f", web)


# --- ports -------------------------------------------------------------------------------

@BOTH
def test_a_published_port_reaches_a_container_on_a_network(friendly, networks, helper,
                                                           rootfs_template, www):
    import urllib.request
    net = networks.create("net")
    port = free_port()
    if helper == "pasta":          # it forwards only the ports it starts with: refused
        refused = friendly("run", "-d", "--name", name_for(friendly, "web"), "--network",
                           net, "-p", f"127.0.0.1:{port}:80", str(rootfs_template), "true")
        assert refused.returncode == 125
        assert f"-p: network {net} reaches the outside through pasta" in refused.stderr
        assert refused.stderr.count("\n") == 1
        assert port_is_free(port) and networks.inspect(net)["containers"] == {}
        return
    web = serve(friendly, rootfs_template, www, name_for(friendly, "web"), "--network", net,
                "-p", f"127.0.0.1:{port}:80")
    page = None

    def fetched():
        nonlocal page
        try:
            page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
            return True
        except OSError:
            return False
    assert wait_until(fetched), "the published port never answered"
    assert page == (PAGE + "\n").encode()
    assert not port_is_free(port)
    friendly.ok("stop", "-t", "0", web)
    assert wait_until(lambda: port_is_free(port)), "the port outlived the container"
    friendly.ok("rm", web)


def test_an_internal_network_refuses_published_ports(friendly, networks, rootfs_template):
    inside = networks.create("inside", "--internal")
    result = friendly("run", "--rm", "--network", inside, "-p", f"{free_port()}:80",
                      str(rootfs_template), "true")
    assert result.returncode == 125
    assert result.stderr == f"handcar: -p: network {inside} is internal: no port of the " \
                            "host can reach it\n"


# --- the verbs, and nothing left ---------------------------------------------------------

def test_create_ls_inspect_and_bad_input(friendly, networks, rootfs_template):
    net = networks.create("net", "--subnet", "10.212.0.0/16", "--internal")
    listed = friendly.ok("network", "ls").stdout.splitlines()
    assert listed[0].split() == ["NETWORK", "ID", "NAME", "SUBNET", "INTERNAL", "KEPT",
                                 "CONTAINERS"]
    assert [line.split()[1:] for line in listed if f" {net} " in line] == \
        [[net, "10.212.0.0/16", "yes", "no", "0"]]
    document = networks.inspect(net)
    assert (document["subnet"], document["gateway"], document["internal"], document["keep"],
            document["running"], document["containers"]) == \
        ("10.212.0.0/16", "10.212.0.1", True, False, False, {})
    for options, why in ((["--subnet", "10.212.3.0/24"], "overlaps 10.212.0.0/16"),
                         (["--subnet", "10.9.9.9/24"], "has host bits set"),
                         (["--subnet", "10.9.9.0/27"], "the prefix must be /8 to /25")):
        result = friendly("network", "create", *options, name_for(friendly, "bad"))
        assert result.returncode == 125 and why in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1
    for name, why in (("host", "is a network mode"), ("_x", "starting with a letter"),
                      ("a/b", "starting with a letter")):
        result = friendly("network", "create", name)
        assert result.returncode == 125 and why in result.stderr, result.stderr
    again = friendly("network", "create", net)
    assert again.returncode == 125 and again.stderr == f"handcar: network {net} already exists\n"
    missing = friendly("network", "inspect", "no-such-net")
    assert missing.returncode == 125 and "no such network no-such-net" in missing.stderr
    unknown = friendly("run", "--rm", "--network", "no-such-net", str(rootfs_template), "true")
    assert unknown.returncode == 125 and "--network no-such-net: no such network" in unknown.stderr


def test_removing_a_network_in_use_is_refused_without_force(friendly, networks,
                                                           rootfs_template):
    net = networks.create("net", "--internal")
    user = name_for(friendly, "user")
    friendly.detached("run", "-d", "--name", user, "--network", net, str(rootfs_template),
                      "sleep", "1000")
    refused = friendly("network", "rm", net)
    assert refused.returncode == 125
    assert refused.stderr == f"handcar: network {net} is in use by container {user} " \
                             "(remove them first, or network rm -f)\n"
    assert networks.inspect(net)["containers"][user]
    pruned = friendly.ok("network", "prune").stdout.split()
    assert net not in pruned
    assert friendly.ok("network", "rm", "-f", net).stdout == f"{net}\n"
    assert friendly("state", user).returncode != 0                # the container went too
    assert user not in friendly.bundles()


def test_nothing_is_left_after_network_rm(friendly, networks, rootfs_template, www):
    net = networks.create("net")
    web = serve(friendly, rootfs_template, www, name_for(friendly, "web"), "--network", net)
    document = networks.inspect(net)
    daemon, slirp = document["daemon"], helper_pid(document)
    assert not process_gone(daemon) and not process_gone(slirp)
    run_dir = networks.run_dir()
    assert (run_dir / f"net-{net}").is_dir()
    friendly.ok("network", "rm", "-f", net)
    assert wait_until(lambda: process_gone(daemon) and process_gone(slirp))
    assert not (run_dir / f"net-{net}").exists()
    assert not (run_dir / "daemon.sock").exists()
    assert friendly("state", web).returncode != 0


@BOTH
def test_a_killed_daemon_leaves_nothing_and_network_rm_cleans_up(friendly, networks, helper,
                                                                rootfs_template, www):
    net = networks.create("net")
    web = serve(friendly, rootfs_template, www, name_for(friendly, "web"), "--network", net)
    document = networks.inspect(net)
    daemon, slirp = document["daemon"], helper_pid(document)
    os.kill(daemon, 9)
    assert wait_until(lambda: process_gone(daemon) and process_gone(slirp)), \
        f"{helper} outlived the daemon"
    assert networks.inspect(net)["containers"] == {}
    # the container lost its network with the daemon; a new container gets a new one
    other = serve(friendly, rootfs_template, www, name_for(friendly, "other"), "--network",
                  net)
    assert client(friendly, rootfs_template, net, fetch(other)) == PAGE + "\n"
    refused = friendly("network", "connect", net, web)
    assert refused.returncode == 125 and "network daemon that linked it is gone" in \
        refused.stderr
    friendly.ok("network", "rm", "-f", net)
    assert not (networks.run_dir() / f"net-{net}").exists()


# --- kept networks ----------------------------------------------------------------------

def network_namespaces_of(pid):
    """The network namespaces process `pid` holds open (the daemon: its networks')."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("net:["):
            found.add(target)
    return found


def held_by_anyone(namespaces):
    """Which of `namespaces` a process of ours still has open, or is in."""
    held = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            links = [os.readlink(f"/proc/{pid}/ns/net")] + [
                os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue                      # gone, or not ours
        held |= namespaces & set(links)
    return held


@BOTH
def test_a_kept_network_outlives_its_last_container(friendly, networks, helper,
                                                   rootfs_template, www):
    kept = networks.create("kept", "--keep")
    document = networks.inspect(kept)
    # up at once: a kept network is ready before its first container
    assert (document["keep"], document["running"], document["containers"]) == \
        (True, True, {})
    daemon, outbound = document["daemon"], helper_pid(document)
    assert document["outbound"]["helper"] == helper and not process_gone(outbound)
    assert [line.split()[4] for line in friendly.ok("network", "ls").stdout.splitlines()
            if f" {kept} " in line] == ["yes"]
    plain = networks.create("plain")
    for net in (kept, plain):
        web = serve(friendly, rootfs_template, www, name_for(friendly, "web"), "--network",
                    net)
        assert client(friendly, rootfs_template, net, fetch(web)) == PAGE + "\n"
        plain_helper = helper_pid(networks.inspect(plain)) if net == plain else None
        friendly.ok("rm", "-f", web)
    # the last containers are gone: the plain network's helper with them, not the kept one's
    assert wait_until(lambda: process_gone(plain_helper))
    assert networks.inspect(plain)["running"] is False
    document = networks.inspect(kept)
    assert (document["running"], document["containers"], document["daemon"],
            helper_pid(document)) == (True, {}, daemon, outbound)
    # a new container joins it, and is found by name and alias
    again = serve(friendly, rootfs_template, www, name_for(friendly, "again"), "--network",
                  kept, "--network-alias", "again.example")
    assert client(friendly, rootfs_template, kept,
                  f"{fetch(again)}; {fetch('again.example')}") == 2 * (PAGE + "\n")
    friendly.ok("rm", "-f", again)
    namespaces = network_namespaces_of(daemon)
    assert namespaces, "the daemon holds no network namespace for the kept network"
    # network rm stops it: no helper, no daemon, no namespace, no run directory
    assert friendly.ok("network", "rm", kept).stdout == f"{kept}\n"
    assert wait_until(lambda: process_gone(daemon) and process_gone(outbound)), \
        "the daemon or the helper outlived network rm of a kept network"
    assert wait_until(lambda: not held_by_anyone(namespaces)), "a namespace outlived it"
    assert not (networks.run_dir() / f"net-{kept}").exists()
    assert not (networks.run_dir() / "daemon.sock").exists()


@BOTH
def test_network_rm_cleans_up_a_kept_network_whose_daemon_was_killed(friendly, networks,
                                                                    helper):
    kept = networks.create("kept", "--keep")
    document = networks.inspect(kept)
    daemon, outbound = document["daemon"], helper_pid(document)
    # the daemon's process group at once (its worker and pasta's guard with it)
    os.killpg(os.getpgid(daemon), 9)
    assert wait_until(lambda: process_gone(daemon))
    assert networks.inspect(kept)["running"] is False
    assert friendly.ok("network", "rm", kept).stdout == f"{kept}\n"
    assert wait_until(lambda: process_gone(outbound)), f"{helper} outlived network rm"
    assert not (networks.run_dir() / f"net-{kept}").exists()


def test_prune_removes_a_kept_network_without_containers(friendly, networks,
                                                         rootfs_template):
    kept = networks.create("kept", "--keep", "--internal")
    busy = networks.create("busy", "--keep", "--internal")
    user = name_for(friendly, "user")
    friendly.detached("run", "-d", "--name", user, "--network", busy, str(rootfs_template),
                      "sleep", "1000")
    daemon = networks.inspect(kept)["daemon"]
    pruned = friendly.ok("network", "prune").stdout.split()
    assert kept in pruned and busy not in pruned
    assert networks.inspect(busy)["running"] is True
    friendly.ok("rm", "-f", user)
    assert networks.inspect(busy)["running"] is True           # kept: still up
    friendly.ok("network", "rm", busy)
    assert wait_until(lambda: process_gone(daemon))


# --- handcar killed in the middle of create -----------------------------------------------

STAGES = ("reserved", "spawning", "prepare", "init", "ready", "created")


@pytest.mark.parametrize("stage", STAGES)
def test_sigkill_during_create_leaves_nothing(friendly, networks, bundle, handcar, stage):
    net = networks.create("net", "--internal")
    bundle.linux["namespaces"].append({"type": "network"})
    bundle.config["annotations"] = {"handcar.networks": net}
    path = bundle.args("sleep", "1000").write()
    env = dict(friendly.env, HANDCAR_STOP_AT=stage)
    with open(handcar.root.parent / "container.out", "a") as out:
        create = subprocess.Popen([HANDCAR, "--root", str(handcar.root), "create", "-b",
                                   path, "killed"], stdout=out, stderr=subprocess.DEVNULL,
                                  env=env)

    def stopped():
        try:
            with open(f"/proc/{create.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "T"
        except FileNotFoundError:
            return False
    assert wait_until(stopped), "create did not stop at its stage"
    daemon = networks.inspect(net).get("daemon") or _daemon_pid(networks)
    create.kill()
    create.wait(30)
    assert wait_until(lambda: handcar.state("killed")["status"] == "stopped")
    handcar.ok("delete", "--force", "killed")
    assert wait_until(lambda: daemon is None or process_gone(daemon)), \
        "the network daemon outlived the killed create"
    # nothing stale: the same container comes up on the network at once
    handcar.ok_detached("create", "-b", path, "killed", env=friendly.env)
    assert "killed" in networks.inspect(net)["containers"]
    handcar.ok("delete", "--force", "killed")


def _daemon_pid(networks):
    """The daemon's pid from its log (it runs before any network of it is up)."""
    try:
        lines = (networks.run_dir() / "daemon.log").read_text().splitlines()
    except FileNotFoundError:
        return None
    started = [line for line in lines if " started, pid " in line]
    return int(started[-1].rsplit(" ", 1)[1]) if started else None
