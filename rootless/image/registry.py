"""Pulling from a registry: the pull side of the OCI distribution spec (docker's registry
HTTP API v2), spoken through urllib3.

- Authentication: the /v2/ challenge, then Bearer tokens from its realm (anonymous, or
  with the user's credentials as Basic auth, or for an identity token the OAuth2 POST
  of a refresh token), one per repository scope, fetched again when a 401 names
  another scope (or the token expired); or Basic auth on each request.
- Manifests: OCI index and manifest, Docker schema 2 list and manifest (schema 1 refused
  by name); an index's image chosen for the platform (oci.image.choose_platform). Every
  manifest and blob is checked against its digest before it is used.
- Transfers: redirects (to blob storage) followed, the Authorization header never sent
  to another host; 429, 5xx and dropped connections retried with backoff (Retry-After
  honoured), an interrupted blob resumed with a Range request; a few layers at a time
  (threads), those already stored never fetched.
- Network: HTTPS_PROXY/HTTP_PROXY/NO_PROXY as urllib reads them; TLS verified with the
  system's trust store plus the registry's certs.d directory (config.py): *.crt CAs,
  *.cert/*.key client certificates. An insecure registry (registries.conf) may be
  plain HTTP or an unverified certificate.

urllib3 is a well-kept HTTP client (the one under requests and pip) that leaves these
decisions to its caller: no retries, redirects or proxies of its own unless asked for,
one dependency and no others; it is imported only by the verbs that talk to registries.
"""

import base64
import hashlib
import os
import random
import ssl
import threading
import time
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3
from urllib3 import exceptions as http_errors

from oci import jsonio
from oci.image import (DOCKER_LIST, DOCKER_MANIFEST, DOCKER_SCHEMA1, OCI_INDEX, OCI_MANIFEST,
                       ImageError, check_digest, choose_platform, is_index,
                       layer_compression, manifest_parts)
from oci.record import Record
from rootless import log

ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST, *DOCKER_SCHEMA1))
MAX_DOCUMENT = 4 << 20            # a manifest or config larger than this is refused
CHUNK = 1 << 20
RETRIES = 5                       # tries after the first, for 429, 5xx and drops
BACKOFF = 0.5                     # seconds before the first retry, doubled each time
MAX_WAIT = 30                     # the longest Retry-After we honour
RETRY_STATUSES = (429, 500, 502, 503, 504)
REDIRECTS = (301, 302, 303, 307, 308)
PARALLEL = 3                      # layers downloaded at a time
TIMEOUT = urllib3.Timeout(connect=30, read=60)
DROPS = (http_errors.ProtocolError, http_errors.ReadTimeoutError,
         http_errors.ConnectTimeoutError)


class RegistryError(ImageError):
    """A registry refused or failed a request; `reason` is why, for one line."""

    def __init__(self, host, reason, retry_elsewhere=True):
        self.host, self.reason, self.retry_elsewhere = host, reason, retry_elsewhere
        super().__init__(f"{host}: {reason}")


class Reply(Record):
    """A whole response (small: a document, a token): status, headers and body."""
    FIELDS = {"status": 0, "headers": {}, "body": b""}


class Challenge(Record):
    FIELDS = {"kind": "", "params": {}}          # kind: bearer | basic | none


def parse_challenge(header):
    """A WWW-Authenticate header: Bearer realm="...",service="...",scope="..." or
    Basic realm="..."; None when it is neither."""
    kind, _, rest = header.strip().partition(" ")
    kind = kind.lower()
    if kind not in ("bearer", "basic"):
        return None
    params, i = {}, 0
    while i < len(rest):
        equals = rest.find("=", i)
        if equals < 0:
            break
        key = rest[i:equals].strip(" ,").lower()
        i = equals + 1
        if rest[i:i + 1] == '"':
            end = rest.find('"', i + 1)
            end = len(rest) if end < 0 else end
            params[key], i = rest[i + 1:end], end + 1
        else:
            end = rest.find(",", i)
            end = len(rest) if end < 0 else end
            params[key], i = rest[i:end].strip(), end
        i = rest.find(",", i)
        i = len(rest) if i < 0 else i + 1
    return Challenge(kind, params)


def tls_context(host, verify):
    """The system's trust store plus the host's certs.d CAs and client certificates."""
    from rootless.image.config import tls_files
    context = ssl.create_default_context()
    cas, pairs = tls_files(host)
    for path in cas:
        try:
            context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as err:
            raise RegistryError(host, f"{path}: not a CA certificate ({err})") from None
    for cert, key in pairs:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as err:
            raise RegistryError(host, f"{cert} and {key}: not a certificate and its key "
                                f"({err})") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class RegistryClient:
    """Requests to one registry (host[:port]), with its authentication and TLS."""

    def __init__(self, host, credentials=None, verify=True, insecure=False):
        self.host = host
        self.credentials = credentials
        self.insecure = insecure                 # plain HTTP allowed, and no verification
        self.verify = verify and not insecure
        self.scheme = "https"
        self.challenge = None
        self.tokens = {}                         # scope -> Bearer token
        self.token_lock = threading.Lock()       # tokens are shared by download threads
        self.manager_lock = threading.Lock()
        self.context = tls_context(host, self.verify)
        self.managers = {}
        if not self.verify:
            urllib3.disable_warnings(http_errors.InsecureRequestWarning)

    @classmethod
    def for_host(cls, host, credentials=None, verify=True):
        """A client for `host` as registries.conf and the auth files say (login)."""
        from oci.registries import registry_insecure
        from rootless.image.config import registries_conf
        return cls(host, credentials, verify=verify,
                   insecure=registry_insecure(registries_conf(), host))

    # --- connections ------------------------------------------------------------------

    def _manager(self, url):
        """A pool manager for url: direct, or through the proxy the environment names
        for it (HTTPS_PROXY, HTTP_PROXY, NO_PROXY)."""
        from urllib.request import getproxies, proxy_bypass_environment
        parts = urlsplit(url)
        proxies = getproxies()
        proxy = proxies.get(parts.scheme)
        if proxy and proxy_bypass_environment(parts.netloc, proxies):
            proxy = None
        with self.manager_lock:
            return self._manager_for(proxy)

    def _manager_for(self, proxy):
        manager = self.managers.get(proxy)
        if manager is None:
            options = dict(ssl_context=self.context, retries=False, timeout=TIMEOUT,
                           maxsize=PARALLEL + 1)
            if not self.verify:
                options.update(cert_reqs="CERT_NONE", assert_hostname=False)
            manager = urllib3.ProxyManager(proxy, **options) if proxy \
                else urllib3.PoolManager(**options)
            self.managers[proxy] = manager
        return manager

    def url(self, path):
        return f"{self.scheme}://{self.host}{path}"

    def request(self, method, url, scope=None, headers=None, stream=False,
                authenticate=True, body=None):
        """The response to a request (redirects followed, 401s answered, 429s, 5xx and
        drops retried): a Reply, or with `stream` urllib3's response to read from; its
        status is the caller's business. RegistryError when the registry cannot be
        reached."""
        url = url if "://" in url else self.url(url)
        headers = dict(headers or {})
        attempt, redirects, answered = 0, 0, False
        while True:
            send = dict(headers)
            same_host = urlsplit(url).netloc == self.host
            if authenticate and same_host:
                authorization = self._authorization(scope)
                if authorization:
                    send["Authorization"] = authorization
            try:
                response = self._manager(url).request(
                    method, url, headers=send, body=body, redirect=False, retries=False,
                    preload_content=False, timeout=TIMEOUT)
            except http_errors.SSLError as err:
                raise RegistryError(self.host, f"TLS: {_reason(err)}") from None
            except http_errors.ProxyError as err:
                raise RegistryError(self.host, f"the proxy: {_reason(err)}") from None
            except http_errors.NewConnectionError as err:
                raise RegistryError(self.host, f"cannot connect: {_reason(err)}") from None
            except DROPS as err:
                attempt += 1
                if attempt > RETRIES:
                    raise RegistryError(self.host, f"{_reason(err)} (tried {attempt} "
                                        "times)") from None
                _backoff(attempt, None, f"{self.host}: {_reason(err)}")
                continue
            except http_errors.HTTPError as err:
                raise RegistryError(self.host, _reason(err)) from None
            status = response.status
            if status in REDIRECTS and response.headers.get("Location"):
                _discard(response)
                redirects += 1
                if redirects > 10:
                    raise RegistryError(self.host, f"more than 10 redirects from {url}")
                url = urljoin(url, response.headers["Location"])
                if status == 303:
                    method, body = "GET", None
                continue
            if status == 401 and authenticate and same_host and not answered:
                challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
                if challenge is not None and (challenge.kind == "bearer"
                                              or self.challenge is None):
                    _discard(response)
                    answered = True
                    self._answer(challenge, scope)
                    continue
            if status in RETRY_STATUSES and attempt < RETRIES:
                attempt += 1
                wait = response.headers.get("Retry-After")
                _discard(response)
                _backoff(attempt, wait, f"{self.host}: HTTP {status}")
                continue
            if stream:
                return response
            return Reply(status, response.headers,
                         _read_limited(response, MAX_DOCUMENT, self.host))

    # --- authentication ----------------------------------------------------------------

    def ping(self):
        """GET /v2/: what authentication the registry asks for. An insecure registry
        that does not speak TLS is spoken to in plain HTTP."""
        try:
            response = self.request("GET", "/v2/", authenticate=False)
        except RegistryError:
            if not self.insecure or self.scheme == "http":
                raise
            self.scheme = "http"
            response = self.request("GET", "/v2/", authenticate=False)
        if response.status == 401:
            challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            if challenge is None:
                raise RegistryError(self.host, "asks for an authentication it does not name "
                                    "(no WWW-Authenticate Bearer or Basic)")
            self.challenge = challenge
        elif response.status == 200:
            self.challenge = Challenge("none")
        elif response.status == 404:
            raise RegistryError(self.host, "not a registry (GET /v2/ is 404)")
        else:
            raise self.error(response, "/v2/")

    def _authorization(self, scope):
        challenge = self.challenge
        if challenge is None or challenge.kind == "none":
            return None
        if challenge.kind == "basic":
            if not self.credentials:
                return None
            if self.credentials.identity_token:
                raise RegistryError(self.host, "asks for Basic auth, and an identity token "
                                    f"({self.credentials.source}) is only for a token "
                                    "server")
            return "Basic " + _basic(self.credentials)
        with self.token_lock:
            token = self.tokens.get(scope)
            if token is None:
                token = self._fetch_token(challenge.params, [scope] if scope else [])
                self.tokens[scope] = token
        return f"Bearer {token}" if token else None

    def _answer(self, challenge, scope):
        """After a 401: a token for the scope it names (with ours), or Basic auth."""
        if challenge.kind == "basic":
            self.challenge = challenge
            if not self.credentials:
                raise RegistryError(self.host, "asks for a user name and password "
                                    f"(handcar login {self.host})", retry_elsewhere=True)
            return
        self.challenge = challenge
        wanted = [scope] + (challenge.params.get("scope") or "").split(" ")
        wanted = [s for s in wanted if s]
        with self.token_lock:
            self.tokens[scope] = self._fetch_token(challenge.params,
                                                   list(dict.fromkeys(wanted)))

    def _fetch_token(self, params, scopes):
        realm = params.get("realm", "")
        if not realm.startswith("https://") and not (self.insecure
                                                     and realm.startswith("http://")):
            raise RegistryError(self.host, f"its token server {realm or '(none)'} is not "
                                "an https:// URL")
        if self.credentials and self.credentials.identity_token:
            response = self._oauth2_token(realm, params, scopes)
        else:
            query = [("service", params["service"])] if params.get("service") else []
            query += [("scope", scope) for scope in scopes]
            headers = {"Authorization": "Basic " + _basic(self.credentials)} \
                if self.credentials else {}
            url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query \
                else realm
            response = self.request("GET", url, headers=headers, authenticate=False)
        if response.status in (400, 401, 403) and self.credentials:
            what = "identity token" if self.credentials.identity_token \
                else "user name or password"
            raise RegistryError(self.host, f"the {what} was refused by the token server "
                                f"({self.credentials.source})", retry_elsewhere=True)
        if response.status in (401, 403):
            raise RegistryError(self.host, "its token server refuses anonymous access "
                                f"(handcar login {self.host})", retry_elsewhere=True)
        if response.status != 200:
            raise self.error(response, "the token server")
        try:
            answer = jsonio.loads(response.body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(self.host, "its token server answered without a token")
        return token

    def _oauth2_token(self, realm, params, scopes):
        """The docker token spec's OAuth2 flow for an identity token (a refresh token):
        a form POSTed to the realm, as docker and containers/image do."""
        form = [("grant_type", "refresh_token"),
                ("refresh_token", self.credentials.identity_token),
                ("client_id", "handcar")]
        if params.get("service"):
            form.append(("service", params["service"]))
        if scopes:
            form.append(("scope", " ".join(scopes)))
        return self.request("POST", realm, authenticate=False, body=urlencode(form),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})

    # --- documents and blobs ---------------------------------------------------------------

    def manifest(self, repository, reference):
        """(bytes, document, media type, digest) of a manifest or index, checked against
        its digest (the one asked for, or the one the registry says)."""
        response = self.request("GET", f"/v2/{repository}/manifests/{reference}",
                                scope=f"repository:{repository}:pull",
                                headers={"Accept": ACCEPT})
        if response.status != 200:
            raise self.error(response, f"manifest {reference}")
        body = response.body
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        said = response.headers.get("Docker-Content-Digest", "")
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(self.host, f"manifest {reference}: the content does not "
                                f"match the digest (it is {digest})")
        if said.startswith("sha256:") and said != digest:
            raise RegistryError(self.host, f"manifest {reference}: the content does not "
                                f"match Docker-Content-Digest {said}")
        media_type = response.headers.get("Content-Type", "").partition(";")[0].strip()
        try:
            document = jsonio.loads(body)
        except ValueError as err:
            raise RegistryError(self.host, f"manifest {reference}: not valid JSON: {err}") from None
        if not isinstance(document, dict):
            raise RegistryError(self.host, f"manifest {reference}: not a JSON object")
        media_type = document.get("mediaType") or media_type
        if media_type in DOCKER_SCHEMA1 or document.get("schemaVersion") == 1:
            raise RegistryError(self.host, f"manifest {reference} is a Docker schema 1 "
                                "manifest (application/vnd.docker.distribution.manifest.v1"
                                "+json), which handcar does not support, as docker and "
                                "podman dropped it: push the image again with a newer "
                                "tool", retry_elsewhere=False)
        return body, document, media_type, digest

    def manifest_digest(self, repository, reference):
        """The digest the registry gives `reference` (a HEAD request)."""
        response = self.request("HEAD", f"/v2/{repository}/manifests/{reference}",
                                scope=f"repository:{repository}:pull",
                                headers={"Accept": ACCEPT})
        if response.status != 200:
            raise self.error(response, f"manifest {reference}")
        return response.headers.get("Docker-Content-Digest", "")

    def blob(self, repository, digest):
        """A small blob (a config), checked against its digest."""
        check_digest(digest, self.host)
        response = self.request("GET", f"/v2/{repository}/blobs/{digest}",
                                scope=f"repository:{repository}:pull")
        if response.status != 200:
            raise self.error(response, f"blob {digest}")
        data = response.body
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise RegistryError(self.host, f"blob {digest}: the content does not match "
                                "its digest", retry_elsewhere=False)
        return data

    def download(self, repository, digest, size, path, progress, label, cancelled):
        """Fetch a blob into `path`, checked against its digest and size; resumed with a
        Range request where a transfer breaks. A blob that does not match is removed."""
        check_digest(digest, self.host)
        started = time.monotonic()
        hasher, received, attempt = hashlib.sha256(), 0, 0
        progress.download_started(label, size)
        with open(path, "wb") as out:
            while True:
                headers = {"Range": f"bytes={received}-"} if received else {}
                response = self.request("GET", f"/v2/{repository}/blobs/{digest}",
                                        scope=f"repository:{repository}:pull",
                                        headers=headers, stream=True)
                if response.status == 200 and received:     # the Range was ignored
                    hasher, received = hashlib.sha256(), 0
                    out.seek(0)
                    out.truncate()
                elif response.status == 206:
                    start = response.headers.get("Content-Range", "").partition(" ")[2]
                    if not start.startswith(f"{received}-"):
                        _discard(response)
                        raise RegistryError(self.host, f"blob {digest}: resumed at the "
                                            f"wrong offset ({start})")
                elif response.status != 200:
                    raise self.error(response, f"blob {digest}")
                try:
                    for data in response.stream(CHUNK, decode_content=False):
                        if cancelled.is_set():
                            response.release_conn()
                            raise RegistryError(self.host, "cancelled")
                        received += len(data)
                        if size is not None and received > size:
                            raise RegistryError(self.host, f"blob {digest}: larger than "
                                                f"its {size} bytes", retry_elsewhere=False)
                        hasher.update(data)
                        out.write(data)
                        progress.downloaded(label, len(data))
                    response.release_conn()
                    if size is None or received >= size:
                        break
                    why = f"the transfer ended at {received} of {size} bytes"
                except DROPS as err:
                    why = _reason(err)
                attempt += 1
                if attempt > RETRIES:
                    raise RegistryError(self.host, f"blob {digest}: {why} (tried "
                                        f"{attempt} times)")
                progress.download_resumed(label, received, why)
                _backoff(attempt, None, f"{self.host}: blob {digest}: {why}")
        if "sha256:" + hasher.hexdigest() != digest:
            os.unlink(path)
            raise RegistryError(self.host, f"blob {digest}: the content does not match its "
                                "digest", retry_elsewhere=False)
        progress.download_finished(label, received, time.monotonic() - started)

    def error(self, response, what):
        """A RegistryError for an unexpected response, with the registry's own words."""
        body = response.body if isinstance(response, Reply) else None
        if body is None:
            try:
                body = response.read(65536)
            except http_errors.HTTPError:
                body = b""
            _discard(response)
        code, message = "", ""
        try:
            first = (jsonio.loads(body).get("errors") or [{}])[0]
            code, message = str(first.get("code", "")), str(first.get("message", ""))
        except (ValueError, AttributeError, IndexError):
            pass
        status = response.status
        words = {"MANIFEST_UNKNOWN": "no such tag or digest (manifest unknown)",
                 "NAME_UNKNOWN": "no such repository (name unknown)",
                 "BLOB_UNKNOWN": "no such blob",
                 "DENIED": "access denied",
                 "TOOMANYREQUESTS": "too many requests"}
        if status == 401:
            reason = ("the credentials were refused" if self.credentials else
                      "authentication required: no such repository, or it needs credentials "
                      f"(handcar login {self.host})")
        elif code in words:
            reason = words[code]
        elif status == 404:
            reason = "not found"
        else:
            reason = f"HTTP {status}" + (f" {message}" if message else "")
        return RegistryError(self.host, f"{what}: {reason}")


# --- helpers ----------------------------------------------------------------------------------

def _basic(credentials):
    return base64.b64encode(f"{credentials.username}:{credentials.secret}".encode()).decode()


def _reason(err):
    """A short reason for a urllib3 error (its innermost cause)."""
    reason = getattr(err, "reason", None) or err
    text = str(reason)
    for marker in ("Failed to establish a new connection: ", "SSLError(", "] "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.strip("()'\" ") or type(err).__name__


def _discard(response):
    try:
        response.drain_conn()
    except http_errors.HTTPError:
        pass
    response.release_conn()


def _read_limited(response, limit, host):
    try:
        data = response.read(limit + 1, decode_content=True)
    except DROPS as err:
        raise RegistryError(host, _reason(err)) from None
    finally:
        _discard(response)
    if len(data) > limit:
        raise RegistryError(host, f"a document larger than {limit} bytes")
    return data


def _backoff(attempt, retry_after, what):
    delay = BACKOFF * 2 ** (attempt - 1) * (1 + random.random() / 2)
    if retry_after and retry_after.strip().isdigit():
        delay = max(delay, min(int(retry_after), MAX_WAIT))
    log.debug(f"{what}: retrying in {delay:.1f}s")
    time.sleep(delay)


# --- pulling an image --------------------------------------------------------------------------

class Downloads:
    """The layers of a registry image being fetched into the store's tmp/ directory, a
    few at a time; LayerSource.wait/discard/open reach them."""

    def __init__(self, client, repository, descriptors, directory, where):
        self.client = client
        self.repository = repository
        self.descriptors = descriptors
        # one file per layer, even for a blob two layers share (the same empty layer)
        self.paths = [os.path.join(directory, f"{n}-{d['digest'][7:19]}-{os.getpid()}.blob")
                      for n, d in enumerate(descriptors)]
        self.where = where
        self.futures = {}
        self.executor = None
        self.cancelled = threading.Event()

    def layer_sources(self):
        return tuple(_layer_source(self, i) for i in range(len(self.descriptors)))

    def start(self, indexes, _directory, progress):
        from concurrent.futures import ThreadPoolExecutor
        self.executor = ThreadPoolExecutor(max_workers=PARALLEL,
                                           thread_name_prefix="handcar-pull")
        for index in indexes:
            descriptor = self.descriptors[index]
            self.futures[index] = self.executor.submit(
                self.client.download, self.repository, descriptor["digest"],
                descriptor.get("size"), self.paths[index], progress,
                descriptor["digest"][7:19], self.cancelled)

    def wait(self, index):
        try:
            self.futures[index].result()
        except RegistryError as err:
            raise ImageError(f"{self.where}: {err.reason}") from None
        except OSError as err:                       # writing it: a full disk, say
            from rootless.errors import os_error_message
            raise ImageError(f"{self.where}: blob {self.descriptors[index]['digest']}: "
                             f"{os_error_message(err)}") from None

    def discard(self, index):
        try:
            os.unlink(self.paths[index])
        except FileNotFoundError:
            pass

    def close(self):
        self.cancelled.set()
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
        for index in range(len(self.paths)):
            self.discard(index)


def _layer_source(downloads, index):
    from rootless.image.sources import LayerSource
    descriptor = downloads.descriptors[index]
    path = downloads.paths[index]
    return LayerSource(open=lambda: open(path, "rb"), digest=descriptor["digest"],
                       label=descriptor["digest"][7:19], size=descriptor.get("size"),
                       wait=lambda: downloads.wait(index),
                       discard=lambda: downloads.discard(index))


class Resolved(Record):
    """A registry image found: the manifest for the platform, its config, where from;
    `alias` (short, name) when the user chose it at the short-name prompt, to record
    once it is pulled."""
    FIELDS = {"client": None, "name": None, "source": None, "manifest": None,
              "digest": "", "index_digest": "", "config": b"", "alias": None}


def _client_for(source, conf):
    from rootless.image import auth
    host = source.reference.domain
    credentials = auth.lookup(host, source.reference.path)
    return RegistryClient(host, credentials, insecure=source.insecure
                          or _insecure_host(conf, host))


def _insecure_host(conf, host):
    from oci.registries import registry_insecure
    return registry_insecure(conf, host)


def resolve(text, platform, progress=None):
    """The registry image `text` names (short names as registries.conf and its
    short-name-mode resolve them, mirrors first), for `platform`: a Resolved. ImageError
    naming the image, the registries tried and why each failed."""
    from oci.reference import parse
    from oci.registries import alias_for, candidates, pull_sources, short_name_choice
    from rootless.image.config import cached_aliases, registries_conf
    conf = registries_conf()
    parse(text)
    found = candidates(conf, text, cached_aliases())
    alias = None
    can_prompt = os.isatty(0) and os.isatty(1)        # podman's test: stdin and stdout
    if short_name_choice(conf, text, found, can_prompt) == "prompt":
        chosen = choose_candidate(text, found)
        found, alias = [chosen], alias_for(text, chosen)
    failures = []
    for candidate in found:
        reference = candidate.reference
        for source in pull_sources(conf, reference):
            if progress:
                progress.resolving(str(source.reference))
            try:
                client = _client_for(source, conf)
                return _resolve_on(client, reference, source, platform).replace(
                    alias=alias)
            except RegistryError as err:
                failures.append(f"from {source.reference.domain}"
                                + ("" if str(source.reference) == str(reference)
                                   else f" (as {source.reference})") + f": {err.reason}")
                if not err.retry_elsewhere:
                    break
    raise ImageError(f"pulling {text} " + "; ".join(failures))


def choose_candidate(text, found):
    """Ask, on the terminal, which of a short name's candidates to pull (as podman's
    prompt does; numbered here): the Candidate chosen."""
    import click
    click.echo(f"? Please select an image for {text}:")
    for number, candidate in enumerate(found, 1):
        click.echo(f"  {number}) {candidate.reference}")
    try:
        number = click.prompt("Image", type=click.IntRange(1, len(found)))
    except click.Abort:
        raise ImageError(f"{text}: no image selected at the short-name prompt") from None
    return found[number - 1]


def _resolve_on(client, name, source, platform):
    repository = source.reference.path
    wanted = source.reference.digest or source.reference.tag
    client.ping()
    _body, document, media_type, digest = client.manifest(repository, wanted)
    index_digest = ""
    if media_type in (OCI_INDEX, DOCKER_LIST) or is_index(document):
        index_digest = digest
        try:
            chosen = choose_platform(document, platform, "the index")
        except ImageError as err:
            raise RegistryError(client.host, f"{name}: {err}", retry_elsewhere=False) \
                from None
        _body, document, media_type, digest = client.manifest(repository, chosen["digest"])
        if is_index(document):
            raise RegistryError(client.host, f"{name}: an index inside an index",
                                retry_elsewhere=False)
    if media_type not in (OCI_MANIFEST, DOCKER_MANIFEST) and "layers" not in document:
        raise RegistryError(client.host, f"manifest {wanted}: unsupported media type "
                            f"{media_type or '(none)'}", retry_elsewhere=False)
    try:
        config, layers = manifest_parts(document, f"manifest {wanted}")
        for layer in layers:
            layer_compression(layer, f"{name}")
    except ImageError as err:
        raise RegistryError(client.host, str(err), retry_elsewhere=False) from None
    config_type = config.get("mediaType", "")
    if config_type and config_type not in (
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.docker.container.image.v1+json"):
        raise RegistryError(client.host, f"{name} is not a container image (its config is "
                            f"{config_type})", retry_elsewhere=False)
    return Resolved(client=client, name=name, source=source, manifest=document,
                    digest=digest, index_digest=index_digest,
                    config=client.blob(repository, config["digest"]))


def pull_from_registry(store, text, platform, progress):
    """Pull `text` from its registry into the store; the Image."""
    from rootless.image.sources import ImageSource
    found = resolve(text, platform, progress)
    name, source = found.name, found.source
    where = f"pulling {name} from {source.reference.domain}"
    _config, descriptors = manifest_parts(found.manifest, where)
    downloads = Downloads(found.client, source.reference.path, descriptors, store.tmp, where)
    repository = name.name
    digests = tuple(f"{repository}@{d}" for d in (found.index_digest, found.digest) if d)
    image_source = ImageSource(
        config=found.config, layers=downloads.layer_sources(),
        names=(str(name),) if name.tag and not name.digest else (),
        digests=digests, digest=found.digest, where=where, prefetch=downloads.start)
    try:
        image = store.add(image_source, progress)
    except RegistryError as err:
        raise ImageError(f"{where}: {err.reason}") from None
    except ImageError as err:                       # unpacking: name the image too
        if str(err).startswith(where):
            raise
        raise ImageError(f"{where}: {err}") from None
    except OSError as err:                          # the store's files: a full disk, say
        from rootless.errors import os_error_message
        raise ImageError(f"{where}: {os_error_message(err)}") from None
    finally:
        downloads.close()
    if found.alias:
        from rootless.image.config import record_alias
        record_alias(*found.alias)
        log.debug(f"recorded the short-name alias {found.alias[0]} = {found.alias[1]}")
    return image


def is_newer_on_registry(store, image, text, platform):
    """Whether the registry's image for `text` differs from the stored one (--pull
    newer): its digest is none of those the stored image was pulled with."""
    found = resolve(text, platform)
    return not any(digest.endswith("@" + d) for digest in image.digests
                   for d in (found.digest, found.index_digest) if d)


def inspect_remote(text, platform):
    """podman's inspect document of the registry's image for `platform` (not pulled)."""
    from oci.image import inspect_document
    found = resolve(text, platform)
    _config, layers = manifest_parts(found.manifest, text)
    repository = found.name.name
    return inspect_document(
        jsonio.loads(found.config), hashlib.sha256(found.config).hexdigest(), found.digest,
        [str(found.name)] if found.name.tag else [],
        [f"{repository}@{d}" for d in (found.index_digest, found.digest) if d],
        sum(layer.get("size") or 0 for layer in layers))


def check_login(client):
    """Whether the registry takes the client's credentials (login checks before it
    saves them): RegistryError when it does not."""
    client.ping()
    if client.challenge.kind == "bearer":
        client._fetch_token(client.challenge.params, [])
    elif client.challenge.kind == "basic":
        response = client.request("GET", "/v2/")
        if response.status != 200:
            raise RegistryError(client.host, "the user name or password was refused")
    else:
        log.debug(f"{client.host} asks for no credentials")
