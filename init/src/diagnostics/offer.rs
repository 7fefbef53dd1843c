//! The offer of a report to the SFTP server (services/sftp): its file name,
//! the user, the expiry and the one-time password as a salted SHA-256 (the
//! password itself is only in the answer to the administrator). The SFTP
//! server reads the file at every login and removes it when a download
//! ends, which is how the password expires after one use.

use std::path::Path;

use gateway_fsutil::{write_atomic, AtomicWriteError, WriteOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The offer file's name in the SFTP server's state directory.
pub const OFFER_FILE: &str = "offer.json";

/// `offer.json`, as services/sftp reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub user: String,
    /// Hex of 16 random bytes.
    pub salt: String,
    /// Hex of SHA-256(salt bytes || password bytes).
    pub password_sha256: String,
    pub expires_unix: u64,
    /// The report's name in `report/`.
    pub file: String,
}

/// Why an offer or its password could not be made or saved.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error("random bytes: {0}")]
    Random(getrandom::Error),
    #[error("{0}")]
    Serialize(#[from] serde_json::Error),
    #[error("{0}")]
    Save(#[from] AtomicWriteError),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random(n: usize) -> Result<Vec<u8>, OfferError> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(OfferError::Random)?;
    Ok(bytes)
}

/// Letters and digits that cannot be taken for one another when read off
/// a console (no 0/o, 1/l/i).
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A one-time password: four groups of four characters (about 79 bits),
/// easy to read to someone over the phone.
pub fn new_password() -> Result<String, OfferError> {
    let bytes = random(16)?;
    let mut out = String::new();
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        // 256 is not a multiple of 31: the bias (1 in 8 for a few
        // letters) costs a fraction of a bit of the 79.
        out.push(ALPHABET[usize::from(*b) % ALPHABET.len()] as char);
    }
    Ok(out)
}

impl Offer {
    pub fn new(
        user: &str,
        password: &str,
        file: &str,
        expires_unix: u64,
    ) -> Result<Offer, OfferError> {
        let salt = random(16)?;
        Ok(Offer {
            user: user.to_owned(),
            salt: hex(&salt),
            password_sha256: digest(&salt, password),
            expires_unix,
            file: file.to_owned(),
        })
    }

    /// Whether `password` is the offer's (for tests; the SFTP server has
    /// its own check).
    pub fn matches(&self, password: &str) -> bool {
        let salt: Option<Vec<u8>> = (0..self.salt.len() / 2)
            .map(|i| u8::from_str_radix(self.salt.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        salt.is_some_and(|s| digest(&s, password) == self.password_sha256)
    }

    /// Writes it into `dir` atomically (temp file, fsync, rename, fsync of
    /// the directory), owned by the SFTP server's user, mode 0600.
    pub fn save(&self, dir: &Path, uid: u32) -> Result<(), OfferError> {
        let text = serde_json::to_string(self)?;
        write_atomic(
            &dir.join(OFFER_FILE),
            text.as_bytes(),
            &WriteOptions::private().owner(uid, uid),
        )?;
        Ok(())
    }

    /// The offer in `dir` (the SFTP unit's: a link there is not followed).
    pub fn load(dir: &Path) -> Option<Offer> {
        let text = super::unitdir::UnitDir::open(dir)
            .ok()?
            .read(OFFER_FILE, 64 * 1024)
            .ok()?;
        serde_json::from_slice(&text).ok()
    }
}

fn digest(salt: &[u8], password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn passwords_are_four_readable_groups_and_differ() {
        let a = new_password().unwrap();
        let b = new_password().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 19);
        let groups: Vec<&str> = a.split('-').collect();
        assert_eq!(groups.len(), 4);
        assert!(groups
            .iter()
            .all(|g| g.len() == 4 && g.bytes().all(|c| ALPHABET.contains(&c))));
    }

    #[test]
    fn an_offer_holds_no_password_and_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let password = new_password().unwrap();
        let offer = Offer::new("diagnostics", &password, "r.tar.gz.age", 1_800_000_000).unwrap();
        let uid = nix::unistd::getuid().as_raw();
        offer.save(dir.path(), uid).unwrap();
        let text = std::fs::read_to_string(dir.path().join(OFFER_FILE)).unwrap();
        assert!(!text.contains(&password));
        let mode = std::fs::metadata(dir.path().join(OFFER_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = Offer::load(dir.path()).unwrap();
        assert_eq!(loaded, offer);
        assert!(loaded.matches(&password));
        assert!(!loaded.matches("abcd-efgh-jkmn-pqrs"));
        // The same password with another salt gives another digest.
        let again = Offer::new("diagnostics", &password, "r.tar.gz.age", 1).unwrap();
        assert_ne!(again.password_sha256, offer.password_sha256);
    }
}
