"""A container's network: slirp4netns and published ports (what a spec asks for is
oci/network.py's to read).

create imports this module only for a container with a handcar.network annotation, delete
only for one whose record has a "network" entry; most bundles never load it. (lo comes up
in the container's init, with one ioctl: rootless/child/init.py.)

  slirp4netns Started for the init's network namespace with --configure, an API socket
              in the container's state directory, --ready-fd and --exit-fd; create waits
              (bounded) until it is ready, then publishes the ports through its API.
  watcher     A process forked from create holds the only write end of slirp4netns's
              exit pipe and waits on a pidfd of the container's init: when the init
              exits, the watcher exits, the pipe closes and slirp4netns exits with it.
              handcar itself exits after create, and the container may hold nothing of
              ours, so this is the one thing that lives exactly as long as the container.

The pids of slirp4netns and the watcher (with their start times) are in the record, so
delete (and a failed create) kill whatever of them still runs. Where ports were published,
delete waits for slirp4netns to be gone: its host ports are free again when delete
returns. Otherwise it does not wait for the exit the kill began: slirp4netns's sandbox
is a mount namespace of its own, whose teardown waits for an RCU grace period (10-30 ms
here, a third of a `run --rm`'s time).
"""

import os

from rootless.errors import HandcarError, SetupError
from rootless.runtime.store import process_start_time

SLIRP4NETNS = "slirp4netns"
TAP_DEVICE = "tap0"
API_SOCKET = "slirp4netns.sock"        # in the container's state directory
LOG_FILE = "slirp4netns.log"           # slirp4netns's stdout and stderr, for its errors
READY_TIMEOUT = 30                     # seconds for slirp4netns to get ready


class Setup:
    """One container's network set-up, during create."""

    def __init__(self, settings):
        self.settings = settings
        from rootless.runtime.host import find_program
        self.slirp4netns = find_program(SLIRP4NETNS) if settings.network else None
        if settings.network and not self.slirp4netns:
            raise HandcarError(f"{SLIRP4NETNS} is not installed (install the {SLIRP4NETNS} "
                               f"package; handcar.network asks for it)")
        for mapping in settings.ports:
            check_port_free(mapping)
        self.namespaces = None               # fds of the container's user and net ns
        self.ready = None                    # slirp4netns's ready pipe, once begun

    def prepare(self, spec):
        """The spec to launch: slirp4netns changes nothing in it."""
        return spec

    def take_namespaces(self, fds):
        """The container's user and network namespaces, as fds the intermediate sent
        (its init, once it changed ids, is out of our reach through /proc/PID/ns)."""
        self.namespaces = fds

    def begin(self, record, init_pid):
        """As soon as init exists (on_init): start slirp4netns and its watcher, their
        pids saved in the record, so that slirp4netns gets ready while init builds the
        container's root."""
        self.ready = self._start_slirp4netns(record, init_pid, process_start_time(init_pid))

    def attach(self, record, init_pid):
        """Once the container's init waits for start: slirp4netns ready, ports published."""
        ready, self.ready = self.ready, None
        wait_until_ready(ready, record.path)
        for mapping in self.settings.ports:
            publish(record, mapping)
        self.close()

    def close(self):
        """Let go of the container's namespaces (and the ready pipe). slirp4netns and the
        watcher are stopped through the record: stop()."""
        for fd in tuple(self.namespaces or ()) + ((self.ready,) if self.ready is not None else ()):
            os.close(fd)
        self.namespaces = self.ready = None

    def _start_slirp4netns(self, record, init_pid, init_start_time):
        """Spawn slirp4netns and its watcher, record them; the read end of the ready pipe."""
        import subprocess
        network = self.settings.network
        supported = supported_flags(self.slirp4netns)
        ready_read, ready_write = os.pipe2(os.O_CLOEXEC)
        exit_read, exit_write = os.pipe2(os.O_CLOEXEC)
        # The API socket's path is relative to the state directory (slirp4netns's working
        # directory): an absolute one may exceed the 107 bytes of a unix socket address.
        argv = [self.slirp4netns, "--configure", f"--mtu={network.mtu}",
                f"--cidr={network.cidr}", f"--api-socket={API_SOCKET}",
                f"--ready-fd={ready_write}", f"--exit-fd={exit_read}"]
        if not network.allow_host_loopback:
            argv.append("--disable-host-loopback")
        if network.enable_ipv6:
            argv.append("--enable-ipv6")
        argv += [flag for flag in ("--enable-sandbox", "--enable-seccomp") if flag in supported]
        try:
            # the watcher first: it holds the exit pipe and is the pid slirp4netns joins
            watcher = _fork_watcher(init_pid, init_start_time, exit_write, self.namespaces)
            processes = {"watcher": [watcher, process_start_time(watcher)]}
            record.save(network=processes)        # from here on, stop() finds them
            argv += [str(watcher), TAP_DEVICE]
            try:
                with open(os.path.join(record.path, LOG_FILE), "wb") as output:
                    # its own session: a foreground run's ^C is for the container
                    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                               stdout=output, stderr=output, cwd=record.path,
                                               pass_fds=(ready_write, exit_read),
                                               start_new_session=True)
            except OSError as err:
                raise SetupError(f"starting {argv[0]}: {err.strerror}") from None
            processes[SLIRP4NETNS] = [process.pid, process_start_time(process.pid)]
            record.save(network=processes)
        except BaseException:
            os.close(ready_read)
            raise
        finally:
            os.close(exit_read)                   # slirp4netns's ends
            os.close(ready_write)
            os.close(exit_write)                  # the watcher's, from now on
        return ready_read


# --- joining the container's namespaces ------------------------------------------------

def _join_namespaces(userns, netns):
    """Join the container's user namespace (unless it is ours: root without one) and then
    its network namespace, where the user namespace grants CAP_NET_ADMIN."""
    from rootless.system import libc
    from rootless.errors import step
    with step("joining the user namespace of the container"):
        if os.readlink(f"/proc/self/fd/{userns}") != os.readlink("/proc/self/ns/user"):
            libc.setns(userns, libc.NAMESPACE_FLAGS["user"])
    with step("joining the network namespace of the container"):
        libc.setns(netns, libc.NAMESPACE_FLAGS["network"])


# --- slirp4netns ------------------------------------------------------------------------

def supported_flags(program):
    """The --flags `program --help` lists (what this slirp4netns build supports)."""
    import subprocess
    try:
        result = subprocess.run([program, "--help"], capture_output=True, text=True,
                                timeout=READY_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {word.rstrip(",=") for word in (result.stdout + result.stderr).split()
            if word.startswith("--")}


def wait_until_ready(ready_read, directory):
    """Wait for slirp4netns's "1" on the ready pipe (closed here); a clear error if it
    exits first or takes longer than READY_TIMEOUT. Its log is in `directory`."""
    import select
    try:
        poller = select.poll()
        poller.register(ready_read, select.POLLIN)
        if not poller.poll(READY_TIMEOUT * 1000):
            raise SetupError(f"{SLIRP4NETNS} did not get ready within {READY_TIMEOUT}s"
                             f"{_last_words(directory)}")
        if os.read(ready_read, 1) != b"1":
            raise SetupError(f"{SLIRP4NETNS} failed{_last_words(directory)}")
    finally:
        os.close(ready_read)


def _last_words(directory):
    """': <the last line slirp4netns wrote>', or ''."""
    try:
        with open(os.path.join(directory, LOG_FILE), "rb") as f:
            lines = [line for line in f.read().decode(errors="replace").splitlines()
                     if line.strip() and not line.startswith("WARNING")]
    except OSError:
        return ""
    return f": {lines[-1].strip()}" if lines else ""


def _fork_watcher(init_pid, init_start_time, exit_write, namespaces):
    """Fork the watcher (see the module's docstring); its pid, once it has joined the
    container's user and network namespaces: slirp4netns is pointed at it, since the
    container's init (its ids changed, undumpable) is out of an unprivileged reach."""
    try:
        pidfd = os.pidfd_open(init_pid)
    except ProcessLookupError:
        raise SetupError("the container's init exited while its network was set up") from None
    except OSError as err:                # ENOSYS before Linux 5.3
        raise SetupError(f"watching the container's init: pidfd_open: {err.strerror}") \
            from None
    joined_read, joined_write = os.pipe2(os.O_CLOEXEC)
    try:
        if process_start_time(init_pid) != init_start_time:
            raise SetupError("the container's init exited while its network was set up")
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _join_namespaces(*namespaces)
                # joining a user namespace made us undumpable (a change of credentials):
                # slirp4netns, as the caller, must be able to open our /proc/PID/ns
                from rootless.runtime.processes import hold_until_exit
                from rootless.system import libc
                libc.prctl(libc.PR_SET_DUMPABLE, 1)
                os.write(joined_write, b"1")
                code = 0
                hold_until_exit(pidfd, keep={exit_write})
            finally:
                os._exit(code)
        os.close(joined_write)
        joined_write = -1
        if os.read(joined_read, 1) != b"1":
            os.waitpid(pid, 0)
            raise SetupError("the network watcher could not join the container's namespaces")
        return pid
    finally:
        os.close(pidfd)
        os.close(joined_read)
        if joined_write >= 0:
            os.close(joined_write)


# --- the API socket: ports --------------------------------------------------------------

def publish(record, mapping):
    """Forward host port -> container port through slirp4netns's API (add_hostfwd)."""
    add_hostfwd(record.path, mapping)


def add_hostfwd(directory, mapping, guest_address=None):
    """Forward a host port to `guest_address` (default: slirp4netns's own guest, network
    + 100) through the API socket of the slirp4netns run in `directory`; the forward's
    id (for remove_hostfwd)."""
    arguments = {"proto": mapping.protocol, "host_addr": mapping.host_ip,
                 "host_port": mapping.host_port, "guest_port": mapping.container_port}
    if guest_address:
        arguments["guest_addr"] = guest_address
    reply = api_call(directory, {"execute": "add_hostfwd", "arguments": arguments})
    if "error" in reply:
        why = reply["error"].get("desc", reply["error"]) if isinstance(reply["error"], dict) \
            else reply["error"]
        raise SetupError(f"publishing port {mapping}: {SLIRP4NETNS}: {why} (is host port "
                         f"{mapping.host_port}/{mapping.protocol} in use?)")
    return reply.get("return", {}).get("id")


def remove_hostfwd(directory, forward_id):
    """Stop a forward add_hostfwd made: its host port is free again."""
    reply = api_call(directory, {"execute": "remove_hostfwd", "arguments": {"id": forward_id}})
    if "error" in reply:
        raise SetupError(f"releasing a published port: {SLIRP4NETNS}: {reply['error']}")


def api_call(directory, request):
    """One request to the API socket of the slirp4netns whose working directory is
    `directory`; its answer."""
    import socket
    from oci import jsonio
    # /proc/self/fd/N/name: a short address whatever the length of the state path
    directory = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as api:
            api.settimeout(READY_TIMEOUT)
            try:
                api.connect(f"/proc/self/fd/{directory}/{API_SOCKET}")
                api.sendall(jsonio.dumps(request).encode())
                api.shutdown(socket.SHUT_WR)
                reply = b""
                while chunk := api.recv(4096):
                    reply += chunk
            except OSError as err:
                raise SetupError(f"{SLIRP4NETNS}'s API socket: {err.strerror or err}") from None
    finally:
        os.close(directory)
    try:
        return jsonio.loads(reply, explain=False)
    except ValueError:
        raise SetupError(f"{SLIRP4NETNS}'s API answered {reply[:200]!r}") from None


def check_port_free(mapping):
    """Refuse a host port that is taken (or not ours to take) before anything starts."""
    import errno
    import socket
    kind = socket.SOCK_STREAM if mapping.protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        if kind == socket.SOCK_STREAM:
            # as slirp4netns listens: a connection in TIME_WAIT does not count
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((mapping.host_ip, mapping.host_port))
        except OSError as err:
            where = f"host port {mapping.host_ip}:{mapping.host_port}/{mapping.protocol}"
            if err.errno == errno.EADDRINUSE:
                raise HandcarError(f"cannot publish {mapping}: {where} is already in use") \
                    from None
            if err.errno == errno.EACCES:
                raise HandcarError(f"cannot publish {mapping}: {where} needs privilege "
                                   "(see sysctl net.ipv4.ip_unprivileged_port_start)") \
                    from None
            if err.errno == errno.EADDRNOTAVAIL:
                raise HandcarError(f"cannot publish {mapping}: {mapping.host_ip} is not an "
                                   "address of this host") from None
            raise HandcarError(f"cannot publish {mapping}: {err.strerror}") from None


# --- delete -----------------------------------------------------------------------------

def stop(record):
    """Kill slirp4netns and the watcher if they still run; where ports were published,
    wait for them to be gone (a killed slirp4netns's host ports are free once it is)."""
    from oci.network import PORTS_ANNOTATION
    from rootless.runtime.processes import stop_recorded
    published = bool((record.data.get("annotations") or {}).get(PORTS_ANNOTATION))
    stop_recorded(record.id, record.data.get("network") or {}, wait=published)
