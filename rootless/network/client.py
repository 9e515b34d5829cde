"""Talking to the network daemon (daemon.py): connecting to it, starting it when none
runs, and what create, delete and the `network` verbs ask of it.

Nothing here imports pyroute2: only the daemon (and its children) do.
"""

import fcntl
import os

from rootless.errors import HandcarError, SetupError
from rootless.network.definitions import LOCK, SOCKET, run_directory
from rootless.system.channel import Channel, fork_with_channel

REPLY_TIMEOUT = 60               # seconds: a first join starts a network (slirp4netns)
class Connection:
    """A client connection to the daemon; it keeps the daemon alive while open."""

    def __init__(self, channel, hello):
        self.channel = channel
        self.pid = hello["pid"]

    @property
    def userns_path(self):
        """The daemon's user namespace, which containers on its networks join."""
        return f"/proc/{self.pid}/ns/user"

    def request(self, kind, expected, fds=(), **fields):
        self.channel.send(kind, fds=fds, **fields)
        message = self.channel.receive(timeout=REPLY_TIMEOUT)
        if message is None:
            raise SetupError("the network daemon exited while answering (see its log, "
                             "daemon.log in the state root's @networks)")
        if message["type"] == "error":
            raise HandcarError(message["msg"])
        if message["type"] != expected:
            raise SetupError(f"the network daemon answered {message['type']!r}")
        return message

    def close(self):
        self.channel.close()


def connect(store_root, start=True):
    """A Connection to the daemon of this state root, started if none runs (or None, when
    `start` is False and none runs)."""
    import _socket
    directory = run_directory(store_root)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    lock = -1
    try:
        lock = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600, dir_fd=directory_fd)
        # held while connecting or starting: a daemon that is leaving takes it first
        # (daemon._exit_if_idle), so we either reach it before or find it gone
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        address = f"/proc/self/fd/{directory_fd}/{SOCKET}"
        try:
            sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError):
            if not start:
                sock.close()
                return None
            try:
                os.unlink(SOCKET, dir_fd=directory_fd)      # a killed daemon's
            except FileNotFoundError:
                pass
            _start_daemon(directory)
            sock.connect(address)
        os.close(lock)
        lock = -1
        channel = Channel(sock)
        hello = channel.receive(timeout=REPLY_TIMEOUT)
        if hello is None or hello.get("type") != "hello":
            channel.close()
            raise SetupError("the network daemon did not answer")
        return Connection(channel, hello)
    finally:
        if lock >= 0:
            os.close(lock)
        os.close(directory_fd)


def _start_daemon(directory):
    """Fork the daemon (detached: its own session, reparented) and map its user namespace
    as a container's (0 is you, 1..N your subordinate ids)."""
    from rootless.runtime import userns
    from rootless.runtime.store import user_name
    if os.geteuid() == 0:
        raise HandcarError("handcar's networks are for rootless containers: as root, use "
                           "--network slirp4netns or a network namespace of your own")
    plan = userns.default_plan(os.geteuid(), os.getegid(), user_name(os.geteuid()))
    pid, ours = fork_with_channel(_detached_daemon, directory)
    os.waitpid(pid, 0)
    try:
        message = ours.expect("prepare", "starting the network daemon", timeout=REPLY_TIMEOUT)
        userns.apply(plan, message["pid"])
        ours.send("prepared")
        ours.expect("ready", "starting the network daemon", timeout=REPLY_TIMEOUT)
    finally:
        ours.close()


def _detached_daemon(channel, directory):
    """The daemon, in a session of its own and reparented (its first process exits)."""
    from rootless.network import daemon
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    daemon.main(channel, directory)


def ask(store_root, kind, expected, start=False, **fields):
    """One request to the daemon of this state root; its answer, or None when none runs
    (and `start` is False)."""
    connection = connect(store_root, start=start)
    if connection is None:
        return None
    try:
        return connection.request(kind, expected, **fields)
    finally:
        connection.close()


def status(store_root):
    """What the daemon says runs ({"networks": {name: {...}}}), or None when none runs."""
    return ask(store_root, "status", "status")


def up(store_root, definition):
    """Start a network's helpers now, without a container (network create --keep)."""
    ask(store_root, "up", "up", start=True, network=definition.fields(),
        helper=helper_for([definition]))


def down(store_root, name):
    """Stop a network's helpers if the daemon runs it (network rm); HandcarError while
    containers are on it."""
    ask(store_root, "down", "down", network=name)


def forget(store_root, container_id):
    """Tell the daemon (if one runs) that a container is deleted: its names, links and
    published ports go now."""
    ask(store_root, "forget", "forgotten", container=container_id)


def helper_for(definitions):
    """The helper a network of `definitions` that is not running yet would be started
    with (outbound.choose_helper), or None when they are all internal."""
    if all(definition.internal for definition in definitions):
        return None
    from rootless.network.outbound import choose_helper
    return choose_helper()


# --- create: a container on networks ---------------------------------------------------

class Setup:
    """One container's networks, during create (as slirp.Setup is for slirp4netns)."""

    def __init__(self, settings, store_root):
        from rootless.network import definitions
        from rootless.network.slirp import check_port_free
        self.settings = settings
        self.definitions = [definitions.load(name) for name in settings.networks]
        if settings.ip:
            self.definitions[0].check_address(settings.ip)
        if settings.ports and self.definitions[0].internal:
            raise HandcarError(f"network {self.definitions[0].name} is internal: no port of "
                               "the host can reach it")
        for mapping in settings.ports:
            check_port_free(mapping)
        self.helper = helper_for(self.definitions)
        self.connection = connect(store_root)
        self.namespaces = None

    def prepare(self, spec):
        """The spec to launch: its user namespace is the daemon's (see daemon.py), which
        is mapped as a container's by default; a config asking for other mappings
        cannot be on a network."""
        from oci.spec import Namespace
        from rootless.runtime import userns
        from rootless.runtime.store import user_name
        linux = spec.linux
        userns_entry = linux.namespace("user")
        default = userns.default_plan(os.geteuid(), os.getegid(), user_name(os.geteuid()))
        if (userns_entry is not None and userns_entry.path) or (
                linux.uid_mappings and (tuple(linux.uid_mappings), tuple(linux.gid_mappings))
                != (default.uid_mappings, default.gid_mappings)):
            raise HandcarError("annotations.handcar.networks: the containers on handcar "
                               "networks share one user namespace, mapped as handcar maps "
                               "containers by default (0 is you, 1.. your subordinate ids): "
                               "leave out linux.uidMappings and gidMappings (and a user "
                               "namespace's path), or give those")
        user = Namespace("user", self.connection.userns_path)
        namespaces = tuple(ns for ns in linux.namespaces if ns.type != "user") + (user,)
        return spec.replace(linux=linux.replace(namespaces=namespaces, uid_mappings=(),
                                                gid_mappings=()))

    def take_namespaces(self, fds):
        self.namespaces = fds

    def begin(self, record, init_pid):
        """Nothing to start before init is ready: attach joins the networks."""

    def attach(self, record, init_pid):
        """Once the container's init exists: join each network (the first gets the
        published ports); the addresses saved in the record."""
        _userns, netns = self.namespaces
        try:
            pidfd = os.pidfd_open(init_pid)
        except ProcessLookupError:
            raise SetupError("the container's init exited while its network was set up") \
                from None
        joined = {}
        try:
            for number, definition in enumerate(self.definitions):
                fds = (netns, pidfd) if number == 0 else ()
                reply = self.connection.request(
                    "join", "joined", fds=fds, network=definition.fields(),
                    helper=self.helper, container=record.id, aliases=list(self.settings.aliases),
                    ip=self.settings.ip if number == 0 else None,
                    ports=[m.annotation() for m in self.settings.ports] if number == 0 else [])
                joined[definition.name] = {"address": reply["address"],
                                           "interface": reply["interface"]}
                record.save(networks=joined)
        finally:
            os.close(pidfd)
        self.close()

    def close(self):
        for fd in self.namespaces or ():
            os.close(fd)
        self.namespaces = None
        if self.connection:
            self.connection.close()
            self.connection = None


# --- connect and disconnect (the network verbs) ---------------------------------------

def connect_container(store, network_name, container_id, aliases=(), ip=None):
    """Link a running container that is on handcar networks to one more."""
    from rootless.network import definitions
    definition = definitions.load(network_name)
    if ip:
        definition.check_address(ip)
    record = store.open(container_id)
    try:
        _check_running(record)
        networks = dict(record.data.get("networks") or {})
        if "networks" not in record.data:
            _not_on_a_network(container_id)
        connection = connect(os.path.dirname(record.path), start=False)
        if connection is None or not _in_user_namespace_of(record.pid, connection.pid):
            if connection:
                connection.close()
            raise HandcarError(f"container {container_id} lost its networks: the network "
                               "daemon that linked it is gone (killed?), and no other may "
                               "reach its namespaces (start it anew)")
        if network_name in networks:
            connection.close()
            raise HandcarError(f"container {container_id} is already on network "
                               f"{network_name}")
        try:
            reply = connection.request("join", "joined", network=definition.fields(),
                                       helper=helper_for([definition]),
                                       container=container_id, aliases=list(aliases), ip=ip)
        finally:
            connection.close()
        networks[network_name] = {"address": reply["address"],
                                  "interface": reply["interface"]}
        record.save(networks=networks)
        _update_resolv_conf(record, networks)
    finally:
        record.unlock()


def disconnect_container(store, network_name, container_id):
    record = store.open(container_id)
    try:
        _check_running(record)
        networks = dict(record.data.get("networks") or {})
        if network_name not in networks:
            raise HandcarError(f"container {container_id} is not on network {network_name}")
        connection = connect(os.path.dirname(record.path), start=False)
        if connection is not None:
            try:
                connection.request("leave", "left", network=network_name,
                                   container=container_id)
            finally:
                connection.close()
        del networks[network_name]
        record.save(networks=networks)
        _update_resolv_conf(record, networks)
    finally:
        record.unlock()


def _update_resolv_conf(record, networks):
    """A friendly container's /etc/resolv.conf (a file of its bundle, bound in) names
    the DNS of each network it is on now: rewritten in place, the bind holds the inode."""
    from rootless.network import definitions
    path = os.path.join(record.data.get("bundle", ""), "etc", "resolv.conf")
    if not networks or not os.path.isfile(path):
        return
    servers = []
    for name in networks:
        try:
            servers.append(definitions.load(name).gateway)
        except HandcarError:
            continue                      # removed with -f meanwhile
    with open(path, "r+") as f:
        f.truncate(0)
        f.write("".join(f"nameserver {server}\n" for server in servers))


def _in_user_namespace_of(pid, daemon_pid):
    """Whether process `pid` is in the daemon's user namespace (the daemon that put it on
    its networks, not one started after that one was killed)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/user") == os.readlink(f"/proc/{daemon_pid}/ns/user")
    except OSError:
        return False


def _check_running(record):
    if record.status() not in ("running", "created", "paused"):
        raise HandcarError(f"container {record.id} is not running")


def _not_on_a_network(container_id):
    raise HandcarError(f"container {container_id} was not started on a handcar network: "
                       "its user namespace is its own, and the kernel lets no process of "
                       "ours move a link into its network namespace (run it with --network "
                       "NAME to connect it to others later)")
