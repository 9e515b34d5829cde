"""The little DNS a network's containers ask (RFC 1035, over UDP): A records for the names
of the containers on the network, answered at once from what the daemon knows now, and
everything else passed on to the host's resolvers (slirp4netns's forwarder) unchanged.

Pure: bytes in, bytes out. daemon.py owns the sockets.
"""

TYPE_A = 1
CLASS_IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP = 0, 1, 2, 3, 4
HEADER = 12
TTL = 0          # the answer is true now: a container that leaves takes its name along


class Query:
    """One question: the id, the flags' opcode and RD bit, the name (lower case, no final
    dot), type and class, and where the question ends in the packet."""

    def __init__(self, packet):
        if len(packet) < HEADER:
            raise ValueError("shorter than a DNS header")
        self.packet = packet
        self.id = int.from_bytes(packet[0:2], "big")
        flags = int.from_bytes(packet[2:4], "big")
        if flags & 0x8000:
            raise ValueError("a response, not a query")
        self.opcode = (flags >> 11) & 0xF
        self.recursion_desired = bool(flags & 0x0100)
        if int.from_bytes(packet[4:6], "big") != 1:
            raise ValueError("not exactly one question")
        labels, position = [], HEADER
        while True:
            if position >= len(packet):
                raise ValueError("the name runs past the packet")
            length = packet[position]
            position += 1
            if length == 0:
                break
            if length > 63:
                raise ValueError("a compressed or overlong label in a question")
            labels.append(packet[position:position + length])
            position += length
        if position + 4 > len(packet):
            raise ValueError("the question has no type and class")
        self.name = b".".join(labels).decode("ascii", "replace").lower()
        self.type = int.from_bytes(packet[position:position + 2], "big")
        self.klass = int.from_bytes(packet[position + 2:position + 4], "big")
        self.end = position + 4


FORWARD = "forward"          # answer()'s word for a question for the host's resolvers


def answer(packet, addresses_of, authoritative_only):
    """The response to `packet`; FORWARD when it is to be passed on to the host's
    resolvers; None when it deserves none (not a query). `addresses_of(name)` gives the
    addresses a name of the network has (empty when it is not one of ours); with
    `authoritative_only` (an internal network) names that are not ours are answered
    NXDOMAIN here."""
    if len(packet) < 4 or packet[2] & 0x80:
        return None                                  # a response: never answer one
    try:
        query = Query(packet)
    except ValueError:
        return _error(packet, FORMERR)
    if query.opcode != 0:
        return _response(query, NOTIMP, [])
    addresses = addresses_of(query.name)
    if not addresses:
        return _response(query, NXDOMAIN, []) if authoritative_only else FORWARD
    if query.type != TYPE_A or query.klass != CLASS_IN:
        return _response(query, NOERROR, [])         # the name exists, with no such record
    return _response(query, NOERROR, addresses)


def _response(query, rcode, addresses):
    flags = 0x8000 | (query.opcode << 11) | 0x0400 | 0x0080 | rcode   # QR, AA, RA
    if query.recursion_desired:
        flags |= 0x0100
    header = (query.id.to_bytes(2, "big") + flags.to_bytes(2, "big") + (1).to_bytes(2, "big")
              + len(addresses).to_bytes(2, "big") + bytes(4))
    records = b""
    for address in addresses:
        records += (b"\xc0\x0c"                                   # the question's name
                    + TYPE_A.to_bytes(2, "big") + CLASS_IN.to_bytes(2, "big")
                    + TTL.to_bytes(4, "big") + (4).to_bytes(2, "big")
                    + bytes(int(part) for part in address.split(".")))
    return header + query.packet[HEADER:query.end] + records


def _error(packet, rcode):
    """A bare response (header only) to a query we could not read."""
    flags = 0x8000 | (int.from_bytes(packet[2:4], "big") & 0x7900) | rcode
    return packet[0:2] + flags.to_bytes(2, "big") + bytes(8)


def with_id(packet, new_id):
    """The same message with another id (a forwarded question's, and its answer's)."""
    return new_id.to_bytes(2, "big") + packet[2:]


def message_id(packet):
    return int.from_bytes(packet[0:2], "big") if len(packet) >= 2 else None
