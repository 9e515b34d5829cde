"""The container's network, seen from the runtime: what to start for a spec (a network
namespace of its own, the handcar.network annotation) and what to stop for a record. The
network package itself (pyroute2, slirp4netns) is imported only for a container that has
one."""

import os


def setup(spec, bundle):
    """A network.Setup for a spec with a network namespace of its own or a network
    annotation (checked before anything is reserved), else None."""
    from oci.network import settings
    wanted = settings(spec, os.path.join(bundle, "config.json"))
    if wanted is None:
        return None
    from rootless.network import slirp as network
    return network.Setup(wanted)


def stop(record):
    """Stop what runs for the container's network (slirp4netns) if anything does."""
    if record.data.get("network"):
        from rootless.network import slirp as network
        network.stop(record)
