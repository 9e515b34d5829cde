"""Every verb and flag of the command line, declared once.

click builds the full command line from these declarations (cli.py: help, usage errors,
completion). Importing click costs more than runc takes for a whole `create`, so a plain
command line, which is what conmon, containerd and scripts send, is parsed here from the
same declarations without it (`parse`); anything unusual (help, a mistake, an unknown
flag) goes to click, which then explains. Both call the same functions in commands.py.
"""

from oci.record import Record


class Opt(Record):
    FIELDS = {
        "names": (),          # ("-b", "--bundle")
        "dest": None,         # the parameter name in commands.py
        "kind": "flag",       # flag | value | multiple
        "type": str,          # str or int
        "default": None,
        "help": "",
        "metavar": None,
        "choices": None,      # allowed values
        "minimum": None,      # for int
        "hidden": False,
    }


class Arg(Record):
    FIELDS = {"dest": None, "metavar": "ID", "required": True, "variadic": False}


class Verb(Record):
    FIELDS = {
        "name": None,
        "help": "",
        "options": (),
        "args": (),
        "interspersed": True,   # options may follow arguments (False: all is passed on)
    }


ID = Arg("container_id")

GLOBAL_OPTIONS = (
    Opt(("--root",), "root", "value", metavar="DIR",
        help="State directory (default: $XDG_RUNTIME_DIR/handcar, else /tmp/handcar-UID)."),
    Opt(("--log",), "log_path", "value", metavar="FILE", help="Also write log messages to FILE."),
    Opt(("--log-format",), "log_format", "value", default="text", choices=("text", "json"),
        help="Format of the --log file."),
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
    Opt(("-b", "--bundle"), "bundle", "value", default=".", metavar="DIR",
        help="Bundle directory (holds config.json)."),
    Opt(("--pid-file",), "pid_file", "value", metavar="FILE", help="Write the init's pid to FILE."),
    Opt(("--console-socket",), "console_socket", "value", metavar="PATH",
        help="Unix socket that receives the pty master (process.terminal)."),
    Opt(("--no-pivot",), "no_pivot", help="Use chroot instead of pivot_root."),
    Opt(("--no-new-keyring",), "no_new_keyring", help="Keep the caller's session keyring."),
    Opt(("--preserve-fds",), "preserve_fds", "value", type=int, default=0, minimum=0,
        metavar="N", help="Pass N extra fds (3 to 3+N-1) to the process."),
)

FORMAT = Opt(("-f", "--format"), "fmt", "value", default="table", choices=("table", "json"),
             help="Output format.")

VERBS = {verb.name: verb for verb in (
    Verb("create", "Create a container; its process waits for `start`.", CREATE_OPTIONS, (ID,)),
    Verb("start", "Start the process of a created container.", (), (ID,)),
    Verb("run", "Create and start a container; without -d, wait and return its exit status.",
         CREATE_OPTIONS + (
             Opt(("-d", "--detach"), "detach", help="Do not wait for the container."),
             Opt(("--keep",), "keep", help="Keep the container's state after it exits."),
             Opt(("--no-subreaper",), "no_subreaper", hidden=True,
                 help="Accepted for runc compatibility."),
         ), (ID,)),
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
    ), (ID, Arg("command", "[CMD]...", required=False, variadic=True)), interspersed=False),
    Verb("state", "Print the OCI state of a container as JSON.", (), (ID,)),
    Verb("kill", "Send a signal (default SIGTERM; a name, with or without SIG, or a number).", (
        Opt(("-a", "--all"), "all_processes",
            help="Signal every process of the container, not only its init."),
    ), (ID, Arg("signal_name", "[SIGNAL]", required=False))),
    Verb("delete", "Delete a container and everything it holds.", (
        Opt(("-f", "--force"), "force", help="Kill the container first if it runs."),
    ), (ID,)),
    Verb("list", "List containers.", (
        FORMAT, Opt(("-q", "--quiet"), "quiet", help="Print only the ids."),
    )),
    Verb("ps", "List the processes of a container (`ps` output, or their pids as JSON).",
         (FORMAT,), (ID, Arg("ps_args", "[PS OPTIONS]...", required=False, variadic=True)),
         interspersed=False),
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
)}


# --- the fast path ----------------------------------------------------------------------

class Unusual(Exception):
    """Not a plain command line: click should handle (and explain) it."""


def parse(argv):
    """(global values, Verb, verb values) for a plain command line, or None."""
    try:
        global_values, rest = _parse(argv, GLOBAL_OPTIONS, (), stop_at_argument=True)
        if not rest or rest[0] not in VERBS:
            return None
        verb = VERBS[rest[0]]
        values, _ = _parse(rest[1:], verb.options, verb.args,
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
