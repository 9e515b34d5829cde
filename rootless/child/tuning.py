"""The process's scheduling, I/O priority, CPU affinity, memory policy, personality and
LSM labels, set by init (or exec's process) just before it runs the program; imported
only for a config that asks for one of them (oci.spec.Spec.tuned).

Each failure names the config field: the parent has refused what this host or this
caller cannot do (rootless/runtime/support.py), so what fails here is the kernel's word.
"""

import os

from rootless.errors import SetupError
from rootless.system import libc


def _setting(field, call, *args):
    try:
        call(*args)
    except OSError as err:
        raise SetupError(f"{field}: {err.strerror}") from None


def apply(process, linux):
    """What the process inherits through execve: memory policy, personality, I/O
    priority and scheduler (in that order: the scheduler may give up the right to the
    others' changes). Called before the process drops its capabilities."""
    policy = linux.memory_policy
    if policy:
        _setting("linux.memoryPolicy", libc.set_mempolicy, policy.mode_and_flags,
                 sorted(policy.nodes))
    if linux.personality:
        _setting("linux.personality", libc.personality, linux.personality.value)
    if process.io_priority:
        _setting("process.ioPriority", libc.ioprio_set, process.io_priority.value)
    sched = process.scheduler
    if sched:
        _setting("process.scheduler", lambda: libc.sched_setattr(
            sched.policy_number, sched.flag_bits, sched.nice, sched.priority,
            sched.runtime, sched.deadline, sched.period))


def set_affinity(cpus, which):
    """execCPUAffinity's `which` ("initial" or "final") list of CPUs, on this process."""
    if cpus:
        _setting(f"process.execCPUAffinity.{which}", os.sched_setaffinity, 0, cpus)


def set_exec_labels(process):
    """The AppArmor profile and SELinux label the program runs under: written to this
    process's attr/exec files, which the kernel applies at execve."""
    if process.apparmor_profile:
        path = ("/proc/self/attr/apparmor/exec" if os.path.exists("/proc/self/attr/apparmor")
                else "/proc/self/attr/exec")
        _write_attr("process.apparmorProfile", path, f"exec {process.apparmor_profile}")
    if process.selinux_label:
        _write_attr("process.selinuxLabel", "/proc/self/attr/exec", process.selinux_label)


def _write_attr(field, path, text):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as err:
        raise SetupError(f"{field}: writing {path}: {err.strerror}") from None
