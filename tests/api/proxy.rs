//! A TCP proxy the test can sever and restore: a database outage without
//! stopping the shared PostgreSQL.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{net::TcpListener, task::AbortHandle};

/// Forwards connections to `upstream` until severed.
pub struct Proxy {
    pub addr: SocketAddr,
    severed: Arc<AtomicBool>,
    pipes: Arc<Mutex<Vec<AbortHandle>>>,
    accepting: AbortHandle,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let severed = Arc::new(AtomicBool::new(false));
        let pipes: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accepting = {
            let (severed, pipes) = (Arc::clone(&severed), Arc::clone(&pipes));
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else { continue };
                    if severed.load(Ordering::Acquire) {
                        // Refused: the connection closes before a byte.
                        drop(client);
                        continue;
                    }
                    let pipe = tokio::spawn(async move {
                        let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    });
                    pipes.lock().unwrap().push(pipe.abort_handle());
                }
            })
            .abort_handle()
        };
        Self { addr, severed, pipes, accepting }
    }

    /// Cuts every open connection and refuses new ones.
    pub fn sever(&self) {
        self.severed.store(true, Ordering::Release);
        for pipe in self.pipes.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.severed.store(false, Ordering::Release);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.sever();
    }
}
