import os

import pytest

from oci import spec as oci_spec
from rootless.runtime import userns
from rootless.errors import UsernsError


@pytest.fixture
def subids(tmp_path, monkeypatch):
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("alice:100000:65536\nbob:200000:1000\n1000:300000:10\n")
    subgid.write_text("alice:100000:65536\n")
    monkeypatch.setattr(userns, "SUBUID", str(subuid))
    monkeypatch.setattr(userns, "SUBGID", str(subgid))
    monkeypatch.setattr(userns, "check_helpers", lambda: None)


def linux(uid_maps=(), gid_maps=(), user=True):
    namespaces = [oci_spec.Namespace("mount")] + ([oci_spec.Namespace("user")] if user else [])
    return oci_spec.Linux(namespaces=tuple(namespaces), uid_mappings=tuple(uid_maps),
                          gid_mappings=tuple(gid_maps))


M = oci_spec.IDMapping


def test_subordinate_ranges_by_name_and_id(subids):
    assert userns.subordinate_ranges(userns.SUBUID, "alice", 1000) == [(100000, 65536), (300000, 10)]
    assert userns.subordinate_ranges(userns.SUBUID, "carol", 1001) == []
    assert userns.subordinate_ranges("/nonexistent", "alice", 1000) == []


def test_no_user_namespace_adds_one_from_the_subordinate_range(subids):
    plan = userns.plan(linux(user=False), 1000, 1000, "alice")
    assert plan.uid_mappings == (M(0, 1000, 1), M(1, 100000, 65536))
    assert plan.gid_mappings == (M(0, 1000, 1), M(1, 100000, 65536))
    assert not plan.direct


def test_without_subordinate_ids_the_default_is_the_own_id_alone(subids):
    plan = userns.plan(linux(user=False), 1001, 1001, "carol")
    assert plan.uid_mappings == (M(0, 1001, 1),)
    assert plan.direct


def test_root_without_user_namespace_needs_no_mapping(subids):
    assert userns.plan(linux(user=False), 0, 0, "root") is None


def test_joined_user_namespace_needs_no_mapping(subids):
    joined = oci_spec.Linux(namespaces=(oci_spec.Namespace("user", "/proc/1/ns/user"),))
    assert userns.plan(joined, 1000, 1000, "alice") is None


def test_config_mappings_inside_the_ranges(subids):
    maps = (M(0, 1000, 1), M(1, 100000, 65536))
    plan = userns.plan(linux(maps, maps), 1000, 1000, "alice")
    assert plan.uid_mappings == maps and not plan.direct


def test_mapping_outside_the_ranges_is_refused(subids):
    maps = (M(0, 1000, 1), M(1, 100000, 70000))
    with pytest.raises(UsernsError, match=r"linux.uidMappings\[1\]: host uids 100000-169999 are "
                                          r"outside your ranges in .*subuid \(100000-165535"):
        userns.plan(linux(maps, maps), 1000, 1000, "alice")


def test_mapping_without_a_subuid_entry_says_what_to_do(subids):
    maps = (M(0, 1001, 1), M(1, 100000, 10))
    with pytest.raises(UsernsError, match="no entry for carol in .*subuid.*usermod"):
        userns.plan(linux(maps, maps), 1001, 1001, "carol")


def test_container_root_must_be_mapped(subids):
    maps = (M(1, 1000, 1),)
    with pytest.raises(UsernsError, match="container uid 0, or your own"):
        userns.plan(linux(maps, maps), 1000, 1000, "alice")


def test_own_id_alone_is_written_directly(subids):
    maps = (M(0, 1000, 1),)
    assert userns.plan(linux(maps, maps), 1000, 1000, "alice").direct


def test_root_writes_any_mapping_directly(subids):
    maps = (M(0, 500000, 65536),)
    assert userns.plan(linux(maps, maps), 0, 0, "root").direct


def test_missing_helpers_are_named(monkeypatch):
    from rootless.runtime import host
    monkeypatch.setattr(host, "find_program", lambda program, also=(): None)
    with pytest.raises(UsernsError, match="newuidmap not found: install the uidmap package"):
        userns.check_helpers()


def test_keep_id_maps_the_caller_as_itself():
    assert userns.keep_id_mappings(1000, [(100000, 65536)]) == (
        M(0, 100000, 1000), M(1000, 1000, 1), M(1001, 101000, 64536))
    assert userns.keep_id_mappings(1000, []) == (M(1000, 1000, 1),)
    plan = userns.MappingPlan(userns.keep_id_mappings(1000, [(100000, 65536)]),
                              userns.keep_id_mappings(1000, [(100000, 65536)]), False)
    assert plan.maps_caller(1000, 1000)
    assert not plan.maps_caller(2000, 1000)


# --- running newuidmap and newgidmap (fakes on PATH) ------------------------------------

HELPER_PLAN = userns.MappingPlan((M(0, 1000, 1), M(1, 100000, 65536)),
                                 (M(0, 1000, 1), M(1, 100000, 65536)), direct=False)


def fake_helper(directory, name, script):
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def test_the_helpers_run_side_by_side(tmp_path, monkeypatch):
    # newuidmap only finishes once newgidmap has started: one after the other, it would
    # wait in vain (and fail after 10 s)
    log = tmp_path / "log"
    fake_helper(tmp_path, "newuidmap", f'for i in 1 2 3 4 5 6 7 8 9 10; do [ -e {tmp_path}/gid ] '
                                       f'|| /bin/sleep 1; done\n[ -e {tmp_path}/gid ] || exit 3\n'
                                       f'echo "$0 $*" >> {log}\n')
    fake_helper(tmp_path, "newgidmap", f': > {tmp_path}/gid\necho "$0 $*" >> {log}\n')
    monkeypatch.setenv("PATH", str(tmp_path))     # the fakes alone
    userns.apply(HELPER_PLAN, 4242)
    assert sorted(line.split("/")[-1] for line in log.read_text().splitlines()) == [
        "newgidmap 4242 0 1000 1 1 100000 65536", "newuidmap 4242 0 1000 1 1 100000 65536"]


def test_a_failed_helper_is_named_with_its_message(tmp_path, monkeypatch):
    fake_helper(tmp_path, "newuidmap", "exit 0\n")
    fake_helper(tmp_path, "newgidmap", "echo 'newgidmap: gid range not allowed' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", str(tmp_path))     # the fakes alone
    with pytest.raises(userns.HelperFailed, match="newgidmap exited with status 1: newgidmap: "
                                                  "gid range not allowed"):
        userns.apply(HELPER_PLAN, 4242)


def test_a_helper_that_cannot_start_leaves_no_child_behind(tmp_path, monkeypatch):
    fake_helper(tmp_path, "newuidmap", "/bin/sleep 0.2\n")        # newgidmap is missing
    monkeypatch.setenv("PATH", str(tmp_path))     # the fakes alone
    with pytest.raises(FileNotFoundError):
        userns.apply(HELPER_PLAN, 4242)
    with pytest.raises(ChildProcessError):                 # newuidmap was waited for
        os.waitpid(-1, os.WNOHANG)


def _launch(namespaces, mapping=True, exec_into=False):
    from rootless.child.init import Launch
    spec = oci_spec.Spec(linux=oci_spec.Linux(namespaces=tuple(
        oci_spec.Namespace(kind, path) for kind, path in namespaces)))
    return Launch(spec=spec, exec_into=exec_into,
                  mapping=userns.MappingPlan((M(0, 1000, 1),), (M(0, 1000, 1),), True)
                  if mapping else None)


def test_init_is_born_in_the_namespaces_one_clone3_can_make():
    from rootless.system import libc
    from rootless.child.init import namespaces_at_birth
    every = [("user", ""), ("mount", ""), ("pid", ""), ("network", ""), ("ipc", ""),
             ("uts", ""), ("cgroup", "")]
    assert namespaces_at_birth(_launch(every)) == (
        libc.CLONE_NEWUSER | libc.CLONE_NEWNS | libc.CLONE_NEWPID | libc.CLONE_NEWNET
        | libc.CLONE_NEWIPC | libc.CLONE_NEWUTS)      # cgroup: unshared once placed
    # root without a user namespace: the rest still at birth
    assert namespaces_at_birth(_launch([("mount", ""), ("pid", "")], mapping=False)) == (
        libc.CLONE_NEWNS | libc.CLONE_NEWPID)
    # an intermediate where one is needed
    assert namespaces_at_birth(_launch(every + [("time", "")])) is None
    assert namespaces_at_birth(_launch([("user", ""), ("network", "/run/netns/x")])) is None
    assert namespaces_at_birth(_launch(every, exec_into=True)) is None
