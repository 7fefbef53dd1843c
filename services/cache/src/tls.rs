//! TLS toward origins: rustls verifying the origin's certificate against
//! Mozilla's roots (webpki-roots, compiled in) plus an optional bundle the
//! administrator configures (a corporate CA that re-signs traffic upstream).
//! There is no way to turn verification off.
//!
//! Why webpki-roots and not the system store (rustls-native-certs): the
//! appliance image carries no ca-certificates package and no shell to update
//! one; compiled-in roots are updated with the image, the way the rest of it
//! is, and behave the same on the host and in the appliance.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// The one crypto provider of the service (ring, as the workspace uses).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("origin_ca_bundle {path}: {reason}")]
    Bundle { path: String, reason: String },
    #[error("origin TLS configuration: {0}")]
    Config(String),
}

/// The client configuration for origins: Mozilla's roots, plus the PEM
/// certificates of `extra_bundle` when given.
pub fn origin_config(extra_bundle: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra_bundle {
        let bundle = |reason: String| TlsError::Bundle {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read(path).map_err(|e| bundle(e.to_string()))?;
        let certs = CertificateDer::pem_slice_iter(&text)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bundle(e.to_string()))?;
        if certs.is_empty() {
            return Err(bundle("no PEM certificate in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bundle(e.to_string()))?;
        }
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
