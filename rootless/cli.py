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
    def __init__(self, root):
        self.root = root

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
              help="Accepted for runc compatibility; cgroups are managed through cgroupfs.")
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
    if systemd_cgroup:
        log.debug("--systemd-cgroup: accepted; handcar manages no cgroups yet")
    ctx.obj = Globals(root)


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
    sys.exit(status if isinstance(status, int) else 0)
