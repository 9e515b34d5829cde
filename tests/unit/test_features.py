"""The features document claims what works on the host it is told about, nothing more."""

from oci import spec as oci_spec
from oci.features import features_document, mount_options
from oci.mounts import parse_options

FACTS = dict(last_cap=40, namespaces={"user", "mount", "pid"}, version="9",
             cgroup_v2=True, seccomp_api=6, seccomp_actions=["kill_process", "kill_thread",
                                                             "trap", "errno", "user_notif",
                                                             "trace", "log", "allow"])


def test_versions_and_recursive_options():
    doc = features_document(**FACTS)
    assert (doc["ociVersionMin"], doc["ociVersionMax"]) == ("1.0.0", "1.3.0")
    assert {"rro", "rnosuid", "rnoatime", "rbind", "tmpcopyup"} <= set(doc["mountOptions"])
    assert not {"idmap", "ridmap", "mand"} & set(doc["mountOptions"])
    assert doc["linux"]["mountExtensions"]["idmap"]["enabled"] is False
    assert doc["linux"]["netDevices"]["enabled"] is False
    assert doc["linux"]["intelRdt"]["enabled"] is False


def test_every_option_claimed_is_one_a_config_may_use():
    for option in features_document(**FACTS)["mountOptions"]:
        doc = {"ociVersion": "1.3.0", "root": {"path": "r"},
               "process": {"args": ["sh"], "cwd": "/"},
               "linux": {"namespaces": [{"type": "mount"}]},
               "mounts": [{"destination": "/x", "type": "tmpfs", "source": "tmpfs",
                           "options": [option]}]}
        oci_spec.from_json(doc)
        assert parse_options([option]).data == "", option     # none is passed as data


def test_what_the_kernel_lacks_is_not_claimed():
    old = mount_options((5, 4), mount_setattr=False)
    assert not [o for o in old if o.startswith("r") and o not in (
        "rbind", "relatime", "remount", "ro", "rw", "rprivate", "rshared", "rslave",
        "runbindable")]
    assert "nosymfollow" not in old
    assert "rnosymfollow" not in mount_options((5, 12), mount_setattr=True)
    assert "rnosymfollow" in mount_options((5, 14), mount_setattr=True)
    doc = features_document(**dict(FACTS, last_cap=37, namespaces={"mount"}, numa=False))
    assert doc["linux"]["namespaces"] == ["mount"]
    assert doc["linux"]["capabilities"][-1] == "CAP_AUDIT_READ"
    assert "memoryPolicy" not in doc["linux"]


def test_seccomp_actions_follow_libseccomp_and_the_kernel():
    full = features_document(**FACTS)["linux"]["seccomp"]
    assert "SCMP_ACT_NOTIFY" in full["actions"] and "SCMP_ACT_KILL_PROCESS" in full["actions"]
    assert "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" not in full["supportedFlags"]
    assert "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" in full["knownFlags"]
    old = features_document(**dict(FACTS, seccomp_api=2))["linux"]["seccomp"]
    assert not {"SCMP_ACT_NOTIFY", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_LOG"} & set(old["actions"])
    assert old["supportedFlags"] == ["SECCOMP_FILTER_FLAG_TSYNC"]
    no_log = features_document(**dict(FACTS, seccomp_actions=["kill_thread", "errno",
                                                              "allow"]))["linux"]["seccomp"]
    assert no_log["actions"] == ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_ERRNO",
                                 "SCMP_ACT_ALLOW"]
    assert features_document(**dict(FACTS, seccomp_api=0))["linux"]["seccomp"] == {
        "enabled": False}
