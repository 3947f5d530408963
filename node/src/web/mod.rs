//! The staff web console (综治中心工作台), served by the node itself on `web_listen`.
//!
//! HTTPS with the node's certificate and no client certificate (people sign in with an
//! account, `crate::app::console`), HTTP/1.1 by hyper, routes by axum, pages rendered on the
//! server by askama templates compiled into the binary, like the stylesheet and the one small
//! script (`assets`): nothing is fetched from elsewhere, so the console works on a closed
//! government network. Every handler is an adapter over the application layer (`crate::app`),
//! with the signed-in person's identity: the console never calls the node's own gRPC API.
//!
//! Security: a session cookie (HttpOnly, Secure, SameSite=Strict) and a per-session token in
//! every form (CSRF, checked before anything else of a post); a Content-Security-Policy without
//! inline scripts or styles and `frame-ancestors 'none'`; no page is cached; request bodies are
//! capped at [`BODY_MAX_BYTES`]; the listener's caps (connections, handshakes, handshake
//! timeout) are the node's (`crate::listener`), and a connection that sends no complete request
//! head within [`HEADER_TIMEOUT`] is closed.

mod assets;
mod forms;
mod import;
mod pages;
pub mod public;
mod session;
mod view;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::transport::server::Connected;
use tower::ServiceExt;

use crate::app::App;
use crate::listener::{self, Limits};

/// Largest request body (a form): 64 KiB.
pub const BODY_MAX_BYTES: usize = 64 * 1024;
/// Longest wait for a request's head on an open connection.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The Content-Security-Policy of every answer.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
                   frame-ancestors 'none'";

/// Everything a console handler needs.
#[derive(Clone)]
pub(crate) struct Web {
    pub app: App,
}

/// The console's routes.
pub fn router(app: App) -> Router {
    let web = Web { app };
    pages::routes()
        .merge(import::routes())
        .merge(assets::routes())
        .layer(DefaultBodyLimit::max(BODY_MAX_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(web)
}

pub(crate) async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The address a request came from (the TCP peer: proxies are not trusted), in every request's
/// extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// Serves the console on `listener` until `shutdown` turns true.
pub fn spawn(
    app: App,
    listener: TcpListener,
    tls: impl Into<listener::TlsSource>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    serve("web_listen", router(app), listener, tls, limits, shutdown)
}

/// Serves `router` over HTTPS (HTTP/1.1) on `listener` until `shutdown` turns true, with the
/// listener's caps and [`HEADER_TIMEOUT`]; each request carries its [`ClientAddr`].
pub(crate) fn serve(
    what: &'static str,
    router: Router,
    listener: TcpListener,
    tls: impl Into<listener::TlsSource>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let tls = tls.into();
    tokio::spawn(async move {
        let mut incoming = std::pin::pin!(listener::incoming(
            what,
            listener,
            tls,
            limits,
            shutdown.clone()
        ));
        while let Some(stream) = incoming.next().await {
            let Ok(stream) = stream else { continue };
            let client = ClientAddr(
                stream
                    .get_ref()
                    .0
                    .connect_info()
                    .remote_addr()
                    .unwrap_or(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
            );
            let router = router.clone();
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(client);
                    router.clone().oneshot(req)
                },
            );
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(BODY_MAX_BYTES.max(16 * 1024))
                    .serve_connection(TokioIo::new(stream), service);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(listener = what, error = %e, "connection ended");
                        }
                    }
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                    }
                }
            });
        }
    })
}
