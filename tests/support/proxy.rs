//! A small fault-injecting TCP proxy for partition tests: it forwards connections to an
//! upstream address and can drop them, stall them or refuse new ones, then heal.
//!
//! It runs on the test's tokio runtime, on loopback only. TLS passes through untouched (the
//! client still verifies the real server behind it).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything.
    Pass,
    /// Accept and hold connections but forward nothing (as a saturated or frozen link).
    Stall,
    /// Refuse new connections (accept and close at once); existing ones are dropped.
    Cut,
}

pub struct Proxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Bumped to drop every open connection.
    generation: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let mode = watch::Sender::new(Mode::Pass);
        let generation = watch::Sender::new(0u64);
        let (m, g) = (mode.subscribe(), generation.subscribe());
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if *m.borrow() == Mode::Cut {
                    drop(inbound);
                    continue;
                }
                let (m, g) = (m.clone(), g.clone());
                tokio::spawn(async move {
                    let Ok(Ok(outbound)) =
                        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(upstream))
                            .await
                    else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    let a = tokio::spawn(pump(ri, wo, m.clone(), g.clone()));
                    let b = tokio::spawn(pump(ro, wi, m, g));
                    let _ = tokio::join!(a, b);
                });
            }
        });
        Proxy {
            addr,
            mode,
            generation,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Drops every open connection (new ones are accepted).
    pub fn drop_connections(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn stall(&self) {
        self.mode.send_replace(Mode::Stall);
    }

    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
        self.drop_connections();
    }

    pub fn heal(&self) {
        self.mode.send_replace(Mode::Pass);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.drop_connections();
        self.task.abort();
    }
}

/// Copies one direction until EOF, an error, or the generation changes; holds while stalled.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    mut mode: watch::Receiver<Mode>,
    mut generation: watch::Receiver<u64>,
) where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let start = *generation.borrow_and_update();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while *mode.borrow_and_update() != Mode::Pass {
            if *mode.borrow() == Mode::Cut {
                return;
            }
            tokio::select! {
                r = mode.changed() => if r.is_err() { return },
                _ = generation.changed() => return,
            }
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = generation.changed() => return,
            _ = mode.changed() => continue,
        };
        if *generation.borrow() != start {
            return;
        }
        // Data read before a stall is still delivered; the stall holds what comes after.
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
