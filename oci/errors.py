"""The root of handcar's one exception hierarchy.

It lives in the spec layer because `oci` must not import `rootless`; the engine's own
errors (rootless/errors.py) derive from HandcarError too, and the CLI turns any of them
into one line on stderr.
"""


class HandcarError(Exception):
    """An error the user can act on; str(error) is the whole message."""


class SpecError(HandcarError):
    """config.json (or a process.json) is invalid. Carries every problem found."""

    def __init__(self, problems, source="config.json"):
        self.problems = list(problems)
        self.source = source
        super().__init__(f"invalid {source}: " + "; ".join(self.problems))
