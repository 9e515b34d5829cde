"""Messages to the user and to the --log file.

Errors and warnings always reach stderr as one line (`handcar: ...`). With --log they are
also written to that file, as runc does: text (`time=... level=... msg=...`) or, with
--log-format json, one JSON object per line ({"level","msg","time"}), which podman and
containerd read back when a verb fails. --debug adds debug lines.
"""

import sys
import time

_settings = {"path": None, "format": "text", "debug": False}


def configure(path=None, log_format="text", debug=False):
    _settings.update(path=path, format=log_format, debug=debug)


def _timestamp():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _write_log(level, msg):
    path = _settings["path"]
    if not path:
        return
    from oci import jsonio
    if _settings["format"] == "json":
        line = jsonio.dumps({"level": level, "msg": msg, "time": _timestamp()})
    else:
        line = f"time={jsonio.dumps(_timestamp())} level={level} msg={jsonio.dumps(msg)}"
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError as err:
        print(f"handcar: cannot write log {path}: {err.strerror}", file=sys.stderr)


def error(msg):
    _write_log("error", msg)
    print(f"handcar: {msg}", file=sys.stderr, flush=True)


def warning(msg):
    _write_log("warning", msg)
    print(f"handcar: warning: {msg}", file=sys.stderr, flush=True)


def debug(msg):
    if _settings["debug"]:
        _write_log("debug", msg)
        if not _settings["path"]:
            print(f"handcar: debug: {msg}", file=sys.stderr, flush=True)
