//! The total cap of the log directory: the current files are always kept
//! (they hold the newest lines); rotated files go, oldest first, while the
//! directory is over its cap or the filesystem is nearly full. Nothing but
//! rotated logs is ever deleted.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The cap when the filesystem's size is unknown, and its upper bound.
pub const MAX_TOTAL: u64 = 64 << 20;
/// Logs may use at most this share of their filesystem (percent).
pub const SHARE_PERCENT: u64 = 10;
/// Below this free share (percent), rotated logs go even under the cap.
pub const MIN_FREE_PERCENT: u64 = 5;

/// The cap for `dir`: 10 % of its filesystem, at most 64 MiB.
pub fn total_cap(dir: &Path) -> u64 {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(st) => (st.blocks() * st.fragment_size() * SHARE_PERCENT / 100).min(MAX_TOTAL),
        Err(_) => MAX_TOTAL,
    }
}

/// Whether the filesystem of `dir` has less than 5 % free.
pub fn nearly_full(dir: &Path) -> bool {
    nix::sys::statvfs::statvfs(dir)
        .map(|st| st.blocks_available() * 100 < st.blocks() * MIN_FREE_PERCENT)
        .unwrap_or(false)
}

/// A rotated log: `<name>.log.<n>`.
fn is_rotated(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once(".log."))
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes rotated logs, oldest first, until `dir` holds at most `cap`
/// bytes of logs and its filesystem is not nearly full. A current log
/// counts as `current_max` (the size it rotates at) whatever it holds now:
/// it will grow to that before the next rotation, and the cap must still
/// hold then. `nearly_full` is the filesystem probe ([`nearly_full`] on
/// the appliance; given, so that tests do not depend on the free space of
/// the machine running them). Returns what was removed.
pub fn enforce_with(
    dir: &Path,
    cap: u64,
    current_max: u64,
    nearly_full: impl Fn(&Path) -> bool,
) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, u64, SystemTime)> = entries
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            m.is_file().then(|| {
                (
                    e.path(),
                    m.len(),
                    m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                )
            })
        })
        .collect();
    let is_current = |p: &Path| p.extension().is_some_and(|e| e == "log");
    let mut total: u64 = files
        .iter()
        .map(|f| {
            if is_current(&f.0) {
                f.1.max(current_max)
            } else {
                f.1
            }
        })
        .sum();
    files.retain(|f| is_rotated(&f.0));
    files.sort_by_key(|f| f.2);
    let mut removed = Vec::new();
    for (path, len, _) in files {
        if total <= cap && !nearly_full(dir) {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
            removed.push(path);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enforce(dir: &Path, cap: u64, current_max: u64) -> Vec<PathBuf> {
        enforce_with(dir, cap, current_max, |_| false)
    }

    #[test]
    fn the_oldest_rotated_logs_go_first_and_current_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (name, age) in [
            ("a.log.1", 30),
            ("b.log.1", 20),
            ("c.log.1", 10),
            ("a.log", 0),
            ("b.log", 0),
            ("notes.txt", 40),
        ] {
            let p = d.join(name);
            std::fs::write(&p, vec![b'x'; 100]).unwrap();
            let t = SystemTime::now() - std::time::Duration::from_secs(age);
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        let removed = enforce(d, 450, 0);
        assert_eq!(removed, [d.join("a.log.1"), d.join("b.log.1")]);
        for kept in ["c.log.1", "a.log", "b.log", "notes.txt"] {
            assert!(d.join(kept).exists(), "{kept}");
        }
        // Over the cap with no rotated file left: current logs stay.
        assert_eq!(enforce(d, 10, 0), [d.join("c.log.1")]);
        assert!(enforce(d, 10, 0).is_empty());
        assert!(d.join("a.log").exists());
    }

    #[test]
    fn current_logs_count_as_full_so_the_cap_holds_until_the_next_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.log.1"), vec![b'x'; 100]).unwrap();
        std::fs::write(d.join("a.log"), b"new\n").unwrap();
        // 100 + 4 fits 150, but a.log will grow to 100 before it rotates.
        assert!(enforce(d, 150, 0).is_empty());
        assert_eq!(enforce(d, 150, 100), [d.join("a.log.1")]);
    }

    #[test]
    fn a_nearly_full_filesystem_takes_rotated_logs_even_under_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.log.1"), b"old\n").unwrap();
        std::fs::write(d.join("a.log"), b"new\n").unwrap();
        assert!(enforce_with(d, 1 << 20, 0, |_| false).is_empty());
        assert_eq!(enforce_with(d, 1 << 20, 0, |_| true), [d.join("a.log.1")]);
        assert!(d.join("a.log").exists());
    }
}
