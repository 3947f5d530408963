//! The node's TLS material, live: certificate, key, CA and certificate revocation list (CRL),
//! re-read on SIGHUP and when the files change, without a restart and without dropping a
//! healthy connection.
//!
//! A reload builds every configuration from the files first and swaps them in only when all
//! of them are usable; a broken file is logged and the node keeps what it had. New connections
//! (both directions: the listeners' handshakes and the parent link's reconnections) use the
//! current material; open connections keep theirs, except that a request whose client
//! certificate is revoked is refused (UNAUTHENTICATED) at the next call ([`RevocationLayer`]):
//! revocation is checked at the handshake and on every request.
//!
//! The CRL in force is the newest (highest CRL number) of the configured file (`tls.crl`) and
//! of the one the parent sent (`data_dir/crl-from-parent.pem`): CRLs travel down the
//! federation with the parent link ([`LiveTls::offer_crl`]), checked against the CA's
//! signature, so a village needs no hand-copied file. Every CRL read is checked the same way:
//! one not signed by the CA is refused. The revocation of an end-entity certificate is
//! checked; a CRL past its next update is still used (a newer one replaces it).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::code::NodeCode;
use crate::tls::{TlsError, TlsFiles};

/// How often the files are looked at for changes.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// A function that answers the current server configuration (for an accept loop).
pub type ServerTls = Arc<dyn Fn() -> Arc<rustls::ServerConfig> + Send + Sync>;
/// A function that answers the current client configuration (for the parent link).
pub type ClientTls = Arc<dyn Fn() -> Arc<rustls::ClientConfig> + Send + Sync>;

/// What the node serves and connects with.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    pub files: TlsFiles,
    /// `tls.crl`: a PEM CRL file kept by hand (county IT: `fqctl pki revoke`).
    pub crl: Option<PathBuf>,
    /// Where the CRL received from the parent is kept.
    pub received_crl: PathBuf,
    /// The web console's configuration is wanted.
    pub web: bool,
    /// The citizens' channel's configuration is wanted, with its own certificate if set.
    pub public: Option<Option<(PathBuf, PathBuf)>>,
    /// The parent the link must reach (its client configuration is wanted).
    pub parent: Option<NodeCode>,
}

/// A CRL in force: its DER, number and the serials it revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crl {
    pub der: Vec<u8>,
    pub number: u64,
    pub revoked: HashSet<Vec<u8>>,
}

/// One consistent set of configurations.
pub struct Material {
    pub server: Arc<rustls::ServerConfig>,
    pub web: Option<Arc<rustls::ServerConfig>>,
    pub public: Option<Arc<rustls::ServerConfig>>,
    pub client: Option<Arc<rustls::ClientConfig>>,
    pub crl: Option<Crl>,
    /// Serial of the node's own certificate (hex), for logs.
    pub own_serial: String,
}

pub struct LiveTls {
    setup: TlsSetup,
    current: RwLock<Arc<Material>>,
    /// Modification times of the files at the last load.
    stamps: Mutex<Vec<Option<SystemTime>>>,
    /// Told of every reload put in force (what is now in force): the audit log.
    on_reload: std::sync::OnceLock<Box<dyn Fn(String) + Send + Sync>>,
}

fn pem_error(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// The CA certificates of `files`.
fn ca_certs(files: &TlsFiles) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(&files.ca).map_err(|source| TlsError::Io {
        path: files.ca.clone(),
        source,
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(&files.ca, format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(pem_error(&files.ca, "no certificate found"));
    }
    Ok(certs)
}

/// Reads and checks a CRL: PEM (or DER), signed by one of `cas`; answers its number and
/// serials. `source` names it in errors.
pub fn check_crl(
    bytes: &[u8],
    cas: &[CertificateDer<'static>],
    source: &Path,
) -> Result<Crl, TlsError> {
    let der: Vec<u8> = match CertificateRevocationListDer::from_pem_slice(bytes) {
        Ok(d) => d.as_ref().to_vec(),
        Err(_) => bytes.to_vec(),
    };
    let (_, crl) = x509_parser::parse_x509_crl(&der)
        .map_err(|e| pem_error(source, format!("not a CRL: {e}")))?;
    let signed = cas.iter().any(|ca| {
        x509_parser::parse_x509_certificate(ca)
            .ok()
            .is_some_and(|(_, ca)| {
                ca.subject() == crl.issuer() && crl.verify_signature(ca.public_key()).is_ok()
            })
    });
    if !signed {
        return Err(pem_error(source, "the CRL is not signed by the CA"));
    }
    let number = crl
        .crl_number()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0);
    let revoked = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect();
    Ok(Crl {
        der,
        number,
        revoked,
    })
}

/// The serial of a DER certificate, as its bytes (big-endian, as in the certificate).
pub fn serial_of(der: &[u8]) -> Option<Vec<u8>> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, c)| c.raw_serial().to_vec())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl LiveTls {
    /// Loads everything; an error stops the start (the files are wrong from the outset).
    pub fn load(setup: TlsSetup) -> Result<Arc<LiveTls>, TlsError> {
        let material = build(&setup)?;
        let live = LiveTls {
            on_reload: std::sync::OnceLock::new(),
            stamps: Mutex::new(stamps(&setup)),
            current: RwLock::new(Arc::new(material)),
            setup,
        };
        Ok(Arc::new(live))
    }

    /// The material in force.
    pub fn current(&self) -> Arc<Material> {
        self.current
            .read()
            .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
    }

    /// Re-reads every file and swaps the new material in if all of it is usable.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps_now = stamps(&self.setup);
        let material = build(&self.setup)?;
        let (serial, crl) = (
            material.own_serial.clone(),
            material.crl.as_ref().map(|c| (c.number, c.revoked.len())),
        );
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(material),
            Err(p) => *p.into_inner() = Arc::new(material),
        }
        if let Ok(mut s) = self.stamps.lock() {
            *s = stamps_now;
        }
        tracing::info!(
            certificate_serial = %serial,
            crl_number = ?crl.map(|c| c.0),
            revoked = crl.map_or(0, |c| c.1),
            "TLS material reloaded (证书已重新加载)"
        );
        if let Some(hook) = self.on_reload.get() {
            hook(format!(
                "TlsReload certificate serial {serial}, CRL number {}, {} revoked",
                crl.map_or(0, |c| c.0),
                crl.map_or(0, |c| c.1)
            ));
        }
        Ok(())
    }

    /// Tells `hook` of every reload from now on (only the first call counts).
    pub fn on_reload(&self, hook: impl Fn(String) + Send + Sync + 'static) {
        let _ = self.on_reload.set(Box::new(hook));
    }

    /// [`LiveTls::reload`], logging a failure (the old material stays in force).
    pub fn reload_logged(&self) {
        if let Err(e) = self.reload() {
            tracing::error!(error = %e, "TLS reload failed: the node keeps its current certificates (证书重新加载失败，继续使用原证书)");
            // Not tried again until a file changes once more.
            if let Ok(mut s) = self.stamps.lock() {
                *s = stamps(&self.setup);
            }
        }
    }

    /// Whether a file changed since the last load.
    pub fn changed(&self) -> bool {
        let now = stamps(&self.setup);
        self.stamps.lock().map(|s| *s != now).unwrap_or(false)
    }

    /// Whether the client certificate `der` is revoked by the CRL in force.
    /// Every call asks this: the certificate is parsed only when the CRL in force revokes
    /// anything.
    pub fn is_revoked(&self, der: &[u8]) -> bool {
        let current = self.current();
        match &current.crl {
            Some(crl) if !crl.revoked.is_empty() => {
                serial_of(der).is_some_and(|serial| crl.revoked.contains(&serial))
            }
            _ => false,
        }
    }

    /// The CRL in force, to send to children whose own is older.
    pub fn crl_for_children(&self, theirs: u64) -> Option<Vec<u8>> {
        self.current()
            .crl
            .as_ref()
            .filter(|c| c.number > theirs)
            .map(|c| c.der.clone())
    }

    /// The number of the CRL in force (0: none).
    pub fn crl_number(&self) -> u64 {
        self.current().crl.as_ref().map_or(0, |c| c.number)
    }

    /// A CRL sent by the parent: kept and put in force if it is signed by the CA and newer
    /// than the one in force. Answers whether it was taken.
    pub fn offer_crl(&self, der: &[u8]) -> Result<bool, TlsError> {
        let cas = ca_certs(&self.setup.files)?;
        let path = &self.setup.received_crl;
        let crl = check_crl(der, &cas, path)?;
        if crl.number <= self.crl_number() {
            return Ok(false);
        }
        let pem = pem::encode(&pem::Pem::new("X509 CRL", crl.der.clone()));
        let partial = path.with_extension("pem.partial");
        std::fs::write(&partial, pem).map_err(|source| TlsError::Io {
            path: partial.clone(),
            source,
        })?;
        std::fs::rename(&partial, path).map_err(|source| TlsError::Io {
            path: path.clone(),
            source,
        })?;
        self.reload()?;
        tracing::info!(
            crl_number = crl.number,
            "CRL received from the parent and in force (上级下发的吊销列表已生效)"
        );
        Ok(true)
    }

    /// The current configuration of the node's mutual-TLS listeners.
    pub fn server_source(self: &Arc<Self>) -> ServerTls {
        let me = self.clone();
        Arc::new(move || me.current().server.clone())
    }

    /// The current configuration of the web console (if wanted at load).
    pub fn web_source(self: &Arc<Self>) -> Option<ServerTls> {
        self.current().web.as_ref()?;
        let me = self.clone();
        Some(Arc::new(move || {
            let m = me.current();
            m.web.clone().unwrap_or_else(|| m.server.clone())
        }))
    }

    /// The current configuration of the citizens' channel (if wanted at load).
    pub fn public_source(self: &Arc<Self>) -> Option<ServerTls> {
        self.current().public.as_ref()?;
        let me = self.clone();
        Some(Arc::new(move || {
            let m = me.current();
            m.public.clone().unwrap_or_else(|| m.server.clone())
        }))
    }

    /// The current client configuration of the parent link (if there is a parent).
    pub fn client_source(self: &Arc<Self>) -> Option<ClientTls> {
        let first = self.current().client.clone()?;
        let me = self.clone();
        Some(Arc::new(move || {
            me.current().client.clone().unwrap_or_else(|| first.clone())
        }))
    }
}

/// Reloads on SIGHUP's behalf when a file changes, until `shutdown`.
pub fn spawn_watch(
    live: Arc<LiveTls>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(WATCH_EVERY) => {}
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
            }
            if live.changed() {
                let live = live.clone();
                let _ = tokio::task::spawn_blocking(move || live.reload_logged()).await;
            }
        }
    })
}

fn watched(setup: &TlsSetup) -> Vec<PathBuf> {
    let mut files = vec![
        setup.files.ca.clone(),
        setup.files.cert.clone(),
        setup.files.key.clone(),
        setup.received_crl.clone(),
    ];
    files.extend(setup.crl.clone());
    if let Some(Some((c, k))) = &setup.public {
        files.push(c.clone());
        files.push(k.clone());
    }
    files
}

fn stamps(setup: &TlsSetup) -> Vec<Option<SystemTime>> {
    watched(setup)
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// The newest valid CRL of the configured and the received files.
fn crl_in_force(
    setup: &TlsSetup,
    cas: &[CertificateDer<'static>],
) -> Result<Option<Crl>, TlsError> {
    let mut best: Option<Crl> = None;
    if let Some(path) = &setup.crl {
        let bytes = std::fs::read(path).map_err(|source| TlsError::Io {
            path: path.clone(),
            source,
        })?;
        best = Some(check_crl(&bytes, cas, path)?);
    }
    if let Ok(bytes) = std::fs::read(&setup.received_crl) {
        match check_crl(&bytes, cas, &setup.received_crl) {
            Ok(c) if best.as_ref().is_none_or(|b| c.number > b.number) => best = Some(c),
            Ok(_) => {}
            // A damaged received copy is ignored: the parent sends it again.
            Err(e) => tracing::warn!(error = %e, "ignoring the CRL received from the parent"),
        }
    }
    Ok(best)
}

fn build(setup: &TlsSetup) -> Result<Material, TlsError> {
    let files = &setup.files;
    let cas = ca_certs(files)?;
    let crl = crl_in_force(setup, &cas)?;
    let crls: Vec<CertificateRevocationListDer<'static>> = crl
        .iter()
        .map(|c| CertificateRevocationListDer::from(c.der.clone()))
        .collect();
    let server = crate::tls::server_rustls_config_with_crls(files, crls.clone())?;
    let web = if setup.web {
        Some(crate::tls::web_rustls_config(files)?)
    } else {
        None
    };
    let public = match &setup.public {
        None => None,
        Some(own) => Some(crate::tls::public_rustls_config(
            files,
            own.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        )?),
    };
    let client = match &setup.parent {
        Some(parent) => Some(crate::federation::connect::parent_client_config(
            files, crls, parent,
        )?),
        None => None,
    };
    let own = std::fs::read(&files.cert).map_err(|source| TlsError::Io {
        path: files.cert.clone(),
        source,
    })?;
    let own_serial = CertificateDer::pem_slice_iter(&own)
        .next()
        .and_then(Result::ok)
        .and_then(|c| serial_of(&c))
        .map_or_else(String::new, |s| hex(&s));
    Ok(Material {
        server,
        web,
        public,
        client,
        crl,
        own_serial,
    })
}

/// The tower layer that refuses a request whose client certificate the CRL in force revokes,
/// on connections opened before the revocation.
#[derive(Clone)]
pub struct RevocationLayer(pub Arc<LiveTls>);

impl<S> tower::Layer<S> for RevocationLayer {
    type Service = RevocationService<S>;
    fn layer(&self, inner: S) -> RevocationService<S> {
        RevocationService {
            inner,
            live: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RevocationService<S> {
    inner: S,
    live: Arc<LiveTls>,
}

type Connect = tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>;

impl<S, B, R> tower::Service<axum::http::Request<B>> for RevocationService<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let revoked = req
            .extensions()
            .get::<Connect>()
            .and_then(|c| c.peer_certs())
            .and_then(|certs| certs.first().map(|leaf| self.live.is_revoked(leaf)))
            .unwrap_or(false);
        if revoked {
            tracing::warn!("request on a connection whose client certificate is revoked: refused");
            let status = tonic::Status::unauthenticated(
                "the client certificate has been revoked (证书已吊销)",
            );
            let res = status.into_http::<R>();
            return Box::pin(async move { Ok(res) });
        }
        Box::pin(self.inner.call(req))
    }
}
