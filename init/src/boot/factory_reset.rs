//! Reset appliance: everything the appliance wrote on its state partition
//! (configuration, logs, the units' state such as the registration and the
//! appliance CA, diagnostics reports and captures) is erased.
//!
//! The erase happens at the next boot, right after the state partition is
//! mounted and before anything opens a file there: while the appliance runs,
//! the units and the log writers hold files open under /var, and deleting them
//! under their feet would leave half the state behind. The request is a marker
//! file written (and synced) by the control API before it reboots; the
//! configuration itself is removed at request time as well, so a reset that
//! fails to reboot still comes up as a first boot. The patch disk is not
//! touched: it holds cached objects, not configuration.

use std::fs;
use std::io;
use std::path::Path;

use gateway_fsutil::{write_atomic, WriteOptions};
use tracing::{info, warn};

/// The marker's name in the root of the state partition.
pub const MARKER: &str = ".factory-reset";

/// Entries of the state partition that the reset keeps: e2fsck wants
/// `lost+found` where mke2fs put it.
const KEPT: &[&str] = &["lost+found"];

/// Records the request (the marker, synced with its directory).
pub fn request(state: &Path) -> io::Result<()> {
    write_atomic(
        &state.join(MARKER),
        b"reset appliance requested through the control API\n",
        &WriteOptions::default(),
    )?;
    Ok(())
}

/// What a boot found and did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    NotRequested,
    /// Every entry but the kept ones was removed (their count).
    Erased(usize),
}

/// Erases the state partition when the marker is there. The marker goes
/// last, so a power cut during the erase resumes it at the following boot.
pub fn apply(state: &Path) -> io::Result<Outcome> {
    let marker = state.join(MARKER);
    if !marker.exists() {
        return Ok(Outcome::NotRequested);
    }
    let mut erased = 0;
    for entry in fs::read_dir(state)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == MARKER || KEPT.iter().any(|k| name == *k) {
            continue;
        }
        let path = entry.path();
        // Not following symlinks: file_type() is the entry's own type.
        let r = if entry.file_type()?.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match r {
            Ok(()) => erased += 1,
            Err(e) => {
                warn!("reset appliance: could not remove {}: {e}", path.display());
                return Err(e);
            }
        }
    }
    fs::remove_file(&marker)?;
    fs::File::open(state)?.sync_all()?;
    Ok(Outcome::Erased(erased))
}

/// The boot step: logs what happened, never fails the boot.
pub fn at_boot(state: &Path) {
    match apply(state) {
        Ok(Outcome::NotRequested) => {}
        Ok(Outcome::Erased(n)) => info!(
            "reset appliance: state partition erased ({n} entries: configuration, logs, unit state); this is a first boot"
        ),
        Err(e) => warn!("reset appliance: erase incomplete ({e}); it is tried again at the next boot"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn populated() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        fs::create_dir_all(p.join("lost+found")).unwrap();
        fs::create_dir_all(p.join("lib/gateway")).unwrap();
        fs::write(p.join("lib/gateway/config.json"), "{}").unwrap();
        fs::create_dir_all(p.join("lib/units/agent")).unwrap();
        fs::write(p.join("lib/units/agent/state.json"), "{}").unwrap();
        fs::create_dir_all(p.join("log/gateway")).unwrap();
        fs::write(p.join("log/gateway/init.log"), "line\n").unwrap();
        fs::write(p.join("stray"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", p.join("link")).unwrap();
        d
    }

    #[test]
    fn without_the_marker_nothing_is_touched() {
        let d = populated();
        assert_eq!(apply(d.path()).unwrap(), Outcome::NotRequested);
        assert!(d.path().join("log/gateway/init.log").exists());
        assert!(d.path().join("lib/gateway/config.json").exists());
    }

    #[test]
    fn a_request_erases_everything_but_lost_and_found_once() {
        let d = populated();
        request(d.path()).unwrap();
        assert_eq!(apply(d.path()).unwrap(), Outcome::Erased(4));
        let left: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, vec!["lost+found".to_string()]);
        // The symlink went, not what it pointed to.
        assert!(Path::new("/etc").exists());
        // Done: the next boot keeps what it writes.
        fs::write(d.path().join("new"), "x").unwrap();
        assert_eq!(apply(d.path()).unwrap(), Outcome::NotRequested);
        assert!(d.path().join("new").exists());
    }
}
