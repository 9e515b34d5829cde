"""The full command line, built with click from the declarations in verbs.py: help,
usage errors and completion. main.py sends here whatever the fast path does not parse."""

import sys

import click

from rootless.version import __version__
from rootless.cli import commands
from rootless.cli.verbs import GLOBAL_OPTIONS, GROUPS, VERBS, handler, mark_double_dash

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _version_text():
    """The version, then crun's line of what this build does here (+SECCOMP ...)."""
    from oci.state import OCI_VERSION
    from rootless.runtime.host import feature_words
    return (f"handcar version {__version__}\nspec: {OCI_VERSION}\n"
            f"python: {sys.version.split()[0]}\n{' '.join(feature_words())}")


def _print_version(ctx, _param, value):
    if value and not ctx.resilient_parsing:
        click.echo(_version_text())
        ctx.exit()


def _click_option(opt):
    if opt.choices:
        kind = click.Choice(opt.choices)
    elif opt.type is int:
        kind = click.IntRange(min=opt.minimum) if opt.minimum is not None else click.INT
    else:
        kind = click.STRING
    if opt.kind == "flag":
        return click.Option(opt.names + (opt.dest,), is_flag=True, help=opt.help,
                            hidden=opt.hidden)
    return click.Option(opt.names + (opt.dest,), type=kind, default=opt.default,
                        multiple=opt.kind == "multiple", metavar=opt.metavar, help=opt.help,
                        show_default=opt.default not in (None, "", 0), hidden=opt.hidden)


def _click_argument(arg):
    return click.Argument([arg.dest], metavar=arg.metavar, required=arg.required,
                          nargs=-1 if arg.variadic else 1,
                          shell_complete=_complete_ids if arg.dest == "container_id" else None)


def _complete_ids(ctx, _param, incomplete):
    """Shell completion of a container id: those in the state root (--root if given)."""
    from rootless.errors import HandcarError
    from rootless.runtime.store import Store
    try:
        ids = Store(ctx.find_root().params.get("root")).ids()
    except (HandcarError, OSError):
        return []
    return [container_id for container_id in ids if container_id.startswith(incomplete)]


class _MarkingDoubleDash(click.Command):
    """A verb that needs to see the "--" that ends its options (see verbs.DASHES)."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, mark_double_dash(args, VERBS[self.name].options))


def _command(verb):
    def callback(**values):
        return handler(verb.name)(click.get_current_context().find_root().obj,
                                           **values)
    settings = dict(CONTEXT)
    if not verb.interspersed:
        settings.update(allow_interspersed_args=False)
    command_class = _MarkingDoubleDash if verb.marks_double_dash else click.Command
    return command_class(verb.name.rpartition(" ")[2], callback=callback, help=verb.help,
                         context_settings=settings,
                         params=[_click_option(o) for o in verb.options]
                         + [_click_argument(a) for a in verb.args])


def _group_callback(**values):
    click.get_current_context().obj = commands.Globals(**values)


cli = click.Group("handcar", help="handcar: a rootless, runc-compatible OCI container runtime.",
                  callback=_group_callback, context_settings=CONTEXT,
                  params=[_click_option(o) for o in GLOBAL_OPTIONS] + [
                      click.Option(["-v", "--version"], is_flag=True, expose_value=False,
                                   is_eager=True, callback=_print_version,
                                   help="Print the version and exit.")])
_groups = {name: click.Group(name, help=text, context_settings=CONTEXT)
           for name, text in GROUPS.items()}
for _group in _groups.values():
    cli.add_command(_group)
for _verb in VERBS.values():
    _group_name, _, _ = _verb.name.rpartition(" ")
    (_groups[_group_name] if _group_name else cli).add_command(_command(_verb))


def click_main(argv):
    """Run the command line through click; its exit status. click's own usage errors are
    shown here; handcar's errors go up to main()."""
    try:
        return cli.main(args=argv, prog_name="handcar", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as err:
        err.show()
        return 125 if _friendly_command_line(argv) else err.exit_code
    except click.exceptions.Abort:
        return 130


def _friendly_command_line(argv):
    """Whether a command line click refused was meant for a friendly verb (which exits
    with docker's 125 for a usage error): a friendly verb, or `run` without runc's flags."""
    from rootless.cli.verbs import RUNC_RUN_ONLY
    verb = next((token for token in argv if token in VERBS or token in GROUPS), None)
    if verb in ("logs", "stop", "rm", "images", "rmi", "image", "network"):
        return True
    runc_names = {name for opt in VERBS["run"].options if opt.dest in RUNC_RUN_ONLY
                  for name in opt.names}
    return verb == "run" and not any(token.split("=")[0] in runc_names for token in argv)
