//! Tail and search of a log for the control API (the console's Logs screen,
//! `gatewayctl logs`): the current file and its rotated predecessor, newest
//! line first.

use std::path::Path;

/// At most this many lines per answer.
pub const MAX_LINES: usize = 5000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("no log {0:?}: the logs are {1}")]
    NoSuchLog(String, String),
}

/// The log names in `dir` (`proxy`, `init`, `kernel`, ...).
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".log")
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The newest `lines` lines of log `name` containing `search` (case
/// insensitive), newest first.
pub fn tail(
    dir: &Path,
    name: &str,
    lines: usize,
    search: Option<&str>,
) -> Result<Vec<String>, ReadError> {
    let known = names(dir);
    if !known.iter().any(|n| n == name) {
        return Err(ReadError::NoSuchLog(name.to_owned(), known.join(", ")));
    }
    let needle = search.map(str::to_lowercase);
    let mut out = Vec::new();
    for file in [format!("{name}.log"), format!("{name}.log.1")] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        for line in text.lines().rev() {
            if out.len() >= lines.min(MAX_LINES) {
                return Ok(out);
            }
            if needle
                .as_ref()
                .is_none_or(|n| line.to_lowercase().contains(n))
            {
                out.push(line.to_owned());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_across_rotation_with_search() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("proxy.log.1"), "old 1\nold 2 ERROR\n").unwrap();
        std::fs::write(dir.path().join("proxy.log"), "new 1\nnew 2 error\n").unwrap();
        assert_eq!(
            tail(dir.path(), "proxy", 3, None).unwrap(),
            ["new 2 error", "new 1", "old 2 ERROR"]
        );
        assert_eq!(
            tail(dir.path(), "proxy", 10, Some("Error")).unwrap(),
            ["new 2 error", "old 2 ERROR"]
        );
        assert_eq!(
            tail(dir.path(), "nope", 1, None).unwrap_err().to_string(),
            "no log \"nope\": the logs are proxy"
        );
    }
}
