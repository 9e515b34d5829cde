"""The engine's errors. All derive from oci.errors.HandcarError, which the CLI turns into
one line on stderr (and one JSON object in the --log file) and exit status 1."""

from oci.errors import HandcarError, SpecError  # noqa: F401  (re-exported)


class UsageError(HandcarError):
    """The command line is wrong (exit status 2, as for click's usage errors)."""


class NotFound(HandcarError):
    pass


class AlreadyExists(HandcarError):
    pass


class WrongStatus(HandcarError):
    """The verb does not apply to a container in its current status."""


class SetupError(HandcarError):
    """Building the container failed (reported by a child process or the parent)."""


class CommandNotFound(SetupError):
    """The process's program does not exist (docker's and podman's exit status 127)."""


class CommandNotRunnable(SetupError):
    """The process's program exists but may not be executed (exit status 126)."""


KNOWN_ERRORS = (SetupError, CommandNotFound, CommandNotRunnable)


class UsernsError(HandcarError):
    """The user namespace cannot be mapped as asked."""


class CgroupError(HandcarError):
    """The cgroup a container needs cannot be made, found or changed."""


class HelperFailed(HandcarError):
    """An external program (newuidmap, a hook, ...) failed."""

    def __init__(self, argv, returncode, stderr=""):
        self.argv, self.returncode, self.stderr = list(argv), returncode, stderr.strip()
        detail = f": {self.stderr.splitlines()[-1]}" if self.stderr else ""
        super().__init__(f"{argv[0]} exited with status {returncode}{detail}")


class step:
    """`with step("mounting /proc"):` names the step in any error raised inside.
    (A class, not a contextlib generator: contextlib costs start-up time.)"""

    def __init__(self, what):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, err, _traceback):
        if isinstance(err, OSError):
            raise SetupError(f"{self.what}: {err.strerror or err}") from None
        if isinstance(err, SetupError):
            raise SetupError(f"{self.what}: {err}") from None
        return False


def describe(err):
    """An exception as the one line the user will read."""
    if isinstance(err, HandcarError):
        return str(err)
    if isinstance(err, OSError):
        return os_error_message(err)
    return f"{type(err).__name__}: {err}"


# What a forked process's error keeps on its way to its parent (system/channel.py's
# run_child; rootless/child/protocol.py): its words, its errno and the name of its class.
# The parent raises that class where it is one it knows (KNOWN_ERRORS, and those it names,
# e.g. the image worker's ImageError), a SetupError otherwise.
def error_fields(err):
    """The fields of an "error" message for `err`."""
    return {"msg": describe(err), "errno": getattr(err, "errno", None),
            "kind": type(err).__name__}


def error_from_fields(message, known=()):
    """The exception an "error" message stands for, to raise in the parent."""
    kinds = {cls.__name__: cls for cls in KNOWN_ERRORS + tuple(known)}
    err = kinds.get(message.get("kind"), SetupError)(message["msg"])
    err.errno = message.get("errno")
    return err


def os_error_message(err):
    """'what: why' for an OSError, without Python's '[Errno N]' noise."""
    what = err.filename if err.filename is not None else ""
    why = err.strerror or str(err)
    return f"{what}: {why}" if what else why


# Exit statuses. runc's: 1 for an error, 2 for a usage error. The friendly verbs use
# docker's: 125 for handcar's own failure, 126 when the command cannot be invoked, 127
# when it is not found. Which a verb uses travels with the error (`with_docker_statuses`),
# so main, where every error becomes a status, needs no state of its own.
RUNC, DOCKER = "runc", "docker"


class with_docker_statuses:
    """`with with_docker_statuses():` marks any error raised inside for docker's exit
    statuses (the friendly verbs)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, err, _traceback):
        if isinstance(err, Exception):
            err.exit_statuses = DOCKER
        return False


def exit_status(err):
    if getattr(err, "exit_statuses", RUNC) == RUNC:
        return 2 if isinstance(err, UsageError) else 1
    if isinstance(err, CommandNotFound):
        return 127
    if isinstance(err, CommandNotRunnable):
        return 126
    return 125
