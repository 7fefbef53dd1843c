//! The diagnostics report's archive: a gzip'd tar of what support needs
//! (configuration with secrets redacted, status, stats, logs, the last
//! upstream capture), encrypted with age to the support key as it is
//! written. Everything streams: logs and a capture may be tens of MiB and
//! PID 1 runs in 256 MiB.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Why the support key could not be read, or the archive written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the support key file is empty")]
    EmptyKey,
    #[error("the support key {line:?} is not an age X25519 public key: {reason}")]
    BadKey { line: String, reason: String },
    #[error("encrypt: {0}")]
    Encrypt(age::EncryptError),
    /// Writing `what` (a file of the archive, or a layer: "encrypt",
    /// "compress", "archive", "write") failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// What goes into a report; gathered by the caller.
pub struct Inputs {
    /// A short text naming the appliance, the time and the contents.
    pub readme: String,
    /// `key=value` lines, secrets already redacted (`Config::to_pairs`).
    pub config: String,
    /// The control API's `status`, `stats` and `platform` answers (JSON).
    pub status: String,
    pub stats: String,
    pub platform: Option<String>,
    /// The log directory: every file in it goes under `logs/`.
    pub logs: PathBuf,
    /// The last complete upstream capture, if any.
    pub capture: Option<PathBuf>,
}

/// Parses an age X25519 recipient (`age1...`), the first non-comment line
/// of `text`.
pub fn recipient(text: &str) -> Result<age::x25519::Recipient, ReportError> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or(ReportError::EmptyKey)?;
    age::x25519::Recipient::from_str(line).map_err(|e| ReportError::BadKey {
        line: line.to_owned(),
        reason: e.to_string(),
    })
}

fn add_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    mtime: u64,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, data)
}

/// A file copied in under `name`. A log grows while it is read: the header
/// takes the size at open, and only that many bytes are copied.
fn add_file<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    path: &Path,
    mtime: u64,
) -> std::io::Result<()> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut header = tar::Header::new_gnu();
    header.set_size(len);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, file.take(len))
}

/// Writes the encrypted archive of `inputs` into `out`; returns the names
/// of the files inside, in order.
pub fn write(
    inputs: &Inputs,
    recipient: &age::x25519::Recipient,
    now_unix: u64,
    out: impl Write,
) -> Result<Vec<String>, ReportError> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |source: std::io::Error| ReportError::Io { what, source }
    };
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
            .map_err(ReportError::Encrypt)?;
    let sealed = encryptor.wrap_output(out).map_err(io("encrypt"))?;
    let gz = flate2::write::GzEncoder::new(sealed, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut names = Vec::new();
    let mut texts = vec![
        ("README.txt", inputs.readme.as_str()),
        ("config.txt", inputs.config.as_str()),
        ("status.json", inputs.status.as_str()),
        ("stats.json", inputs.stats.as_str()),
    ];
    if let Some(p) = &inputs.platform {
        texts.push(("platform.json", p));
    }
    for (name, text) in texts {
        add_bytes(&mut tar, name, now_unix, text.as_bytes()).map_err(io(name))?;
        names.push(name.to_owned());
    }
    let mut logs: Vec<_> = std::fs::read_dir(&inputs.logs)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    logs.sort();
    for path in logs {
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !path.is_file() {
            continue;
        }
        let name = format!("logs/{file}");
        // A log rotated away between the listing and the open is skipped.
        match add_file(&mut tar, &name, &path, now_unix) {
            Ok(()) => names.push(name),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&name)(e)),
        }
    }
    if let Some(capture) = &inputs.capture {
        let name = "capture/upstream.pcap";
        match add_file(&mut tar, name, capture, now_unix) {
            Ok(()) => names.push(name.to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(name)(e)),
        }
    }
    let gz = tar.into_inner().map_err(io("archive"))?;
    let sealed = gz.finish().map_err(io("compress"))?;
    let mut out = sealed.finish().map_err(io("encrypt"))?;
    out.flush().map_err(io("write"))?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_archive_decrypts_with_the_identity_and_holds_every_input() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        std::fs::write(logs.join("proxy.log"), "[ 1.000] proxy: listening\n").unwrap();
        std::fs::write(logs.join("proxy.log.1"), "older\n").unwrap();
        let capture = dir.path().join("upstream.pcap");
        std::fs::write(&capture, b"\xd4\xc3\xb2\xa1pcap").unwrap();
        let identity = age::x25519::Identity::generate();
        let inputs = Inputs {
            readme: "report\n".into(),
            config: "upstream.password=********\n".into(),
            status: "{}".into(),
            stats: "{}".into(),
            platform: None,
            logs,
            capture: Some(capture),
        };
        let mut sealed = Vec::new();
        let names = write(&inputs, &identity.to_public(), 1_800_000_000, &mut sealed).unwrap();
        assert_eq!(
            names,
            [
                "README.txt",
                "config.txt",
                "status.json",
                "stats.json",
                "logs/proxy.log",
                "logs/proxy.log.1",
                "capture/upstream.pcap"
            ]
        );
        // Nothing readable without the key.
        assert!(!sealed.windows(9).any(|w| w == b"listening"));
        let plain = age::decrypt(&identity, &sealed).expect("decrypts with the support identity");
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&plain[..]));
        let mut found = Vec::new();
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut text = Vec::new();
            entry.read_to_end(&mut text).unwrap();
            found.push((entry.path().unwrap().display().to_string(), text));
        }
        assert_eq!(found.len(), 7);
        assert_eq!(found[4].1, b"[ 1.000] proxy: listening\n");
        assert_eq!(found[6].1, b"\xd4\xc3\xb2\xa1pcap");
    }

    #[test]
    fn a_bad_support_key_is_named() {
        assert!(recipient("# comment\nage1notakey\n")
            .unwrap_err()
            .to_string()
            .contains("age1notakey"));
        assert!(recipient("\n").unwrap_err().to_string().contains("empty"));
        let id = age::x25519::Identity::generate();
        let text = format!("# support\n{}\n", id.to_public());
        assert_eq!(
            recipient(&text).unwrap().to_string(),
            id.to_public().to_string()
        );
    }
}
