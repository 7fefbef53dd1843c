//! The process table as /proc shows it: used to wait for every process to be
//! gone at shutdown, and by the self-test that counts zombies.

use std::path::Path;

/// PF_KTHREAD in the `flags` field of /proc/<pid>/stat.
const PF_KTHREAD: u64 = 0x0020_0000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub flags: u64,
}

impl ProcStat {
    /// Parses one /proc/<pid>/stat line. The command name is in parentheses
    /// and may itself hold spaces and parentheses, so fields are counted from
    /// the last ')'.
    pub fn parse(line: &str) -> Option<ProcStat> {
        let open = line.find('(')?;
        let close = line.rfind(')')?;
        let pid = line.get(..open)?.trim().parse().ok()?;
        let comm = line.get(open + 1..close)?.to_owned();
        let mut rest = line.get(close + 1..)?.split_whitespace();
        let state = rest.next()?.chars().next()?;
        let ppid = rest.next()?.parse().ok()?;
        // pgrp, session, tty_nr, tpgid come before flags.
        let flags = rest.nth(4)?.parse().ok()?;
        Some(ProcStat {
            pid,
            comm,
            state,
            ppid,
            flags,
        })
    }

    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }

    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// Processes whose command name is `comm`.
pub fn pids_of(comm: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = list(Path::new("/proc"))
        .into_iter()
        .filter(|p| p.comm == comm)
        .map(|p| p.pid)
        .collect();
    pids.sort();
    pids
}

/// Every process but kernel threads, read from `proc` (normally /proc).
pub fn list(proc: &Path) -> Vec<ProcStat> {
    let Ok(entries) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|s| ProcStat::parse(&s))
        .filter(|p| !p.is_kernel_thread())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_odd_command_names() {
        let s = ProcStat::parse("42 (a (b) c) Z 1 42 42 0 -1 4194560 0 0 0").unwrap();
        assert_eq!(s.pid, 42);
        assert_eq!(s.comm, "a (b) c");
        assert_eq!(s.state, 'Z');
        assert_eq!(s.ppid, 1);
        assert!(s.is_zombie());
        assert!(!s.is_kernel_thread());
    }

    #[test]
    fn kernel_threads_are_told_apart() {
        let s = ProcStat::parse("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0").unwrap();
        assert!(s.is_kernel_thread());
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(ProcStat::parse(""), None);
        assert_eq!(ProcStat::parse("x (y) S"), None);
        assert_eq!(ProcStat::parse("1 (y) S 0"), None);
    }

    #[test]
    fn lists_this_test_process() {
        let me = std::process::id() as i32;
        assert!(list(Path::new("/proc")).iter().any(|p| p.pid == me));
    }
}
