//! The citizens' channel (群众端), served by the node on `public_listen`: mobile-first pages
//! to apply for mediation, follow a case with its lookup code and rate the result
//! (`pages`), and the Open311 GeoReport v2 API for systems with a key (`open311`). Both are
//! adapters over `crate::app::public`.
//!
//! HTTPS (the node's certificate, or `public.tls_cert`/`tls_key`), HTTP/1.1, no account and no
//! operator certificate. Like the console: everything embedded, no inline script (these pages
//! have none), the same security headers and body cap, an anti-forgery token in every form
//! (a double-submit cookie, as there is no session). Rate limits per client address, per case
//! and per API key ([`limits`]); an image captcha on the application form
//! (`public.captcha`, [`captcha`]).

mod captcha;
mod limits;
mod open311;
mod pages;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{BODY_MAX_BYTES, ClientAddr};
use crate::app::App;
use crate::config::PublicConfig;
use crate::listener::Limits as ListenerLimits;

/// How often limiter keys that have recovered are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Everything a public handler needs.
#[derive(Clone)]
pub(crate) struct Public {
    pub app: App,
    pub cfg: Arc<PublicConfig>,
    pub limits: Arc<limits::Limits>,
    pub captchas: Arc<captcha::Captchas>,
}

impl Public {
    fn new(app: App, cfg: PublicConfig) -> Public {
        Public {
            app,
            limits: Arc::new(limits::Limits::new(&cfg)),
            cfg: Arc::new(cfg),
            captchas: Arc::new(captcha::Captchas::default()),
        }
    }
}

/// The client address of a request (unspecified if the server did not record one).
pub(crate) fn client_ip(parts: &axum::http::Extensions) -> IpAddr {
    parts
        .get::<ClientAddr>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip())
}

fn router_of(public: Public) -> Router {
    pages::routes()
        .merge(open311::routes())
        .layer(DefaultBodyLimit::max(BODY_MAX_BYTES))
        .layer(axum::middleware::map_response(super::security_headers))
        .with_state(public)
}

/// The public side's routes (for tests in process).
pub fn router(app: App, cfg: PublicConfig) -> Router {
    router_of(Public::new(app, cfg))
}

/// Serves the public side on `listener` until `shutdown` turns true.
pub fn spawn(
    app: App,
    cfg: PublicConfig,
    listener: TcpListener,
    tls: impl Into<crate::listener::TlsSource>,
    limits: ListenerLimits,
    mut shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let public = Public::new(app, cfg);
    let rates = public.limits.clone();
    let server = super::serve(
        "public_listen",
        router_of(public),
        listener,
        tls,
        limits,
        shutdown.clone(),
    );
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => rates.sweep(),
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
    });
    vec![server, sweeper]
}
