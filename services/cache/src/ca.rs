//! The appliance CA: the certificate agents trust so the cache can terminate
//! their TLS. Generated at first start (ECDSA P-256: every agent OS accepts
//! it, and signing a leaf costs microseconds) and kept in the CA directory,
//! or a customer-signed chain + key installed in its place after checks that
//! say in words what is wrong. The files:
//!
//! - `ca.bundle`: the private key (PKCS#8 PEM) then the chain, the
//!   certificate that signs leaves first; mode 0600, never logged. One file,
//!   replaced whole, so a power cut leaves the old CA or the new one: the
//!   key and the chain used to be two files written one after the other,
//!   and a cut between them left a pair the cache refused at every start;
//! - `ca.pem`: the chain alone, for agents and tools, written from the
//!   bundle after it and refreshed from it at each start (never read back);
//! - `.lock`: held while the CA is generated, installed or loaded, so two
//!   processes (the service starting and PID 1's `gateway-cache ca export`)
//!   never generate two CAs of which one is lost.
//!
//! A directory of the earlier layout (`ca.pem` and `ca.key`) is moved to a
//! bundle the first time it is loaded.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use gateway_fsutil::{write_atomic, AtomicWriteError, WriteOptions};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

pub const BUNDLE_FILE: &str = "ca.bundle";
pub const CHAIN_FILE: &str = "ca.pem";
/// The key's file in the earlier layout, read once to make the bundle.
pub const LEGACY_KEY_FILE: &str = "ca.key";
const LOCK_FILE: &str = ".lock";

/// A generated CA is valid this long (agents keep trusting it across years
/// of updates; the administrator can replace it at any time).
const GENERATED_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("the chain has no PEM certificate")]
    NoCertificate,
    #[error("the chain's PEM cannot be read: {0}")]
    ChainPem(String),
    #[error("certificate {index} of the chain cannot be parsed: {reason}")]
    BadCertificate { index: usize, reason: String },
    #[error(
        "the key cannot be read (expected an unencrypted PEM private key: PKCS#8, EC or RSA): {0}"
    )]
    BadKey(String),
    #[error("the key does not match the first certificate of the chain")]
    KeyMismatch,
    #[error("the first certificate ({subject}) is not a CA (basicConstraints CA:TRUE is missing)")]
    NotCa { subject: String },
    #[error("the first certificate ({subject}) may not sign certificates (its keyUsage lacks keyCertSign)")]
    NoCertSign { subject: String },
    #[error("certificate {index} of the chain ({subject}) expired on {not_after}")]
    Expired {
        index: usize,
        subject: String,
        not_after: String,
    },
    #[error("certificate {index} of the chain ({subject}) is not valid before {not_before}")]
    NotYetValid {
        index: usize,
        subject: String,
        not_before: String,
    },
    #[error("generate the CA: {0}")]
    Generate(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
    #[error("{present} exists but {missing} does not; install a chain and key, or remove both to generate a new CA")]
    HalfPresent { present: PathBuf, missing: PathBuf },
    #[error("sign a certificate for {host}: {reason}")]
    Mint { host: String, reason: String },
}

/// A usable CA: its chain and the issuer that signs leaves.
pub struct Ca {
    chain: Vec<CertificateDer<'static>>,
    chain_pem: String,
    issuer: Issuer<'static, KeyPair>,
    fingerprint: [u8; 32],
    subject: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Ca")
            .field("subject", &self.subject)
            .field("fingerprint", &self.fingerprint_hex())
            .finish()
    }
}

impl Ca {
    /// The chain as PEM, what agents import.
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// SHA-256 of the signing certificate's DER, as `AB:CD:...` (the form
    /// `openssl x509 -fingerprint -sha256` and the agent OSes show).
    pub fn fingerprint_hex(&self) -> String {
        self.fingerprint
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// The key as PKCS#8 PEM (what [`install`] writes, whatever form it
    /// was given in).
    fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

fn time_of(t: SystemTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from(t)
}

/// Checks a chain and key (PEM) and makes a [`Ca`] of them: the key matches
/// the first certificate, which is a CA allowed to sign certificates, and no
/// certificate of the chain is expired or not yet valid at `now`.
pub fn validate(chain_pem: &str, key_pem: &str, now: SystemTime) -> Result<Ca, CaError> {
    check(chain_pem, key_pem, now, Window::Refuse).map(|(ca, _)| ca)
}

/// What a certificate outside its validity window does to [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    /// Refused (installing: the administrator hears it at once).
    Refuse,
    /// Reported back, the CA made all the same (loading at start or
    /// reload: see [`load`]).
    Report,
}

/// [`validate`]'s checks; with [`Window::Report`] the validity-window
/// errors come back beside the CA instead of refusing it.
fn check(
    chain_pem: &str,
    key_pem: &str,
    now: SystemTime,
    window: Window,
) -> Result<(Ca, Vec<CaError>), CaError> {
    let mut outside = Vec::new();
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaError::ChainPem(e.to_string()))?;
    if chain.is_empty() {
        return Err(CaError::NoCertificate);
    }
    let key = read_key(key_pem)?;
    let now_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut first_subject = String::new();
    for (index, der) in chain.iter().enumerate() {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| CaError::BadCertificate {
                index: index + 1,
                reason: e.to_string(),
            })?;
        let subject = cert.subject().to_string();
        let validity = cert.validity();
        let out_of_window = if validity.not_after.timestamp() < now_secs {
            Some(CaError::Expired {
                index: index + 1,
                subject: subject.clone(),
                not_after: validity.not_after.to_string(),
            })
        } else if validity.not_before.timestamp() > now_secs {
            Some(CaError::NotYetValid {
                index: index + 1,
                subject: subject.clone(),
                not_before: validity.not_before.to_string(),
            })
        } else {
            None
        };
        match (out_of_window, window) {
            (Some(e), Window::Refuse) => return Err(e),
            (Some(e), Window::Report) => outside.push(e),
            (None, _) => {}
        }
        if index > 0 {
            continue;
        }
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CaError::KeyMismatch);
        }
        let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        if !is_ca {
            return Err(CaError::NotCa { subject });
        }
        if let Ok(Some(ku)) = cert.key_usage() {
            if !ku.value.key_cert_sign() {
                return Err(CaError::NoCertSign { subject });
            }
        }
        first_subject = subject;
    }
    let issuer = Issuer::from_ca_cert_der(&chain[0], key).map_err(|e| CaError::BadCertificate {
        index: 1,
        reason: e.to_string(),
    })?;
    let fingerprint: [u8; 32] = Sha256::digest(chain[0].as_ref()).into();
    let chain_pem = chain
        .iter()
        .map(|c| pem_certificate(c.as_ref()))
        .collect::<String>();
    let ca = Ca {
        chain,
        chain_pem,
        issuer,
        fingerprint,
        subject: first_subject,
    };
    Ok((ca, outside))
}

/// A private key in PEM: PKCS#8, or SEC1 (`EC PRIVATE KEY`) and PKCS#1
/// (`RSA PRIVATE KEY`) rewrapped as PKCS#8, the one form ring reads.
fn read_key(key_pem: &str) -> Result<KeyPair, CaError> {
    use rustls_pki_types::PrivateKeyDer;
    let bad = |e: String| CaError::BadKey(e);
    let der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let attempts: Vec<Vec<u8>> = match &der {
        PrivateKeyDer::Pkcs8(k) => vec![k.secret_pkcs8_der().to_vec()],
        PrivateKeyDer::Pkcs1(k) => vec![pkcs8(RSA_ALG, k.secret_pkcs1_der())],
        // The curve is not known without parsing SEC1: ring refuses the
        // wrong one, so try the curves it signs with.
        PrivateKeyDer::Sec1(k) => [P256_ALG, P384_ALG]
            .iter()
            .map(|alg| pkcs8(alg, k.secret_sec1_der()))
            .collect(),
        _ => return Err(bad("unsupported key format".into())),
    };
    let mut last = String::new();
    for der in attempts {
        match KeyPair::try_from(der.as_slice()) {
            Ok(k) => return Ok(k),
            Err(e) => last = e.to_string(),
        }
    }
    Err(bad(last))
}

/// AlgorithmIdentifier contents: rsaEncryption with NULL parameters.
const RSA_ALG: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
/// id-ecPublicKey with prime256v1.
const P256_ALG: &[u8] = &[
    0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
    0x03, 0x01, 0x07,
];
/// id-ecPublicKey with secp384r1.
const P384_ALG: &[u8] = &[
    0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22,
];

/// DER tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// PKCS#8 PrivateKeyInfo (RFC 5208): version 0, the algorithm, the key.
fn pkcs8(alg: &[u8], key: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend(tlv(0x30, alg));
    body.extend(tlv(0x04, key));
    tlv(0x30, &body)
}

/// A certificate in PEM, lines of 64 characters.
fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A new self-signed CA (ECDSA P-256), as (chain PEM, key PEM). The subject
/// carries a random suffix so two appliances' CAs are told apart.
pub fn generate(now: SystemTime) -> Result<(String, String), CaError> {
    let gen = |e: rcgen::Error| CaError::Generate(e.to_string());
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    let tag: [u8; 32] = Sha256::digest(key.public_key_raw()).into();
    let tag: String = tag[..4].iter().map(|b| format!("{b:02x}")).collect();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Gateway Appliance CA {tag}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Gateway Appliance");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // A day back: an agent whose clock runs behind still accepts it.
    params.not_before = time_of(now - Duration::from_secs(86_400));
    params.not_after = time_of(now + GENERATED_VALIDITY);
    let cert = params.self_signed(&key).map_err(gen)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Holds `dir`'s lock (created as needed) until dropped.
fn lock(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, CaError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
        CaError::Io {
            path,
            source: e.into(),
        }
    })
}

/// Checks `chain_pem` and `key_pem` and, when they are fine, makes them the
/// CA of `dir` (the bundle 0600). Nothing is written when a check fails.
pub fn install(dir: &Path, chain_pem: &str, key_pem: &str, now: SystemTime) -> Result<Ca, CaError> {
    let ca = validate(chain_pem, key_pem, now)?;
    let _lock = lock(dir)?;
    write(dir, &ca)?;
    Ok(ca)
}

/// Makes `ca` the CA of `dir` (its lock held): the bundle in one atomic
/// replacement, then the chain's copy, then the earlier layout's key gone.
fn write(dir: &Path, ca: &Ca) -> Result<(), CaError> {
    let bundle = format!("{}{}", ca.key_pem(), ca.chain_pem);
    write_atomic(
        &dir.join(BUNDLE_FILE),
        bundle.as_bytes(),
        &WriteOptions::private(),
    )?;
    refresh_chain(dir, ca)?;
    remove_legacy_key(dir)
}

/// The earlier layout's key, once the bundle holds it.
fn remove_legacy_key(dir: &Path) -> Result<(), CaError> {
    let legacy = dir.join(LEGACY_KEY_FILE);
    match std::fs::remove_file(&legacy) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&legacy)(e)),
        _ => Ok(()),
    }
}

/// Rewrites `ca.pem` when it is not the chain of `ca` (a cut after the
/// bundle's replacement, or a hand edit).
fn refresh_chain(dir: &Path, ca: &Ca) -> Result<(), CaError> {
    let path = dir.join(CHAIN_FILE);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(ca.chain_pem.as_str()) {
        write_atomic(&path, ca.chain_pem.as_bytes(), &WriteOptions::default())?;
    }
    Ok(())
}

/// The CA of `dir`; generated and written there when there is none.
pub fn load_or_generate(dir: &Path, now: SystemTime) -> Result<Ca, CaError> {
    let _lock = lock(dir)?;
    if let Some(ca) = load_locked(dir, now)? {
        return Ok(ca);
    }
    let (chain, key) = generate(now)?;
    let ca = validate(&chain, &key, now)?;
    write(dir, &ca)?;
    tracing::info!(
        "generated the appliance CA {} (SHA-256 {})",
        ca.subject,
        ca.fingerprint_hex()
    );
    Ok(ca)
}

/// The CA of `dir`, checked as [`validate`] does but for the validity
/// window: a certificate expired or not yet valid is logged as a warning
/// and the CA loaded all the same. Refusing it would stop the service at
/// boot when the clock is behind (no RTC, NTP not yet synchronised) or when
/// an installed customer CA has since expired, and init would mark the unit
/// failed; the window is enforced when a CA is installed ([`install`]).
/// A key that does not match, or a certificate that is not a CA, is still
/// refused: nothing valid can be signed with them.
pub fn load(dir: &Path, now: SystemTime) -> Result<Ca, CaError> {
    let _lock = lock(dir)?;
    load_locked(dir, now)?.ok_or_else(|| {
        let path = dir.join(BUNDLE_FILE);
        CaError::Io {
            path,
            source: std::io::ErrorKind::NotFound.into(),
        }
    })
}

/// [`load`] with the lock held; `None` when `dir` holds no CA at all.
fn load_locked(dir: &Path, now: SystemTime) -> Result<Option<Ca>, CaError> {
    let Some((ca, outside)) = load_reporting(dir, now)? else {
        return Ok(None);
    };
    for e in outside {
        tracing::warn!(
            "the appliance CA in {}: {e}; loaded anyway (is the clock right? if not, the CA needs replacing: agents refuse certificates outside their validity)",
            dir.display()
        );
    }
    Ok(Some(ca))
}

/// The CA of `dir` (its lock held), with the validity-window errors
/// returned instead of logged; the earlier layout moved to a bundle.
fn load_reporting(dir: &Path, now: SystemTime) -> Result<Option<(Ca, Vec<CaError>)>, CaError> {
    let bundle_path = dir.join(BUNDLE_FILE);
    let chain_path = dir.join(CHAIN_FILE);
    let key_path = dir.join(LEGACY_KEY_FILE);
    match std::fs::read_to_string(&bundle_path) {
        Ok(bundle) => {
            // The key's PEM block, then the certificates'.
            let at = bundle
                .find("-----BEGIN CERTIFICATE-----")
                .unwrap_or(bundle.len());
            let (key, chain) = bundle.split_at(at);
            let loaded = check(chain, key, now, Window::Report)?;
            refresh_chain(dir, &loaded.0)?;
            remove_legacy_key(dir)?;
            return Ok(Some(loaded));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&bundle_path)(e)),
        Err(_) => {}
    }
    match (chain_path.exists(), key_path.exists()) {
        (false, false) => Ok(None),
        (true, true) => {
            let chain = std::fs::read_to_string(&chain_path).map_err(io_err(&chain_path))?;
            let key = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
            let loaded = check(&chain, &key, now, Window::Report)?;
            write(dir, &loaded.0)?;
            Ok(Some(loaded))
        }
        (true, false) => Err(CaError::HalfPresent {
            present: chain_path,
            missing: key_path,
        }),
        (false, true) => Err(CaError::HalfPresent {
            present: key_path,
            missing: chain_path,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_params(is_ca: bool, not_after: SystemTime) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "Test");
        if is_ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        p.not_before = time_of(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000));
        p.not_after = time_of(not_after);
        p
    }

    #[test]
    fn a_generated_ca_is_valid_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let a = load_or_generate(dir.path(), now).unwrap();
        let b = load_or_generate(dir.path(), now).unwrap();
        assert_eq!(a.fingerprint_hex(), b.fingerprint_hex());
        assert_eq!(a.fingerprint_hex().len(), 32 * 3 - 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(BUNDLE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(a.chain_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(!format!("{a:?}").contains("PRIVATE"));
    }

    #[test]
    fn refusals_say_why() {
        let now = SystemTime::now();
        let key = KeyPair::generate().unwrap();
        let other = KeyPair::generate().unwrap();
        let later = now + Duration::from_secs(86_400);
        let ca = ca_params(true, later).self_signed(&key).unwrap().pem();
        let leaf = ca_params(false, later).self_signed(&key).unwrap().pem();
        let expired = ca_params(true, now - Duration::from_secs(86_400))
            .self_signed(&key)
            .unwrap()
            .pem();
        let k = key.serialize_pem();
        assert!(validate(&ca, &k, now).is_ok());
        for (chain, key, needle) in [
            (ca.as_str(), other.serialize_pem(), "does not match"),
            (leaf.as_str(), k.clone(), "is not a CA"),
            (expired.as_str(), k.clone(), "expired on"),
            ("", k.clone(), "no PEM certificate"),
            (ca.as_str(), "junk".into(), "the key cannot be read"),
        ] {
            let err = validate(chain, &key, now).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(install(dir.path(), &leaf, &k, now).is_err());
        assert!(
            !dir.path().join(BUNDLE_FILE).exists() && !dir.path().join(CHAIN_FILE).exists(),
            "nothing written"
        );
    }

    /// Writes `chain` and `key` as the CA files of `dir`, unchecked (what
    /// a CA installed earlier looks like on disk).
    fn put(dir: &Path, chain: &str, key: &str) {
        std::fs::write(dir.join(BUNDLE_FILE), format!("{key}{chain}")).unwrap();
        std::fs::write(dir.join(CHAIN_FILE), chain).unwrap();
    }

    #[test]
    fn a_directory_of_the_two_file_layout_moves_to_a_bundle() {
        let now = SystemTime::now();
        let (chain, key) = generate(now).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CHAIN_FILE), &chain).unwrap();
        std::fs::write(dir.path().join(LEGACY_KEY_FILE), &key).unwrap();
        let before = validate(&chain, &key, now).unwrap().fingerprint_hex();
        assert_eq!(
            load_or_generate(dir.path(), now).unwrap().fingerprint_hex(),
            before
        );
        assert!(dir.path().join(BUNDLE_FILE).exists());
        assert!(!dir.path().join(LEGACY_KEY_FILE).exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CHAIN_FILE)).unwrap(),
            chain
        );
        assert_eq!(load(dir.path(), now).unwrap().fingerprint_hex(), before);
    }

    /// What a power cut leaves, at each point of an install over an
    /// earlier CA: the old CA or the new one, never a refused pair (a cut
    /// between the key and the chain, written as two files, used to leave
    /// a key that did not match its chain, refused at every start).
    #[test]
    fn a_cut_during_an_install_leaves_the_old_ca_or_the_new_one() {
        let now = SystemTime::now();
        let dir = tempfile::tempdir().unwrap();
        let old = load_or_generate(dir.path(), now).unwrap();
        let (chain, key) = generate(now).unwrap();
        let new = validate(&chain, &key, now).unwrap();
        // Cut before the bundle's rename: its temporary file is all there
        // is of the new CA.
        let tmp = dir.path().join(format!(".{BUNDLE_FILE}.4242.0.tmp"));
        std::fs::write(&tmp, &key[..key.len() / 2]).unwrap();
        assert_eq!(
            load(dir.path(), now).unwrap().fingerprint_hex(),
            old.fingerprint_hex()
        );
        // Cut after the bundle's rename, before the chain's copy: the new
        // CA, and `ca.pem` repaired to its chain.
        std::fs::write(dir.path().join(BUNDLE_FILE), format!("{key}{chain}")).unwrap();
        assert_eq!(
            load(dir.path(), now).unwrap().fingerprint_hex(),
            new.fingerprint_hex()
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CHAIN_FILE)).unwrap(),
            chain
        );
    }

    /// The service starting and PID 1's `ca export` at once on an empty
    /// directory: one CA, the one on disk, for every caller.
    #[test]
    fn concurrent_first_loads_generate_one_ca() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let prints: Vec<String> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_generate(dir.path(), now).unwrap().fingerprint_hex()))
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let on_disk = load(dir.path(), now).unwrap().fingerprint_hex();
        assert!(
            prints.iter().all(|p| *p == on_disk),
            "{prints:?} vs {on_disk}"
        );
    }

    #[test]
    fn a_ca_outside_its_validity_loads_with_a_warning() {
        let now = SystemTime::now();
        let key = KeyPair::generate().unwrap();
        let k = key.serialize_pem();
        let day = Duration::from_secs(86_400);
        let dir = tempfile::tempdir().unwrap();
        // Expired since (a customer CA not renewed).
        let expired = ca_params(true, now - day).self_signed(&key).unwrap().pem();
        put(dir.path(), &expired, &k);
        let (ca, outside) = load_reporting(dir.path(), now).unwrap().unwrap();
        assert_eq!(outside.len(), 1);
        assert!(
            outside[0].to_string().contains("expired on"),
            "{}",
            outside[0]
        );
        assert!(load(dir.path(), now).is_ok());
        assert!(load_or_generate(dir.path(), now).is_ok());
        assert_eq!(
            ca.fingerprint_hex(),
            load(dir.path(), now).unwrap().fingerprint_hex()
        );
        // The clock behind at boot: the CA is not valid yet.
        let generated_later = now + 3650 * day;
        let (chain, gkey) = generate(generated_later).unwrap();
        put(dir.path(), &chain, &gkey);
        let (_, outside) = load_reporting(dir.path(), now).unwrap().unwrap();
        assert!(
            matches!(&outside[..], [CaError::NotYetValid { index: 1, .. }]),
            "{outside:?}"
        );
        assert!(load(dir.path(), now).is_ok());
        // Within its window: nothing to say.
        let (_, outside) = load_reporting(dir.path(), generated_later)
            .unwrap()
            .unwrap();
        assert!(outside.is_empty(), "{outside:?}");
        // Installing still refuses both, and writes nothing.
        let fresh = tempfile::tempdir().unwrap();
        for (chain, key, needle) in [
            (expired.as_str(), k.as_str(), "expired on"),
            (chain.as_str(), gkey.as_str(), "is not valid before"),
        ] {
            let err = install(fresh.path(), chain, key, now)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err}");
            assert!(!fresh.path().join(CHAIN_FILE).exists());
        }
    }

    #[test]
    fn loading_still_refuses_a_wrong_key_or_a_certificate_that_is_no_ca() {
        let now = SystemTime::now();
        let key = KeyPair::generate().unwrap();
        let other = KeyPair::generate().unwrap();
        let day = Duration::from_secs(86_400);
        let dir = tempfile::tempdir().unwrap();
        // Expired too: the window warns, the mismatch refuses.
        for not_after in [now + day, now - day] {
            let ca = ca_params(true, not_after).self_signed(&key).unwrap().pem();
            put(dir.path(), &ca, &other.serialize_pem());
            assert!(matches!(load(dir.path(), now), Err(CaError::KeyMismatch)));
            let leaf = ca_params(false, not_after).self_signed(&key).unwrap().pem();
            put(dir.path(), &leaf, &key.serialize_pem());
            assert!(matches!(load(dir.path(), now), Err(CaError::NotCa { .. })));
        }
    }
}
