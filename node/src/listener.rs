//! Accepting connections on the node's two listeners (`listen` and `federation_listen`), one
//! function for both: TCP accept, caps, and the mutual-TLS handshake, before tonic sees a
//! connection.
//!
//! Every connection costs a file descriptor, and the node's store needs descriptors to make
//! each write durable (see `storage::commit`). A host that opens thousands of connections and
//! never speaks must not starve it, nor stop operators who are already connected. So:
//!
//! * **connection cap** (`limits.max_connections`, per listener): a connection holds a permit
//!   from accept until it is closed, handshaking ones included. A connection accepted while
//!   every permit is taken is closed at once (accepting and closing keeps the kernel's backlog
//!   from filling with connections nobody will serve). Connections already established keep
//!   their permit and are served as before.
//! * **handshake cap** (`limits.max_handshakes`, per listener): TLS handshakes in progress at
//!   once; the others wait for a slot.
//! * **handshake timeout** ([`crate::tls::HANDSHAKE_TIMEOUT`], 10 s): a connection that has not
//!   completed its handshake (waiting for a slot included) by then is closed, so an idle
//!   connection holds its permit for at most that long.
//! * **accept errors**: a failed accept that concerns one connection (reset or aborted before
//!   it was taken) is skipped; any other (EMFILE, ENFILE, ENOBUFS, ENOMEM, ...) makes the loop
//!   sleep, from [`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`], then accept again. A burst of
//!   errors is logged once when it starts and once when accepting works again (with the count),
//!   not once per error.
//!
//! The handshake is rustls' (`tokio-rustls`), configured by [`crate::tls::server_rustls_config`]
//! to require a client certificate from the node's CA. The streams handed to tonic are
//! `tokio_rustls::server::TlsStream<Conn>`, whose connection info is tonic's
//! `TlsConnectInfo<TcpConnectInfo>`: [`crate::tls::peer_identity`] and `remote_addr` work as
//! with tonic's own TLS.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// First pause after an accept error.
pub const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause after repeated accept errors.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The caps of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections, from accept to close.
    pub max_connections: usize,
    /// TLS handshakes in progress.
    pub max_handshakes: usize,
    /// Longest time from accept to a completed handshake.
    pub handshake_timeout: Duration,
}

/// An accepted TCP connection and its permit under the connection cap (released on close).
#[derive(Debug)]
pub struct Conn {
    tcp: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.tcp.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// Where an accept loop takes the TLS configuration of each new connection from: a fixed
/// one, or the node's live material (`crate::live_tls`), so that a reloaded certificate or
/// CRL applies to the next handshake while open connections keep theirs.
#[derive(Clone)]
pub struct TlsSource(crate::live_tls::ServerTls);

impl TlsSource {
    pub fn get(&self) -> Arc<rustls::ServerConfig> {
        (self.0)()
    }
}

impl From<Arc<rustls::ServerConfig>> for TlsSource {
    fn from(fixed: Arc<rustls::ServerConfig>) -> Self {
        TlsSource(Arc::new(move || fixed.clone()))
    }
}

impl From<crate::live_tls::ServerTls> for TlsSource {
    fn from(live: crate::live_tls::ServerTls) -> Self {
        TlsSource(live)
    }
}

/// The connections of `listener` that completed a mutual-TLS handshake, for tonic's
/// `serve_with_incoming_shutdown`. Accepting stops when `shutdown` turns true or tonic drops
/// the stream; then the listener is closed.
pub fn incoming(
    what: &'static str,
    listener: TcpListener,
    tls: impl Into<TlsSource>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) -> impl Stream<Item = io::Result<TlsStream<Conn>>> {
    let (tx, rx) = mpsc::channel(limits.max_handshakes.max(1));
    tokio::spawn(accept_loop(
        what,
        listener,
        tls.into(),
        limits,
        tx,
        shutdown,
    ));
    tokio_stream::StreamExt::map(ReceiverStream::new(rx), Ok)
}

/// Whether an accept error concerns only the connection being accepted.
fn concerns_one_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// The pause after `errors` consecutive accept errors (1 or more).
fn backoff(errors: u32) -> Duration {
    BACKOFF_MIN
        .saturating_mul(1 << errors.saturating_sub(1).min(16))
        .min(BACKOFF_MAX)
}

/// Counts a burst of refusals or errors so that it is logged once at its start and once at
/// its end, not once per event.
#[derive(Debug, Default)]
struct Burst {
    count: u64,
}

impl Burst {
    /// Returns true for the first event of a burst.
    fn hit(&mut self) -> bool {
        self.count += 1;
        self.count == 1
    }

    /// Ends the burst; returns how many events it had.
    fn end(&mut self) -> u64 {
        std::mem::take(&mut self.count)
    }
}

async fn accept_loop(
    what: &'static str,
    listener: TcpListener,
    tls: TlsSource,
    limits: Limits,
    tx: mpsc::Sender<TlsStream<Conn>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let handshakes = Arc::new(Semaphore::new(limits.max_handshakes));
    let mut errors = Burst::default();
    let mut over_cap = Burst::default();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stopping(&mut shutdown) => return,
            _ = tx.closed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if concerns_one_connection(&e) => continue,
            Err(e) => {
                let first = errors.hit();
                if first {
                    tracing::warn!(listener = what, error = %e, "accept failed; pausing before accepting again (接受连接失败，稍后重试)");
                }
                let pause = backoff(errors.count.min(u32::MAX as u64) as u32);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stopping(&mut shutdown) => return,
                }
                continue;
            }
        };
        let failed = errors.end();
        if failed > 0 {
            tracing::info!(listener = what, failed, "accepting connections again");
        }
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            if over_cap.hit() {
                tracing::warn!(
                    listener = what,
                    %peer,
                    max_connections = limits.max_connections,
                    "connection cap reached: closing new connections until some close (连接数已达上限)"
                );
            }
            drop(tcp);
            continue;
        };
        let refused = over_cap.end();
        if refused > 0 {
            tracing::info!(listener = what, refused, "below the connection cap again");
        }
        // Best effort: a connection without it still works.
        let _ = tcp.set_nodelay(true);
        let conn = Conn {
            tcp,
            _permit: permit,
        };
        let acceptor = TlsAcceptor::from(tls.get());
        let handshakes = handshakes.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let handshake = async {
                let _slot = handshakes.acquire_owned().await.ok()?;
                acceptor.accept(conn).await.ok()
            };
            match tokio::time::timeout(limits.handshake_timeout, handshake).await {
                Ok(Some(stream)) => {
                    // Fails only if the server stopped; the connection is then closed.
                    let _ = tx.send(stream).await;
                }
                Ok(None) => tracing::debug!(listener = what, %peer, "TLS handshake failed"),
                Err(_) => tracing::debug!(listener = what, %peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Resolves once `rx` says true (or its sender is gone).
async fn stopping(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_bounded() {
        assert_eq!(backoff(1), BACKOFF_MIN);
        assert_eq!(backoff(2), BACKOFF_MIN * 2);
        assert_eq!(backoff(4), BACKOFF_MIN * 8);
        assert_eq!(backoff(30), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn bursts_are_reported_once() {
        let mut b = Burst::default();
        assert!(b.hit());
        assert!(!b.hit());
        assert!(!b.hit());
        assert_eq!(b.end(), 3);
        assert_eq!(b.end(), 0);
        assert!(b.hit(), "a new burst");
    }

    #[test]
    fn per_connection_accept_errors_do_not_pause() {
        assert!(concerns_one_connection(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
        assert!(!concerns_one_connection(&io::Error::from_raw_os_error(24)));
        assert!(!concerns_one_connection(&io::Error::from_raw_os_error(23)));
    }
}
