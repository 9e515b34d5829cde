"""TCP throughput from a container to the host's loopback through slirp4netns: handcar
against rootless podman on the same machine, with iperf3.

Run it as the unprivileged user (scripts/netbench does the set-up and that):
    python3 scripts/netbench.py [--seconds 10] [--runs 1] [--between]
Both containers run the same rootfs (iperf3 and the libraries it links) with
slirp4netns:allow_host_loopback=true, podman's defaults otherwise (mtu 65520, IPv6, sandbox
and seccomp where slirp4netns has them), and send to an iperf3 server on the host's
127.0.0.1 through 10.0.2.2. It is a benchmark, not a test: it asserts nothing.

With --between: TCP throughput between two containers on one network, a handcar network
against a rootless podman network, the client sending to the server's address.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import mapped_spec  # scripts/bench.py, beside this file

NETWORK = "slirp4netns:allow_host_loopback=true"
HOST_FROM_CONTAINER = "10.0.2.2"       # slirp4netns's address for the host's 127.0.0.1
TMPDIR = "TMPDIR=/dev/shm"             # iperf3's buffers: the root is read-only


def make_rootfs(rootfs):
    """iperf3 and what `ldd` says it needs, at the same paths."""
    iperf3 = shutil.which("iperf3")
    if not iperf3:
        sys.exit("iperf3 is not installed (apt-get install iperf3; scripts/netbench does)")
    needed = [iperf3]
    for line in subprocess.run(["ldd", iperf3], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        path = line.split("=>")[-1].split("(")[0].strip()
        if path.startswith("/"):
            needed.append(path)
    for path in needed:
        target = rootfs / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(path), target)
    for name in ("tmp", "etc", "proc", "dev", "sys"):
        (rootfs / name).mkdir(exist_ok=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    return iperf3


def make_bundle(top, rootfs, argv):
    config = mapped_spec(argv)
    config["root"] = {"path": str(rootfs), "readonly": True}
    config["process"]["env"].append(TMPDIR)
    config["linux"]["namespaces"].append({"type": "network"})
    config["annotations"] = {"handcar.network": NETWORK}
    (top / "config.json").write_text(json.dumps(config))
    return str(top)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port):
    """Whether something listens on 127.0.0.1:port (a test connection would count as the
    --one-off server's only client)."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        return any(fields[1] == wanted and fields[3] == "0A"       # 0A: LISTEN
                   for fields in (line.split() for line in table.readlines()[1:]))


def measure(name, command, port):
    """Run one iperf3 client through `command` against a fresh server on the host's
    127.0.0.1:port; its JSON report's totals."""
    server = subprocess.Popen(["iperf3", "--server", "--one-off", "--bind", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if listening(port):
                break
            time.sleep(0.05)
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    finally:
        server.kill()
        server.wait()
    if result.returncode != 0:
        raise SystemExit(f"{name}: {' '.join(command)}: {result.stderr.strip()[-500:]}")
    report = json.loads(result.stdout[result.stdout.index("{"):])
    if "error" in report:
        raise SystemExit(f"{name}: iperf3: {report['error']}")
    end = report["end"]
    return {"sent": end["sum_sent"]["bits_per_second"] / 1e9,
            "received": end["sum_received"]["bits_per_second"] / 1e9,
            "retransmits": end["sum_sent"].get("retransmits", 0)}


def client_report(name, command, env=None):
    """Run an iperf3 client (retried while its server starts); its JSON report's totals."""
    for _ in range(50):
        result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                env=env)
        if "connect" not in result.stdout + result.stderr or result.returncode == 0:
            break
        time.sleep(0.1)                          # "unable to connect": not listening yet
    if result.returncode != 0:
        raise SystemExit(f"{name}: {' '.join(command)}: {result.stderr.strip()[-500:]}"
                         f"{result.stdout.strip()[-500:]}")
    report = json.loads(result.stdout[result.stdout.index("{"):])
    end = report["end"]
    return {"sent": end["sum_sent"]["bits_per_second"] / 1e9,
            "received": end["sum_received"]["bits_per_second"] / 1e9,
            "retransmits": end["sum_sent"].get("retransmits", 0)}


def between(options, handcar, podman, top, rootfs, iperf3):
    """TCP throughput between two containers on one network (issue 18): a handcar network
    against a rootless podman network (its CNI bridge in podman's rootless network
    namespace), interleaved; the client reaches the server by its address."""
    (top / "config.toml").write_text(f'storage = "{top / "storage"}"\n')
    env = dict(os.environ, HANDCAR_CONFIG=str(top / "config.toml"))
    hc = [handcar, "--root", str(top / "state-between")]
    network = "netbench"
    subprocess.run([*hc, "network", "create", network], env=env, check=True,
                   capture_output=True)
    if podman:
        subprocess.run([*podman, "network", "rm", "-f", f"handcar-{network}"],
                       capture_output=True)
        subprocess.run([*podman, "network", "create", f"handcar-{network}"], check=True,
                       capture_output=True)
    results = {"handcar": [], "podman": []}
    try:
        for run in range(options.runs):
            order = ("handcar", "podman") if run % 2 == 0 else ("podman", "handcar")
            for name in order:
                if name == "podman" and not podman:
                    continue
                server = f"netbench-server{run}"
                if name == "handcar":
                    subprocess.run([*hc, "run", "-d", "--name", server, "--network", network,
                                    str(rootfs), iperf3, "--server", "--one-off"], env=env,
                                   check=True, capture_output=True)
                    inspected = json.loads(subprocess.run(
                        [*hc, "network", "inspect", network], env=env, check=True,
                        capture_output=True, text=True).stdout)
                    address = inspected[0]["containers"][server]["address"]
                    client = [*hc, "run", "--rm", "--network", network, str(rootfs)]
                    remove = [*hc, "rm", "-f", server]
                else:
                    subprocess.run([*podman, "run", "-d", "--name", server, "--network",
                                    f"handcar-{network}", "--env", TMPDIR, "--read-only",
                                    "--rootfs", str(rootfs), iperf3, "--server", "--one-off"],
                                   check=True, capture_output=True)
                    inspected = json.loads(subprocess.run(
                        [*podman, "inspect", server], check=True, capture_output=True,
                        text=True).stdout)
                    address = inspected[0]["NetworkSettings"]["Networks"][
                        f"handcar-{network}"]["IPAddress"]
                    client = [*podman, "run", "--rm", "--network", f"handcar-{network}",
                              "--env", TMPDIR, "--read-only", "--rootfs", str(rootfs)]
                    remove = [*podman, "rm", "-f", server]
                try:
                    results[name].append(client_report(name, [
                        *client, iperf3, "--client", address, "--time", str(options.seconds),
                        "--json"], env))
                finally:
                    subprocess.run(remove, env=env, capture_output=True)
    finally:
        subprocess.run([*hc, "network", "rm", "-f", network], env=env, capture_output=True)
        if podman:
            subprocess.run([*podman, "network", "rm", "-f", f"handcar-{network}"],
                           capture_output=True)
    print(f"iperf3 TCP between two containers on one network, {options.seconds} s, "
          f"{options.runs} run(s) each, Gbit/s:")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each iperf3 run")
    parser.add_argument("--runs", type=int, default=1, help="runs of each, interleaved")
    parser.add_argument("--between", action="store_true",
                        help="between two containers on one network (handcar network "
                             "against podman network), instead of container -> host")
    options = parser.parse_args()
    handcar = shutil.which("handcar")
    podman = shutil.which("podman")
    # podman's default runtime, crun, refuses hybrid cgroup hosts (this one): runc where
    # it is installed
    podman = podman and ([podman, "--runtime", "runc"] if shutil.which("runc") else [podman])
    with tempfile.TemporaryDirectory(prefix="handcar-netbench-") as scratch:
        top = Path(scratch)
        rootfs = top / "rootfs"
        iperf3 = make_rootfs(rootfs)
        if options.between:
            report(between(options, handcar, podman, top, rootfs, iperf3), {})
            return
        results = {"handcar": [], "podman": []}
        commands = {}
        for run in range(options.runs):
            port = free_port()
            client = [iperf3, "--client", HOST_FROM_CONTAINER, "-p", str(port), "--time",
                      str(options.seconds), "--json"]
            bundle = top / f"bundle{run}"
            bundle.mkdir()
            commands["handcar"] = [handcar, "--root", str(top / "state"), "run", "-b",
                                   make_bundle(bundle, rootfs, client), f"netbench{run}"]
            commands["podman"] = [*podman, "run", "--rm", "--network", NETWORK, "--env",
                                  TMPDIR, "--read-only", "--rootfs", str(rootfs), *client]
            order = ("handcar", "podman") if run % 2 == 0 else ("podman", "handcar")
            for name in order:                             # A B B A: neither always first
                if name == "podman" and not podman:
                    continue
                results[name].append(measure(name, commands[name], port))
    print(f"iperf3 TCP, container -> host 127.0.0.1 through slirp4netns ({NETWORK}), "
          f"{options.seconds} s, {options.runs} run(s) each, Gbit/s:")
    report(results, commands)


def report(results, commands):
    print(f"{'runtime':10} {'received':>9} {'sent':>9} {'retransmits':>12}")
    for name, runs in results.items():
        for run in runs:
            print(f"{name:10} {run['received']:9.2f} {run['sent']:9.2f} "
                  f"{run['retransmits']:12d}")
    if results["handcar"] and results["podman"]:
        mean = {name: sum(r["received"] for r in runs) / len(runs)
                for name, runs in results.items()}
        print(f"handcar/podman (received): {mean['handcar'] / mean['podman']:.2f}")
    else:
        print("podman is not installed: no comparison")
    print("commands:")
    for name, command in commands.items():
        print(f"  {name}: {' '.join(command)}")


if __name__ == "__main__":
    main()
