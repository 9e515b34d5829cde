"""The default seccomp profile of the friendly run mode: podman's default allow-list (the
profile containers/common ships as seccomp.json), as an oci.seccomp.Filter.

Its semantics:
  - a system call that is not listed fails with ENOSYS, so that programs fall back to an
    older call (clone3 to clone, for instance) rather than give up;
  - DENIED ones fail with EPERM;
  - some are allowed only to a container that holds a capability (in its bounding set),
    and fail with EPERM otherwise (BY_CAPABILITY), except those ALLOWED anyway (setns);
  - some exist only on some architectures (BY_MACHINE);
  - personality(2) only with the personas a program may harmlessly ask for;
  - without CAP_AUDIT_WRITE, socket(AF_NETLINK, ..., NETLINK_AUDIT) fails with EINVAL.
"""

from .seccomp import Condition, Filter, Rule

ENOSYS, EPERM, EINVAL = 38, 1, 22       # the same on every Linux architecture here
AF_NETLINK, NETLINK_AUDIT = 16, 9

ALLOWED = tuple("""
    _llseek _newselect accept accept4 access adjtimex alarm bind brk capget capset chdir
    chmod chown chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64
    clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 clone clone3 close
    close_range connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1
    epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd
    eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64
    fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64
    fdatasync fgetxattr flistxattr flock fork fremovexattr fsconfig fsetxattr fsmount fsopen
    fspick fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex
    futex_time64 futimesat get_robust_list get_thread_area getcpu getcwd getdents getdents64
    getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer
    getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32
    getresuid getresuid32 getrlimit getrusage getsid getsockname getsockopt gettid
    gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1
    inotify_rm_watch io_cancel io_destroy io_getevents io_setup io_submit ioctl ioprio_get
    ioprio_set ipc keyctl kill lchown lchown32 lgetxattr link linkat listen listxattr
    llistxattr lremovexattr lseek lsetxattr lstat lstat64 madvise memfd_create mincore mkdir
    mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mount move_mount mprotect
    mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
    mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall
    munmap name_to_handle_at nanosleep newfstatat open openat openat2 open_tree pause
    pidfd_getfd pidfd_open pidfd_send_signal pipe pipe2 pivot_root pkey_alloc pkey_free
    pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 pselect6
    pselect6_time64 pwrite64 pwritev pwritev2 read readahead readdir readlink readlinkat
    readv reboot recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr
    rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
    rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
    rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_get_priority_max sched_get_priority_min
    sched_getaffinity sched_getattr sched_getparam sched_getscheduler sched_rr_get_interval
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
    sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
    semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setns set_robust_list
    set_thread_area set_tid_address setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
    setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid
    setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit setsid setsockopt setuid
    setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
    sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx symlink
    symlinkat sync sync_file_range syncfs sysinfo syslog tee tgkill time timer_create
    timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
    timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
    timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask umount umount2 uname
    unlink unlinkat unshare utime utimensat utimensat_time64 utimes vfork wait4 waitid
    waitpid write writev
""".split())

DENIED = tuple("""
    bdflush io_pgetevents kexec_file_load kexec_load membarrier migrate_pages move_pages
    nfsservctl nice oldfstat oldlstat oldolduname oldstat olduname pciconfig_iobase
    pciconfig_read pciconfig_write sgetmask ssetmask swapcontext swapoff swapon sysfs uselib
    userfaultfd ustat vm86 vm86old vmsplice
""".split())

BY_CAPABILITY = {
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_SYS_ADMIN": ("bpf", "fanotify_init", "lookup_dcookie", "perf_event_open", "quotactl",
                      "setdomainname", "sethostname", "setns"),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("delete_module", "init_module", "finit_module", "query_module"),
    "CAP_SYS_NICE": ("get_mempolicy", "mbind", "set_mempolicy"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_PTRACE": ("kcmp", "process_madvise", "process_vm_readv", "process_vm_writev",
                       "ptrace"),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
}

_ARM = ("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
        "cacheflush", "set_tls")
BY_MACHINE = {                           # os.uname().machine -> what only it has
    "x86_64": ("arch_prctl", "modify_ldt"),
    "i686": ("modify_ldt",), "i386": ("modify_ldt",),
    "aarch64": _ARM, "armv7l": _ARM, "armv6l": _ARM,
    "ppc64le": ("sync_file_range2",),
    "s390x": ("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"),
}

# The native architecture and those its programs may also use (32-bit ones, x32).
ARCHITECTURES = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "mips64": ("SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"),
    "mips64el": ("SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"),
    "s390x": ("SCMP_ARCH_S390X", "SCMP_ARCH_S390"),
    "ppc64le": ("SCMP_ARCH_PPC64LE",),
    "riscv64": ("SCMP_ARCH_RISCV64",),
    "armv7l": ("SCMP_ARCH_ARM",), "armv6l": ("SCMP_ARCH_ARM",),
    "i686": ("SCMP_ARCH_X86",), "i386": ("SCMP_ARCH_X86",),
}

# PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (which only asks)
PERSONAS = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)


def default_seccomp(machine, capabilities=()):
    """The default profile for a container on `machine` (os.uname().machine) whose
    bounding set is `capabilities` (names such as "CAP_SYS_ADMIN")."""
    held = set(capabilities)
    allowed = list(ALLOWED) + list(BY_MACHINE.get(machine, ()))
    refused = list(DENIED)
    for capability, names in BY_CAPABILITY.items():
        if capability in held:
            allowed.extend(name for name in names if name not in allowed)
        else:
            # setns is also in ALLOWED, whose rule comes first in podman's profile and
            # so wins in libseccomp: it stays allowed without CAP_SYS_ADMIN
            refused.extend(name for name in names if name not in ALLOWED)
    rules = [Rule(names=tuple(refused), action="SCMP_ACT_ERRNO", errno=EPERM),
             Rule(names=tuple(allowed), action="SCMP_ACT_ALLOW")]
    rules += [Rule(names=("personality",), action="SCMP_ACT_ALLOW",
                   conditions=(Condition(index=0, op="SCMP_CMP_EQ", value=persona),))
              for persona in PERSONAS]
    if "CAP_AUDIT_WRITE" in held:
        rules.append(Rule(names=("socket",), action="SCMP_ACT_ALLOW"))
    else:
        rules += [
            Rule(names=("socket",), action="SCMP_ACT_ERRNO", errno=EINVAL, conditions=(
                Condition(index=0, op="SCMP_CMP_EQ", value=AF_NETLINK),
                Condition(index=2, op="SCMP_CMP_EQ", value=NETLINK_AUDIT))),
            Rule(names=("socket",), action="SCMP_ACT_ALLOW", conditions=(
                Condition(index=0, op="SCMP_CMP_NE", value=AF_NETLINK),)),
            Rule(names=("socket",), action="SCMP_ACT_ALLOW", conditions=(
                Condition(index=2, op="SCMP_CMP_NE", value=NETLINK_AUDIT),)),
        ]
    return Filter(default_action="SCMP_ACT_ERRNO", default_errno=ENOSYS,
                  architectures=ARCHITECTURES.get(machine, ()), rules=tuple(rules))
