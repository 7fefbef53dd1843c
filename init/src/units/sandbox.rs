//! The sandbox a unit runs in: its own user and group with no supplementary
//! groups, no_new_privs, only the capabilities the table gives it (as
//! ambient capabilities, so they survive exec without file capabilities),
//! its own cgroup (v2) with a memory limit (`memory.high` below
//! `memory.max`, so the kernel reclaims before it kills; `memory.low`, what
//! it keeps under the others' pressure) and a task limit
//! (`pids.max`), a mount namespace where /var, /run, /tmp, /dev/shm and /sys
//! are read-only except its own state directory, nothing writable is
//! executable, and /proc is a procfs of its own that shows only the unit's
//! own processes (`hidepid=invisible`), its own session (with its terminal
//! as controlling terminal, for a console), and an open-files limit.
//!
//! [`Prepared`] does everything that allocates or may fail in words, in the
//! parent; [`Prepared::enter`] runs in the child between fork and exec and
//! only makes system calls on what was prepared (after fork in a process
//! with threads, allocating is not safe).

use std::ffi::CString;
use std::io;
use std::os::unix::fs::{chown, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use gateway_fsutil::{write_atomic, AtomicWriteError, WriteOptions};

use super::table::UnitSpec;

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
pub const STATE_ROOT: &str = "/var/lib/units";
pub const RUNTIME_ROOT: &str = "/run/units";

/// Mount points the unit sees read-only (the root is read-only already).
/// Every writable filesystem the boot mounts is here: /dev/shm is a tmpfs
/// of mode 1777 of its own (not covered by the root's read-only mount), so
/// without it a compromised unit could leave files there for another.
const READ_ONLY: [&str; 5] = ["/var", "/run", "/tmp", "/dev/shm", "/sys"];

/// The most tasks (processes and threads) a unit's cgroup holds: far above
/// what a service needs (its runtime's workers and a blocking pool that
/// grows under load), far below what would exhaust the appliance.
pub const PIDS_MAX: u32 = 1024;

/// `memory.high` as a share of `memory.max`, in percent: above it the
/// kernel throttles the unit and reclaims its memory, so a unit that grows
/// slows down before the OOM killer ends it at `memory.max`.
pub const MEMORY_HIGH_PERCENT: u64 = 90;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
    #[error(transparent)]
    Filter(#[from] super::seccomp::FilterError),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SandboxError + 'a {
    move |source| SandboxError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// What the child needs, computed before the fork.
pub struct Prepared {
    uid: u32,
    gid: u32,
    caps: u64,
    cap_list: Vec<u32>,
    max_files: u64,
    /// stdin is a terminal that becomes the unit's controlling terminal.
    controlling_tty: bool,
    /// The unit reloads on SIGHUP: it starts with SIGHUP ignored, so that a
    /// reload sent before it installed its handler cannot kill it (the
    /// handler replaces the disposition).
    ignore_hup: bool,
    cgroup_procs: Option<CString>,
    /// Its own directories: the state directory, and its directory on the
    /// patch disk when it has one; bind-mounted on themselves so that they
    /// stay writable under the read-only mounts.
    writable: Vec<CString>,
    read_only: Vec<CString>,
    pub state_path: PathBuf,
    /// Its directory on the patch disk, when it asks for one and the disk
    /// is mounted.
    pub patch_path: Option<PathBuf>,
    pub runtime_path: PathBuf,
    /// Its system-call filters, compiled here, installed last in the child.
    filters: super::seccomp::Filters,
}

/// A directory owned by the unit, mode 0700.
fn private_dir(path: &Path, uid: u32, gid: u32) -> Result<(), SandboxError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_err("create", path))?;
    chown(path, Some(uid), Some(gid)).map_err(io_err("chown", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err("chmod", path))
}

/// A root-owned parent directory others may traverse (0755), and its
/// parent too: an appliance whose first save made /var/lib 0700 (before
/// the store created only its own directory private) is repaired here.
fn public_dir(path: &Path) -> Result<(), SandboxError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(io_err("create", path))?;
    for dir in [Some(path), path.parent()].into_iter().flatten() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err("chmod", dir))?;
    }
    Ok(())
}

/// The unit's cgroup with its memory limit; `None` (logged by the caller)
/// when cgroup v2 is not available: the unit still runs.
pub fn cgroup(spec: &UnitSpec, memory_max: u64) -> Result<PathBuf, SandboxError> {
    let root = Path::new(CGROUP_ROOT);
    // Controllers must be enabled in the parent for the child's files to
    // exist; the root cgroup may hold processes (init) and still do so.
    let control = root.join("cgroup.subtree_control");
    std::fs::write(&control, "+memory +pids").map_err(io_err("enable controllers in", &control))?;
    let dir = root.join(spec.name);
    match std::fs::create_dir(&dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(io_err("create", &dir)(e))
        }
        _ => {}
    }
    let max = dir.join("memory.max");
    std::fs::write(&max, memory_max.to_string()).map_err(io_err("write", &max))?;
    let high = dir.join("memory.high");
    // In whole pages, as the kernel keeps it.
    let high_bytes = memory_max / 100 * MEMORY_HIGH_PERCENT / 4096 * 4096;
    std::fs::write(&high, high_bytes.to_string()).map_err(io_err("write", &high))?;
    let low = dir.join("memory.low");
    std::fs::write(&low, spec.memory.low_bytes().to_string()).map_err(io_err("write", &low))?;
    let pids = dir.join("pids.max");
    std::fs::write(&pids, PIDS_MAX.to_string()).map_err(io_err("write", &pids))?;
    Ok(dir)
}

impl Prepared {
    pub fn new(
        spec: &UnitSpec,
        caps: &[u32],
        cgroup_dir: Option<&Path>,
    ) -> Result<Prepared, SandboxError> {
        public_dir(Path::new(STATE_ROOT))?;
        public_dir(Path::new(RUNTIME_ROOT))?;
        let state_path = Path::new(STATE_ROOT).join(spec.name);
        let runtime_path = Path::new(RUNTIME_ROOT).join(spec.name);
        private_dir(&state_path, spec.uid, spec.gid)?;
        private_dir(&runtime_path, spec.uid, spec.gid)?;
        let patch_mount = Path::new(crate::disks::patch::MOUNT_POINT);
        let patch_mounted = crate::boot::mounts::is_mount_point(patch_mount);
        let patch_path = (spec.patch_dir && patch_mounted).then(|| patch_mount.join(spec.name));
        if let Some(p) = &patch_path {
            private_dir(p, spec.uid, spec.gid)?;
        }
        let c = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default();
        Ok(Prepared {
            uid: spec.uid,
            gid: spec.gid,
            caps: caps.iter().fold(0u64, |m, &c| m | (1u64 << c)),
            cap_list: caps.to_vec(),
            max_files: spec.max_files,
            controlling_tty: spec.tty.is_some(),
            ignore_hup: spec.reload,
            cgroup_procs: cgroup_dir.map(|d| c(&d.join("cgroup.procs"))),
            writable: [Some(&state_path), patch_path.as_ref()]
                .into_iter()
                .flatten()
                .map(|p| c(p))
                .collect(),
            // A mount inside /var (the patch disk) is not covered by
            // /var's read-only remount: it needs its own.
            read_only: READ_ONLY
                .iter()
                .map(Path::new)
                .chain(Some(patch_mount).filter(|_| patch_mounted))
                .map(c)
                .collect(),
            state_path,
            patch_path,
            runtime_path,
            filters: super::seccomp::filters(&spec.syscalls)?,
        })
    }

    /// Writes a file the unit reads (its settings): owned by the unit,
    /// mode 0600, replaced whole. The runtime directory is on /run (tmpfs,
    /// rewritten at every start): the fsyncs of the replacement cost nothing
    /// there, only its atomicity matters.
    pub fn write_private(&self, name: &str, text: &str) -> Result<PathBuf, SandboxError> {
        let path = self.runtime_path.join(name);
        write_atomic(
            &path,
            text.as_bytes(),
            &WriteOptions::private().owner(self.uid, self.gid),
        )?;
        Ok(path)
    }

    /// In the child, between fork and exec: a session of its own, its
    /// limits and cgroup, its mounts, its user and capabilities, no new
    /// privileges, then its system-call filters (which allow the exec).
    ///
    /// # Safety
    /// Only system calls on data prepared before the fork: no allocation,
    /// no locks.
    pub unsafe fn enter(&self) -> io::Result<()> {
        // SAFETY: the steps below are this function's, in the child between
        // fork and exec, as its caller promises.
        unsafe {
            self.enter_session()?;
            self.enter_mounts()?;
            self.enter_identity()?;
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            super::seccomp::install(&self.filters)
        }
    }

    /// [`Prepared::enter`]'s first step: a session (and the terminal, for
    /// a console), the open-files limit, the cgroup, SIGHUP ignored for a
    /// unit that asks.
    ///
    /// # Safety
    /// As [`Prepared::enter`]: in the child between fork and exec only.
    unsafe fn enter_session(&self) -> io::Result<()> {
        // SAFETY: plain system calls on pointers to data owned by `self`,
        // which outlives them; nothing here allocates or takes a lock.
        unsafe {
            check(libc::setsid())?;
            if self.controlling_tty {
                // The new session takes its terminal (still root here, but
                // 0: never stolen from another session).
                check(libc::ioctl(0, libc::TIOCSCTTY, 0))?;
            }
            let files = libc::rlimit {
                rlim_cur: self.max_files,
                rlim_max: self.max_files,
            };
            check(libc::setrlimit(libc::RLIMIT_NOFILE, &files))?;
            if let Some(procs) = &self.cgroup_procs {
                // Writing 0 moves the writing process itself.
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                check(fd)?;
                let r = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if r != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            if self.ignore_hup && libc::signal(libc::SIGHUP, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// [`Prepared::enter`]'s mounts: a mount namespace of its own, its
    /// writable directories bound onto themselves, the rest read-only,
    /// nothing writable executable, and a /proc of its own.
    ///
    /// # Safety
    /// As [`Prepared::enter`]: in the child between fork and exec only.
    unsafe fn enter_mounts(&self) -> io::Result<()> {
        // SAFETY: plain system calls on pointers to data owned by `self`,
        // which outlives them; nothing here allocates or takes a lock.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            // Our mounts stop propagating to init's namespace and back.
            check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            // The state directory becomes a mount of its own, so making
            // /var read-only below leaves it writable.
            for dir in &self.writable {
                check(libc::mount(
                    dir.as_ptr(),
                    dir.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))?;
            }
            for dir in &self.read_only {
                check(libc::mount(
                    std::ptr::null(),
                    dir.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REMOUNT
                        | libc::MS_BIND
                        | libc::MS_RDONLY
                        | libc::MS_NOSUID
                        | libc::MS_NODEV
                        | libc::MS_NOEXEC,
                    std::ptr::null(),
                ))?;
            }
            // What the unit may write it may not run: a compromised unit
            // cannot drop a program and execute it.
            for dir in &self.writable {
                check(libc::mount(
                    std::ptr::null(),
                    dir.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REMOUNT
                        | libc::MS_BIND
                        | libc::MS_NOSUID
                        | libc::MS_NODEV
                        | libc::MS_NOEXEC,
                    std::ptr::null(),
                ))?;
            }
            // A procfs instance of its own over /proc (per-instance options
            // since Linux 5.8): the unit sees its own processes only, not
            // PID 1's nor another unit's (their command lines, environment,
            // open files), and still its own /proc/self.
            check(libc::mount(
                c"proc".as_ptr(),
                c"/proc".as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                c"hidepid=invisible".as_ptr().cast(),
            ))?;
        }
        Ok(())
    }

    /// [`Prepared::enter`]'s identity: no supplementary groups, the unit's
    /// group and user, and its capabilities kept across the change of user
    /// (permitted, effective, inheritable and ambient).
    ///
    /// # Safety
    /// As [`Prepared::enter`]: in the child between fork and exec only.
    unsafe fn enter_identity(&self) -> io::Result<()> {
        // SAFETY: plain system calls on pointers to data owned by `self`,
        // which outlives them; nothing here allocates or takes a lock.
        unsafe {
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setresgid(self.gid, self.gid, self.gid))?;
            if self.caps != 0 {
                check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0))?;
            }
            check(libc::setresuid(self.uid, self.uid, self.uid))?;
            if self.caps != 0 {
                self.enter_capabilities()?;
            }
        }
        Ok(())
    }

    /// The capabilities of [`Prepared::enter_identity`], once the user is
    /// the unit's.
    ///
    /// # Safety
    /// As [`Prepared::enter`]: in the child between fork and exec only.
    unsafe fn enter_capabilities(&self) -> io::Result<()> {
        // capset(2), version 3: two 32-bit words per set.
        #[repr(C)]
        struct Header {
            version: u32,
            pid: libc::c_int,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let header = Header {
            version: 0x2008_0522,
            pid: 0,
        };
        let lo = self.caps as u32;
        let hi = (self.caps >> 32) as u32;
        let data = [
            Data {
                effective: lo,
                permitted: lo,
                inheritable: lo,
            },
            Data {
                effective: hi,
                permitted: hi,
                inheritable: hi,
            },
        ];
        // SAFETY: capset reads the header and the two data words on this
        // stack; prctl takes plain integers. Nothing allocates.
        unsafe {
            if libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            for &cap in &self.cap_list {
                check(libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                ))?;
            }
        }
        Ok(())
    }
}

/// A system call's `-1` as the error it set.
pub(super) fn check(r: libc::c_int) -> io::Result<()> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A filesystem the boot mounts writable and that is not in the list
    /// stays writable in every sandbox (a remount of its parent does not
    /// reach a mount below it).
    #[test]
    fn every_writable_memory_filesystem_the_boot_mounts_is_read_only_in_a_sandbox() {
        let tmpfs: Vec<&str> = crate::boot::mounts::early_mounts()
            .iter()
            .filter(|m| m.fstype == "tmpfs")
            .map(|m| m.target)
            .collect();
        assert!(tmpfs.contains(&"/dev/shm"), "{tmpfs:?}");
        for target in tmpfs {
            assert!(
                READ_ONLY.contains(&target),
                "{target} is writable in the sandbox"
            );
        }
    }
}
