//! What an administrator and support use to find out what is wrong: the
//! report (an encrypted archive of logs, redacted configuration, status and
//! stats, and the last upstream capture) offered over SFTP with a one-time
//! password, and its life: it waits until a download ends or 24 hours
//! pass, across reboots. Beside it: the upstream capture ([`capture`]),
//! ICMP echo ([`ping`]) and the usage figures of the Stats screen
//! ([`stats`]).
//!
//! PID 1 builds the report (it alone reads every log); the `sftp` unit
//! (services/sftp, unprivileged) serves it from its state directory, where
//! PID 1 puts the report and the offer ([`offer`]).
pub mod capture;
pub mod follow;
pub mod offer;
pub mod ping;
pub mod report;
pub mod stats;
pub mod unitdir;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_control::protocol::{ReportCreated, ReportOffer, REPORT_USER};
use gateway_fsutil::{AtomicFile, AtomicWriteError, WriteOptions};

use offer::{Offer, OfferError};
use report::ReportError;
use unitdir::UnitDir;

/// The SFTP server's user (image/src/rootfs.rs has the same number).
pub const SFTP_UID: u32 = 105;
/// Its state directory: the offer, `report/` and its host key.
pub const SFTP_STATE: &str = "/var/lib/units/sftp";
/// Where the report waits, inside [`SFTP_STATE`].
pub const REPORT_DIR: &str = "report";
/// The port the SFTP server listens on.
pub const SFTP_PORT: u16 = 22;
/// The support key, installed by the image build (image/keys/README.md).
pub const RECIPIENT_FILE: &str = "/usr/share/gateway/support-recipient.age.pub";
/// How long a report and its password wait for a download.
pub const VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// The upstream capture's file (the last complete capture).
pub const CAPTURE_FILE: &str = "/var/lib/gateway/diagnostics/upstream.pcap";

/// The last complete upstream capture, if one was taken.
pub fn last_capture() -> Option<PathBuf> {
    Some(PathBuf::from(CAPTURE_FILE)).filter(|p| p.is_file())
}

/// Why no report was made (the previous one may be withdrawn already).
#[derive(Debug, thiserror::Error)]
pub enum DiagnosticsError {
    #[error("support key {}: {source}", path.display())]
    SupportKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Report(#[from] ReportError),
    /// A directory could not be made, or the report's size read.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The report's file could not be written or put in place.
    #[error("{}: {}", .0.path().display(), .0.io_error())]
    Write(#[from] AtomicWriteError),
    #[error("{0}")]
    Offer(#[from] OfferError),
}

/// Seconds since 1970, as the offers and the capture's status count them.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The texts the report holds, gathered by the control API.
pub struct Gathered {
    pub hostname: String,
    pub version: String,
    pub config: String,
    pub status: String,
    pub stats: String,
    pub platform: Option<String>,
}

/// Where things are: the appliance's paths, or a test's.
pub struct Places {
    pub state: PathBuf,
    pub recipient_file: PathBuf,
    pub logs: PathBuf,
    pub capture: Option<PathBuf>,
    pub uid: u32,
}

impl Places {
    pub fn appliance(capture: Option<PathBuf>) -> Places {
        Places {
            state: PathBuf::from(SFTP_STATE),
            recipient_file: PathBuf::from(RECIPIENT_FILE),
            logs: PathBuf::from(crate::logs::LOG_ROOT),
            capture,
            uid: SFTP_UID,
        }
    }
}

/// The SFTP unit's state directory and the report directory in it, made
/// when missing, the unit's own and private. Through descriptors: the unit
/// may have put a link where the report directory goes ([`unitdir`]).
fn report_dirs(places: &Places) -> Result<(UnitDir, UnitDir), DiagnosticsError> {
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source: std::io::Error| DiagnosticsError::File { path, source }
    };
    // Its parents are root's: a path is safe up to here.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&places.state)
        .map_err(err(&places.state))?;
    let state = UnitDir::open(&places.state).map_err(err(&places.state))?;
    state.own(places.uid, 0o700).map_err(err(&places.state))?;
    let report_path = places.state.join(REPORT_DIR);
    let report = state.subdir(REPORT_DIR, 0o700).map_err(err(&report_path))?;
    report.own(places.uid, 0o700).map_err(err(&report_path))?;
    Ok((state, report))
}

/// Removes the offer (the password stops working at once) and every
/// report; links removed as links, never followed.
pub fn withdraw(state: &Path) {
    let Ok(dir) = UnitDir::open(state) else {
        return;
    };
    dir.remove(offer::OFFER_FILE);
    if let Ok(report) = dir.existing_subdir(REPORT_DIR) {
        report.clear();
    }
}

fn fingerprint(state: &Path) -> Option<String> {
    let bytes = UnitDir::open(state)
        .ok()?
        .read("host_key.fingerprint", 4096)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).trim().to_owned()).filter(|s| !s.is_empty())
}

/// A report's file name as the offer (a file the unit can write) gives it:
/// one name in the report directory, nothing that leads out of it.
fn report_name(name: &str) -> Option<&str> {
    (!name.is_empty() && name != "." && name != ".." && !name.contains('/')).then_some(name)
}

/// Builds the report, replacing any report still waiting, and offers it
/// with a new password. Blocking (seconds for tens of MiB of logs).
pub fn make_report(
    g: &Gathered,
    places: &Places,
    now_unix: u64,
) -> Result<ReportCreated, DiagnosticsError> {
    let key_text = std::fs::read_to_string(&places.recipient_file).map_err(|source| {
        DiagnosticsError::SupportKey {
            path: places.recipient_file.clone(),
            source,
        }
    })?;
    let recipient = report::recipient(&key_text)?;
    let (_state, dir) = report_dirs(places)?;
    withdraw(&places.state);
    let stamp: String = gateway_control::cli::utc(now_unix)
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let file = format!(
        "gateway-diagnostics-{}-{}T{}Z.tar.gz.age",
        g.hostname,
        &stamp[..8],
        &stamp[8..]
    );
    // In the directory opened above, whatever its path now leads to.
    let path = dir.fd_path().join(&file);
    // The SFTP server's from its creation, and read-only: it serves the
    // file, never changes it. Replaced whole or not at all.
    let opts = WriteOptions::with_mode(0o400).owner(places.uid, places.uid);
    let mut out = AtomicFile::create(&path, &opts)?;
    let inputs = report::Inputs {
        readme: readme(g, now_unix),
        config: g.config.clone(),
        status: g.status.clone(),
        stats: g.stats.clone(),
        platform: g.platform.clone(),
        logs: places.logs.clone(),
        capture: places.capture.clone(),
    };
    // On an error `out` is dropped, which removes the unfinished file.
    let contents = report::write(
        &inputs,
        &recipient,
        now_unix,
        std::io::BufWriter::new(&mut out),
    )?;
    let size_bytes = out
        .as_file()
        .metadata()
        .map_err(|source| DiagnosticsError::File {
            path: path.clone(),
            source,
        })?
        .len();
    out.commit()?;
    let password = offer::new_password()?;
    let expires_unix = now_unix + VALIDITY.as_secs();
    Offer::new(REPORT_USER, &password, &file, expires_unix)?.save(&places.state, places.uid)?;
    Ok(ReportCreated {
        offer: ReportOffer {
            file,
            size_bytes,
            created_unix: now_unix,
            expires_unix,
            user: REPORT_USER.to_owned(),
            port: SFTP_PORT,
            host_key_fingerprint: fingerprint(&places.state),
        },
        password,
        recipient: recipient.to_string(),
        contents,
    })
}

fn readme(g: &Gathered, now_unix: u64) -> String {
    format!(
        "Gateway appliance diagnostics report\n\
         appliance: {} (version {})\n\
         made: {} UTC\n\n\
         config.txt     the configuration (passwords and keys redacted)\n\
         status.json    network, DNS, time, units, disks, warnings, notes\n\
         stats.json     CPU, memory, disks, network counters, units\n\
         platform.json  registration and check-in (when the agent answered)\n\
         logs/          every unit's log, init's and the kernel's\n\
         capture/       the last upstream capture (pcap), if one was taken\n",
        g.hostname,
        g.version,
        gateway_control::cli::utc(now_unix)
    )
}

/// The report waiting for download, from the files (at boot, and to see
/// whether a download ended); an expired offer or one whose report is gone
/// is withdrawn.
pub fn waiting(state: &Path, now_unix: u64) -> Option<ReportOffer> {
    let Some(offer) = Offer::load(state) else {
        // Downloaded (the SFTP server removed the offer): the report goes.
        withdraw(state);
        return None;
    };
    let size = report_name(&offer.file).and_then(|name| {
        UnitDir::open(state)
            .and_then(|d| d.existing_subdir(REPORT_DIR))
            .ok()?
            .size(name)
    });
    match size {
        Some(size_bytes) if now_unix < offer.expires_unix => Some(ReportOffer {
            created_unix: offer.expires_unix.saturating_sub(VALIDITY.as_secs()),
            file: offer.file,
            size_bytes,
            expires_unix: offer.expires_unix,
            user: offer.user,
            port: SFTP_PORT,
            host_key_fingerprint: fingerprint(state),
        }),
        _ => {
            withdraw(state);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    fn places(dir: &Path, id: &age::x25519::Identity) -> Places {
        let key = dir.join("support.age.pub");
        std::fs::write(&key, format!("# test key\n{}\n", id.to_public())).unwrap();
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(logs.join("init.log"), "[ 0.100] init: started\n").unwrap();
        Places {
            state: dir.join("sftp"),
            recipient_file: key,
            logs,
            capture: None,
            uid: nix::unistd::getuid().as_raw(),
        }
    }

    fn gathered() -> Gathered {
        Gathered {
            hostname: "gw1".into(),
            version: "0.1.0".into(),
            config: "upstream.password=********\n".into(),
            status: "{}".into(),
            stats: "{}".into(),
            platform: None,
        }
    }

    /// The SFTP unit, compromised, links its report directory to a
    /// directory of root's and its host key's fingerprint to a secret: PID 1
    /// neither writes, chowns nor clears over there, nor reads the secret
    /// (as root, through paths, it did all of these).
    #[test]
    fn links_the_sftp_unit_plants_lead_root_nowhere() {
        use std::os::unix::fs::{symlink, MetadataExt};
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let places = places(dir.path(), &id);
        let roots = dir.path().join("etc");
        std::fs::create_dir_all(&roots).unwrap();
        std::fs::set_permissions(&roots, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(roots.join("shadow"), "root:x").unwrap();
        std::fs::create_dir_all(&places.state).unwrap();
        symlink(&roots, places.state.join(REPORT_DIR)).unwrap();
        symlink(
            roots.join("shadow"),
            places.state.join("host_key.fingerprint"),
        )
        .unwrap();
        assert!(make_report(&gathered(), &places, 1_795_000_000).is_err());
        withdraw(&places.state);
        let names: Vec<_> = std::fs::read_dir(&roots)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["shadow"], "nothing written or removed there");
        assert_eq!(std::fs::metadata(&roots).unwrap().mode() & 0o777, 0o755);
        assert_eq!(fingerprint(&places.state), None);
        // A real report directory again: reports are made, and an offer
        // naming a file outside it is no offer.
        std::fs::remove_file(places.state.join(REPORT_DIR)).unwrap();
        let made = make_report(&gathered(), &places, 1_795_000_000).unwrap();
        assert!(waiting(&places.state, 1_795_000_001).is_some());
        let mut offer = Offer::load(&places.state).unwrap();
        offer.file = "../../etc/shadow".into();
        offer.save(&places.state, places.uid).unwrap();
        assert!(waiting(&places.state, 1_795_000_001).is_none());
        assert!(roots.join("shadow").exists());
        assert!(!places.state.join(REPORT_DIR).join(made.offer.file).exists());
    }

    #[test]
    fn a_report_waits_with_its_offer_until_it_expires_and_a_new_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let places = places(dir.path(), &id);
        let now = 1_795_000_000;
        let made = make_report(&gathered(), &places, now).unwrap();
        assert!(made.offer.file.starts_with("gateway-diagnostics-gw1-2026"));
        assert!(made.offer.file.ends_with("Z.tar.gz.age"));
        assert_eq!(made.offer.expires_unix, now + 86_400);
        assert_eq!(made.recipient, id.to_public().to_string());
        let report = places.state.join(REPORT_DIR).join(&made.offer.file);
        let mode = std::fs::metadata(&report).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o400);
        assert_eq!(
            std::fs::metadata(&report).unwrap().len(),
            made.offer.size_bytes
        );
        let offer = Offer::load(&places.state).unwrap();
        assert!(offer.matches(&made.password));
        // It decrypts with the identity and holds the log.
        let plain = age::decrypt(&id, &std::fs::read(&report).unwrap()).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&plain[..]));
        let mut log = String::new();
        for e in tar.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_str() == Some("logs/init.log") {
                e.read_to_string(&mut log).unwrap();
            }
        }
        assert_eq!(log, "[ 0.100] init: started\n");

        assert_eq!(waiting(&places.state, now + 10).unwrap(), made.offer);
        // A second report replaces the first: one file, a new password.
        let again = make_report(&gathered(), &places, now + 20).unwrap();
        assert_ne!(again.password, made.password);
        let files: Vec<_> = std::fs::read_dir(places.state.join(REPORT_DIR))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(files, [std::ffi::OsString::from(&again.offer.file)]);
        assert!(!Offer::load(&places.state).unwrap().matches(&made.password));
        // Expired: withdrawn, files gone.
        assert_eq!(waiting(&places.state, now + 20 + 86_400), None);
        assert!(Offer::load(&places.state).is_none());
        assert_eq!(
            std::fs::read_dir(places.state.join(REPORT_DIR))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_downloaded_report_is_no_longer_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let places = places(dir.path(), &id);
        let made = make_report(&gathered(), &places, 1_795_000_000).unwrap();
        // The SFTP server removes the offer when a download ends.
        std::fs::remove_file(places.state.join(offer::OFFER_FILE)).unwrap();
        assert_eq!(waiting(&places.state, 1_795_000_001), None);
        assert!(!places.state.join(REPORT_DIR).join(made.offer.file).exists());
    }

    #[test]
    fn without_a_support_key_nothing_is_offered() {
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let mut places = places(dir.path(), &id);
        places.recipient_file = dir.path().join("missing.pub");
        let e = make_report(&gathered(), &places, 1_795_000_000).unwrap_err();
        assert!(e.to_string().contains("support key"), "{e}");
        assert!(Offer::load(&places.state).is_none());
    }
}
