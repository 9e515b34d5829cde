"""handcar's pull against podman's (and skopeo copy into an OCI layout) from one local
registry, cold stores, interleaved A B C A B C; then `run --rm IMAGE true` of a pulled
image against `podman run --rm`, with the default network and with --network none.

Run it as the unprivileged user (scripts/pullbench does the set-up and that):
    python3 scripts/pullbench.py [--rounds 5]
It is a benchmark, not a test: it asserts nothing. The registry is docker-registry with
TLS from a CA made here; the images are built here: a large one (busybox and six layers
of 24 MB: random data, text, a few thousand small files) and a small one (busybox and a
file).
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
import imagebuild  # noqa: E402


def make_busybox_rootfs(root):
    """Debian's static busybox and its applets (as the tests' rootfs)."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in run([busybox, "--list"]).stdout.split():
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)
    for name in ("etc", "tmp", "root"):
        (root / name).mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    return root


def run(argv, env=None, check=True):
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                            env=env, timeout=1800)
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))}: {result.stderr.strip()}")
    return result


def timed(argv, env=None):
    started = time.monotonic()
    run(argv, env)
    return time.monotonic() - started


def pki(where):
    ca_key, ca = where / "ca.key", where / "ca.crt"
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=bench CA", "-keyout", ca_key, "-out", ca,
         "-addext", "basicConstraints=critical,CA:TRUE"])
    key, csr, cert, ext = (where / n for n in ("r.key", "r.csr", "r.crt", "r.ext"))
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=registry",
         "-keyout", key, "-out", csr])
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
         "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", cert])
    return ca, cert, key


def start_registry(where, cert, key):
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
              "storage": {"filesystem": {"rootdirectory": str(where / "data")}},
              "http": {"addr": f"127.0.0.1:{port}",
                       "tls": {"certificate": str(cert), "key": str(key)}}}
    (where / "config.yml").write_text(json.dumps(config))
    process = subprocess.Popen(["docker-registry", "serve", str(where / "config.yml")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    return process, f"127.0.0.1:{port}"


def large_layers(rootfs):
    layers = [imagebuild._tar_of_directory(rootfs)]
    size = 24 << 20
    text = b"".join(f"line {n}: the quick brown fox jumps over the lazy dog\n".encode()
                    for n in range(size // 50))[:size]
    for n in range(6):
        kind = n % 3
        if kind == 0:
            entries = [(f"data{n}/random", os.urandom(size), 0o644, 0)]
        elif kind == 1:
            entries = [(f"data{n}/text", text, 0o644, 0)]
        else:
            entries = [(f"data{n}/f{i:05d}", os.urandom(8192), 0o644, 0)
                       for i in range(size // 8192)]
        layers.append(imagebuild.tar_of_entries([(f"data{n}", None, 0o755, 0)] + entries))
    return layers


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    handcar = shutil.which("handcar")
    top = Path(tempfile.mkdtemp(prefix="handcar-pullbench-"))
    os.chmod(top, 0o700)
    ca, cert, key = pki(top)
    registry, host = start_registry(top, cert, key)
    home = top / "home"
    (home / ".config" / "containers" / "certs.d" / host).mkdir(parents=True)
    shutil.copy(ca, home / ".config" / "containers" / "certs.d" / host / "ca.crt")
    runtime = top / "run"
    runtime.mkdir(mode=0o700)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime),
           "LANG": "C.UTF-8"}
    certs = home / ".config" / "containers" / "certs.d" / host
    try:
        rootfs = make_busybox_rootfs(top / "rootfs")
        images = {}
        for name, layers in (("large", large_layers(rootfs)),
                             ("small", [imagebuild._tar_of_directory(rootfs),
                                        imagebuild.tar_of_entries([("x", b"x\n", 0o644, 0)])])):
            imagebuild.write_layout_of_layers(top / name, layers, greeting=name)
            run(["skopeo", "--insecure-policy", "copy", "--dest-cert-dir", certs,
                 f"oci:{top / name}:latest", f"docker://{host}/bench/{name}:1"])
            images[name] = f"{host}/bench/{name}:1"
        results = {}

        def handcar_pull(image, n):
            config = top / f"h{n}.toml"
            config.write_text(f'storage = "{top / f"h{n}"}"\n')
            return timed([handcar, "pull", "-q", image], {**env, "HANDCAR_CONFIG": str(config)})

        def podman_flags(n):
            return ["--root", top / f"p{n}", "--runroot", top / f"pr{n}", "--storage-driver",
                    "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]

        def podman_pull(image, n):
            return timed(["podman", *podman_flags(n), "pull", "-q", "--cert-dir", certs, image],
                         env)

        def skopeo_copy(image, n):
            return timed(["skopeo", "--insecure-policy", "copy", "--src-cert-dir", certs,
                          f"docker://{image}", f"oci:{top / f's{n}'}:latest"])

        counter = 0
        for name, image in images.items():
            for _round in range(options.rounds):
                for tool, pull in (("handcar", handcar_pull), ("podman", podman_pull),
                                   ("skopeo copy", skopeo_copy)):
                    counter += 1
                    results.setdefault((name, tool), []).append(pull(image, counter))
        print(f"pull, cold store, {options.rounds} rounds, seconds (median):")
        for name in images:
            base = statistics.median(results[(name, "podman")])
            for tool in ("handcar", "podman", "skopeo copy"):
                median = statistics.median(results[(name, tool)])
                print(f"  {name:5} {tool:11} {median:7.2f}  {median / base:5.2f}x podman")
        # run --rm of a pulled image
        config = top / "run.toml"
        config.write_text(f'storage = "{top / "run-store"}"\n')
        henv = {**env, "HANDCAR_CONFIG": str(config)}
        run([handcar, "pull", "-q", images["small"]], henv)
        # crun refuses this hybrid host's cgroups: runc, where installed, as scripts/bench
        pflags = podman_flags("run") + (["--runtime", "runc"] if shutil.which("runc") else [])
        run(["podman", *pflags, "pull", "-q", "--cert-dir", certs, images["small"]], env)
        times = {}
        for _round in range(max(options.rounds, 10)):
            for network in ("default", "none"):
                extra = [] if network == "default" else ["--network", "none"]
                times.setdefault(("handcar", network), []).append(timed(
                    [handcar, "run", "--rm", *extra, images["small"], "true"], henv))
                times.setdefault(("podman", network), []).append(timed(
                    ["podman", *pflags, "run", "--rm", *extra, images["small"], "true"], env))
        print("run --rm IMAGE true, seconds (median):")
        for network in ("default", "none"):
            h = statistics.median(times[("handcar", network)])
            p = statistics.median(times[("podman", network)])
            print(f"  network {network:8} handcar {h:6.3f}  podman {p:6.3f}  {h / p:5.2f}x")
    finally:
        registry.terminate()
        registry.wait()
        subprocess.run(["podman", "unshare", "rm", "-rf", str(top)], env=env,
                       capture_output=True)
        subprocess.run(["podman", "system", "migrate"], env=env, capture_output=True)
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
