"""Transfers that go wrong: a connection cut mid-blob (resumed with a Range request),
proxies (HTTPS_PROXY, NO_PROXY), a blob that does not match its digest, a pull killed
half-way and the one after it, two pulls at once."""

import os
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

import imagebuild
from harness import HANDCAR
from regtier import PASSWORD, USER, skopeo


class CuttingProxy:
    """An HTTP CONNECT proxy on 127.0.0.1 (what HTTPS_PROXY names) that counts the
    tunnels it opens, can cut the first tunnel that carries more than `cut_after` bytes
    to the client, and can slow every tunnel down."""

    def __init__(self, cut_after=None, rate=None):
        self.cut_after = cut_after
        self.rate = rate                       # bytes per second to the client, or None
        self.tunnels = 0
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client):
        try:
            self._serve(client)
        except OSError:
            pass                               # the client (or a cut) closed it

    def _serve(self, client):
        with client:
            request = b""
            while b"\r\n\r\n" not in request:
                data = client.recv(4096)
                if not data:
                    return
                request += data
            method, target = request.split(b" ")[:2]
            if method != b"CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host, _, port = target.decode().rpartition(":")
            self.tunnels += 1
            with socket.create_connection((host, int(port))) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._pipe(client, upstream)

    def _pipe(self, client, upstream):
        sent = 0
        while True:
            readable, _, _ = select.select([client, upstream], [], [], 30)
            if not readable:
                return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                if sock is upstream:
                    if self.cut_after is not None and sent + len(data) > self.cut_after \
                            and self.cuts == 0:
                        self.cuts += 1
                        client.sendall(data[:self.cut_after - sent])
                        client.shutdown(socket.SHUT_RDWR)
                        return
                    sent += len(data)
                    client.sendall(data)
                    if self.rate:
                        time.sleep(len(data) / self.rate)
                else:
                    upstream.sendall(data)

    def stop(self):
        self.stopping = True
        self.listener.close()


@pytest.fixture
def proxy():
    proxies = []

    def make(**options):
        proxies.append(CuttingProxy(**options))
        return proxies[-1]
    yield make
    for one in proxies:
        one.stop()


@pytest.fixture(scope="session")
def base_tar(rootfs_template):
    return imagebuild._tar_of_directory(rootfs_template)


def big_image(tmp_path, registry, push, base_tar, name, megabytes=8, layers=1):
    """An image with `layers` layers of random (incompressible) data; its ID."""
    tars = [base_tar] + [imagebuild.tar_of_entries([(f"big{n}", os.urandom(megabytes << 20),
                                                     0o644, 0)]) for n in range(layers)]
    digest = imagebuild.write_layout_of_layers(tmp_path / name, tars, greeting=name)
    return push(f"oci:{tmp_path / name}:latest", registry, f"handcar/{name}:1"), digest[7:]


@pytest.fixture
def logged_in(user, registry):
    user.login_file(registry.host, USER, PASSWORD)
    return user


def proxied(proxy_url, no_proxy=""):
    return {"HTTPS_PROXY": proxy_url, "https_proxy": proxy_url, "NO_PROXY": no_proxy,
            "no_proxy": no_proxy}


def test_a_cut_transfer_is_resumed_through_the_proxy(logged_in, registry, push, base_tar,
                                                     tmp_path, proxy):
    reference, image_id = big_image(tmp_path, registry, push, base_tar, "resumed")
    cutting = proxy(cut_after=3 << 20)
    pulled = logged_in.ok("pull", reference, env=proxied(cutting.url))
    assert pulled.stdout == f"{image_id}\n"
    assert cutting.cuts == 1 and cutting.tunnels >= 2
    assert "Resuming blob" in pulled.stderr, pulled.stderr
    result = logged_in.ok("run", "--rm", "--network", "none", reference, "sh", "-c",
                          "wc -c < /big0")
    assert result.stdout.strip() == str(8 << 20)


def test_no_proxy_is_honoured(logged_in, registry, push, base_tar, tmp_path, proxy):
    reference, image_id = big_image(tmp_path, registry, push, base_tar, "direct", 1)
    counting = proxy()
    logged_in.ok("pull", "-q", reference, env=proxied(counting.url, "127.0.0.1"))
    assert counting.tunnels == 0, "NO_PROXY names the registry: no tunnel"
    logged_in.ok("rmi", reference)
    logged_in.ok("pull", "-q", reference, env=proxied(counting.url))
    assert counting.tunnels >= 1


def _blob_path(registry, digest):
    hex_digest = digest[7:]
    return (registry.dir / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
            / hex_digest[:2] / hex_digest / "data")


def test_a_blob_that_does_not_match_its_digest_is_refused(logged_in, registry, push,
                                                          base_tar, tmp_path):
    unique = imagebuild.tar_of_entries([("mismatch", os.urandom(1 << 20), 0o644, 0)])
    imagebuild.write_layout_of_layers(tmp_path / "layout", [base_tar, unique],
                                      greeting="mismatch")
    reference = push(f"oci:{tmp_path / 'layout'}:latest", registry, "handcar/mismatch:1")
    import gzip
    blob = _blob_path(registry, imagebuild.sha256(gzip.compress(unique, mtime=0)))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    result = logged_in("pull", reference)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("handcar:")]
    assert len(errors) == 1 and "does not match its digest" in errors[0]
    assert f"pulling {reference} from {registry.host}" in errors[0]
    store = logged_in.storage / "store"
    assert os.listdir(store / "tmp") == [] and os.listdir(store / "images") == []
    assert len(os.listdir(store / "layers")) <= 1, "at most the base, never the bad layer"
    logged_in.ok("image", "prune")
    assert os.listdir(store / "layers") == [], "prune removes layers no image uses"


def _wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_killed_pull_leaves_nothing_trusted_and_the_next_finishes(
        logged_in, registry, push, base_tar, tmp_path, proxy):
    reference, image_id = big_image(tmp_path, registry, push, base_tar, "killed", 4, 3)
    slow = proxy(rate=4 << 20)
    store = logged_in.storage / "store"
    pulling = subprocess.Popen([HANDCAR, "--root", str(logged_in.root), "pull", reference],
                               env={**logged_in.env, **proxied(slow.url)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: (store / "tmp").is_dir() and any(
            name.endswith(".blob") for name in os.listdir(store / "tmp")))
        time.sleep(0.5)
    finally:
        pulling.send_signal(signal.SIGKILL)
        pulling.wait()
    assert logged_in.ok("images", "-q", "-a").stdout == ""
    for layer in os.listdir(store / "layers"):
        assert (store / "layers" / layer / "layer.json").exists(), "only whole layers"
    pulled = logged_in.ok("pull", reference)
    assert pulled.stdout == f"{image_id}\n"
    assert os.listdir(store / "tmp") == [], "what the killed pull left is gone"
    assert len(logged_in.layers()) == 4


def test_pulls_at_once_all_succeed_and_store_each_layer_once(
        logged_in, registry, push, base_tar, tmp_path, proxy):
    """Two pulls of one image and one of another sharing its base, from three shells."""
    one, one_id = big_image(tmp_path, registry, push, base_tar, "together", 2, 2)
    two, two_id = big_image(tmp_path, registry, push, base_tar, "alongside", 2, 1)
    slow = proxy(rate=8 << 20)
    env = {**logged_in.env, **proxied(slow.url)}
    pulls = [subprocess.Popen([HANDCAR, "--root", str(logged_in.root), "pull", "-q", ref],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for ref in (one, one, two)]
    outputs = [p.communicate(timeout=180) for p in pulls]
    assert [p.returncode for p in pulls] == [0, 0, 0], outputs
    assert [out for out, _ in outputs] == [f"{one_id}\n", f"{one_id}\n", f"{two_id}\n"]
    assert len(logged_in.layers()) == 1 + 2 + 1, "the shared base once"
    assert sorted(logged_in.ok("images", "-q").stdout.split()) == sorted(
        [one_id[:12], two_id[:12]])


def test_a_client_certificate_from_certs_d(user, mtls_registry, pki, push, base_tar, tmp_path):
    """certs.d's *.cert and *.key: the client certificate a registry may ask for."""
    cert, key = pki.issue("handcar-client", san="DNS:handcar-client", client=True)
    certs = tmp_path / "push-certs"
    certs.mkdir()
    for source, name in ((pki.ca, "ca.crt"), (cert, "client.cert"), (key, "client.key")):
        (certs / name).write_bytes(source.read_bytes())
    tars = [base_tar, imagebuild.tar_of_entries([("mtls", b"m\n", 0o644, 0)])]
    digest = imagebuild.write_layout_of_layers(tmp_path / "layout", tars, greeting="mtls")
    skopeo("copy", "--dest-cert-dir", certs, f"oci:{tmp_path / 'layout'}:latest",
           f"docker://{mtls_registry.host}/handcar/mtls:1")
    reference = f"{mtls_registry.host}/handcar/mtls:1"
    refused = user("pull", reference)
    assert refused.returncode == 1
    assert f"pulling {reference} from {mtls_registry.host}" in refused.stderr
    mine = user.containers / "certs.d" / mtls_registry.host
    mine.mkdir(parents=True, exist_ok=True)
    (mine / "ca.crt").write_bytes(pki.ca.read_bytes())
    (mine / "client.cert").write_bytes(cert.read_bytes())
    assert "client.cert has no key" in user("pull", reference).stderr
    (mine / "client.key").write_bytes(key.read_bytes())
    assert user.ok("pull", "-q", reference).stdout == f"{digest[7:]}\n"
