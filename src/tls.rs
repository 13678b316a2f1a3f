//! TLS for the gRPC server: an identity (certificate chain and key) and, for
//! mutual TLS, the CA that client certificates must chain to.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

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
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem));
        if let Some(ca) = client_ca {
            config = config.client_ca_root(Certificate::from_pem(read_certificates(
                "--tls-client-ca",
                ca,
            )?));
        }
        Ok(Self {
            config,
            mutual: client_ca.is_some(),
        })
    }

    pub(crate) fn config(&self) -> ServerTlsConfig {
        self.config.clone()
    }
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
