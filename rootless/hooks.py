"""OCI hooks: each kind run at its point of the lifecycle with the state JSON on stdin.

Where they run (runtime-spec, as runc does it):
  prestart, createRuntime  the parent, in handcar's namespaces, once the container's
                           namespaces exist and before pivot_root
  createContainer          init, in the container's namespaces, before pivot_root
  startContainer           init, after `start` and just before the process is exec'd
  poststart                the `start` (or `run`) process, once the process runs
  poststop                 the `delete` process, once the container is gone
A failure before the process starts is an error; poststart and poststop failures are
warnings, which their callers log.
"""

import subprocess

from oci import jsonio
from .errors import HandcarError, HelperFailed


def run(hooks, kind, state):
    """Run every hook of `kind` in order; `state` is the OCI state document (a dict)."""
    for hook in hooks.get(kind, ()):
        run_one(hook, kind, jsonio.dumps(state))


def run_one(hook, kind, state_json):
    argv = list(hook.args) or [hook.path]
    env = dict(item.split("=", 1) for item in hook.env if "=" in item)
    try:
        result = subprocess.run(argv, executable=hook.path, env=env,
                                input=state_json.encode(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, timeout=hook.timeout)
    except subprocess.TimeoutExpired:
        raise HandcarError(f"{kind} hook {hook.path} timed out after {hook.timeout}s") from None
    except OSError as err:
        raise HandcarError(f"{kind} hook {hook.path}: {err.strerror}") from None
    if result.returncode != 0:
        failed = HelperFailed([hook.path], result.returncode, result.stdout.decode(errors="replace"))
        raise HandcarError(f"{kind} hook {failed}") from None
