"""Everyday podman commands with `podman --runtime handcar`, as the unprivileged user."""

import urllib.request

import pytest

from daemons import run_on_a_terminal  # (tests/: on sys.path through conftest)
from harness import HANDCAR, free_port, wait_until
from rootless.runtime import cgroups

# What a container that stops quickly on SIGTERM runs (as pid 1 it has no default action).
SERVE_UNTIL_TERM = "echo started; trap 'exit 0' TERM; while :; do sleep 0.1; done"


def test_run_prints_and_returns_the_exit_status(podman, image):
    result = podman("run", "--rm", image, "echo", "hello from handcar")
    assert (result.returncode, result.stdout) == (0, "hello from handcar\n"), result.stderr
    assert podman("run", "--rm", image, "sh", "-c", "exit 3").returncode == 3
    # --rm removed them (through `podman container cleanup`, run by conmon, too)
    assert podman.ok("ps", "--all", "--quiet").stdout == ""


def test_failures_reach_podman_as_json_with_the_words_it_maps_to_exit_codes(podman, image):
    # podman reads the error back from handcar's --log file (--log-format=json, as the
    # snippet's runtime_supports_json asks); falling back to handcar's stderr instead
    # would show handcar's own "handcar: " prefix after podman's "<runtime>: ".
    # (the last line: podman may warn before it, e.g. that / is not a shared mount)
    missing = podman("run", "--rm", image, "no-such-program")
    assert missing.returncode == 127
    assert missing.stderr.splitlines()[-1] == (
        f'Error: {HANDCAR}: exec: "no-such-program": executable file not found in $PATH: '
        "OCI runtime attempted to invoke a command that was not found")
    denied = podman("run", "--rm", image, "/etc/passwd")
    assert denied.returncode == 126
    assert denied.stderr.splitlines()[-1] == (
        f'Error: {HANDCAR}: exec: "/etc/passwd": permission denied: OCI permission denied')


def test_a_detached_container(podman, image, names):
    name = names("detached")
    # --oom-score-adj below ours cannot be set without privilege: handcar warns, in its
    # --log file only, so the warning stays out of the container's logs
    podman.ok("run", "-d", "--name", name, "--oom-score-adj=-100", image, "sh", "-c",
              SERVE_UNTIL_TERM)
    pid, conmon = podman.inspect(name, "{{.State.Pid}} {{.State.ConmonPid}}").split()
    with open(f"/proc/{pid}/status") as f:          # init was reparented to conmon
        assert f"PPid:\t{conmon}\n" in f.read()
    result = podman("exec", name, "sh", "-c", "echo in the container; exit 4")
    assert (result.returncode, result.stdout) == (4, "in the container\n"), result.stderr
    assert podman("exec", name, "no-such-program").returncode == 127
    assert wait_until(lambda: podman.ok("logs", name).stdout == "started\n")
    podman.ok("stop", "-t", "2", name)
    assert podman.inspect(name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"
    podman.ok("rm", name)
    assert podman("inspect", name).returncode != 0


def test_exec_of_a_program_execve_refuses(podman, image, names):
    # exists and is executable, so it passes handcar's checks, but its interpreter is
    # missing: handcar must wait for execve before it writes the pid file conmon reads
    name = names("execve")
    podman.ok("run", "-d", "--name", name, image, "sleep", "1000")
    podman.ok("exec", name, "sh", "-c", "printf '#!/no/such/shell\\n' > /tmp/script && "
                                        "chmod +x /tmp/script")
    result = podman("exec", name, "/tmp/script")
    assert result.returncode == 127
    assert '"/tmp/script": no such file or directory' in result.stderr
    assert podman("exec", "-d", name, "/tmp/script").returncode != 0


def test_terminals(podman, image, names):
    result = podman("run", "--rm", "-t", image, "tty")
    assert result.returncode == 0 and result.stdout.startswith("/dev/pts/"), result.stderr
    name = names("tty")
    podman.ok("run", "-d", "--name", name, image, "sleep", "1000")
    result = podman("exec", "-t", name, "tty")
    assert result.returncode == 0 and result.stdout.startswith("/dev/pts/"), result.stderr


def test_run_interactive_with_a_terminal(podman, image):
    """run -it from a terminal: podman passes the pty through --console-socket."""
    status, output = run_on_a_terminal(podman.command("run", "--rm", "-it", image, "sh"),
                                       b"echo $((6 * 7))done\nexit 5\n", podman.env)
    assert status == 5, output
    assert b"42done" in output


def test_read_only_root_and_tmpfs_mounts(podman, image):
    # podman asks for its tmpfs mounts with runc's tmpcopyup extension
    result = podman("run", "--rm", "--read-only", "--tmpfs", "/scratch:size=1m", image, "sh",
                    "-c", "touch /x 2>/dev/null || echo read-only; echo a > /tmp/a && "
                          "echo b > /scratch/b && cat /tmp/a /scratch/b")
    assert (result.returncode, result.stdout) == (0, "read-only\na\nb\n"), result.stderr


def test_init_is_catatonit(podman, image):
    result = podman("run", "--rm", "--init", image, "sh", "-c",
                    "tr '\\0' ' ' < /proc/1/cmdline; echo; /run/podman-init --version")
    assert result.returncode == 0, result.stderr
    cmdline, version = result.stdout.splitlines()[:2]
    assert cmdline.split()[:2] == ["/run/podman-init", "--"]     # podman's name for it
    assert "catatonit" in version            # "tini version 0.1.7_catatonit"


def test_kill_and_restart(podman, image, names):
    name = names("restart")
    podman.ok("run", "-d", "--name", name, image, "sleep", "1000")
    first = podman.inspect(name, "{{.State.Pid}}")
    podman.ok("kill", name)
    assert wait_until(lambda: podman.inspect(name, "{{.State.Status}}") == "exited")
    assert podman.inspect(name, "{{.State.ExitCode}}") == "137"
    podman.ok("restart", name)
    assert podman.inspect(name, "{{.State.Status}}") == "running"
    assert podman.inspect(name, "{{.State.Pid}}") != first
    podman.ok("kill", "--signal", "KILL", name)
    assert wait_until(lambda: podman.inspect(name, "{{.State.Status}}") == "exited")


def test_a_published_port_reaches_the_container(podman, image, names):
    """podman's own slirp4netns network: handcar joins the network namespace podman
    passes, and podman's port forwarder reaches the server in it."""
    name, port = names("httpd"), free_port()
    podman.ok("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", image, "sh", "-c",
              "mkdir -p /www && echo 'served by busybox in handcar' > /www/index.html && "
              "exec httpd -f -p 8080 -h /www")
    page = []

    def fetched():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                page.append(response.read().decode())
                return True
        except OSError:
            return False
    assert wait_until(fetched), podman("logs", name).stdout
    assert page[-1] == "served by busybox in handcar\n"


def test_container_cleanup_deletes_the_runtimes_container(podman, image, names):
    name = names("cleanup")
    container_id = podman.ok("run", "-d", "--name", name, image, "true").stdout.strip()
    assert wait_until(lambda: podman.inspect(name, "{{.State.Status}}") == "exited")
    podman.ok("container", "cleanup", name)
    # handcar's state lives in the XDG_RUNTIME_DIR podman gives it
    assert wait_until(lambda: not (podman.runtime_dir / "handcar" / container_id).exists())
    podman.ok("rm", name)


def test_cgroups_disabled(podman, image, names):
    """--cgroups=disabled (podman asks the snippet's runtime_supports_nocgroup) passes
    --cgroup-manager disabled: the container stays in the cgroup conmon is in."""
    name = names("nocgroup")
    podman.ok("run", "-d", "--cgroups=disabled", "--name", name, image, "sleep", "1000")

    def cgroup_v2_line(pid):
        with open(f"/proc/{pid}/cgroup") as f:
            return [line for line in f if line.startswith("0::")]
    pid, conmon = podman.inspect(name, "{{.State.Pid}} {{.State.ConmonPid}}").split()
    assert cgroup_v2_line(pid) == cgroup_v2_line(conmon)


def _why_podman_cannot_pause():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == "/sys/fs/cgroup" and fields[fields.index("-") + 1] == "cgroup2":
                break
        else:
            return ("podman 4.3 refuses to pause rootless containers unless /sys/fs/cgroup is "
                    "cgroup v2 ('can not pause containers on rootless containers with cgroup "
                    "V1'): this host's /sys/fs/cgroup is not (a hybrid host has cgroup2 at "
                    "/sys/fs/cgroup/unified)")
    if cgroups.delegated_root() is None:
        return "handcar pauses through its cgroup: no cgroup v2 subtree is delegated here"
    return None


CANNOT_PAUSE = _why_podman_cannot_pause()


@pytest.mark.skipif(CANNOT_PAUSE is not None, reason=str(CANNOT_PAUSE))
def test_pause_and_unpause(podman, image, names):
    name = names("pause")
    podman.ok("run", "-d", "--name", name, image, "sleep", "1000")
    podman.ok("pause", name)
    assert podman.inspect(name, "{{.State.Status}}") == "paused"
    podman.ok("unpause", name)
    assert podman.inspect(name, "{{.State.Status}}") == "running"
