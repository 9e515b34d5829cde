"""The `handcar network` verbs: definitions in, tables and JSON out, removal with
whatever a crash left behind; connect and disconnect are client.py's."""

import os
import shutil

from oci import jsonio
from oci.network import NETWORKS_ANNOTATION, parse_names
from rootless.errors import HandcarError
from rootless.network import client, definitions
from rootless.network.definitions import run_directory


def create(name, subnet, internal):
    print(definitions.create(name, subnet, internal).name)


def users(store):
    """{network name: [container ids]} of every container in the store that was put on a
    network (running or not: a stopped container still names its networks; those run
    with --rm -d that stopped are removed first)."""
    from rootless.friendly.run import collect_garbage
    collect_garbage(store)
    found = {}
    for container_id in store.ids():
        try:
            record = store.open(container_id, lock=False)
        except HandcarError:
            continue
        names = set(record.data.get("networks") or ())
        text = (record.data.get("annotations") or {}).get(NETWORKS_ANNOTATION)
        if text:
            try:
                names.update(parse_names(text))
            except ValueError:
                pass
        for name in names:
            found.setdefault(name, []).append(container_id)
    return found


def ls(store, quiet):
    from rootless.output import print_table
    networks = definitions.all_networks()
    if quiet:
        for network in networks:
            print(network.name)
        return
    used = users(store)
    rows = [("NETWORK ID", "NAME", "SUBNET", "INTERNAL", "CONTAINERS")]
    for network in networks:
        rows.append((network.id[:12], network.name, network.subnet,
                     "yes" if network.internal else "no", str(len(used.get(network.name, ())))))
    print_table(rows)


def inspect(store, names):
    found = [definitions.load(name) for name in names]       # NotFound before any output
    status = client.status(store.root) or {}
    running = status.get("networks", {})
    documents = []
    for network in found:
        document = dict(network.to_json(), driver="bridge", dns=network.gateway)
        document["host"] = network.host
        active = running.get(network.name)
        if active and active["id"] == network.id:
            document["containers"] = active["containers"]
            # what runs for it: the daemon (all networks') and its slirp4netns
            document["daemon"] = status["pid"]
            document["slirp4netns"] = active["slirp4netns"]
        else:
            document["containers"] = {}
        documents.append(document)
    print(jsonio.dumps(documents, indent=2))


def rm(store, names, force):
    found = [definitions.load(name) for name in names]
    used = users(store)
    for network in found:
        if used.get(network.name) and not force:
            raise HandcarError(f"network {network.name} is in use by container "
                               f"{', '.join(used[network.name])} (remove them first, or "
                               "network rm -f)")
    for network in found:
        for container_id in used.get(network.name, ()):
            from rootless.friendly.run import remove_container
            remove_container(store, container_id)
        _remove(store, network)
        print(network.name)


def prune(store):
    used = users(store)
    for network in definitions.all_networks():
        if not used.get(network.name):
            _remove(store, network)
            print(network.name)


def _remove(store, network):
    """The definition, and what the daemon kept for the network: nothing while it runs
    the network (no container uses it, so it does not), else the directory a killed
    daemon left."""
    running = (client.status(store.root) or {}).get("networks", {})
    if network.name in running:
        raise HandcarError(f"network {network.name} still has containers linked to it "
                           f"({', '.join(running[network.name]['containers'])})")
    shutil.rmtree(os.path.join(run_directory(store.root), f"net-{network.name}"),
                  ignore_errors=True)
    definitions.remove(network.name)


def connect(store, network, container, aliases, ip):
    client.connect_container(store, network, container, aliases, ip)


def disconnect(store, network, container):
    client.disconnect_container(store, network, container)
