//! The OVF manifest (`.mf`, DSP0243 "OVF Package" section): one line per
//! file of the package, `SHA256(<file name>)= <64 lowercase hex digits>`,
//! the form VMware's ovftool writes and vSphere checks on import.

use std::io::{self, Read};

use sha2::{Digest, Sha256};
use thiserror::Error;

/// One manifest line's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// Lowercase hex.
    pub sha256: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest line {line}: {text:?} is not `SHA256(<file>)= <64 hex digits>`")]
    Malformed { line: usize, text: String },
    #[error("manifest lists {name} twice")]
    Duplicate { name: String },
}

/// The manifest text for `entries`, in their order.
pub fn format(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| format!("SHA256({})= {}\n", e.name, e.sha256))
        .collect()
}

/// Reads a manifest. Only SHA-256 lines are accepted: SHA-1 manifests are
/// what old tools wrote, and this package never carries one.
pub fn parse(text: &str) -> Result<Vec<Entry>, ManifestError> {
    let mut entries: Vec<Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let malformed = || ManifestError::Malformed {
            line: i + 1,
            text: line.to_string(),
        };
        let rest = line.strip_prefix("SHA256(").ok_or_else(malformed)?;
        let (name, digest) = rest.rsplit_once(")= ").ok_or_else(malformed)?;
        if name.is_empty()
            || digest.len() != 64
            || !digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(malformed());
        }
        if entries.iter().any(|e| e.name == name) {
            return Err(ManifestError::Duplicate { name: name.into() });
        }
        entries.push(Entry {
            name: name.into(),
            sha256: digest.into(),
        });
    }
    Ok(entries)
}

/// SHA-256 of everything `r` yields, as lowercase hex, and the byte count.
pub fn sha256_hex(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex(&h.finalize()), n))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc() {
        // FIPS 180-2, appendix B.1.
        let (d, n) = sha256_hex(&b"abc"[..]).unwrap();
        assert_eq!(
            d,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(n, 3);
    }

    #[test]
    fn round_trip() {
        let entries = vec![
            Entry {
                name: "gateway-0.1.0.ovf".into(),
                sha256: "a".repeat(64),
            },
            Entry {
                name: "gateway-0.1.0-disk1.vmdk".into(),
                sha256: "0123456789abcdef".repeat(4),
            },
        ];
        let text = format(&entries);
        assert_eq!(
            text.lines().next().unwrap(),
            format!("SHA256(gateway-0.1.0.ovf)= {}", "a".repeat(64))
        );
        assert_eq!(parse(&text).unwrap(), entries);
        // CRLF line ends (a manifest edited on Windows) read the same.
        assert_eq!(parse(&text.replace('\n', "\r\n")).unwrap(), entries);
    }

    #[test]
    fn refusals() {
        for bad in [
            "SHA1(a.ovf)= 0123456789abcdef0123456789abcdef01234567",
            "SHA256(a.ovf)=0123",
            &format!("SHA256(a.ovf)= {}", "A".repeat(64)),
            &format!("SHA256()= {}", "a".repeat(64)),
            &format!("SHA256(a.ovf) = {}", "a".repeat(64)),
        ] {
            assert!(
                matches!(parse(bad), Err(ManifestError::Malformed { line: 1, .. })),
                "{bad}"
            );
        }
        let line = format!("SHA256(a.ovf)= {}\n", "a".repeat(64));
        assert_eq!(
            parse(&line.repeat(2)),
            Err(ManifestError::Duplicate {
                name: "a.ovf".into()
            })
        );
    }
}
