"""handcar's container networks as the user defines them (`handcar network create`): one
JSON file per network in <storage>/networks/ (storage: the XDG data dir, or config.toml's
`storage`), and the choice of their subnets. What runs for a network while containers
use it is daemon.py's.

A network's addresses, in its subnet S (a /24 unless --subnet says otherwise):
    S+1   the bridge, in the network's own namespace: handcar's DNS answers there
    S+2   the containers' gateway: slirp4netns's (the host), or the network's namespace
          routing to pasta (outbound.py); none when internal
    S+3   the helper's DNS forwarder (the host's resolvers), asked for names not ours
    S+4.. the containers, in order unless one asks for its address (--ip)
"""

import ipaddress
import os

from oci import jsonio
from oci.network import check_name
from oci.record import Record
from rootless.errors import AlreadyExists, HandcarError, NotFound
from rootless.network.outbound import LINK_LOCAL

# the daemon's run directory, in the state root ('@' is no character of a container id)
RUN_DIR = "@networks"
SOCKET = "daemon.sock"           # where it listens
LOCK = "lock"                    # held to connect or start it (daemon._exit_if_idle)
LOG = "daemon.log"               # its stdout and stderr


def run_directory(store_root):
    return os.path.join(store_root, RUN_DIR)

POOL = ipaddress.ip_network("10.89.0.0/16")   # podman's pool for new networks, in /24s
POOL_PREFIX = 24
MIN_PREFIX, MAX_PREFIX = 8, 25                # a /26 would leave too few addresses; slirp4netns
                                              # takes prefixes up to /25
FIRST_CONTAINER = 4                           # S+4: see above


class Network(Record):
    FIELDS = {
        "name": None,
        "id": None,              # 64 hex digits, as podman's
        "subnet": None,          # "10.89.0.0/24"
        "internal": False,       # no slirp4netns or pasta: no way out of the network
        "keep": False,           # up from `network create --keep` until `network rm`
        "created": "",
    }

    @property
    def network(self):
        return ipaddress.ip_network(self.subnet)

    def address(self, offset):
        return str(self.network.network_address + offset)

    @property
    def gateway(self):
        """The bridge's address: where handcar's DNS listens."""
        return self.address(1)

    @property
    def host(self):
        """The host as the containers see it (slirp4netns's gateway), or None."""
        return None if self.internal else self.address(2)

    @property
    def slirp_dns(self):
        return self.address(3)

    @property
    def prefix(self):
        return self.network.prefixlen

    def container_addresses(self):
        """Every address a container may have, in the order they are given out."""
        network = self.network
        first = network.network_address + FIRST_CONTAINER
        return (str(first + i) for i in range(network.num_addresses - FIRST_CONTAINER - 1))

    def check_address(self, text):
        """A --ip for this network, or HandcarError saying why not."""
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise HandcarError(f"--ip {text}: not an IPv4 address") from None
        offset = int(address) - int(self.network.network_address)
        if address not in self.network or address == self.network.broadcast_address:
            raise HandcarError(f"--ip {text}: not a container address of network "
                               f"{self.name} ({self.subnet})")
        if offset < FIRST_CONTAINER:
            raise HandcarError(f"--ip {text}: {self.subnet}'s first {FIRST_CONTAINER} "
                               "addresses are the network's own (bridge and DNS, the host, "
                               "the host's DNS)")
        return str(address)

    def fields(self):
        """The definition as Network(**fields) takes it back (the daemon gets it so)."""
        return {name: getattr(self, name) for name in self.FIELDS}

    def to_json(self):
        return {"name": self.name, "id": self.id, "subnet": self.subnet,
                "gateway": self.gateway, "internal": self.internal, "keep": self.keep,
                "created": self.created}


# --- where they are ---------------------------------------------------------------------

def networks_dir():
    from rootless.friendly.settings import settings
    return os.path.join(settings().storage, "networks")


def _path(name):
    try:
        check_name(name)
    except ValueError as err:
        raise HandcarError(str(err)) from None
    return os.path.join(networks_dir(), f"{name}.json")


def load(name):
    """The Network called `name`; NotFound when there is none."""
    path = _path(name)
    try:
        with open(path, "rb") as f:
            return _from_json(jsonio.loads(f.read(), explain=False), path)
    except FileNotFoundError:
        raise NotFound(f"no such network {name} (handcar network ls lists them)") from None


def _from_json(document, path):
    try:
        return Network(name=document["name"], id=document["id"], subnet=document["subnet"],
                       internal=bool(document.get("internal")),
                       keep=bool(document.get("keep")), created=document.get("created", ""))
    except (KeyError, TypeError):
        raise HandcarError(f"{path}: not a handcar network definition") from None


def all_networks():
    """Every defined Network, by name."""
    try:
        names = sorted(os.listdir(networks_dir()))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if name.endswith(".json") and not name.startswith("."):
            try:
                found.append(load(name[:-len(".json")]))
            except (HandcarError, ValueError):
                continue                  # a stray file: not ours to judge here
    return found


def create(name, subnet=None, internal=False, keep=False):
    """Define a network; its Network. The subnet is checked (or chosen) against the host's
    routes and the other networks."""
    import fcntl
    from rootless.runtime.store import rfc3339_now
    path = _path(name)
    os.makedirs(networks_dir(), mode=0o700, exist_ok=True)
    lock = os.open(networks_dir(), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)        # two creates do not choose one subnet
        return _create_locked(name, path, subnet, internal, keep, rfc3339_now())
    finally:
        os.close(lock)


def _create_locked(name, path, subnet, internal, keep, now):
    others = all_networks()
    if any(network.name == name for network in others):
        raise AlreadyExists(f"network {name} already exists")
    taken = [ipaddress.ip_network(network.subnet) for network in others]
    routes = host_routes()
    if subnet is None:
        chosen = choose_subnet(taken, routes)
    else:
        chosen = check_subnet(subnet, taken, routes)
    network = Network(name=name, id=os.urandom(32).hex(), subnet=str(chosen),
                      internal=internal, keep=keep, created=now)
    # written whole, then linked into place: two creates of one name cannot both win, and
    # no reader sees half a file
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as f:
        f.write(jsonio.dumps(network.to_json(), indent=2))
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise AlreadyExists(f"network {name} already exists") from None
    finally:
        os.unlink(temporary)
    return network


def remove(name):
    try:
        os.unlink(_path(name))
    except FileNotFoundError:
        raise NotFound(f"no such network {name}") from None


# --- subnets ----------------------------------------------------------------------------

def choose_subnet(taken, routes):
    """The first /24 of the pool that overlaps neither another network nor a route of the
    host (a network the host reaches directly would be hidden behind ours)."""
    for candidate in POOL.subnets(new_prefix=POOL_PREFIX):
        if not any(candidate.overlaps(other) for other in list(taken) + list(routes)):
            return candidate
    raise HandcarError(f"every subnet of {POOL} is taken (give one with --subnet)")


def check_subnet(text, taken, routes):
    """--subnet CIDR, checked: an IPv4 network of /8 to /25 with no host bits, overlapping
    no other network and no host route."""
    try:
        subnet = ipaddress.IPv4Network(text)
    except ValueError as err:
        raise HandcarError(f"--subnet {text}: expected an IPv4 network A.B.C.D/N ({err})") \
            from None
    if not MIN_PREFIX <= subnet.prefixlen <= MAX_PREFIX:
        raise HandcarError(f"--subnet {text}: the prefix must be /{MIN_PREFIX} to "
                           f"/{MAX_PREFIX}")
    if subnet.overlaps(LINK_LOCAL):
        raise HandcarError(f"--subnet {text} overlaps {LINK_LOCAL}, link-local addresses "
                           "(pasta's link in a network's namespace is one)")
    for other in taken:
        if subnet.overlaps(other):
            raise HandcarError(f"--subnet {text} overlaps {other}, another network's")
    for route in routes:
        if subnet.overlaps(route):
            raise HandcarError(f"--subnet {text} overlaps {route}, a route of this host")
    return subnet


def host_routes(path="/proc/net/route"):
    """The IPv4 networks the host routes to directly (not the default route)."""
    routes = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return routes
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        destination, mask = (int.from_bytes(bytes.fromhex(field), "little")
                             for field in (fields[1], fields[7]))
        if mask == 0:
            continue                      # the default route covers everything
        try:
            routes.append(ipaddress.IPv4Network((destination, bin(mask).count("1"))))
        except ValueError:
            continue
    return routes
