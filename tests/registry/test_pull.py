"""Pulling from real registries (docker-registry 2.8): images pushed with skopeo, pulled
and run by handcar as the unprivileged user; shared layers stored once; Basic and
Bearer auth; login and logout."""

import json
import os
import stat

import pytest

import imagebuild
from regtier import (IDENTITY_TOKEN, PASSWORD, TOKEN_PASSWORD, TOKEN_USER, USER,
                     CredentialHelper)


def entries(*items):
    return imagebuild.tar_of_entries(list(items))


def d(name, mode=0o755, uid=0):
    return (name, None, mode, uid)


def f(name, data=b"x\n", mode=0o644, uid=0):
    return (name, data, mode, uid)


@pytest.fixture(scope="session")
def base_tar(rootfs_template):
    return imagebuild._tar_of_directory(rootfs_template)


@pytest.fixture(scope="session")
def layouts(tmp_path_factory, base_tar):
    """OCI layouts built here: two images on one busybox base."""
    where = tmp_path_factory.mktemp("layouts")
    made = {}
    for name, motd in (("one", b"image one\n"), ("two", b"image two\n")):
        digest = imagebuild.write_layout_of_layers(
            where / name, [base_tar, entries(d("etc"), f("etc/motd", motd))], greeting=name)
        made[name] = (f"oci:{where / name}:latest", digest[7:])
    return made


@pytest.fixture(scope="session")
def pushed(layouts, registry, push):
    return {name: (push(source, registry, f"handcar/{name}:1"), image_id)
            for name, (source, image_id) in layouts.items()}


def test_pull_prints_the_id_and_run_runs_it(user, pushed, registry):
    reference, image_id = pushed["one"]
    user.login_file(registry.host, USER, PASSWORD)
    pulled = user.ok("pull", reference)
    assert pulled.stdout == f"{image_id}\n"
    assert "Copying blob" in pulled.stderr
    result = user.ok("run", "--rm", "--network", "none", reference, "cat", "/etc/motd")
    assert result.stdout == "image one\n"
    listing = user.ok("images").stdout.splitlines()
    assert listing[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert listing[1].split()[:3] == [f"{registry.host}/handcar/one", "1", image_id[:12]]
    assert user.ok("pull", "-q", reference).stdout == f"{image_id}\n"   # stored: nothing


def test_run_pulls_on_first_use_and_honours_pull_never(user, pushed, registry):
    reference, _ = pushed["two"]
    user.login_file(registry.host, USER, PASSWORD)
    never = user("run", "--rm", "--pull", "never", "--network", "none", reference, "true")
    assert never.returncode == 125 and "--pull never" in never.stderr
    result = user.ok("run", "--rm", "--network", "none", reference, "cat", "/etc/motd")
    assert result.stdout == "image two\n"
    assert user.ok("run", "--rm", "--pull", "never", "--network", "none", reference,
                   "true").returncode == 0


def test_images_sharing_a_base_store_it_once(user, pushed, registry):
    user.login_file(registry.host, USER, PASSWORD)
    (one, _), (two, _) = pushed["one"], pushed["two"]
    user.ok("pull", one)
    assert len(user.layers()) == 2
    second = user.ok("pull", two)
    assert len(user.layers()) == 3, "the base layer is stored once"
    assert second.stderr.count("Copying blob") == 1, "only the missing layer is fetched"
    assert "layers they share" in user.ok("images").stdout
    user.ok("rmi", one)
    assert len(user.layers()) == 2, "rmi keeps the layers another image uses"
    result = user.ok("run", "--rm", "--network", "none", two, "cat", "/etc/motd")
    assert result.stdout == "image two\n"


def test_wrong_or_missing_credentials_are_one_line_naming_image_and_registry(
        user, pushed, registry):
    reference, _ = pushed["one"]
    anonymous = user("pull", reference)
    assert anonymous.returncode == 1
    lines = [line for line in anonymous.stderr.splitlines() if line.startswith("handcar:")]
    assert len(lines) == 1, anonymous.stderr
    assert f"pulling {reference} from {registry.host}: " in lines[0]
    assert "handcar login" in lines[0]
    user.login_file(registry.host, USER, "not-the-password")
    wrong = user("pull", reference)
    assert wrong.returncode == 1 and "credentials were refused" in wrong.stderr
    missing = user("pull", f"{registry.host}/handcar/nothing-here:1")
    assert missing.returncode == 1
    unknown_tag = user("run", "--rm", f"{registry.host}/handcar/one:nope", "true")
    assert unknown_tag.returncode == 125


def test_login_checks_then_saves_and_logout_removes(user, pushed, registry):
    reference, _ = pushed["one"]
    auth = user.runtime / "containers" / "auth.json"
    refused = user("login", "-u", USER, "--password-stdin", registry.host, input="wrong\n")
    assert refused.returncode != 0 and not auth.exists()
    assert "wrong" not in refused.stderr + refused.stdout
    done = user.ok("login", "-u", USER, "--password-stdin", registry.host,
                   input=PASSWORD + "\n")
    assert "Login Succeeded" in done.stdout and PASSWORD not in done.stdout + done.stderr
    assert stat.S_IMODE(os.stat(auth).st_mode) == 0o600
    assert registry.host in json.loads(auth.read_text())["auths"]
    user.ok("pull", "-q", reference)
    user.ok("logout", registry.host)
    assert json.loads(auth.read_text())["auths"] == {}
    assert user("logout", registry.host).returncode != 0
    password_flag = user("login", "-u", USER, "-p", PASSWORD, registry.host)
    assert password_flag.returncode != 0 and PASSWORD not in password_flag.stderr


def test_bearer_tokens_anonymous_and_with_credentials(user, layouts, token_registry, push):
    tokens = token_registry.tokens
    source, image_id = layouts["one"]
    creds = f"{TOKEN_USER}:{TOKEN_PASSWORD}"
    public = push(source, token_registry, "public/one:1", creds)
    private = push(source, token_registry, "private/one:1", creds)
    tokens.requests.clear()
    assert user.ok("pull", "-q", public).stdout == f"{image_id}\n"
    assert tokens.requests and all(r["user"] is None for r in tokens.requests)
    assert {s for r in tokens.requests for s in r["scopes"]} == {
        "repository:public/one:pull"}, "one token, for the repository's pull scope"
    refused = user("pull", private)
    assert refused.returncode == 1 and "handcar login" in refused.stderr
    user.ok("login", "-u", TOKEN_USER, "--password-stdin", token_registry.host,
            input=TOKEN_PASSWORD + "\n")
    tokens.requests.clear()
    user.ok("rmi", public)
    assert user.ok("pull", "-q", private).stdout == f"{image_id}\n"
    assert tokens.requests[-1]["user"] == TOKEN_USER
    assert "repository:private/one:pull" in tokens.requests[-1]["scopes"]
    bad = user("login", "-u", TOKEN_USER, "--password-stdin", token_registry.host,
               input="nope\n")
    assert bad.returncode != 0 and "refused" in bad.stderr


def test_identity_tokens_fetch_bearer_tokens_with_the_oauth2_post(
        user, layouts, token_registry, push, tmp_path):
    """An identity token (auth.json's "identitytoken", or a helper's "<token>" answer)
    is a refresh token: the Bearer token comes from an OAuth2 POST to the realm."""
    import base64
    tokens = token_registry.tokens
    source, image_id = layouts["two"]
    private = push(source, token_registry, "private/identity:1",
                   f"{TOKEN_USER}:{TOKEN_PASSWORD}")
    auth = user.runtime / "containers" / "auth.json"
    auth.parent.mkdir()

    def entry(token):
        return {"auths": {token_registry.host: {
            "auth": base64.b64encode(f"{TOKEN_USER}:".encode()).decode(),
            "identitytoken": token}}}
    auth.write_text(json.dumps(entry(IDENTITY_TOKEN)))
    tokens.requests.clear()
    assert user.ok("pull", "-q", private).stdout == f"{image_id}\n"
    assert tokens.requests and all(r["method"] == "POST" for r in tokens.requests)
    post = tokens.requests[-1]
    assert post["user"] == TOKEN_USER and post["grant_type"] == "refresh_token"
    assert post["client_id"] and post["service"] == tokens.service
    assert post["content_type"] == "application/x-www-form-urlencoded"
    assert "repository:private/identity:pull" in post["scopes"]
    user.ok("rmi", private)
    auth.write_text(json.dumps(entry("a-revoked-token")))
    refused = user("pull", private)
    assert refused.returncode == 1
    assert "identity token was refused by the token server" in refused.stderr
    assert "a-revoked-token" not in refused.stderr
    # a credential helper's identity token: Username "<token>"
    helper = CredentialHelper(tmp_path, "handcartoken",
                              fixed=(token_registry.host, "<token>", IDENTITY_TOKEN))
    auth.write_text(json.dumps({"credHelpers": {token_registry.host: "handcartoken"}}))
    tokens.requests.clear()
    assert user.ok("pull", "-q", private, env={"PATH": helper.path()}).stdout == \
        f"{image_id}\n"
    assert tokens.requests[-1]["method"] == "POST"
    assert tokens.requests[-1]["user"] == TOKEN_USER


def test_pull_policies(user, layouts, registry, push):
    user.login_file(registry.host, USER, PASSWORD)
    (one, _), (two, _) = layouts["one"], layouts["two"]
    reference = push(one, registry, "handcar/policy:1")

    def motd(*flags):
        return user.ok("run", "--rm", "--network", "none", *flags, reference, "cat",
                       "/etc/motd").stdout
    assert motd() == "image one\n"
    push(two, registry, "handcar/policy:1")               # the tag moves on
    assert motd() == "image one\n", "missing: the stored image"
    assert motd("--pull", "newer") == "image two\n"
    push(one, registry, "handcar/policy:1")
    assert motd("--pull", "never") == "image two\n"
    assert motd("--pull", "always") == "image one\n"
    inspected = json.loads(user.ok("image", "inspect", reference).stdout)[0]
    assert inspected["Id"] == layouts["one"][1]
    assert inspected["RepoTags"] == [reference]
    assert inspected["Config"]["Env"] == ["PATH=/bin", "GREETING=one"]


def test_progress_on_a_terminal(user, layouts, registry, push):
    """tqdm's bars (bytes, rate) where stderr is a terminal."""
    import pty
    from harness import HANDCAR
    user.login_file(registry.host, USER, PASSWORD)
    reference = push(layouts["one"][0], registry, "handcar/progress:1")
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(HANDCAR, [HANDCAR, "--root", str(user.root), "pull", reference], user.env)
    output = b""
    try:
        while True:
            output += os.read(fd, 65536)
    except OSError:
        pass
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "Copying blob" in text and "%|" in text and "B/s" in text, text   # a bar
    assert layouts["one"][1] in text


def test_a_registry_down_or_untrusted_is_one_line(user, pushed, registry, tmp_path):
    down = user("pull", "127.0.0.1:1/handcar/one:1")
    errors = [line for line in down.stderr.splitlines() if line.startswith("handcar:")]
    assert down.returncode == 1 and len(errors) == 1
    assert "pulling 127.0.0.1:1/handcar/one:1 from 127.0.0.1:1: cannot connect" in errors[0]
    (user.containers / "certs.d" / registry.host / "ca.crt").unlink()    # not trusted now
    untrusted = user("run", "--rm", pushed["one"][0], "true")
    assert untrusted.returncode == 125
    assert f"from {registry.host}: TLS: " in untrusted.stderr
    assert "certificate verify failed" in untrusted.stderr


def test_registry_auth_file_and_authfile(user, pushed, registry, tmp_path):
    elsewhere = tmp_path / "elsewhere" / "auth.json"
    user.ok("login", "-u", USER, "--password-stdin", registry.host, input=PASSWORD,
            env={"REGISTRY_AUTH_FILE": str(elsewhere)})
    assert registry.host in json.loads(elsewhere.read_text())["auths"]
    assert stat.S_IMODE(os.stat(elsewhere.parent).st_mode) == 0o700
    assert not (user.runtime / "containers" / "auth.json").exists()
    user.ok("pull", "-q", pushed["one"][0], env={"REGISTRY_AUTH_FILE": str(elsewhere)})
    other = tmp_path / "other.json"
    user.ok("login", "-u", USER, "--password-stdin", "--authfile", str(other),
            registry.host, input=PASSWORD)
    user.ok("logout", "--authfile", str(other), "--all")
    assert json.loads(other.read_text())["auths"] == {}
