"""handcar debug (issue 19) on a microcontainer: a busybox httpd copied to /srv/httpd, no
shell, no /bin, no /etc, no /tmp, a read-only root, its own network namespace and a
seccomp filter. Each test compares the container's rootfs and mount table (its init's
/proc/PID/mountinfo) before and after."""

import json
import os
import shutil
import signal
import subprocess

import pytest

import imagebuild
from harness import BUSYBOX, HANDCAR, needs_subids, run_in_pty, wait_until
from rootless.system import elf

HTTPD_ARGS = ["/srv/httpd", "-f", "-p", "8080", "-h", "/srv/www"]
DENY_SYSLOG = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["syslog"], "action": "SCMP_ACT_ERRNO"}]}


@pytest.fixture
def micro(handcar, bundle, tmp_path):
    """The running microcontainer's id."""
    rootfs = tmp_path / "micro"
    (rootfs / "srv" / "www").mkdir(parents=True)
    (rootfs / "mnt").mkdir()                       # empty: for --shared
    shutil.copy2(BUSYBOX, rootfs / "srv" / "httpd")
    (rootfs / "srv" / "www" / "index.html").write_text("served by the microcontainer\n")
    bundle.rootfs = rootfs
    bundle.config["root"] = {"path": str(rootfs), "readonly": True}
    bundle.args(*HTTPD_ARGS)
    bundle.process["env"] = [e for e in bundle.process["env"] if not e.startswith("TERM=")]
    bundle.linux["namespaces"].append({"type": "network"})
    bundle.linux["seccomp"] = DENY_SYSLOG
    handcar.ok_detached("run", "-d", "-b", bundle.write(), "micro")
    return "micro"


def init_pid(handcar, container_id):
    return handcar.state(container_id)["pid"]


def snapshot(handcar, container_id, rootfs):
    """What must not change: every file of the rootfs (path, mode, owner, size, mtime)
    and the container's mount table."""
    files = []
    for directory, subdirs, names in os.walk(rootfs):
        for name in sorted(subdirs + names):
            path = os.path.join(directory, name)
            st = os.lstat(path)
            files.append((os.path.relpath(path, rootfs), st.st_mode, st.st_uid, st.st_size,
                          st.st_mtime_ns))
    with open(f"/proc/{init_pid(handcar, container_id)}/mountinfo") as f:
        return sorted(files), f.read()


def session_processes(handcar, container_id):
    """The pids in the container's pid namespace other than its init."""
    pid = init_pid(handcar, container_id)
    pid_ns = os.readlink(f"/proc/{pid}/ns/pid")
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != pid:
            try:
                if os.readlink(f"/proc/{name}/ns/pid") == pid_ns:
                    found.append(int(name))
            except OSError:
                continue
    return found


def test_debug_lists_reads_and_reaches_the_microcontainer(handcar, micro, bundle):
    before = snapshot(handcar, micro, bundle.rootfs)
    result = handcar("debug", micro, "sh", "-c",
                     "ps -o pid,args; cat /srv/www/index.html; "
                     "for i in 1 2 3 4 5 6 7 8 9 10; do "
                     "wget -qO- http://127.0.0.1:8080/index.html && break; sleep 0.2; done; "
                     "ls -a /")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["1", *HTTPD_ARGS]              # its init, as PID 1
    assert lines.count("served by the microcontainer") == 2     # read, then fetched
    assert ".handcar-debug" in lines and "srv" in lines         # (in the session's view)
    assert snapshot(handcar, micro, bundle.rootfs) == before


def test_debug_joins_every_namespace_and_the_cgroup_and_returns_the_status(handcar, micro):
    pid = init_pid(handcar, micro)
    names = ("user", "pid", "net", "ipc", "uts", "cgroup", "mnt")
    result = handcar("debug", micro, "sh", "-c",
                     "for n in " + " ".join(names) + "; do readlink /proc/self/ns/$n; done; "
                     "cat /proc/self/cgroup /proc/1/cgroup; id -u; exit 7")
    assert result.returncode == 7, result.stderr
    lines = result.stdout.splitlines()
    theirs = [os.readlink(f"/proc/{pid}/ns/{name}") for name in names]
    assert lines[:6] == theirs[:6]                   # the container's namespaces...
    assert lines[6] != theirs[6]                     # ...but a mount tree of its own
    cgroups = lines[7:-1]
    assert cgroups[:len(cgroups) // 2] == cgroups[len(cgroups) // 2:]   # init's cgroup
    assert lines[-1] == "0"                          # the container's user


@needs_subids
def test_debug_as_another_user(handcar, micro):
    result = handcar("debug", "-u", "1000:1000", micro, "sh", "-c", "id -u; id -g")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1000", "1000"]


def test_debug_keeps_the_containers_capabilities_and_seccomp_unless_privileged(
        handcar, micro):
    with open(f"/proc/{init_pid(handcar, micro)}/status") as f:
        container = dict(line.split(":\t", 1) for line in f.read().splitlines())
    script = "grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status"
    plain = dict(line.split(":\t") for line in
                 handcar.ok("debug", micro, "sh", "-c", script).stdout.splitlines())
    assert plain["CapBnd"] == container["CapBnd"].strip()
    assert plain["Seccomp"] == "2" and plain["NoNewPrivs"] == "1"
    privileged = dict(line.split(":\t") for line in handcar.ok(
        "debug", "--privileged-debug", micro, "sh", "-c", script).stdout.splitlines())
    with open("/proc/sys/kernel/cap_last_cap") as f:
        every = (1 << (int(f.read()) + 1)) - 1
    assert int(privileged["CapEff"], 16) == every
    assert privileged["Seccomp"] == "0"
    assert "--privileged-debug" in handcar.ok("debug", "--help").stdout


def test_debug_with_a_tools_directory(handcar, micro, bundle, tmp_path):
    before = snapshot(handcar, micro, bundle.rootfs)
    flat = tmp_path / "flat"                         # a directory of static programs
    flat.mkdir()
    shutil.copy2(BUSYBOX, flat / "busybox")
    result = handcar("debug", "--tools", str(flat), micro, "busybox", "sh", "-c",
                     "echo $PATH; busybox ls /.handcar-debug")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/.handcar-debug",
        "busybox"]
    tree = tmp_path / "tree"                         # a tree with a bin/
    (tree / "bin").mkdir(parents=True)
    (tree / "share").mkdir()
    shutil.copy2(BUSYBOX, tree / "bin" / "busybox")
    os.symlink("busybox", tree / "bin" / "sh")
    (tree / "share" / "marker").write_text("from the tools tree\n")
    result = handcar("debug", "--tools", str(tree), "--mount-at", "/opt/tools", micro,
                     "sh", "-c", "busybox cat /opt/tools/share/marker; echo $PATH; "
                     "busybox touch /opt/tools/share/x || echo read-only")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "from the tools tree" and lines[1].endswith(":/opt/tools/bin")
    assert lines[-1] == "read-only" and not (tree / "share" / "x").exists()
    assert snapshot(handcar, micro, bundle.rootfs) == before


def toolbox_rootfs(root, programs):
    """A toolbox of the host's dynamically linked programs with the libraries ldd names
    (and their loader), at the same paths as on the host."""
    for program in programs:
        path = shutil.which(program)
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        listed = subprocess.run(["ldd", path], capture_output=True, text=True,
                                check=True).stdout
        for library in [word for word in listed.split() if word.startswith("/")]:
            copy = root / library.lstrip("/")
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(library), copy)
    return root


def test_debug_with_a_dynamically_linked_toolbox_image(handcar, micro, bundle, tmp_path):
    """A glibc toolbox (the host's ls, cat and bash with the libraries ldd names) in a
    container without a loader or a library: its programs run with its own."""
    before = snapshot(handcar, micro, bundle.rootfs)
    toolbox = toolbox_rootfs(tmp_path / "toolbox", ["ls", "cat", "bash"])
    ls = toolbox / shutil.which("ls").lstrip("/")
    assert elf.interpreter(ls), "the test needs a dynamically linked ls"
    imagebuild.write_oci_layout(tmp_path / "layout", toolbox)
    config = tmp_path / "config.toml"
    config.write_text(f'storage = "{tmp_path / "storage"}"\n')
    env = dict(os.environ, HANDCAR_CONFIG=str(config))
    image = f"oci:{tmp_path / 'layout'}"
    result = handcar("debug", "--image", image, micro, "ls", "/srv/www", env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "index.html\n"
    # the toolbox's shell (no CMD), running the toolbox's programs
    result = handcar("debug", "--image", image, micro, env=env,
                     input="echo bash:$BASH_VERSION; ls /srv/www; cat /srv/www/index.html\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] != "bash:" and lines[0].startswith("bash:") and lines[1:] == ["index.html",
                                                       "served by the microcontainer"]
    assert snapshot(handcar, micro, bundle.rootfs) == before


def test_two_sessions_at_once_each_see_their_own_tools(handcar, micro, bundle, tmp_path):
    before = snapshot(handcar, micro, bundle.rootfs)
    trees = {}
    for name in ("first", "second"):
        trees[name] = tmp_path / name
        (trees[name] / "bin").mkdir(parents=True)
        shutil.copy2(BUSYBOX, trees[name] / "bin" / "busybox")
        (trees[name] / "marker").write_text(f"{name}\n")
    first = subprocess.Popen(
        [HANDCAR, "--root", str(handcar.root), "debug", "--tools", str(trees["first"]), micro,
         "busybox", "sh", "-c", "cat /.handcar-debug/marker; read go; "
                                "cat /.handcar-debug/marker"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline() == "first\n"
        second = handcar("debug", "--tools", str(trees["second"]), micro,
                         "busybox", "cat", "/.handcar-debug/marker")
        assert second.returncode == 0 and second.stdout == "second\n", second.stderr
        assert snapshot(handcar, micro, bundle.rootfs) == before
        out, err = first.communicate("go\n", timeout=30)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 0 and out == "first\n", err
    assert snapshot(handcar, micro, bundle.rootfs) == before


@pytest.mark.parametrize("shared", [False, True], ids=["sideload", "shared"])
def test_a_sigkilled_session_leaves_nothing(handcar, micro, bundle, shared):
    before = snapshot(handcar, micro, bundle.rootfs)
    flags = ["--shared", "--mount-at", "/mnt"] if shared else []
    session = subprocess.Popen(
        [HANDCAR, "--root", str(handcar.root), "debug", *flags, micro, "sh", "-c",
         "sleep 1000 & sleep 1000 & echo started; wait"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert session.stdout.readline() == "started\n"
        assert len(session_processes(handcar, micro)) == 3          # sh and two sleeps
        if shared:
            assert " /mnt " in snapshot(handcar, micro, bundle.rootfs)[1]
    finally:
        session.send_signal(signal.SIGKILL)
        session.wait()
    assert wait_until(lambda: not session_processes(handcar, micro))
    assert wait_until(lambda: snapshot(handcar, micro, bundle.rootfs) == before)
    # and the next session starts as the first did
    assert handcar.ok("debug", *flags, micro, "true").returncode == 0
    assert snapshot(handcar, micro, bundle.rootfs) == before


def test_a_shared_mount_left_by_a_killed_keeper_goes_with_the_next_session(
        handcar, micro, bundle):
    """handcar and its keeper both killed: the --shared mount stays in the container
    until the next session starts, which takes it out."""
    before = snapshot(handcar, micro, bundle.rootfs)
    session = subprocess.Popen(
        [HANDCAR, "--root", str(handcar.root), "debug", "--shared", "--mount-at", "/mnt",
         micro, "sh", "-c", "echo started; exec sleep 1000"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert session.stdout.readline() == "started\n"
        records = list((handcar.root / micro).glob("debug-shared-*.json"))
        assert len(records) == 1
        keeper = json.loads(records[0].read_text())["keeper"]
        os.kill(keeper, signal.SIGKILL)
    finally:
        session.send_signal(signal.SIGKILL)
        session.wait()
    assert wait_until(lambda: not os.path.exists(f"/proc/{keeper}"))
    assert " /mnt " in snapshot(handcar, micro, bundle.rootfs)[1]     # left behind
    handcar.ok("debug", micro, "true")
    assert snapshot(handcar, micro, bundle.rootfs) == before
    assert not list((handcar.root / micro).glob("debug-shared-*.json"))


def test_leftover_processes_end_with_the_session(handcar, micro):
    result = handcar("debug", micro, "sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!")
    assert result.returncode == 0, result.stderr
    assert session_processes(handcar, micro) == []


def test_shared_mounts_the_tools_for_the_container_until_the_session_ends(
        handcar, micro, bundle):
    before = snapshot(handcar, micro, bundle.rootfs)
    pid = init_pid(handcar, micro)
    result = handcar("debug", "--shared", "--mount-at", "/mnt", micro, "sh", "-c",
                     "ls /proc/1/root/mnt/bin/busybox; readlink /proc/self/ns/mnt")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["/proc/1/root/mnt/bin/busybox",
                                          os.readlink(f"/proc/{pid}/ns/mnt")]
    assert snapshot(handcar, micro, bundle.rootfs) == before
    refused = handcar("debug", "--shared", micro, "true")   # /.handcar-debug: not there
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1
    assert "--shared needs --mount-at to name an empty directory" in refused.stderr
    assert snapshot(handcar, micro, bundle.rootfs) == before


def test_side_car_mode(handcar, micro, bundle):
    before = snapshot(handcar, micro, bundle.rootfs)
    result = handcar("debug", "--target-root", micro, "sh", "-c",
                     "ls /target/srv/www; tr '\\0' ' ' < /proc/1/cmdline; echo; "
                     "ls /; test -e /srv || echo no-srv-here; echo x > /tmp/scratch && "
                     "cat /tmp/scratch")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "index.html"
    assert lines[1].split() == HTTPD_ARGS            # the container's pid namespace
    assert {"bin", "target", "proc", "dev", "tmp"} <= set(lines[2:-2])
    assert lines[-2:] == ["no-srv-here", "x"]
    assert snapshot(handcar, micro, bundle.rootfs) == before


def test_a_shell_on_a_terminal(handcar, micro):
    output, status = run_in_pty(
        [HANDCAR, "--root", str(handcar.root), "debug", "-t", micro], b"# ",
        b"echo $((6*7)); tty; echo term=$TERM; exit 3\n", env=dict(os.environ, TERM="vt100"))
    assert status == 3
    assert "42" in output and "/dev/pts/0" in output and "term=vt100" in output


def test_a_stopped_container_is_refused(handcar, bundle):
    handcar.ok_detached("run", "-d", "-b", bundle.args("true").write(), "done")
    assert handcar.wait_status("done", "stopped") == "stopped"
    result = handcar("debug", "done", "true")
    assert result.returncode == 1
    assert result.stderr == ("handcar: container done is stopped: debug needs a running "
                             "container\n")


def test_a_missing_image_is_one_line(handcar, micro, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'storage = "{tmp_path / "storage"}"\n')
    registries = tmp_path / "registries.conf"         # a registry that refuses connections
    registries.write_text('unqualified-search-registries = ["127.0.0.1:1"]\n')
    result = handcar("debug", "--image", "no-such-image", micro, "true",
                     env=dict(os.environ, HANDCAR_CONFIG=str(config),
                              CONTAINERS_REGISTRIES_CONF=str(registries)))
    # not in the store: pulled from its registry, and the failure is one line naming the
    # image and the registry (after pull's own progress)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("handcar:")]
    assert len(errors) == 1 and errors[0].startswith("handcar: pulling no-such-image from "
                                                     "127.0.0.1:1: "), result.stderr
    assert json.loads(handcar.ok("state", micro).stdout)["status"] == "running"
