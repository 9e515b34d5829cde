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


def os_error_message(err):
    """'what: why' for an OSError, without Python's '[Errno N]' noise."""
    what = err.filename if err.filename is not None else ""
    why = err.strerror or str(err)
    return f"{what}: {why}" if what else why
