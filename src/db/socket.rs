//! Opening the socket a database URL names, as tokio-postgres would, so
//! that the stream can be wrapped before the protocol starts (see
//! [`super::sqlstate`]): each host in turn (TCP, or a Unix socket
//! directory), `hostaddr` when given, `connect_timeout` per attempt, TCP
//! keepalives as configured. `target_session_attrs` is not checked here
//! (nothing in Portcullis sets it).

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::{Config, Host};

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for S {}

/// A connected stream, TCP or Unix. A named type rather than a boxed trait
/// object, whose elided lifetime rustc cannot prove `Send` for every
/// lifetime inside tokio-postgres's generic connect.
pub(crate) struct Socket(Box<dyn Stream>);

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}

/// A connected socket and the host name it was reached by (for TLS).
pub(crate) struct Opened {
    pub(crate) stream: Socket,
    pub(crate) host: String,
}

/// Copied out of the config so the connecting future owns what it uses.
#[derive(Clone, Copy)]
struct Options {
    connect_timeout: Option<Duration>,
    keepalives: bool,
    keepalives_idle: Duration,
    keepalives_interval: Option<Duration>,
    keepalives_retries: Option<u32>,
    tcp_user_timeout: Option<Duration>,
}

pub(crate) fn open(config: &Config) -> impl Future<Output = io::Result<Opened>> + Send + 'static {
    let options = Options {
        connect_timeout: config.get_connect_timeout().copied(),
        keepalives: config.get_keepalives(),
        keepalives_idle: config.get_keepalives_idle(),
        keepalives_interval: config.get_keepalives_interval(),
        keepalives_retries: config.get_keepalives_retries(),
        tcp_user_timeout: config.get_tcp_user_timeout().copied(),
    };
    let ports = config.get_ports();
    let targets: Vec<(Host, Option<IpAddr>, u16)> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            (host.clone(), config.get_hostaddrs().get(i).copied(), port)
        })
        .collect();
    async move {
        let mut last = None;
        for (host, address, port) in targets {
            let attempt = open_one(host, address, port, options);
            let opened = match options.connect_timeout {
                Some(limit) => tokio::time::timeout(limit, attempt)
                    .await
                    .unwrap_or_else(|_| Err(io::Error::from(io::ErrorKind::TimedOut))),
                None => attempt.await,
            };
            match opened {
                Ok(opened) => return Ok(opened),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("the database URL names no host")))
    }
}

async fn open_one(
    host: Host,
    address: Option<IpAddr>,
    port: u16,
    options: Options,
) -> io::Result<Opened> {
    match host {
        Host::Tcp(name) => {
            let stream = match address {
                Some(address) => TcpStream::connect((address, port)).await?,
                None => TcpStream::connect((name.clone(), port)).await?,
            };
            stream.set_nodelay(true)?;
            let socket = socket2::SockRef::from(&stream);
            if options.keepalives {
                let mut keepalive = socket2::TcpKeepalive::new().with_time(options.keepalives_idle);
                if let Some(interval) = options.keepalives_interval {
                    keepalive = keepalive.with_interval(interval);
                }
                if let Some(retries) = options.keepalives_retries {
                    keepalive = keepalive.with_retries(retries);
                }
                socket.set_tcp_keepalive(&keepalive)?;
            }
            if let Some(limit) = options.tcp_user_timeout {
                socket.set_tcp_user_timeout(Some(limit))?;
            }
            Ok(Opened {
                stream: Socket(Box::new(stream)),
                host: name,
            })
        }
        Host::Unix(directory) => {
            let path = directory.join(format!(".s.PGSQL.{port}"));
            Ok(Opened {
                stream: Socket(Box::new(UnixStream::connect(path).await?)),
                host: String::new(),
            })
        }
    }
}
