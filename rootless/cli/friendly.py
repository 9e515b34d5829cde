"""The friendly verbs (docker's and podman's habits): what each does, called with its flags
by the fast path or by click alike. Their errors get docker's exit statuses (125, 126,
127: errors.with_docker_statuses)."""

from rootless.errors import UsageError, with_docker_statuses


def run(g, args, host_sandbox, detach, flags):
    """The friendly `run IMAGE [CMD...]` or `run -- CMD...` (commands.run tells it from
    runc's `run ID`)."""
    from rootless.friendly import run as friendly
    with with_docker_statuses():
        if not host_sandbox and not args:
            raise UsageError("missing IMAGE (or -- and a command to run on the host's system)")
        image, command = (None, args) if host_sandbox else (args[0], args[1:])
        if host_sandbox and not command:
            raise UsageError("missing the command to run after --")
        return friendly.run(g.store(), image, command,
                            friendly.RunFlags(detach=detach, **flags))


def logs(g, name, follow):
    """Print the output of a detached container (-f: and follow it)."""
    from rootless.friendly import run as friendly
    with with_docker_statuses():
        friendly.logs(g.store(), name, follow)


def stop(g, names, timeout):
    """Stop containers: their stop signal, then SIGKILL after the timeout."""
    from rootless.friendly import run as friendly
    with with_docker_statuses():
        friendly.stop(g.store(), names, timeout)


def rm(g, names, force):
    """Remove containers and their files (-f: running ones too)."""
    from rootless.friendly import run as friendly
    with with_docker_statuses():
        friendly.rm(g.store(), names, force)


def pull(g, source):
    """Add an image to the store."""
    from rootless.friendly import run as friendly
    with with_docker_statuses():
        friendly.pull(source)


def images(g, quiet):
    """List the images in the store."""
    from rootless.friendly import run as friendly
    with with_docker_statuses():
        friendly.images(quiet)


def rmi(g, names, force):
    """Remove images from the store."""
    from rootless.friendly import run as friendly
    with with_docker_statuses():
        friendly.rmi(g.store(), names, force)
