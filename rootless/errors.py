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


def os_error_message(err):
    """'what: why' for an OSError, without Python's '[Errno N]' noise."""
    what = err.filename if err.filename is not None else ""
    why = err.strerror or str(err)
    return f"{what}: {why}" if what else why


# Exit statuses. runc's: 1 for an error, 2 for a usage error. The friendly verbs use
# docker's: 125 for handcar's own failure, 126 when the command cannot be invoked, 127
# when it is not found (told by the words runc and podman use for them).
_statuses = {"docker": False}


def use_docker_statuses():
    _statuses["docker"] = True


def exit_status(err):
    if not _statuses["docker"]:
        return 2 if isinstance(err, UsageError) else 1
    text = str(err)
    if "exec:" in text and ("executable file not found" in text
                            or "no such file or directory" in text):
        return 127
    if "exec:" in text and ("permission denied" in text or "operation not permitted" in text):
        return 126
    return 125
