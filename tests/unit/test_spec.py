import json

import pytest

from oci import spec as oci_spec
from oci.default import default_spec
from oci.errors import SpecError


def minimal(**changes):
    doc = {"ociVersion": "1.2.0", "root": {"path": "rootfs"},
           "process": {"args": ["sh"], "cwd": "/"},
           "linux": {"namespaces": [{"type": "mount"}]}}
    doc.update(changes)
    return doc


def problems(doc):
    with pytest.raises(SpecError) as info:
        oci_spec.from_json(doc)
    return info.value.problems


def test_default_and_rootless_specs_load():
    spec = oci_spec.from_json(default_spec())
    assert spec.process.args == ("sh",)
    assert spec.linux.namespace("network") is not None
    rootless = oci_spec.from_json(default_spec(rootless=True, uid=1234, gid=567))
    assert rootless.linux.namespace("network") is None
    assert rootless.linux.uid_mappings == (oci_spec.IDMapping(0, 1234, 1),)
    assert rootless.linux.gid_mappings == (oci_spec.IDMapping(0, 567, 1),)
    sys_mount = [m for m in rootless.mounts if m.destination == "/sys"][0]
    assert "rbind" in sys_mount.options
    assert not any(o.startswith("gid=") for m in rootless.mounts for o in m.options)


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.2.1",
                                     "1.3.0", "1.3.0-rc.1", "1.3.0+dev", "1.17.4"])
def test_supported_versions(version):
    assert oci_spec.from_json(minimal(ociVersion=version)).oci_version == version


@pytest.mark.parametrize("version", ["0.9.0", "2.0.0", "1.3", "1.x.0", "banana", ""])
def test_unsupported_versions(version):
    found = problems(minimal(ociVersion=version))
    assert any(p.startswith("ociVersion: unsupported") for p in found), found


def test_unknown_properties_are_ignored():
    doc = minimal(ociVersion="1.9.0", somethingNew={"a": 1})
    doc["process"]["futureField"] = True
    doc["linux"]["futureSection"] = {"x": [1]}
    assert oci_spec.from_json(doc).oci_version == "1.9.0"


def test_every_problem_is_reported_with_its_path():
    doc = minimal(linux={"namespaces": [{"type": "user"}, {"type": "bogus"}],
                         "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 0}],
                         "gidMappings": [{"containerID": 0, "hostID": "x", "size": 1}]},
                  process={"args": [], "cwd": "relative", "env": ["NOEQUALS"],
                           "user": {"uid": -1}, "terminal": "yes"})
    del doc["root"]
    found = problems(doc)
    for expected in ("root: required",
                     "linux.namespaces[1].type: must be one of",
                     "linux.uidMappings[0].size: must be > 0",
                     "linux.gidMappings[0].hostID: must be an integer",
                     "process.args: must name a program",
                     "process.cwd: must be an absolute path",
                     "process.env[0]: must be KEY=VALUE",
                     "process.user.uid: must be >= 0",
                     "process.terminal: must be true or false"):
        assert any(p.startswith(expected) for p in found), (expected, found)


def test_error_message_names_the_source_and_all_problems():
    with pytest.raises(SpecError) as info:
        oci_spec.from_json({"ociVersion": "1.2.0"}, source="/b/config.json")
    message = str(info.value)
    assert message.startswith("invalid /b/config.json: ")
    assert "root: required" in message and "process: required" in message


def test_not_json():
    with pytest.raises(SpecError, match="not valid JSON"):
        oci_spec.loads('{"ociVersion": "1.2.0", ')


def test_wrong_top_level_type():
    assert "(document): must be an object" in problems([])


def test_mappings_need_a_user_namespace():
    doc = minimal(linux={"namespaces": [{"type": "mount"}],
                         "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
                         "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]})
    assert any("need a new user namespace" in p for p in problems(doc))


def test_overlapping_mappings():
    maps = [{"containerID": 0, "hostID": 1000, "size": 10},
            {"containerID": 5, "hostID": 2000, "size": 10}]
    doc = minimal(linux={"namespaces": [{"type": "user"}, {"type": "mount"}],
                         "uidMappings": maps, "gidMappings": maps[:1]})
    assert any(p.startswith("linux.uidMappings: container ids") for p in problems(doc))


def test_duplicate_namespace_and_rlimit():
    doc = minimal(linux={"namespaces": [{"type": "pid"}, {"type": "pid"}]},
                  process={"args": ["sh"], "cwd": "/", "rlimits": [
                      {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2},
                      {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2},
                      {"type": "RLIMIT_CORE", "soft": 5, "hard": 2}]})
    found = problems(doc)
    assert "linux.namespaces: pid is given more than once" in found
    assert "process.rlimits: RLIMIT_NOFILE is given twice" in found
    assert any("soft limit 5 is above hard limit 2" in p for p in found)


def test_sysctl_and_hostname_need_their_namespaces():
    doc = minimal(hostname="box", linux={"namespaces": [{"type": "mount"}],
                                         "sysctl": {"net.ipv4.ip_forward": "1",
                                                    "kernel.pid_max": "1"}})
    found = problems(doc)
    assert any(p.startswith("hostname: needs a private uts namespace") for p in found)
    assert any(p.startswith("linux.sysctl.net.ipv4.ip_forward: needs a private network") for p in found)
    assert any(p.startswith("linux.sysctl.kernel.pid_max: is not namespaced") for p in found)


def test_hooks_and_devices_are_checked():
    doc = minimal(hooks={"prestart": [{"path": "relative"}], "sometime": []},
                  linux={"namespaces": [{"type": "mount"}],
                         "devices": [{"type": "c", "path": "/dev/fuse"}]})
    found = problems(doc)
    assert any(p.startswith("hooks.prestart[0].path: must be an absolute path") for p in found)
    assert any(p.startswith("hooks.sometime: unknown hook kind") for p in found)
    assert "linux.devices[0].major: required" in found


def test_full_model():
    doc = default_spec()
    doc["process"]["user"] = {"uid": 1000, "gid": 100, "additionalGids": [5, 6], "umask": 0o27}
    doc["process"]["oomScoreAdj"] = 100
    doc["linux"]["timeOffsets"] = {"monotonic": {"secs": 10}}
    doc["linux"]["namespaces"].append({"type": "time"})
    doc["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    doc["annotations"] = {"a": "b"}
    spec = oci_spec.from_json(json.loads(json.dumps(doc)))
    assert spec.process.user == oci_spec.User(1000, 100, 0o27, (5, 6))
    assert spec.process.oom_score_adj == 100
    assert spec.linux.time_offsets == {"monotonic": (10, 0)}
    assert spec.annotations == {"a": "b"}
    assert spec.process.env_value("PATH").startswith("/usr/local/sbin")


def test_process_document_alone():
    process = oci_spec.process_from_json({"args": ["ls"], "cwd": "/tmp"})
    assert process.args == ("ls",) and process.cwd == "/tmp"
    with pytest.raises(SpecError, match="invalid process.json: cwd: required"):
        oci_spec.process_from_json({"args": ["ls"]})
