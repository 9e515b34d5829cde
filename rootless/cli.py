"""The command line: runc's global flags and verbs, errors turned into one line and an exit
status in one place (`main`).

Exit statuses: 0 success, 1 runtime error, 2 usage error; `run` in the foreground returns
the container's own status (128+N when it was killed by signal N).
"""

import json
import os
import sys

import click

from . import __version__, log
from .errors import HandcarError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Globals:
    def __init__(self, root, systemd=False):
        self.root = root
        self.systemd = systemd

    def warn_about_systemd(self):
        if self.systemd:
            log.warning("--systemd-cgroup: handcar does not ask systemd for a scope yet; "
                        "the container's cgroup is made directly in your delegated subtree")

    def store(self):
        from .store import Store
        return Store(self.root)


def _version_text():
    from oci.state import OCI_VERSION
    return (f"handcar version {__version__}\nspec: {OCI_VERSION}\n"
            f"python: {sys.version.split()[0]}")


def _print_version(ctx, _param, value):
    if value and not ctx.resilient_parsing:
        click.echo(_version_text())
        ctx.exit()


@click.group(context_settings=CONTEXT)
@click.option("--root", metavar="DIR", help="State directory "
              "(default: $XDG_RUNTIME_DIR/handcar, else /tmp/handcar-UID).")
@click.option("--log", "log_path", metavar="FILE", help="Also write log messages to FILE.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Format of the --log file.")
@click.option("--debug", is_flag=True, help="Log debug messages.")
@click.option("--systemd-cgroup", is_flag=True,
              help="Accepted for runc compatibility (cgroups are made through cgroupfs).")
@click.option("--rootless", type=click.Choice(["true", "false", "auto"]), default="auto",
              help="Accepted for runc compatibility: handcar is always rootless-capable.")
@click.option("--cgroup-manager", type=click.Choice(["cgroupfs", "systemd", "disabled"]),
              default="cgroupfs", help="crun's spelling; accepted.")
@click.option("-v", "--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Print the version and exit.")
@click.pass_context
def cli(ctx, root, log_path, log_format, debug, systemd_cgroup, rootless, cgroup_manager):
    """handcar: a rootless, runc-compatible OCI container runtime."""
    log.configure(log_path, log_format, debug)
    ctx.obj = Globals(root, systemd=systemd_cgroup or cgroup_manager == "systemd")


def _create_options(func):
    """The flags create and run share, as runc spells them."""
    options = [
        click.option("-b", "--bundle", default=".", metavar="DIR", show_default=True,
                     help="Bundle directory (holds config.json)."),
        click.option("--pid-file", metavar="FILE", help="Write the init's pid to FILE."),
        click.option("--console-socket", metavar="PATH",
                     help="Unix socket that receives the pty master (process.terminal)."),
        click.option("--no-pivot", is_flag=True, help="Use chroot instead of pivot_root."),
        click.option("--no-new-keyring", is_flag=True,
                     help="Keep the caller's session keyring."),
        click.option("--preserve-fds", type=click.IntRange(min=0), default=0, metavar="N",
                     help="Pass N extra fds (3 to 3+N-1) to the process."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _options(pid_file, console_socket, no_pivot, no_new_keyring, preserve_fds):
    from .container import CreateOptions
    return CreateOptions(pid_file=pid_file, console_socket=console_socket, no_pivot=no_pivot,
                         no_new_keyring=no_new_keyring, preserve_fds=preserve_fds)


@cli.command(context_settings=CONTEXT)
@_create_options
@click.argument("container_id", metavar="ID")
@click.pass_obj
def create(g, container_id, bundle, **flags):
    """Create a container; its process waits for `start`."""
    from . import container
    g.warn_about_systemd()
    record, channel, console = container.create(g.store(), container_id, bundle,
                                                _options(**flags))
    channel.close()
    console.close()
    record.unlock()


@cli.command(context_settings=CONTEXT)
@click.argument("container_id", metavar="ID")
@click.pass_obj
def start(g, container_id):
    """Start the process of a created container."""
    from . import container
    container.start(g.store(), container_id)


@cli.command(context_settings=CONTEXT)
@_create_options
@click.option("-d", "--detach", is_flag=True, help="Do not wait for the container.")
@click.option("--keep", is_flag=True, help="Keep the container's state after it exits.")
@click.option("--no-subreaper", is_flag=True, hidden=True, help="Accepted for runc compatibility.")
@click.argument("container_id", metavar="ID")
@click.pass_obj
def run(g, container_id, bundle, detach, keep, no_subreaper, **flags):
    """Create and start a container; without -d, wait and return its exit status."""
    from . import container
    g.warn_about_systemd()
    return container.run(g.store(), container_id, bundle, _options(**flags),
                         detach=detach, keep=keep)


def _parse_user(text):
    """-u UID[:GID] (numbers, as runc takes them)."""
    uid, _, gid = text.partition(":")
    try:
        return int(uid), int(gid) if gid else 0
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected UID[:GID] as numbers") from None


@cli.command("exec", context_settings={**CONTEXT, "allow_interspersed_args": False})
@click.option("-t", "--tty", is_flag=True, help="Give the process a pty.")
@click.option("-d", "--detach", is_flag=True, help="Do not wait for the process.")
@click.option("--pid-file", metavar="FILE", help="Write the process's pid to FILE.")
@click.option("--console-socket", metavar="PATH",
              help="Unix socket that receives the pty master (with -t).")
@click.option("--preserve-fds", type=click.IntRange(min=0), default=0, metavar="N",
              help="Pass N extra fds (3 to 3+N-1) to the process.")
@click.option("-p", "--process", "process_file", metavar="FILE",
              help="A process.json to run, instead of CMD and the flags below.")
@click.option("-e", "--env", multiple=True, metavar="KEY=VALUE", help="Add to the environment.")
@click.option("-u", "--user", metavar="UID[:GID]", help="Run as this user.")
@click.option("-g", "--additional-gids", multiple=True, type=int, metavar="GID",
              help="An additional group.")
@click.option("--cwd", metavar="DIR", help="Working directory.")
@click.option("-c", "--cap", multiple=True, metavar="CAP", help="Add a capability.")
@click.option("--no-new-privs", is_flag=True, help="Set no_new_privs.")
@click.option("--ignore-paused", is_flag=True, help="Exec even into a paused container.")
@click.argument("container_id", metavar="ID")
@click.argument("command", nargs=-1, metavar="[CMD]...")
@click.pass_obj
def exec_(g, container_id, command, process_file, env, user, additional_gids, cwd, cap,
          no_new_privs, tty, detach, pid_file, console_socket, preserve_fds, ignore_paused):
    """Run a process in a running container; returns its exit status."""
    from . import container
    if process_file:
        if command:
            raise click.UsageError("give either --process or a command, not both")
        process = container.load_process_file(process_file)
    else:
        if not command:
            raise click.UsageError("missing the command to run (or --process FILE)")
        for item in env:
            if "=" not in item:
                raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--env")
        base = g.store().open(container_id, lock=False).load_spec().process
        process = container.process_for_exec(
            base, command, env=env, user=_parse_user(user) if user else None,
            additional_gids=additional_gids, cwd=cwd, caps=cap, no_new_privs=no_new_privs,
            tty=tty)
    options = container.ExecOptions(pid_file=pid_file, console_socket=console_socket,
                                    detach=detach, preserve_fds=preserve_fds,
                                    ignore_paused=ignore_paused)
    return container.exec_(g.store(), container_id, process, options)


@cli.command(context_settings={**CONTEXT, "allow_interspersed_args": False,
                               "ignore_unknown_options": True})
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.argument("container_id", metavar="ID")
@click.argument("ps_args", nargs=-1, metavar="[PS OPTIONS]...")
@click.pass_obj
def ps(g, container_id, fmt, ps_args):
    """List the processes of a container (`ps` output, or their pids as JSON)."""
    from . import container
    record = g.store().open(container_id, lock=False)
    if record.status() in ("stopped", "creating"):
        raise HandcarError(f"container {container_id} is not running")
    pids = sorted(container.container_pids(record))
    if fmt == "json":
        click.echo(json.dumps(pids))
        return
    click.echo(_ps_table(pids, ps_args or ("-ef",)), nl=False)


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


@cli.command(context_settings=CONTEXT)
@click.argument("container_id", metavar="ID")
@click.pass_obj
def pause(g, container_id):
    """Freeze every process of a container (through its cgroup)."""
    from . import container
    container.pause(g.store(), container_id)


@cli.command(context_settings=CONTEXT)
@click.argument("container_id", metavar="ID")
@click.pass_obj
def resume(g, container_id):
    """Thaw a paused container."""
    from . import container
    container.resume(g.store(), container_id)


def _seconds(text):
    """runc's durations: 5s, 500ms, 1m, or a plain number of seconds."""
    for suffix, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if text.endswith(suffix) and text[:-len(suffix)].replace(".", "", 1).isdigit():
            return float(text[:-len(suffix)]) * factor
    try:
        return float(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected a duration like 5s or 500ms") from None


@cli.command(context_settings=CONTEXT)
@click.option("--stats", "stats_only", is_flag=True, help="Print the stats once and exit.")
@click.option("--interval", default="5s", show_default=True, metavar="DURATION",
              help="How often to print stats.")
@click.argument("container_id", metavar="ID")
@click.pass_obj
def events(g, container_id, stats_only, interval):
    """Print the container's stats (and OOM events) as JSON lines, as runc does."""
    from . import container
    if stats_only:
        click.echo(json.dumps(container.stats(g.store(), container_id)))
        return
    container.events(g.store(), container_id, _seconds(interval),
                     lambda event: click.echo(json.dumps(event)))


def _bytes(text):
    """runc's sizes: 1024, 512k, 64m, 1g (binary units); -1 for unlimited."""
    text = text.strip().lower().rstrip("b")
    factor = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(text[-1:], 1)
    try:
        return int(text[:-1] if factor > 1 else text) * factor
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected a size like 512m or -1") from None


@cli.command(context_settings=CONTEXT)
@click.option("-r", "--resources", "resources_file", metavar="FILE|-",
              help="A linux.resources JSON document ('-' for stdin).")
@click.option("--memory", help="Memory limit (512m, 1g, -1 for none).")
@click.option("--memory-reservation", help="Memory soft limit (memory.low).")
@click.option("--memory-swap", help="Memory+swap limit.")
@click.option("--cpu-share", type=int, help="CPU shares (converted to cpu.weight).")
@click.option("--cpu-quota", type=int, help="CPU quota per period, in microseconds.")
@click.option("--cpu-period", type=int, help="CPU period, in microseconds.")
@click.option("--cpuset-cpus", help="CPUs to run on (0-3, 0,1).")
@click.option("--cpuset-mems", help="Memory nodes to use.")
@click.option("--pids-limit", type=int, help="Maximum number of processes.")
@click.option("--blkio-weight", type=int, help="Block IO weight (10-1000).")
@click.argument("container_id", metavar="ID")
@click.pass_obj
def update(g, container_id, resources_file, **flags):
    """Change a running container's resource limits."""
    from oci.resources import parse_resources
    from . import container
    if resources_file:
        stream = sys.stdin if resources_file == "-" else None
        try:
            document = json.load(stream or open(resources_file))
        except OSError as err:
            raise HandcarError(f"reading {resources_file}: {err.strerror}") from None
        except ValueError as err:
            raise HandcarError(f"{resources_file}: not valid JSON: {err}") from None
    else:
        document = _resources_from_flags(**flags)
        if not any(document.values()):
            raise click.UsageError("nothing to update: give -r FILE or a limit flag")
    container.update(g.store(), container_id, parse_resources(document, resources_file or "flags"))


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


@cli.command(context_settings=CONTEXT)
def features():
    """Print what this runtime supports on this host (the OCI features document)."""
    from oci.features import features_document
    from .host import host_facts
    click.echo(json.dumps(features_document(**host_facts()), indent=2))


@cli.command(context_settings=CONTEXT)
@click.argument("container_id", metavar="ID")
@click.pass_obj
def state(g, container_id):
    """Print the OCI state of a container as JSON."""
    record = g.store().open(container_id, lock=False)
    click.echo(json.dumps(record.state().to_json(), indent=2))


@cli.command(context_settings=CONTEXT)
@click.option("-a", "--all", "all_processes", is_flag=True,
              help="Signal every process of the container, not only its init.")
@click.argument("container_id", metavar="ID")
@click.argument("signal_name", metavar="[SIGNAL]", default="SIGTERM")
@click.pass_obj
def kill(g, container_id, signal_name, all_processes):
    """Send a signal (default SIGTERM; a name, with or without SIG, or a number)."""
    from . import container
    container.kill(g.store(), container_id, container.parse_signal(signal_name),
                   all_processes)


@cli.command(context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Kill the container first if it runs.")
@click.argument("container_id", metavar="ID")
@click.pass_obj
def delete(g, container_id, force):
    """Delete a container and everything it holds."""
    from . import container
    container.delete(g.store(), container_id, force)


@cli.command("list", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="Print only the ids.")
@click.pass_obj
def list_(g, fmt, quiet):
    """List containers."""
    store = g.store()
    states = []
    for container_id in store.ids():
        try:
            states.append(store.open(container_id, lock=False).state())
        except HandcarError:
            continue                      # deleted while we listed
    if quiet:
        for st in states:
            click.echo(st.id)
    elif fmt == "json":
        click.echo(json.dumps([st.to_json() for st in states]))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(st.id, str(st.pid), st.status, st.bundle, st.created, st.owner)
                 for st in states]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            click.echo("   ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "   "
                       + row[-1])


@cli.command(context_settings=CONTEXT)
@click.option("-b", "--bundle", default=".", metavar="DIR", show_default=True,
              help="Where to write config.json.")
@click.option("--rootless", is_flag=True, help="A spec for running without root.")
def spec(bundle, rootless):
    """Write a default config.json into the bundle directory."""
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


def main(argv=None):
    try:
        status = cli.main(args=argv, prog_name="handcar", standalone_mode=False)
    except click.exceptions.Exit as done:
        status = done.exit_code
    except click.ClickException as err:
        err.show()
        status = err.exit_code
    except click.exceptions.Abort:
        status = 130
    except HandcarError as err:
        log.error(str(err))
        status = 1
    except KeyboardInterrupt:
        status = 130
    except OSError as err:
        from .errors import os_error_message
        log.error(os_error_message(err))
        status = 1
    except Exception as err:  # noqa: BLE001 - a bug of ours: still one line, and a way in
        log.debug("".join(__import__("traceback").format_exception(err)))
        log.error(f"internal error: {type(err).__name__}: {err} (run with --debug for more)")
        status = 1
    sys.exit(status if isinstance(status, int) else 0)
