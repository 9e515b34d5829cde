"""The links of a network, made over netlink (pyroute2) by the daemon's worker.

The daemon lives in the host's network namespace (slirp4netns, which it starts, must
reach the outside from there), and a process can enter a network namespace but never
come back to the host's: the kernel lets only a privileged process into a namespace that
the host's user namespace owns. So the netlink work runs in a worker process forked from
the daemon, which enters whichever namespace of the daemon's user namespace a piece of
work needs (they are all its to enter and leave), and goes back to an empty namespace of
its own after each, so that it keeps none alive. Sockets are tied to the namespace they
were made in, not to the process: the DNS sockets made here serve the daemon.

Each piece below takes the namespaces it works on as its first arguments (fds, passed
to the worker with the request) and returns (a JSON-able result, fds to hand back).
"""

import os

from rootless.errors import SetupError
from rootless.system import libc

BRIDGE = "br0"
UPLINK = "tap0"                  # slirp4netns's (or pasta's) device in the network's namespace
DNS_PORT = 53
CALL_TIMEOUT = 30                # seconds for one piece of netlink work
READY_TIMEOUT = 20               # seconds for pasta to make its device
NAT_TABLE = "handcar"            # pasta's networks: the masquerading behind its address


class Worker:
    """The daemon's netlink worker, started on first use and again if it died."""

    def __init__(self):
        self.pid = 0
        self.channel = None

    def call(self, function, fds=(), *args):
        """function(*fds, *args) in the worker; (its result, the fds it handed back)."""
        if not self.pid:
            self._start()
        try:
            self.channel.send("call", fds=fds, function=function.__name__, args=list(args))
            message = self.channel.receive(timeout=CALL_TIMEOUT)
        except (OSError, SetupError):
            message = None                # it died, or is stuck (timed out)
        if message is None:
            self.stop()                   # the next call starts another
            raise SetupError("the network daemon's netlink worker died or got stuck "
                             f"({function.__name__})")
        if message["type"] == "error":
            raise SetupError(message["msg"])
        return message.get("result"), message.get("fds", [])

    def _start(self):
        from rootless.child.init import run_child
        from rootless.system.channel import Channel
        ours, theirs = Channel.pair()
        pid = os.fork()
        if pid == 0:
            ours.close()
            run_child(theirs, _serve)
        theirs.close()
        self.pid, self.channel = pid, ours

    def stop(self):
        if self.pid:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.channel.close()
            self.pid, self.channel = 0, None


def _serve(channel):
    """The worker's loop (never returns): calls until the daemon hangs up."""
    libc.prctl(libc.PR_SET_PDEATHSIG, 9)
    libc.unshare(libc.CLONE_NEWNET)
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)   # empty, ours
    functions = {f.__name__: f for f in (make_namespace, attach_uplink, attach_pasta,
                                         add_link, remove_link, detach_bridge_port)}
    while True:
        message = channel.receive()
        if message is None:
            os._exit(0)
        fds = message.get("fds", [])
        handed = []
        try:
            _, handed = functions[message["function"]](*fds, *message["args"])
            channel.send("done", fds=handed)
        except Exception as err:  # noqa: BLE001 - reported, and the worker serves on
            channel.send("error", msg=_describe(err))
        finally:
            for fd in fds + handed:
                os.close(fd)
            libc.setns(home, libc.CLONE_NEWNET)


def _describe(err):
    from rootless.child.init import describe
    if type(err).__name__ == "NetlinkError":   # pyroute2's, no OSError
        return f"netlink: {os.strerror(err.code) if err.code else err}"
    return describe(err)


def _enter(netns_fd):
    libc.setns(netns_fd, libc.CLONE_NEWNET)


def _index(netlink, name):
    found = netlink.link_lookup(ifname=name)
    if not found:
        raise SetupError(f"there is no link {name}")
    return found[0]


# --- the pieces (each runs in the worker) ------------------------------------------------

def make_namespace(gateway, prefix, forwarding):
    """A new network namespace with lo, and the bridge at `gateway`/`prefix`; the DNS
    socket bound to gateway:53 and (`forwarding`) one to ask the host's resolvers with.
    Hands over [netns, dns(, forward)]."""
    import socket
    from pyroute2 import IPRoute
    libc.unshare(libc.CLONE_NEWNET)
    with IPRoute() as netlink:
        netlink.link("set", index=_index(netlink, "lo"), state="up")
        netlink.link("add", ifname=BRIDGE, kind="bridge")
        bridge = _index(netlink, BRIDGE)
        # a MAC of its own: a bridge without one takes its ports' lowest, and changes it
        # when that port goes, leaving the containers' ARP caches (their DNS) astray
        netlink.link("set", index=bridge, address=mac_address(gateway))
        netlink.addr("add", index=bridge, address=gateway, prefixlen=prefix)
        netlink.link("set", index=bridge, state="up")
    netns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind((gateway, DNS_PORT))
    fds = [netns, dns.detach()]
    if forwarding:
        fds.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM).detach())
    return None, fds


def attach_uplink(netns_fd):
    """slirp4netns's tap device into the bridge, up: the containers reach the host's
    network (its gateway and DNS at S+2 and S+3) on the bridge's own segment."""
    from pyroute2 import IPRoute
    _enter(netns_fd)
    with IPRoute() as netlink:
        netlink.link("set", index=_index(netlink, UPLINK), master=_index(netlink, BRIDGE),
                     state="up")
    return None, []


def attach_pasta(netns_fd, pasta_pidfd, subnet, containers_gateway, dns_address):
    """pasta's tap device, once it made it, on a link of its own (outbound.py says why):
    the containers' gateway (S+2) on the bridge, the default route and S+3 (pasta's DNS
    forwarder) through pasta, forwarding on, and the subnet masqueraded behind the
    namespace's address on the link."""
    import select
    import time
    from pyroute2 import IPRoute
    from pyroute2.nftables.expressions import ipv4addr, masq
    from pyroute2.nftables.main import NFTables
    from rootless.network import outbound
    _enter(netns_fd)
    deadline = time.monotonic() + READY_TIMEOUT
    with IPRoute() as netlink:
        while not netlink.link_lookup(ifname=UPLINK):
            if select.select([pasta_pidfd], [], [], 0.01)[0]:
                raise SetupError("pasta exited before it was ready (see pasta.log in the "
                                 "network's run directory, @networks/net-NAME)")
            if time.monotonic() > deadline:
                raise SetupError(f"pasta did not get ready within {READY_TIMEOUT}s")
        uplink = _index(netlink, UPLINK)
        netlink.addr("add", index=uplink, address=outbound.LINK_ADDRESS,
                     prefixlen=outbound.LINK.prefixlen)
        netlink.link("set", index=uplink, state="up")
        netlink.route("add", dst="0.0.0.0/0", gateway=outbound.LINK_GATEWAY)
        netlink.route("add", dst=f"{dns_address}/32", gateway=outbound.LINK_GATEWAY)
        netlink.addr("add", index=_index(netlink, BRIDGE), address=containers_gateway,
                     prefixlen=int(subnet.split("/")[1]))
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:    # this namespace's
        f.write("1")
    with NFTables(nfgen_family=2) as nft:                    # NFPROTO_IPV4
        nft.table("add", name=NAT_TABLE)
        nft.chain("add", table=NAT_TABLE, name="postrouting", hook="postrouting",
                  type="nat", policy=1, priority=100)
        nft.rule("add", table=NAT_TABLE, chain="postrouting",
                 expressions=(ipv4addr(src=subnet), masq()))
    return None, []


def add_link(netns_fd, container_netns_fd, host_name, ifname, address, prefix, gateway):
    """A veth pair: `host_name` on the bridge, `ifname` in the container's namespace with
    `address`/`prefix` (and mac_address(address)), and a default route through `gateway`
    unless it has one (or `gateway` is None: an internal network)."""
    from pyroute2 import IPRoute
    _enter(netns_fd)
    with IPRoute() as netlink:
        netlink.link("add", ifname=host_name, kind="veth",
                     peer={"ifname": ifname, "net_ns_fd": container_netns_fd,
                           "address": mac_address(address)})
        try:
            netlink.link("set", index=_index(netlink, host_name),
                         master=_index(netlink, BRIDGE), state="up")
        except BaseException:
            netlink.link("del", index=_index(netlink, host_name))   # both ends go
            raise
    _enter(container_netns_fd)
    with IPRoute() as netlink:
        try:
            link = _index(netlink, ifname)
            netlink.addr("add", index=link, address=address, prefixlen=prefix)
            netlink.link("set", index=link, state="up")
            if gateway:
                _default_route(netlink, gateway)
        except BaseException:
            netlink.link("del", index=_index(netlink, ifname))
            raise
    return None, []


def mac_address(address):
    """The MAC address of a container's link, made of its IPv4 address (as docker makes
    it): slirp4netns learns each address's MAC once and never forgets it, so a container
    that gets an address another had must get its MAC too."""
    return "02:68:" + ":".join(f"{int(part):02x}" for part in address.split("."))


def remove_link(container_netns_fd, ifname, gateway):
    """The container's `ifname` deleted (its veth peer on the bridge goes with it); then a
    default route through `gateway` (another network's) if the container lost its own."""
    from pyroute2 import IPRoute
    _enter(container_netns_fd)
    with IPRoute() as netlink:
        found = netlink.link_lookup(ifname=ifname)
        if found:
            netlink.link("del", index=found[0])
        if gateway:
            _default_route(netlink, gateway)
    return None, []


def detach_bridge_port(netns_fd, host_name):
    """A gone container's veth, taken off the bridge now: its namespace ends a while after
    its last process (the kernel tears namespaces down in the background, the veth pair
    with it), and until then the bridge would send its address's frames there. (Off the
    bridge, not deleted: deleting a link waits for the kernel, ~15 ms.)"""
    from pyroute2 import IPRoute
    _enter(netns_fd)
    with IPRoute() as netlink:
        found = netlink.link_lookup(ifname=host_name)
        if found:
            netlink.link("set", index=found[0], master=0)
    return None, []


def _default_route(netlink, gateway):
    from pyroute2.netlink.exceptions import NetlinkError
    try:
        netlink.route("add", dst="0.0.0.0/0", gateway=gateway)
    except NetlinkError as err:
        if err.code != 17:                   # EEXIST: it has one, through another network
            raise
