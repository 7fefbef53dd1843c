//! The system calls a unit may make: an allow-list per unit, compiled to BPF
//! (seccompiler, Firecracker's) in the parent and installed by
//! [`super::sandbox::Prepared::enter`] as the child's last step before exec,
//! so it holds from the unit's first instruction. A call outside the list
//! fails with EPERM (not a kill: a rare call we missed degrades one request,
//! it does not crash-loop a service), and `clone3` with ENOSYS, so the C
//! library falls back to `clone`, whose flags the list can check.
//!
//! What every unit may do is what a threaded network service needs (files,
//! memory, threads, timers, signals, sockets); what none may is the kernel
//! surface escapes start from: namespaces (`unshare`, `setns`, `clone` with
//! a `CLONE_NEW*` flag), mounts, `ptrace` and other processes' memory, BPF,
//! perf, keyrings, modules, kexec, io_uring, userfaultfd, changing the
//! clock, the identity or the capabilities, raw and netlink sockets. Per
//! unit: the socket families it uses, and whether it serves a port (the
//! consoles only talk to PID 1's socket).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// What a unit's list adds to the common part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syscalls {
    /// Address families `socket(2)` may open (`AF_UNIX`, `AF_INET`, ...).
    pub families: &'static [i32],
    /// It listens on a port: `bind`, `listen`, `accept`.
    pub serves: bool,
}

/// A network service: IPv4 and IPv6 sockets, a listening port, and Unix
/// sockets (a descriptor PID 1 hands over, a socket pair of the runtime).
pub const SERVICE: Syscalls = Syscalls {
    families: &[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6],
    serves: true,
};

/// A console: PID 1's Unix socket only, no port.
pub const CONSOLE: Syscalls = Syscalls {
    families: &[libc::AF_UNIX],
    serves: false,
};

/// Namespace flags `clone` may not carry.
const CLONE_NEW_ANY: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | 0x80/* CLONE_NEWTIME */) as u64;

/// Every unit's calls, unconditionally allowed.
const COMMON: &[libc::c_long] = &[
    // Descriptors and I/O.
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_preadv2,
    libc::SYS_pwritev2,
    libc::SYS_lseek,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    libc::SYS_fcntl,
    libc::SYS_ioctl,
    libc::SYS_pipe,
    libc::SYS_pipe2,
    libc::SYS_splice,
    libc::SYS_tee,
    libc::SYS_sendfile,
    libc::SYS_copy_file_range,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_select,
    libc::SYS_pselect6,
    libc::SYS_epoll_create,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_eventfd,
    libc::SYS_eventfd2,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_settime,
    libc::SYS_timerfd_gettime,
    libc::SYS_signalfd,
    libc::SYS_signalfd4,
    // Files (inside what the mounts let the unit see and write).
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_creat,
    libc::SYS_stat,
    libc::SYS_fstat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_statfs,
    libc::SYS_fstatfs,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_getdents64,
    libc::SYS_getcwd,
    libc::SYS_chdir,
    libc::SYS_fchdir,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_rmdir,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    libc::SYS_chmod,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fchown,
    libc::SYS_fchownat,
    libc::SYS_truncate,
    libc::SYS_ftruncate,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_sync_file_range,
    libc::SYS_fallocate,
    libc::SYS_fadvise64,
    libc::SYS_flock,
    libc::SYS_utimensat,
    libc::SYS_umask,
    // Memory.
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_msync,
    libc::SYS_mincore,
    // The program itself, its threads and its signals.
    libc::SYS_execve,
    libc::SYS_arch_prctl,
    libc::SYS_set_tid_address,
    libc::SYS_set_robust_list,
    libc::SYS_get_robust_list,
    libc::SYS_rseq,
    libc::SYS_futex,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_gettid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_getgroups,
    libc::SYS_getresuid,
    libc::SYS_getresgid,
    libc::SYS_getpgrp,
    libc::SYS_getsid,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_getparam,
    libc::SYS_sched_getscheduler,
    libc::SYS_getpriority,
    libc::SYS_getcpu,
    libc::SYS_prlimit64,
    libc::SYS_getrlimit,
    libc::SYS_getrusage,
    libc::SYS_times,
    libc::SYS_uname,
    libc::SYS_sysinfo,
    libc::SYS_prctl,
    // More filters only ever take away (and PID 1 installs the second of
    // its own with it, after the first).
    libc::SYS_seccomp,
    libc::SYS_kill,
    libc::SYS_tgkill,
    libc::SYS_tkill,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_sigsuspend,
    libc::SYS_sigaltstack,
    libc::SYS_pause,
    libc::SYS_restart_syscall,
    // Time (read only) and randomness.
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    libc::SYS_time,
    libc::SYS_getrandom,
    // Sockets once open (their families are the unit's).
    libc::SYS_socketpair,
    libc::SYS_connect,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_shutdown,
];

/// Serving a port.
const SERVING: &[libc::c_long] = &[
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
];

/// The two filters of a unit, in the order they are installed: its
/// allow-list, then the one that answers `clone3` ENOSYS (installed last,
/// it decides between two errors; see [`install`]).
pub struct Filters {
    allow: BpfProgram,
    clone3: BpfProgram,
}

#[derive(Debug, thiserror::Error)]
#[error("seccomp filter: {0}")]
pub struct FilterError(String);

fn arg0(op: SeccompCmpOp, value: u64) -> Result<SeccompRule, FilterError> {
    let condition = SeccompCondition::new(0, SeccompCmpArgLen::Dword, op, value)
        .map_err(|e| FilterError(e.to_string()))?;
    SeccompRule::new(vec![condition]).map_err(|e| FilterError(e.to_string()))
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, FilterError> {
    let filter = SeccompFilter::new(rules, mismatch, matched, TargetArch::x86_64)
        .map_err(|e| FilterError(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| FilterError(e.to_string()))
}

/// The filters of a unit whose list adds `extra` to the common part.
pub fn filters(extra: &Syscalls) -> Result<Filters, FilterError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = COMMON
        .iter()
        .chain(if extra.serves { SERVING } else { &[] })
        .map(|&n| (n, Vec::new()))
        .collect();
    // Threads and processes, in no new namespace.
    rules.insert(
        libc::SYS_clone,
        vec![arg0(SeccompCmpOp::MaskedEq(CLONE_NEW_ANY), 0)?],
    );
    rules.insert(
        libc::SYS_socket,
        extra
            .families
            .iter()
            .map(|&f| arg0(SeccompCmpOp::Eq, f as u64))
            .collect::<Result<_, _>>()?,
    );
    let allow = compile(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
    )?;
    let clone3 = compile(
        [(libc::SYS_clone3, Vec::new())].into(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
    )?;
    Ok(Filters { allow, clone3 })
}

/// Installs `filters` on the calling thread (and what it execs).
///
/// Where both filters have an opinion, the kernel takes the most severe
/// action and, between two errors, the one of the filter installed last:
/// `clone3` is refused by the allow-list (EPERM) and answered ENOSYS by the
/// second, so ENOSYS it is, and the C library falls back to `clone`.
///
/// # Safety
/// In the child between fork and exec: seccompiler's `apply_filter` makes
/// two system calls on the prepared programs and does not allocate.
pub unsafe fn install(filters: &Filters) -> std::io::Result<()> {
    let to_io = |e: seccompiler::Error| std::io::Error::other(e.to_string());
    seccompiler::apply_filter(&filters.allow).map_err(to_io)?;
    seccompiler::apply_filter(&filters.clone3).map_err(to_io)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` in a forked child under the filters of `extra`; the child's
    /// exit code is what `f` returns.
    fn in_child(extra: &Syscalls, f: fn() -> i32) -> i32 {
        let filters = filters(extra).unwrap();
        // SAFETY: the child only installs the prepared filters, makes the
        // probe's system calls and exits; it returns to no Rust code of the
        // test harness.
        unsafe {
            match libc::fork() {
                0 => {
                    let code = if install(&filters).is_ok() { f() } else { 100 };
                    libc::_exit(code)
                }
                pid if pid > 0 => {
                    let mut status = 0;
                    libc::waitpid(pid, &mut status, 0);
                    libc::WEXITSTATUS(status)
                }
                _ => panic!("fork: {}", std::io::Error::last_os_error()),
            }
        }
    }

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// The result of system call probe `n` and its errno, in the child.
    fn probe(n: usize) -> (libc::c_long, i32) {
        // SAFETY: each call is made with arguments it may refuse but cannot
        // misuse memory with (null pointers where none is read before the
        // refusal, no stack for a clone that is refused before it runs).
        let r = unsafe {
            match n {
                0 => libc::unshare(libc::CLONE_NEWUSER) as libc::c_long,
                1 => libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    std::ptr::null(),
                ) as libc::c_long,
                2 => libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0),
                3 => libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, 0) as libc::c_long,
                4 => libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0),
                5 => libc::syscall(
                    libc::SYS_clone,
                    libc::CLONE_NEWNET | libc::SIGCHLD,
                    0,
                    0,
                    0,
                    0,
                ),
                6 => libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) as libc::c_long,
                7 => libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) as libc::c_long,
                _ => libc::bind(-1, std::ptr::null(), 0) as libc::c_long,
            }
        };
        (r, errno())
    }

    fn refused_with(n: usize, expected: i32) -> i32 {
        i32::from(probe(n) != (-1, expected))
    }

    #[test]
    fn namespaces_mounts_and_ptrace_are_refused_and_ordinary_calls_pass() {
        // Each child answers 0 when its call was refused as it should be.
        let refused: [fn() -> i32; 6] = [
            || refused_with(0, libc::EPERM),
            || refused_with(1, libc::EPERM),
            || refused_with(2, libc::EPERM),
            || refused_with(3, libc::EPERM),
            || refused_with(4, libc::ENOSYS),
            || refused_with(5, libc::EPERM),
        ];
        for (i, f) in refused.into_iter().enumerate() {
            assert_eq!(in_child(&SERVICE, f), 0, "probe {i}");
        }
        // A thread, a TCP socket, a file: allowed.
        let ordinary = || {
            let thread = std::thread::spawn(|| 7).join().is_ok_and(|v| v == 7);
            let tcp = std::net::TcpListener::bind("127.0.0.1:0").is_ok();
            let file = std::fs::read("/proc/self/status").is_ok();
            i32::from(!(thread && tcp && file))
        };
        assert_eq!(in_child(&SERVICE, ordinary), 0);
        // A console opens no IP socket and serves no port.
        let console = || {
            let inet = probe(6) == (-1, libc::EPERM);
            let unix = probe(7).0 >= 0;
            let bind = probe(8) == (-1, libc::EPERM);
            i32::from(!(inet && unix && bind))
        };
        assert_eq!(in_child(&CONSOLE, console), 0);
    }
}
