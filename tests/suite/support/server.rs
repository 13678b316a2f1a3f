//! A real server on a real socket, in-process.

use std::net::SocketAddr;
use std::time::Duration;

use portcullis::db::Db;
use portcullis::server::{self, ServerSettings};
use tokio::sync::oneshot;
use tonic::transport::Channel;

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), server::ServeError>>,
}

impl TestServer {
    pub async fn start(db: Db) -> Self {
        Self::start_with(
            db,
            ServerSettings {
                health_interval: Duration::from_millis(100),
                shutdown_grace: Duration::from_secs(5),
            },
        )
        .await
    }

    pub async fn start_with(db: Db, settings: ServerSettings) -> Self {
        let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(db, listener, settings, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Sends the shutdown signal and waits for the server to return.
    pub async fn stop(mut self) -> Result<(), server::ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
