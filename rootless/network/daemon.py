"""The network daemon: what runs for handcar's container networks while containers use
them (and for kept networks, from `network create --keep` to `network rm`). One per state
root, started by the first container that joins a network or a kept network's create
(client.py), and gone when the last container of any network and the last kept network
are.

Why one process, and a user namespace of its own that the containers join: a veth pair
is made in one network namespace and one end is moved into another, and the kernel
allows that only to a process with CAP_NET_ADMIN over the user namespaces that own both.
An unprivileged user has it only inside user namespaces it made, and a container's own
user namespace is out of reach of every process outside it (and of the other
containers). So, as podman's rootless containers do, the containers on handcar networks
share one user namespace (the daemon's, mapped as any container's: 0 is the user, 1..N
its subordinate ids), and every network namespace of theirs is owned by it: the
daemon, root there, may link any container to any network, and no container gets more
than its own namespaces (README, Networks: what they share).

The daemon lives in that user namespace but in the host's network namespace (slirp4netns
or pasta, which it starts, reaches the outside from there). For each active network it
holds:

  a network namespace    (an fd) with the bridge br0 at S+1, made by a child
                         (plumbing.py: a process can enter a namespace but never come
                         back to the host's)
  slirp4netns            its tap0 enslaved to br0, on the network's own subnet: the
                         containers reach the host's network through S+2 and its DNS
                         through S+3 directly, no NAT, one slirp4netns per network.
  or pasta               on a link of its own, the namespace routing and masquerading
                         the subnet to it (outbound.py says why), and a guard process
                         that kills it if the daemon dies. Which of the two: the
                         client's choice (containers.conf), when the network starts.
                         Neither for an --internal network: no way out at all.
  DNS on S+1:53          the containers' names and aliases from what the daemon knows
                         now; other names go to S+3 (dns.py)
  the members            per container: a pidfd of its init, its network namespace (an
                         fd), and per network its link (ethN, its address, aliases, the
                         published ports' forwards in slirp4netns)

When a container's init exits (its pidfd), it is forgotten at once: names, forwards (the
host ports are free again), and the fd of its network namespace, whose end takes the veth
pairs with it. A network without members is shut down (its helper, its namespace and
the bridge go) unless it is kept; without members, kept networks and clients the daemon
exits. If the daemon is killed, slirp4netns follows (it holds the only end of its exit
pipe), pasta is killed by its guard, and the namespaces go with their last reference:
nothing outlives it but its run directory (with the helper's pid, for network rm should
the guard have been killed too), which network rm or the next daemon tidies.

Requests come over a unix SOCK_SEQPACKET socket in the run directory, one JSON message
each (system/channel.py): join (with the container's netns and pidfd the first time),
leave, forget, up and down (a network without containers: create --keep, rm), status.
A client connection keeps the daemon alive: a container being created holds one from
before its init joins the user namespace to after it joined its networks.
"""

import fcntl
import gc
import os
import select
import socket
import time

from oci.network import parse_port
from rootless.errors import HandcarError, SetupError
from rootless.network import dns, outbound, plumbing, slirp
from rootless.network.definitions import LOCK, LOG, SOCKET   # the run directory's files
from rootless.network.definitions import Network
from rootless.system import libc
from rootless.system.channel import Channel

FORWARD_TIMEOUT = 5            # seconds an unanswered forwarded DNS question is kept
MAX_DNS = 4096
_FLAGS = {}                    # slirp4netns program -> the flags its --help lists


class Link:
    """A container's place on one network."""

    def __init__(self, interface, host_name, address, names):
        self.interface = interface      # in the container: eth0, eth1, ...
        self.host_name = host_name      # its peer on the bridge
        self.address = address
        self.names = names              # the container's id and its aliases
        self.forwards = []              # slirp4netns's ids of the published ports


class Member:
    """A container the daemon knows: its init's pidfd and its network namespace."""

    def __init__(self, container_id, pidfd, netns):
        self.id = container_id
        self.pidfd = pidfd
        self.netns = netns
        self.links = {}                 # network name -> Link, in joining order

    def interface_name(self):
        used = {link.interface for link in self.links.values()}
        return next(f"eth{n}" for n in range(len(used) + 1) if f"eth{n}" not in used)


class Helper:
    """A network's way out: a running slirp4netns or pasta (outbound.py)."""

    def __init__(self, program, pid, pidfd, exit_write=-1, guard=0):
        self.program = program          # outbound.PASTA or outbound.SLIRP4NETNS
        self.pid = pid
        self.pidfd = pidfd
        self.exit_write = exit_write    # slirp4netns's exit pipe, held here
        self.guard = guard              # pasta's guard process (outbound.guard)


class ActiveNetwork:
    """A network while containers use it (or, kept, from its first start on)."""

    def __init__(self, definition, directory):
        self.definition = definition
        self.directory = directory      # its helper's working directory: API socket, log
        self.netns = -1
        self.dns = None                 # a socket on S+1:53 in the network's namespace
        self.forward = None             # a socket there to ask the helper's DNS with
        self.pending = {}               # forwarded question id -> (client, its id, deadline)
        self.helper = None              # Helper, while it runs
        self.links = {}                 # container id -> Link
        self.veths = 0

    def addresses_of(self, name):
        return [link.address for link in self.links.values() if name in link.names]

    def free_address(self):
        used = {link.address for link in self.links.values()}
        for address in self.definition.container_addresses():
            if address not in used:
                return address
        raise HandcarError(f"network {self.definition.name} has no free address left "
                           f"({self.definition.subnet})")


# --- starting (in the child client.py forks) -------------------------------------------

def main(channel, directory):
    """The daemon's process, from fork to exit (never returns): a user namespace the
    client maps, the listening socket, then serve()."""
    import signal
    from rootless.system.channel import close_fds_from
    gc.enable()                        # it runs long, unlike a verb (main disabled it)
    # what the verb that forked us may have set up for its container (a foreground run
    # forwards signals) is not ours: SIGTERM ends the daemon, as it ends any process
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(number, signal.SIG_DFL)
    log = os.open(os.path.join(directory, LOG),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    close_fds_from(3, keep={channel.fileno()})
    libc.unshare(libc.CLONE_NEWUSER)
    channel.send("prepare", pid=os.getpid())
    channel.expect("prepared", "mapping the network daemon's user namespace")
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    # changing credentials made us undumpable: the containers' processes must open our
    # /proc/PID/ns/user to join the namespace
    libc.prctl(libc.PR_SET_DUMPABLE, 1)
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        raise SetupError("pyroute2 is not installed (pip install pyroute2): handcar's "
                         "networks are made with it") from None
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    listener.bind(f"/proc/self/fd/{directory_fd}/{SOCKET}")   # any length of path
    listener.listen(16)
    channel.send("ready")
    channel.close()
    _say(f"started, pid {os.getpid()}")
    Daemon(directory, directory_fd, listener).serve()


def _say(text):
    os.write(2, f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n".encode())


# --- serving ----------------------------------------------------------------------------

class Daemon:
    def __init__(self, directory, directory_fd, listener):
        self.directory = directory
        self.directory_fd = directory_fd
        self.listener = listener
        self.clients = {}               # fd -> Channel
        self.members = {}               # container id -> Member
        self.networks = {}              # name -> ActiveNetwork
        self.poller = select.poll()
        self.handlers = {}              # fd -> function(fd, events)
        self.worker = plumbing.Worker()  # does the netlink work (plumbing.py says why)
        self.unwatched = set()          # fds let go of in this round of events
        self._watch(listener.fileno(), self._accept)

    def _watch(self, fd, handler):
        self.handlers[fd] = handler
        self.poller.register(fd, select.POLLIN)

    def _unwatch(self, fd):
        if self.handlers.pop(fd, None) is not None:
            self.poller.unregister(fd)
        self.unwatched.add(fd)

    def serve(self):
        while True:
            self.unwatched = set()
            for fd, events in self.poller.poll(1000):
                # an fd closed by an earlier handler of this round, and maybe reused since
                # (a new client, a new DNS socket): its event is not the new one's
                if fd not in self.unwatched and fd in self.handlers:
                    self.handlers[fd](fd, events)
            self._expire_forwarded_questions()
            if not self.clients and not self.members and not self._kept():
                self._exit_if_idle()

    def _kept(self):
        return [network for network in self.networks.values() if network.definition.keep]

    def _exit_if_idle(self):
        """Leave, unless a client connected in the meantime. Clients connect holding the
        run directory's lock: once we hold it, a client either is in the listener's
        backlog already or finds no socket and starts a new daemon."""
        lock = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600,
                       dir_fd=self.directory_fd)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if select.select([self.listener], [], [], 0)[0]:
            os.close(lock)
            return
        os.unlink(SOCKET, dir_fd=self.directory_fd)
        self.listener.close()
        for network in list(self.networks.values()):
            self._shut_down(network)
        self.worker.stop()
        _say("no container or kept network left: exiting")
        os._exit(0)                     # the lock goes with us

    # --- clients ------------------------------------------------------------------------

    def _accept(self, _fd, _events):
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return
        client = Channel(connection)
        self.clients[client.fileno()] = client
        self._watch(client.fileno(), self._request)
        try:
            client.send("hello", pid=os.getpid())
        except OSError:
            self._drop_client(client.fileno())

    def _drop_client(self, fd):
        self._unwatch(fd)
        self.clients.pop(fd).close()

    def _request(self, fd, _events):
        client = self.clients[fd]
        try:
            message = client.receive(timeout=0)
        except (OSError, HandcarError):
            message = None
        if message is None:
            self._drop_client(fd)
            return
        fds = message.pop("fds", [])
        handler = getattr(self, f"_do_{message.get('type')}", None)
        try:
            if handler is None:
                raise HandcarError(f"unknown request {message.get('type')!r}")
            reply = handler(message, fds)
        except HandcarError as err:
            reply = {"type": "error", "msg": str(err)}
        except Exception as err:  # noqa: BLE001 - the daemon serves on; the client is told
            _say(f"internal error: {type(err).__name__}: {err}")
            reply = {"type": "error", "msg": f"network daemon: {type(err).__name__}: {err}"}
        finally:
            for extra in fds:           # whatever was passed and not taken
                if extra >= 0 and extra not in self._held_fds():
                    os.close(extra)
        try:
            client.send(reply.pop("type"), **reply)
        except OSError:
            self._drop_client(fd)

    def _held_fds(self):
        return {fd for member in self.members.values() for fd in (member.pidfd, member.netns)}

    # --- requests -----------------------------------------------------------------------

    def _do_join(self, message, fds):
        """Link a container to a network. The first time, `fds` are its network namespace
        and its init's pidfd; later (connect), it must be a member already."""
        container_id = message["container"]
        definition = Network(**message["network"])
        member = self.members.get(container_id)
        if member is None:
            if len(fds) != 2:
                raise HandcarError(f"container {container_id} is not on a handcar network: "
                                   "its user namespace is its own, and no process of ours "
                                   "may move a link into its network namespace (run it "
                                   "with --network NAME to connect it later)")
            netns, pidfd = fds
            if select.select([pidfd], [], [], 0)[0]:
                raise HandcarError(f"container {container_id} has stopped")
            member = Member(container_id, pidfd, netns)
            self.members[container_id] = member
            self._watch(pidfd, lambda _fd, _events, cid=container_id: self._forget(cid))
        if definition.name in member.links:
            raise HandcarError(f"container {container_id} is already on network "
                               f"{definition.name}")
        network = self._activate(definition, message.get("helper"))
        try:
            ports = message.get("ports", ())
            if ports and network.helper and network.helper.program == outbound.PASTA:
                raise HandcarError(f"-p: network {definition.name} reaches the outside "
                                   "through pasta, which forwards only the ports it starts "
                                   "with: publish ports on a network whose helper is "
                                   "slirp4netns (containers.conf: [network] "
                                   f"{outbound.KEY} = \"slirp4netns\", then start the "
                                   "network anew)")
            link = self._link(network, member, message.get("ip"), message.get("aliases", ()))
            try:
                for text in ports:
                    link.forwards.append(slirp.add_hostfwd(network.directory,
                                                           parse_port(text), link.address))
            except BaseException:
                self._unlink(network, member, link)
                raise
        except BaseException:
            # the container stays a member until it exits (create, failing now, kills it)
            self._shut_down_if_unused(network)
            raise
        _say(f"{container_id} joined {definition.name} as {link.address} ({link.interface})")
        return {"type": "joined", "address": link.address, "interface": link.interface,
                "prefix": definition.prefix, "gateway": definition.gateway}

    def _do_leave(self, message, _fds):
        """Unlink a container from a network (disconnect)."""
        container_id, name = message["container"], message["network"]
        member = self.members.get(container_id)
        if member is None or name not in member.links:
            raise HandcarError(f"container {container_id} is not on network {name}")
        self._unlink(self.networks[name], member, member.links[name])
        return {"type": "left"}

    def _do_forget(self, message, _fds):
        """A container is deleted: forget it now rather than when its pidfd says so."""
        self._forget(message["container"])
        return {"type": "forgotten"}

    def _do_up(self, message, _fds):
        """Start a kept network's namespace, bridge, DNS and helper now (network create
        --keep), without a container."""
        definition = Network(**message["network"])
        self._activate(definition, message.get("helper"))
        return {"type": "up"}

    def _do_down(self, message, _fds):
        """Shut a network down (network rm): refused while containers are on it."""
        network = self.networks.get(message["network"])
        if network is not None:
            if network.links:
                raise HandcarError(f"network {message['network']} still has containers "
                                   f"linked to it ({', '.join(network.links)})")
            self._shut_down(network)
        return {"type": "down"}

    def _do_status(self, _message, _fds):
        return {"type": "status", "pid": os.getpid(), "networks": {
            name: {"subnet": network.definition.subnet, "id": network.definition.id,
                   "outbound": {"helper": network.helper.program, "pid": network.helper.pid}
                   if network.helper else None,
                   "containers": {cid: {"address": link.address,
                                        "interface": link.interface,
                                        "aliases": [n for n in link.names if n != cid]}
                                  for cid, link in network.links.items()}}
            for name, network in self.networks.items()}}

    # --- links --------------------------------------------------------------------------

    def _link(self, network, member, wanted_address, aliases):
        """A veth pair between the container and the bridge; the Link."""
        definition = network.definition
        if wanted_address:
            address = definition.check_address(wanted_address)
            for other, link in network.links.items():
                if link.address == address:
                    raise HandcarError(f"address {address} is taken on network "
                                       f"{definition.name} (by container {other})")
        else:
            address = network.free_address()
        network.veths += 1
        link = Link(member.interface_name(), f"veth{network.veths}", address,
                    (member.id.lower(),) + tuple(alias.lower() for alias in aliases))
        self.worker.call(plumbing.add_link, (network.netns, member.netns), link.host_name,
                         link.interface, address, definition.prefix, definition.host)
        network.links[member.id] = link
        member.links[definition.name] = link
        return link

    def _unlink(self, network, member, link, alive=True):
        name = network.definition.name
        for forward in link.forwards:
            try:
                slirp.remove_hostfwd(network.directory, forward)
            except HandcarError as err:
                _say(f"{member.id} on {name}: {err}")
        link.forwards = []
        network.links.pop(member.id, None)
        member.links.pop(name, None)
        try:
            if alive:
                # another network's way out becomes the container's default route
                gateway = next((self.networks[other].definition.host
                                for other in member.links
                                if self.networks[other].definition.host), None)
                self.worker.call(plumbing.remove_link, (member.netns,), link.interface,
                                 gateway)
            elif network.links or network.definition.keep:
                # (else the whole namespace goes, the bridge with it)
                self.worker.call(plumbing.detach_bridge_port, (network.netns,),
                                 link.host_name)
        except HandcarError as err:
            _say(f"{member.id} leaving {name}: {err}")
        self._shut_down_if_unused(network)

    def _forget(self, container_id):
        member = self.members.pop(container_id, None)
        if member is None:
            return
        for name, link in list(member.links.items()):
            self._unlink(self.networks[name], member, link, alive=False)
        self._unwatch(member.pidfd)
        os.close(member.pidfd)
        os.close(member.netns)          # the namespace ends, its veths with it
        _say(f"{container_id} is gone")

    # --- networks -----------------------------------------------------------------------

    def _activate(self, definition, helper=None):
        """The ActiveNetwork of `definition`, started now if it is not up: its way out
        through `helper` (outbound.PASTA or SLIRP4NETNS, the client's choice)."""
        network = self.networks.get(definition.name)
        if network is not None:
            if (network.definition.id, network.definition.subnet) != \
                    (definition.id, definition.subnet):
                raise HandcarError(f"network {definition.name} was removed and made anew "
                                   "while containers still use the old one: stop them first")
            return network
        directory = os.path.join(self.directory, f"net-{definition.name}")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        network = ActiveNetwork(definition, directory)
        try:
            _, fds = self.worker.call(plumbing.make_namespace, (), definition.gateway,
                                      definition.prefix, not definition.internal)
            network.netns = fds[0]
            network.dns = socket.socket(fileno=fds[1])
            network.dns.setblocking(False)
            if len(fds) > 2:
                network.forward = socket.socket(fileno=fds[2])
                network.forward.setblocking(False)
            if definition.internal:
                pass
            elif (helper or outbound.SLIRP4NETNS) == outbound.PASTA:
                self._start_pasta(network)
                self.worker.call(plumbing.attach_pasta, (network.netns, network.helper.pidfd),
                                 definition.subnet, definition.host, definition.slirp_dns)
            else:
                self._start_slirp4netns(network)
                self.worker.call(plumbing.attach_uplink, (network.netns,))
        except BaseException:
            self._shut_down(network)
            raise
        self.networks[definition.name] = network
        self._watch(network.dns.fileno(), lambda _fd, _ev, n=network: self._question(n))
        if network.forward:
            self._watch(network.forward.fileno(),
                        lambda _fd, _ev, n=network: self._forwarded_answer(n))
        through = f", out through {network.helper.program}" if network.helper else ""
        kept = ", kept" if definition.keep else ""
        _say(f"network {definition.name} ({definition.subnet}{through}{kept}) is up")
        return network

    def _start_slirp4netns(self, network):
        import subprocess
        from rootless.runtime.host import find_program
        program = find_program(slirp.SLIRP4NETNS)
        if not program:
            raise HandcarError(f"{slirp.SLIRP4NETNS} is not installed (install the "
                               f"{slirp.SLIRP4NETNS} package; network "
                               f"{network.definition.name} reaches the outside through it, "
                               "or make it --internal)")
        ready_read, ready_write = os.pipe2(os.O_CLOEXEC)
        exit_read, exit_write = os.pipe2(os.O_CLOEXEC)
        argv = [program, "--mtu=1500", f"--cidr={network.definition.subnet}",
                "--disable-host-loopback", f"--api-socket={slirp.API_SOCKET}",
                f"--ready-fd={ready_write}", f"--exit-fd={exit_read}",
                "--netns-type=path"]
        if program not in _FLAGS:               # its --help, once per daemon
            _FLAGS[program] = slirp.supported_flags(program)
        argv += [flag for flag in ("--enable-sandbox", "--enable-seccomp")
                 if flag in _FLAGS[program]]
        argv += [f"/proc/self/fd/{network.netns}", plumbing.UPLINK]
        try:
            with open(os.path.join(network.directory, slirp.LOG_FILE), "wb") as output:
                process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output,
                                           stderr=output, cwd=network.directory,
                                           pass_fds=(ready_write, exit_read, network.netns),
                                           start_new_session=True)
        except OSError as err:
            os.close(ready_read)
            os.close(exit_write)
            raise SetupError(f"starting {program}: {err.strerror}") from None
        finally:
            os.close(ready_write)
            os.close(exit_read)
        self._started(network, Helper(outbound.SLIRP4NETNS, process.pid,
                                      os.pidfd_open(process.pid), exit_write=exit_write))
        slirp.wait_until_ready(ready_read, network.directory)

    def _start_pasta(self, network):
        """pasta into the network's namespace, and its guard (outbound.guard); ready once
        its tap device is there (plumbing.attach_pasta waits for it)."""
        import subprocess
        from rootless.runtime.host import find_program
        program = find_program(outbound.PASTA)
        if not program:
            raise HandcarError(f"{outbound.PASTA} is not installed (install the passt "
                               f"package; network {network.definition.name} reaches the "
                               "outside through it, or make it --internal)")
        argv = outbound.pasta_argv(program, f"/proc/self/fd/{network.netns}",
                                   network.definition.slirp_dns,
                                   os.path.join(network.directory, outbound.PASTA_LOG))
        try:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       cwd=network.directory, pass_fds=(network.netns,),
                                       start_new_session=True)
        except OSError as err:
            raise SetupError(f"starting {program}: {err.strerror}") from None
        helper = Helper(outbound.PASTA, process.pid, os.pidfd_open(process.pid))
        self._started(network, helper)
        daemon_pidfd = os.pidfd_open(os.getpid())
        try:
            helper.guard = os.fork()
            if helper.guard == 0:
                outbound.guard(daemon_pidfd, helper.pidfd)
        finally:
            os.close(daemon_pidfd)

    def _started(self, network, helper):
        """A helper runs for the network: watched, and its pid written down for network
        rm, should the daemon be killed and the helper outlive it."""
        from rootless.runtime.store import process_start_time
        network.helper = helper
        self._watch(helper.pidfd, lambda _fd, _ev, n=network: self._helper_exited(n))
        with open(os.path.join(network.directory, outbound.PID_FILE), "w") as f:
            f.write(f"{helper.pid} {process_start_time(helper.pid)}\n")

    def _helper_exited(self, network):
        helper = network.helper
        self._stop_helper(network)
        _say(f"network {network.definition.name}: {helper.program} (pid {helper.pid}) "
             "exited: its containers have no way out now")

    def _stop_helper(self, network):
        """The helper killed (if it still runs) and waited for: its host ports are free."""
        helper = network.helper
        if helper is None:
            return
        self._unwatch(helper.pidfd)
        if helper.exit_write >= 0:
            os.close(helper.exit_write)          # slirp4netns's cue to exit
        try:
            os.kill(helper.pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(helper.pid, 0)
        os.close(helper.pidfd)
        if helper.guard:
            os.waitpid(helper.guard, 0)          # it exits with the helper
        network.helper = None

    def _shut_down_if_unused(self, network):
        if not network.links and not network.definition.keep:
            self._shut_down(network)

    def _shut_down(self, network):
        """The helper stopped, the sockets and the namespace let go of."""
        self._stop_helper(network)
        for sock in (network.dns, network.forward):
            if sock is not None:
                self._unwatch(sock.fileno())
                sock.close()
        network.dns = network.forward = None
        if network.netns >= 0:
            os.close(network.netns)
            network.netns = -1
        if self.networks.get(network.definition.name) is network:
            del self.networks[network.definition.name]
            _say(f"network {network.definition.name} is down")
        for name in (slirp.API_SOCKET, outbound.PID_FILE):
            try:
                os.unlink(os.path.join(network.directory, name))
            except FileNotFoundError:
                pass

    # --- DNS ----------------------------------------------------------------------------

    def _question(self, network):
        try:
            packet, client = network.dns.recvfrom(MAX_DNS)
        except OSError:
            return
        reply = dns.answer(packet, self._names_seen_from(network, client[0]),
                           authoritative_only=network.forward is None or network.helper is None)
        if reply == dns.FORWARD:
            new_id = int.from_bytes(os.urandom(2), "big")
            while new_id in network.pending:
                new_id = (new_id + 1) & 0xFFFF
            network.pending[new_id] = (client, dns.message_id(packet),
                                       time.monotonic() + FORWARD_TIMEOUT)
            reply, client = dns.with_id(packet, new_id), None
            try:
                network.forward.sendto(reply, (network.definition.slirp_dns, plumbing.DNS_PORT))
            except OSError:
                network.pending.pop(new_id, None)
            return
        if reply is not None:
            try:
                network.dns.sendto(reply, client)
            except OSError:
                pass

    def _names_seen_from(self, network, address):
        """addresses_of(name) for a question from `address` on `network`: the names on
        every network the asking container is on (this one's first), so that whichever
        of its nameservers it asks, it gets one answer."""
        asker = next((cid for cid, link in network.links.items() if link.address == address),
                     None)
        member = self.members.get(asker)
        networks = [network] + [self.networks[name] for name in (member.links if member else ())
                                if name != network.definition.name]

        def addresses_of(name):
            found = []
            for each in networks:
                found += [a for a in each.addresses_of(name) if a not in found]
            return found
        return addresses_of

    def _forwarded_answer(self, network):
        try:
            packet = network.forward.recv(MAX_DNS)
        except OSError:
            return
        waiting = network.pending.pop(dns.message_id(packet), None)
        if waiting is None:
            return
        client, original_id, _ = waiting
        try:
            network.dns.sendto(dns.with_id(packet, original_id), client)
        except OSError:
            pass

    def _expire_forwarded_questions(self):
        now = time.monotonic()
        for network in self.networks.values():
            for question, (_, _, deadline) in list(network.pending.items()):
                if deadline < now:
                    del network.pending[question]
