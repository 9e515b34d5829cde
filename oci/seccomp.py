"""linux.seccomp, checked and turned into a plain filter description.

The engine (rootless/seccomp.py) hands the description to libseccomp; here are only the
spec's names and rules: actions, operators, flags and the shape of a filter.
"""

from . import reader as k
from .record import Record

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",
           "SCMP_ACT_NOTIFY")
OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
             "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")
FLAGS = ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
ARCHES = ("SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
          "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32",
          "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
          "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
          "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64")


class Condition(Record):
    FIELDS = {"index": 0, "op": "SCMP_CMP_EQ", "value": 0, "value_two": 0}

    def to_json(self):
        return {"index": self.index, "value": self.value, "valueTwo": self.value_two,
                "op": self.op}


class Rule(Record):
    FIELDS = {"names": (), "action": "SCMP_ACT_ALLOW", "errno": None, "conditions": ()}

    def to_json(self):
        doc = {"names": list(self.names), "action": self.action}
        if self.errno is not None:
            doc["errnoRet"] = self.errno
        if self.conditions:
            doc["args"] = [condition.to_json() for condition in self.conditions]
        return doc


class Filter(Record):
    FIELDS = {
        "default_action": "SCMP_ACT_ALLOW",
        "default_errno": None,
        "architectures": (),
        "flags": (),
        "listener_path": "",
        "listener_metadata": "",
        "rules": (),
    }

    def to_json(self):
        """The linux.seccomp object of a config.json (filter_from_json reads it back)."""
        doc = {"defaultAction": self.default_action}
        for key, value in (("defaultErrnoRet", self.default_errno),
                           ("architectures", list(self.architectures)),
                           ("flags", list(self.flags)), ("listenerPath", self.listener_path),
                           ("listenerMetadata", self.listener_metadata)):
            if value or (key == "defaultErrnoRet" and value is not None):
                doc[key] = value
        doc["syscalls"] = [rule.to_json() for rule in self.rules]
        return doc

    def uses_notify(self):
        return self.default_action == "SCMP_ACT_NOTIFY" or any(
            rule.action == "SCMP_ACT_NOTIFY" for rule in self.rules)


def _condition(r, value, path, default):
    data = r.object(value, path)
    return Condition(
        index=r.field(data, "index", path, k.integer(0, 5), 0, required=True),
        op=r.field(data, "op", path, k.one_of(*OPERATORS), "SCMP_CMP_EQ", required=True),
        value=r.field(data, "value", path, k.uint64, 0, required=True),
        value_two=r.field(data, "valueTwo", path, k.uint64, 0),
    )


def _rule(r, value, path, default):
    data = r.object(value, path)
    names = r.field(data, "names", path, k.string_list, (), required=True)
    if "names" in data and not names:
        r.fail(f"{path}.names", "must name at least one system call")
    return Rule(
        names=names,
        action=r.field(data, "action", path, k.one_of(*ACTIONS), "SCMP_ACT_ALLOW", required=True),
        errno=r.field(data, "errnoRet", path, k.integer(0, 0xFFFF), None),
        conditions=r.field(data, "args", path, k.list_of(_condition), ()),
    )


def filter_from_json(r, data, where="linux.seccomp"):
    """A Filter from a linux.seccomp object (problems go to the Reader `r`)."""
    data = r.object(data, where)
    seccomp = Filter(
        default_action=r.field(data, "defaultAction", where, k.one_of(*ACTIONS),
                               "SCMP_ACT_ALLOW", required=True),
        default_errno=r.field(data, "defaultErrnoRet", where, k.integer(0, 0xFFFF), None),
        architectures=r.field(data, "architectures", where, k.list_of(k.one_of(*ARCHES)), ()),
        flags=r.field(data, "flags", where, k.list_of(k.one_of(*FLAGS)), ()),
        listener_path=r.field(data, "listenerPath", where, k.absolute_path, ""),
        listener_metadata=r.field(data, "listenerMetadata", where, k.string, ""),
        rules=r.field(data, "syscalls", where, k.list_of(_rule), ()),
    )
    if seccomp.uses_notify() and not seccomp.listener_path:
        r.fail(f"{where}.listenerPath", "SCMP_ACT_NOTIFY needs a listener socket path")
    if seccomp.default_action == "SCMP_ACT_NOTIFY":
        r.fail(f"{where}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action "
                                         "(the runtime's own system calls would wait on it)")
    return seccomp
