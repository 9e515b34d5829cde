"""The corners of the distribution protocol a well-behaved registry does not show: a
registry of ours (HTTPS with the test CA) that answers 503 and 429 before it serves,
redirects blobs to another host (which must not get the Authorization header), asks for
another token scope with a 401, and serves a schema 1 manifest."""

import gzip
import hashlib
import http.server
import json
import shutil
import ssl
import threading

import pytest

import imagebuild
from harness import free_port


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    def __init__(self, pki, layers):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log = []                       # (path, authorization) of every request
        self.failures = {}                  # repository -> statuses still to answer
        self.blobs, self.manifests = {}, {}
        config = json.dumps(imagebuild.image_config([sha256(t) for t in layers])).encode()
        stored = [gzip.compress(t, mtime=0) for t in layers]
        for blob in [config] + stored:
            self.blobs[sha256(blob)] = blob
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": sha256(b), "size": len(b)} for b in stored]}).encode()
        self.image_id = sha256(config)[7:]
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):
                pass

            def reply(self, status, body=b"", headers=()):
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                server.log.append((self.path, self.headers.get("Authorization")))
                server.handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        cert, key = pki.issue("fake-registry")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token_for(self, scopes):
        return "T." + ".".join(sorted(scopes)).replace(" ", "+")

    def handle(self, request):
        from urllib.parse import parse_qs, urlsplit
        parts = urlsplit(request.path)
        path = parts.path
        challenge = (f'Bearer realm="https://{self.host}/token",service="fake"')
        if path == "/token":
            scopes = [s for value in parse_qs(parts.query).get("scope", [])
                      for s in value.split(" ")]
            body = json.dumps({"token": self.token_for(scopes)}).encode()
            return request.reply(200, body, [("Content-Type", "application/json")])
        if path.startswith("/storage/"):
            return request.reply(200, self.blobs[path[len("/storage/"):]])
        if path == "/v2/":
            return request.reply(401, b"", [("WWW-Authenticate", challenge)])
        _, _, rest = path.partition("/v2/")
        repository, kind, reference = rest.rsplit("/", 2)
        token = request.headers.get("Authorization", "")
        wanted = f"repository:{repository}:pull"
        if repository == "other-scope":              # wants a second scope as well
            wanted_scopes = [wanted, "repository:shared/base:pull"]
            if token != "Bearer " + self.token_for(wanted_scopes):
                return request.reply(401, b"", [("WWW-Authenticate", challenge + (
                    f',scope="{" ".join(wanted_scopes)}",error="insufficient_scope"'))])
        elif wanted not in token:
            return request.reply(401, b"", [("WWW-Authenticate",
                                              challenge + f',scope="{wanted}"')])
        pending = self.failures.get(repository)
        if pending:
            status = pending.pop(0)
            return request.reply(status, b"", [("Retry-After", "1")] if status == 429 else [])
        if kind == "manifests":
            if repository == "schema-one":
                body = json.dumps({"schemaVersion": 1, "name": repository, "tag": "1",
                                   "fsLayers": [], "signatures": []}).encode()
                return request.reply(200, body, [
                    ("Content-Type",
                     "application/vnd.docker.distribution.manifest.v1+prettyjws")])
            return request.reply(200, self.manifest, [
                ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                ("Docker-Content-Digest", sha256(self.manifest))])
        if repository == "redirected":                 # to blob storage, another host
            return request.reply(307, b"", [
                ("Location", f"https://localhost:{self.port}/storage/{reference}")])
        return request.reply(200, self.blobs[reference])

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def fake(pki, rootfs_template):
    layers = [imagebuild._tar_of_directory(rootfs_template),
              imagebuild.tar_of_entries([("etc", None, 0o755, 0),
                                         ("etc/motd", b"fake\n", 0o644, 0)])]
    server = FakeRegistry(pki, layers)
    yield server
    server.stop()


@pytest.fixture
def client(user, fake, pki):
    """The test user, trusting the fake registry's certificate (also as `localhost`)."""
    for host in (fake.host, f"localhost:{fake.port}"):
        certs = user.containers / "certs.d" / host
        certs.mkdir(parents=True, exist_ok=True)
        shutil.copy(pki.ca, certs / "ca.crt")
    fake.log.clear()
    return user


def test_429_and_5xx_are_retried(client, fake):
    fake.failures["flaky"] = [503, 502, 429]
    pulled = client.ok("pull", "-q", f"{fake.host}/flaky:1")
    assert pulled.stdout == f"{fake.image_id}\n"
    assert fake.failures["flaky"] == []
    fake.failures["down"] = [503] * 10
    refused = client("pull", f"{fake.host}/down:1")
    assert refused.returncode == 1 and "HTTP 503" in refused.stderr


def test_redirects_do_not_carry_the_authorization_header(client, fake):
    client.ok("pull", "-q", f"{fake.host}/redirected:1")
    storage = [auth for path, auth in fake.log if path.startswith("/storage/")]
    assert storage and all(auth is None for auth in storage)
    assert all(auth for path, auth in fake.log if "/blobs/" in path)


def test_a_401_naming_another_scope_gets_a_token_for_it(client, fake):
    client.ok("pull", "-q", f"{fake.host}/other-scope:1")
    tokens = [path for path, _ in fake.log if path.startswith("/token")]
    assert any("shared%2Fbase" in path or "shared/base" in path for path in tokens), tokens


def test_schema_1_is_refused_by_name(client, fake):
    refused = client("pull", f"{fake.host}/schema-one:1")
    assert refused.returncode == 1
    assert "Docker schema 1 manifest" in refused.stderr
    assert f"pulling {fake.host}/schema-one:1 from {fake.host}" in refused.stderr
