"""The `handcar network` verbs: definitions in, tables and JSON out, removal with
whatever a crash left behind; connect and disconnect are client.py's."""

import os
import shutil

from oci import jsonio
from oci.network import NETWORKS_ANNOTATION, parse_names
from rootless.errors import HandcarError
from rootless.network import client, definitions
from rootless.network.definitions import run_directory


def create(store, name, subnet, internal, keep):
    """Define a network; a kept one is started at once (its namespace, bridge, DNS and
    helper ready before its first container), and removed again if it cannot start."""
    network = definitions.create(name, subnet, internal, keep)
    if keep:
        try:
            client.up(store.root, network)
        except BaseException:
            _remove(store, network)
            raise
    print(network.name)


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
    rows = [("NETWORK ID", "NAME", "SUBNET", "INTERNAL", "KEPT", "CONTAINERS")]
    for network in networks:
        rows.append((network.id[:12], network.name, network.subnet,
                     "yes" if network.internal else "no", "yes" if network.keep else "no",
                     str(len(used.get(network.name, ())))))
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
            # what runs for it: the daemon (all networks') and its way out
            document["running"] = True
            document["daemon"] = status["pid"]
            document["outbound"] = active["outbound"]
        else:
            document["containers"] = {}
            document["running"] = False
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
    """The definition, and what runs for the network: the daemon stops it (kept, it runs
    without containers), and what a killed daemon left goes (its run directory, and a
    helper that outlived it)."""
    client.down(store.root, network.name)
    directory = os.path.join(run_directory(store.root), f"net-{network.name}")
    _kill_stale_helper(directory)
    shutil.rmtree(directory, ignore_errors=True)
    definitions.remove(network.name)


def _kill_stale_helper(directory):
    """The helper whose pid file a killed daemon left, if it still runs (pasta's guard
    kills it with the daemon, unless that was killed too), waited for."""
    import time
    from rootless.network.outbound import PID_FILE
    from rootless.runtime.store import process_start_time
    try:
        with open(os.path.join(directory, PID_FILE)) as f:
            pid, start_time = (int(word) for word in f.read().split())
    except (OSError, ValueError):
        return
    if process_start_time(pid) != start_time:
        return
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while process_start_time(pid) == start_time and time.monotonic() < deadline:
        time.sleep(0.005)


def connect(store, network, container, aliases, ip):
    client.connect_container(store, network, container, aliases, ip)


def disconnect(store, network, container):
    client.disconnect_container(store, network, container)
