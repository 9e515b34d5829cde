"""Messages to the user and to the --log file.

Errors always reach stderr as one line (`handcar: ...`). With --log they are also written
to that file, as runc does: text (`time=... level=... msg=...`) or, with --log-format json,
one JSON object per line ({"level","msg","time"}), which podman and containerd read back
when a verb fails. Warnings (and, with --debug, debug lines) go to the --log file when
there is one, else to stderr: as with runc, whose --log replaces stderr for them. The
stderr of `create` is the container's own (conmon gives it the container's pipes), so a
warning there would end up in the container's logs.
"""

import sys
import time

_settings = {"path": None, "format": "text", "debug": False, "warnings": True, "held": None}


def configure(path=None, log_format="text", debug=False, warnings=True):
    _settings.update(path=path, format=log_format, debug=debug, warnings=warnings,
                     held=None)


def hold_file():
    """Open the --log file now and write there from then on: a process about to chroot
    (the image unpacker) would open its path inside the new root otherwise."""
    if _settings["path"] and _settings["held"] is None:
        try:
            _settings["held"] = open(_settings["path"], "a", buffering=1)
        except OSError as err:
            print(f"handcar: cannot write log {_settings['path']}: {err.strerror}",
                  file=sys.stderr)


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
        if _settings["held"] is not None:
            _settings["held"].write(line + "\n")
            return
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError as err:
        print(f"handcar: cannot write log {path}: {err.strerror}", file=sys.stderr)


def error(msg):
    _write_log("error", msg)
    print(f"handcar: {msg}", file=sys.stderr, flush=True)


def warning(msg):
    if _settings["warnings"]:
        _note("warning", msg)


def debug(msg):
    if _settings["debug"]:
        _note("debug", msg)


def _note(level, msg):
    """A warning or debug line: to the --log file if there is one, else to stderr."""
    if _settings["path"]:
        _write_log(level, msg)
    else:
        print(f"handcar: {level}: {msg}", file=sys.stderr, flush=True)
