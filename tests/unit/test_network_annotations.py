"""oci/network.py: the handcar.network and handcar.ports annotations."""

import pytest

from oci import network
from oci import spec as oci_spec
from oci.errors import SpecError
from oci.network import PortMapping, Slirp4netns


def test_slirp4netns_defaults_are_podmans():
    assert network.parse_network("slirp4netns") == Slirp4netns(
        mtu=65520, allow_host_loopback=False, cidr="10.0.2.0/24", enable_ipv6=True)


def test_slirp4netns_options():
    parsed = network.parse_network(
        "slirp4netns:allow_host_loopback=true,mtu=1000,cidr=10.1.0.0/16,enable_ipv6=false")
    assert parsed == Slirp4netns(mtu=1000, allow_host_loopback=True, cidr="10.1.0.0/16",
                                 enable_ipv6=False)
    assert (parsed.gateway, parsed.dns, parsed.address) == ("10.1.0.2", "10.1.0.3",
                                                            "10.1.0.100")
    assert network.parse_network("slirp4netns").dns == "10.0.2.3"


@pytest.mark.parametrize("text, why", [
    ("pasta", "unknown network mode 'pasta'"),
    ("host", "unknown network mode 'host'"),
    ("slirp4netns:", None),                                   # no options is fine
    ("slirp4netns:mtu", "expected OPTION=VALUE"),
    ("slirp4netns:mtu=1500,mtu=1400", "mtu is given twice"),
    ("slirp4netns:mtu=65522", "mtu=65522: expected a number from 68 to 65521"),
    ("slirp4netns:mtu=67,enable_ipv6=false", "expected a number from 68"),
    ("slirp4netns:mtu=1e3", "expected a number"),
    ("slirp4netns:mtu=١٥٠٠", "expected a number"),            # digits, but not ASCII ones
    ("slirp4netns:allow_host_loopback=yes", "expected true or false"),
    ("slirp4netns:port_handler=slirp4netns", "unknown slirp4netns option 'port_handler'"),
    ("slirp4netns:cidr=10.0.2.0", "expected A.B.C.D/N"),
    ("slirp4netns:cidr=10.0.2.0/26", "N from 1 to 25"),
    ("slirp4netns:cidr=10.0.256.0/24", "expected A.B.C.D/N"),
    ("slirp4netns:cidr=10.0.2.5/24", "host bits are set (the network is 10.0.2.0/24)"),
    ("slirp4netns:mtu=1000", "mtu=1000 is below IPv6's minimum of 1280 (add enable_ipv6=false)"),
])
def test_bad_network_values(text, why):
    if why is None:
        network.parse_network(text)
        return
    with pytest.raises(ValueError) as info:
        network.parse_network(text)
    assert why in str(info.value)


@pytest.mark.parametrize("text, mapping", [
    ("8080:80", PortMapping("0.0.0.0", 8080, 80, "tcp")),
    ("127.0.0.1:8080:80", PortMapping("127.0.0.1", 8080, 80, "tcp")),
    ("127.0.0.1:53:5353/udp", PortMapping("127.0.0.1", 53, 5353, "udp")),
    ("65535:1/tcp", PortMapping("0.0.0.0", 65535, 1, "tcp")),
])
def test_ports(text, mapping):
    assert network.parse_port(text) == mapping


def test_port_spellings():
    mapping = network.parse_port("127.0.0.1:8080:80")
    assert str(mapping) == "127.0.0.1:8080->80/tcp"           # as podman ps shows it
    assert mapping.annotation() == "127.0.0.1:8080:80/tcp"
    assert network.ports_annotation(["8080:80", "127.0.0.1:53:53/udp"]) == \
        "0.0.0.0:8080:80/tcp,127.0.0.1:53:53/udp"


@pytest.mark.parametrize("text, why", [
    ("80", "expected [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]"),
    ("1:2:3:4", "expected [HOSTIP:]HOSTPORT:CTRPORT"),
    ("8080:80/sctp", "protocol 'sctp' is not tcp or udp"),
    ("8080:80/", "protocol '' is not tcp or udp"),
    ("0:80", "'0' is not a port number"),
    ("8080:65536", "'65536' is not a port number"),
    ("8080:http", "'http' is not a port number"),
    ("8000-8010:80-90", "port ranges are not supported"),
    ("localhost:8080:80", "host address 'localhost' is not an IPv4 address"),
    ("1.2.3:8080:80", "is not an IPv4 address"),
    ("[::1]:8080:80", "IPv4 host addresses only"),
])
def test_bad_ports(text, why):
    with pytest.raises(ValueError) as info:
        network.parse_port(text)
    assert why in str(info.value)


def test_a_host_socket_published_twice_is_refused():
    assert len(network.parse_ports("8080:80,8080:80/udp,127.0.0.1:9090:90,127.0.0.2:9090:90")) == 4
    for text in ("8080:80,8080:81", "127.0.0.1:8080:80,8080:81", "8080:80, 127.0.0.1:8080:81"):
        with pytest.raises(ValueError) as info:
            network.parse_ports(text)
        assert "host port 8080/tcp is published twice" in str(info.value)
    with pytest.raises(ValueError):
        network.parse_ports("8080:80,")


def spec_with(namespaces, annotations):
    return oci_spec.from_json({
        "ociVersion": "1.2.0", "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/"},
        "linux": {"namespaces": [{"type": "mount"}] + namespaces},
        "annotations": annotations})


def test_settings_of_a_spec():
    assert network.settings(spec_with([], {})) is None
    assert network.settings(spec_with([{"type": "network", "path": "/proc/1/ns/net"}], {})) \
        is None                                        # podman's own network: left alone
    assert network.settings(spec_with([{"type": "network"}], {})) == \
        network.Settings(loopback=True)
    wanted = network.settings(spec_with([{"type": "network"}], {
        "handcar.network": "slirp4netns:allow_host_loopback=true",
        "handcar.ports": "127.0.0.1:8080:80"}))
    assert wanted.loopback and wanted.network.allow_host_loopback
    assert wanted.ports == (PortMapping("127.0.0.1", 8080, 80, "tcp"),)


@pytest.mark.parametrize("namespaces, annotations, problems", [
    ([], {"handcar.network": "slirp4netns"},
     ["annotations.handcar.network: needs a network namespace of the container's own"]),
    ([{"type": "network", "path": "/run/netns/x"}], {"handcar.network": "slirp4netns"},
     ["annotations.handcar.network: needs a network namespace of the container's own"]),
    ([{"type": "network"}], {"handcar.ports": "8080:80"},
     ["annotations.handcar.ports: needs handcar.network"]),
    ([{"type": "network"}], {"handcar.network": "slirp4netns:mtu=x", "handcar.ports": "80"},
     ["annotations.handcar.network: mtu=x: expected a number",
      "annotations.handcar.ports: port '80': expected"]),
])
def test_bad_settings_are_spec_errors(namespaces, annotations, problems):
    with pytest.raises(SpecError) as info:
        network.settings(spec_with(namespaces, annotations), source="/b/config.json")
    assert len(info.value.problems) == len(problems)
    for problem, expected in zip(info.value.problems, problems):
        assert problem.startswith(expected), problem
    assert str(info.value).startswith("invalid /b/config.json: ")
