"""`handcar debug`: a process in a running container's namespaces and cgroup with tools the
container does not have (Oracle's Crashcart, rootless), or a side-car shell whose root is
the tools. exec's machinery starts it (runtime/execute.py, spawn.py, child/init.py); the
children's part of debug is rootless/child/debug.py.

The container is not changed: the tools are a mount in the session's own mount namespace
(--shared: in the container's, on an empty directory it has, until the session ends), and
a keeper process outside the container ends the session, every process of it, when we
return or are killed.
"""

import errno
import os

from oci.record import Record
from rootless.child.debug import LAUNCHERS, SHARED, SIDECAR, SIDELOAD, DebugPlan
from rootless.errors import HandcarError, UsageError, WrongStatus
from rootless.runtime import execute
from rootless.runtime.store import RUNNING

DEFAULT_MOUNT_AT = "/.handcar-debug"
# where a tools tree's programs are, in PATH order
BIN_DIRS = ("usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin")
LIBRARY_DIRS = ("usr/local/lib", "lib", "lib64", "usr/lib", "usr/lib64")
SHELLS = ("bash", "sh", "ash")
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")    # after any busybox on PATH
SHARED_RECORD = "debug-shared-"   # + the keeper's pid + .json, in the container's directory
NO_TOOLS = ("no tools to debug with: the host has no static busybox (install "
            "busybox-static), so give --tools DIR or --image IMAGE")


class DebugOptions(Record):
    FIELDS = {
        "tools": None,             # --tools DIR
        "image": None,             # --image IMAGE
        "mount_at": DEFAULT_MOUNT_AT,
        "shared": False,
        "target_root": False,      # side-car mode
        "privileged": False,       # --privileged-debug
        "tty": False,
        "user": None,              # (uid, gid or None)
        "env": (),
    }


def debug(store, container_id, command, options):
    """Run `command` (or a shell of the tools) in the container; its exit status."""
    mode = debug_mode(options)
    check_kernel()
    record = store.open(container_id, lock=False)
    status = record.status()
    if status != RUNNING:
        hint = {"paused": " (resume it first)", "created": " (start it first)"}.get(status, "")
        raise WrongStatus(f"container {container_id} is {status}: debug needs a running "
                          f"container{hint}")
    tools = tools_tree(options)
    stale = stale_shared_mounts(record)
    mount_at = "/" + os.path.normpath(options.mount_at).lstrip("/")
    plan = DebugPlan(tools=tools, mode=mode, mount_at=mount_at,
                     library_dirs=library_dirs(tools),
                     programs=programs(tools) if mode == SIDELOAD else (),
                     stale_mounts=tuple(stale.values()))
    spec = record.load_spec()
    process = debug_process(spec.process, command, plan, options)
    launch_spec = execute.spec_for_exec(spec, process, record.pid)
    if options.privileged:
        launch_spec = launch_spec.replace(linux=launch_spec.linux.replace(seccomp=None))
    keeper = Keeper(record, plan, forget=tuple(stale))
    try:
        return execute.start_process(record, launch_spec, execute.ExecOptions(), debug=plan,
                                     before_go=keeper.start)
    finally:
        keeper.stop()


def debug_mode(options):
    """SIDELOAD, SHARED or SIDECAR, as the options ask (UsageError for a contradiction or
    a --mount-at that is not absolute)."""
    if options.target_root:
        if options.shared:
            raise UsageError("--target-root and --shared: a side-car has its own root, "
                             "give one of them")
        return SIDECAR
    mount_at = options.mount_at
    if not mount_at.startswith("/") or os.path.normpath(mount_at) in ("/", "//"):
        raise UsageError(f"--mount-at {mount_at!r}: expected an absolute path below /")
    return SHARED if options.shared else SIDELOAD


def check_kernel():
    """Refuse, by name, a kernel without open_tree and move_mount (before Linux 5.2)."""
    from rootless.system import libc
    try:
        os.close(libc.open_tree("/", libc.OPEN_TREE_CLOEXEC))
    except OSError as err:
        if err.errno == errno.ENOSYS:
            raise HandcarError("handcar debug needs the new mount API (open_tree and "
                               "move_mount, Linux 5.2 or later), which this kernel "
                               "lacks") from None
        raise


# --- the tools ----------------------------------------------------------------------------

def tools_tree(options):
    """The host directory whose tree the session gets: --tools DIR, --image's root, or a
    tree of the host's static busybox."""
    if options.tools and options.image:
        raise UsageError("give --tools or --image, not both")
    if options.tools:
        if not os.path.isdir(options.tools):
            raise HandcarError(f"--tools {options.tools}: no such directory")
        return os.path.abspath(options.tools)
    if options.image:
        return image_root(options.image)
    return busybox_tree()


def image_root(text):
    """The root directory of the image `text` in handcar's image store, pulled first when
    it is not there (a directory is taken as it is): the image's whole tree as one
    directory, made on demand and removed with the image. The one place debug uses the
    store."""
    from oci.image import parse_reference
    from rootless.friendly.run import image_store
    from rootless.image.progress import progress_for
    from rootless.image.pull import platform_from, pull
    reference = parse_reference(text, os.path.exists, os.path.isdir)
    if reference.kind == "dir":
        if not os.path.isdir(reference.path):
            raise HandcarError(f"--image {text}: no such directory")
        return os.path.abspath(reference.path)
    store = image_store()
    image = store.find(text) if reference.kind == "name" else None
    if image is None:
        image = pull(store, text, platform_from(), progress_for(False))
    return store.rootfs(image)


def busybox_tree():
    """A tools tree of the host's static busybox, made once in the user's cache: bin/
    with busybox and a link to it for each of its applets."""
    import shutil
    import subprocess
    from rootless.system import elf
    candidates = (shutil.which("busybox"), *BUSYBOX_PATHS)
    busybox = next((path for path in candidates
                    if path and os.path.isfile(path) and elf.is_static(path)), None)
    if busybox is None:
        raise HandcarError(NO_TOOLS)
    st = os.stat(busybox)
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or (
        # (root's home is closed to a container's root that is not the host's)
        "/var/cache" if os.geteuid() == 0 else os.path.expanduser("~/.cache")), "handcar")
    prefix = "debug-busybox-"
    tree = os.path.join(cache, f"{prefix}{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}")
    if os.path.isdir(tree):
        return tree
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True,
                             check=False).stdout.split()
    os.makedirs(cache, exist_ok=True)
    work = f"{tree}.{os.getpid()}.tmp"
    os.makedirs(os.path.join(work, "bin"))
    shutil.copy2(busybox, os.path.join(work, "bin", "busybox"))
    for applet in applets:
        if applet != "busybox" and "/" not in applet:
            os.symlink("busybox", os.path.join(work, "bin", applet))
    for name in os.listdir(cache):                # an older busybox's
        if name.startswith(prefix) and not name.endswith(".tmp"):
            shutil.rmtree(os.path.join(cache, name), ignore_errors=True)
    try:
        os.rename(work, tree)
    except OSError:                               # another session made it first
        shutil.rmtree(work, ignore_errors=True)
    return tree


def bin_dirs(tools):
    """The tools tree's program directories (relative), in PATH order: those of BIN_DIRS
    it has (not as links to another: usr-merged trees), else its top."""
    found = [d for d in BIN_DIRS if os.path.isdir(os.path.join(tools, d))
             and not os.path.islink(os.path.join(tools, d))]
    return found or [""]


def library_dirs(tools):
    """The tools tree's shared library directories (relative), multiarch ones
    (lib/x86_64-linux-gnu) first, as a loader's search path."""
    plain, multiarch = [], []
    for top in LIBRARY_DIRS:
        path = os.path.join(tools, top)
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        plain.append(top)
        for name in sorted(os.listdir(path)):
            if "-linux-" in name and os.path.isdir(os.path.join(path, name)):
                multiarch.append(f"{top}/{name}")
    return tuple(multiarch + plain)


def programs(tools):
    """(name, program, loader) for each program of the tools' bin directories (the first
    of a name, in PATH order; paths relative to the tools, symlinks followed inside them;
    loader "" for a static program or a script) when some are dynamically linked against
    a loader the tools have, and this architecture has launchers; else ()."""
    from rootless.system import elf, fs
    if not elf.has_launchers():
        return ()
    found, seen = [], set()
    for directory in bin_dirs(tools):
        try:
            names = sorted(os.listdir(os.path.join(tools, directory)))
        except OSError:
            continue                      # (an image's directory closed to us)
        for name in names:
            if name in seen:
                continue
            real = fs.resolve_in_root(tools, os.path.join(directory, name))
            if not os.path.isfile(real) or not os.access(real, os.X_OK):
                continue
            seen.add(name)
            try:
                interpreter = elf.interpreter(real)
            except OSError:
                continue
            loader = fs.resolve_in_root(tools, interpreter) if interpreter else ""
            loader = fs.relative(tools, loader) if os.path.isfile(loader) else ""
            found.append((name, fs.relative(tools, real), loader))
    return tuple(found) if any(loader for _name, _program, loader in found) else ()


def _shell(tools, dirs):
    for name in SHELLS:
        for directory in dirs:
            if os.path.lexists(os.path.join(tools, directory, name)):
                return os.path.join(directory, name)
    raise HandcarError(f"the tools ({tools}) have no shell ({', '.join(SHELLS)}): give the "
                       "command to run")


def debug_process(base, command, plan, options):
    """The container's process, as exec changes it, running `command` (or the tools'
    shell) with the tools' directories on PATH: after the container's own (sideload), or
    alone (side-car, whose root is the tools)."""
    from oci.spec import DEFAULT_PATH
    dirs = bin_dirs(plan.tools)
    where = "/" if plan.mode == SIDECAR else plan.mount_at.rstrip("/") + "/"
    tool_path = ":".join((where + d).rstrip("/") or "/" for d in dirs)
    if plan.programs:
        tool_path = where + LAUNCHERS     # (every program of the tools, see child/debug.py)
    if plan.mode == SIDECAR:
        path = tool_path
    else:
        path = f"{base.env_value('PATH', DEFAULT_PATH)}:{tool_path}"
    args = list(command) or [where + _shell(plan.tools, dirs)]
    env = [f"PATH={path}"]
    if options.tty and base.env_value("TERM") is None:
        env.append(f"TERM={os.environ.get('TERM') or 'xterm'}")     # for the tools' vi, top
    env += options.env                    # (the last of a name wins)
    process = execute.process_for_exec(
        base, args, env=env, user=options.user, tty=options.tty,
        cwd="/" if plan.mode == SIDECAR else None)
    if options.privileged:
        process = process.replace(capabilities=_every_capability(base))
    return process


def _every_capability(base):
    """--privileged-debug: every capability there is (in the container's user namespace)."""
    from oci.linux import CAPABILITIES
    from rootless.runtime.host import last_cap
    every = tuple(name for name, number in CAPABILITIES.items() if number <= last_cap())
    have = base.capabilities
    from oci.spec import Capabilities
    return (have or Capabilities()).replace(bounding=every, effective=every, permitted=every,
                                            inheritable=every, ambient=every)


# --- the keeper ---------------------------------------------------------------------------

def stale_shared_mounts(record):
    """{record file: (mount point, device, inode)} of the --shared sessions whose keeper
    died before taking their tools out (killed itself): the next session does."""
    from oci import jsonio
    from rootless.runtime.store import process_start_time
    stale = {}
    for name in os.listdir(record.path):
        if not name.startswith(SHARED_RECORD):
            continue
        path = os.path.join(record.path, name)
        try:
            with open(path, "rb") as f:
                data = jsonio.loads(f.read())
            alive = process_start_time(data["keeper"]) == data["started"]
            mount = (data["mount_at"], *data["tools"])
        except (OSError, ValueError, KeyError, TypeError):
            continue                      # being written, or not ours
        if not alive:
            stale[path] = mount
    return stale


class Keeper:
    """A process that outlives us to end the session. When our end of its pipe closes (we
    return, or are killed), it kills every process left in the debug process's session
    (what it left running, or all of it when we were killed) and, for --shared, takes
    the tools' mount out of the container. It runs outside the container, in its user
    namespace only (for the right to signal its processes): the container never sees it."""

    def __init__(self, record, plan, forget=()):
        self.record = record
        self.init_pid = record.pid
        self.plan = plan
        self.forget = forget              # records of killed sessions' mounts, now gone
        self.pid = 0
        self.pipe = -1
        self.shared_record = None

    def start(self, session):
        """Start keeping the session whose leader is the process `session` (host pid)."""
        namespaces = {}
        try:
            for name in ("user", "mnt") if self.plan.mode == SHARED else ("user",):
                path = f"/proc/{self.init_pid}/ns/{name}"
                if os.readlink(path) != os.readlink(f"/proc/self/ns/{name}"):
                    namespaces[name] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            pid_ns = os.readlink(f"/proc/{self.init_pid}/ns/pid")
            tools = os.stat(self.plan.tools)
            read_end, write_end = os.pipe()
            self.pid = os.fork()
            if self.pid == 0:
                _run_keeper(read_end, session, pid_ns, namespaces, self.plan,
                            (tools.st_dev, tools.st_ino))
            os.close(read_end)
            self.pipe = write_end
            if self.plan.mode == SHARED:
                self._record_mount(tools)
            for path in self.forget:       # (their mounts were taken out: see enter_view)
                _unlink(path)
        finally:
            for fd in namespaces.values():
                os.close(fd)

    def _record_mount(self, tools):
        """Write down the --shared mount: should the keeper be killed too, the next session
        takes it out."""
        from oci import jsonio
        from rootless.runtime.store import process_start_time, write_atomic
        self.shared_record = os.path.join(self.record.path, f"{SHARED_RECORD}{self.pid}.json")
        write_atomic(self.shared_record, jsonio.dumps({
            "keeper": self.pid, "started": process_start_time(self.pid),
            "mount_at": self.plan.mount_at, "tools": [tools.st_dev, tools.st_ino]}))

    def stop(self):
        """End the session (what is left of it) and wait until the keeper has."""
        if not self.pid:
            return
        os.close(self.pipe)
        try:
            _, status = os.waitpid(self.pid, 0)
            done = status == 0
        except ChildProcessError:
            done = True                   # reaped already, while we waited for the session
        if self.shared_record and done:
            _unlink(self.shared_record)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _run_keeper(pipe, session, pid_ns, namespaces, plan, tools_id):
    """The keeper's body (see Keeper); never returns."""
    code = 0
    try:
        from rootless.system.channel import close_fds_from
        from rootless.system import libc
        os.setsid()                       # out of the terminal's reach (^C is for the session)
        libc.prctl(libc.PR_SET_DUMPABLE, 0)
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        close_fds_from(3, keep={pipe, *namespaces.values()})
        if "user" in namespaces:
            libc.setns(namespaces["user"], libc.CLONE_NEWUSER)
        while os.read(pipe, 1):
            pass                          # until the other end closes
        kill_session(session, pid_ns)
        if "mnt" in namespaces:
            libc.setns(namespaces["mnt"], libc.CLONE_NEWNS)
            st = os.stat(plan.mount_at)
            if (st.st_dev, st.st_ino) == tools_id:
                libc.umount2(plan.mount_at, libc.MNT_DETACH)
    except BaseException:                 # noqa: BLE001 - no one to tell: leave quietly
        code = 1
    finally:
        os._exit(code)


def kill_session(session, pid_ns, timeout=10):
    """SIGKILL every process of the session `session` (host pid of its leader) in the pid
    namespace `pid_ns`, until none is left (they may fork meanwhile)."""
    import time
    from rootless.runtime.processes import SIGKILL, send_signal
    deadline = time.monotonic() + timeout
    while True:
        members = session_members(session, pid_ns)
        if not members or time.monotonic() > deadline:
            return
        for pid in members:
            send_signal(pid, SIGKILL)
        time.sleep(0.01)


def session_members(session, pid_ns):
    """The live processes of session `session` in the pid namespace `pid_ns`."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if fields[0] in (b"Z", b"X") or int(fields[3]) != session:
                continue
            if os.readlink(f"/proc/{name}/ns/pid") == pid_ns:
                members.append(int(name))
        except (OSError, IndexError, ValueError):
            continue                      # gone meanwhile
    return members
