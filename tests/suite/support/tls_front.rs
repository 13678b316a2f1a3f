//! A TLS front for PostgreSQL: answers the client's `SSLRequest`, completes
//! the handshake with a test certificate, then relays the decrypted stream
//! to the real server. It refuses clients that do not ask for TLS, so a
//! connection through it is an encrypted one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::certs::Leaf;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

pub struct TlsFront {
    pub addr: SocketAddr,
    handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    pub async fn start(identity: &Leaf, upstream: (String, u16)) -> Self {
        let chain = CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counted = handshakes.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, upstream, counted) =
                    (acceptor.clone(), upstream.clone(), counted.clone());
                tokio::spawn(async move {
                    let _ = relay(client, acceptor, upstream, counted).await;
                });
            }
        });
        Self {
            addr,
            handshakes,
            task,
        }
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    mut client: TcpStream,
    acceptor: TlsAcceptor,
    upstream: (String, u16),
    handshakes: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    loop {
        let length = client.read_u32().await?;
        let code = client.read_u32().await?;
        match (length, code) {
            (8, SSL_REQUEST) => break,
            (8, GSSENC_REQUEST) => client.write_all(b"N").await?,
            // A plaintext startup: this server speaks TLS only.
            _ => return Ok(()),
        }
    }
    client.write_all(b"S").await?;
    let mut tls = acceptor.accept(client).await?;
    handshakes.fetch_add(1, Ordering::SeqCst);
    let mut server = TcpStream::connect(upstream).await?;
    tokio::io::copy_bidirectional(&mut tls, &mut server).await?;
    Ok(())
}
