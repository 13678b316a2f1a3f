//! Opening a PostgreSQL connection, with TLS when the URL asks for it.
//!
//! The URL's `sslmode` follows libpq: `disable` (the default here),
//! `allow`/`prefer` (TLS if the server offers it, unverified), `require`
//! (TLS, unverified unless `sslrootcert` is given, as libpq does),
//! `verify-ca` (TLS, chain checked against `sslrootcert`) and `verify-full`
//! (chain and host name). `sslcert`/`sslkey` present a client certificate.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use diesel::ConnectionError;
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::Client;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::socket::Socket;
use super::sqlstate::{ErrorCode, Observed};

/// A database URL that cannot be used; the message names the parameter.
#[derive(Debug, thiserror::Error)]
#[error("database URL: {0}")]
pub struct DatabaseUrlError(String);

/// Where and how to connect, parsed once and reused for every connection.
#[derive(Clone)]
pub(crate) struct ConnectTarget {
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl ConnectTarget {
    pub(crate) fn parse(database_url: &str) -> Result<Self, DatabaseUrlError> {
        let mut url = url::Url::parse(database_url)
            .map_err(|e| DatabaseUrlError(format!("not a postgres:// URL ({e})")))?;
        let mut tls_params = TlsParams::default();
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(key, value)| !tls_params.take(key, value))
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept);
        }
        let mut config = tokio_postgres::Config::from_str(url.as_str())
            .map_err(|e| DatabaseUrlError(e.to_string()))?;
        let tls = tls_params.client_config()?;
        config.ssl_mode(match (&tls_params.mode[..], &tls) {
            (_, None) => SslMode::Disable,
            ("allow" | "prefer", Some(_)) => SslMode::Prefer,
            _ => SslMode::Require,
        });
        Ok(Self {
            config,
            tls: tls.map(MakeRustlsConnect::new),
        })
    }

    /// A connection, and the slot its stream writes each failed
    /// statement's SQLSTATE to (see [`super::sqlstate`]).
    pub(crate) async fn establish(
        &self,
    ) -> Result<(AsyncPgConnection, ErrorCode), ConnectionError> {
        let codes = ErrorCode::default();
        let socket = super::socket::open(&self.config)
            .await
            .map_err(|e| ConnectionError::BadConnection(with_causes(&e)))?;
        // The two branches connect with different stream types; each is a
        // boxed future that owns what it uses.
        let config = self.config.clone();
        let connecting: BoxFuture<'static, Result<Client, tokio_postgres::Error>> = match &self.tls
        {
            None => {
                let stream = Observed::new(socket.stream, codes.clone());
                Box::pin(async move {
                    let (client, connection) =
                        config.connect_raw(stream, tokio_postgres::NoTls).await?;
                    tokio::spawn(drive(connection));
                    Ok(client)
                })
            }
            Some(tls) => {
                let inner =
                    MakeTlsConnect::<Socket>::make_tls_connect(&mut tls.clone(), &socket.host)
                        .map_err(|e| ConnectionError::BadConnection(format!("TLS: {e}")))?;
                let tls = ObservedTls {
                    inner,
                    codes: codes.clone(),
                };
                Box::pin(async move {
                    let (client, connection) = config.connect_raw(socket.stream, tls).await?;
                    tokio::spawn(drive(connection));
                    Ok(client)
                })
            }
        };
        let client = connecting.await.map_err(failed)?;
        // diesel-async's setup runs two `SET`s, each prepared, executed and
        // closed in pipelined messages. Through a transaction-mode pooler
        // they can land on different server connections (a statement
        // missing there, a reply the pooler hands to the next client); in
        // one transaction they all stay on one.
        client.batch_execute("BEGIN").await.map_err(failed)?;
        let mut conn = AsyncPgConnection::try_from(client).await?;
        diesel_async::SimpleAsyncConnection::batch_execute(&mut conn, "COMMIT")
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
        Ok((conn, codes))
    }
}

/// rustls's connector for one host, as tokio-postgres-rustls makes it.
type RustlsConnect = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;

/// rustls, with the decrypted stream [`Observed`] (for its SQLSTATEs).
struct ObservedTls {
    inner: RustlsConnect,
    codes: ErrorCode,
}

impl TlsConnect<Socket> for ObservedTls {
    type Stream = Observed<<RustlsConnect as TlsConnect<Socket>>::Stream>;
    type Error = <RustlsConnect as TlsConnect<Socket>>::Error;
    type Future = BoxFuture<'static, Result<Self::Stream, Self::Error>>;

    fn connect(self, stream: Socket) -> Self::Future {
        let (connecting, codes) = (self.inner.connect(stream), self.codes);
        Box::pin(async move { Ok(Observed::new(connecting.await?, codes)) })
    }
}

fn failed(error: tokio_postgres::Error) -> ConnectionError {
    ConnectionError::BadConnection(with_causes(&error))
}

/// Runs the connection until its client is dropped or the server goes
/// away; a query then fails with "connection closed".
async fn drive<F>(connection: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(error) = connection.await {
        tracing::debug!(error = %with_causes(&error), "database connection ended");
    }
}

/// The error and its sources ("error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer"): the outer message alone rarely says why.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The libpq TLS parameters, which tokio-postgres does not (all) know.
#[derive(Default)]
struct TlsParams {
    mode: String,
    root_cert: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

impl TlsParams {
    /// Keeps the parameter if it is one of ours; says whether it was.
    fn take(&mut self, key: &str, value: &str) -> bool {
        match key {
            "sslmode" => self.mode = value.to_owned(),
            "sslrootcert" => self.root_cert = Some(value.into()),
            "sslcert" => self.client_cert = Some(value.into()),
            "sslkey" => self.client_key = Some(value.into()),
            _ => return false,
        }
        true
    }

    fn client_config(&self) -> Result<Option<ClientConfig>, DatabaseUrlError> {
        let verification = match self.mode.as_str() {
            "" | "disable" => return Ok(None),
            "allow" | "prefer" => Verification::None,
            "require" if self.root_cert.is_none() => Verification::None,
            "require" | "verify-ca" => Verification::Chain,
            "verify-full" => Verification::ChainAndName,
            other => {
                return Err(DatabaseUrlError(format!(
                    "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )));
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| DatabaseUrlError(format!("TLS: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = match verification {
            Verification::None => Arc::new(Unverified(provider)),
            Verification::Chain | Verification::ChainAndName => {
                let Some(path) = &self.root_cert else {
                    return Err(DatabaseUrlError(format!(
                        "sslmode={} needs sslrootcert=<CA certificate file>",
                        self.mode
                    )));
                };
                let mut roots = RootCertStore::empty();
                for cert in read_certificates("sslrootcert", path)? {
                    roots.add(cert).map_err(|e| {
                        DatabaseUrlError(format!("sslrootcert {}: {e}", path.display()))
                    })?;
                }
                let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| DatabaseUrlError(format!("sslrootcert: {e}")))?;
                if matches!(verification, Verification::Chain) {
                    Arc::new(AnyName(chain))
                } else {
                    chain
                }
            }
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&self.client_cert, &self.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_certificates("sslcert", cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| DatabaseUrlError(format!("sslkey {}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| DatabaseUrlError(format!("sslcert/sslkey: {e}")))?
            }
            _ => {
                return Err(DatabaseUrlError(
                    "sslcert and sslkey must be given together".into(),
                ));
            }
        };
        Ok(Some(config))
    }
}

enum Verification {
    None,
    Chain,
    ChainAndName,
}

fn read_certificates(
    param: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, DatabaseUrlError> {
    let unreadable =
        |e: &dyn std::fmt::Display| DatabaseUrlError(format!("{param} {}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))?;
    if certs.is_empty() {
        return Err(unreadable(&"no PEM certificate in the file"));
    }
    Ok(certs)
}

/// `verify-ca`: the chain must lead to the configured CA; the name is not
/// checked (libpq's meaning).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require` without a CA: encrypted, not authenticated (libpq's meaning).
/// The handshake signatures are still checked against the presented key.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(url: &str) -> String {
        match ConnectTarget::parse(url) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn plain_urls_and_require_need_no_files() {
        assert!(ConnectTarget::parse("postgres://app@127.0.0.1:5432/db").is_ok());
        assert!(ConnectTarget::parse("postgres://app@127.0.0.1/db?sslmode=require").is_ok());
        assert!(
            ConnectTarget::parse("postgres://app@h/db?sslmode=disable&application_name=x").is_ok()
        );
    }

    #[test]
    fn verification_without_a_ca_file_names_sslrootcert() {
        let message = error_of("postgres://app@h/db?sslmode=verify-full");
        assert!(message.contains("sslrootcert"), "{message}");
    }

    #[test]
    fn an_unknown_sslmode_is_named() {
        let message = error_of("postgres://app@h/db?sslmode=verify");
        assert!(message.contains("sslmode=verify"), "{message}");
    }

    #[test]
    fn a_missing_ca_file_is_named_with_its_path() {
        let message =
            error_of("postgres://app@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem");
        assert!(message.contains("/nonexistent/ca.pem"), "{message}");
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let message = error_of("postgres://app@h/db?sslmode=require&sslcert=/c.pem");
        assert!(message.contains("sslkey"), "{message}");
    }
}
