"""A recording stand-in for rootless.system.libc.SYSCALLS: child-side code (the rootfs
builder, identity, the intermediate's namespaces) runs against it without namespaces or
privilege, and a test reads back the calls it made, in order, or makes one of them fail."""

import os

from rootless.system.libc import SYSCALLS


class RecordingSyscalls:
    def __init__(self, fail=None):
        """`fail`: {name: errno, or a function of the call giving an errno or 0}."""
        self.calls = []
        self.fail = fail or {}

    def __getattr__(self, name):
        if name.startswith("_") or not hasattr(SYSCALLS, name):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call(name, args, kwargs)

    def _call(self, name, args, kwargs):
        call = (name, *args, *sorted(kwargs.items()))
        self.calls.append(call)
        code = self.fail.get(name, 0)
        if callable(code):
            code = code(call)
        if code:
            raise OSError(code, os.strerror(code))
        if name == "capget":
            return (0, 0, 0)
        return None

    def named(self, *names):
        return [call for call in self.calls if call[0] in names]
