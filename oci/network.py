"""The network a container asks handcar for: two annotations, parsed and checked here
(pure: no system calls; the engine is rootless/network.py).

    handcar.network = slirp4netns[:OPTION=VALUE,...]
        OPTIONs as podman spells them: allow_host_loopback=true|false (false),
        mtu=N (65520), cidr=A.B.C.D/N (10.0.2.0/24), enable_ipv6=true|false (true).
    handcar.ports = [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp],...
        published through slirp4netns; HOSTIP defaults to 0.0.0.0 (every address, as in
        podman), the protocol to tcp. Needs handcar.network.

    handcar.networks = NAME[,NAME...]
        handcar's container networks to join (`handcar network create`; the engine is
        rootless/network/daemon.py), instead of handcar.network. With them:
    handcar.network-aliases = ALIAS[,ALIAS...]
        more names the others on those networks resolve to this container (its id is one)
    handcar.ip = A.B.C.D
        its address, with a single network (otherwise the next free one of the subnet)

All ask for a network namespace of the container's own (linux.namespaces has "network"
without a path). Whatever the annotations, such a namespace gets `lo` up; one that is
joined by path (podman brings its own network) or shared with the caller is left as it is.
The friendly run mode writes these annotations from --network and -p: parse_network and
parse_port check one option value each (ValueError with the reason), ports_annotation
joins -p values into the annotation's text.
"""

from .errors import SpecError
from .record import Record

NETWORK_ANNOTATION = "handcar.network"
PORTS_ANNOTATION = "handcar.ports"
NETWORKS_ANNOTATION = "handcar.networks"
ALIASES_ANNOTATION = "handcar.network-aliases"
IP_ANNOTATION = "handcar.ip"
NETWORK_ANNOTATIONS = (NETWORK_ANNOTATION, PORTS_ANNOTATION, NETWORKS_ANNOTATION,
                       ALIASES_ANNOTATION, IP_ANNOTATION)
# words a network name must not be: network modes (handcar's and podman's)
RESERVED_NETWORK_NAMES = ("none", "host", "slirp4netns", "ns", "pasta", "private",
                          "container", "bridge")
MAX_NAME = 63                          # a network's name or an alias (a DNS label's limit)
MODES = ("slirp4netns",)
PROTOCOLS = ("tcp", "udp")
MIN_MTU, MAX_MTU = 68, 65521           # IPv4's minimum; slirp4netns's maximum
MIN_IPV6_MTU = 1280
MAX_PREFIX = 25                        # slirp4netns puts the container at network + 100
ALL_ADDRESSES = "0.0.0.0"
PORT_FORMAT = "[HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]"


class Slirp4netns(Record):
    """slirp4netns's options, with podman's defaults."""
    FIELDS = {
        "mtu": 65520,
        "allow_host_loopback": False,
        "cidr": "10.0.2.0/24",
        "enable_ipv6": True,
    }
    mode = "slirp4netns"

    def _address(self, offset):
        network = self.cidr.split("/")[0]
        return _format_ipv4(_ipv4_value(network) + offset)

    @property
    def gateway(self):
        """The host as the container sees it (its 127.0.0.1 with allow_host_loopback)."""
        return self._address(2)

    @property
    def dns(self):
        """slirp4netns's DNS forwarder, for the container's /etc/resolv.conf."""
        return self._address(3)

    @property
    def address(self):
        """The container's own address (--configure gives it network + 100)."""
        return self._address(100)


class PortMapping(Record):
    FIELDS = {
        "host_ip": ALL_ADDRESSES,
        "host_port": None,
        "container_port": None,
        "protocol": "tcp",
    }

    def annotation(self):
        """This mapping as handcar.ports spells it, everything explicit."""
        return f"{self.host_ip}:{self.host_port}:{self.container_port}/{self.protocol}"

    def __str__(self):
        """As podman ps shows it: 0.0.0.0:8080->80/tcp."""
        return f"{self.host_ip}:{self.host_port}->{self.container_port}/{self.protocol}"

    def overlaps(self, other):
        """Both would listen on the same host socket."""
        return (self.host_port == other.host_port and self.protocol == other.protocol
                and (self.host_ip == other.host_ip
                     or ALL_ADDRESSES in (self.host_ip, other.host_ip)))


class Settings(Record):
    """What the engine sets up for one container."""
    FIELDS = {
        "loopback": False,    # a network namespace of its own (its init brings lo up)
        "network": None,      # Slirp4netns, or None: lo only
        "ports": (),          # PortMapping, published through `network` or the first of
                              # `networks`
        "networks": (),       # names of handcar networks (instead of `network`)
        "aliases": (),        # more names on them
        "ip": None,           # the address asked for on the only one of `networks`
    }


# --- one value at a time (the friendly run mode's --network and -p) --------------------

def parse_network(text):
    """`slirp4netns[:OPTION=VALUE,...]` -> Slirp4netns; ValueError says what is wrong."""
    mode, _, options = text.partition(":")
    if mode not in MODES:
        raise ValueError(f"unknown network mode {mode!r} (handcar knows: {', '.join(MODES)})")
    values = {}
    for item in options.split(",") if options else ():
        key, equals, value = item.partition("=")
        if not equals:
            raise ValueError(f"{mode} option {item!r}: expected OPTION=VALUE")
        if key in values:
            raise ValueError(f"{mode} option {key} is given twice")
        if key in ("allow_host_loopback", "enable_ipv6"):
            values[key] = _boolean(key, value)
        elif key == "mtu":
            values[key] = _number(key, value, MIN_MTU, MAX_MTU)
        elif key == "cidr":
            values[key] = _cidr(value)
        else:
            known = ", ".join(Slirp4netns.FIELDS)
            raise ValueError(f"unknown {mode} option {key!r} (handcar knows: {known})")
    network = Slirp4netns(**values)
    if network.enable_ipv6 and network.mtu < MIN_IPV6_MTU:
        raise ValueError(f"mtu={network.mtu} is below IPv6's minimum of {MIN_IPV6_MTU} "
                         "(add enable_ipv6=false)")
    return network


def parse_port(text):
    """`[HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]` -> PortMapping; ValueError says what is wrong."""
    addresses, slash, protocol = text.partition("/")
    if addresses.startswith("["):
        raise ValueError(f"port {text!r}: slirp4netns publishes on IPv4 host addresses only")
    if slash and protocol not in PROTOCOLS:
        raise ValueError(f"port {text!r}: protocol {protocol!r} is not tcp or udp")
    parts = addresses.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"port {text!r}: expected {PORT_FORMAT}")
    host_ip = parts[0] if len(parts) == 3 else ALL_ADDRESSES
    try:
        host_ip = _format_ipv4(_ipv4_value(host_ip))
    except ValueError:
        raise ValueError(f"port {text!r}: host address {host_ip!r} is not an IPv4 address "
                         "(A.B.C.D)") from None
    host_port, container_port = (_port(text, part) for part in parts[-2:])
    return PortMapping(host_ip=host_ip, host_port=host_port, container_port=container_port,
                       protocol=protocol or "tcp")


def check_name(text, what="network name"):
    """A network name or an alias: letters, digits, '_', '.', '-', first a letter or
    digit (podman's rule); ValueError says what is wrong."""
    if not text or len(text) > MAX_NAME or not text.isascii() or not text[0].isalnum() \
            or not all(c.isalnum() or c in "_.-" for c in text):
        raise ValueError(f"{what} {text!r}: use up to {MAX_NAME} letters, digits, '_', '.' "
                         "and '-', starting with a letter or digit")
    if what == "network name" and text in RESERVED_NETWORK_NAMES:
        raise ValueError(f"network name {text!r} is a network mode, not a name")
    return text


def parse_names(text, what="network name"):
    """`NAME[,NAME...]` -> a tuple of checked names, none twice."""
    names = tuple(check_name(item.strip(), what) for item in text.split(","))
    if len(set(names)) != len(names):
        raise ValueError(f"a {what} is given twice in {text!r}")
    return names


def parse_ipv4(text):
    """`A.B.C.D` -> the same text, checked; ValueError says what is wrong."""
    try:
        return _format_ipv4(_ipv4_value(text))
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address (A.B.C.D)") from None


def parse_ports(text):
    """The handcar.ports annotation -> a tuple of PortMapping, no host socket twice."""
    mappings = []
    for item in text.split(","):
        mapping = parse_port(item.strip())
        for earlier in mappings:
            if mapping.overlaps(earlier):
                raise ValueError(f"host port {mapping.host_port}/{mapping.protocol} is "
                                 f"published twice ({earlier.annotation()} and "
                                 f"{mapping.annotation()})")
        mappings.append(mapping)
    return tuple(mappings)


def ports_annotation(items):
    """The handcar.ports text for -p values (checked; ValueError when one is wrong)."""
    text = ",".join(items)
    return ",".join(mapping.annotation() for mapping in parse_ports(text))


# --- a whole spec ----------------------------------------------------------------------

def settings(spec, source="config.json"):
    """The Settings a spec asks for, or None when there is nothing to set up (no network
    namespace of its own, no annotation). SpecError for bad annotations."""
    annotations = spec.annotations
    netns = spec.linux.namespace("network")
    own_netns = netns is not None and not netns.path
    if not own_netns and not any(key in annotations for key in NETWORK_ANNOTATIONS):
        return None
    problems = []
    network, ports, networks, aliases, ip = None, (), (), (), None
    for key in (NETWORK_ANNOTATION, NETWORKS_ANNOTATION):
        if key in annotations and not own_netns:
            problems.append(f"annotations.{key}: needs a network namespace of the "
                            "container's own (linux.namespaces: {\"type\": \"network\"} "
                            "without a path)")
    if NETWORK_ANNOTATION in annotations:
        network = _checked(problems, NETWORK_ANNOTATION, annotations[NETWORK_ANNOTATION],
                           parse_network)
        if NETWORKS_ANNOTATION in annotations:
            problems.append(f"annotations.{NETWORKS_ANNOTATION}: not with "
                            f"{NETWORK_ANNOTATION} (a container has one way out)")
    if NETWORKS_ANNOTATION in annotations:
        networks = _checked(problems, NETWORKS_ANNOTATION, annotations[NETWORKS_ANNOTATION],
                            parse_names) or ()
    if ALIASES_ANNOTATION in annotations:
        aliases = _checked(problems, ALIASES_ANNOTATION, annotations[ALIASES_ANNOTATION],
                           lambda text: parse_names(text, "alias")) or ()
        if NETWORKS_ANNOTATION not in annotations:
            problems.append(f"annotations.{ALIASES_ANNOTATION}: needs {NETWORKS_ANNOTATION}")
    if IP_ANNOTATION in annotations:
        ip = _checked(problems, IP_ANNOTATION, annotations[IP_ANNOTATION], parse_ipv4)
        if len(networks) != 1:
            problems.append(f"annotations.{IP_ANNOTATION}: needs exactly one network in "
                            f"{NETWORKS_ANNOTATION}")
    if PORTS_ANNOTATION in annotations:
        ports = _checked(problems, PORTS_ANNOTATION, annotations[PORTS_ANNOTATION],
                         parse_ports) or ()
        if NETWORK_ANNOTATION not in annotations and NETWORKS_ANNOTATION not in annotations:
            problems.append(f"annotations.{PORTS_ANNOTATION}: needs {NETWORK_ANNOTATION} or "
                            f"{NETWORKS_ANNOTATION} (ports are published through slirp4netns)")
    if problems:
        raise SpecError(problems, source)
    return Settings(loopback=own_netns, network=network, ports=ports, networks=networks,
                    aliases=aliases, ip=ip)


def _checked(problems, key, text, parse):
    try:
        return parse(text)
    except ValueError as err:
        problems.append(f"annotations.{key}: {err}")
        return None


# --- pieces ----------------------------------------------------------------------------

def _boolean(key, value):
    if value not in ("true", "false"):
        raise ValueError(f"{key}={value}: expected true or false")
    return value == "true"


def _number(key, value, low, high):
    if not _digits(value) or not low <= int(value) <= high:
        raise ValueError(f"{key}={value}: expected a number from {low} to {high}")
    return int(value)


def _port(text, value):
    if "-" in value:
        raise ValueError(f"port {text!r}: port ranges are not supported")
    if not _digits(value) or not 1 <= int(value) <= 65535:
        raise ValueError(f"port {text!r}: {value!r} is not a port number (1-65535)")
    return int(value)


def _cidr(value):
    address, slash, prefix = value.partition("/")
    try:
        network = _ipv4_value(address)
    except ValueError:
        network = None
    if network is None or not slash or not _digits(prefix) \
            or not 1 <= int(prefix) <= MAX_PREFIX:
        raise ValueError(f"cidr={value}: expected A.B.C.D/N with N from 1 to {MAX_PREFIX}")
    mask = (0xFFFFFFFF << (32 - int(prefix))) & 0xFFFFFFFF
    if network & ~mask:
        raise ValueError(f"cidr={value}: host bits are set (the network is "
                         f"{_format_ipv4(network & mask)}/{prefix})")
    return f"{_format_ipv4(network)}/{int(prefix)}"


def _digits(text):
    return text.isascii() and text.isdigit()


def _ipv4_value(text):
    parts = text.split(".")
    if len(parts) != 4 or not all(_digits(p) and len(p) <= 3 and int(p) <= 255
                                  for p in parts):
        raise ValueError(text)
    value = 0
    for part in parts:
        value = value << 8 | int(part)
    return value


def _format_ipv4(value):
    return ".".join(str(value >> shift & 0xFF) for shift in (24, 16, 8, 0))
