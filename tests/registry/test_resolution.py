"""Which registry a name means (containers-registries.conf(5)): short names through
unqualified-search-registries and aliases, mirrors, blocked registries; credentials from
docker's config.json and credential helpers, and login and logout through them."""

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import imagebuild
from harness import HANDCAR
from regtier import PASSWORD, USER, CredentialHelper

sys.path.insert(0, str(Path(__file__).parent.parent))
from daemons import run_on_a_terminal  # noqa: E402


@pytest.fixture(scope="session")
def short_image(tmp_path_factory, rootfs_template, registry, push):
    where = tmp_path_factory.mktemp("short")
    base = imagebuild._tar_of_directory(rootfs_template)
    digest = imagebuild.write_layout_of_layers(
        where / "layout", [base, imagebuild.tar_of_entries([
            ("etc", None, 0o755, 0), ("etc/motd", b"short\n", 0o644, 0)])], greeting="short")
    push(f"oci:{where / 'layout'}:latest", registry, "handcar/short:2")
    return digest[7:]


def test_short_names_resolve_through_search_registries(user, registry, short_image):
    user.login_file(registry.host, USER, PASSWORD)
    user.registries_conf(f'unqualified-search-registries = ["{registry.host}"]\n')
    pulled = user.ok("pull", "handcar/short:2")
    assert pulled.stdout == f"{short_image}\n"
    assert f"Trying to pull {registry.host}/handcar/short:2" in pulled.stderr
    result = user.ok("run", "--rm", "--network", "none", "handcar/short:2", "cat", "/etc/motd")
    assert result.stdout == "short\n"
    assert f"{registry.host}/handcar/short" in user.ok("images").stdout
    # a name with no registry is found in the store by the names it resolves to
    user.ok("rmi", "handcar/short:2")
    assert user.ok("images", "-q").stdout == ""


def test_search_registries_are_tried_in_order(user, registry, short_image):
    user.login_file(registry.host, USER, PASSWORD)
    user.registries_conf('unqualified-search-registries = ["127.0.0.1:1", '
                         f'"{registry.host}"]\n')
    pulled = user.ok("pull", "handcar/short:2")
    assert pulled.stdout == f"{short_image}\n"
    assert "Trying to pull 127.0.0.1:1/handcar/short:2" in pulled.stderr


def test_short_name_mode_without_a_terminal(user, registry, short_image):
    """Two search registries make a short name ambiguous: enforcing refuses it without a
    terminal to ask on (podman's words), permissive and disabled try them in order."""
    user.login_file(registry.host, USER, PASSWORD)
    search = f'unqualified-search-registries = ["127.0.0.1:1", "{registry.host}"]\n'
    user.registries_conf('short-name-mode = "enforcing"\n' + search)
    refused = user("pull", "handcar/short:2", stdin=subprocess.DEVNULL)
    assert refused.returncode == 1
    assert "short-name resolution enforced but cannot prompt without a TTY" in refused.stderr
    assert user("run", "--rm", "handcar/short:2", "true").returncode == 125
    # a qualified name is not ambiguous, nor one a search registry's image is stored under
    user.ok("pull", "-q", f"{registry.host}/handcar/short:2")
    assert user.ok("run", "--rm", "--network", "none", "handcar/short:2", "cat",
                   "/etc/motd").stdout == "short\n"
    user.ok("rmi", f"{registry.host}/handcar/short:2")
    for mode in ("permissive", "disabled"):
        user.registries_conf(f'short-name-mode = "{mode}"\n' + search)
        pulled = user.ok("pull", "handcar/short:2")
        assert pulled.stdout == f"{short_image}\n"
        assert "Trying to pull 127.0.0.1:1/handcar/short:2" in pulled.stderr
        user.ok("rmi", f"{registry.host}/handcar/short:2")
    assert not (user.home / ".cache" / "containers" / "short-name-aliases.conf").exists()


def test_short_name_prompt_on_a_terminal_records_an_alias(user, registry, short_image):
    """On a terminal (stdin and stdout), an ambiguous short name is asked about; the
    choice is recorded in the alias cache and used from then on. disabled never asks."""
    user.login_file(registry.host, USER, PASSWORD)
    search = f'unqualified-search-registries = ["127.0.0.1:1", "{registry.host}"]\n'
    user.registries_conf('short-name-mode = "disabled"\n' + search)
    command = [HANDCAR, "--root", str(user.root), "pull", "handcar/short:2"]
    status, output = run_on_a_terminal(command, b"", user.env, timeout=120)
    text = output.decode(errors="replace")
    assert status == 0 and "Please select" not in text, text
    user.ok("rmi", f"{registry.host}/handcar/short:2")
    user.registries_conf('short-name-mode = "enforcing"\n' + search)
    status, output = run_on_a_terminal(command, b"7\n2\n", user.env, timeout=120)
    text = output.decode(errors="replace")
    assert status == 0, text
    assert "Please select an image for handcar/short:2" in text
    assert "1) 127.0.0.1:1/handcar/short:2" in text
    assert f"2) {registry.host}/handcar/short:2" in text
    assert "7 is not in the range" in text, "a wrong answer is asked again"
    assert short_image in text and "Trying to pull 127.0.0.1:1" not in text
    cache = user.home / ".cache" / "containers" / "short-name-aliases.conf"
    assert cache.read_text() == f'[aliases]\n  "handcar/short" = "{registry.host}/handcar/short"\n'
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    user.ok("rmi", f"{registry.host}/handcar/short:2")
    # the alias answers from then on: no question, with or without a terminal
    status, output = run_on_a_terminal(command, b"", user.env, timeout=120)
    text = output.decode(errors="replace")
    assert status == 0 and "Please select" not in text, text
    user.ok("rmi", f"{registry.host}/handcar/short:2")
    assert user.ok("pull", "-q", "handcar/short:2").stdout == f"{short_image}\n"


def test_aliases(user, registry, short_image):
    user.login_file(registry.host, USER, PASSWORD)
    user.registries_conf(f'[aliases]\n"myshort" = "{registry.host}/handcar/short"\n')
    assert user.ok("pull", "-q", "myshort:2").stdout == f"{short_image}\n"


def test_a_mirror_is_pulled_from_first(user, registry, short_image):
    user.login_file(registry.host, USER, PASSWORD)
    user.registries_conf('[[registry]]\nprefix = "registry.invalid/team"\n'
                         'location = "registry.invalid/team"\n'
                         f'[[registry.mirror]]\nlocation = "{registry.host}/handcar"\n')
    pulled = user.ok("pull", "registry.invalid/team/short:2")
    assert pulled.stdout == f"{short_image}\n"
    assert f"Trying to pull {registry.host}/handcar/short:2" in pulled.stderr
    # named as asked, not by the mirror
    assert "registry.invalid/team/short" in user.ok("images").stdout


def test_a_blocked_registry_is_refused(user, registry, short_image):
    user.registries_conf(f'[[registry]]\nlocation = "{registry.host}"\nblocked = true\n')
    result = user("pull", f"{registry.host}/handcar/short:2")
    assert result.returncode == 1
    assert f"registry {registry.host} is blocked" in result.stderr


def test_a_bad_registries_conf_is_named(user):
    user.registries_conf("unqualified-search-registries = 'docker.io'\n")
    result = user("pull", "busybox")
    assert result.returncode == 1
    assert "registries.conf: unqualified-search-registries must be a list" in result.stderr


def test_docker_config_and_credential_helpers(user, registry, short_image, tmp_path):
    reference = f"{registry.host}/handcar/short:2"
    docker = user.home / ".docker"
    docker.mkdir()
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {
        f"https://{registry.host}": {"auth": token}}}))
    assert user.ok("pull", "-q", reference).stdout == f"{short_image}\n"
    user.ok("rmi", reference)
    # a helper: the registry on stdin, the secret on stdout (never on a command line)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "helper-saw"
    helper = bin_dir / "docker-credential-handcartest"
    helper.write_text(f"""#!/bin/sh
[ "$1" = get ] || exit 1
read registry
echo "$registry $*" >> {seen}
[ "$registry" = "{registry.host}" ] || {{ echo "credentials not found"; exit 1; }}
echo '{{"ServerURL": "{registry.host}", "Username": "{USER}", "Secret": "{PASSWORD}"}}'
""")
    os.chmod(helper, 0o755)
    (docker / "config.json").write_text(json.dumps({"credHelpers": {
        registry.host: "handcartest"}}))
    path = f"{bin_dir}:{os.environ['PATH']}"
    assert user.ok("pull", "-q", reference, env={"PATH": path}).stdout == \
        f"{short_image}\n"
    assert seen.read_text() == f"{registry.host} get\n"
    (docker / "config.json").write_text(json.dumps({"credHelpers": {
        registry.host: "missing-helper"}}))
    user.ok("rmi", reference)
    result = user("pull", reference, env={"PATH": path})
    assert result.returncode == 1
    assert "docker-credential-missing-helper is not installed" in result.stderr


def test_login_and_logout_through_the_helper_the_auth_file_names(user, registry, short_image,
                                                                  tmp_path):
    """credHelpers in the auth file login writes: `store` gets the credentials on stdin
    and the file none; a pull finds them with `get`; logout `erase`s them."""
    reference = f"{registry.host}/handcar/short:2"
    helper = CredentialHelper(tmp_path, "handcarkeep")
    auth = user.runtime / "containers" / "auth.json"
    auth.parent.mkdir()
    auth.write_text(json.dumps({"credHelpers": {registry.host: "handcarkeep"}}))
    env = {"PATH": helper.path()}
    refused = user("login", "-u", USER, "--password-stdin", registry.host, input="wrong\n",
                   env=env)
    assert refused.returncode != 0 and helper.calls() == [], "checked before it is kept"
    done = user.ok("login", "-u", USER, "--password-stdin", registry.host,
                   input=PASSWORD + "\n", env=env)
    assert PASSWORD not in done.stdout + done.stderr
    assert helper.calls() == [{"argv": ["store"], "stdin": json.dumps(
        {"ServerURL": registry.host, "Username": USER, "Secret": PASSWORD},
        separators=(",", ":"))}]
    assert helper.kept() == {registry.host: [USER, PASSWORD]}
    assert PASSWORD not in auth.read_text()
    assert json.loads(auth.read_text())["credHelpers"] == {registry.host: "handcarkeep"}
    assert user.ok("pull", "-q", reference, env=env).stdout == f"{short_image}\n"
    assert helper.calls()[-1] == {"argv": ["get"], "stdin": registry.host}
    user.ok("rmi", reference)
    user.ok("logout", registry.host, env=env)
    assert helper.calls()[-1] == {"argv": ["erase"], "stdin": registry.host}
    assert helper.kept() == {}
    assert user("pull", reference, env=env).returncode == 1, "logged out: no credentials"
    assert user("logout", registry.host, env=env).returncode != 0, "not logged in"
    assert all(PASSWORD not in " ".join(call["argv"]) for call in helper.calls())


def test_login_through_a_creds_store_and_logout_all(user, registry, short_image, tmp_path):
    """docker's credsStore: login stores through it (an older entry in the file, which
    would shadow it, goes); logout --all erases what it lists."""
    reference = f"{registry.host}/handcar/short:2"
    helper = CredentialHelper(tmp_path, "handcarstore")
    auth = user.runtime / "containers" / "auth.json"
    auth.parent.mkdir()
    old = base64.b64encode(f"{USER}:an-old-password".encode()).decode()
    auth.write_text(json.dumps({"credsStore": "handcarstore",
                                "auths": {registry.host: {"auth": old}}}))
    env = {"PATH": helper.path()}
    user.ok("login", "-u", USER, "--password-stdin", registry.host, input=PASSWORD + "\n",
            env=env)
    assert json.loads(auth.read_text()) == {"credsStore": "handcarstore", "auths": {}}
    assert helper.kept() == {registry.host: [USER, PASSWORD]}
    assert user.ok("pull", "-q", reference, env=env).stdout == f"{short_image}\n"
    user.ok("rmi", reference)
    user.ok("logout", "--all", env=env)
    assert [call["argv"] for call in helper.calls()[-2:]] == [["list"], ["erase"]]
    assert helper.kept() == {}
    assert json.loads(auth.read_text())["credsStore"] == "handcarstore", "configuration kept"
