"""handcar's entry point: errors become one line and an exit status here, and only here.

Exit statuses: 0 success, 1 runtime error, 2 usage error; `run` and `exec` in the
foreground return the process's own status (128+N when it was killed by signal N). The
friendly verbs use docker's statuses instead (errors.exit_status).
"""

import gc
import os
import sys

from rootless import log
from rootless.errors import HandcarError, exit_status


def main(argv=None):
    """The `handcar` command: run the command line, then leave."""
    # A verb's objects live until it exits: the cyclic collector would only scan them
    # (~1 ms of create, run and exec), and in a forked child it would touch, and so copy,
    # every page the parent's objects are on. handcar creates no cycles in its loops.
    gc.disable()
    _leave(run(argv))


def run(argv=None):
    """The exit status of one command line (`main` without leaving the process)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        status = _dispatch(argv)
    except HandcarError as err:
        log.error(str(err))
        status = exit_status(err)
    except KeyboardInterrupt:
        status = 130
    except BrokenPipeError:
        # whoever read our output stopped (`handcar list | head -1`, `grep -q`): not an
        # error of ours to report, and nothing more of it to write
        _stop_writing_stdout()
        status = 0
    except OSError as err:
        from rootless.errors import os_error_message
        log.error(os_error_message(err))
        status = exit_status(err)
    except Exception as err:  # noqa: BLE001 - a bug of ours: still one line, and a way in
        log.debug("".join(__import__("traceback").format_exception(err)))
        log.error(f"internal error: {type(err).__name__}: {err} (run with --debug for more)")
        status = exit_status(err)
    return status if isinstance(status, int) else 0


def _leave(status):
    """Exit without the interpreter's teardown, which frees every module and object one by
    one: 1-2 ms of a verb that runc finishes in 6. handcar starts no threads and registers
    no exit handlers, so all that is left to do is flushing stdout and stderr."""
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except BrokenPipeError:
        pass                              # the reader is gone: see run()
    except (OSError, ValueError):
        sys.exit(status)                  # e.g. a full disk: Python reports it, as ever
    os._exit(status)


def _stop_writing_stdout():
    """Point stdout at /dev/null: what is left in its buffer has nowhere to go."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)


def _dispatch(argv):
    from rootless.cli.verbs import handler, parse
    parsed = parse(argv)
    if parsed is None:                    # help, a mistake, or something unusual: click
        from rootless.cli.clickcli import click_main
        return click_main(argv)
    global_values, verb, values = parsed
    from rootless.cli import commands
    return handler(verb.name)(commands.Globals(**global_values), **values)
