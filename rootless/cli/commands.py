"""What each verb does, called with the values of its flags and arguments (declared in
verbs.py) by the fast path or by click alike. Modules a verb needs are imported inside it,
so that each verb pays only for its own."""

import os
import sys

from rootless import log
from rootless.errors import HandcarError, UsageError
from rootless.runtime.store import CREATING, STOPPED


class Globals:
    """The global flags, as every verb sees them."""

    def __init__(self, root=None, log_path=None, log_format="text", debug=False,
                 systemd_cgroup=False, rootless="auto", cgroup_manager="cgroupfs",
                 log_level="warning"):
        log.configure(_log_file(log_path), log_format, debug or log_level == "debug",
                      warnings=log_level != "error")
        self.root = root
        self.systemd = systemd_cgroup or cgroup_manager == "systemd"
        self.cgroups = cgroup_manager != "disabled"     # crun's: podman --cgroups=disabled

    def store(self):
        from rootless.runtime.store import Store
        return Store(self.root)


def _log_file(destination):
    """--log's FILE, or crun's spelling file:FILE; crun's journald: and syslog: have no
    counterpart here."""
    if destination is None or destination.startswith("/") or ":" not in destination:
        return destination
    kind, _, path = destination.partition(":")
    if kind == "file" and path:
        return path
    raise UsageError(f"--log {destination}: handcar writes its log to a file only "
                     "(FILE or file:FILE)")


def _options(g, pid_file, console_socket, no_pivot, no_new_keyring, preserve_fds,
             config=None):
    from rootless.runtime.create import CreateOptions
    return CreateOptions(pid_file=pid_file, console_socket=console_socket, no_pivot=no_pivot,
                         no_new_keyring=no_new_keyring, preserve_fds=preserve_fds,
                         systemd=g.systemd, cgroup=g.cgroups,
                         config=os.path.abspath(config) if config else None)


def create(g, container_id, bundle, **flags):
    """Create a container; its process waits for `start`."""
    from rootless.runtime import create
    record, channel, console = create.create(g.store(), container_id, bundle or ".",
                                                _options(g, **flags))
    channel.close()
    console.close()
    record.unlock()


def start(g, container_id):
    """Start the process of a created container."""
    from rootless.runtime import lifecycle
    lifecycle.start(g.store(), container_id)


def run(g, args, bundle, config, detach, keep, no_subreaper, pid_file, console_socket,
        no_pivot, no_new_keyring, preserve_fds, **friendly_flags):
    """runc's run (create + start, and wait) or the friendly run; see verbs.RUN_HELP."""
    from rootless.cli.verbs import DASHES, FRIENDLY_RUN_OPTIONS, RUNC_RUN_ONLY
    runc_flags = dict(bundle=bundle, config=config, keep=keep, no_subreaper=no_subreaper,
                      pid_file=pid_file, console_socket=console_socket, no_pivot=no_pivot,
                      no_new_keyring=no_new_keyring, preserve_fds=preserve_fds)
    runc_given = [_flag_name(name) for name in RUNC_RUN_ONLY
                  if runc_flags[name] not in (None, False, 0)]
    friendly_given = [_flag_name(o.dest) for o in FRIENDLY_RUN_OPTIONS
                      if friendly_flags[o.dest] not in (None, False, (), o.default)]
    host_sandbox = bool(args) and args[0] == DASHES
    args = [("--" if arg == DASHES else arg) for arg in args[1 if host_sandbox else 0:]]
    if runc_given and (friendly_given or host_sandbox):
        raise UsageError(f"{runc_given[0]} is a runc-mode flag and "
                         f"{friendly_given[0] if friendly_given else '--'} a friendly-mode "
                         "one: use one mode (handcar run --help)")
    friendly = not runc_given and (friendly_given or host_sandbox or len(args) != 1
                                   or not _runc_bundle_here(args[0]))
    if not friendly:
        if len(args) != 1:
            raise UsageError("runc mode takes exactly one container ID")
        from rootless.runtime import create
        return create.run(g.store(), args[0], bundle or ".",
                             _options(g, pid_file, console_socket, no_pivot, no_new_keyring,
                                      preserve_fds, config),
                             detach=detach, keep=keep)
    from rootless.cli import friendly
    return friendly.run(g, args, host_sandbox, detach, friendly_flags)


def _flag_name(dest):
    return "--" + dest.replace("_", "-")


def _runc_bundle_here(argument):
    """True when a lone `run ARGUMENT` means runc's `run ID` (./config.json exists), False
    when it means an image; an argument that could be both is refused."""
    if not os.path.exists("config.json"):
        return False
    if argument.startswith(("oci:", "docker-archive:")) or os.path.isdir(argument):
        raise UsageError(f"{argument!r} could be a container ID for ./config.json or an "
                         "image: add -b . for runc mode, or --rm for friendly mode")
    return True


def _parse_user(text):
    """-u UID[:GID] (numbers, as runc takes them)."""
    uid, _, gid = text.partition(":")
    try:
        return int(uid), int(gid) if gid else None   # None: the process's own gid
    except ValueError:
        raise UsageError(f"{text!r}: expected UID[:GID] as numbers") from None


def exec_(g, container_id, command, process_file, env, user, additional_gids, cwd, cap,
          no_new_privs, tty, detach, pid_file, console_socket, preserve_fds, ignore_paused,
          cgroup=None):
    """Run a process in a running container; returns its exit status."""
    from rootless.runtime import execute
    if process_file:
        if command:
            raise UsageError("give either --process or a command, not both")
        process = execute.load_process_file(process_file)

        def make_process(_container_process):
            return process
    else:
        if not command:
            raise UsageError("missing the command to run (or --process FILE)")
        for item in env:
            if "=" not in item:
                raise UsageError(f"--env {item!r}: expected KEY=VALUE")
        ids = _parse_user(user) if user else None

        def make_process(container_process):
            return execute.process_for_exec(
                container_process, command, env=env, user=ids,
                additional_gids=additional_gids, cwd=cwd, caps=cap,
                no_new_privs=no_new_privs, tty=tty)
    options = execute.ExecOptions(pid_file=pid_file, console_socket=console_socket,
                                    detach=detach, preserve_fds=preserve_fds,
                                    ignore_paused=ignore_paused, cgroup=cgroup)
    return execute.exec_(g.store(), container_id, make_process, options)


def ps(g, container_id, fmt, ps_args, show_all):
    """List the processes of a container (`ps` output, or their pids as JSON); without an
    ID, list the running containers (-a: all), as docker ps does."""
    from oci import jsonio
    from rootless.runtime import processes
    if container_id is None:
        from rootless.friendly import run as friendly
        return friendly.ps(g.store(), show_all)
    record = g.store().open(container_id, lock=False)
    if record.status() in (STOPPED, CREATING):
        raise HandcarError(f"container {container_id} is not running")
    pids = sorted(processes.container_pids(record))
    if fmt == "json":
        print(jsonio.dumps(pids))
        return
    print(_ps_table(pids, ps_args or ("-ef",)), end="")


def _ps_table(pids, ps_args):
    """The caller's `ps` output cut down to the container's processes, as runc does it."""
    import subprocess
    try:
        result = subprocess.run(["ps", *ps_args], capture_output=True, text=True)
    except FileNotFoundError:
        raise HandcarError("ps is not installed (package procps)") from None
    if result.returncode != 0:
        raise HandcarError(f"ps {' '.join(ps_args)}: {result.stderr.strip()}")
    lines = result.stdout.splitlines()
    header = lines[0].split() if lines else []
    if "PID" not in header:
        raise HandcarError("ps output has no PID column: add -o pid or use -f json")
    column = header.index("PID")
    wanted = set(pids)
    kept = [line for line in lines[1:] if int(line.split()[column]) in wanted]
    return "".join(f"{line}\n" for line in [lines[0], *kept])


def pause(g, container_id):
    """Freeze every process of a container (through its cgroup)."""
    from rootless.runtime import lifecycle
    lifecycle.pause(g.store(), container_id)


def resume(g, container_id):
    """Thaw a paused container."""
    from rootless.runtime import lifecycle
    lifecycle.resume(g.store(), container_id)


def _seconds(text):
    """runc's durations: 5s, 500ms, 1m, or a plain number of seconds."""
    for suffix, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if text.endswith(suffix) and text[:-len(suffix)].replace(".", "", 1).isdigit():
            return float(text[:-len(suffix)]) * factor
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{text!r}: expected a duration like 5s or 500ms") from None


def events(g, container_id, stats_only, interval):
    """Print the container's stats (and OOM events) as JSON lines, as runc does."""
    from oci import jsonio
    from rootless.runtime import lifecycle
    if stats_only:
        print(jsonio.dumps(lifecycle.stats(g.store(), container_id)))
        return
    lifecycle.events(g.store(), container_id, _seconds(interval),
                     lambda event: print(jsonio.dumps(event), flush=True))


def _bytes(text):
    """runc's sizes: 1024, 512k, 64m, 1g (binary units); -1 for unlimited."""
    text = text.strip().lower().rstrip("b")
    factor = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(text[-1:], 1)
    try:
        return int(text[:-1] if factor > 1 else text) * factor
    except ValueError:
        raise UsageError(f"{text!r}: expected a size like 512m or -1") from None


def update(g, container_id, resources_file, **flags):
    """Change a running container's resource limits."""
    from oci import jsonio
    from oci.resources import parse_resources
    from rootless.runtime import lifecycle
    if resources_file:
        stream = sys.stdin if resources_file == "-" else None
        try:
            document = jsonio.loads((stream or open(resources_file)).read())
        except OSError as err:
            raise HandcarError(f"reading {resources_file}: {err.strerror}") from None
        except ValueError as err:
            raise HandcarError(f"{resources_file}: not valid JSON: {err}") from None
    else:
        document = _resources_from_flags(**flags)
        if not any(document.values()):
            raise UsageError("nothing to update: give -r FILE or a limit flag")
    lifecycle.update(g.store(), container_id, parse_resources(document, resources_file or "flags"))


def _resources_from_flags(memory, memory_reservation, memory_swap, cpu_share, cpu_quota,
                          cpu_period, cpuset_cpus, cpuset_mems, pids_limit, blkio_weight):
    def present(**items):
        return {key: value for key, value in items.items() if value is not None}
    return {
        "memory": present(limit=memory and _bytes(memory),
                          reservation=memory_reservation and _bytes(memory_reservation),
                          swap=memory_swap and _bytes(memory_swap)),
        "cpu": present(shares=cpu_share, quota=cpu_quota, period=cpu_period,
                       cpus=cpuset_cpus, mems=cpuset_mems),
        "pids": present(limit=pids_limit),
        "blockIO": present(weight=blkio_weight),
    }


def features(g):
    """Print what this runtime supports on this host (the OCI features document)."""
    from oci import jsonio
    from oci.features import features_document
    from rootless.runtime.host import host_facts
    print(jsonio.dumps(features_document(**host_facts()), indent=2))


def state(g, container_id):
    """Print the OCI state of a container as JSON."""
    from oci import jsonio
    record = g.store().open(container_id, lock=False)
    print(jsonio.dumps(record.state().to_json(), indent=2))


def kill(g, container_id, signal_name, all_processes):
    """Send a signal (default SIGTERM; a name, with or without SIG, or a number)."""
    from rootless.runtime import lifecycle, processes
    lifecycle.kill(g.store(), container_id, processes.parse_signal(signal_name or "SIGTERM"),
                   all_processes)


def delete(g, container_id, force, regex=False):
    """Delete a container and everything it holds."""
    from rootless.runtime import lifecycle
    if not regex:
        lifecycle.delete(g.store(), container_id, force)
        return
    # crun's --regex: every container whose id the expression matches (anywhere, as
    # regexec does); one that cannot be deleted is a warning, and the rest go on
    import re
    try:
        pattern = re.compile(container_id)
    except re.error as err:
        raise UsageError(f"delete --regex {container_id!r}: {err}") from None
    store = g.store()
    for name in store.ids():
        if pattern.search(name):
            try:
                lifecycle.delete(store, name, force)
            except HandcarError as err:
                log.warning(f"deleting {name}: {err}")


def list_(g, fmt, quiet):
    """List containers."""
    from oci import jsonio
    store = g.store()
    states = []
    for container_id in store.ids():
        try:
            states.append(store.open(container_id, lock=False).state())
        except HandcarError:
            continue                      # deleted while we listed
    if quiet:
        for st in states:
            print(st.id)
    elif fmt == "json":
        print(jsonio.dumps([st.to_json() for st in states]))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(st.id, str(st.pid), st.status, st.bundle, st.created, st.owner)
                 for st in states]
        from rootless.output import print_table
        print_table(rows, gap="   ")


def spec(g, bundle, rootless):
    """Write a default config.json into the bundle directory."""
    import json
    from oci.default import default_spec
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise HandcarError(f"{path} already exists; remove it first")
    document = default_spec(rootless, os.geteuid(), os.getegid())
    try:
        with open(path, "x") as f:
            json.dump(document, f, indent="\t")
            f.write("\n")
    except OSError as err:
        raise HandcarError(f"writing {path}: {err.strerror}") from None


# --- debug (issue 19) -----------------------------------------------------------------

def debug(g, container_id, command, tools, image, mount_at, shared, target_root,
          privileged_debug, tty, interactive, user, env):
    """Debug a running container with tools it does not have (see verbs.py)."""
    from rootless.runtime import debug as debugging
    for item in env:
        if "=" not in item:
            raise UsageError(f"--env {item!r}: expected KEY=VALUE")
    options = debugging.DebugOptions(
        tools=tools, image=image, mount_at=mount_at, shared=shared, target_root=target_root,
        privileged=privileged_debug, tty=tty, user=_parse_user(user) if user else None,
        env=env)
    return debugging.debug(g.store(), container_id, command, options)
