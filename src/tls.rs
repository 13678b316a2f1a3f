//! TLS for the server: an identity (certificate chain and key) and, for
//! mutual TLS, the CA that client certificates must chain to; for the gRPC
//! port (tonic's configuration) and the HTTP listeners (a rustls one). And
//! the builder of this process's HTTP clients.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// A reqwest client builder. reqwest's rustls needs a process-wide crypto
/// provider even for plain HTTP (building a client without one panics);
/// ring is the one this service uses everywhere, and it may already be
/// installed.
pub fn http_client() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// A TLS file that cannot be used; the message names the setting and path.
#[derive(Debug, thiserror::Error)]
#[error("{setting} {path}: {cause}")]
pub struct TlsFileError {
    setting: &'static str,
    path: String,
    cause: String,
}

/// Loaded and checked TLS settings for the server.
#[derive(Clone, Debug)]
pub struct ServerTls {
    config: ServerTlsConfig,
    /// The same identity and client CA for the HTTP listeners.
    http: Arc<rustls::ServerConfig>,
    /// Whether clients must present a certificate from the configured CA.
    pub mutual: bool,
}

impl ServerTls {
    /// Reads the PEM files now, so a bad path or file stops start-up with
    /// a message naming it rather than failing the first handshake.
    pub fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Self, TlsFileError> {
        let cert_pem = read_certificates("--tls-cert", cert)?;
        let key_pem = read("--tls-key", key)?;
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsFileError {
            setting: "--tls-key",
            path: key.display().to_string(),
            cause: format!("no usable PEM private key ({e})"),
        })?;
        let client_ca_pem = match client_ca {
            Some(ca) => Some(read_certificates("--tls-client-ca", ca)?),
            None => None,
        };
        let http = http_config(&cert_pem, &key_pem, client_ca_pem.as_deref()).map_err(|cause| {
            TlsFileError {
                setting: "--tls-cert",
                path: cert.display().to_string(),
                cause,
            }
        })?;
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem));
        if let Some(ca) = client_ca_pem {
            config = config.client_ca_root(Certificate::from_pem(ca));
        }
        Ok(Self {
            config,
            http: Arc::new(http),
            mutual: client_ca.is_some(),
        })
    }

    /// For the HTTP listeners: HTTP/1.1 over the same identity, requiring
    /// client certificates when gRPC does.
    pub(crate) fn http_config(&self) -> Arc<rustls::ServerConfig> {
        self.http.clone()
    }

    pub(crate) fn config(&self) -> ServerTlsConfig {
        self.config.clone()
    }
}

fn http_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| e.to_string())?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(cert.map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| e.to_string())?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|e| TlsFileError {
        setting,
        path: path.display().to_string(),
        cause: e.to_string(),
    })
}

/// The file's bytes, after checking it holds at least one PEM certificate.
fn read_certificates(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let pem = read(setting, path)?;
    let fail = |cause: String| TlsFileError {
        setting,
        path: path.display().to_string(),
        cause,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate in the file".into()));
    }
    Ok(pem)
}
