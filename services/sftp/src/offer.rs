//! The offer: `<state_dir>/offer.json`, written by PID 1 when a report is
//! waiting, deleted by PID 1 when it expires and by this server when the
//! report has been downloaded.
//!
//! ```json
//! {"user": "diagnostics", "salt": "<hex of 16 bytes>",
//!  "password_sha256": "<hex of sha256(salt || password)>",
//!  "expires_unix": 1700000000, "file": "<name inside report/>"}
//! ```
//!
//! Only the salted hash is stored, so reading the state directory does not
//! give the password away. The file changes under the server, so it is read
//! afresh at every sign-in; anything that does not parse counts as no offer
//! (the safe direction: nobody gets in). Verification takes the time as a
//! value so the tests can set it.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The only user an offer may name.
pub const USER: &str = "diagnostics";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct OfferFile {
    user: String,
    salt: String,
    password_sha256: String,
    expires_unix: u64,
    file: String,
}

/// A parsed, checked offer.
#[derive(Clone, PartialEq, Eq)]
pub struct Offer {
    pub user: String,
    salt: Vec<u8>,
    password_sha256: [u8; 32],
    pub expires_unix: u64,
    /// A plain file name inside `report/`.
    pub file: String,
}

// The hash is not a secret like the password, but it is what an attacker
// would brute-force: keep it out of logs all the same.
impl std::fmt::Debug for Offer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offer")
            .field("user", &self.user)
            .field("expires_unix", &self.expires_unix)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("offer.json: {0}")]
    Json(String),
    #[error("offer.json: user: {0:?} is not \"diagnostics\"")]
    User(String),
    #[error("offer.json: salt: not the hex of 16 bytes")]
    Salt,
    #[error("offer.json: password_sha256: not the hex of 32 bytes")]
    Hash,
    #[error("offer.json: file: {0:?} is not a plain file name")]
    File(String),
}

/// Why a sign-in was refused (logged; never shown to the client, which only
/// sees a rejection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    WrongUser,
    Expired,
    WrongPassword,
}

impl Offer {
    pub fn parse(text: &str) -> Result<Self, OfferError> {
        let raw: OfferFile =
            serde_json::from_str(text).map_err(|e| OfferError::Json(e.to_string()))?;
        if raw.user != USER {
            return Err(OfferError::User(raw.user));
        }
        let salt = hex(&raw.salt)
            .filter(|s| s.len() == 16)
            .ok_or(OfferError::Salt)?;
        let password_sha256 = hex(&raw.password_sha256)
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
            .ok_or(OfferError::Hash)?;
        if !is_plain_name(&raw.file) {
            return Err(OfferError::File(raw.file));
        }
        Ok(Offer {
            user: raw.user,
            salt,
            password_sha256,
            expires_unix: raw.expires_unix,
            file: raw.file,
        })
    }

    /// Reads `<state_dir>/offer.json`. `Ok(None)` when there is none;
    /// an error when it is there but unreadable or malformed (callers treat
    /// both as "no offer", but log the error for the administrator).
    pub fn read(state_dir: &Path) -> Result<Option<Self>, OfferError> {
        // The offer is a few hundred bytes; a bigger file is not PID 1's.
        const MAX: u64 = 4096;
        use std::io::Read;
        let file = match std::fs::File::open(state_dir.join("offer.json")) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(OfferError::Json(format!("read: {e}"))),
        };
        let mut text = String::new();
        file.take(MAX + 1)
            .read_to_string(&mut text)
            .map_err(|e| OfferError::Json(format!("read: {e}")))?;
        if text.len() as u64 > MAX {
            return Err(OfferError::Json(format!("larger than {MAX} bytes")));
        }
        Self::parse(&text).map(Some)
    }

    /// Checks a sign-in at `now_unix`. The hash comparison is constant-time
    /// so the time taken does not tell how much of a guess was right.
    pub fn verify(&self, user: &str, password: &str, now_unix: u64) -> Verdict {
        let mut hasher = Sha256::new();
        hasher.update(&self.salt);
        hasher.update(password.as_bytes());
        let digest = hasher.finalize();
        let matches: bool = digest.as_slice().ct_eq(&self.password_sha256).into();
        if user != self.user || user != USER {
            Verdict::WrongUser
        } else if now_unix >= self.expires_unix {
            Verdict::Expired
        } else if !matches {
            Verdict::WrongPassword
        } else {
            Verdict::Accept
        }
    }
}

/// A file name `report/<name>` can only mean one file: no separator, not
/// `.` or `..`, no NUL, not empty.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The offer PID 1 would write for `password`, as JSON.
    pub(crate) fn offer_json(password: &str, expires_unix: u64, file: &str) -> String {
        let salt = [7u8; 16];
        let mut h = Sha256::new();
        h.update(salt);
        h.update(password.as_bytes());
        let to_hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        format!(
            r#"{{"user":"diagnostics","salt":"{}","password_sha256":"{}","expires_unix":{expires_unix},"file":"{file}"}}"#,
            to_hex(&salt),
            to_hex(&h.finalize())
        )
    }

    #[test]
    fn good_wrong_and_expired() {
        let offer = Offer::parse(&offer_json("correct horse", 1000, "r.tar")).unwrap();
        assert_eq!(offer.file, "r.tar");
        assert_eq!(
            offer.verify("diagnostics", "correct horse", 999),
            Verdict::Accept
        );
        assert_eq!(
            offer.verify("diagnostics", "correct horsE", 999),
            Verdict::WrongPassword
        );
        assert_eq!(offer.verify("diagnostics", "", 999), Verdict::WrongPassword);
        assert_eq!(
            offer.verify("root", "correct horse", 999),
            Verdict::WrongUser
        );
        assert_eq!(
            offer.verify("diagnostics", "correct horse", 1000),
            Verdict::Expired
        );
        assert_eq!(
            offer.verify("diagnostics", "correct horse", 5000),
            Verdict::Expired
        );
    }

    #[test]
    fn the_debug_form_leaves_out_the_hash() {
        let offer = Offer::parse(&offer_json("pw", 1, "r")).unwrap();
        let text = format!("{offer:?}");
        assert!(
            !text.contains("password") && !text.contains("salt"),
            "{text}"
        );
    }

    #[test]
    fn malformed_offers_are_refused() {
        let good = offer_json("pw", 1000, "r.tar");
        assert!(Offer::parse(&good.replace("diagnostics", "root"))
            .is_err_and(|e| matches!(e, OfferError::User(_))));
        assert!(matches!(
            Offer::parse(&good.replace("\"salt\":\"07", "\"salt\":\"")),
            Err(OfferError::Salt)
        ));
        assert!(matches!(
            Offer::parse(&good.replace("\"salt\":\"07", "\"salt\":\"zz")),
            Err(OfferError::Salt)
        ));
        assert!(matches!(
            Offer::parse(&good.replace("\"password_sha256\":\"", "\"password_sha256\":\"00")),
            Err(OfferError::Hash)
        ));
        for file in ["", ".", "..", "../offer.json", "a/b", "/etc/passwd"] {
            assert!(
                matches!(
                    Offer::parse(&offer_json("pw", 1000, file)),
                    Err(OfferError::File(_))
                ),
                "{file:?}"
            );
        }
        assert!(matches!(Offer::parse("{"), Err(OfferError::Json(_))));
        assert!(matches!(Offer::parse(""), Err(OfferError::Json(_))));
        assert!(matches!(
            Offer::parse(&good.replace("}", ",\"extra\":1}")),
            Err(OfferError::Json(_))
        ));
        assert!(matches!(
            Offer::parse(&good.replace("1000", "-1")),
            Err(OfferError::Json(_))
        ));
    }

    #[test]
    fn reading_a_missing_or_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Offer::read(dir.path()), Ok(None));
        std::fs::write(dir.path().join("offer.json"), "not json").unwrap();
        assert!(Offer::read(dir.path()).is_err());
        std::fs::write(dir.path().join("offer.json"), " ".repeat(10_000)).unwrap();
        assert!(Offer::read(dir.path()).is_err());
        std::fs::write(dir.path().join("offer.json"), offer_json("pw", 5, "f")).unwrap();
        assert_eq!(Offer::read(dir.path()).unwrap().unwrap().file, "f");
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(hex("00ff10Ab"), Some(vec![0, 255, 16, 171]));
        assert_eq!(hex("0"), None);
        assert_eq!(hex("g0"), None);
        assert_eq!(hex("é0"), None);
        assert_eq!(hex(""), Some(vec![]));
    }
}
