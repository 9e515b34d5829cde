"""The friendly verbs: `run IMAGE [CMD]` / `run -- CMD`, logs, ps -a, stop and rm, the
way docker and podman users expect them (the image verbs are rootless/friendly/images.py).

A friendly container is an ordinary container of the engine (same store, same verbs)
whose bundle handcar writes itself, in DATA/containers/NAME/ (DATA: the XDG data dir):

    config.json        built by oci.runspec from the flags and the image
    rootfs/            root.path: the overlay's mount point, a copy of the image, or (host
                       sandbox) an empty root holding the host's directories' mount points
    upper/ work/       the container's writable layer, when overlayfs is used
    l                  -> the image store's short layer names (overlay's lowerdir)
    image-id           the image it was made from (rmi and image prune read it)
    etc/               hostname, hosts, resolv.conf, bound into the container
    ctr.log            stdout and stderr of a detached container

Nothing watches a detached container: `--rm -d` containers are removed by the next
friendly command that finds them stopped, and a detached container's exit status is
not kept.
"""

import os
import sys
import time

from oci import jsonio
from oci.runspec import (HOST_DIRS, ImageConfig, Layout, RunError, RunRequest, build_spec,
                         network_kind, parse_cpus, parse_env_file, parse_size, parse_user,
                         parse_volume)
from rootless import log
from rootless.output import ago, print_table
from rootless.errors import AlreadyExists, HandcarError, NotFound
from rootless.friendly.settings import settings
from rootless.runtime.store import check_id, write_atomic
from rootless.runtime.store import ALIVE, PAUSED, STOPPED

ADJECTIVES = ("brisk", "steady", "quiet", "eager", "nimble", "sturdy", "swift", "plucky",
              "jolly", "gentle", "bold", "humble", "keen", "lively", "merry", "proud")
NOUNS = ("caboose", "boxcar", "tender", "coupler", "signal", "switch", "trestle", "handcar",
         "drawbar", "sleeper", "railyard", "turntable", "lantern", "whistle", "piston", "bogie")
INIT_PROGRAMS = ("catatonit", "tini-static", "/usr/libexec/podman/catatonit")
# (the spec's annotation for handcar's own init is init.BUILTIN_INIT)


# --- where things are -------------------------------------------------------------------

def containers_dir():
    return os.path.join(settings().storage, "containers")


def bundle_of(name):
    return os.path.join(containers_dir(), name)


def image_store():
    from rootless.image.store import ImageStore
    return ImageStore(settings().storage, container_mapping())


def container_mapping():
    """How a container from an image or rootfs directory is mapped (and its files made)."""
    from rootless.runtime import userns
    from rootless.runtime.store import user_name
    return userns.default_plan(os.geteuid(), os.getegid(), user_name(os.geteuid()))


# --- run ----------------------------------------------------------------------------------

class RunFlags:
    """The friendly `run` flags as the command line gave them (see verbs.py)."""

    def __init__(self, **values):
        self.__dict__.update(values)


def run(store, image_text, command, flags):
    """Make and run a friendly container; the command's exit status (0 when detached)."""
    collect_garbage(store)
    name, bundle = _claim_name(store, flags.name)
    created = False
    try:
        request, image_config, layout = _prepare(bundle, name, image_text, command, flags)
        write_atomic(os.path.join(bundle, "config.json"),
                     jsonio.dumps(build_spec(request, image_config, layout,
                                             os.uname().machine), indent=2))
        created = True
        status = _run_container(store, name, bundle, flags)
    except BaseException:
        if not created or not os.path.exists(store.path(name)):
            remove_bundle(bundle)
        raise
    if flags.rm and not flags.detach:
        remove_container(store, name)
    elif flags.detach:
        print(name)
    return status


def _prepare(bundle, name, image_text, command, flags):
    """(RunRequest, ImageConfig or None, Layout) for this run."""
    config = settings()
    if flags.detach and flags.tty:
        raise RunError("-t with -d is not supported: a detached container's output goes "
                       "to its log (handcar logs); leave out -t")
    # the options that need no image are checked before one is pulled or copied
    cwd = os.getcwd()
    volumes = tuple(parse_volume(v, cwd) for v in flags.volume)
    for volume in volumes:
        if not os.path.exists(volume["source"]):
            raise RunError(f"-v: {volume['source']} does not exist")
    env = tuple(_environment(flags))
    memory = parse_size(flags.memory, "--memory") if flags.memory else None
    cpus = parse_cpus(flags.cpus) if flags.cpus else None
    seccomp = _seccomp(flags.security_opt, config)
    network = flags.network or config.network
    image, layout, read_file = None, Layout(), None
    if image_text is None:
        layout = _host_sandbox(bundle)
        network = network or "host"
    else:
        os.mkdir(os.path.join(bundle, "etc"), 0o755)    # marks the bundle as an image's
        image, layout, read_file = _image_layout(bundle, image_text, flags)
        network = network or _default_network()
    slirp, networks, ports = _network(network, flags.publish,
                                      image if flags.publish_all else None,
                                      flags.network_alias, flags.ip,
                                      host_sandbox=image_text is None)
    user = _user(flags.user, image, layout, read_file)
    if image_text is not None:
        layout = layout.replace(etc_files=_etc_files(bundle, flags.hostname or name, slirp,
                                                     networks, flags.ip))
    if flags.init or config.init:
        layout = layout.replace(init_binary=_init_binary())
    request = RunRequest(
        name=name, image=image_text, command=tuple(command), entrypoint=flags.entrypoint,
        env=env, workdir=flags.workdir, user=user, volumes=volumes, tmpfs=tuple(flags.tmpfs),
        read_only=flags.read_only, ports=ports, network=network, hostname=flags.hostname,
        networks=tuple(n.name for n in networks), network_aliases=tuple(flags.network_alias),
        ip=flags.ip,
        memory=memory, cpus=cpus, pids_limit=flags.pids_limit,
        init=flags.init or config.init, cap_add=tuple(flags.cap_add),
        cap_drop=tuple(flags.cap_drop), seccomp=seccomp,
        tty=flags.tty, remove=flags.rm,
        stop_signal=image.stop_signal if image else "",
        no_new_privileges="no-new-privileges" in flags.security_opt)
    return request, image, layout


def _network(network, publish, image, aliases=(), ip=None, host_sandbox=False):
    """(oci.network.Slirp4netns or None, handcar networks (definitions.Network), the ports
    as handcar.ports spells them) for --network, -p and (-P) the image's exposed ports on
    free host ports."""
    from oci.network import parse_network, ports_annotation
    from oci.runspec import NETWORK_MODES
    slirp, networks = None, ()
    if network.partition(":")[0] in NETWORK_MODES + ("ns",):
        kind = network_kind(network)
        if kind == "slirp4netns":
            try:
                slirp = parse_network(network)
            except ValueError as err:
                raise RunError(f"--network {network}: {err}") from None
        if aliases or ip:
            raise RunError("--network-alias and --ip are for handcar networks "
                           "(--network NAME: handcar network create)")
    else:
        networks = _handcar_networks(network, ip, host_sandbox)
    publish = list(publish) + [f"{_free_port()}:{port}" for port in
                                     (image.exposed_ports if image else ())]
    if publish and not slirp and not networks:
        raise RunError(f"-p needs --network slirp4netns or a handcar network (not {network})")
    if publish and networks and networks[0].internal:
        raise RunError(f"-p: network {networks[0].name} is internal: no port of the host "
                       "can reach it")
    try:
        ports = tuple(ports_annotation(publish).split(",")) if publish else ()
    except ValueError as err:
        raise RunError(f"-p: {err}") from None
    return slirp, networks, ports


def _handcar_networks(text, ip, host_sandbox):
    """The definitions of --network NAME[,NAME...] (handcar network create)."""
    from oci.network import parse_names
    from oci.runspec import NETWORK_MODES
    from rootless.network import definitions
    modes = f"{', '.join(NETWORK_MODES)}, ns:PATH"
    try:
        names = parse_names(text)
    except ValueError as err:
        raise RunError(f"--network {text}: {err} (or a mode: {modes})") from None
    if host_sandbox:
        raise RunError(f"--network {text}: handcar networks are for images: the host "
                       "sandbox (--) runs as you, the containers on a network share its "
                       "user namespace")
    found = []
    for name in names:
        try:
            found.append(definitions.load(name))
        except NotFound:
            raise RunError(f"--network {name}: no such network (handcar network ls lists "
                           f"them) and no network mode ({modes})") from None
    if ip:
        if len(found) != 1:
            raise RunError("--ip needs exactly one network")
        try:
            found[0].check_address(ip)
        except HandcarError as err:
            raise RunError(str(err)) from None
    return tuple(found)


def _free_port():
    """A host port nothing listens on now, for -P (as docker picks one)."""
    import socket
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def _default_network():
    from rootless.runtime.host import find_program
    if find_program("slirp4netns"):
        return "slirp4netns"
    log.warning("slirp4netns is not installed, so the container has no network "
                "(install slirp4netns, or pass --network host or none)")
    return "none"


def _host_sandbox(bundle):
    """The host's own system, read-only, with the current directory read-write."""
    import pwd
    cwd = os.getcwd()
    if cwd == "/":
        raise RunError("the host sandbox binds the current directory read-write: "
                       "run it from a project directory, not /")
    rootfs = os.path.join(bundle, "rootfs")
    os.mkdir(rootfs, 0o755)
    host_dirs = []
    for path in HOST_DIRS:
        if os.path.islink(path):
            os.symlink(os.readlink(path), rootfs + path)    # /bin -> usr/bin stays a link
        elif os.path.isdir(path):
            host_dirs.append(path)
    try:
        home = pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        home = None
    mapping = host_sandbox_mapping()
    return Layout(rootfs="rootfs", host_dirs=tuple(host_dirs), cwd=cwd,
                  home=home if home and home != "/" else None,
                  uid_mappings=_as_json(mapping.uid_mappings),
                  gid_mappings=_as_json(mapping.gid_mappings))


def host_sandbox_mapping():
    """keep-id: the caller is itself inside, its subordinate ids around it."""
    from rootless.runtime import userns
    from rootless.runtime.store import user_name
    uid, gid = os.geteuid(), os.getegid()
    name = user_name(uid)
    uids = userns.keep_id_mappings(uid, userns.subordinate_ranges(userns.SUBUID, name, uid))
    gids = userns.keep_id_mappings(gid, userns.subordinate_ranges(userns.SUBGID, name, uid))
    return userns.MappingPlan(uids, gids, direct=len(uids) == 1 and len(gids) == 1)


def _as_json(mappings):
    return tuple({"containerID": m.container_id, "hostID": m.host_id, "size": m.size}
                 for m in mappings)


def _image_layout(bundle, image_text, flags):
    """(ImageConfig, Layout, a reader of the image's files) for an image or a rootfs
    directory. An image's root is an
    overlay of its layers (or a copy of it, where overlayfs cannot be mounted in a user
    namespace: see image/store.py); a directory's an overlay of it."""
    from oci.image import ImageError, parse_reference
    mapping = container_mapping()           # images are unpacked (and copied) with it
    reference = parse_reference(image_text, os.path.exists, os.path.isdir)
    store = image_store()
    rootfs = os.path.join(bundle, "rootfs")
    os.mkdir(rootfs, 0o755)
    from rootless.image.store import LAYERED
    overlay = store.driver() in LAYERED
    if reference.kind == "dir":
        if not os.path.isdir(reference.path):
            raise ImageError(f"{image_text}: no such directory")
        lower, image = os.path.realpath(reference.path), ImageConfig()
        if set(lower) & set(",:"):
            raise RunError(f"{lower}: overlayfs cannot use a path with ',' or ':'")

        def read_file(path):
            return _read_in_root(lower, path)
        if not overlay:
            from rootless.image.worker import in_userns
            in_userns(mapping, "copy_layer", lower, rootfs)
    else:
        from rootless.image.progress import progress_for
        from rootless.image.pull import image_for_run, platform_from
        found = image_for_run(store, image_text, flags.pull, platform_from(flags.platform,
                                                                           flags.arch),
                              progress_for(quiet=False))
        image = found.config()

        def read_file(path):
            return store.read_file(found, path)
        with store.lock():                  # rmi waits until the image's use is recorded
            with open(os.path.join(bundle, "image-id"), "w") as f:
                f.write(found.id + "\n")
            if overlay:
                lower = store.overlay_lowers(found, bundle)
            else:
                store.copy_root(found, rootfs)
    if overlay:
        os.mkdir(os.path.join(bundle, "upper"), 0o755)
        os.mkdir(os.path.join(bundle, "work"), 0o700)
        layout = Layout(rootfs="rootfs", overlay=(lower, "upper", "work"),
                        mount_program=store.mount_program())
    else:
        log.debug("overlayfs is not available here: the container has a copy of its image")
        layout = Layout(rootfs="rootfs")
    return image, layout.replace(uid_mappings=_as_json(mapping.uid_mappings),
                                 gid_mappings=_as_json(mapping.gid_mappings)), read_file


def _user(text, image, layout, read_file):
    """(uid, gid, additional gids) the process runs as."""
    if layout.cwd is not None:                  # host sandbox: the caller, unless -u
        if not text:
            return os.geteuid(), os.getegid(), ()
        passwd, group = _read("/etc/passwd"), _read("/etc/group")
        uid, gid, _extra = parse_user(text, passwd, group)
        return uid, gid, ()
    text = text or (image.user if image else "")
    if not text:
        return 0, 0, ()
    return parse_user(text, read_file("/etc/passwd"), read_file("/etc/group"))


def _read_in_root(root, path, limit=1 << 20):
    """A regular file of an image, its symlinks followed inside the image: a hostile one
    must not make us read /dev/zero, a fifo, or the host's own /etc/passwd."""
    from rootless.system.fs import read_regular_file, resolve_in_root
    return read_regular_file(resolve_in_root(root, path), limit)


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _environment(flags):
    entries = []
    for path in flags.env_file:
        try:
            with open(path, errors="replace") as f:
                entries += parse_env_file(f.read(), path)
        except OSError as err:
            raise RunError(f"--env-file {path}: {err.strerror}") from None
    entries += flags.env
    resolved = []
    for item in entries:
        name = item.split("=", 1)[0]
        if not name or "\0" in item:
            raise RunError(f"-e {item!r}: expected NAME=VALUE")
        if "=" in item:
            resolved.append(item)
        elif item in os.environ:              # -e NAME: the host's value, as docker does
            resolved.append(f"{item}={os.environ[item]}")
    return resolved


def _etc_files(bundle, hostname, slirp, networks=(), ip=None):
    """/etc/hostname, /etc/hosts and /etc/resolv.conf of an image container: files of
    ours bound over the image's (never written into it). On handcar networks, names are
    the network's DNS's to answer (the others' come and go): it is the only nameserver."""
    etc = os.path.join(bundle, "etc")
    hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    if networks:
        hosts += f"{ip or '127.0.1.1'}\t{hostname}\n"
        host = next((network.host for network in networks if network.host), None)
        if host:
            hosts += f"{host}\thost.containers.internal\n"
        resolv = "".join(f"nameserver {network.gateway}\n" for network in networks)
    elif slirp:
        hosts += f"{slirp.address}\t{hostname}\n{slirp.gateway}\thost.containers.internal\n"
        resolv = f"nameserver {slirp.dns}\n"
    else:                               # the host's resolvers, as they are
        hosts += f"127.0.1.1\t{hostname}\n"
        resolv = _read("/etc/resolv.conf")
    files = {"/etc/hostname": f"{hostname}\n", "/etc/hosts": hosts,
             "/etc/resolv.conf": resolv}
    for destination, text in files.items():
        path = os.path.join(etc, os.path.basename(destination))
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
    return {destination: os.path.join(etc, os.path.basename(destination))
            for destination in files}


def _init_binary():
    """catatonit or tini (static: bound into any image) where installed, else None:
    handcar's own init then stays PID 1 (see init.py)."""
    from rootless.runtime.host import find_program
    for program in INIT_PROGRAMS:
        path = program if program.startswith("/") else find_program(program)
        if path and os.access(path, os.X_OK):
            return os.path.realpath(path)
    return None


def _seccomp(security_opts, config):
    """The linux.seccomp document: the default profile, none, or a file's."""
    choice = config.seccomp_profile
    for option in security_opts:
        key, _, value = option.partition("=")
        if key == "seccomp":
            choice = value
        elif option in ("no-new-privileges", "label=disable", "apparmor=unconfined"):
            continue
        else:
            raise RunError(f"--security-opt {option}: supported are seccomp=unconfined|FILE, "
                           "no-new-privileges, label=disable")
    if choice == "unconfined":
        return None
    if choice == "default":
        return "default"                      # built with the spec: it depends on the caps
    try:
        with open(choice, "rb") as f:
            return jsonio.loads(f.read())
    except OSError as err:
        raise RunError(f"seccomp profile {choice}: {err.strerror}") from None
    except ValueError as err:
        raise RunError(f"seccomp profile {choice}: not valid JSON: {err}") from None


def _run_container(store, name, bundle, flags):
    from rootless.runtime.create import CreateOptions, run as run_container
    options = CreateOptions()
    if not flags.detach:
        if not flags.interactive and not flags.tty:
            null_fd = os.open(os.devnull, os.O_RDONLY)     # docker: no stdin without -i
            os.dup2(null_fd, 0)
            os.close(null_fd)
        return run_container(store, name, bundle, options, keep=True)
    log_fd = os.open(os.path.join(bundle, "ctr.log"),
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    null_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    saved = [os.dup(fd) for fd in (0, 1, 2)]            # not inheritable
    saved_stdout, saved_stderr = sys.stdout, sys.stderr
    try:
        # The container's stdio is the log; ours goes on reaching the caller.
        sys.stdout = open(saved[1], "w", closefd=False)
        sys.stderr = open(saved[2], "w", closefd=False)
        for target, source in ((0, null_fd), (1, log_fd), (2, log_fd)):
            os.dup2(source, target)
        return run_container(store, name, bundle, options, detach=True)
    finally:
        for target, source in zip((0, 1, 2), saved):
            os.dup2(source, target)
            os.close(source)
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = saved_stdout, saved_stderr
        os.close(log_fd)
        os.close(null_fd)


def _claim_name(store, wanted):
    """(name, bundle directory) for a new container: the directory is made here, so two
    runs cannot take one name; without --name, a free generated one."""
    import random
    os.makedirs(containers_dir(), mode=0o700, exist_ok=True)
    if wanted is not None:
        try:
            check_id(wanted)
            if wanted.startswith("-"):
                raise HandcarError("it must not start with '-' (it would read as a flag)")
        except HandcarError as err:
            raise RunError(f"--name {wanted!r}: {err}") from None
    taken = set(store.ids())
    for attempt in range(1 if wanted is not None else 100):
        name = wanted
        if wanted is None:
            name = f"{random.choice(ADJECTIVES)}_{random.choice(NOUNS)}"
            if attempt > 20:
                name += f"{random.randrange(100)}"
        if name not in taken:
            try:
                os.mkdir(bundle_of(name), 0o700)
                return name, bundle_of(name)
            except FileExistsError:
                pass
        if wanted is not None:
            raise AlreadyExists(f"the name {name} is already in use (handcar rm {name})")
    raise HandcarError("cannot find a free container name: give one with --name")


# --- removal -------------------------------------------------------------------------------

def remove_bundle(bundle):
    """A friendly container's directory, with its writable layer (owned by its ids)."""
    from rootless.image.store import remove_owned_tree
    if not os.path.exists(bundle):
        return
    # an image's bundle has its /etc files; a host sandbox's has none
    from_image = os.path.exists(os.path.join(bundle, "etc"))
    remove_owned_tree(bundle, container_mapping() if from_image else host_sandbox_mapping())


def remove_container(store, name):
    from rootless.runtime.lifecycle import delete
    delete(store, name, force=True)
    remove_bundle(bundle_of(name))


def collect_garbage(store):
    """Remove the stopped containers that were run with --rm -d."""
    try:
        names = os.listdir(containers_dir())
    except FileNotFoundError:
        return
    for name in names:
        try:
            record = store.open(name, lock=False)
        except HandcarError:
            continue
        annotations = record.data.get("annotations") or {}
        if annotations.get("handcar.rm") == "true" and record.status() == STOPPED:
            try:
                remove_container(store, name)
            except HandcarError as err:
                log.warning(f"removing {name} (--rm): {err}")


# --- the other friendly verbs -----------------------------------------------------------

def _open_friendly(store, name):
    try:
        return store.open(name, lock=False)
    except NotFound:
        raise NotFound(f"no such container {name}") from None


def logs(store, name, follow):
    path = os.path.join(bundle_of(name), "ctr.log")
    record = _open_friendly(store, name)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise HandcarError(f"container {name} has no log: only detached containers (-d) "
                           "keep one") from None
    out = sys.stdout.buffer
    with f:
        while True:
            data = f.read(65536)
            if data:
                out.write(data)
                out.flush()
                continue
            if not follow or record.status() == STOPPED:
                if follow:
                    out.write(f.read())       # what it wrote just before it stopped
                    out.flush()
                return
            time.sleep(0.1)


def ps(store, show_all):
    collect_garbage(store)
    rows = [("NAME", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS")]
    for name in store.ids():
        try:
            record = store.open(name, lock=False)
            status = record.status()
        except HandcarError:
            continue
        if status == STOPPED and not show_all:
            continue
        annotations = record.data.get("annotations") or {}
        try:
            args = record.load_spec().process.args
        except (OSError, HandcarError):
            args = ()
        command = " ".join(args)
        rows.append((name, annotations.get("handcar.image") or "-",
                     command if len(command) <= 30 else command[:27] + "...",
                     ago(record.data.get("created", "")),
                     "exited" if status == STOPPED else status,
                     _ports_column(annotations.get("handcar.ports"))))
    print_table(rows)


def _ports_column(annotation):
    """0.0.0.0:8080->80/tcp, ... as podman ps shows them."""
    from oci.network import parse_ports
    try:
        return ", ".join(str(mapping) for mapping in parse_ports(annotation)) \
            if annotation else ""
    except ValueError:
        return annotation


def stop(store, names, timeout):
    from rootless.runtime.processes import SIGKILL
    from rootless.runtime.lifecycle import STOP_TIMEOUT, kill, resume
    from rootless.runtime.processes import parse_signal
    for name in names:
        record = _open_friendly(store, name)
        status = record.status()
        if status in ALIVE:
            stop_signal = (record.data.get("annotations") or {}).get("handcar.stop-signal")
            if status == PAUSED:
                resume(store, name)
            kill(store, name, parse_signal(stop_signal or "SIGTERM"))
            deadline = time.monotonic() + timeout
            while record.init_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if record.init_alive():
                kill(store, name, SIGKILL, all_processes=True)
                deadline = time.monotonic() + STOP_TIMEOUT
                while record.init_alive() and time.monotonic() < deadline:
                    time.sleep(0.01)
        print(name)


def rm(store, names, force):
    for name in names:
        bundle = bundle_of(name)
        try:
            record = store.open(name, lock=False)
        except NotFound:
            if not os.path.exists(bundle):
                raise NotFound(f"no such container {name}") from None
            remove_bundle(bundle)             # its state is gone (runc delete): the rest
            print(name)
            continue
        if record.status() in ALIVE and not force:
            raise HandcarError(f"container {name} is {record.status()}: stop it first, or "
                               "use rm -f")
        remove_container(store, name)
        print(name)
