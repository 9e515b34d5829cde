"""The process and kernel settings runtime-spec 1.2 and 1.3 added: process.scheduler,
process.ioPriority, process.execCPUAffinity, linux.memoryPolicy and linux.personality.

Each is read into a record holding the numbers its system call takes (the constants are
Linux's, from its uapi headers); the engine (rootless/child/tuning.py) makes the calls.
A value the kernel would refuse for every caller is refused here, by name.
"""

from . import reader as k
from .record import Record

# sched_setattr(2): policies and flags (linux/sched.h). SCHED_ISO was reserved but never
# implemented in Linux.
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
REALTIME_POLICIES = ("SCHED_FIFO", "SCHED_RR")

# ioprio_set(2) (linux/ioprio.h)
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_CLASS_SHIFT = 13

# set_mempolicy(2) (linux/mempolicy.h)
MEMPOLICY_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2,
                   "MPOL_INTERLEAVE": 3, "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5,
                   "MPOL_WEIGHTED_INTERLEAVE": 6}
MEMPOLICY_FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
                   "MPOL_F_STATIC_NODES": 1 << 15}
_NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
_SOME_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
               "MPOL_PREFERRED_MANY")

# personality(2) (linux/personality.h)
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}


class Scheduler(Record):
    FIELDS = {
        "policy": "SCHED_OTHER",
        "nice": 0,
        "priority": 0,
        "flags": (),
        "runtime": 0,
        "deadline": 0,
        "period": 0,
    }

    @property
    def policy_number(self):
        return SCHED_POLICIES[self.policy]

    @property
    def flag_bits(self):
        bits = 0
        for name in self.flags:
            bits |= SCHED_FLAGS[name]
        return bits


class IOPriority(Record):
    FIELDS = {"io_class": None, "priority": 0}

    @property
    def value(self):
        """What ioprio_set takes: the class in the top bits, the level below."""
        return IOPRIO_CLASSES[self.io_class] << IOPRIO_CLASS_SHIFT | self.priority


class CPUAffinity(Record):
    """execCPUAffinity: CPU sets (frozensets of CPU numbers); None where not given."""
    FIELDS = {"initial": None, "final": None}


class MemoryPolicy(Record):
    FIELDS = {"mode": None, "nodes": frozenset(), "flags": ()}

    @property
    def mode_and_flags(self):
        """set_mempolicy's first argument: the mode with its flags or'ed in."""
        value = MEMPOLICY_MODES[self.mode]
        for name in self.flags:
            value |= MEMPOLICY_FLAGS[name]
        return value


class Personality(Record):
    FIELDS = {"domain": "LINUX"}

    @property
    def value(self):
        return PERSONALITY_DOMAINS[self.domain]


def parse_list(text):
    """A CPU or node list as the kernel writes them ("0-3,7"): a frozenset of numbers.
    ValueError when it is not one."""
    numbers = set()
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"{text!r} is not a list such as 0-3,7")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ValueError(f"{part!r}: a range must go up")
        numbers.update(range(first, last + 1))
    return frozenset(numbers)


def _number_list(r, value, path, default):
    text = k.string(r, value, path, None)
    if text is None:
        return default
    if not text.strip():
        return frozenset()
    try:
        return parse_list(text)
    except ValueError as err:
        r.fail(path, str(err))
        return default


int32 = k.integer(-2**31, 2**31 - 1)


def scheduler(r, data, where):
    path = f"{where}.scheduler"
    policy = r.field(data, "policy", path, k.one_of(*SCHED_POLICIES), None, required=True)
    flags = r.field(data, "flags", path, k.list_of(k.one_of(*SCHED_FLAGS)), ())
    sched = Scheduler(
        policy=policy or "SCHED_OTHER",
        nice=r.field(data, "nice", path, int32, 0),
        priority=r.field(data, "priority", path, int32, 0),
        flags=flags,
        runtime=r.field(data, "runtime", path, k.uint64, 0),
        deadline=r.field(data, "deadline", path, k.uint64, 0),
        period=r.field(data, "period", path, k.uint64, 0),
    )
    if policy == "SCHED_ISO":
        r.fail(f"{path}.policy", "SCHED_ISO is not implemented by Linux")
    if not -20 <= sched.nice <= 19:
        r.fail(f"{path}.nice", "must be between -20 and 19")
    if policy in REALTIME_POLICIES and not 1 <= sched.priority <= 99:
        r.fail(f"{path}.priority", f"{policy} takes a priority between 1 and 99")
    elif policy and policy not in REALTIME_POLICIES and sched.priority:
        r.fail(f"{path}.priority", f"must be 0 for {policy} (only SCHED_FIFO and "
                                   "SCHED_RR have priorities)")
    if policy != "SCHED_DEADLINE":
        for key in ("runtime", "deadline", "period"):
            if getattr(sched, key):
                r.fail(f"{path}.{key}", "is for SCHED_DEADLINE only")
        for name in ("SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN"):
            if name in flags:
                r.fail(f"{path}.flags", f"{name} is for SCHED_DEADLINE only")
    elif not sched.runtime or not sched.deadline:
        r.fail(path, "SCHED_DEADLINE needs a runtime and a deadline")
    elif not sched.runtime <= sched.deadline <= (sched.period or sched.deadline):
        r.fail(path, "SCHED_DEADLINE needs runtime <= deadline <= period")
    for name in ("SCHED_FLAG_UTIL_CLAMP_MIN", "SCHED_FLAG_UTIL_CLAMP_MAX"):
        if name in flags:
            r.fail(f"{path}.flags", f"{name}: the spec has no field for the clamp value it "
                                    "needs")
    return sched


def io_priority(r, data, where):
    path = f"{where}.ioPriority"
    return IOPriority(
        io_class=r.field(data, "class", path, k.one_of(*IOPRIO_CLASSES), "IOPRIO_CLASS_BE",
                         required=True),
        priority=r.field(data, "priority", path, k.integer(0, 7), 0, required=True),
    )


def cpu_affinity(r, data, where):
    path = f"{where}.execCPUAffinity"
    affinity = CPUAffinity(initial=r.field(data, "initial", path, _number_list, None),
                           final=r.field(data, "final", path, _number_list, None))
    # an empty list means "leave it to the kernel" (the spec says so of `final`)
    return affinity.replace(initial=affinity.initial or None, final=affinity.final or None)


def memory_policy(r, data, where="linux"):
    path = f"{where}.memoryPolicy"
    mode = r.field(data, "mode", path, k.one_of(*MEMPOLICY_MODES), None, required=True)
    nodes = r.field(data, "nodes", path, _number_list, frozenset())
    flags = r.field(data, "flags", path, k.list_of(k.one_of(*MEMPOLICY_FLAGS)), ())
    if mode in _NO_NODES and nodes:
        r.fail(f"{path}.nodes", f"{mode} takes no nodes")
    if mode in _SOME_NODES and not nodes:
        r.fail(f"{path}.nodes", f"{mode} needs at least one node")
    if "MPOL_F_STATIC_NODES" in flags and "MPOL_F_RELATIVE_NODES" in flags:
        r.fail(f"{path}.flags", "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude "
                                "each other")
    if mode in _NO_NODES and set(flags) & {"MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"}:
        r.fail(f"{path}.flags", f"{mode} takes no node flags")
    if "MPOL_F_NUMA_BALANCING" in flags and mode not in ("MPOL_BIND", "MPOL_PREFERRED_MANY"):
        r.fail(f"{path}.flags", "MPOL_F_NUMA_BALANCING goes with MPOL_BIND or "
                                "MPOL_PREFERRED_MANY only")
    return MemoryPolicy(mode=mode or "MPOL_DEFAULT", nodes=nodes, flags=flags)


def personality(r, data, where="linux"):
    path = f"{where}.personality"
    domain = r.field(data, "domain", path, k.one_of(*PERSONALITY_DOMAINS), "LINUX",
                     required=True)
    flags = r.field(data, "flags", path, k.string_list, ())
    if flags:
        r.fail(f"{path}.flags", f"{', '.join(flags)}: the spec defines no personality "
                                "flags yet")
    return Personality(domain=domain)
