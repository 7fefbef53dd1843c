//! One log: `/var/log/gateway/<name>.log`, a line per line with its time
//! (the uptime, as on the console), rotated by size into `<name>.log.1`
//! (one previous file kept); a rotation also enforces the total cap of the
//! log directory (see [`super::cap`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::uptime::uptime;

/// Size at which a file is rotated.
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

    /// Appends one line stamped `t` (time since boot).
    pub fn line_at(&mut self, t: std::time::Duration, text: &str) {
        if self.written >= self.max {
            self.file = None;
            let _ = std::fs::rename(&self.path, self.path.with_extension("log.1"));
            self.written = 0;
            if let Some(dir) = self.path.parent() {
                let cap = super::cap::total_cap(dir);
                super::cap::enforce_with(dir, cap, self.max, self.nearly_full);
            }
        }
        if self.file.is_none() {
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
        let line = format!(
            "[{:5}.{:03}] {}\n",
            t.as_secs(),
            t.subsec_millis(),
            text.trim_end()
        );
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
        assert!(current.len() <= 1000 + 40 && previous.len() <= 1000 + 40);
        assert!(!dir.path().join("proxy.log.2").exists());
    }
}
