"""The messages between handcar's parent process and its children, declared once.

Transport: rootless/system/channel.py (one JSON object per SOCK_SEQPACKET packet, fds by
SCM_RIGHTS). The parent's loop is rootless/runtime/spawn.py; the children's bodies are
rootless/child/init.py.

    parent (create, exec)           intermediate (*)               init / exec'd process
      |--- clone3 or fork --------------->|
      |<-------------------- PREPARE -----|  user namespace unshared or joined
      |  newuidmap/newgidmap, cgroup      |
      |--- PREPARED --------------------->|  becomes root, joins/makes the namespaces
      |                                   |--- fork ------------------------>|
      |<-------------------- INIT --------|  {pid, fds}; the intermediate exits
      |<---------------------------------------------------- MOUNT_ROOT -----|  (***)
      |  fuse-overlayfs mounts the root in init's namespaces                 |
      |--- ROOT_MOUNTED ----------------------------------------------------->|
      |<------------------------------------------------------- HOOKS -------|  (**)
      |  prestart, createRuntime hooks                                       |
      |--- HOOKS_DONE {state} ------------------------------------------------>|
      |<------------------------------------------------------- READY -------|
      |--- GO {state, listener_state} --------------------------------------->|  execs
      |<------------------------------------------------------- ERROR -------|  any time
      |<----------------------------------------------- WARNING, DEBUG -------|  any time

(*) Where init is born in its namespaces (clone3), there is no intermediate: the parent
maps init at once and sends PREPARED to it; init sends no PREPARE and no INIT.
(**) Only when the config has prestart, createRuntime or createContainer hooks.
(***) Only when a program mounts the container's root (runtime/fuse_root.py): init asks
as it builds the rootfs, which may be before the intermediate has named it (INIT).

ERROR carries the message, the errno (or None) and the error's kind (errors.error_fields;
every child body runs under system/channel.py's run_child, which sends it), so that the
parent raises the same exception type the child did (exit statuses 126 and 127 come
from it).
exec's process sends nothing after GO unless execve fails (its end is close-on-exec).

The user namespace helper the parent forks for other jobs (userns.run_in_userns: the
image unpacker, tree removal) uses the same channel: PREPARE -> PREPARED -> DONE.
"""

from rootless.errors import error_from_fields

PREPARE = "prepare"
PREPARED = "prepared"
INIT = "init"
MOUNT_ROOT = "mount-root"
ROOT_MOUNTED = "root-mounted"
HOOKS = "hooks"
HOOKS_DONE = "hooks-done"
READY = "ready"
GO = "go"
ERROR = "error"
WARNING = "warning"
DEBUG = "debug"
DONE = "done"

def error_from(message):
    """The exception an ERROR message stands for, to raise in the parent."""
    return error_from_fields(message)
