//! A TCP proxy in front of PostgreSQL that a test can cut, stall and
//! restore, to make the database stop answering without touching the
//! shared server.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Open,
    /// Every connection closed (the client sees the socket end), new ones
    /// refused: a server that went away.
    Cut,
    /// Every connection kept open but silent, new ones accepted and left
    /// unanswered: packets dropped on the way, no RST (a half-open
    /// connection, a partition, a hung peer).
    Stalled,
}

pub struct Proxy {
    pub port: u16,
    link: watch::Sender<Link>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (link, _) = watch::channel(Link::Open);
        let state = link.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut changes = state.subscribe();
                let now = *changes.borrow_and_update();
                match now {
                    Link::Cut => drop(client), // refused while cut
                    Link::Stalled => {
                        // Held without a word until the link is cut.
                        tokio::spawn(async move {
                            let _ = changes.wait_for(|link| *link == Link::Cut).await;
                            drop(client);
                        });
                    }
                    Link::Open => {
                        tokio::spawn(async move {
                            let Ok(mut upstream) = TcpStream::connect(target).await else {
                                return;
                            };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => return,
                                _ = changes.wait_for(|link| *link != Link::Open) => {}
                            }
                            // Stalled: both sockets stay open and nothing
                            // crosses any more, until the link is cut.
                            let _ = changes.wait_for(|link| *link == Link::Cut).await;
                        });
                    }
                }
            }
        });
        Self { port, link, task }
    }

    /// Closes every open connection and refuses new ones.
    pub fn cut(&self) {
        self.link.send_replace(Link::Cut);
    }

    /// Stops every byte in both directions, on open connections and new
    /// ones, without closing anything.
    pub fn stall(&self) {
        self.link.send_replace(Link::Stalled);
    }

    /// New connections pass again. Connections stalled before stay silent
    /// (the peer has forgotten them), as after a real partition heals.
    pub fn restore(&self) {
        self.link.send_replace(Link::Open);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}
