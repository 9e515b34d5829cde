"""The friendly run mode's options, turned into a config.json (pure: no syscalls).

`handcar run [OPTIONS] IMAGE [CMD...]` and `handcar run [OPTIONS] -- CMD...` build a spec
here from a RunRequest (the command line, checked), an ImageConfig (the image's defaults,
or none for the host sandbox) and a Layout (where the engine-side code put the rootfs).
Everything the caller got wrong is a SpecError-like list of problems with the flag named.
"""

import posixpath

from .default import default_spec
from .errors import HandcarError
from .record import Record
from .spec import DEFAULT_PATH, MOUNT_PROGRAM_ANNOTATION, env_value

# podman's default capabilities for a container's root
DEFAULT_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
                "CAP_SETUID", "CAP_SYS_CHROOT")
# what the host sandbox shows of the host, read-only, where it exists
HOST_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
INIT_PATH = "/run/handcar-init"
NETWORK_MODES = ("slirp4netns", "none", "host")


class RunError(HandcarError):
    """A friendly-mode option is wrong (docker's status 125)."""


class RunRequest(Record):
    """The friendly `run` command line, as given."""
    FIELDS = {
        "name": None,
        "image": None,             # what the user typed; None for the host sandbox
        "command": (),
        "entrypoint": None,        # --entrypoint (a string: one program)
        "env": (),                 # KEY=VALUE, already resolved from the host and env files
        "workdir": None,
        "user": None,              # (uid, gid, additional gids), resolved by the caller
        "volumes": (),             # -v SRC:DST[:ro|rw]
        "tmpfs": (),               # --tmpfs DST[:OPTIONS]
        "read_only": False,
        "ports": (),               # -p, passed on to the network engine
        "network": None,           # slirp4netns[:OPTS] | none | host | ns:PATH
        "networks": (),            # or handcar networks' names (--network NAME[,NAME])
        "network_aliases": (),     # --network-alias, on those
        "ip": None,                # --ip, on the one of those
        "hostname": None,
        "memory": None,            # bytes
        "cpus": None,              # a float
        "pids_limit": None,
        "init": False,
        "cap_add": (),
        "cap_drop": (),
        "seccomp": None,           # a linux.seccomp document, "default" (podman's
                                   # profile for this machine), or None (unconfined)
        "tty": False,
        "remove": False,           # --rm
        "stop_signal": "",         # the image's StopSignal, for `handcar stop`
        "no_new_privileges": False,
    }


class ImageConfig(Record):
    """What an image's config says about how to run it (OCI image-spec "config")."""
    FIELDS = {
        "entrypoint": (),
        "cmd": (),
        "env": (),
        "workdir": "",
        "user": "",
        "exposed_ports": (),
        "stop_signal": "",
    }


class Layout(Record):
    """Where the engine-side code put things for this container."""
    FIELDS = {
        "rootfs": "rootfs",        # root.path (relative to the bundle)
        "overlay": None,           # (lowerdir, upperdir, workdir): mounted on / if given
                                   # (relative paths are the bundle's)
        "mount_program": None,     # fuse-overlayfs's path, where it mounts the overlay
        "host_dirs": (),           # host sandbox: the HOST_DIRS that exist (real dirs)
        "cwd": None,               # host sandbox: the caller's directory, bound read-write
        "home": None,              # host sandbox: the caller's home (a tmpfs)
        "uid_mappings": None,      # explicit linux.uidMappings (host sandbox: keep-id)
        "gid_mappings": None,
        "etc_files": {},           # /etc/resolv.conf etc. -> host file to bind
        "init_binary": None,       # host path of catatonit/tini for --init
    }


# --- parsing the options ----------------------------------------------------------------

def parse_volume(text, cwd):
    """-v SRC:DST[:OPTIONS] -> a bind mount (SRC absolute, or relative to `cwd`)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise RunError(f"-v {text}: expected SRC:DST[:ro|rw]")
    source, destination = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 else []
    if not source.startswith(("/", ".")):
        raise RunError(f"-v {text}: named volumes are not supported; give a host path "
                       "(absolute, or starting with ./)")
    if not destination.startswith("/"):
        raise RunError(f"-v {text}: the container path must be absolute")
    flags = ["rbind"]
    for option in options:
        if option in ("ro", "rw"):
            flags.append(option)
        elif option in ("z", "Z", ""):
            continue                              # SELinux relabelling: nothing to do here
        else:
            raise RunError(f"-v {text}: unknown option {option!r} (ro, rw)")
    if not source.startswith("/"):
        source = posixpath.normpath(posixpath.join(cwd, source))   # strings only
    return {"destination": destination, "type": "bind", "source": source,
            "options": flags}


def parse_tmpfs(text):
    """--tmpfs DST[:OPTIONS] -> a tmpfs mount."""
    destination, _, options = text.partition(":")
    if not destination.startswith("/"):
        raise RunError(f"--tmpfs {text}: the container path must be absolute")
    extra = [o for o in options.split(",") if o] or ["rw"]
    if not any(o.startswith("mode=") for o in extra):
        extra.append("mode=1777")        # docker's default (a bare tmpfs takes its mount
                                         # point's mode, as crun does)
    return {"destination": destination, "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev"] + extra}


def parse_size(text, flag):
    """Docker's sizes: 64m, 1g, 512k, 100b or plain bytes."""
    units = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    lowered = text.strip().lower()
    if lowered.endswith("b") and len(lowered) > 1 and lowered[-2] in units:
        lowered = lowered[:-1]
    factor = units.get(lowered[-1:], None)
    number = lowered[:-1] if factor else lowered
    try:
        value = float(number) * (factor or 1)
    except ValueError:
        raise RunError(f"{flag} {text}: expected a size such as 64m or 1g") from None
    if value <= 0:
        raise RunError(f"{flag} {text}: must be more than 0")
    return int(value)


def parse_cpus(text):
    try:
        value = float(text)
    except ValueError:
        raise RunError(f"--cpus {text}: expected a number such as 1.5") from None
    if value <= 0:
        raise RunError(f"--cpus {text}: must be more than 0")
    return value


def parse_env_file(text, source):
    """An --env-file: KEY=VALUE lines, '#' comments and blank lines; a bare KEY takes the
    host's value (returned as such, for the caller to resolve)."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("="):
            raise RunError(f"{source}:{number}: no variable name before '='")
        entries.append(line)
    return entries


def parse_user(text, passwd="", group=""):
    """-u / an image's User: NAME|UID[:GROUP|GID] -> (uid, gid, additional gids), looked up
    in the container's /etc/passwd and /etc/group texts."""
    user, _, grp = text.partition(":")
    users = _table(passwd)
    groups = _table(group)
    if user.isdigit():
        uid = int(user)
        entry = next((e for e in users.values() if e[1] == user), None)
    else:
        entry = users.get(user)
        if entry is None:
            raise RunError(f"user {user!r} is not in the container's /etc/passwd")
        uid = int(entry[1])
    if grp:
        if grp.isdigit():
            gid = int(grp)
        elif grp in groups:
            gid = int(groups[grp][1])
        else:
            raise RunError(f"group {grp!r} is not in the container's /etc/group")
    else:
        gid = int(entry[2]) if entry and entry[2].isdigit() else 0
    name = entry[0] if entry else None
    extra = ()
    if name and not grp:
        extra = tuple(sorted({int(g[1]) for g in groups.values()
                              if name in g[2].split(",") and g[1].isdigit()} - {gid}))
    return uid, gid, extra


def _table(text):
    """name -> (name, id, third field) for passwd (gid) and group (members) lines."""
    table = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] and fields[2].isdigit():
            table[fields[0]] = (fields[0], fields[2], fields[3])
    return table


def network_kind(network):
    """'slirp4netns' of 'slirp4netns:mtu=1500'; 'ns' of 'ns:/proc/1/ns/net'."""
    kind = network.partition(":")[0]
    if kind not in NETWORK_MODES + ("ns",):
        raise RunError(f"--network {network}: expected one of "
                       f"{', '.join(NETWORK_MODES)} or ns:PATH")
    if kind in ("none", "host") and network != kind:
        raise RunError(f"--network {kind} takes no options")
    if kind == "ns" and not network[3:].startswith("/"):
        raise RunError(f"--network {network}: expected ns:/path/to/netns")
    return kind


# --- building the spec ------------------------------------------------------------------

def process_args(request, image):
    """Entrypoint + Cmd as docker combines them, with --entrypoint and CMD overriding."""
    entrypoint = [request.entrypoint] if request.entrypoint is not None else list(
        image.entrypoint if image else ())
    if request.entrypoint == "":
        entrypoint = []
    command = list(request.command) or (list(image.cmd) if image and
                                        request.entrypoint is None else [])
    args = entrypoint + command
    if not args:
        raise RunError("no command: give one after the image (the image has no "
                       "Entrypoint or Cmd)" if image else "no command to run after --")
    return args


def build_spec(request, image, layout, machine="x86_64"):
    """The config.json document (a dict) for a friendly run on `machine` (as
    os.uname() names it: the default seccomp profile depends on it)."""
    spec = default_spec()
    spec["annotations"] = annotations(request)
    process = spec["process"]
    process["terminal"] = request.tty
    process["args"] = process_args(request, image)
    if request.init and layout.init_binary:
        process["args"] = [INIT_PATH, "--"] + process["args"]
    elif request.init:                  # no catatonit or tini: handcar's init stays PID 1
        spec["annotations"]["handcar.init"] = "builtin"
    if layout.mount_program:
        spec["annotations"][MOUNT_PROGRAM_ANNOTATION] = layout.mount_program
    process["env"] = _environment(request, image, layout)
    process["cwd"] = request.workdir or (layout.cwd if layout.cwd else
                                         (image.workdir if image and image.workdir else "/"))
    uid, gid, extra_gids = request.user
    process["user"] = {"uid": uid, "gid": gid}
    if extra_gids:
        process["user"]["additionalGids"] = list(extra_gids)
    process["capabilities"] = _capabilities(request, uid)
    process["noNewPrivileges"] = request.no_new_privileges
    del process["rlimits"]                        # keep the caller's limits, as podman does
    spec["root"] = {"path": layout.rootfs, "readonly": request.read_only or bool(layout.cwd)}
    spec["hostname"] = request.hostname or (None if layout.cwd else request.name)
    if spec["hostname"] is None:
        del spec["hostname"]
    spec["mounts"] = _mounts(request, layout, spec["mounts"])
    linux = spec["linux"]
    linux["namespaces"] = _namespaces(request, layout)
    if layout.uid_mappings:
        linux["uidMappings"] = [dict(m) for m in layout.uid_mappings]
        linux["gidMappings"] = [dict(m) for m in layout.gid_mappings]
    linux["resources"] = _resources(request)
    if not linux["resources"]:
        del linux["resources"]
    if request.seccomp == "default":
        from .profiles import default_seccomp
        linux["seccomp"] = default_seccomp(
            machine, process["capabilities"]["bounding"]).to_json()
    elif request.seccomp is not None:
        linux["seccomp"] = request.seccomp
    return spec


def annotations(request):
    items = {"handcar.image": request.image or ""}
    if request.remove:
        items["handcar.rm"] = "true"
    if request.stop_signal:
        items["handcar.stop-signal"] = request.stop_signal
    network = request.network or ""
    if request.networks:
        items["handcar.networks"] = ",".join(request.networks)
        if request.network_aliases:
            items["handcar.network-aliases"] = ",".join(request.network_aliases)
        if request.ip:
            items["handcar.ip"] = request.ip
    elif network.partition(":")[0] == "slirp4netns":
        items["handcar.network"] = network
    if request.ports:
        items["handcar.ports"] = ",".join(request.ports)
    return items


def _environment(request, image, layout):
    env = list(image.env) if image else [f"PATH={DEFAULT_PATH}"]
    if env_value(env, "PATH") is None:
        env.append(f"PATH={DEFAULT_PATH}")
    if request.tty:
        env.append("TERM=xterm")
    if layout.home:
        env.append(f"HOME={layout.home}")
    env.append("container=handcar")
    for item in request.env:
        key = item.split("=", 1)[0]
        env = [e for e in env if e.split("=", 1)[0] != key] + [item]
    return env


def _capabilities(request, uid):
    caps = set(DEFAULT_CAPS)
    for name in request.cap_drop:
        caps = set() if _cap_name(name) == "CAP_ALL" else caps - {_cap_name(name)}
    for name in request.cap_add:
        if _cap_name(name) == "CAP_ALL":
            from .linux import CAPABILITIES
            caps |= set(CAPABILITIES)
        else:
            caps.add(_cap_name(name))
    names = sorted(caps)
    effective = names if uid == 0 else []
    return {"bounding": names, "effective": effective, "permitted": effective,
            "inheritable": [], "ambient": []}


def _cap_name(name):
    from .linux import CAPABILITIES
    full = name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()
    if full != "CAP_ALL" and full not in CAPABILITIES:
        raise RunError(f"unknown capability {name!r}")
    return full


def _mounts(request, layout, defaults):
    mounts = []
    if layout.overlay:
        lower, upper, work = layout.overlay
        # userxattr: overlayfs's own xattrs in the user.* namespace, which is what it can
        # use in a user namespace (and how the image store's layers are written)
        mounts.append({"destination": "/", "type": "overlay", "source": "overlay",
                       "options": [f"lowerdir={lower}", f"upperdir={upper}",
                                   f"workdir={work}", "userxattr"]})
    for path in layout.host_dirs:
        mounts.append({"destination": path, "type": "bind", "source": path,
                       "options": ["rbind", "ro", "nosuid", "nodev"]})
    mounts += [_without_unmapped_gid(m, layout.gid_mappings) for m in defaults]
    if layout.cwd is not None:
        mounts.append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "mode=1777"]})
        if layout.home:
            mounts.append({"destination": layout.home, "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "mode=700",
                                       f"uid={request.user[0]}", f"gid={request.user[1]}"]})
        mounts.append({"destination": layout.cwd, "type": "bind", "source": layout.cwd,
                       "options": ["rbind", "rw"]})
    elif request.read_only:
        for path in ("/tmp", "/var/tmp", "/run"):
            mounts.append({"destination": path, "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "mode=1777"]})
    for destination, source in sorted(layout.etc_files.items()):
        mounts.append({"destination": destination, "type": "bind", "source": source,
                       "options": ["bind"]})
    if layout.init_binary:
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": layout.init_binary,
                       "options": ["bind", "ro"]})
    mounts += [parse_tmpfs(t) for t in request.tmpfs]
    mounts += list(request.volumes)
    return mounts


def _without_unmapped_gid(mount, gid_mappings):
    """devpts's gid=5 (tty) only where gid 5 is mapped (without subordinate ids it is not,
    and the kernel refuses the mount), as `runc spec --rootless` leaves it out."""
    if gid_mappings is None or any(m["containerID"] <= 5 < m["containerID"] + m["size"]
                                   for m in gid_mappings):
        return mount
    return dict(mount, options=[o for o in mount.get("options", ()) if o != "gid=5"])


def _namespaces(request, layout):
    kinds = ["pid", "ipc", "uts", "mount", "user", "cgroup"]
    if request.networks:                  # handcar networks: a namespace of its own
        return [{"type": k} for k in kinds + ["network"]]
    network = request.network or ("host" if layout.cwd else "none")
    kind = network_kind(network)
    if kind == "ns":
        return [{"type": k} for k in kinds] + [{"type": "network", "path": network[3:]}]
    if kind != "host":
        kinds.append("network")
    return [{"type": k} for k in kinds]


def _resources(request):
    resources = {}
    if request.memory is not None:
        resources["memory"] = {"limit": request.memory}
    if request.cpus is not None:
        period = 100000
        resources["cpu"] = {"quota": int(request.cpus * period), "period": period}
    if request.pids_limit is not None:
        resources["pids"] = {"limit": request.pids_limit}
    return resources
