"""The container's network, seen from the runtime: what to start for a spec (the
handcar.network annotation: slirp4netns, published ports) and what to stop for a record.
A new network namespace alone needs nothing here: its init brings lo up. The network
package is imported only for a container that has a network to run."""

import os


def setup(spec, bundle, store):
    """The network set-up for a spec with a network annotation (checked before anything
    is reserved): slirp4netns's (handcar.network) or handcar networks' (handcar.networks);
    else None."""
    from oci.network import settings
    wanted = settings(spec, os.path.join(bundle, "config.json"))
    if wanted is None:
        return None
    if wanted.networks:
        from rootless.network import client
        return client.Setup(wanted, store.root)
    if wanted.network is None:
        return None
    from rootless.network import slirp as network
    return network.Setup(wanted)


def stop(record):
    """Stop what runs for the container's network (slirp4netns) if anything does; tell
    the network daemon a container on its networks is gone."""
    if record.data.get("network"):
        from rootless.network import slirp as network
        network.stop(record)
    if record.data.get("networks") is not None:
        from rootless.network import client
        client.forget(os.path.dirname(record.path), record.id)
