"""Where containers' state lives: one directory per container under the state root.

A container directory holds `state.json` (written atomically) and, until `start`, the
`exec.fifo` its init waits on. The directory itself is the container's lock (flock on
its fd): create holds it from reservation to the end, and every verb that changes a
container takes it. Readers (state, list) read state.json without the lock.
"""

import fcntl
import os
import stat
import time

from oci import jsonio
from rootless.errors import AlreadyExists, HandcarError, NotFound

MAX_ID_BYTES = 1024

# A container's status, as the OCI state document names it.
CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"
ALIVE = (CREATED, RUNNING, PAUSED)          # an init that can be signalled, exec'd into
_ID_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_id(container_id):
    """Refuse ids that could name anything but one directory under the root."""
    if not container_id:
        raise HandcarError("invalid container id: must not be empty")
    if len(container_id.encode(errors="surrogateescape")) > MAX_ID_BYTES:
        raise HandcarError(f"invalid container id: longer than {MAX_ID_BYTES} bytes")
    if container_id in (".", "..") or not _ID_CHARACTERS.issuperset(container_id):
        raise HandcarError(f"invalid container id {container_id!r}: "
                           "use letters, digits, '_', '+', '-' and '.'")


def default_root():
    """$XDG_RUNTIME_DIR/handcar when that directory is the caller's; otherwise
    /run/handcar for root and a private /tmp/handcar-UID for everyone else."""
    uid = os.geteuid()
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime_dir:
        try:
            st = os.stat(runtime_dir)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == uid and os.access(runtime_dir, os.W_OK):
                return os.path.join(runtime_dir, "handcar")
        except OSError:
            pass
    return "/run/handcar" if uid == 0 else f"/tmp/handcar-{uid}"


def user_name(uid):
    """The login name of `uid` (its number when it has none), as /etc/subuid names it."""
    import pwd
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def write_atomic(path, data, mode=0o600):
    """Write `data` to `path` so that readers see the old or the new content, never a part."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data.encode() if isinstance(data, str) else data)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def rfc3339_now():
    now = time.time_ns()
    seconds, nanos = divmod(now, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def process_start_time(pid):
    """The start time (clock ticks after boot) of a live process, or None when `pid` is
    gone or a zombie. Together with the pid it names one process: pids get reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def _already_exists(container_id):
    return AlreadyExists(f"container {container_id} already exists")


class Store:
    def __init__(self, root=None):
        self.root = os.path.abspath(root or default_root())

    def _ensure_root(self):
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
        except OSError as err:
            raise HandcarError(f"cannot create state root {self.root}: {err.strerror}") from None
        self._check_root()

    def _check_root(self):
        """Refuse a state root that is not the caller's alone: anyone who could write
        there could make handcar signal pids or run hooks of their choosing."""
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            return
        if st.st_uid != os.geteuid():
            raise HandcarError(f"state root {self.root} belongs to uid {st.st_uid}, not to you "
                               f"(uid {os.geteuid()}); refusing to use it")
        if st.st_mode & 0o022:
            raise HandcarError(f"state root {self.root} is writable by others "
                               f"(mode {stat.S_IMODE(st.st_mode):o}); refusing to use it")

    def path(self, container_id):
        check_id(container_id)
        return os.path.join(self.root, container_id)

    def refuse_taken(self, container_id):
        """AlreadyExists if the id is taken (reserve is what takes it, atomically)."""
        if os.path.lexists(self.path(container_id)):
            raise _already_exists(container_id)

    def reserve(self, container_id, bundle, annotations, **fields):
        """A new, locked Record in status `creating` (with `fields` in its state from the
        start); AlreadyExists if the id is taken."""
        path = self.path(container_id)
        self._ensure_root()
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            raise _already_exists(container_id) from None
        record = Record(path, container_id)
        record.lock()
        record.data = {"id": container_id, "status": CREATING, "pid": 0, "start_time": 0,
                       "bundle": bundle, "created": rfc3339_now(),
                       "owner": user_name(os.geteuid()), "annotations": annotations,
                       **fields}
        record.save()
        return record

    def open(self, container_id, lock=True):
        """The Record of an existing container, locked unless lock=False."""
        path = self.path(container_id)
        self._check_root()
        record = Record(path, container_id)
        if lock:
            try:
                record.lock()
            except FileNotFoundError:
                raise NotFound(f"container {container_id} does not exist") from None
        try:
            record.load()
        except FileNotFoundError:
            record.unlock()
            raise NotFound(f"container {container_id} does not exist") from None
        return record

    def ids(self):
        self._check_root()
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [name for name in names if os.path.isfile(os.path.join(self.root, name,
                                                                       "state.json"))]


class Record:
    """One container's directory and state, as the engine sees it."""

    def __init__(self, path, container_id):
        self.path = path
        self.id = container_id
        self.data = {}
        self._lock_fd = None

    @property
    def fifo_path(self):
        return os.path.join(self.path, "exec.fifo")

    @property
    def config_path(self):
        """The config.json the container was created from (a copy: bundles change)."""
        return os.path.join(self.path, "config.json")

    def load_spec(self):
        from oci import spec as oci_spec
        with open(self.config_path, "rb") as f:
            return oci_spec.loads(f.read(), source=self.config_path)

    @property
    def pid(self):
        return self.data.get("pid", 0)

    def lock(self):
        while True:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fcntl.flock(fd, fcntl.LOCK_EX)
            # While we waited, the directory may have been deleted (and a new container of
            # the same id made): a lock on the old one locks nothing.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fd = fd
                return
            os.close(fd)
            if not os.path.exists(self.path):
                raise FileNotFoundError(self.path)

    def unlock(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _locked_by_someone_else(self):
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def load(self):
        with open(os.path.join(self.path, "state.json")) as f:
            self.data = jsonio.loads(f.read())

    def save(self, **changes):
        self.data.update(changes)
        write_atomic(os.path.join(self.path, "state.json"), jsonio.dumps(self.data))

    def remove(self):
        from rootless.system.fs import remove_tree   # (delete's, not kill's or state's)
        remove_tree(self.path)
        self.unlock()

    def init_alive(self):
        # (a start time of None, a process already gone when it was recorded, is no life)
        start_time = process_start_time(self.pid) if self.pid > 0 else None
        return start_time is not None and start_time == self.data.get("start_time")

    def status(self):
        """Derived from the init's liveness, never trusted from the file alone."""
        if self.data.get("status") == CREATING:
            # Still being created if its creator holds the lock; otherwise the creator died.
            if self._lock_fd is None and self._locked_by_someone_else():
                return CREATING
            return STOPPED
        if not self.init_alive():
            return STOPPED
        if os.path.exists(self.fifo_path):
            return CREATED
        return PAUSED if self._frozen() else RUNNING

    def _frozen(self):
        from rootless.runtime.cgroups import Cgroup
        cgroup = self.data.get("cgroup")
        return bool(cgroup) and Cgroup(cgroup).frozen()

    def state(self, status=None, pid=None):
        """The OCI state; hooks pass the status (and pid) of the moment they run at."""
        status = status or self.status()
        if pid is None:
            pid = self.pid if status != STOPPED else 0
        from oci.state import State       # only state, list and hooks need the document
        return State(
            id=self.id, status=status, pid=pid,
            bundle=self.data.get("bundle", ""), rootfs=self.data.get("rootfs", ""),
            created=self.data.get("created", ""), owner=self.data.get("owner", ""),
            annotations=self.data.get("annotations") or {},
        )
