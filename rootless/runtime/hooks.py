"""OCI hooks: each kind run at its point of the lifecycle with the state JSON on stdin.

Where they run (runtime-spec, as runc does it):
  prestart, createRuntime  the parent, in handcar's namespaces, once the container's
                           namespaces exist and before pivot_root
  createContainer          init, in the container's namespaces, before pivot_root
  startContainer           init, after `start` and just before the process is exec'd
  poststart                the `start` (or `run`) process, once the process runs
  poststop                 the `delete` process, once the container is gone
A failure before the process starts is an error; poststart and poststop failures are
warnings (run_warning), and the hooks after a failed one still run. A hook dies with the
process that runs it (a parent-death signal), so a killed handcar leaves no hook behind.
"""

import os
import subprocess
import time

from oci import jsonio
from rootless.system import libc
from rootless.errors import HandcarError, HelperFailed

SIGKILL = 9
CHECK_INTERVAL = 0.1     # seconds between two looks at whether to give up on a hook


def run(hooks, kind, state, parent_gone=None):
    """Run every hook of `kind` in order; `state` is the OCI state document (a dict).
    `parent_gone`, for init: asked while a hook runs; when it says handcar has died, the
    hook is killed and init gives up."""
    for hook in hooks.get(kind, ()):
        run_one(hook, kind, jsonio.dumps(state), parent_gone)


def run_warning(hooks, kind, state, warn):
    """poststart and poststop hooks: the process has run, so a failing hook is a warning,
    `warn(text)`, and the hooks after it still run (runtime-spec)."""
    state_json = jsonio.dumps(state)
    for hook in hooks.get(kind, ()):
        try:
            run_one(hook, kind, state_json)
        except HandcarError as err:
            warn(str(err))


def run_one(hook, kind, state_json, parent_gone=None):
    argv = list(hook.args) or [hook.path]
    env = dict(item.split("=", 1) for item in hook.env if "=" in item)
    runner = os.getpid()

    def die_with_the_runner():
        libc.prctl(libc.PR_SET_PDEATHSIG, SIGKILL)
        if os.getppid() != runner:
            os._exit(1)                       # it died before the signal was set

    try:
        process = subprocess.Popen(argv, executable=hook.path, env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, preexec_fn=die_with_the_runner)
    except OSError as err:
        raise HandcarError(f"{kind} hook {hook.path}: {err.strerror}") from None
    output = _wait(process, state_json.encode(), hook, kind, parent_gone)
    if process.returncode != 0:
        failed = HelperFailed([hook.path], process.returncode, output.decode(errors="replace"))
        raise HandcarError(f"{kind} hook {failed}") from None


def _wait(process, state, hook, kind, parent_gone):
    """The hook's output once it exits; kills it at its timeout or when parent_gone()."""
    deadline = None if hook.timeout is None else time.monotonic() + hook.timeout
    while True:
        wait = CHECK_INTERVAL if parent_gone else None
        if deadline is not None:
            left = max(deadline - time.monotonic(), 0)
            wait = left if wait is None else min(wait, left)
        try:
            return process.communicate(state, timeout=wait)[0]
        except subprocess.TimeoutExpired:
            state = None                      # sent already; communicate keeps going
        if deadline is not None and time.monotonic() >= deadline:
            problem = f"timed out after {hook.timeout}s"
        elif parent_gone and parent_gone():
            problem = "given up: handcar exited while it ran"
        else:
            continue
        process.kill()
        process.communicate()
        raise HandcarError(f"{kind} hook {hook.path} {problem}")
