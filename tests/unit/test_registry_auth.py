"""Credentials (rootless.image.auth: which file, which entry, written 0600) and the
registry client's pure parts (WWW-Authenticate challenges)."""

import base64
import json
import os
import stat

import pytest

from oci.image import ImageError
from rootless.image import auth
from rootless.image.registry import Challenge, parse_challenge


@pytest.fixture
def home(tmp_path, monkeypatch):
    for name in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    runtime = tmp_path / "run"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    return tmp_path


def entry(user, password):
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def write(path, document):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize("key,normalized", [
    ("https://index.docker.io/v1/", "docker.io"),
    ("registry-1.docker.io", "docker.io"),
    ("http://quay.io", "quay.io"),
    ("quay.io/org/app", "quay.io/org/app"),
    ("localhost:5000", "localhost:5000"),
])
def test_keys_are_normalized_as_containers_image_does(key, normalized):
    assert auth.normalize_key(key) == normalized


def test_the_most_specific_entry_wins_and_files_are_read_in_order(home):
    write(home / "run" / "containers" / "auth.json", {"auths": {
        "quay.io": entry("any", "1"), "quay.io/org": entry("org", "2")}})
    write(home / "home" / ".docker" / "config.json", {"auths": {
        "https://index.docker.io/v1/": entry("hub", "hub-secret-3"), "quay.io/org/app": entry("no", "4")}})
    assert auth.lookup("quay.io", "org/app").username == "org"
    assert auth.lookup("quay.io", "other/app").username == "any"
    found = auth.lookup("docker.io", "library/busybox")
    assert (found.username, found.secret) == ("hub", "hub-secret-3")
    assert auth.lookup("ghcr.io", "x") is None
    assert "hub-secret" not in repr(found), "a secret never shows in a repr"


def test_login_writes_0600_in_the_runtime_dir_and_logout_forgets(home):
    path = auth.auth_file()
    assert path == str(home / "run" / "containers" / "auth.json")
    os.umask(0o022)
    auth.store("localhost:5000", auth.Credentials("me", "pw"), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert auth.lookup("localhost:5000").secret == "pw"
    assert auth.forget("localhost:5000", False, path)
    assert not auth.forget("localhost:5000", False, path)
    assert auth.lookup("localhost:5000") is None


def test_registry_auth_file_wins(home, monkeypatch):
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(home / "mine.json"))
    assert auth.auth_file() == str(home / "mine.json")
    assert auth.auth_files()[0] == str(home / "mine.json")


def test_broken_files_and_entries_are_named(home):
    path = home / "run" / "containers" / "auth.json"
    write(path, {"auths": {"quay.io": {"auth": "not base64!"}}})
    with pytest.raises(ImageError, match="auth.json \\(quay.io\\): the auth entry is not"):
        auth.lookup("quay.io")
    path.write_text("{")
    with pytest.raises(ImageError, match="auth.json: not valid JSON"):
        auth.lookup("quay.io")


def test_a_missing_credential_helper_is_named(home):
    write(home / "home" / ".docker" / "config.json", {"credHelpers": {"gcr.io": "nope"}})
    with pytest.raises(ImageError, match="docker-credential-nope is not installed"):
        auth.lookup("gcr.io")


def test_challenges():
    assert parse_challenge('Bearer realm="https://a/token",service="reg",'
                           'scope="repository:x:pull"') == Challenge(
        "bearer", {"realm": "https://a/token", "service": "reg",
                   "scope": "repository:x:pull"})
    assert parse_challenge('Basic realm="Registry Realm"') == Challenge(
        "basic", {"realm": "Registry Realm"})
    assert parse_challenge("Bearer realm=https://a/t,service=s").params == {
        "realm": "https://a/t", "service": "s"}
    assert parse_challenge("Negotiate abc") is None
    assert parse_challenge("") is None


def test_identity_tokens_from_a_file(home):
    write(home / "run" / "containers" / "auth.json", {"auths": {
        "quay.io": {"auth": base64.b64encode(b"me:").decode(), "identitytoken": "rt-1"},
        "ghcr.io": {"identitytoken": "rt-2"}}})
    found = auth.lookup("quay.io")
    assert (found.username, found.secret, found.identity_token) == ("me", "", "rt-1")
    assert auth.lookup("ghcr.io").identity_token == "rt-2"
    assert "rt-1" not in repr(found)


def helper_program(directory, name, script):
    program = directory / f"docker-credential-{name}"
    program.write_text("#!/bin/sh\n" + script)
    program.chmod(0o755)


def test_login_stores_through_the_files_helper_and_logout_erases(home, monkeypatch):
    bin_dir = home / "bin"
    bin_dir.mkdir()
    log_file = home / "helper.log"
    helper_program(bin_dir, "unit", f'echo "$1 $(cat)" >> {log_file}\n')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    path = home / "run" / "containers" / "auth.json"
    write(path, {"credHelpers": {"quay.io": "unit"}, "auths": {"quay.io": entry("me", "old")}})
    where = auth.store("quay.io", auth.Credentials("me", "new-pw"), str(path))
    assert where == "docker-credential-unit"
    assert json.loads(path.read_text())["auths"] == {}, "the older entry does not shadow it"
    assert log_file.read_text() == \
        'store {"ServerURL":"quay.io","Username":"me","Secret":"new-pw"}\n'
    assert auth.forget("quay.io", False, str(path))
    assert log_file.read_text().splitlines()[-1] == "erase quay.io"
    # a helper that fails: its words, never the secret it echoes
    helper_program(bin_dir, "unit", 'cat; exit 3\n')
    with pytest.raises(ImageError) as failed:
        auth.store("quay.io", auth.Credentials("me", "new-pw"), str(path))
    assert "docker-credential-unit store failed with status 3" in str(failed.value)
    assert "new-pw" not in str(failed.value)


def test_a_helpers_token_answer_is_an_identity_token(home, monkeypatch):
    bin_dir = home / "bin"
    bin_dir.mkdir()
    helper_program(bin_dir, "tok", 'echo \'{"Username": "<token>", "Secret": "rt-3"}\'\n')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    write(home / "run" / "containers" / "auth.json", {"credsStore": "tok"})
    found = auth.lookup("quay.io")
    assert (found.username, found.identity_token) == ("", "rt-3")
