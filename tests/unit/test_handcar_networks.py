"""handcar networks without namespaces: the DNS answers, subnets and addresses, the
annotations a container asks with, and the verbs' command line."""

import ipaddress

import pytest

from oci import network, spec as oci_spec
from oci.errors import SpecError
from rootless.cli import verbs
from rootless.errors import HandcarError
from rootless.network import definitions, dns, outbound
from rootless.network.definitions import Network
from rootless.network.plumbing import mac_address


# --- DNS ----------------------------------------------------------------------------------

def question(name, qtype=dns.TYPE_A, ident=0x1234, flags=0x0100):
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    return (ident.to_bytes(2, "big") + flags.to_bytes(2, "big") + b"\x00\x01" + bytes(6)
            + labels + b"\x00" + qtype.to_bytes(2, "big") + b"\x00\x01")


def parsed(response):
    """(id, rcode, authoritative, answers as dotted quads) of a response."""
    flags = int.from_bytes(response[2:4], "big")
    assert flags & 0x8000, "not a response"
    count = int.from_bytes(response[6:8], "big")
    position = 12
    while response[position]:
        position += response[position] + 1
    position += 5                                         # the name's end, type, class
    answers = []
    for _ in range(count):
        assert response[position:position + 2] == b"\xc0\x0c"
        length = int.from_bytes(response[position + 10:position + 12], "big")
        answers.append(".".join(str(b) for b in response[position + 12:position + 12 + length]))
        position += 12 + length
    assert position == len(response)
    return int.from_bytes(response[0:2], "big"), flags & 0xF, bool(flags & 0x0400), answers


NAMES = {"web": ["10.89.0.4"], "www": ["10.89.0.4", "10.89.0.9"]}


def lookup(name):
    return NAMES.get(name, [])


def test_a_name_of_the_network_is_answered_here():
    assert parsed(dns.answer(question("web"), lookup, False)) == (0x1234, dns.NOERROR, True,
                                                                ["10.89.0.4"])
    assert parsed(dns.answer(question("WWW"), lookup, False))[3] == ["10.89.0.4", "10.89.0.9"]


def test_other_record_types_of_our_names_are_empty_answers():
    # an AAAA question for a container must not go to the host's resolvers (which would
    # say the name does not exist, and make the resolver give up on its A record)
    assert parsed(dns.answer(question("web", qtype=28), lookup, False)) == \
        (0x1234, dns.NOERROR, True, [])


def test_other_names_are_forwarded_or_refused_on_an_internal_network():
    assert dns.answer(question("example.org"), lookup, False) == dns.FORWARD
    assert parsed(dns.answer(question("example.org"), lookup, True))[1] == dns.NXDOMAIN


def test_responses_and_garbage_are_not_answered_as_questions():
    assert dns.answer(question("web", flags=0x8180), lookup, False) is None
    assert dns.answer(b"\x00", lookup, False) is None
    broken = dns.answer(b"\x12\x34\x01\x00\x00\x01" + bytes(6) + b"\x05we", lookup, False)
    assert int.from_bytes(broken[2:4], "big") & 0xF == dns.FORMERR
    assert dns.with_id(question("web"), 7)[0:2] == b"\x00\x07"
    assert dns.message_id(question("web", ident=0xBEEF)) == 0xBEEF


# --- subnets and addresses ---------------------------------------------------------------

def net(text):
    return ipaddress.ip_network(text)


def test_a_new_network_gets_the_first_free_24_of_the_pool():
    assert definitions.choose_subnet([], []) == net("10.89.0.0/24")
    assert definitions.choose_subnet([net("10.89.0.0/24")], [net("10.89.1.0/24")]) == \
        net("10.89.2.0/24")
    assert definitions.choose_subnet([], [net("10.89.0.0/23")]) == net("10.89.2.0/24")


def test_a_subnet_asked_for_is_checked():
    assert definitions.check_subnet("10.1.0.0/16", [], []) == net("10.1.0.0/16")
    for text, taken, routes, why in (
            ("10.1.2.3/24", [], [], "has host bits set"),
            ("10.1.0.0/26", [], [], "/8 to /25"),
            ("fd00::/64", [], [], "IPv4"),
            ("10.1.0.0/24", [net("10.1.0.0/16")], [], "overlaps 10.1.0.0/16, another"),
            ("10.1.0.0/24", [], [net("10.0.0.0/8")], "a route of this host"),
            ("169.254.0.0/24", [], [], "link-local")):
        with pytest.raises(HandcarError, match=why):
            definitions.check_subnet(text, taken, routes)


def test_host_routes_come_from_proc_net_route(tmp_path):
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
    assert definitions.host_routes(str(table)) == [net("192.0.2.0/24")]


def test_addresses_of_a_network():
    lan = Network(name="lan", id="0" * 64, subnet="10.9.0.0/24")
    assert (lan.gateway, lan.host, lan.slirp_dns, lan.prefix) == \
        ("10.9.0.1", "10.9.0.2", "10.9.0.3", 24)
    addresses = list(lan.container_addresses())
    assert addresses[0] == "10.9.0.4" and addresses[-1] == "10.9.0.254"
    assert lan.check_address("10.9.0.77") == "10.9.0.77"
    for bad, why in (("10.9.0.2", "the network's own"), ("10.9.0.255", "not a container"),
                     ("10.9.1.5", "not a container"), ("x", "not an IPv4")):
        with pytest.raises(HandcarError, match=why):
            lan.check_address(bad)
    assert Network(name="in", id="0" * 64, subnet="10.9.0.0/24", internal=True).host is None
    assert Network(**lan.fields()) == lan


def test_mac_addresses_follow_the_address():
    assert mac_address("10.89.0.4") == "02:68:0a:59:00:04"


# --- what a container asks for --------------------------------------------------------------

def spec_with(annotations, namespaces=({"type": "network"},)):
    return oci_spec.from_json({
        "ociVersion": "1.2.0", "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/"},
        "linux": {"namespaces": [{"type": "mount"}, *namespaces]},
        "annotations": annotations})


def test_networks_annotations():
    wanted = network.settings(spec_with({"handcar.networks": "front,back",
                                         "handcar.network-aliases": "api,API2",
                                         "handcar.ports": "8080:80"}))
    assert (wanted.networks, wanted.aliases, wanted.ip, wanted.network) == \
        (("front", "back"), ("api", "API2"), None, None)
    assert wanted.ports[0].container_port == 80
    assert network.settings(spec_with({"handcar.networks": "lan",
                                       "handcar.ip": "10.9.0.7"})).ip == "10.9.0.7"


@pytest.mark.parametrize("annotations, namespaces, problem", [
    ({"handcar.networks": "lan"}, (), "handcar.networks: needs a network namespace"),
    ({"handcar.networks": "lan,lan"}, None, "is given twice"),
    ({"handcar.networks": "host"}, None, "is a network mode"),
    ({"handcar.networks": "a b"}, None, "use up to 63 letters"),
    ({"handcar.networks": "lan", "handcar.network": "slirp4netns"}, None,
     "handcar.networks: not with handcar.network"),
    ({"handcar.network-aliases": "x"}, None, "handcar.network-aliases: needs handcar.networks"),
    ({"handcar.networks": "a,b", "handcar.ip": "10.0.0.9"}, None, "needs exactly one network"),
    ({"handcar.networks": "a", "handcar.ip": "10.0.0.300"}, None, "not an IPv4 address"),
    ({"handcar.ports": "80:80"}, None, "needs handcar.network or handcar.networks"),
])
def test_bad_networks_annotations(annotations, namespaces, problem):
    with pytest.raises(SpecError) as caught:
        network.settings(spec_with(annotations, *(() if namespaces is None else
                                                  (namespaces,))))
    assert problem in str(caught.value)


# --- the verbs ------------------------------------------------------------------------------

def test_network_verbs_take_the_fast_path():
    global_values, verb, values = verbs.parse(["--root", "/r", "network", "create",
                                               "--subnet", "10.5.0.0/24", "--internal", "lan"])
    assert global_values["root"] == "/r"
    assert verb.name == "network create"
    assert values == {"subnet": "10.5.0.0/24", "internal": True, "keep": False,
                      "name": "lan"}
    _, _, values = verbs.parse(["network", "create", "--keep", "lan"])
    assert values["keep"] is True
    _, verb, values = verbs.parse(["network", "connect", "--alias", "a", "--alias", "b",
                                   "lan", "web"])
    assert (verb.name, values["aliases"], values["network"], values["container"]) == \
        ("network connect", ("a", "b"), "lan", "web")
    assert verbs.parse(["network"]) is None                   # the group's help: click's
    assert verbs.parse(["network", "nope"]) is None


# --- the way out: containers.conf --------------------------------------------------------

def test_containers_conf_files_are_podmans(monkeypatch, tmp_path):
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    monkeypatch.delenv("CONTAINERS_CONF_OVERRIDE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    drop_ins = tmp_path / "containers" / "containers.conf.d"
    drop_ins.mkdir(parents=True)
    for name in ("b.conf", "a.conf", "c.txt"):
        (drop_ins / name).write_text("")
    files = outbound.containers_conf_files(uid=1000)
    assert files[:1] == ["/usr/share/containers/containers.conf"]
    assert "/etc/containers/containers.conf" in files
    assert files[-3:] == [str(tmp_path / "containers" / "containers.conf"),
                          str(drop_ins / "a.conf"), str(drop_ins / "b.conf")]
    monkeypatch.setenv("CONTAINERS_CONF", "/only.conf")
    monkeypatch.setenv("CONTAINERS_CONF_OVERRIDE", "/last.conf")
    assert outbound.containers_conf_files() == ["/only.conf", "/last.conf"]


def test_the_last_file_that_chooses_a_helper_wins(tmp_path):
    first, second, other = tmp_path / "1.conf", tmp_path / "2.conf", tmp_path / "3.conf"
    first.write_text('[network]\ndefault_rootless_network_cmd = "slirp4netns"\n')
    second.write_text('[network]\ndefault_rootless_network_cmd = "pasta"\n')
    other.write_text('[engine]\ncgroup_manager = "cgroupfs"\n')
    files = [str(first), str(tmp_path / "missing.conf"), str(second), str(other)]
    assert outbound.configured_helper(files) == "pasta"
    assert outbound.configured_helper(files[:2]) == "slirp4netns"
    assert outbound.configured_helper([str(other)]) is None
    bad = tmp_path / "bad.conf"
    bad.write_text('[network]\ndefault_rootless_network_cmd = "vpnkit"\n')
    with pytest.raises(HandcarError, match="handcar knows 'pasta' and 'slirp4netns'"):
        outbound.configured_helper([str(bad)])
    bad.write_text("[network\n")
    with pytest.raises(HandcarError, match="not valid TOML"):
        outbound.configured_helper([str(bad)])


def test_without_a_choice_slirp4netns_where_installed(monkeypatch, tmp_path):
    monkeypatch.setenv("CONTAINERS_CONF", str(tmp_path / "none.conf"))
    monkeypatch.delenv("CONTAINERS_CONF_OVERRIDE", raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    for name in ("pasta", "slirp4netns"):
        program = bin_dir / name
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
        assert outbound.choose_helper() == name      # pasta alone, then with slirp4netns
    (bin_dir / "slirp4netns").unlink()
    (tmp_path / "none.conf").write_text('[network]\ndefault_rootless_network_cmd = '
                                        '"slirp4netns"\n')
    with pytest.raises(HandcarError, match="chooses slirp4netns .* not installed"):
        outbound.choose_helper()
