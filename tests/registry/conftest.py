"""The registry tier: real registries (Debian's docker-registry, distribution 2.8) started
here on 127.0.0.1 with TLS from a CA these tests make, one with htpasswd (Basic) auth and
one with Bearer tokens from a small token server of ours; images built here and pushed
with skopeo; handcar pulling as the unprivileged user, with a HOME of its own (certs.d,
registries.conf), an auth file and an image store per test. Every test has a timeout,
and the daemons are stopped when the session ends."""

import base64
import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "integration"))

from harness import HANDCAR, MISSING, free_port  # noqa: E402
from harness import rootfs_template  # noqa: E402,F401 - a fixture
from regtier import (IDENTITY_TOKEN, PASSWORD, SKOPEO, TOKEN_PASSWORD, TOKEN_USER,  # noqa: E402
                     USER, skopeo)

REGISTRY = shutil.which("docker-registry")
HTPASSWD = shutil.which("htpasswd")
OPENSSL = shutil.which("openssl")
TEST_TIMEOUT = 240


def _missing():
    for program, package in ((REGISTRY, "docker-registry"), (SKOPEO, "skopeo"),
                             (HTPASSWD, "apache2-utils"), (OPENSSL, "openssl")):
        if program is None:
            return f"{package} is not installed (scripts/test installs it as root)"
    return MISSING


def pytest_collection_modifyitems(items):
    reason = _missing()
    for item in items:
        if reason and "registry" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def per_test_timeout(request):
    """Fail a test that runs longer than TEST_TIMEOUT seconds (SIGALRM)."""
    def expired(_signum, _frame):
        raise TimeoutError(f"{request.node.name} ran longer than {TEST_TIMEOUT} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# --- a CA, and certificates for 127.0.0.1 -------------------------------------------------------

class PKI:
    def __init__(self, directory):
        self.dir = directory
        self.ca_key, self.ca = directory / "ca.key", directory / "ca.crt"
        self._run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                  "-subj", "/CN=handcar test CA", "-keyout", self.ca_key, "-out", self.ca,
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def _run(self, *args):
        subprocess.run([OPENSSL, *map(str, args)], check=True, capture_output=True,
                       timeout=60)

    def issue(self, name, san="IP:127.0.0.1,DNS:localhost", client=False):
        """(cert, key) signed by the CA."""
        key, csr, cert = (self.dir / f"{name}.key", self.dir / f"{name}.csr",
                          self.dir / f"{name}.crt")
        extensions = self.dir / f"{name}.ext"
        usage = "clientAuth" if client else "serverAuth"
        extensions.write_text(f"subjectAltName={san}\nextendedKeyUsage={usage}\n"
                              "basicConstraints=CA:FALSE\n")
        self._run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                  "-keyout", key, "-out", csr)
        self._run("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                  "-CAcreateserial", "-days", "2", "-extfile", extensions, "-out", cert)
        return cert, key

    def sign_rs256(self, key, data):
        result = subprocess.run([OPENSSL, "dgst", "-sha256", "-sign", str(key)], input=data,
                                capture_output=True, check=True, timeout=30)
        return result.stdout


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


# --- registries -------------------------------------------------------------------

class Registry:
    """A docker-registry daemon on 127.0.0.1:port (https; with `client_ca`, only for
    clients with a certificate from it)."""

    def __init__(self, directory, pki, auth_config, name, client_ca=None):
        self.dir = directory
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.name = name
        cert, key = pki.issue(f"registry-{name}")
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(directory / "data")},
                        "delete": {"enabled": True}},
            "http": {"addr": self.host, "tls": {"certificate": str(cert), "key": str(key)}},
        }
        if auth_config:
            config["auth"] = auth_config
        if client_ca:
            config["http"]["tls"]["clientcas"] = [str(client_ca)]
        (directory / "config.yml").write_text(json.dumps(config))   # YAML reads JSON
        # started by a shell that exits at once: not a child of the test process, whose
        # other tiers wait for their own children (os.wait must find none of ours)
        started = subprocess.run(
            ["sh", "-c", '"$0" serve "$1" >"$2" 2>&1 </dev/null & echo $!', REGISTRY,
             str(directory / "config.yml"), str(directory / "registry.log")],
            capture_output=True, text=True, check=True, timeout=30)
        self.pid = int(started.stdout)
        context = ssl.create_default_context(cafile=str(pki.ca))
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock, \
                        context.wrap_socket(sock, server_hostname="127.0.0.1"):
                    break
            except OSError:
                if not self.running() or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"docker-registry did not start: "
                                       f"{(directory / 'registry.log').read_text()}") from None
                time.sleep(0.1)

    def running(self):
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except FileNotFoundError:
            return False

    def stop(self):
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not self.running():
                return


@pytest.fixture(scope="session")
def registry(tmp_path_factory, pki):
    """docker-registry with TLS and htpasswd (Basic) auth."""
    directory = tmp_path_factory.mktemp("registry")
    subprocess.run([HTPASSWD, "-Bbc", str(directory / "htpasswd"), USER, PASSWORD],
                   check=True, capture_output=True, timeout=60)
    server = Registry(directory, pki, {"htpasswd": {"realm": "handcar-test",
                                                    "path": str(directory / "htpasswd")}},
                      "basic")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mtls_registry(tmp_path_factory, pki):
    """docker-registry that takes only clients with a certificate from the test CA."""
    server = Registry(tmp_path_factory.mktemp("mtls-registry"), pki, None, "mtls",
                      client_ca=pki.ca)
    yield server
    server.stop()


class TokenServer:
    """A Bearer token server for docker-registry's token auth: JWTs (RS256, the signing
    certificate in x5c) for `public/*` to anyone and for everything to alice, who is
    known by her password (GET, Basic auth) or by her identity token (the OAuth2 POST of
    a refresh token, docker's token spec); records the scopes asked for."""

    def __init__(self, directory, pki):
        self.pki = pki
        self.signing_cert, self.signing_key = pki.issue("token-signer", san="DNS:token")
        self.cert, self.key = pki.issue("token-server")
        self.requests = []
        self.port = free_port()
        self.realm = f"https://127.0.0.1:{self.port}/token"
        self.service = "handcar-test-registry"
        self.issuer = "handcar-test-token-server"
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_args):
                pass

            def do_GET(self):
                from urllib.parse import parse_qs, urlsplit
                query = parse_qs(urlsplit(self.path).query)
                user = server.user(self.headers.get("Authorization", ""))
                server.requests.append({"method": "GET", "user": user,
                                        "scopes": query.get("scope", []),
                                        "service": query.get("service", [""])[0]})
                if user is False:
                    self.answer(401, {})
                    return
                self.answer(200, {"token": server.token(user, query.get("scope", [])),
                                  "expires_in": 300})

            def do_POST(self):
                """OAuth2: grant_type=refresh_token, refresh_token, client_id, service,
                scope (space-separated), as application/x-www-form-urlencoded."""
                from urllib.parse import parse_qs
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                field = {key: values[0] for key, values in form.items()}
                scopes = field.get("scope", "").split()
                known = field.get("refresh_token") == IDENTITY_TOKEN
                server.requests.append({
                    "method": "POST", "user": TOKEN_USER if known else False,
                    "scopes": scopes, "service": field.get("service", ""),
                    "grant_type": field.get("grant_type"), "client_id": field.get("client_id"),
                    "content_type": self.headers.get("Content-Type", "")})
                if field.get("grant_type") != "refresh_token" or not field.get("client_id"):
                    self.answer(400, {"error": "unsupported_grant_type"})
                elif not known:
                    self.answer(401, {"error": "invalid_grant"})
                else:
                    self.answer(200, {"access_token": server.token(TOKEN_USER, scopes),
                                      "expires_in": 300, "scope": " ".join(scopes)})

            def answer(self, status, document):
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(self.key))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def user(self, authorization):
        """The user name, None for anonymous, False for wrong credentials."""
        if not authorization:
            return None
        kind, _, encoded = authorization.partition(" ")
        try:
            name, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        if kind != "Basic" or (name, password) != (TOKEN_USER, TOKEN_PASSWORD):
            return False
        return name

    def token(self, user, scopes):
        access = []
        for scope in scopes:
            for one in scope.split(" "):
                kind, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                if kind == "repository" and (user or name.startswith("public/")):
                    allowed = [a for a in actions.split(",") if a in ("pull", "push") or
                               (user and a == "*")]
                    access.append({"type": "repository", "name": name, "actions": allowed})
        now = int(time.time())
        with open(self.signing_cert) as f:
            pem = "".join(line for line in f.read().splitlines() if "-----" not in line)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [pem]}
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service,
                  "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": hashlib.sha256(os.urandom(16)).hexdigest(), "access": access}

        def encode(document):
            return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=")
        signing_input = encode(header) + b"." + encode(claims)
        signature = base64.urlsafe_b64encode(
            self.pki.sign_rs256(self.signing_key, signing_input)).rstrip(b"=")
        return (signing_input + b"." + signature).decode()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory, pki):
    """docker-registry with Bearer token auth from TokenServer."""
    directory = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(directory, pki)
    server = Registry(directory, pki, {"token": {
        "realm": tokens.realm, "service": tokens.service, "issuer": tokens.issuer,
        "rootcertbundle": str(tokens.signing_cert)}}, "token")
    server.tokens = tokens
    yield server
    server.stop()
    tokens.stop()


# --- pushing images -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def push(pki, tmp_path_factory):
    """push(source, registry, "repo:tag", creds=..., *more skopeo flags): skopeo copy
    of an image (oci:DIR[:TAG], ...) to the registry, trusting the test CA."""
    certs = tmp_path_factory.mktemp("skopeo-certs")
    shutil.copy(pki.ca, certs / "ca.crt")

    def push_image(source, server, target, creds=f"{USER}:{PASSWORD}", *flags):
        skopeo("copy", "--dest-cert-dir", certs, "--dest-creds", creds, *flags, source,
               f"docker://{server.host}/{target}")
        return f"{server.host}/{target}"
    return push_image


# --- handcar as a user of the registries -------------------------------------------

class User:
    """handcar with a HOME of its own (~/.config/containers: certs.d trusting the test
    CA for the given registries, registries.conf), an XDG_RUNTIME_DIR (auth.json) and a
    private image store and state root."""

    def __init__(self, base, pki, hosts):
        self.base = base
        self.home = base / "home"
        self.containers = self.home / ".config" / "containers"
        for host in hosts:
            certs = self.containers / "certs.d" / host
            certs.mkdir(parents=True)
            shutil.copy(pki.ca, certs / "ca.crt")
        self.runtime = base / "run"
        self.runtime.mkdir(mode=0o700)
        self.storage = base / "storage"
        self.config = base / "handcar.toml"
        self.config.write_text(f'storage = "{self.storage}"\n')
        self.root = base / "state"
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith(("REGISTRY_AUTH_FILE", "CONTAINERS_",
                                           "DOCKER_CONFIG", "HTTP_PROXY", "HTTPS_PROXY",
                                           "http_proxy", "https_proxy", "NO_PROXY",
                                           "no_proxy"))}
        self.env.update(HOME=str(self.home), XDG_RUNTIME_DIR=str(self.runtime),
                        HANDCAR_CONFIG=str(self.config), XDG_CONFIG_HOME=str(
                            self.home / ".config"), XDG_CACHE_HOME=str(self.home / ".cache"))

    def registries_conf(self, text):
        self.containers.mkdir(parents=True, exist_ok=True)
        (self.containers / "registries.conf").write_text(text)

    def login_file(self, host, user, password):
        path = self.runtime / "containers" / "auth.json"
        path.parent.mkdir(exist_ok=True)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
        os.chmod(path, 0o600)

    def __call__(self, *args, timeout=180, env=None, **kwargs):
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run([HANDCAR, "--root", str(self.root), *args], timeout=timeout,
                              env={**self.env, **(env or {})}, cwd=self.base, **kwargs)

    def ok(self, *args, **kwargs):
        result = self(*args, **kwargs)
        assert result.returncode == 0, f"handcar {' '.join(args)}: {result.stderr}"
        return result

    def layers(self):
        try:
            return sorted(os.listdir(self.storage / "store" / "layers"))
        except FileNotFoundError:
            return []

    def cleanup(self):
        for name in self("ps", "-a").stdout.split("\n")[1:]:
            if name.split():
                self("rm", "-f", name.split()[0])
        for image_id in self("images", "-q", "-a").stdout.split():
            self("rmi", "-f", image_id)
        self("image", "prune")                 # the layers of pulls that failed


@pytest.fixture
def user(tmp_path, pki, registry, token_registry):
    person = User(tmp_path, pki, [registry.host, token_registry.host,
                                  f"127.0.0.1:{token_registry.tokens.port}"])
    yield person
    person.cleanup()
    assert person.layers() == [], "every layer removed with the images"
