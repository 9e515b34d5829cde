"""The rootfs: mounts, /dev, masked and read-only paths, and symlinks that try to escape."""

import os

import pytest


def run(handcar, bundle, script, name="m"):
    result = handcar("run", "-b", bundle.sh(script).write(), name)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readonly_root_and_writable_tmpfs(handcar, bundle):
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["size=1m", "mode=1777"]})
    out = run(handcar, bundle, "touch /x 2>&1 || echo ro; touch /tmp/y && echo tmp-ok; "
                               "stat -c %a /tmp; grep ' /tmp ' /proc/mounts")
    lines = out.splitlines()
    assert lines[1:3] == ["ro", "tmp-ok"] and "Read-only file system" in lines[0]
    assert lines[3] == "1777"
    assert "size=1024k" in lines[4]


def test_tmpcopyup_fills_the_tmpfs_with_what_the_image_has_there(handcar, bundle):
    # podman's --tmpfs and --read-only tmpfs mounts (runc's and crun's extension)
    rootfs = bundle.own_rootfs()
    (rootfs / "run" / "lock" / "sub").mkdir(parents=True)
    (rootfs / "run" / "lock" / "sub" / "file").write_text("from the image\n")
    (rootfs / "run" / "lock").chmod(0o1777)
    os.symlink("lock/sub/file", rootfs / "run" / "link")
    os.mkfifo(rootfs / "run" / "fifo", 0o640)
    os.chmod(rootfs / "run" / "fifo", 0o640)
    bundle.config["root"]["readonly"] = True
    bundle.config["mounts"].append({"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["rw", "nosuid", "nodev", "tmpcopyup"]})
    out = run(handcar, bundle, "cat /run/link; stat -c '%a %F' /run/lock /run/fifo; "
                               "echo new > /run/lock/sub/file && cat /run/lock/sub/file; "
                               "grep -c ' /run tmpfs ' /proc/mounts")
    assert out.splitlines() == ["from the image", "1777 directory", "640 fifo", "new", "1"]
    assert (rootfs / "run" / "lock" / "sub" / "file").read_text() == "from the image\n"


def test_bind_mounts_ro_and_rw(handcar, bundle, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello").write_text("host file\n")
    os.chmod(data, 0o777)
    single = tmp_path / "single"
    single.write_text("one file\n")
    bundle.config["mounts"] += [
        {"destination": "/ro", "type": "bind", "source": str(data), "options": ["bind", "ro"]},
        {"destination": "/rw", "type": "none", "source": str(data),
         "options": ["rbind", "nosuid", "nodev"]},
        {"destination": "/etc/single", "type": "bind", "source": str(single),
         "options": ["bind", "ro"]},
    ]
    out = run(handcar, bundle, "cat /ro/hello; touch /ro/n 2>/dev/null || echo ro-refused; "
                               "echo new > /rw/new && echo rw-ok; cat /etc/single")
    assert out.splitlines() == ["host file", "ro-refused", "rw-ok", "one file"]
    assert (data / "new").read_text() == "new\n"


def test_relative_bind_source_is_relative_to_the_bundle(handcar, bundle):
    (bundle.path / "assets").mkdir()
    (bundle.path / "assets" / "a").write_text("from the bundle\n")
    bundle.config["mounts"].append({"destination": "/assets", "type": "bind",
                                    "source": "assets", "options": ["rbind", "ro"]})
    assert run(handcar, bundle, "cat /assets/a") == "from the bundle\n"


def test_dev_is_built_from_host_nodes(handcar, bundle):
    out = run(handcar, bundle, "ls /dev; echo x > /dev/null && echo null-ok; "
                               "head -c 4 /dev/zero | wc -c; readlink /dev/ptmx; readlink /dev/fd")
    lines = out.splitlines()
    for name in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
                 "stdin", "stdout", "stderr", "fd", "ptmx"):
        assert name in lines, name
    assert lines[-4:] == ["null-ok", "4", "pts/ptmx", "/proc/self/fd"]


def test_a_bound_dev_is_left_as_it_is(handcar, bundle, tmp_path):
    """A /dev that is a bind mount (here of a directory with a file named null, a ptmx and
    an fd link of its own) is the container's /dev as it is, as runc leaves it: nothing
    is bound, made or replaced in it (it is someone else's directory)."""
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "null").write_text("not a device\n")
    (dev / "ptmx").write_text("not a device\n")
    os.symlink("/bin", dev / "fd")
    bundle.config["mounts"] = [
        {"destination": "/dev", "type": "bind", "source": str(dev), "options": ["rbind"]}
        if m["destination"] == "/dev" else m for m in bundle.config["mounts"]
        if not m["destination"].startswith("/dev/")]
    out = run(handcar, bundle, "cat /dev/null /dev/ptmx; readlink /dev/fd; ls /dev | wc -l")
    assert out.split("\n")[:4] == ["not a device", "not a device", "/bin", "3"]
    assert sorted(os.listdir(dev)) == ["fd", "null", "ptmx"]


def test_the_hosts_dev_bound_over_the_containers(handcar, bundle):
    """/dev bound from the host (docker's --device-less privileged style): its symlinks
    (stdin -> /proc/self/fd/0) are the host's, followed inside the container."""
    bundle.config["mounts"] = [
        {"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind", "nosuid"]}
        if m["destination"] == "/dev" else m for m in bundle.config["mounts"]
        if m["destination"] != "/dev/mqueue"]
    out = run(handcar, bundle, "echo x > /dev/null && echo null-ok; head -c 2 /dev/zero | wc -c; "
                               "readlink /dev/stdin; test -e /dev/tty && echo tty; "
                               "grep ' /dev/pts devpts ' /proc/mounts | tail -1")
    lines = out.splitlines()
    assert " ".join(lines[:4]).split() == ["null-ok", "2", "/proc/self/fd/0", "tty"]
    assert "ptmxmode=666" in lines[4]         # the config's devpts, on top of the host's


def test_masked_and_readonly_paths(handcar, bundle):
    bundle.linux["maskedPaths"] += ["/etc/passwd", "/home", "/does/not/exist"]
    bundle.linux["readonlyPaths"] += ["/tmp"]
    bundle.config["root"]["readonly"] = False
    out = run(handcar, bundle, "wc -c < /etc/passwd; ls /home | wc -l; "
                               "touch /home/x 2>/dev/null || echo home-ro; "
                               "touch /tmp/x 2>/dev/null || echo tmp-ro; "
                               "echo 1 > /proc/sys/kernel/shmmni 2>/dev/null || echo sys-ro")
    assert out.split() == ["0", "0", "home-ro", "tmp-ro", "sys-ro"]


def test_proc_kcore_reads_empty(handcar, bundle):
    if not os.path.exists("/proc/kcore"):
        pytest.skip("this kernel has no /proc/kcore to mask (masking itself is tested by "
                    "test_masked_and_readonly_paths)")
    assert "/proc/kcore" in bundle.linux["maskedPaths"]
    assert run(handcar, bundle, "wc -c < /proc/kcore").strip() == "0"


def test_proc_shows_only_the_container(handcar, bundle):
    out = run(handcar, bundle, "ls /proc | grep -c '^[0-9]'")
    assert int(out) <= 3                                   # sh, ls, grep at most


def test_symlinks_in_the_image_cannot_send_mounts_outside(handcar, bundle, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    rootfs = bundle.own_rootfs()
    os.symlink(str(outside), rootfs / "escape")            # absolute link to a host dir
    os.symlink("../../../../../../../..", rootfs / "up")   # climbs above the rootfs
    bundle.config["mounts"] += [
        {"destination": "/escape/tmpfs", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/up/tmp/dir2", "type": "tmpfs", "source": "tmpfs"},
    ]
    run(handcar, bundle, "grep -c tmpfs /proc/mounts")
    assert os.listdir(outside) == []                       # nothing created on the host
    assert (rootfs / str(outside).lstrip("/") / "tmpfs").is_dir()
    assert (rootfs / "tmp" / "dir2").is_dir()


def test_no_pivot_uses_chroot(handcar, bundle):
    result = handcar("run", "--no-pivot", "-b", bundle.sh("ls /bin/busybox").write(), "np")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "/bin/busybox\n"


@pytest.mark.parametrize("propagation", ["private", "rslave", "shared"])
def test_rootfs_propagation(handcar, bundle, propagation):
    bundle.linux["rootfsPropagation"] = propagation
    result = handcar("run", "-b", bundle.args("true").write(), f"prop-{propagation}")
    assert result.returncode == 0, result.stderr


def test_cgroup_mount(handcar, bundle):
    assert run(handcar, bundle, "ls /sys/fs/cgroup | wc -l").strip() != "0"


def test_read_only_rbinds_are_read_only_all_the_way_down(handcar, bundle):
    """/sys from the host has submounts (/sys/fs/cgroup and, on a hybrid host, the
    user's own delegated cgroup2 tree): none may stay writable."""
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
    bundle.config["mounts"].append({"destination": "/sys", "type": "none", "source": "/sys",
                                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    out = run(handcar, bundle, "grep -c ' /sys/' /proc/self/mountinfo; "
                               "grep ' /sys' /proc/self/mountinfo | grep -c -v ' ro,' || true")
    submounts, writable = out.split()
    assert int(submounts) > 0 and writable == "0"
