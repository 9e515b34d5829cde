"""A process in the containers' user namespace, for the store's work on files that belong
to a container's ids (container 0 is the caller, 1.. its subordinate ids): unpacking
layers, copying trees, removing them. The caller cannot do that from outside.

The worker is forked before the caller starts any thread (a pull downloads in threads:
a process forked from a threaded one may inherit a lock some thread held) and takes one
call at a time over a channel; each call runs in a process of its own forked from the
worker, so a call may chroot or mount without that reaching the next one. Calls name a
function of CALLS, with JSON arguments; what the worker was given when it was made
(layer sources, say) reaches its calls by inheritance.

This is the image package's own small copy of the runtime's run_in_userns: the image
package does not import the child side of the runtime (rootless.child).
"""

import os

from oci.image import ImageError
from rootless.errors import HandcarError, error_from_fields
from rootless.system.channel import fork_with_channel

CALLS = {}                  # name -> function(context, *args), filled by `call` below


def worker_call(function):
    """Register a function the worker may run (the decorator of each call)."""
    CALLS[function.__name__] = function
    return function


class Worker:
    """`with Worker(mapping, context) as worker: worker.call("name", ...)`. `context` is
    passed to every call as its first argument (inherited by the fork, never sent)."""

    def __init__(self, mapping, context=None):
        self.mapping = mapping
        self.context = context
        self.pid = None
        self.channel = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *_exc):
        self.close()

    def start(self):
        from rootless.runtime import userns
        pid, parent_end = fork_with_channel(_worker_main, self.mapping, self.context)
        self.pid, self.channel = pid, parent_end
        try:
            _expect(parent_end, "prepare", "entering a user namespace")
            if self.mapping is not None:
                userns.apply(self.mapping, pid)
            parent_end.send("prepared")
            _expect(parent_end, "ready", "entering a user namespace")
        except BaseException:
            self.close()
            raise

    def call(self, name, *args):
        """Run CALLS[name](context, *args) in the user namespace; what it returned
        (JSON), or the error it raised (an ImageError for an ImageError)."""
        self.channel.send("call", name=name, args=list(args))
        return _expect(self.channel, "result", f"the user namespace worker ({name})")["value"]

    def close(self):
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.pid is not None:
            os.waitpid(self.pid, 0)
            self.pid = None


def in_userns(mapping, name, *args):
    """One call in a worker of its own."""
    with Worker(mapping) as worker:
        return worker.call(name, *args)


def _expect(channel, kind, what):
    message = channel.receive()
    if message is None:
        raise HandcarError(f"{what}: the process exited unexpectedly")
    if message["type"] == "error":
        raise error_from_fields(message, known=(ImageError,))
    if message["type"] != kind:
        raise HandcarError(f"{what}: unexpected message {message['type']!r}")
    return message



def _worker_main(channel, mapping, context):
    from rootless.system import libc
    libc.prctl(libc.PR_SET_PDEATHSIG, 9)
    if mapping is not None:
        libc.unshare(libc.CLONE_NEWUSER | libc.CLONE_NEWNS)
    channel.send("prepare")
    _expect(channel, "prepared", "mapping the user namespace")
    if mapping is not None:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    channel.send("ready")
    while True:
        message = channel.receive()
        if message is None:
            return                               # the caller closed: done
        if message["type"] != "call" or message["name"] not in CALLS:
            raise HandcarError(f"the user namespace worker: unknown call {message!r}")
        _run_call(channel, CALLS[message["name"]], context, message["args"])


def _run_call(channel, function, context, args):
    """function(context, *args) in a process of its own; its result (or its error) goes
    to the caller, and the worker waits for the next call."""
    pid, parent_end = fork_with_channel(_call_main, function, context, args, close=(channel,))
    try:
        message = parent_end.receive()
    finally:
        parent_end.close()
        os.waitpid(pid, 0)
    if message is None:
        channel.send("error", msg=f"{function.__name__}: the process exited unexpectedly")
    elif message["type"] == "error":
        channel.send("error", **{key: value for key, value in message.items()
                                 if key != "type"})
    else:
        channel.send("result", value=message["value"])


def _call_main(channel, function, context, args):
    from rootless.system import libc
    libc.prctl(libc.PR_SET_PDEATHSIG, 9)
    channel.send("returned", value=function(context, *args))


# --- the simple calls -----------------------------------------------------------------------

@worker_call
def remove_tree(_context, path):
    """Remove a tree whose files belong to the containers' ids."""
    from rootless.system.fs import make_searchable, remove_tree
    make_searchable(path)
    remove_tree(path)
