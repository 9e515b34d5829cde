"""handcar against runc (and crun where it runs): interleaved A B A B, medians and ratios.

Run it as the unprivileged user (scripts/bench does the set-up and that):
    python3 scripts/bench.py [--rounds 15] [--runtime NAME=COMMAND ...]
It is a benchmark, not a test: it asserts nothing.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from oci.default import default_spec  # noqa: E402
from rootless.system.mountinfo import mounts  # noqa: E402
from rootless.runtime.store import user_name  # noqa: E402
from rootless.runtime.userns import SUBGID, SUBUID, subordinate_ranges  # noqa: E402

GNU_TIME = "/usr/bin/time"


def mapped_spec(args):
    """`spec --rootless` without a terminal, running `args`, mapped 1 + 65536 ids where
    the user has a subordinate range (as the tests' bundles are)."""
    config = default_spec(rootless=True, uid=os.geteuid(), gid=os.getegid())
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    user = user_name(os.geteuid())
    for key, path in (("uidMappings", SUBUID), ("gidMappings", SUBGID)):
        ranges = subordinate_ranges(path, user, os.geteuid())
        if ranges:
            config["linux"][key].append({"containerID": 1, "hostID": ranges[0][0],
                                         "size": ranges[0][1]})
    return config


def make_bundle(top):
    rootfs = top / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    for applet in ("sh", "true", "sleep"):
        os.symlink("busybox", rootfs / "bin" / applet)
    config = mapped_spec(["/bin/true"])
    (top / "config.json").write_text(json.dumps(config))
    sleeper = top / "sleeper"
    sleeper.mkdir()
    config["process"]["args"] = ["/bin/sleep", "1000"]
    config["root"]["path"] = str(rootfs)
    (sleeper / "config.json").write_text(json.dumps(config))
    # the same with a network namespace of its own (lo up, nothing else): what a new
    # network namespace costs create (issue 17: nothing, within noise)
    netns = top / "netns"
    netns.mkdir()
    config["linux"]["namespaces"].append({"type": "network"})
    (netns / "config.json").write_text(json.dumps(config))
    return str(top), str(sleeper), str(netns)


class Runtime:
    def __init__(self, name, command, root, env=None):
        self.name, self.command, self.root, self.env = name, command, root, env
        self.counter = 0

    def argv(self, *args):
        return [*self.command, "--root", self.root, *args]

    def timed(self, *args):
        """Seconds one invocation took (it must succeed)."""
        # A created container keeps our stderr: a file, not a pipe that would never close.
        with tempfile.TemporaryFile() as errors:
            start = time.perf_counter()
            result = subprocess.run(self.argv(*args), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=errors, env=self.env)
            elapsed = time.perf_counter() - start
            if result.returncode != 0:
                errors.seek(0)
                raise RuntimeError(f"{self.name} {' '.join(args)}: "
                                   f"{errors.read().decode().strip()}")
        return elapsed

    def new_id(self):
        self.counter += 1
        return f"b{os.getpid()}-{self.counter}"

    def peak_rss_kib(self, bundle):
        """GNU time's %M of `run`: the largest resident set of the processes it waited for."""
        with tempfile.NamedTemporaryFile("r") as out:
            subprocess.run([GNU_TIME, "-f", "%M", "-o", out.name,
                            *self.argv("run", "-b", bundle, self.new_id())],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            return int(out.read().split()[-1])


def round_of(rt, bundle, sleeper, netns, samples):
    cid = rt.new_id()
    samples["run"].append(rt.timed("run", "-b", bundle, cid))
    cid = rt.new_id()
    create = rt.timed("create", "-b", sleeper, cid)
    start = rt.timed("start", cid)
    samples["create"].append(create)
    samples["start"].append(start)
    samples["state"].append(rt.timed("state", cid))
    samples["exec"].append(rt.timed("exec", cid, "/bin/true"))
    samples["kill"].append(rt.timed("kill", cid, "KILL"))
    time.sleep(0.02)
    delete = rt.timed("delete", "--force", cid)
    samples["delete"].append(delete)
    samples["create+start+delete"].append(create + start + delete)
    cid = rt.new_id()
    samples["create, new netns"].append(rt.timed("create", "-b", netns, cid))
    rt.timed("delete", "--force", cid)
    if os.path.exists(GNU_TIME):
        samples["peak RSS of run (MiB)"].append(rt.peak_rss_kib(bundle) / 1024)


def throughput(rt, bundle, count, workers):
    def one(_):
        rt.timed("run", "-b", bundle, rt.new_id())
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(count)))
    return count / (time.perf_counter() - start)


def works(rt, bundle):
    try:
        rt.timed("run", "-b", bundle, rt.new_id())
        return True
    except (RuntimeError, FileNotFoundError) as err:
        print(f"# {rt.name} left out: {err}", file=sys.stderr)
        return False


def network_costs(command, top, states, rounds):
    """What a network costs handcar's `run` of /bin/true (issue 18): a new network
    namespace only; its own slirp4netns; joining a handcar network that is up (another
    container keeps it so); the first container of a network (which brings the network's
    namespace, bridge and slirp4netns up); the first of all (the network daemon starts
    too). Interleaved, medians in ms."""
    storage = top / "storage"
    (top / "config.toml").write_text(f'storage = "{storage}"\n')
    env = dict(os.environ, HANDCAR_CONFIG=str(top / "config.toml"))
    warm = Runtime("handcar", command, str(states / "state-networks"), env)
    cold = Runtime("handcar", command, str(states / "state-networks-cold"), env)
    base = json.loads((Path(top) / "netns" / "config.json").read_text())
    kinds = {"new netns only": {}, "own slirp4netns": {"handcar.network": "slirp4netns"},
             "joining a network that is up": {"handcar.networks": "benchup"},
             "first on its network": {"handcar.networks": "benchfirst"},
             "first of all (daemon starts)": {"handcar.networks": "benchcold"}}
    bundles = {}
    for number, (kind, annotations) in enumerate(kinds.items()):
        path = top / f"net{number}"
        path.mkdir()
        config = json.loads(json.dumps(base))
        config["process"]["args"] = ["/bin/true"]
        config["annotations"] = annotations
        (path / "config.json").write_text(json.dumps(config))
        bundles[kind] = str(path)
    keeper = top / "keeper"
    keeper.mkdir()
    config = json.loads(json.dumps(base))
    config["annotations"] = {"handcar.networks": "benchup"}
    (keeper / "config.json").write_text(json.dumps(config))
    for name in ("benchup", "benchfirst", "benchcold"):
        warm.timed("network", "create", name)
    samples = {kind: [] for kind in kinds}
    try:
        warm.timed("create", "-b", str(keeper), "keeper")      # benchup stays up
        for _ in range(rounds):
            for kind, bundle in bundles.items():
                rt = cold if kind.startswith("first of all") else warm
                samples[kind].append(rt.timed("run", "-b", bundle, rt.new_id()) * 1000)
    finally:
        for rt in (warm, cold):
            subprocess.run(rt.argv("delete", "--force", "keeper"), capture_output=True,
                           env=env)
        for name in ("benchup", "benchfirst", "benchcold"):
            subprocess.run(warm.argv("network", "rm", "-f", name), capture_output=True,
                           env=env)
    print(f"# networks: handcar run of /bin/true, {rounds} interleaved rounds; medians "
          "(min-max), ms")
    for kind, values in samples.items():
        print(f"{kind:<32}{statistics.median(values):8.1f} ({min(values):.1f}-"
              f"{max(values):.1f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runtime", action="append", default=[], metavar="NAME=COMMAND",
                        help="a runtime to measure (default: handcar, runc and crun)")
    parser.add_argument("--networks", action="store_true",
                        help="measure what handcar's networks cost run, instead")
    args = parser.parse_args()
    if args.networks:
        top = Path(tempfile.mkdtemp(prefix="handcar-bench."))
        states = Path(tempfile.mkdtemp(prefix="handcar-bench.", dir=state_parent()))
        try:
            make_bundle(top)
            network_costs([shutil.which("handcar") or "handcar"], top, states, args.rounds)
        finally:
            shutil.rmtree(top, ignore_errors=True)
            shutil.rmtree(states, ignore_errors=True)
        return
    top = Path(tempfile.mkdtemp(prefix="handcar-bench."))
    states = Path(tempfile.mkdtemp(prefix="handcar-bench.", dir=state_parent()))
    print(f"# state roots in {states}", file=sys.stderr)
    try:
        bundle, sleeper, netns = make_bundle(top)
        specs = args.runtime or [f"handcar={shutil.which('handcar') or 'handcar'}",
                                 "runc=runc", "crun=crun"]
        runtimes = []
        for spec in specs:
            name, _, command = spec.partition("=")
            rt = Runtime(name, command.split(), str(states / f"state-{name}"))
            if works(rt, bundle):
                runtimes.append(rt)
        samples = {rt.name: {} for rt in runtimes}
        for rt in runtimes:
            for key in ("run", "create", "create, new netns", "start", "state", "exec",
                        "kill", "delete", "create+start+delete", "peak RSS of run (MiB)"):
                samples[rt.name][key] = []
        for _ in range(args.rounds):
            for rt in runtimes:                    # interleaved: A B A B ...
                round_of(rt, bundle, sleeper, netns, samples[rt.name])
        rates = {rt.name: (throughput(rt, bundle, 20, 1), throughput(rt, bundle, 20, 2))
                 for rt in runtimes}
        report(runtimes, samples, rates, args.rounds)
    finally:
        # an interrupted run leaves containers: delete them before their state goes
        for rt in (runtimes if "runtimes" in locals() else []):
            listed = subprocess.run(rt.argv("list", "-q"), capture_output=True, text=True)
            for container_id in listed.stdout.split():
                subprocess.run(rt.argv("delete", "--force", container_id), capture_output=True)
        shutil.rmtree(top, ignore_errors=True)
        shutil.rmtree(states, ignore_errors=True)


def state_parent():
    """Where the runtimes keep their state: on a tmpfs, as on users' machines, where it is
    $XDG_RUNTIME_DIR (/run/user/UID). The test user here has none, and /tmp is on disk,
    where each state.json replaced costs a write-back (ext4's auto_da_alloc)."""
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm"):
        if candidate and os.access(candidate, os.W_OK) and _is_tmpfs(candidate):
            return candidate
    return None


def _is_tmpfs(path):
    holding = [(point, fstype) for point, _root, fstype in mounts()
               if path == point or path.startswith(point.rstrip("/") + "/")]
    return max(holding, key=lambda mount: len(mount[0]))[1] == "tmpfs"


def report(runtimes, samples, rates, rounds):
    base = runtimes[0].name
    names = [rt.name for rt in runtimes]
    print(f"# {rounds} interleaved rounds; medians (min-max); ms unless said; "
          f"ratio = {base} / other")
    header = f"{'what':<24}" + "".join(f"{name:>24}" for name in names) + \
        "".join(f"{base + '/' + n:>14}" for n in names[1:])
    print(header)
    for key in samples[base]:
        if not samples[base][key]:
            continue
        scale = 1 if "MiB" in key else 1000
        cells, medians = [], []
        for name in names:
            values = [v * scale for v in samples[name][key]]
            median = statistics.median(values)
            medians.append(median)
            cells.append(f"{median:.1f} ({min(values):.1f}-{max(values):.1f})")
        ratios = [f"{medians[0] / m:.2f}" for m in medians[1:]]
        print(f"{key:<24}" + "".join(f"{c:>24}" for c in cells) + "".join(f"{r:>14}" for r in ratios))
    label = "create: netns / none"             # what a new network namespace adds
    ratios = [statistics.median(samples[n]["create, new netns"]) /
              statistics.median(samples[n]["create"]) for n in names]
    print(f"{label:<24}" + "".join(f"{r:>24.2f}" for r in ratios))
    for i, label in enumerate(("containers/s, sequential", "containers/s, 2 parallel")):
        values = [rates[name][i] for name in names]
        print(f"{label:<24}" + "".join(f"{v:>24.1f}" for v in values) +
              "".join(f"{values[0] / v:>14.2f}" for v in values[1:]))


if __name__ == "__main__":
    main()
