"""Every verb and flag of the command line, declared once.

click builds the full command line from these declarations (cli.py: help, usage errors,
completion). Importing click costs more than runc takes for a whole `create`, so a plain
command line, which is what conmon, containerd and scripts send, is parsed here from the
same declarations without it (`parse`); anything unusual (help, a mistake, an unknown
flag) goes to click, which then explains. Both call the same functions in commands.py.
"""

class Opt:
    """A flag: its names ("-b", "--bundle"), the parameter it fills in the verb's function
    (dest), its kind (flag | value | multiple), its type (str or int), default, help,
    metavar, allowed values (choices), minimum (for int), and whether help hides it.
    (Plain classes, not records: a verb's start builds every declaration, ~150 of them.)"""

    __slots__ = ("names", "dest", "kind", "type", "default", "help", "metavar", "choices",
                 "minimum", "hidden")

    def __init__(self, names, dest, kind="flag", type=str, default=None, help="",
                 metavar=None, choices=None, minimum=None, hidden=False):
        self.names, self.dest, self.kind, self.type = names, dest, kind, type
        self.default, self.help, self.metavar = default, help, metavar
        self.choices, self.minimum, self.hidden = choices, minimum, hidden


class Arg:
    """An argument: the parameter it fills, its metavar, whether it is required, whether
    it takes the rest (variadic)."""

    __slots__ = ("dest", "metavar", "required", "variadic")

    def __init__(self, dest, metavar="ID", required=True, variadic=False):
        self.dest, self.metavar, self.required, self.variadic = dest, metavar, required, variadic


class Verb:
    """A verb: its name, help, options and arguments; `interspersed` False: all after the
    first argument is passed on; `marks_double_dash`: a "--" ending the options reaches
    the verb (DASHES)."""

    __slots__ = ("name", "help", "options", "args", "interspersed", "marks_double_dash")

    def __init__(self, name, help="", options=(), args=(), interspersed=True,
                 marks_double_dash=False):
        self.name, self.help, self.options, self.args = name, help, options, args
        self.interspersed, self.marks_double_dash = interspersed, marks_double_dash


ID = Arg("container_id")

GLOBAL_OPTIONS = (
    Opt(("--root",), "root", "value", metavar="DIR",
        help="State directory (default: $XDG_RUNTIME_DIR/handcar, else /tmp/handcar-UID)."),
    Opt(("--log",), "log_path", "value", metavar="FILE",
        help="Also write log messages to FILE (crun's file:FILE too)."),
    Opt(("--log-format",), "log_format", "value", default="text", choices=("text", "json"),
        help="Format of the --log file."),
    Opt(("--log-level",), "log_level", "value", default="warning",
        choices=("error", "warning", "debug"),
        help="crun's: error leaves warnings out, debug is --debug."),
    Opt(("--debug",), "debug", help="Log debug messages."),
    Opt(("--systemd-cgroup",), "systemd_cgroup",
        help="Ask systemd (over D-Bus) for a transient scope as the container's cgroup; "
             "cgroupsPath is slice:prefix:name."),
    Opt(("--rootless",), "rootless", "value", default="auto", choices=("true", "false", "auto"),
        help="Accepted for runc compatibility: handcar is always rootless-capable."),
    Opt(("--cgroup-manager",), "cgroup_manager", "value", default="cgroupfs",
        choices=("cgroupfs", "systemd", "disabled"),
        help="crun's spelling: systemd is --systemd-cgroup; disabled is accepted."),
)

CREATE_OPTIONS = (
    Opt(("-b", "--bundle"), "bundle", "value", metavar="DIR",
        help="Bundle directory (holds config.json); default: the current directory."),
    Opt(("-f", "--config"), "config", "value", metavar="FILE",
        help="crun's: the config file to use instead of the bundle's config.json (the "
             "bundle is still -b, or the current directory)."),
    Opt(("--pid-file",), "pid_file", "value", metavar="FILE", help="Write the init's pid to FILE."),
    Opt(("--console-socket",), "console_socket", "value", metavar="PATH",
        help="Unix socket that receives the pty master (process.terminal)."),
    Opt(("--no-pivot",), "no_pivot", help="Use chroot instead of pivot_root."),
    Opt(("--no-new-keyring",), "no_new_keyring", help="Keep the caller's session keyring."),
    Opt(("--preserve-fds",), "preserve_fds", "value", type=int, default=0, minimum=0,
        metavar="N", help="Pass N extra fds (3 to 3+N-1) to the process."),
)

# The friendly run mode (docker's and podman's flags); see commands.run for the rule.
FRIENDLY_RUN_OPTIONS = (
    Opt(("--name",), "name", "value", metavar="NAME", help="The container's name (its id)."),
    Opt(("--rm",), "rm", help="Remove the container when it exits."),
    Opt(("-i", "--interactive"), "interactive", help="Keep stdin open to the container."),
    Opt(("-t", "--tty"), "tty", help="Give the container a pty."),
    Opt(("-e", "--env"), "env", "multiple", metavar="KEY[=VALUE]",
        help="Set a variable (KEY alone: the host's value)."),
    Opt(("--env-file",), "env_file", "multiple", metavar="FILE",
        help="Read KEY=VALUE lines from FILE."),
    Opt(("-w", "--workdir"), "workdir", "value", metavar="DIR", help="Working directory."),
    Opt(("-u", "--user"), "user", "value", metavar="USER[:GROUP]",
        help="Run as this user (a name or a number)."),
    Opt(("-v", "--volume"), "volume", "multiple", metavar="SRC:DST[:ro|rw]",
        help="Bind a host path into the container."),
    Opt(("--tmpfs",), "tmpfs", "multiple", metavar="DST[:OPTIONS]", help="Mount a tmpfs."),
    Opt(("--read-only",), "read_only", help="Make the container's root read-only."),
    Opt(("-p", "--publish"), "publish", "multiple", metavar="[IP:]HOSTPORT:PORT[/PROTO]",
        help="Forward a host port to the container (slirp4netns; HOSTIP: 0.0.0.0)."),
    Opt(("-P", "--publish-all"), "publish_all",
        help="Publish the image's exposed ports on free host ports."),
    Opt(("--network",), "network", "value", metavar="MODE|NAME",
        help="slirp4netns[:OPTS] (default for images), none, host (default for --), "
             "ns:PATH, or handcar networks' names (NAME[,NAME...]: handcar network)."),
    Opt(("--network-alias",), "network_alias", "multiple", metavar="ALIAS",
        help="Another name of the container on its handcar networks."),
    Opt(("--ip",), "ip", "value", metavar="A.B.C.D",
        help="The container's address on its (one) handcar network."),
    Opt(("--hostname",), "hostname", "value", metavar="NAME", help="The container's hostname."),
    Opt(("-m", "--memory"), "memory", "value", metavar="SIZE", help="Memory limit (64m, 1g)."),
    Opt(("--cpus",), "cpus", "value", metavar="N", help="CPU limit (1.5 = one and a half)."),
    Opt(("--pids-limit",), "pids_limit", "value", type=int, minimum=1, metavar="N",
        help="Maximum number of processes."),
    Opt(("--init",), "init", help="Run an init as PID 1 that reaps zombies and passes "
                                  "signals on (catatonit or tini)."),
    Opt(("--cap-add",), "cap_add", "multiple", metavar="CAP", help="Add a capability."),
    Opt(("--cap-drop",), "cap_drop", "multiple", metavar="CAP",
        help="Drop a capability (ALL: every one)."),
    Opt(("--security-opt",), "security_opt", "multiple", metavar="OPT",
        help="seccomp=unconfined|FILE, no-new-privileges."),
    Opt(("--entrypoint",), "entrypoint", "value", metavar="PROGRAM",
        help="Run PROGRAM instead of the image's entrypoint."),
    # images (issue 16)
    Opt(("--pull",), "pull", "value", default="missing",
        choices=("missing", "always", "never", "newer"),
        help="Pull the image: when missing from the store, always, never, or when the "
             "registry has a newer one."),
    Opt(("--platform",), "platform", "value", metavar="OS/ARCH[/VARIANT]",
        help="Pull the image for this platform (default: the host's)."),
    Opt(("--arch",), "arch", "value", metavar="ARCH",
        help="Pull the image for this architecture (default: the host's)."),
)
RUNC_RUN_ONLY = ("bundle", "config", "pid_file", "console_socket", "no_pivot", "no_new_keyring",
                 "preserve_fds", "keep", "no_subreaper")
DASHES = "\0--"   # stands for a "--" that ended the options (argv cannot hold a NUL)
RUN_HELP = """Run a container.

runc mode: `run [-b BUNDLE] ID` creates and starts the bundle's container (without -d,
waits and returns its exit status). Friendly mode: `run [OPTIONS] IMAGE [CMD]...` runs an
image (oci:DIR[:TAG], docker-archive:FILE[:REPO[:TAG]], a pulled image's name, or a
rootfs directory), and `run [OPTIONS] -- CMD...` runs CMD in a sandbox of the host's own
read-only system with the current directory writable.

The rule: runc mode when --bundle or another runc-only flag is given, or when the only
argument is an ID and ./config.json exists; friendly mode otherwise. A lone argument that
could be either (./config.json exists and the argument is a directory or an oci: or
docker-archive: image) is refused: add -b . for runc mode or --rm for friendly mode."""

NAMES = Arg("names", "NAME...", variadic=True)

PULL_OPTIONS = (
    Opt(("-q", "--quiet"), "quiet", help="Print only the image ID (no progress)."),
    Opt(("--platform",), "platform", "value", metavar="OS/ARCH[/VARIANT]",
        help="The platform to pull (default: the host's)."),
    Opt(("--arch",), "arch", "value", metavar="ARCH",
        help="The architecture to pull (default: the host's)."),
)
FORMAT = Opt(("-f", "--format"), "fmt", "value", default="table", choices=("table", "json"),
             help="Output format.")

VERBS = {verb.name: verb for verb in (
    Verb("create", "Create a container; its process waits for `start`.", CREATE_OPTIONS, (ID,)),
    Verb("start", "Start the process of a created container.", (), (ID,)),
    Verb("run", RUN_HELP, CREATE_OPTIONS + (
        Opt(("-d", "--detach"), "detach", help="Do not wait for the container."),
        Opt(("--keep",), "keep", help="runc mode: keep the container's state after it exits."),
        Opt(("--no-subreaper",), "no_subreaper", hidden=True,
            help="Accepted for runc compatibility."),
    ) + FRIENDLY_RUN_OPTIONS, (Arg("args", "[ID | IMAGE [CMD]... | -- CMD...]",
                                   required=False, variadic=True),),
        interspersed=False, marks_double_dash=True),
    Verb("exec", "Run a process in a running container; returns its exit status.", (
        Opt(("-t", "--tty"), "tty", help="Give the process a pty."),
        Opt(("-d", "--detach"), "detach", help="Do not wait for the process."),
        Opt(("--pid-file",), "pid_file", "value", metavar="FILE",
            help="Write the process's pid to FILE."),
        Opt(("--console-socket",), "console_socket", "value", metavar="PATH",
            help="Unix socket that receives the pty master (with -t)."),
        Opt(("--preserve-fds",), "preserve_fds", "value", type=int, default=0, minimum=0,
            metavar="N", help="Pass N extra fds (3 to 3+N-1) to the process."),
        Opt(("-p", "--process"), "process_file", "value", metavar="FILE",
            help="A process.json to run, instead of CMD and the flags below."),
        Opt(("-e", "--env"), "env", "multiple", metavar="KEY=VALUE",
            help="Add to the environment."),
        Opt(("-u", "--user"), "user", "value", metavar="UID[:GID]", help="Run as this user."),
        Opt(("-g", "--additional-gids"), "additional_gids", "multiple", type=int,
            metavar="GID", help="An additional group."),
        Opt(("--cwd",), "cwd", "value", metavar="DIR", help="Working directory."),
        Opt(("-c", "--cap"), "cap", "multiple", metavar="CAP", help="Add a capability."),
        Opt(("--no-new-privs",), "no_new_privs", help="Set no_new_privs."),
        Opt(("--ignore-paused",), "ignore_paused", help="Exec even into a paused container."),
        Opt(("--cgroup",), "cgroup", "value", metavar="PATH",
            help="crun's: run the process in this existing sub-cgroup of the container's."),
    ), (ID, Arg("command", "[CMD]...", required=False, variadic=True)), interspersed=False),
    Verb("state", "Print the OCI state of a container as JSON.", (), (ID,)),
    Verb("kill", "Send a signal (default SIGTERM; a name, with or without SIG, or a number).", (
        Opt(("-a", "--all"), "all_processes",
            help="Signal every process of the container, not only its init."),
    ), (ID, Arg("signal_name", "[SIGNAL]", required=False))),
    Verb("delete", "Delete a container and everything it holds.", (
        Opt(("-f", "--force"), "force", help="Kill the container first if it runs."),
        Opt(("-r", "--regex"), "regex",
            help="crun's: ID is a regular expression; delete every container it matches."),
    ), (ID,)),
    Verb("list", "List containers.", (
        FORMAT, Opt(("-q", "--quiet"), "quiet", help="Print only the ids."),
    )),
    Verb("ps", "List the processes of a container (`ps` output, or their pids as JSON); "
         "without an ID, list the running containers (-a: all), as docker ps does.",
         (FORMAT, Opt(("-a", "--all"), "show_all", help="Without an ID: stopped ones too.")),
         (Arg("container_id", "[ID]", required=False),
          Arg("ps_args", "[PS OPTIONS]...", required=False, variadic=True)),
         interspersed=False),
    Verb("logs", "Print the output of a detached container (-f: and follow it).", (
        Opt(("-f", "--follow"), "follow", help="Keep printing until the container stops."),
    ), (Arg("name", "NAME"),)),
    Verb("stop", "Stop containers: their stop signal, then SIGKILL after the timeout.", (
        Opt(("-t", "--time"), "timeout", "value", type=int, default=10, minimum=0,
            metavar="SECONDS", help="Seconds to wait before SIGKILL."),
    ), (NAMES,)),
    Verb("rm", "Remove containers and their files (-f: running ones too).", (
        Opt(("-f", "--force"), "force", help="Kill running containers first."),
    ), (NAMES,)),
    # --- images (issue 16): pull, images, image inspect/prune, rmi, login, logout
    Verb("pull", "Pull an image into the store and print its ID: a registry's (NAME[:TAG]"
         "[@DIGEST], docker://NAME; short names as registries.conf resolves them), or "
         "oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REPO[:TAG]].",
         PULL_OPTIONS, (Arg("source", "IMAGE"),)),
    Verb("images", "List the images in the store.", (
        Opt(("-q", "--quiet"), "quiet", help="Print only the ids."),
        Opt(("-a", "--all"), "show_all", help="Images without a name too."),
    )),
    Verb("image inspect", "Print podman's JSON description of images.", (
        Opt(("--platform",), "platform", "value", metavar="OS/ARCH[/VARIANT]",
            help="Describe the registry's image for this platform (not pulled)."),
        Opt(("--arch",), "arch", "value", metavar="ARCH",
            help="Describe the registry's image for this architecture (not pulled)."),
    ), (Arg("names", "IMAGE...", variadic=True),)),
    Verb("image prune", "Remove images without a name that no container uses.", (
        Opt(("-f", "--force"), "force", help="Accepted (there is no question asked)."),
    )),
    Verb("rmi", "Remove images from the store, and the layers no other image uses.", (
        Opt(("-f", "--force"), "force", help="Remove the containers using them too."),
    ), (Arg("names", "IMAGE...", variadic=True),)),
    Verb("login", "Log in to a registry: check the credentials with it, then keep them in "
         "auth.json (REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json), or "
         "through the credential helper it names (credHelpers, credsStore).", (
             Opt(("-u", "--username"), "username", "value", metavar="USER",
                 help="The user name (asked for on a terminal when left out)."),
             Opt(("--password-stdin",), "password_stdin",
                 help="Read the password from stdin (never from the command line)."),
             Opt(("--authfile",), "authfile", "value", metavar="FILE",
                 help="The auth file to write."),
             Opt(("--tls-verify",), "tls_verify", "value", default="true",
                 choices=("true", "false"), help="Verify the registry's certificate."),
         ), (Arg("registry", "REGISTRY"),)),
    Verb("logout", "Remove a registry's credentials from auth.json and its credential "
         "helpers.", (
        Opt(("-a", "--all"), "all_registries", help="Every registry's."),
        Opt(("--authfile",), "authfile", "value", metavar="FILE",
            help="The auth file to change."),
    ), (Arg("registry", "[REGISTRY]", required=False),)),
    Verb("pause", "Freeze every process of a container (through its cgroup).", (), (ID,)),
    Verb("resume", "Thaw a paused container.", (), (ID,)),
    Verb("events", "Print the container's stats (and OOM events) as JSON lines, as runc does.", (
        Opt(("--stats",), "stats_only", help="Print the stats once and exit."),
        Opt(("--interval",), "interval", "value", default="5s", metavar="DURATION",
            help="How often to print stats."),
    ), (ID,)),
    Verb("update", "Change a running container's resource limits.", (
        Opt(("-r", "--resources"), "resources_file", "value", metavar="FILE|-",
            help="A linux.resources JSON document ('-' for stdin)."),
        Opt(("--memory",), "memory", "value", help="Memory limit (512m, 1g, -1 for none)."),
        Opt(("--memory-reservation",), "memory_reservation", "value",
            help="Memory soft limit (memory.low)."),
        Opt(("--memory-swap",), "memory_swap", "value", help="Memory+swap limit."),
        Opt(("--cpu-share",), "cpu_share", "value", type=int,
            help="CPU shares (converted to cpu.weight)."),
        Opt(("--cpu-quota",), "cpu_quota", "value", type=int,
            help="CPU quota per period, in microseconds."),
        Opt(("--cpu-period",), "cpu_period", "value", type=int,
            help="CPU period, in microseconds."),
        Opt(("--cpuset-cpus",), "cpuset_cpus", "value", help="CPUs to run on (0-3, 0,1)."),
        Opt(("--cpuset-mems",), "cpuset_mems", "value", help="Memory nodes to use."),
        Opt(("--pids-limit",), "pids_limit", "value", type=int,
            help="Maximum number of processes."),
        Opt(("--blkio-weight",), "blkio_weight", "value", type=int,
            help="Block IO weight (10-1000)."),
    ), (ID,)),
    Verb("spec", "Write a default config.json into the bundle directory.", (
        Opt(("-b", "--bundle"), "bundle", "value", default=".", metavar="DIR",
            help="Where to write config.json."),
        Opt(("--rootless",), "rootless", help="A spec for running without root."),
    )),
    Verb("features", "Print what this runtime supports on this host (the OCI features document)."),
    # --- debug (issue 19) ---
    Verb("debug", """Debug a running container with tools it does not have.

Runs CMD (default: a shell of the tools) in all of the container's namespaces and its
cgroup, as its user (-u to change), with a tools tree mounted at --mount-at and its bin
directories added to PATH after the container's own. The tools: --tools DIR (static
programs, or a tree with a bin/), --image IMAGE (from handcar's store; its dynamically
linked programs run with its own loader and libraries), or by default the host's static
busybox. The container is not changed: the tools are mounted in the session's own view
of it only (--shared: in the container's, on an empty directory it has, until the
session ends), and every process of the session ends with it. Capabilities, seccomp and
noNewPrivileges are the container's, as for exec, unless --privileged-debug.""", (
        Opt(("--tools",), "tools", "value", metavar="DIR",
            help="The tools: a directory of static programs, or a tree with a bin/."),
        Opt(("--image",), "image", "value", metavar="IMAGE",
            help="The tools: an image of handcar's store (a name, oci:DIR or "
                 "docker-archive:FILE), mounted read-only."),
        Opt(("--mount-at",), "mount_at", "value", default="/.handcar-debug", metavar="PATH",
            help="Where the session sees the tools (a path the container does not use)."),
        Opt(("--shared",), "shared",
            help="Mount the tools in the container's own mount namespace (visible to its "
                 "processes until the session ends); --mount-at must name an empty "
                 "directory it has."),
        Opt(("--target-root",), "target_root",
            help="Side-car: a root of the tools, the container's root at /target, its pid "
                 "namespace shared; its own root stays untouched even in the session."),
        Opt(("--privileged-debug",), "privileged_debug",
            help="Give the process every capability of the container's user namespace and "
                 "no seccomp filter (for strace, gdb)."),
        Opt(("-t", "--tty"), "tty", help="Give the process a pty."),
        Opt(("-i", "--interactive"), "interactive",
            help="Keep stdin open (it always is, as for exec: for docker's -it)."),
        Opt(("-u", "--user"), "user", "value", metavar="UID[:GID]", help="Run as this user."),
        Opt(("-e", "--env"), "env", "multiple", metavar="KEY=VALUE",
            help="Add to the environment."),
    ), (ID, Arg("command", "[CMD]...", required=False, variadic=True)), interspersed=False),
    # --- end of debug ---
    # --- handcar network: container networks (rootless/network/) ---
    Verb("network create", "Define a container network (a bridge of its own, names "
         "resolved on it, the way out through one pasta or slirp4netns); prints its name.", (
             Opt(("--subnet",), "subnet", "value", metavar="CIDR",
                 help="Its IPv4 subnet (default: a free /24 of 10.89.0.0/16)."),
             Opt(("--internal",), "internal",
                 help="No way out: its containers reach each other only."),
             Opt(("--keep",), "keep",
                 help="Start it now and keep it up (namespace, bridge, DNS, pasta or "
                      "slirp4netns) without containers, until network rm."),
         ), (Arg("name", "NAME"),)),
    Verb("network ls", "List the networks.", (
        Opt(("-q", "--quiet"), "quiet", help="Print only the names."),
    )),
    Verb("network inspect", "Print networks as JSON, with the containers on them.", (),
         (Arg("names", "NAME...", variadic=True),)),
    Verb("network rm", "Remove networks (-f: and the containers on them).", (
        Opt(("-f", "--force"), "force", help="Remove the containers on them too."),
    ), (Arg("names", "NAME...", variadic=True),)),
    Verb("network prune", "Remove every network no container uses.", (
        Opt(("-f", "--force"), "force", help="Accepted for podman compatibility (handcar "
                                             "never asks)."),
    )),
    Verb("network connect", "Connect a running container (started on a handcar network) "
         "to another network.", (
             Opt(("--alias",), "aliases", "multiple", metavar="ALIAS",
                 help="Another name of the container on this network."),
             Opt(("--ip",), "ip", "value", metavar="A.B.C.D",
                 help="Its address on this network."),
         ), (Arg("network", "NETWORK"), Arg("container", "CONTAINER"))),
    Verb("network disconnect", "Disconnect a running container from a network.", (
        Opt(("-f", "--force"), "force", help="Accepted for podman compatibility."),
    ), (Arg("network", "NETWORK"), Arg("container", "CONTAINER"))),
)}
# podman's other names of the image verbs: "image ls" is "images", and so on
for _alias, _verb in (("image ls", "images"), ("image list", "images"),
                      ("image pull", "pull"), ("image rm", "rmi")):
    VERBS[_alias] = Verb(_alias, VERBS[_verb].help, VERBS[_verb].options, VERBS[_verb].args)
# verbs named "GROUP VERB" are a group's ("handcar network create"): the group's help
GROUPS = {"network": "Container networks: create, ls, inspect, rm, prune, connect, "
                     "disconnect.",
          "image": "Images: inspect, prune (and ls, pull, rm: images, pull, rmi)."}


# --- the fast path ----------------------------------------------------------------------

class Unusual(Exception):
    """Not a plain command line: click should handle (and explain) it."""


def parse(argv):
    """(global values, Verb, verb values) for a plain command line, or None."""
    try:
        global_values, rest = _parse(argv, GLOBAL_OPTIONS, (), stop_at_argument=True)
        if len(rest) > 1 and rest[0] in GROUPS:          # "network create ..."
            rest = [f"{rest[0]} {rest[1]}"] + rest[2:]
        if not rest or rest[0] not in VERBS:
            return None
        verb = VERBS[rest[0]]
        tokens = mark_double_dash(rest[1:], verb.options) if verb.marks_double_dash \
            else rest[1:]
        values, _ = _parse(tokens, verb.options, verb.args,
                                 stop_at_argument=not verb.interspersed)
        return global_values, verb, values
    except Unusual:
        return None


def _parse(tokens, options, args, stop_at_argument):
    by_name = {name: opt for opt in options for name in opt.names}
    values = {opt.dest: (() if opt.kind == "multiple" else
                         False if opt.kind == "flag" else opt.default) for opt in options}
    positional = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token == "--" and not (positional and stop_at_argument):
            positional += tokens[i:]
            break
        if not token.startswith("-") or token == "-" or (positional and stop_at_argument):
            positional.append(token)
            if stop_at_argument and not args:       # the global options end at the verb
                return values, positional + tokens[i:]
            continue
        name, equals, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        opt = by_name.get(name)
        if opt is None:
            raise Unusual(token)
        if opt.kind == "flag":
            if equals:
                raise Unusual(token)
            values[opt.dest] = True
            continue
        if not equals:
            if i >= len(tokens):
                raise Unusual(token)
            inline = tokens[i]
            i += 1
        value = _convert(opt, inline)
        values[opt.dest] = values[opt.dest] + (value,) if opt.kind == "multiple" else value
    for arg in args:
        if arg.variadic:
            if arg.required and not positional:
                raise Unusual(arg.dest)
            values[arg.dest], positional = tuple(positional), []
        elif positional:
            values[arg.dest] = positional.pop(0)
        elif arg.required:
            raise Unusual(arg.dest)
        else:
            values[arg.dest] = None
    if positional:
        raise Unusual(positional[0])
    return values, []


def mark_double_dash(tokens, options):
    """The tokens with a "--" that ends the options replaced by DASHES, so that the verb
    can tell `run -- CMD` from `run IMAGE CMD` (both parsers drop a plain "--")."""
    takes_value = {name for opt in options if opt.kind != "flag" for name in opt.names}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--":
            return tokens[:i] + [DASHES] + tokens[i + 1:]
        if not token.startswith("-") or token == "-":
            break                                  # the first argument: options are over
        i += 2 if _value_follows(token, takes_value) else 1
    return list(tokens)


def _value_follows(token, takes_value):
    """Whether the token after this option is its value: `-e`, `--env`, and clustered
    short flags ending with one that takes a value (`-ie` of `-ie FOO=1`)."""
    if token.startswith("--") or len(token) == 2:
        return token in takes_value
    for position, letter in enumerate(token[1:], 1):
        if "-" + letter in takes_value:
            return position == len(token) - 1      # else the rest of the token is its value
    return False


def _convert(opt, text):
    if opt.type is int:
        try:
            value = int(text)
        except ValueError:
            raise Unusual(text) from None
        if opt.minimum is not None and value < opt.minimum:
            raise Unusual(text)
        return value
    if opt.choices and text not in opt.choices:
        raise Unusual(text)
    return text


# --- which function does each verb: an explicit table (as pip's commands_dict), so that a
# verb loads only its own module. The functions take the global flags (commands.Globals)
# and the verb's values.

HANDLERS = {
    # runc's verbs (and crun's), runc's exit statuses
    "create": ("rootless.cli.commands", "create"),
    "start": ("rootless.cli.commands", "start"),
    "run": ("rootless.cli.commands", "run"),           # runc's run, or the friendly one
    "exec": ("rootless.cli.commands", "exec_"),
    "state": ("rootless.cli.commands", "state"),
    "kill": ("rootless.cli.commands", "kill"),
    "delete": ("rootless.cli.commands", "delete"),
    "list": ("rootless.cli.commands", "list_"),
    "ps": ("rootless.cli.commands", "ps"),
    "pause": ("rootless.cli.commands", "pause"),
    "resume": ("rootless.cli.commands", "resume"),
    "events": ("rootless.cli.commands", "events"),
    "update": ("rootless.cli.commands", "update"),
    "spec": ("rootless.cli.commands", "spec"),
    "features": ("rootless.cli.commands", "features"),
    "debug": ("rootless.cli.commands", "debug"),       # issue 19
    # the friendly verbs, docker's exit statuses
    "logs": ("rootless.cli.friendly", "logs"),
    "stop": ("rootless.cli.friendly", "stop"),
    "rm": ("rootless.cli.friendly", "rm"),
    "pull": ("rootless.cli.friendly", "pull"),
    "images": ("rootless.cli.friendly", "images"),
    "rmi": ("rootless.cli.friendly", "rmi"),
    "image inspect": ("rootless.cli.friendly", "image_inspect"),
    "image prune": ("rootless.cli.friendly", "image_prune"),
    "image ls": ("rootless.cli.friendly", "images"),
    "image list": ("rootless.cli.friendly", "images"),
    "image pull": ("rootless.cli.friendly", "pull"),
    "image rm": ("rootless.cli.friendly", "rmi"),
    "login": ("rootless.cli.friendly", "login"),
    "logout": ("rootless.cli.friendly", "logout"),
    # a group's verbs ("handcar network create"), podman's exit statuses
    "network create": ("rootless.cli.friendly", "network_create"),
    "network ls": ("rootless.cli.friendly", "network_ls"),
    "network inspect": ("rootless.cli.friendly", "network_inspect"),
    "network rm": ("rootless.cli.friendly", "network_rm"),
    "network prune": ("rootless.cli.friendly", "network_prune"),
    "network connect": ("rootless.cli.friendly", "network_connect"),
    "network disconnect": ("rootless.cli.friendly", "network_disconnect"),
}


def handler(verb_name):
    """The function for a verb."""
    module_name, function = HANDLERS[verb_name]
    return getattr(__import__(module_name, fromlist=[function]), function)
