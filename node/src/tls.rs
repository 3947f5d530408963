//! Mutual TLS between nodes and from operators: configurations for tonic servers and
//! channels, and the caller's identity on the server side.
//!
//! Invariants:
//! * a server always requires a client certificate signed by its CA;
//! * a client connects only to `https://` URLs and always presents its certificate;
//! * the server name checked by the client is the URL's host: an IP address (`127.0.0.1`,
//!   `[::1]`) is checked against the certificate's IP SANs, a name (`localhost`) against its
//!   DNS SANs. Node certificates from [`crate::pki`] cover `localhost`, `127.0.0.1` and `::1`;
//! * files are checked when loaded: each error names the file, and a certificate that has
//!   expired or does not match its key is refused before any connection is attempted.
//!
//! Handshakes time out after [`HANDSHAKE_TIMEOUT`]. The crypto provider is rustls' `ring`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, ServerTlsConfig, Uri};

use crate::identity::Identity;

/// Bound on a TLS handshake, on both sides.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on establishing a TCP connection from [`connect`] and [`connect_lazy`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The three PEM files of a TLS participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate(s) that peers must chain to.
    pub ca: PathBuf,
    /// This participant's certificate (leaf first, optionally followed by intermediates).
    pub cert: PathBuf,
    /// This participant's private key.
    pub key: PathBuf,
}

/// Loading TLS material or connecting failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not the PEM it should be.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error("key {} does not match certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The certificate's validity period has ended.
    #[error("certificate {} expired at {not_after}: issue a new one", path.display())]
    Expired {
        /// The certificate file.
        path: PathBuf,
        /// End of its validity.
        not_after: String,
    },
    /// The certificate's validity period has not started (check the clock).
    #[error("certificate {} is not valid before {not_before}: check the system clock", path.display())]
    NotYetValid {
        /// The certificate file.
        path: PathBuf,
        /// Start of its validity.
        not_before: String,
    },
    /// The URL's scheme is not `https`.
    #[error(
        "refusing to connect to {url:?}: only https:// URLs are allowed (mutual TLS is mandatory)"
    )]
    NotHttps {
        /// The URL as given.
        url: String,
    },
    /// The URL cannot be parsed or has no host.
    #[error("invalid URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The transport refused the configuration or the connection failed.
    #[error("{what} {url}: {}", ErrorChain(source))]
    Transport {
        /// What was attempted.
        what: &'static str,
        /// The URL.
        url: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
}

/// Displays an error followed by its sources (tonic's transport errors say little alone).
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(e) = source {
            // Some errors already print their source; don't say it twice.
            let next = e.to_string();
            if !text.ends_with(&next) {
                text.push_str(": ");
                text.push_str(&next);
            }
            source = e.source();
        }
        f.write_str(&text)
    }
}

/// Installs rustls' `ring` crypto provider as the process default. Idempotent: a provider
/// already installed (by this function or anyone else) is left in place.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Server side, in rustls' types for the node's own listeners (`crate::listener`): present
/// `cert`/`key`, require a client certificate chaining to `ca`, speak HTTP/2 (ALPN `h2`).
/// Files are checked as for [`server_tls_config`].
pub fn server_rustls_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_rustls_config_with_crls(files, Vec::new())
}

/// [`server_rustls_config`] that also refuses client certificates revoked by `crls` (checked
/// by the caller: signed by the CA). Only end-entity certificates are checked; a certificate
/// whose issuer has no CRL here is accepted.
pub fn server_rustls_config_with_crls(
    files: &TlsFiles,
    crls: Vec<rustls::pki_types::CertificateRevocationListDer<'static>>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (ca, chain, key) = load_rustls(files)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(ca);
    if added == 0 {
        return Err(TlsError::Pem {
            path: files.ca.clone(),
            reason: "no usable CA certificate".into(),
        });
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .with_crls(crls)
    .only_check_end_entity_revocation()
    .allow_unknown_revocation_status()
    .build()
    .map_err(|e| TlsError::Pem {
        path: files.ca.clone(),
        reason: format!("cannot verify clients with it: {e}"),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            b.with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)
        })
        .map_err(|e| TlsError::Pem {
            path: files.key.clone(),
            reason: format!("unusable certificate or key: {e}"),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Server side for browsers (the web console): present `cert`/`key`, ask for no client
/// certificate (people sign in with an account), speak HTTP/1.1. Files are checked as for
/// [`server_tls_config`].
pub fn web_rustls_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (_ca, chain, key) = load_rustls(files)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| TlsError::Pem {
            path: files.key.clone(),
            reason: format!("unusable certificate or key: {e}"),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The citizens' channel (`public_listen`): like [`web_rustls_config`], with the node's own
/// certificate, or with `cert` and `key` (PEM; a chain from a public CA that phones trust).
pub fn public_rustls_config(
    files: &TlsFiles,
    own: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let Some((cert, key_path)) = own else {
        return web_rustls_config(files);
    };
    let chain = certificates(cert, &read(cert)?)?;
    check_validity(cert, &chain[0])?;
    let key = PrivateKeyDer::from_pem_slice(&read(key_path)?).map_err(|e| TlsError::Pem {
        path: key_path.to_path_buf(),
        reason: format!("no usable private key: {e}"),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| TlsError::Pem {
            path: key_path.to_path_buf(),
            reason: format!("unusable certificate or key: {e}"),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Server side with tonic's own TLS: present `cert`/`key` and require a client certificate
/// chaining to `ca`. (The node's listeners use [`server_rustls_config`] instead.)
pub fn server_tls_config(files: &TlsFiles) -> Result<ServerTlsConfig, TlsError> {
    let loaded = Loaded::read(files)?;
    Ok(ServerTlsConfig::new()
        .identity(loaded.identity)
        .client_ca_root(loaded.ca)
        .client_auth_optional(false)
        .timeout(HANDSHAKE_TIMEOUT))
}

/// Client side: present `cert`/`key` and trust only servers chaining to `ca`.
///
/// The server name to verify is taken from the URL's host by tonic; [`connect`] sets it
/// explicitly so that bracketed IPv6 hosts work too.
pub fn client_tls_config(files: &TlsFiles) -> Result<ClientTlsConfig, TlsError> {
    let loaded = Loaded::read(files)?;
    Ok(ClientTlsConfig::new()
        .ca_certificate(loaded.ca)
        .identity(loaded.identity)
        .timeout(HANDSHAKE_TIMEOUT))
}

/// The identity in this participant's own certificate (`files.cert`).
pub fn local_identity(files: &TlsFiles) -> Result<Identity, TlsError> {
    let pem = read(&files.cert)?;
    let leaf = certificates(&files.cert, &pem)?.swap_remove(0);
    Identity::from_cert_der(&leaf).map_err(|e| TlsError::Pem {
        path: files.cert.clone(),
        reason: e.to_string(),
    })
}

/// A mutual-TLS endpoint for an `https://` URL, for callers that want to tune it further
/// (timeouts, keep-alive) before connecting. Any other scheme is an error.
pub fn endpoint(url: &str, files: &TlsFiles) -> Result<Endpoint, TlsError> {
    let uri: Uri = url.parse().map_err(|e| TlsError::BadUrl {
        url: url.to_owned(),
        reason: format!("{e}"),
    })?;
    if uri.scheme_str() != Some("https") {
        return Err(TlsError::NotHttps {
            url: url.to_owned(),
        });
    }
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| TlsError::BadUrl {
            url: url.to_owned(),
            reason: "no host".into(),
        })?;
    // http::Uri keeps the brackets of an IPv6 host; a TLS server name must not have them.
    let server_name = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_owned();
    let tls = client_tls_config(files)?.domain_name(server_name);
    let transport = |what| {
        move |source| TlsError::Transport {
            what,
            url: url.to_owned(),
            source,
        }
    };
    Ok(Endpoint::from(uri)
        .tls_config(tls)
        .map_err(transport("invalid TLS configuration for"))?
        .connect_timeout(CONNECT_TIMEOUT))
}

/// Connects to an `https://` URL with mutual TLS. Any other scheme is an error: a node never
/// talks plaintext by accident.
pub async fn connect(url: &str, files: &TlsFiles) -> Result<Channel, TlsError> {
    endpoint(url, files)?
        .connect()
        .await
        .map_err(|source| TlsError::Transport {
            what: "cannot connect to",
            url: url.to_owned(),
            source,
        })
}

/// Like [`connect`] but connects on first use; configuration errors are still reported now.
pub fn connect_lazy(url: &str, files: &TlsFiles) -> Result<Channel, TlsError> {
    Ok(endpoint(url, files)?.connect_lazy())
}

/// The caller's identity from the request's peer certificate (already verified against the
/// CA by the TLS layer). `UNAUTHENTICATED` if there is no certificate or it carries no valid
/// fengqiao identity.
///
/// Peer certificates are available on connections accepted by `crate::listener` (or by
/// tonic's TCP incoming with TLS, `Server::serve*` with `tls_config`).
pub fn peer_identity<T>(req: &tonic::Request<T>) -> Result<Identity, tonic::Status> {
    use crate::error::Error;
    let missing = || Error::Unauthenticated("no client certificate: mutual TLS is required".into());
    let certs = req.peer_certs().ok_or_else(missing)?;
    let leaf = certs.first().ok_or_else(missing)?;
    Identity::from_cert_der(leaf)
        .map_err(|e| Error::Unauthenticated(format!("client certificate: {e}")).into())
}

/// The CA certificates, this participant's certificate chain and its key, read and checked
/// as for [`client_tls_config`], in rustls' types (for connections tonic's TLS cannot make,
/// such as the federation's link to a parent whose identity is checked too).
#[allow(clippy::type_complexity)]
pub(crate) fn load_rustls(
    files: &TlsFiles,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        Vec<CertificateDer<'static>>,
        PrivateKeyDer<'static>,
    ),
    TlsError,
> {
    Loaded::read(files)?;
    let ca = certificates(&files.ca, &read(&files.ca)?)?;
    let chain = certificates(&files.cert, &read(&files.cert)?)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|e| TlsError::Pem {
        path: files.key.clone(),
        reason: format!("no usable private key: {e}"),
    })?;
    Ok((ca, chain, key))
}

/// TLS material read and checked, in tonic's types.
struct Loaded {
    ca: Certificate,
    identity: tonic::transport::Identity,
}

impl Loaded {
    fn read(files: &TlsFiles) -> Result<Loaded, TlsError> {
        let ca_pem = read(&files.ca)?;
        certificates(&files.ca, &ca_pem)?;

        let cert_pem = read(&files.cert)?;
        let chain = certificates(&files.cert, &cert_pem)?;
        check_validity(&files.cert, &chain[0])?;

        let key_pem = read(&files.key)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
            path: files.key.clone(),
            reason: format!("no usable private key: {e}"),
        })?;
        let provider = rustls::crypto::ring::default_provider();
        match rustls::sign::CertifiedKey::from_der(chain, key, &provider) {
            Ok(_) => {}
            Err(rustls::Error::InconsistentKeys(_)) => {
                return Err(TlsError::KeyMismatch {
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                });
            }
            Err(e) => {
                return Err(TlsError::Pem {
                    path: files.key.clone(),
                    reason: format!("unusable private key: {e}"),
                });
            }
        }
        Ok(Loaded {
            ca: Certificate::from_pem(ca_pem),
            identity: tonic::transport::Identity::from_pem(cert_pem, key_pem),
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

/// All certificates of a PEM file; at least one.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            reason: format!("invalid PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            reason: "no certificate found".into(),
        });
    }
    Ok(certs)
}

/// Refuses a certificate outside its validity period, with a clear message, instead of
/// leaving the peer to fail the handshake.
fn check_validity(path: &Path, der: &CertificateDer<'_>) -> Result<(), TlsError> {
    let (_, x509) = x509_parser::parse_x509_certificate(der).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        reason: format!("not an X.509 certificate: {e}"),
    })?;
    let validity = x509.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now > validity.not_after {
        return Err(TlsError::Expired {
            path: path.to_owned(),
            not_after: validity.not_after.to_string(),
        });
    }
    if now < validity.not_before {
        return Err(TlsError::NotYetValid {
            path: path.to_owned(),
            not_before: validity.not_before.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::NodeCode;
    use crate::identity::Role;
    use crate::pki::{self, IssuedPaths, Validity};
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use tokio::sync::watch;
    use tokio::task::JoinHandle;
    use tonic::service::interceptor::InterceptedService;
    use tonic::transport::Server;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    /// Bound on every network wait in these tests.
    const WAIT: Duration = Duration::from_secs(20);

    fn code(s: &str) -> NodeCode {
        NodeCode::parse(s).unwrap()
    }

    fn files(ca_dir: &Path, issued: IssuedPaths) -> TlsFiles {
        TlsFiles {
            ca: pki::ca_cert_path(ca_dir),
            cert: issued.cert,
            key: issued.key,
        }
    }

    struct TestServer {
        addr: SocketAddr,
        seen: Arc<Mutex<Vec<Identity>>>,
        shutdown: Option<watch::Sender<bool>>,
        handle: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    }

    impl TestServer {
        /// A health service behind mutual TLS on 127.0.0.1:0, accepted as the node accepts
        /// (`crate::listener`); an interceptor records the identity of every caller.
        async fn start(files: &TlsFiles) -> TestServer {
            let limits = crate::listener::Limits {
                max_connections: 64,
                max_handshakes: 8,
                handshake_timeout: HANDSHAKE_TIMEOUT,
            };
            TestServer::start_with(files, limits).await
        }

        async fn start_with(files: &TlsFiles, limits: crate::listener::Limits) -> TestServer {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (_reporter, health) = tonic_health::server::health_reporter();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let record = seen.clone();
            let svc = InterceptedService::new(health, move |req: tonic::Request<()>| {
                let id = peer_identity(&req)?;
                record.lock().unwrap().push(id);
                Ok(req)
            });
            let (tx, rx) = watch::channel(false);
            let incoming = crate::listener::incoming(
                "test",
                listener,
                server_rustls_config(files).unwrap(),
                limits,
                rx.clone(),
            );
            let mut stop = rx;
            let server = Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                });
            TestServer {
                addr,
                seen,
                shutdown: Some(tx),
                handle: Some(tokio::spawn(server)),
            }
        }

        fn url(&self, host: &str) -> String {
            format!("https://{host}:{}", self.addr.port())
        }

        fn seen(&self) -> Vec<Identity> {
            self.seen.lock().unwrap().clone()
        }

        async fn stop(mut self) {
            if let Some(tx) = self.shutdown.take() {
                let _ = tx.send(true);
            }
            if let Some(handle) = self.handle.take() {
                let result = tokio::time::timeout(WAIT, handle).await;
                assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
            }
        }
    }

    /// Connects (if needed) and runs one health check, all within [`WAIT`].
    ///
    /// With TLS 1.3 the client finishes its side of the handshake before the server has
    /// checked the client certificate, so a refused client may "connect" and only fail on
    /// its first call: both steps count, and the error carries the server's alert.
    async fn health(channel: impl Future<Output = Result<Channel, String>>) -> Result<(), String> {
        let run = async {
            let channel = channel.await?;
            let response = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map_err(|s| format!("{s:?}"))?;
            assert_eq!(response.into_inner().status, ServingStatus::Serving as i32);
            Ok(())
        };
        tokio::time::timeout(WAIT, run)
            .await
            .map_err(|_| "timed out".to_string())?
    }

    async fn via_files(url: String, files: TlsFiles) -> Result<Channel, String> {
        connect(&url, &files).await.map_err(|e| e.to_string())
    }

    /// Connects with a hand-built client configuration, bypassing our own checks, to test
    /// what the server enforces.
    async fn via_config(url: String, tls: ClientTlsConfig) -> Result<Channel, String> {
        Endpoint::from_shared(url)
            .map_err(|e| e.to_string())?
            .tls_config(tls)
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("{}", ErrorChain(&e)))
    }

    struct Fixture {
        dir: tempfile::TempDir,
        server: TestServer,
    }

    impl Fixture {
        async fn new() -> Fixture {
            install_crypto_provider();
            let dir = tempfile::tempdir().unwrap();
            pki::init_ca(dir.path()).unwrap();
            let node = pki::issue_node(dir.path(), &code("610116"), &[]).unwrap();
            let server = TestServer::start(&files(dir.path(), node)).await;
            Fixture { dir, server }
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }
    }

    #[tokio::test]
    async fn operator_and_node_are_accepted_and_identified() {
        let fx = Fixture::new().await;
        let op = pki::issue_operator(fx.path(), &code("610116"), Role::Intake, "li").unwrap();
        let op_files = files(fx.path(), op);
        health(via_files(fx.server.url("127.0.0.1"), op_files.clone()))
            .await
            .unwrap();

        // A child node calling its parent, by name this time.
        let child = pki::issue_node(fx.path(), &code("610116001"), &[]).unwrap();
        let child_files = files(fx.path(), child);
        health(via_files(fx.server.url("localhost"), child_files.clone()))
            .await
            .unwrap();

        // Lazy channels work as well.
        let lazy = connect_lazy(&fx.server.url("127.0.0.1"), &op_files).unwrap();
        health(async { Ok(lazy) }).await.unwrap();

        let li = Identity::operator(code("610116"), Role::Intake, "li").unwrap();
        let child = Identity::node(code("610116001"));
        assert_eq!(
            fx.server.seen(),
            vec![li.clone(), child.clone(), li.clone()]
        );
        assert_eq!(local_identity(&op_files).unwrap(), li);
        assert_eq!(local_identity(&child_files).unwrap(), child);
        fx.server.stop().await;
    }

    /// The connection cap closes connections over it, spares those already open, and frees
    /// its permits when idle connections go away.
    #[tokio::test]
    async fn idle_connections_are_capped_and_open_ones_keep_working() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        pki::init_ca(dir.path()).unwrap();
        let node = pki::issue_node(dir.path(), &code("610116"), &[]).unwrap();
        let limits = crate::listener::Limits {
            max_connections: 3,
            max_handshakes: 1,
            // Never reached: the idle connections are closed by the test.
            handshake_timeout: Duration::from_secs(600),
        };
        let server = TestServer::start_with(&files(dir.path(), node), limits).await;
        let op = pki::issue_operator(dir.path(), &code("610116"), Role::Intake, "li").unwrap();
        let op_files = files(dir.path(), op);
        let url = server.url("127.0.0.1");
        let operator = connect(&url, &op_files).await.unwrap();
        health(async { Ok(operator.clone()) }).await.unwrap();

        // Two idle connections take the remaining permits (one holds the only handshake slot).
        let idle: Vec<_> = [0, 1]
            .map(|_| std::net::TcpStream::connect(server.addr).unwrap())
            .into();
        // The next one is closed at once.
        let mut extra = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut extra, &mut buf))
            .await
            .expect("the connection over the cap is closed");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        // The operator's open connection is still served.
        health(async { Ok(operator.clone()) }).await.unwrap();

        drop(idle);
        // Their handshakes end at EOF and free the permits: a new connection gets through.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match health(via_files(url.clone(), op_files.clone())).await {
                Ok(()) => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("no new connection after the idle ones closed: {e}"),
            }
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn missing_client_certificate_is_refused() {
        let fx = Fixture::new().await;
        let ca = std::fs::read(pki::ca_cert_path(fx.path())).unwrap();
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .timeout(HANDSHAKE_TIMEOUT);
        let err = health(via_config(fx.server.url("127.0.0.1"), tls))
            .await
            .unwrap_err();
        assert!(err.contains("CertificateRequired"), "{err}");
        assert!(fx.server.seen().is_empty());
        fx.server.stop().await;
    }

    #[tokio::test]
    async fn certificate_from_a_foreign_ca_is_refused() {
        let fx = Fixture::new().await;
        let foreign = tempfile::tempdir().unwrap();
        pki::init_ca(foreign.path()).unwrap();
        let op = pki::issue_operator(foreign.path(), &code("610116"), Role::Director, "mallory")
            .unwrap();
        // Trusts the right CA for the server but presents a certificate from another CA.
        let tls_files = TlsFiles {
            ca: pki::ca_cert_path(fx.path()),
            cert: op.cert,
            key: op.key,
        };
        let err = health(via_files(fx.server.url("127.0.0.1"), tls_files))
            .await
            .unwrap_err();
        assert!(err.contains("UnknownCA"), "{err}");
        assert!(fx.server.seen().is_empty());
        fx.server.stop().await;
    }

    #[tokio::test]
    async fn expired_certificate_is_refused() {
        let fx = Fixture::new().await;
        let now = time::OffsetDateTime::now_utc();
        let expired = Validity {
            not_before: now - time::Duration::days(30),
            not_after: now - time::Duration::days(1),
        };
        let op = pki::issue_operator_with(fx.path(), &code("610116"), Role::Intake, "old", expired)
            .unwrap();
        let op_files = files(fx.path(), op);

        // Our own loader refuses it with a clear message ...
        let err = client_tls_config(&op_files).unwrap_err();
        assert!(matches!(err, TlsError::Expired { .. }), "{err}");
        assert!(
            err.to_string().contains("op-610116-intake-old.pem"),
            "{err}"
        );

        // ... and the server refuses it even from a client that does not check.
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(std::fs::read(&op_files.ca).unwrap()))
            .identity(tonic::transport::Identity::from_pem(
                std::fs::read(&op_files.cert).unwrap(),
                std::fs::read(&op_files.key).unwrap(),
            ))
            .timeout(HANDSHAKE_TIMEOUT);
        let err = health(via_config(fx.server.url("127.0.0.1"), tls))
            .await
            .unwrap_err();
        assert!(err.contains("CertificateExpired"), "{err}");
        assert!(fx.server.seen().is_empty());
        fx.server.stop().await;
    }

    #[tokio::test]
    async fn client_verifies_the_server() {
        let fx = Fixture::new().await;
        let op = pki::issue_operator(fx.path(), &code("610116"), Role::Intake, "li").unwrap();
        let op_files = files(fx.path(), op);

        // Wrong server name.
        let tls = client_tls_config(&op_files)
            .unwrap()
            .domain_name("other.example");
        let err = health(via_config(fx.server.url("127.0.0.1"), tls))
            .await
            .unwrap_err();
        assert!(
            err.contains("NotValidForName") || err.contains("not valid for"),
            "{err}"
        );

        // A client that trusts another CA does not accept this server.
        let foreign = tempfile::tempdir().unwrap();
        pki::init_ca(foreign.path()).unwrap();
        let theirs =
            pki::issue_operator(foreign.path(), &code("610116"), Role::Intake, "li").unwrap();
        let err = health(via_files(
            fx.server.url("127.0.0.1"),
            files(foreign.path(), theirs),
        ))
        .await
        .unwrap_err();
        assert!(
            err.contains("UnknownIssuer") || err.contains("unknown issuer"),
            "{err}"
        );
        assert!(fx.server.seen().is_empty());
        fx.server.stop().await;
    }

    #[tokio::test]
    async fn plaintext_urls_are_refused() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        pki::init_ca(dir.path()).unwrap();
        let op = pki::issue_operator(dir.path(), &code("61"), Role::Admin, "it").unwrap();
        let f = files(dir.path(), op);
        for url in ["http://127.0.0.1:50051", "HTTP://localhost:1", "grpc://x:1"] {
            let err = connect(url, &f).await.unwrap_err();
            assert!(matches!(err, TlsError::NotHttps { .. }), "{url}: {err}");
            assert!(matches!(
                connect_lazy(url, &f),
                Err(TlsError::NotHttps { .. })
            ));
        }
        for url in ["127.0.0.1:50051", "", "https://", "https:///x"] {
            let err = connect(url, &f).await.unwrap_err();
            assert!(
                matches!(err, TlsError::NotHttps { .. } | TlsError::BadUrl { .. }),
                "{url}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn ipv6_host_names_are_unbracketed() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        pki::init_ca(dir.path()).unwrap();
        let node = pki::issue_node(dir.path(), &code("610116"), &[]).unwrap();
        let f = files(dir.path(), node);
        // Only configuration is checked here: building the endpoint must accept "[::1]".
        assert!(endpoint("https://[::1]:50051", &f).is_ok());
    }

    #[test]
    fn load_errors_name_the_file() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        pki::init_ca(dir.path()).unwrap();
        let a = pki::issue_node(dir.path(), &code("6101"), &[]).unwrap();
        let b = pki::issue_node(dir.path(), &code("6102"), &[]).unwrap();
        let good = files(dir.path(), a.clone());
        assert!(server_tls_config(&good).is_ok());
        assert!(client_tls_config(&good).is_ok());

        let missing = TlsFiles {
            key: dir.path().join("nope.key"),
            ..good.clone()
        };
        let err = server_tls_config(&missing).unwrap_err();
        assert!(matches!(err, TlsError::Io { .. }));
        assert!(err.to_string().contains("nope.key"), "{err}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "hello").unwrap();
        for f in [
            TlsFiles {
                ca: garbage.clone(),
                ..good.clone()
            },
            TlsFiles {
                cert: garbage.clone(),
                ..good.clone()
            },
            TlsFiles {
                key: garbage.clone(),
                ..good.clone()
            },
        ] {
            let err = client_tls_config(&f).unwrap_err();
            assert!(err.to_string().contains("garbage.pem"), "{err}");
        }

        let mismatched = TlsFiles {
            key: b.key,
            ..good.clone()
        };
        let err = server_tls_config(&mismatched).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("node-6102.key"), "{err}");
    }

    #[test]
    fn peer_identity_requires_a_certificate() {
        let status = peer_identity(&tonic::Request::new(())).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn crypto_provider_install_is_idempotent() {
        install_crypto_provider();
        install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
