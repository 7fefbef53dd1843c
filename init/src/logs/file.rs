//! One log: `/var/log/gateway/<name>.log`, a line per line with its time
//! (the uptime, as on the console), rotated by size into `<name>.log.1`
//! (one previous file kept); a rotation also enforces the total cap of the
//! log directory (see [`super::cap`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::pid1::uptime::uptime;

/// Size a file never outgrows: a line that would take it past this goes
/// into a new file, after a rotation.
pub const MAX_BYTES: u64 = 1 << 20;

pub struct LogFile {
    path: PathBuf,
    file: Option<File>,
    keep_open: bool,
    written: u64,
    max: u64,
    /// The "filesystem nearly full" probe of the cap (replaced in tests,
    /// whose result must not depend on the free space of the machine).
    nearly_full: fn(&Path) -> bool,
    /// The directory's total cap (replaced in tests, so that the cap does
    /// not depend on the size of the machine's filesystem).
    total_cap: fn(&Path) -> u64,
}

impl LogFile {
    pub fn new(dir: &Path, unit: &str, max: u64) -> Self {
        let path = dir.join(format!("{unit}.log"));
        let written = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        LogFile {
            path,
            file: None,
            keep_open: true,
            written,
            max,
            nearly_full: super::cap::nearly_full,
            total_cap: super::cap::total_cap,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line with the uptime, like the console's lines. A write
    /// error drops the line (logging must never stop a unit).
    pub fn line(&mut self, text: &str) {
        self.line_at(uptime(), text)
    }

    fn open(&mut self) {
        if self.file.is_some() {
            return;
        }
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)
            .ok();
    }

    /// Appends one line stamped `t` (time since boot).
    pub fn line_at(&mut self, t: std::time::Duration, text: &str) {
        let mut line = format!(
            "[{:5}.{:03}] {}\n",
            t.as_secs(),
            t.subsec_millis(),
            text.trim_end()
        );
        // A line longer than a whole file is cut, so that no file outgrows
        // `max` (the cap counts each current file as `max`).
        let room = usize::try_from(self.max).unwrap_or(usize::MAX).max(1);
        if line.len() > room {
            let mut cut = room - 1;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('\n');
        }
        if self.written > 0 && self.written + line.len() as u64 > self.max {
            self.file = None;
            let _ = std::fs::rename(&self.path, self.path.with_extension("log.1"));
            self.written = 0;
            // The new current file exists before the cap is enforced: the
            // cap counts it as full, the size it reaches before the next
            // rotation. Counted after, it could take the total one file
            // past the cap.
            self.open();
            if let Some(dir) = self.path.parent() {
                let cap = (self.total_cap)(dir);
                super::cap::enforce_with(dir, cap, self.max, self.nearly_full);
            }
        }
        self.open();
        if let Some(f) = &mut self.file {
            if f.write_all(line.as_bytes()).is_ok() {
                self.written += line.len() as u64;
            }
        }
        if !self.keep_open {
            self.file = None;
        }
    }

    /// Closes the file after every line: for a writer that lives as long as
    /// PID 1 (the kernel log follower), so that nothing holds /var open
    /// when it is unmounted at power-off.
    pub fn close_after_each_line(mut self) -> Self {
        self.keep_open = false;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testlog::dir_bytes;

    #[test]
    fn a_full_file_is_rotated_and_the_newest_lines_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::new(dir.path(), "proxy", 1000);
        log.nearly_full = |_| false;
        for i in 0..200 {
            log.line(&format!("line {i}"));
        }
        let current = std::fs::read_to_string(dir.path().join("proxy.log")).unwrap();
        let previous = std::fs::read_to_string(dir.path().join("proxy.log.1")).unwrap();
        assert!(current.ends_with("line 199\n"), "{current}");
        assert!(current.len() <= 1000 && previous.len() <= 1000);
        assert!(previous.len() > 1000 - 40, "rotated only when full");
        assert!(!dir.path().join("proxy.log.2").exists());
    }

    #[test]
    fn a_line_longer_than_a_file_is_cut_to_fit() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::new(dir.path(), "proxy", 100);
        log.nearly_full = |_| false;
        log.line(&"é".repeat(300));
        let current = std::fs::read_to_string(dir.path().join("proxy.log")).unwrap();
        assert!(
            current.len() <= 100 && current.ends_with("é\n"),
            "{current}"
        );
    }

    /// The total of every log file, the current ones included, stays under
    /// the cap after every line, also while the file just started after a
    /// rotation fills up.
    #[test]
    fn the_total_with_the_new_current_file_never_exceeds_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Another unit's log, full, and its previous file.
        std::fs::write(d.join("other.log.1"), vec![b'x'; 1000]).unwrap();
        std::fs::write(d.join("other.log"), vec![b'x'; 1000]).unwrap();
        let mut log = LogFile::new(d, "proxy", 1000);
        log.nearly_full = |_| false;
        log.total_cap = |_| 3000;
        for i in 0..500 {
            log.line(&format!("line {i}"));
            let total = dir_bytes(d);
            assert!(total <= 3000, "{total} bytes after line {i}");
        }
        // Room for the two current files and the newest rotated one.
        assert!(!d.join("other.log.1").exists());
        assert!(d.join("proxy.log.1").exists() && d.join("other.log").exists());
    }
}
