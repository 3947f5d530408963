//! The child's connection to its parent: mutual TLS that also checks *who* the server is.
//!
//! tonic's TLS checks that the server's certificate chains to the CA and names the host in the
//! URL; every node certificate does both for `localhost`, so that alone would let a child talk
//! to any node answering at its parent's address. Here the chain and host name are checked by
//! rustls' WebPKI verifier as usual, and then the certificate's identity URI must be exactly
//! `spiffe://fengqiao/node/<the parent's code>`; anything else fails the handshake.
//!
//! The channel is built on a custom connector (TCP, then tokio-rustls with that verifier), so
//! tonic sees a plain `http://` endpoint over an already-encrypted stream. It connects lazily
//! and reconnects by itself; HTTP/2 keep-alives notice a dead connection within about
//! [`KEEPALIVE_INTERVAL`] + [`KEEPALIVE_TIMEOUT`] even when no call is running.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::code::NodeCode;
use crate::identity::Identity;
use crate::live_tls::ClientTls;
use crate::tls::{self, CONNECT_TIMEOUT, HANDSHAKE_TIMEOUT, TlsError, TlsFiles};

/// HTTP/2 ping interval on the parent link.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a ping may go unanswered before the connection is dropped.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts a server only if WebPKI accepts it and its identity is `expected`.
#[derive(Debug)]
struct PeerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    expected: Identity,
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        match Identity::from_cert_der(end_entity) {
            Ok(id) if id == self.expected => Ok(ServerCertVerified::assertion()),
            Ok(id) => Err(rustls::Error::General(format!(
                "server is {id}, expected the parent {}",
                self.expected
            ))),
            Err(e) => Err(rustls::Error::General(format!("server certificate: {e}"))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn bad_url(url: &str, reason: impl Into<String>) -> TlsError {
    TlsError::BadUrl {
        url: url.to_owned(),
        reason: reason.into(),
    }
}

/// The client configuration of the link to `parent`: present this node's certificate, and
/// accept only a server that WebPKI accepts (chain, host name, and not revoked by `crls`,
/// checked by the caller: signed by the CA) and whose identity is `parent`.
pub fn parent_client_config(
    files: &TlsFiles,
    crls: Vec<rustls::pki_types::CertificateRevocationListDer<'static>>,
    parent: &NodeCode,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let (ca, chain, key) = tls::load_rustls(files)?;
    let mut roots = RootCertStore::empty();
    for c in ca {
        roots.add(c).map_err(|e| TlsError::Pem {
            path: files.ca.clone(),
            reason: format!("unusable CA certificate: {e}"),
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(crls)
        .only_check_end_entity_revocation()
        .allow_unknown_revocation_status()
        .build()
        .map_err(|e| TlsError::Pem {
            path: files.ca.clone(),
            reason: format!("cannot build a verifier: {e}"),
        })?;
    let verifier = PeerVerifier {
        inner: webpki,
        expected: Identity::node(parent.clone()),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Pem {
            path: files.cert.clone(),
            reason: format!("TLS versions: {e}"),
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(chain, key)
        .map_err(|e| TlsError::Pem {
            path: files.key.clone(),
            reason: format!("unusable certificate or key: {e}"),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A lazily connecting channel to the parent at `url` (`https://host:port`), which must prove
/// to be node `parent` (see [`parent_client_config`]).
pub fn parent_channel(url: &str, files: &TlsFiles, parent: &NodeCode) -> Result<Channel, TlsError> {
    let config = parent_client_config(files, Vec::new(), parent)?;
    parent_channel_with(url, Arc::new(move || config.clone()))
}

/// [`parent_channel`] whose every connection takes the client configuration `client` answers
/// then (a reloaded certificate or CRL is used from the next reconnection on).
pub fn parent_channel_with(url: &str, client: ClientTls) -> Result<Channel, TlsError> {
    let uri: Uri = url.parse().map_err(|e| bad_url(url, format!("{e}")))?;
    if uri.scheme_str() != Some("https") {
        return Err(TlsError::NotHttps {
            url: url.to_owned(),
        });
    }
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad_url(url, "no host"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let server_name = ServerName::try_from(host.clone())
        .map_err(|e| bad_url(url, format!("server name: {e}")))?;

    let connect = tower::service_fn(move |_: Uri| {
        let (host, server_name) = (host.clone(), server_name.clone());
        let connector = tokio_rustls::TlsConnector::from(client());
        async move {
            let tcp = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::TcpStream::connect((host.as_str(), port)),
            )
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
            tcp.set_nodelay(true)?;
            let stream =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(server_name, tcp))
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })??;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    // The scheme only tells tonic to speak plain HTTP/2 over what the connector returns.
    let endpoint = Endpoint::from_shared(format!(
        "http://{}",
        uri.authority().map_or("", |a| a.as_str())
    ))
    .map_err(|e| bad_url(url, format!("{e}")))?
    .connect_timeout(CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT)
    .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
    .keep_alive_timeout(KEEPALIVE_TIMEOUT)
    .keep_alive_while_idle(true);
    Ok(endpoint.connect_with_connector_lazy(connect))
}
