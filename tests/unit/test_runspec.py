"""The friendly run's options turned into a config.json (oci.runspec)."""

import pytest

from oci import spec as oci_spec
from oci.runspec import (INIT_PATH, ImageConfig, Layout, RunError, RunRequest, build_spec,
                         network_kind, parse_cpus, parse_env_file, parse_size, parse_tmpfs,
                         parse_user, parse_volume, process_args)

PASSWD = "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/sh\n"
GROUP = "root:x:0:\nwww-data:x:33:\nstaff:x:50:www-data,other\n"
IMAGE = ImageConfig(entrypoint=("/entry",), cmd=("serve", "--port", "80"),
                    env=("PATH=/bin", "LANG=C"), workdir="/srv", user="www-data")


def request(**fields):
    fields.setdefault("name", "box")
    fields.setdefault("user", (0, 0, ()))
    return RunRequest(**fields)


def test_volumes():
    assert parse_volume("/a:/b", "/w") == {"destination": "/b", "type": "bind",
                                            "source": "/a", "options": ["rbind"]}
    assert parse_volume("./data:/d:ro", "/work/dir")["source"] == "/work/dir/data"
    assert parse_volume("../up:/d:rw,z", "/work/dir")["options"] == ["rbind", "rw"]
    for bad, why in (("named:/d", "named volumes"), ("/a:rel", "absolute"),
                     ("/a", "SRC:DST"), ("/a:/b:exec", "unknown option")):
        with pytest.raises(RunError, match=why):
            parse_volume(bad, "/w")


def test_tmpfs_sizes_and_cpus():
    assert parse_tmpfs("/cache:size=10m")["options"] == ["nosuid", "nodev", "size=10m",
                                                         "mode=1777"]
    assert parse_tmpfs("/c:mode=700")["options"] == ["nosuid", "nodev", "mode=700"]
    assert parse_tmpfs("/t")["options"][-1] == "mode=1777"
    with pytest.raises(RunError):
        parse_tmpfs("relative")
    assert parse_size("64m", "--memory") == 64 * 1024**2
    assert parse_size("1g", "--memory") == 1024**3
    assert parse_size("512kb", "--memory") == 512 * 1024
    assert parse_size("1000", "--memory") == 1000
    for bad in ("lots", "0", "-5m"):
        with pytest.raises(RunError, match="--memory"):
            parse_size(bad, "--memory")
    assert parse_cpus("1.5") == 1.5
    with pytest.raises(RunError):
        parse_cpus("0")


def test_env_file():
    assert parse_env_file("# c\n\nA=1\n B=two words \nHOST_VAR\n", "f") == [
        "A=1", "B=two words", "HOST_VAR"]
    with pytest.raises(RunError, match="f:2"):
        parse_env_file("A=1\n=oops\n", "f")


def test_users_by_name_and_number():
    assert parse_user("www-data", PASSWD, GROUP) == (33, 33, (50,))
    assert parse_user("33", PASSWD, GROUP) == (33, 33, (50,))
    assert parse_user("1234", PASSWD, GROUP) == (1234, 0, ())
    assert parse_user("www-data:staff", PASSWD, GROUP) == (33, 50, ())
    assert parse_user("0:7", PASSWD, GROUP) == (0, 7, ())
    with pytest.raises(RunError, match="nobody"):
        parse_user("nobody", PASSWD, GROUP)
    with pytest.raises(RunError, match="wheel"):
        parse_user("root:wheel", PASSWD, GROUP)


def test_entrypoint_and_cmd_combine_as_dockers():
    assert process_args(request(), IMAGE) == ["/entry", "serve", "--port", "80"]
    assert process_args(request(command=("x",)), IMAGE) == ["/entry", "x"]
    assert process_args(request(entrypoint="/bin/sh"), IMAGE) == ["/bin/sh"]
    assert process_args(request(entrypoint="", command=("ls",)), IMAGE) == ["ls"]
    assert process_args(request(command=("top",), init=True), None) == ["top"]
    with pytest.raises(RunError, match="no command"):
        process_args(request(), ImageConfig())


def test_network_modes():
    assert network_kind("slirp4netns:mtu=1500") == "slirp4netns"
    assert network_kind("ns:/proc/1/ns/net") == "ns"
    for bad in ("bridge", "host:x", "ns:relative"):
        with pytest.raises(RunError):
            network_kind(bad)


def test_image_spec_is_valid_and_uses_the_image():
    layout = Layout(overlay=("/img/rootfs", "/c/upper", "/c/work"),
                    etc_files={"/etc/hosts": "/c/etc/hosts"})
    document = build_spec(request(user=(33, 33, (50,)), env=("LANG=fr", "X=1"),
                                  network="slirp4netns", ports=("8080:80",), memory=2**26,
                                  cpus=0.5, pids_limit=10, remove=True), IMAGE, layout)
    spec = oci_spec.from_json(document)             # what the engine will read back
    assert spec.mounts[0].destination == "/" and spec.mounts[0].type == "overlay"
    assert "lowerdir=/img/rootfs" in spec.mounts[0].options
    assert any(m.destination == "/etc/hosts" and m.source == "/c/etc/hosts"
               for m in spec.mounts)
    assert spec.process.cwd == "/srv"
    assert list(spec.process.env) == ["PATH=/bin", "container=handcar", "LANG=fr", "X=1"]
    assert (spec.process.user.uid, spec.process.user.gid) == (33, 33)
    assert spec.process.user.additional_gids == (50,)
    assert spec.process.capabilities.effective == ()     # not root: bounding only
    assert "CAP_CHOWN" in spec.process.capabilities.bounding
    assert {ns.type for ns in spec.linux.namespaces} == {
        "pid", "ipc", "uts", "mount", "user", "cgroup", "network"}
    assert spec.hostname == "box"
    assert document["annotations"]["handcar.network"] == "slirp4netns"
    assert document["annotations"]["handcar.ports"] == "8080:80"
    assert document["annotations"]["handcar.rm"] == "true"
    resources = document["linux"]["resources"]
    assert resources == {"memory": {"limit": 2**26}, "cpu": {"quota": 50000, "period": 100000},
                         "pids": {"limit": 10}}


def test_host_sandbox_spec():
    layout = Layout(host_dirs=("/usr", "/etc"), cwd="/home/me/project", home="/home/me",
                    uid_mappings=({"containerID": 1000, "hostID": 1000, "size": 1},),
                    gid_mappings=({"containerID": 1000, "hostID": 1000, "size": 1},))
    document = build_spec(request(command=("make",), user=(1000, 1000, ())), None, layout)
    spec = oci_spec.from_json(document)
    assert spec.root_readonly
    destinations = [m.destination for m in spec.mounts]
    assert destinations.index("/usr") < destinations.index("/proc")
    assert destinations.index("/home/me") < destinations.index("/home/me/project")
    usr = spec.mounts[destinations.index("/usr")]
    assert "ro" in usr.options
    assert "rw" in spec.mounts[destinations.index("/home/me/project")].options
    assert spec.process.cwd == "/home/me/project"
    assert "network" not in {ns.type for ns in spec.linux.namespaces}   # the host's
    assert "hostname" not in document                               # the host's
    assert "HOME=/home/me" in spec.process.env
    assert spec.linux.uid_mappings[0].container_id == 1000


def test_capabilities_add_and_drop():
    document = build_spec(request(command=("x",), cap_add=("net_admin",),
                                  cap_drop=("CAP_CHOWN",)), None, Layout(cwd="/w"))
    caps = document["process"]["capabilities"]
    assert "CAP_NET_ADMIN" in caps["effective"] and "CAP_CHOWN" not in caps["bounding"]
    none = build_spec(request(command=("x",), cap_drop=("all",)), None, Layout(cwd="/w"))
    assert none["process"]["capabilities"]["bounding"] == []
    with pytest.raises(RunError, match="CAP_BOGUS|bogus"):
        build_spec(request(command=("x",), cap_add=("bogus",)), None, Layout(cwd="/w"))


def test_the_default_seccomp_profile_follows_the_capabilities():
    def allowed(document, name):
        return "SCMP_ACT_ALLOW" in [rule["action"] for rule in
                                    document["linux"]["seccomp"]["syscalls"]
                                    if name in rule["names"]]

    def spec_with(**fields):
        return build_spec(request(command=("x",), seccomp="default", **fields), None,
                          Layout(cwd="/w"))
    plain = spec_with()
    assert plain["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert allowed(plain, "chroot") and not allowed(plain, "init_module")
    assert allowed(spec_with(cap_add=("SYS_MODULE",)), "init_module")
    assert not allowed(spec_with(cap_drop=("SYS_CHROOT",)), "chroot")
    assert "seccomp" not in build_spec(request(command=("x",)), None, Layout(cwd="/w"))["linux"]


def test_devpts_keeps_gid_5_only_where_it_is_mapped():
    def devpts(gid_mappings):
        layout = Layout(cwd="/w", gid_mappings=gid_mappings,
                        uid_mappings=({"containerID": 0, "hostID": 1000, "size": 1},))
        document = build_spec(request(command=("x",)), None, layout)
        return next(m for m in document["mounts"] if m["type"] == "devpts")["options"]
    assert "gid=5" not in devpts(({"containerID": 0, "hostID": 1000, "size": 1},))
    assert "gid=5" in devpts(({"containerID": 0, "hostID": 1000, "size": 1},
                              {"containerID": 1, "hostID": 100000, "size": 65536}))


def test_init_is_the_bound_program_or_handcars_own():
    bound = build_spec(request(command=("top",), init=True), None,
                       Layout(cwd="/w", init_binary="/usr/bin/catatonit"))
    assert bound["process"]["args"] == [INIT_PATH, "--", "top"]
    assert any(m["destination"] == INIT_PATH and m["source"] == "/usr/bin/catatonit"
               for m in bound["mounts"])
    own = build_spec(request(command=("top",), init=True), None, Layout(cwd="/w"))
    assert own["process"]["args"] == ["top"]
    assert own["annotations"]["handcar.init"] == "builtin"
