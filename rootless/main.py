"""handcar's entry point: errors become one line and an exit status here, and only here.

Exit statuses: 0 success, 1 runtime error, 2 usage error; `run` and `exec` in the
foreground return the process's own status (128+N when it was killed by signal N). The
friendly verbs use docker's statuses instead (errors.exit_status).
"""

import sys

from . import log
from .errors import HandcarError, exit_status


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        status = _dispatch(argv)
    except HandcarError as err:
        log.error(str(err))
        status = exit_status(err)
    except KeyboardInterrupt:
        status = 130
    except OSError as err:
        from .errors import os_error_message
        log.error(os_error_message(err))
        status = exit_status(err)
    except Exception as err:  # noqa: BLE001 - a bug of ours: still one line, and a way in
        log.debug("".join(__import__("traceback").format_exception(err)))
        log.error(f"internal error: {type(err).__name__}: {err} (run with --debug for more)")
        status = exit_status(err)
    sys.exit(status if isinstance(status, int) else 0)


def _dispatch(argv):
    from .verbs import parse
    parsed = parse(argv)
    if parsed is None:                    # help, a mistake, or something unusual: click
        from .cli import click_main
        return click_main(argv)
    global_values, verb, values = parsed
    from . import commands
    return commands.handler(verb.name)(commands.Globals(**global_values), **values)
