"""The links of a network, made over netlink (pyroute2) by short-lived children of the
daemon.

The daemon lives in the host's network namespace (slirp4netns, which it starts, must
reach the outside from there), and a process can enter a network namespace but never
come back to the host's: the kernel lets only a privileged process into a namespace that
the host's user namespace owns. So each piece of work below runs in a child forked for
it (`in_child`), which enters the namespaces it works on, does it, reports and exits.
Sockets are tied to the namespace they were made in, not to the process: the DNS sockets
made here serve the daemon from then on.
"""

import os

from rootless.errors import SetupError
from rootless.system import libc

BRIDGE = "br0"
UPLINK = "tap0"                  # slirp4netns's device in the network's namespace
DNS_PORT = 53
CHILD_TIMEOUT = 30               # seconds for one piece of netlink work


def in_child(function, *args):
    """Run function(*args) in a forked child; (its result, the fds it passed back).
    `function` returns (a JSON-able result, a list of fds to hand over)."""
    from rootless.child.init import run_child
    from rootless.system.channel import Channel
    ours, theirs = Channel.pair()
    pid = os.fork()
    if pid == 0:
        ours.close()
        run_child(theirs, _child_body, function, args)
    theirs.close()
    try:
        message = ours.expect("done", "working on the network's links",
                              timeout=CHILD_TIMEOUT)
        return message.get("result"), message.get("fds", [])
    except BaseException:
        os.kill(pid, 9)                   # stuck, or we are leaving: not waited for long
        raise
    finally:
        ours.close()
        os.waitpid(pid, 0)


def _child_body(channel, function, args):
    libc.prctl(libc.PR_SET_PDEATHSIG, 9)
    try:
        result, fds = function(*args)
    except Exception as err:  # noqa: BLE001 - pyroute2's NetlinkError is no OSError
        if isinstance(err, OSError) or type(err).__name__ != "NetlinkError":
            raise
        raise SetupError(f"netlink: {os.strerror(err.code) if err.code else err}") from None
    channel.send("done", result=result, fds=fds)


def _enter(netns_fd):
    libc.setns(netns_fd, libc.CLONE_NEWNET)


def _index(netlink, name):
    found = netlink.link_lookup(ifname=name)
    if not found:
        raise SetupError(f"there is no link {name}")
    return found[0]


# --- the pieces (each runs in_child) ----------------------------------------------------

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


def add_link(netns_fd, container_netns_fd, host_name, ifname, address, prefix, gateway):
    """A veth pair: `host_name` on the bridge, `ifname` in the container's namespace with
    `address`/`prefix` (and mac_address(address)), and a default route through `gateway` unless it has one (or
    `gateway` is None: an internal network)."""
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


def remove_bridge_port(netns_fd, host_name):
    """A gone container's veth, deleted from the bridge's side now: its namespace ends a
    while after its last process (the kernel tears namespaces down in the background),
    and until then the bridge would send its address's frames there."""
    from pyroute2 import IPRoute
    _enter(netns_fd)
    with IPRoute() as netlink:
        found = netlink.link_lookup(ifname=host_name)
        if found:
            netlink.link("del", index=found[0])
    return None, []


def _default_route(netlink, gateway):
    from pyroute2.netlink.exceptions import NetlinkError
    try:
        netlink.route("add", dst="0.0.0.0/0", gateway=gateway)
    except NetlinkError as err:
        if err.code != 17:                   # EEXIST: it has one, through another network
            raise
