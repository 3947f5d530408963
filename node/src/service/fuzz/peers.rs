//! The callers of the harness, with real certificates: a CA is made once per process, a
//! certificate issued for each caller, and each completes a mutual-TLS handshake in memory
//! with the node's server configuration (`tls::server_rustls_config`, as `crate::listener`
//! uses). The connection info that handshake leaves (`TlsConnectInfo`, the peer certificates)
//! goes into each request's extensions, where a connection accepted by the node puts it: the
//! handlers take the caller from it through `tls::peer_identity` as in production.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

use super::{CHILD, NODE, PARENT};
use crate::code::NodeCode;
use crate::identity::{self, Action, Identity, Role};
use crate::{pki, tls};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Caller {
    /// No client certificate.
    Anonymous,
    /// An operator of this node, in this role.
    Here(Role),
    /// The director of the parent node: an operator of another node (a supervisor).
    ParentDirector,
    /// The director of a child node.
    ChildDirector,
    /// The parent node's certificate: a node calling the operator API.
    ParentNode,
    /// A child node's certificate.
    ChildNode,
    /// This node's own certificate.
    SelfNode,
}

impl Caller {
    /// Every caller.
    pub const ALL: [Caller; 11] = [
        Caller::Anonymous,
        Caller::Here(Role::Intake),
        Caller::Here(Role::Mediator),
        Caller::Here(Role::Director),
        Caller::Here(Role::Auditor),
        Caller::Here(Role::Admin),
        Caller::ParentDirector,
        Caller::ChildDirector,
        Caller::ParentNode,
        Caller::ChildNode,
        Caller::SelfNode,
    ];

    /// The identity its certificate carries (none without one).
    pub fn identity(self) -> Option<Identity> {
        let code = |c: &str| NodeCode::parse(c).unwrap_or_else(|_| unreachable!("a valid code"));
        let op = |c: &str, role| {
            Identity::operator(code(c), role, "fuzz").unwrap_or_else(|_| unreachable!("a user"))
        };
        Some(match self {
            Caller::Anonymous => return None,
            Caller::Here(role) => op(NODE, role),
            Caller::ParentDirector => op(PARENT, Role::Director),
            Caller::ChildDirector => op(CHILD, Role::Director),
            Caller::ParentNode => Identity::node(code(PARENT)),
            Caller::ChildNode => Identity::node(code(CHILD)),
            Caller::SelfNode => Identity::node(code(NODE)),
        })
    }

    /// Whether the permission table lets it do `action` at this node.
    pub fn may(self, action: Action) -> bool {
        self.identity().is_some_and(|id| {
            identity::authorize(&id, &NodeCode::parse(NODE).expect("a code"), action).is_ok()
        })
    }
}

/// A connection's two ends in memory, seen by tonic as a TCP connection without addresses.
struct Pipe(DuplexStream);

impl Connected for Pipe {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: None,
            remote_addr: None,
        }
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// What a connection of each caller with a certificate carries.
pub(super) type Connection = TlsConnectInfo<TcpConnectInfo>;

/// The connection of every caller with a certificate (made once per process).
pub(super) fn connections() -> &'static HashMap<Caller, Connection> {
    static CONNECTIONS: OnceLock<HashMap<Caller, Connection>> = OnceLock::new();
    CONNECTIONS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(handshakes())
    })
}

async fn handshakes() -> HashMap<Caller, Connection> {
    tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let dir = dir.path();
    pki::init_ca(dir).expect("a CA");
    let node = NodeCode::parse(NODE).expect("a code");
    let files = |issued: pki::IssuedPaths| tls::TlsFiles {
        ca: pki::ca_cert_path(dir),
        cert: issued.cert,
        key: issued.key,
    };
    let server = tls::server_rustls_config(&files(
        pki::issue_node(dir, &node, &[]).expect("the node's certificate"),
    ))
    .expect("the server's TLS configuration");
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let mut out = HashMap::new();
    for caller in Caller::ALL {
        let issued = match caller.identity() {
            None => continue,
            Some(Identity::Node { code }) => pki::issue_node(dir, &code, &[]),
            Some(Identity::Operator { code, role, user }) => {
                pki::issue_operator(dir, &code, role, &user)
            }
        }
        .expect("a certificate");
        let client =
            crate::federation::connect::parent_client_config(&files(issued), Vec::new(), &node)
                .expect("the client's TLS configuration");
        let connector = tokio_rustls::TlsConnector::from(client);
        let (a, b) = tokio::io::duplex(1 << 16);
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
        let (accepted, connected) =
            tokio::join!(acceptor.accept(Pipe(a)), connector.connect(name, b));
        let accepted = accepted.expect("the handshake, server side");
        connected.expect("the handshake, client side");
        let info = accepted.connect_info();
        assert!(
            info.peer_certs().is_some(),
            "{caller:?} presented its certificate"
        );
        out.insert(caller, info);
    }
    out
}
