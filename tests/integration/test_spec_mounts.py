"""Mount behaviour runtime-spec states: recursive options, rootfsPropagation, device
nodes, tmpfs modes, locked access-time flags, and a config without /proc."""

import os

import pytest


def run(handcar, bundle, script, name="m"):
    result = handcar("run", "-b", bundle.sh(script).write(), name)
    assert result.returncode == 0, result.stderr
    return result.stdout


def mount_options(mounts_text, point):
    """The options of the top mount at `point` in a /proc/mounts text."""
    found = None
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[1] == point:
            found = set(fields[3].split(","))
    assert found is not None, (point, mounts_text)
    return found


def tree_with_a_submount(bundle):
    """A writable rootfs with a tmpfs at /a and another at /a/sub; its host path of /a
    (what a bind mount's source names, seen from the container's mount namespace)."""
    rootfs = bundle.own_rootfs()
    bundle.config["mounts"] += [
        {"destination": "/a", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]},
        {"destination": "/a/sub", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]},
    ]
    return str(rootfs / "a")


def test_rro_makes_a_bind_and_its_submounts_read_only(handcar, bundle):
    source = tree_with_a_submount(bundle)
    bundle.config["mounts"].append({"destination": "/ro", "type": "bind", "source": source,
                                    "options": ["rbind", "rro", "rnosuid", "rnoexec"]})
    out = run(handcar, bundle, "touch /ro/x 2>/dev/null || echo top-ro; "
                               "touch /ro/sub/x 2>/dev/null || echo sub-ro; "
                               "touch /a/sub/x && echo original-rw; cat /proc/mounts")
    lines = out.splitlines()
    assert lines[:3] == ["top-ro", "sub-ro", "original-rw"]
    mounts = "\n".join(lines[3:])
    for point in ("/ro", "/ro/sub"):
        assert {"ro", "nosuid", "noexec"} <= mount_options(mounts, point), point
    assert "rw" in mount_options(mounts, "/a/sub")


def test_rrw_and_rexec_clear_what_the_tree_has(handcar, bundle):
    source = tree_with_a_submount(bundle)
    bundle.config["mounts"][-2]["options"].append("noexec")       # /a
    bundle.config["mounts"][-1]["options"].append("noexec")       # /a/sub
    bundle.config["mounts"].append({"destination": "/x", "type": "bind", "source": source,
                                    "options": ["rbind", "rexec", "rnodiratime"]})
    mounts = run(handcar, bundle, "cat /proc/mounts")
    for point in ("/x", "/x/sub"):
        options = mount_options(mounts, point)
        assert "noexec" not in options and "nodiratime" in options, (point, options)
    assert "noexec" in mount_options(mounts, "/a/sub")


def test_recursive_options_on_a_tmpfs(handcar, bundle):
    bundle.config["mounts"].append({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["rnoexec", "rnodev", "rnoatime", "rro"]})
    out = run(handcar, bundle, "touch /t/x 2>/dev/null || echo ro; cat /proc/mounts")
    assert out.startswith("ro\n")
    assert {"ro", "noexec", "nodev", "noatime"} <= mount_options(out, "/t")


def test_access_time_flags_locked_on_a_host_bind_are_kept(handcar, bundle, tmp_path):
    """In a user namespace, a mount from the host keeps its access-time flags (the kernel
    locks them): asking for others keeps them, as crun does, instead of EPERM."""
    data = tmp_path / "data"
    data.mkdir()
    host = os.statvfs(data).f_flag
    other = "strictatime" if host & (os.ST_RELATIME | os.ST_NOATIME) else "noatime"
    bundle.config["mounts"] += [
        {"destination": "/data", "type": "bind", "source": str(data),
         "options": ["bind", "ro", other]},
        {"destination": "/rdata", "type": "bind", "source": str(data),
         "options": ["rbind", "rro", "r" + other]}]
    mounts = run(handcar, bundle, "cat /proc/mounts")
    for point in ("/data", "/rdata"):
        options = mount_options(mounts, point)
        assert "ro" in options
        if os.geteuid() != 0:
            assert other not in options, (point, options)


@pytest.mark.parametrize("propagation,tag", [
    ("unbindable", "unbindable"), ("private", None), ("rprivate", None), ("slave", "master:"),
    ("rslave", "master:"), ("shared", "shared:")])
def test_rootfs_propagation(handcar, bundle, propagation, tag):
    """rootfsPropagation is the rootfs's own, set once it is "/" (runc binds the rootfs
    first): each value shows in the optional fields of / in mountinfo."""
    bundle.linux["rootfsPropagation"] = propagation
    out = run(handcar, bundle, "awk '$5 == \"/\"' /proc/self/mountinfo")
    fields = out.split()
    optional = fields[6:fields.index("-")]
    if tag == "master:" and not _host_mount_is_shared(str(bundle.rootfs)):
        tag = None                # a slave of a private mount is private: nothing to receive
    if tag is None:
        assert optional == [], out
    else:
        assert any(item.startswith(tag) for item in optional), out


def _host_mount_is_shared(path):
    """Whether the host mount that holds `path` is shared (has a peer group)."""
    best, shared = "", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            if (path == point or path.startswith(point.rstrip("/") + "/")) \
                    and len(point) >= len(best):
                best = point
                shared = any(item.startswith("shared:")
                             for item in fields[6:fields.index("-")])
    return shared


def test_device_nodes_are_nosuid_and_noexec(handcar, bundle):
    bundle.linux["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}] \
        if os.path.exists("/dev/fuse") else []
    mounts = run(handcar, bundle, "cat /proc/mounts")
    for node in ["/dev/null", "/dev/zero", "/dev/tty"] + [d["path"] for d in bundle.linux["devices"]]:
        assert {"nosuid", "noexec"} <= mount_options(mounts, node), node


def test_a_tmpfs_without_mode_keeps_its_mount_points(handcar, bundle):
    rootfs = bundle.own_rootfs()
    (rootfs / "private").mkdir(mode=0o700)
    os.chmod(rootfs / "private", 0o710)
    bundle.config["mounts"] += [
        {"destination": "/private", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
        {"destination": "/made", "type": "tmpfs", "source": "tmpfs", "options": []},
        {"destination": "/given", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]}]
    out = run(handcar, bundle, "stat -c %a /private /made /given")
    assert out.split() == ["710", "755", "1777"]


def test_a_config_without_proc_is_refused_clearly(handcar, bundle):
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/proc"]
    result = handcar("run", "-b", bundle.args("true").write(), "noproc")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "mounts: nothing is mounted on /proc, which handcar's init needs" in result.stderr
    assert handcar("list", "-q").stdout == ""
