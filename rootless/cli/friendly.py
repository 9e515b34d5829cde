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


# --- the image verbs (issue 16): rootless/friendly/images.py -----------------------------

def pull(g, source, quiet, platform, arch):
    """Pull an image into the store and print its ID (runc's exit status 1 on failure, as
    podman pull gives)."""
    from rootless.friendly import images as image_verbs
    image_verbs.pull(source, quiet, platform, arch)


def images(g, quiet, show_all):
    """List the images in the store."""
    from rootless.friendly import images as image_verbs
    with with_docker_statuses():
        image_verbs.images(quiet, show_all)


def rmi(g, names, force):
    """Remove images from the store, and the layers no other image uses."""
    from rootless.friendly import images as image_verbs
    with with_docker_statuses():
        image_verbs.rmi(g.store(), names, force)


def image_inspect(g, names, platform, arch):
    """Print podman's JSON description of images."""
    from rootless.friendly import images as image_verbs
    with with_docker_statuses():
        image_verbs.inspect(names, platform, arch)


def image_prune(g, force):
    """Remove images without a name that no container uses."""
    from rootless.friendly import images as image_verbs
    with with_docker_statuses():
        image_verbs.prune()


def login(g, registry, username, password_stdin, authfile, tls_verify):
    """Log in to a registry and keep the credentials in auth.json."""
    from rootless.friendly.images import login
    login(registry, username, password_stdin, authfile, tls_verify == "true")


def logout(g, registry, all_registries, authfile):
    """Remove a registry's credentials from auth.json."""
    from rootless.friendly.images import logout
    if not registry and not all_registries:
        raise UsageError("logout: name a REGISTRY, or --all")
    logout(registry, all_registries, authfile)


# --- handcar network (rootless/network/manage.py), podman's exit statuses --------------------

def network_create(g, name, subnet, internal, keep):
    """Define a container network; prints its name."""
    from rootless.network import manage
    with with_docker_statuses():
        manage.create(g.store(), name, subnet, internal, keep)


def network_ls(g, quiet):
    """List the networks."""
    from rootless.network import manage
    with with_docker_statuses():
        manage.ls(g.store(), quiet)


def network_inspect(g, names):
    """Print networks as JSON, with the containers on them."""
    from rootless.network import manage
    with with_docker_statuses():
        manage.inspect(g.store(), names)


def network_rm(g, names, force):
    """Remove networks (-f: and the containers on them)."""
    from rootless.network import manage
    with with_docker_statuses():
        manage.rm(g.store(), names, force)


def network_prune(g, force):
    """Remove every network no container uses."""
    from rootless.network import manage
    with with_docker_statuses():
        manage.prune(g.store())


def network_connect(g, network, container, aliases, ip):
    """Connect a running container to another network."""
    from rootless.network import manage
    with with_docker_statuses():
        manage.connect(g.store(), network, container, aliases, ip)


def network_disconnect(g, network, container, force):
    """Disconnect a running container from a network."""
    from rootless.network import manage
    with with_docker_statuses():
        manage.disconnect(g.store(), network, container)
