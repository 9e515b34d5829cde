"""A network's way out: which helper gives it (pasta or slirp4netns, chosen as podman
chooses), and what pasta needs (slirp.py has slirp4netns's API).

The helper is chosen by containers.conf(5), `[network] default_rootless_network_cmd =
"pasta" | "slirp4netns"`, read from the files podman reads, in its order (a later file
overrides an earlier one):

    $CONTAINERS_CONF alone, when set; else
    /usr/share/containers/containers.conf, then its containers.conf.d/*.conf,
    /etc/containers/containers.conf, then its containers.conf.d/*.conf,
    /etc/containers/containers.rootless.conf.d/*.conf and .../containers.rootless.conf.d/UID/*.conf,
    $XDG_CONFIG_HOME/containers/containers.conf (else ~/.config/...), then its .conf.d/*.conf;
    $CONTAINERS_CONF_OVERRIDE last.

Without the key: slirp4netns where it is installed (podman 4's default, and the one that
publishes ports: this pasta takes its ports only on its command line), else pasta.

How pasta serves a network (daemon.py starts it; plumbing.attach_pasta wires it). Unlike
slirp4netns, pasta serves one guest address: its replies go to the last address it saw.
So its tap device is not a port of the bridge: it gets a link of its own (LINK, a
link-local /30: pasta's gateway LINK+1, the namespace LINK+2), the network's namespace
routes between the bridge and it (S+2 on the bridge is the containers' gateway, as
slirp4netns's is) and masquerades the subnet behind LINK+2 (nftables, made with
pyroute2). DNS questions the daemon passes on go to S+3, routed to pasta, which forwards
them to the host's resolvers (--dns-forward). --no-map-gw: the host's loopback is out of
reach, as with slirp4netns's --disable-host-loopback.
"""

import ipaddress
import os

from rootless.errors import HandcarError

PASTA = "pasta"
SLIRP4NETNS = "slirp4netns"
HELPERS = (PASTA, SLIRP4NETNS)
KEY = "default_rootless_network_cmd"
PASTA_LOG = "pasta.log"          # in the network's run directory, as slirp4netns's log
PID_FILE = "helper.pid"          # "PID START_TIME" of the running helper, for network rm

LINK = ipaddress.ip_network("169.254.1.0/30")   # pasta's side of the network's namespace
LINK_GATEWAY = str(LINK.network_address + 1)    # pasta (its -g)
LINK_ADDRESS = str(LINK.network_address + 2)    # the namespace's tap0 (pasta's -a)
LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")   # no network's subnet (definitions)


# --- containers.conf ----------------------------------------------------------------------

def containers_conf_files(uid=None):
    """The containers.conf files that apply, in the order they override."""
    uid = os.getuid() if uid is None else uid
    override = os.environ.get("CONTAINERS_CONF_OVERRIDE")
    only = os.environ.get("CONTAINERS_CONF")
    if only:
        return [only] + ([override] if override else [])
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".config")
    files = []
    for directory in ("/usr/share/containers", "/etc/containers",
                      os.path.join(config, "containers")):
        files.append(os.path.join(directory, "containers.conf"))
        drop_ins = [os.path.join(directory, "containers.conf.d")]
        if directory == "/etc/containers" and uid != 0:
            rootless = os.path.join(directory, "containers.rootless.conf.d")
            drop_ins += [rootless, os.path.join(rootless, str(uid))]
        for drop_in in drop_ins:
            try:
                names = sorted(n for n in os.listdir(drop_in) if n.endswith(".conf"))
            except (FileNotFoundError, NotADirectoryError):
                continue
            files += [os.path.join(drop_in, name) for name in names]
    return files + ([override] if override else [])


def configured_helper(files=None):
    """containers.conf's default_rootless_network_cmd, or None; HandcarError for a file
    that is not TOML or a value handcar does not know."""
    import tomllib
    chosen = None
    for path in containers_conf_files() if files is None else files:
        try:
            with open(path, "rb") as f:
                document = tomllib.loads(f.read().decode())
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as err:
            raise HandcarError(f"{path}: {err.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise HandcarError(f"{path}: not valid TOML: {err}") from None
        section = document.get("network")
        value = section.get(KEY) if isinstance(section, dict) else None
        if value is None:
            continue
        if value not in HELPERS:
            raise HandcarError(f"{path}: [network] {KEY} = {value!r}: handcar knows "
                               f"{' and '.join(repr(h) for h in HELPERS)}")
        chosen = value
    return chosen


def choose_helper():
    """The program a network's way out runs through: containers.conf's choice, else
    slirp4netns where installed, else pasta. HandcarError when the chosen one (or
    either) is not installed."""
    from rootless.runtime.host import find_program
    chosen = configured_helper()
    if chosen is None:
        return SLIRP4NETNS if find_program(SLIRP4NETNS) else PASTA
    if not find_program(chosen):
        package = "passt" if chosen == PASTA else SLIRP4NETNS
        raise HandcarError(f"containers.conf chooses {chosen} for networks' way out, and "
                           f"it is not installed (install the {package} package)")
    return chosen


# --- pasta ----------------------------------------------------------------------------------

def pasta_argv(program, netns_path, dns_address, log_file):
    """pasta for a network's namespace: no ports forwarded either way (-t/-u/-T/-U none:
    pasta forwards only ports given when it starts; published ports are refused, see
    daemon._do_join), in the foreground (the daemon watches it), as the daemon's own
    root (a change of ids would leave it undumpable to us)."""
    return [program, "--foreground", "--quiet", "--runas", "0:0", "--ipv4-only",
            "--ns-ifname", "tap0", "--address", LINK_ADDRESS,
            "--netmask", str(LINK.prefixlen), "--gateway", LINK_GATEWAY, "--no-map-gw",
            "--dns-forward", dns_address, "--no-dhcp",
            "-t", "none", "-u", "none", "-T", "none", "-U", "none",
            "--log-file", log_file, "--netns", netns_path]


def guard(daemon_pidfd, helper_pidfd):
    """The body of a process forked from the daemon (never returns): pasta has no exit
    pipe and no parent-death signal survives its start, so this one waits for the daemon
    to exit and kills pasta then; it exits with pasta."""
    import select
    import signal
    from rootless.system.channel import close_fds_from
    try:
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        close_fds_from(3, keep={daemon_pidfd, helper_pidfd})
        poller = select.poll()
        poller.register(daemon_pidfd, select.POLLIN)
        poller.register(helper_pidfd, select.POLLIN)
        ready = []
        while not ready:
            ready = poller.poll()
        if any(fd == daemon_pidfd for fd, _ in ready):
            signal.pidfd_send_signal(helper_pidfd, signal.SIGKILL)
    finally:
        os._exit(0)
