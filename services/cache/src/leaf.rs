//! Leaf certificates for intercepted hosts, minted on the fly and signed by
//! the appliance CA, and the TLS server configuration that presents them.
//!
//! Leaves share one key generated at start (minting is then one ECDSA
//! signature, not a key generation); the key never leaves memory. Each host's
//! configuration is kept in a bounded map (oldest minted dropped first) and
//! minted again well before its leaf expires.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::ca::{Ca, CaError};

/// A leaf is valid this long; Apple platforms refuse server certificates
/// valid for more than 825 days, whoever signed them.
const LEAF_VALIDITY: Duration = Duration::from_secs(90 * 86_400);
/// A kept leaf is minted again after this (well inside its validity).
const LEAF_REFRESH: Duration = Duration::from_secs(30 * 86_400);

/// TLS versions offered to clients (`tls.min_version`). 1.0 and 1.1 are not
/// among them: rustls does not implement them (they rely on MD5/SHA-1 and
/// CBC constructions broken in practice, RFC 8996 deprecates them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersion {
    Tls12,
    Tls13,
}

impl MinVersion {
    pub fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static BOTH: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static ONLY_13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            MinVersion::Tls12 => &BOTH,
            MinVersion::Tls13 => &ONLY_13,
        }
    }
}

/// Mints and keeps one server configuration per intercepted host.
pub struct Leaves {
    ca: Arc<Ca>,
    key: KeyPair,
    min_version: MinVersion,
    capacity: usize,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    map: HashMap<String, (Arc<ServerConfig>, Instant)>,
    order: VecDeque<String>,
}

impl Leaves {
    pub fn new(ca: Arc<Ca>, min_version: MinVersion, capacity: usize) -> Result<Self, CaError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| CaError::Generate(e.to_string()))?;
        Ok(Leaves {
            ca,
            key,
            min_version,
            capacity: capacity.max(1),
            kept: Mutex::new(Kept::default()),
        })
    }

    pub fn ca_fingerprint(&self) -> String {
        self.ca.fingerprint_hex()
    }

    /// How many hosts have a configuration kept.
    pub fn len(&self) -> usize {
        self.kept.lock().map(|k| k.map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The server configuration for `host` (a name or an IP address).
    pub fn config_for(&self, host: &str) -> Result<Arc<ServerConfig>, CaError> {
        let now = Instant::now();
        if let Ok(kept) = self.kept.lock() {
            if let Some((config, minted)) = kept.map.get(host) {
                if now.saturating_duration_since(*minted) < LEAF_REFRESH {
                    return Ok(config.clone());
                }
            }
        }
        let config = Arc::new(self.mint(host, SystemTime::now())?);
        if let Ok(mut kept) = self.kept.lock() {
            if kept
                .map
                .insert(host.to_owned(), (config.clone(), now))
                .is_none()
            {
                kept.order.push_back(host.to_owned());
            }
            while kept.map.len() > self.capacity {
                match kept.order.pop_front() {
                    Some(old) => {
                        kept.map.remove(&old);
                    }
                    None => break,
                }
            }
        }
        Ok(config)
    }

    fn mint(&self, host: &str, now: SystemTime) -> Result<ServerConfig, CaError> {
        let err = |reason: String| CaError::Mint {
            host: host.to_owned(),
            reason,
        };
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                host.try_into()
                    .map_err(|e: rcgen::Error| err(e.to_string()))?,
            ),
        };
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![san];
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, host);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        // An hour back for clients whose clock runs a little behind.
        params.not_before = time::OffsetDateTime::from(now - Duration::from_secs(3600));
        params.not_after = time::OffsetDateTime::from(now + LEAF_VALIDITY);
        let cert = params
            .signed_by(&self.key, self.ca.issuer())
            .map_err(|e| err(e.to_string()))?;
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.ca.chain().iter().cloned());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        let mut config = ServerConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(self.min_version.versions())
            .map_err(|e| err(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| err(e.to_string()))?;
        // HTTP/1.1 only inside: what the cache reads.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_are_kept_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Arc::new(crate::ca::load_or_generate(dir.path(), SystemTime::now()).unwrap());
        let leaves = Leaves::new(ca, MinVersion::Tls12, 2).unwrap();
        let a = leaves.config_for("a.example.com").unwrap();
        assert!(Arc::ptr_eq(
            &a,
            &leaves.config_for("a.example.com").unwrap()
        ));
        leaves.config_for("127.0.0.1").unwrap();
        leaves.config_for("c.example.com").unwrap();
        assert_eq!(leaves.len(), 2);
        assert!(!Arc::ptr_eq(
            &a,
            &leaves.config_for("a.example.com").unwrap()
        ));
    }
}
