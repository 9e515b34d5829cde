"""The friendly run mode (issue 6): host sandbox, rootfs directories, OCI layouts and
docker-archives, detached containers and their verbs, docker's exit statuses."""

import json
import os
import time

import pytest

import imagebuild
from harness import (free_port, host_server, needs_slirp4netns, needs_subids,  # noqa: F401
                     port_is_free)


class Friendly:
    """handcar with a private image store and config, run from a work directory."""

    def __init__(self, handcar, storage, work, config_text=""):
        self.handcar = handcar
        self.work = work
        self.config = work.parent / "config.toml"
        self.config.write_text(f'storage = "{storage}"\n{config_text}')
        self.env = dict(os.environ, HANDCAR_CONFIG=str(self.config))
        self.storage = storage

    def __call__(self, *args, **kwargs):
        kwargs.setdefault("cwd", self.work)
        return self.handcar(*args, env=self.env, **kwargs)

    def ok(self, *args, **kwargs):
        result = self(*args, **kwargs)
        assert result.returncode == 0, f"handcar {' '.join(args)}: {result.stderr}"
        return result

    def detached(self, *args):
        result = self.handcar.detached(*args, env=self.env, cwd=self.work)
        assert result.returncode == 0, result.stderr
        return result

    def bundles(self):
        try:
            return sorted(os.listdir(self.storage / "containers"))
        except FileNotFoundError:
            return []


@pytest.fixture(scope="session")
def images(tmp_path_factory, rootfs_template):
    """An OCI layout and a docker-archive of the same two-layer image."""
    where = tmp_path_factory.mktemp("images")
    digest = imagebuild.write_oci_layout(where / "layout", rootfs_template)
    # the same layers with another config: unpacked on its own, not taken from the layout's
    imagebuild.write_docker_archive(where / "image.tar", rootfs_template)
    return {"oci": f"oci:{where / 'layout'}", "archive": f"docker-archive:{where / 'image.tar'}",
            "id": digest[7:]}


@pytest.fixture(scope="session")
def storage(tmp_path_factory):
    """One image store for the session: images are unpacked once."""
    return tmp_path_factory.mktemp("storage")


@pytest.fixture
def friendly(handcar, storage, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    runner = Friendly(handcar, storage, work)
    before = set(runner.bundles())
    yield runner
    leftovers = sorted(set(runner.bundles()) - before)
    for name in leftovers:
        runner("rm", "-f", name)
    assert not leftovers, f"containers left behind: {leftovers}"


def name_for(friendly, suffix):
    """A container name unique to this test (the store is shared by the session)."""
    return f"{friendly.work.parent.name[:20]}-{suffix}"


# --- the host sandbox ---------------------------------------------------------------------

def test_host_sandbox_runs_in_the_current_directory_as_the_caller(friendly):
    before = friendly.bundles()
    result = friendly.ok("run", "--rm", "--", "sh", "-c",
                         "id -u; pwd; echo written > here.txt; ls /proc | grep -c '^[0-9]'; "
                         "touch /usr/handcar-probe 2>&1 | grep -c 'Read-only file system'")
    uid, cwd, count, usr = result.stdout.split()
    assert uid == str(os.getuid())
    assert cwd == str(friendly.work)
    assert int(count) < 6, "the sandbox must have its own pid namespace"
    assert usr == "1", "/usr is a read-only mount (not merely root's)"
    written = friendly.work / "here.txt"
    assert written.read_text() == "written\n"
    assert written.stat().st_uid == os.getuid()
    assert friendly.bundles() == before, "--rm leaves nothing behind"


def test_the_default_seccomp_profile_applies_and_can_be_turned_off(friendly):
    status = friendly.ok("run", "--rm", "--", "grep", "^Seccomp:", "/proc/self/status")
    assert status.stdout.split() == ["Seccomp:", "2"]
    off = friendly.ok("run", "--rm", "--security-opt", "seccomp=unconfined", "--",
                      "grep", "^Seccomp:", "/proc/self/status")
    assert off.stdout.split() == ["Seccomp:", "0"]


def test_host_sandbox_has_a_private_tmp(friendly, tmp_path):
    marker = f"/tmp/handcar-sandbox-{tmp_path.name}"
    friendly.ok("run", "--rm", "--", "sh", "-c", f"echo x > {marker}")
    assert not os.path.exists(marker)


def test_exit_statuses_are_dockers(friendly):
    assert friendly("run", "--rm", "--", "sh", "-c", "exit 5").returncode == 5
    missing = friendly("run", "--rm", "--", "no-such-program-here")
    assert missing.returncode == 127, missing.stderr
    assert "not found" in missing.stderr
    not_executable = friendly.work / "script.sh"
    not_executable.write_text("#!/bin/sh\n")
    denied = friendly("run", "--rm", "--", str(not_executable))
    assert denied.returncode == 126, denied.stderr
    no_image = friendly("run", "--rm", "--pull", "never", "no-such-image-anywhere", "true")
    assert no_image.returncode == 125
    assert "no such image" in no_image.stderr
    bad_flag = friendly("run", "--rm", "--no-such-flag", "--", "true")
    assert bad_flag.returncode == 125


@needs_subids
def test_env_workdir_and_user(friendly):
    (friendly.work / "vars").write_text("# a comment\nFROM_FILE=file\n")
    result = friendly.ok("run", "--rm", "-e", "ONE=1", "--env-file", "vars", "-w", "/usr",
                         "-u", "0", "--", "sh", "-c", "echo $ONE $FROM_FILE; pwd; id -u")
    assert result.stdout.split() == ["1", "file", "/usr", "0"]


def test_volumes_read_write_and_read_only(friendly, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in").write_text("from the host\n")
    result = friendly.ok("run", "--rm", "-v", f"{shared}:/data", "-v", f"{shared}:/ro:ro",
                         "--", "sh", "-c", "cat /data/in; echo back > /data/out; "
                         "echo no > /ro/x 2>/dev/null || echo refused")
    assert result.stdout.split("\n")[:2] == ["from the host", "refused"]
    assert (shared / "out").read_text() == "back\n"
    assert not (shared / "x").exists()


def test_init_is_pid_1_when_asked(friendly):
    result = friendly.ok("run", "--rm", "--init", "--", "sh", "-c", "cat /proc/1/cmdline")
    assert "sh" not in result.stdout.split("\0")[0]
    assert result.stdout.split("\0")[0] == "/run/handcar-init"


def test_a_limit_the_host_cannot_enforce_exits_125_naming_it(friendly):
    with open("/proc/self/mountinfo") as f:
        mount = next((line.split()[4] for line in f if " - cgroup2 " in line), None)
    own = open("/proc/self/cgroup").read().split("::")[-1].strip()
    controllers = open(f"{mount}{own}/cgroup.controllers").read().split() if mount else []
    if "memory" in controllers:
        pytest.skip("this host delegates the memory controller (tests/vm covers limits)")
    result = friendly("run", "--rm", "--memory", "64m", "--", "true")
    assert result.returncode == 125
    assert "memory" in result.stderr


def test_ambiguous_run_is_refused(friendly, tmp_path):
    (friendly.work / "config.json").write_text("{}")
    (friendly.work / "rootfs").mkdir()
    result = friendly("run", "rootfs")
    assert result.returncode != 0
    assert "-b ." in result.stderr


# --- rootfs directories and images ------------------------------------------------------

@needs_subids
def test_a_rootfs_directory_runs_without_being_changed(friendly, rootfs_template):
    result = friendly.ok("run", "--rm", str(rootfs_template), "sh", "-c",
                         "echo changed > /etc/motd; cat /etc/motd; id -u")
    assert result.stdout.split() == ["changed", "0"]
    assert not (rootfs_template / "etc" / "motd").exists()


@needs_subids
@pytest.mark.parametrize("source", ["oci", "archive"])
def test_an_image_runs_its_default_command(friendly, images, source):
    result = friendly.ok("run", "--rm", images[source])
    lines = result.stdout.splitlines()
    greeting = {"oci": "from-the-image", "archive": "from-the-archive"}[source]
    assert lines[0] == f"{greeting} in /srv"           # Env and WorkingDir
    assert lines[1] == "hello from the upper layer"    # the second layer's file
    assert lines[2] == "no-etc-group"                   # its whiteout of /etc/group


@needs_subids
def test_images_keep_their_owners_and_are_listed(friendly, images):
    friendly.ok("pull", images["oci"])
    listing = friendly.ok("images").stdout
    assert images["id"][:12] in listing
    result = friendly.ok("run", "--rm", "-u", "33", images["oci"], "sh", "-c",
                         "id -u; stat -c %u /srv/owned-by-33; cat /srv/owned-by-33")
    assert result.stdout.split() == ["33", "33", "www"]


@needs_subids
def test_a_broken_image_is_refused_and_nothing_is_left(friendly, tmp_path, rootfs_template):
    layout = tmp_path / "broken"
    unique = imagebuild.tar_of_entries([(f"{tmp_path.name}-{n}", b"x" * 4096, 0o644, 0)
                                        for n in range(8)])
    base = imagebuild.image_layers(rootfs_template)[0]
    imagebuild.write_layout_of_layers(layout, [base, unique], compress=False,
                                      greeting=tmp_path.name)
    blob = layout / "blobs" / "sha256" / imagebuild.sha256(unique)[7:]
    data = bytearray(blob.read_bytes())
    data[-2048] ^= 0xFF                              # one flipped byte in the new layer
    blob.write_bytes(bytes(data))
    layers_before = set(os.listdir(friendly.storage / "store" / "layers"))
    result = friendly("run", "--rm", f"oci:{layout}", "true")
    assert result.returncode == 125
    assert "does not match its digest" in result.stderr
    assert os.listdir(friendly.storage / "store" / "tmp") == []
    assert set(os.listdir(friendly.storage / "store" / "layers")) <= layers_before | {
        imagebuild.sha256(base)[7:]}, "nothing of the broken layer is kept"


# --- detached containers ------------------------------------------------------------------

def test_detached_container_logs_ps_stop_rm(friendly, handcar):
    name = name_for(friendly, "web")
    friendly.detached("run", "-d", "--name", name, "--", "sh", "-c",
                      "echo started; trap 'echo stopping; exit 0' TERM; "
                      "while true; do sleep 0.1; done")
    deadline = time.monotonic() + 10
    while "started" not in friendly.ok("logs", name).stdout:
        assert time.monotonic() < deadline, "no output in the log"
        time.sleep(0.05)
    listing = friendly.ok("ps").stdout
    assert name in listing and "running" in listing
    again = friendly("run", "--name", name, "--", "true")
    assert again.returncode == 125
    assert "already in use" in again.stderr
    friendly.ok("stop", "-t", "5", name)
    assert "stopping" in friendly.ok("logs", name).stdout
    assert name not in friendly.ok("ps").stdout
    assert name in friendly.ok("ps", "-a").stdout
    friendly.ok("rm", name)
    assert name not in friendly.ok("ps", "-a").stdout
    assert name not in friendly.bundles()


def test_rm_refuses_a_running_container_unless_forced(friendly):
    name = name_for(friendly, "busy")
    friendly.detached("run", "-d", "--name", name, "--", "sleep", "30")
    refused = friendly("rm", name)
    assert refused.returncode == 125
    assert "stop it first" in refused.stderr
    friendly.ok("rm", "-f", name)
    assert name not in friendly.bundles()


def test_stop_kills_what_ignores_its_signal(friendly):
    name = name_for(friendly, "stubborn")
    friendly.detached("run", "-d", "--name", name, "--", "sh", "-c",
                      "trap '' TERM; while true; do sleep 0.1; done")
    started = time.monotonic()
    friendly.ok("stop", "-t", "1", name)
    assert time.monotonic() - started < 5
    assert "exited" in friendly.ok("ps", "-a").stdout
    friendly.ok("rm", name)


def test_rm_and_detach_are_cleaned_up_by_the_next_command(friendly):
    name = name_for(friendly, "gone")
    friendly.detached("run", "-d", "--rm", "--name", name, "--", "true")
    deadline = time.monotonic() + 10
    while name in friendly.ok("ps", "-a").stdout:
        assert time.monotonic() < deadline, "the --rm container stayed"
        time.sleep(0.05)
    assert name not in friendly.bundles()


def test_config_file_errors_name_the_key(friendly):
    friendly.config.write_text('network = "none"\ncolour = "blue"\n')
    result = friendly("run", "--rm", "--", "true")
    assert result.returncode == 125
    assert "colour" in result.stderr and str(friendly.config) in result.stderr
    friendly.config.write_text("init = 1\n")
    result = friendly("run", "--rm", "--", "true")
    assert result.returncode == 125 and "init must be true or false" in result.stderr


def test_runc_mode_still_runs_a_bundle(friendly, bundle):
    bundle.sh("echo runc-mode")
    path = bundle.write()
    result = friendly("run", "-b", path, "c1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "runc-mode\n"
    inside = friendly.handcar("run", "c2", cwd=path)
    assert inside.stdout == "runc-mode\n", inside.stderr
    assert json.loads(friendly.handcar("list", "-f", "json").stdout) == []


def test_stdin_reaches_the_container_only_with_i(friendly):
    assert friendly.ok("run", "--rm", "-i", "--", "cat", input="piped\n").stdout == "piped\n"
    assert friendly.ok("run", "--rm", "--", "cat", input="piped\n").stdout == ""


def test_it_gives_the_container_the_callers_terminal(friendly):
    from harness import HANDCAR, run_in_pty
    output, status = run_in_pty(
        [HANDCAR, "--root", str(friendly.handcar.root), "run", "--rm", "-it", "--",
         "sh", "-c", "tty; read a; echo got:$a; exit 3"], b"/dev/pts/", b"typed\n",
        env=friendly.env, cwd=friendly.work)
    assert "got:typed" in output
    assert status == 3


@needs_subids
def test_rmi_removes_an_image_unless_a_container_uses_it(friendly, tmp_path, rootfs_template):
    layout = tmp_path / "own-image"
    digest = imagebuild.write_oci_layout(layout, rootfs_template, greeting=tmp_path.name)
    friendly.ok("pull", f"oci:{layout}")
    image_dir = friendly.storage / "store" / "images" / digest[7:]
    assert image_dir.exists()
    name = name_for(friendly, "user")
    friendly.ok("run", "--name", name, f"oci:{layout}", "true")
    refused = friendly("rmi", f"oci:{layout}")
    assert refused.returncode == 125 and name in refused.stderr
    assert f"oci:{layout}" in friendly.ok("images").stdout, "refused: still named"
    friendly.ok("rm", name)
    friendly.ok("rmi", digest[7:19])
    assert digest[7:19] not in friendly.ok("images").stdout
    assert not image_dir.exists()
    assert friendly("rmi", digest[7:19]).returncode == 125


@needs_subids
def test_rmi_of_one_name_keeps_an_image_with_others(friendly, images):
    friendly.ok("pull", images["archive"])
    archive_name = images["archive"]
    untagged = friendly.ok("rmi", archive_name)
    assert f"Untagged: {archive_name}" in untagged.stdout and "Deleted" not in untagged.stdout
    friendly.ok("run", "--rm", "handcar-test/busybox:latest", "true")  # its other name
    friendly.ok("pull", archive_name)


def test_directories_made_for_the_sandbox_stay_the_callers(friendly):
    friendly.ok("run", "--rm", "-w", str(friendly.work / "out" / "sub"), "--",
                "touch", "made-here")
    for path in (friendly.work / "out", friendly.work / "out" / "sub",
                 friendly.work / "out" / "sub" / "made-here"):
        assert path.stat().st_uid == os.getuid(), path


def test_friendly_flags_are_checked(friendly):
    for args, words in ((["-e", "=A", "--", "true"], "NAME=VALUE"),
                        (["-d", "-t", "--", "true"], "-t with -d"),
                        (["--name", "-x", "--", "true"], "must not start with '-'"),
                        (["--name", "", "--", "true"], "empty"),
                        (["-p", "8080:80", "--network", "none", "--", "true"], "-p needs"),
                        (["--network", "slirp4netns:mtu=big", "--", "true"], "mtu")):
        result = friendly("run", "--rm", *args)
        assert result.returncode == 125, (args, result.stderr)
        assert words in result.stderr, (args, result.stderr)
    clustered = friendly.ok("run", "--rm", "-ie", "FOO=1", "--", "sh", "-c", "echo $FOO",
                            input="")
    assert clustered.stdout == "1\n"


@needs_subids
def test_an_image_symlink_cannot_make_handcar_read_host_files(friendly, tmp_path,
                                                              rootfs_template):
    rootfs = tmp_path / "hostile"
    import shutil
    shutil.copytree(rootfs_template, rootfs, symlinks=True)
    (rootfs / "etc" / "passwd").unlink()
    os.symlink("/dev/zero", rootfs / "etc" / "passwd")
    result = friendly("run", "--rm", "-u", "nobody", str(rootfs), "true", timeout=20)
    assert result.returncode == 125
    assert "not in the container's /etc/passwd" in result.stderr


@needs_subids
def test_an_oci_layout_is_read_again_when_it_changes(friendly, tmp_path, rootfs_template):
    layout = tmp_path / "changing"
    imagebuild.write_oci_layout(layout, rootfs_template, greeting="first")
    assert friendly.ok("run", "--rm", f"oci:{layout}").stdout.startswith("first in /srv")
    import shutil
    shutil.rmtree(layout)
    imagebuild.write_oci_layout(layout, rootfs_template, greeting="second")
    assert friendly.ok("run", "--rm", f"oci:{layout}").stdout.startswith("second in /srv")


# --- networking (issue 5, through the friendly flags) ----------------------------------

@needs_subids
@needs_slirp4netns
def test_host_loopback_only_when_allowed(friendly, rootfs_template, host_server):
    fetch = ["sh", "-c", f"timeout 5 wget -q -O - http://10.0.2.2:{host_server}/file.txt; "
                         "grep -c nameserver /etc/resolv.conf"]
    allowed = friendly("run", "--rm", "--network", "slirp4netns:allow_host_loopback=true",
                       str(rootfs_template), *fetch)
    assert allowed.stdout == "served from the host\n1\n", allowed.stderr
    plain = friendly("run", "--rm", "--network", "slirp4netns", str(rootfs_template), *fetch)
    assert "served from the host" not in plain.stdout


@needs_subids
@needs_slirp4netns
def test_a_published_port_serves_the_host_until_rm(friendly, rootfs_template, tmp_path):
    import shutil
    import urllib.request
    rootfs = tmp_path / "web-rootfs"
    shutil.copytree(rootfs_template, rootfs, symlinks=True)
    (rootfs / "www").mkdir()
    (rootfs / "www" / "index.html").write_text("hello through slirp4netns\n")
    port = free_port()
    name = name_for(friendly, "web")
    friendly.detached("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080",
                      str(rootfs), "httpd", "-f", "-p", "8080", "-h", "/www")
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as page:
                assert page.read() == b"hello through slirp4netns\n"
                break
        except OSError:
            assert time.monotonic() < deadline, "the published port never answered"
            time.sleep(0.1)
    assert f"127.0.0.1:{port}->8080/tcp" in friendly.ok("ps").stdout
    friendly.ok("rm", "-f", name)
    assert port_is_free(port)


@needs_subids
def test_network_none_has_only_lo_and_it_is_up(friendly, rootfs_template):
    result = friendly.ok("run", "--rm", "--network", "none", str(rootfs_template),
                         "ip", "-o", "link")
    links = result.stdout.splitlines()
    assert len(links) == 1 and ": lo:" in links[0] and "UP" in links[0], links
