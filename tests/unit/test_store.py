import os

import pytest

from rootless.runtime import store as st
from rootless.errors import AlreadyExists, HandcarError, NotFound


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "a\0b", "x" * 1025, "sp ace"])
def test_bad_ids_are_refused(bad):
    with pytest.raises(HandcarError, match="invalid container id"):
        st.check_id(bad)


@pytest.mark.parametrize("good", ["a", "abc-123_x.y+z", "x" * 1024])
def test_good_ids(good):
    st.check_id(good)


def test_default_root_uses_a_usable_xdg_runtime_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert st.default_root() == str(tmp_path / "handcar")


def test_default_root_without_xdg(monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    expected = "/run/handcar" if os.geteuid() == 0 else f"/tmp/handcar-{os.geteuid()}"
    assert st.default_root() == expected


def test_default_root_ignores_a_missing_xdg_dir(monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/nonexistent/run")
    assert not st.default_root().startswith("/nonexistent")


def test_root_writable_by_others_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir(mode=0o777)
    os.chmod(root, 0o777)
    with pytest.raises(HandcarError, match="writable by others"):
        st.Store(str(root)).reserve("c", "/b", {})


def test_reserve_lock_and_status(tmp_path):
    store = st.Store(str(tmp_path / "root"))
    record = store.reserve("c1", "/bundle", {"k": "v"})
    assert oct(os.stat(store.root).st_mode & 0o777) == "0o700"
    with pytest.raises(AlreadyExists):
        store.reserve("c1", "/bundle", {})
    # Another reader sees "creating" while the creator holds the lock ...
    assert store.open("c1", lock=False).status() == "creating"
    # ... and "stopped" once the creator is gone without finishing.
    record.unlock()
    assert store.open("c1", lock=False).status() == "stopped"
    assert store.ids() == ["c1"]


def test_reserve_writes_the_first_fields_at_once(tmp_path):
    store = st.Store(str(tmp_path / "root"))
    store.reserve("c1", "/bundle", {"k": "v"}, rootfs="/bundle/rootfs", hooks=["poststop"])
    data = store.open("c1", lock=False).data
    assert (data["status"], data["bundle"], data["annotations"]) == ("creating", "/bundle",
                                                                     {"k": "v"})
    assert (data["rootfs"], data["hooks"]) == ("/bundle/rootfs", ["poststop"])


def test_status_follows_the_init_process(tmp_path):
    store = st.Store(str(tmp_path / "root"))
    record = store.reserve("c1", "/bundle", {})
    me = os.getpid()
    record.save(status="created", pid=me, start_time=st.process_start_time(me))
    open(record.fifo_path, "w").close()
    assert record.status() == "created"
    os.unlink(record.fifo_path)
    assert record.status() == "running"
    state = record.state().to_json()
    assert state["pid"] == me and state["status"] == "running" and state["bundle"] == "/bundle"
    # Same pid, another start time: a reused pid is not our init.
    record.save(start_time=st.process_start_time(me) - 1)
    assert record.status() == "stopped"
    assert record.state().pid == 0
    record.remove()
    with pytest.raises(NotFound):
        store.open("c1")


def test_process_start_time_of_a_dead_pid():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert st.process_start_time(pid) is None


def test_write_atomic(tmp_path):
    path = tmp_path / "f"
    st.write_atomic(str(path), "one")
    st.write_atomic(str(path), "two", 0o644)
    assert path.read_text() == "two"
    assert os.listdir(tmp_path) == ["f"]


def test_rfc3339_now():
    stamp = st.rfc3339_now()
    assert stamp.endswith("Z") and len(stamp) == len("2024-01-01T00:00:00.123456789Z")


def test_every_use_checks_the_root(tmp_path):
    store = st.Store(str(tmp_path / "root"))
    store.reserve("c1", "/bundle", {}).unlock()
    os.chmod(store.root, 0o777)
    with pytest.raises(HandcarError, match="writable by others"):
        store.open("c1", lock=False)
    with pytest.raises(HandcarError, match="writable by others"):
        store.ids()


def test_a_lock_on_a_deleted_directory_is_not_kept(tmp_path):
    store = st.Store(str(tmp_path / "root"))
    first = store.reserve("c1", "/bundle", {})
    first.remove()                         # deleted, then made anew with the same id
    second = store.reserve("c1", "/other", {})
    second.unlock()
    record = store.open("c1")              # locks the new directory, not a dead one
    assert record.data["bundle"] == "/other"
    assert os.fstat(record._lock_fd).st_ino == os.stat(record.path).st_ino
