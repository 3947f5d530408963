//! Who is calling: SPIFFE-style identities carried in certificates, operator roles, and the
//! permission table.
//!
//! Every certificate issued by a fengqiao CA carries exactly one URI subject-alternative name
//! in the `spiffe://fengqiao/` trust domain:
//!
//! * a node (a 综治中心's server, also a client of its parent): `spiffe://fengqiao/node/CODE`
//! * an operator (a person at a center): `spiffe://fengqiao/op/CODE/ROLE/USER`
//!
//! `CODE` is a [`NodeCode`], `ROLE` a [`Role`] (`intake`, `mediator`, `director`, `auditor`,
//! `admin`) and `USER` matches `[A-Za-z0-9._-]{1,64}` (but is not `.` or `..`). The TLS layer
//! has already verified the chain to the CA when [`Identity::from_cert_der`] is called on a
//! peer certificate, so the identity is as trustworthy as the CA.
//!
//! # Permission table
//!
//! An operator may act only at the node named in their certificate ([`authorize`]); what they
//! may do there depends on their role ([`allowed`]):
//!
//! | action              | intake 窗口受理 | mediator 调解员 | director 中心主任 | auditor 审计 | admin 系统管理员 |
//! |---------------------|:---:|:---:|:---:|:---:|:---:|
//! | `ReadCase`          | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | `ReadPersonalData`  | ✓ | ✓ | ✓ |   |   |
//! | `RegisterCase`      | ✓ |   | ✓ |   |   |
//! | `AcceptCase`        | ✓ |   | ✓ |   |   |
//! | `RejectCase`        |   |   | ✓ |   | ✓ |
//! | `AssignCase`        | ✓ |   | ✓ |   |   |
//! | `RecordMediation`   |   | ✓ | ✓ |   |   |
//! | `ResolveCase`       |   | ✓ | ✓ |   |   |
//! | `RecordFollowUp`    | ✓ | ✓ | ✓ |   |   |
//! | `EscalateCase`      |   |   | ✓ |   | ✓ |
//! | `TransferCase`      |   |   | ✓ |   | ✓ |
//! | `SuperviseCase`     |   |   | ✓ |   | ✓ |
//! | `ChangeRisk`        |   |   | ✓ |   |   |
//! | `ExtendDeadline`    |   |   | ✓ |   |   |
//! | `ReadLinks`         | ✓ |   | ✓ | ✓ | ✓ |
//! | `ReadStats`         | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | `ReadAlerts`        | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | `ExportReport`      |   |   | ✓ | ✓ | ✓ |
//! | `PlanCase`          |   | ✓ | ✓ |   |   |
//! | `ManageUsers`       |   |   |   |   | ✓ |
//! | `ReadAccessLog`     |   |   |   | ✓ |   |
//! | `ImportCases`       |   |   | ✓ |   |   |
//! | `Backup`            |   |   |   |   | ✓ |
//!
//! In words: the director may do all the center's work — console accounts and backups are
//! the admin's alone, the log of who viewed personal data the auditor's (等保: administration and audit
//! apart from the business); the auditor only reads (never personal data);
//! county IT (admin) runs the node and routes cases but never sees personal data, registers,
//! mediates or resolves; rejecting, escalating and transferring belong to the director and
//! admin only. Changing a case's risk and extending its deadline (once, with a reason) are the
//! director's alone; the "六个一" plan and progress table are kept by the people working the
//! case (mediator and director).

use std::fmt;
use std::str::FromStr;

use crate::code::{CodeError, NodeCode};

/// The trust domain prefix shared by every fengqiao identity URI.
pub const SPIFFE_PREFIX: &str = "spiffe://fengqiao/";

/// Maximum length of an operator user name.
pub const MAX_USER_LEN: usize = 64;

/// The role of an operator at a center. Stored in console accounts by variant index: new
/// roles go at the end.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Role {
    /// 窗口受理: intake staff at the window.
    Intake,
    /// 调解员: mediator.
    Mediator,
    /// 中心主任: center director.
    Director,
    /// 审计: auditor, read-only.
    Auditor,
    /// 系统管理员: county IT who run the node.
    Admin,
}

impl Role {
    /// All roles.
    pub const ALL: [Role; 5] = [
        Role::Intake,
        Role::Mediator,
        Role::Director,
        Role::Auditor,
        Role::Admin,
    ];

    /// The stable name used in identity URIs, file names and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Intake => "intake",
            Role::Mediator => "mediator",
            Role::Director => "director",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            Role::Intake => "窗口受理",
            Role::Mediator => "调解员",
            Role::Director => "中心主任",
            Role::Auditor => "审计",
            Role::Admin => "系统管理员",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected one of intake, mediator, director, auditor, admin")]
pub struct RoleError(pub String);

impl FromStr for Role {
    type Err = RoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| RoleError(s.to_owned()))
    }
}

/// What an operator asks to do. Checked against the role by [`allowed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read a case (personal data masked).
    ReadCase,
    /// Read the parties' personal data unmasked.
    ReadPersonalData,
    /// Register a new case (登记).
    RegisterCase,
    /// Accept an unreviewed case (受理).
    AcceptCase,
    /// Reject an unreviewed case (拒绝), with an explanation.
    RejectCase,
    /// Assign a case to a handler or department (派单/交办).
    AssignCase,
    /// Record a mediation session (调解).
    RecordMediation,
    /// Close a case with its outcome (办结).
    ResolveCase,
    /// Record a follow-up with the parties (回访).
    RecordFollowUp,
    /// Hand a case to a higher tier (提级办理).
    EscalateCase,
    /// Transfer a case to another node (流转).
    TransferCase,
    /// Supervise a case from a higher tier (督办).
    SuperviseCase,
    /// Change a case's four-colour risk.
    ChangeRisk,
    /// Extend a case's deadline.
    ExtendDeadline,
    /// Read links between nodes and departments.
    ReadLinks,
    /// Read statistics.
    ReadStats,
    /// Read alerts (overdue, high risk).
    ReadAlerts,
    /// Export a report.
    ExportReport,
    /// Keep a case's "六个一" plan and progress table.
    PlanCase,
    /// Keep the node's console accounts (账号管理) and the keys of its Open311 API.
    ManageUsers,
    /// List who viewed personal data (查阅记录).
    ReadAccessLog,
    /// Import legacy records from a spreadsheet (历史台账导入).
    ImportCases,
    /// Take a backup of the node's whole store (备份).
    Backup,
}

impl Action {
    /// All actions.
    pub const ALL: [Action; 23] = [
        Action::ReadCase,
        Action::ReadPersonalData,
        Action::RegisterCase,
        Action::AcceptCase,
        Action::RejectCase,
        Action::AssignCase,
        Action::RecordMediation,
        Action::ResolveCase,
        Action::RecordFollowUp,
        Action::EscalateCase,
        Action::TransferCase,
        Action::SuperviseCase,
        Action::ChangeRisk,
        Action::ExtendDeadline,
        Action::ReadLinks,
        Action::ReadStats,
        Action::ReadAlerts,
        Action::ExportReport,
        Action::PlanCase,
        Action::ManageUsers,
        Action::ReadAccessLog,
        Action::ImportCases,
        Action::Backup,
    ];

    /// A stable snake_case name, for messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ReadCase => "read_case",
            Action::ReadPersonalData => "read_personal_data",
            Action::RegisterCase => "register_case",
            Action::AcceptCase => "accept_case",
            Action::RejectCase => "reject_case",
            Action::AssignCase => "assign_case",
            Action::RecordMediation => "record_mediation",
            Action::ResolveCase => "resolve_case",
            Action::RecordFollowUp => "record_follow_up",
            Action::EscalateCase => "escalate_case",
            Action::TransferCase => "transfer_case",
            Action::SuperviseCase => "supervise_case",
            Action::ChangeRisk => "change_risk",
            Action::ExtendDeadline => "extend_deadline",
            Action::ReadLinks => "read_links",
            Action::ReadStats => "read_stats",
            Action::ReadAlerts => "read_alerts",
            Action::ExportReport => "export_report",
            Action::PlanCase => "plan_case",
            Action::ManageUsers => "manage_users",
            Action::ReadAccessLog => "read_access_log",
            Action::ImportCases => "import_cases",
            Action::Backup => "backup",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `role` may perform `action` (see the table in the module documentation).
///
/// Written without wildcards so that a new role or action does not compile until it is placed
/// in the table.
pub fn allowed(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::Director => match action {
            ReadCase | ReadPersonalData | RegisterCase | AcceptCase | RejectCase | AssignCase
            | RecordMediation | ResolveCase | RecordFollowUp | EscalateCase | TransferCase
            | SuperviseCase | ChangeRisk | ExtendDeadline | ReadLinks | ReadStats | ReadAlerts
            | ExportReport | PlanCase | ImportCases => true,
            ManageUsers | ReadAccessLog | Backup => false,
        },
        Role::Intake => match action {
            ReadCase | ReadPersonalData | RegisterCase | AcceptCase | AssignCase
            | RecordFollowUp | ReadLinks | ReadStats | ReadAlerts => true,
            RejectCase | RecordMediation | ResolveCase | EscalateCase | TransferCase
            | SuperviseCase | ChangeRisk | ExtendDeadline | ExportReport | PlanCase
            | ManageUsers | ReadAccessLog | ImportCases | Backup => false,
        },
        Role::Mediator => match action {
            ReadCase | ReadPersonalData | RecordMediation | ResolveCase | RecordFollowUp
            | ReadStats | ReadAlerts | PlanCase => true,
            RegisterCase | AcceptCase | RejectCase | AssignCase | EscalateCase | TransferCase
            | SuperviseCase | ChangeRisk | ExtendDeadline | ReadLinks | ExportReport
            | ManageUsers | ReadAccessLog | ImportCases | Backup => false,
        },
        Role::Auditor => match action {
            ReadCase | ReadLinks | ReadStats | ReadAlerts | ExportReport | ReadAccessLog => true,
            ReadPersonalData | RegisterCase | AcceptCase | RejectCase | AssignCase
            | RecordMediation | ResolveCase | RecordFollowUp | EscalateCase | TransferCase
            | SuperviseCase | ChangeRisk | ExtendDeadline | PlanCase | ManageUsers
            | ImportCases | Backup => false,
        },
        Role::Admin => match action {
            ReadCase | RejectCase | EscalateCase | TransferCase | SuperviseCase | ReadLinks
            | ReadStats | ReadAlerts | ExportReport | ManageUsers | Backup => true,
            ReadPersonalData | RegisterCase | AcceptCase | AssignCase | RecordMediation
            | ResolveCase | RecordFollowUp | ChangeRisk | ExtendDeadline | PlanCase
            | ReadAccessLog | ImportCases => false,
        },
    }
}

/// Why a string or certificate does not carry a valid fengqiao identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The URI is not in the `spiffe://fengqiao/` trust domain.
    #[error(
        "{uri:?} is not a fengqiao identity: expected spiffe://fengqiao/node/CODE or spiffe://fengqiao/op/CODE/ROLE/USER"
    )]
    NotFengqiao {
        /// The URI as given.
        uri: String,
    },
    /// The path after the trust domain has the wrong shape.
    #[error("malformed identity {uri:?}: {reason}")]
    Malformed {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The division code in the URI is invalid.
    #[error("bad division code in identity {uri:?}: {source}")]
    Code {
        /// The URI as given.
        uri: String,
        /// Why the code is invalid.
        source: CodeError,
    },
    /// The role in the URI is unknown.
    #[error("bad role in identity: {0}")]
    Role(#[from] RoleError),
    /// The operator user name is invalid.
    #[error("invalid user name {user:?}: {reason}")]
    User {
        /// The user name as given.
        user: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The certificate could not be parsed as X.509 DER.
    #[error("cannot parse certificate: {0}")]
    Certificate(String),
    /// The certificate carries no `spiffe://fengqiao/` URI.
    #[error("certificate carries no spiffe://fengqiao/ identity URI")]
    NoIdentity,
    /// The certificate carries several `spiffe://fengqiao/` URIs; it is ambiguous.
    #[error("certificate carries {0} spiffe://fengqiao/ identity URIs, expected exactly one")]
    AmbiguousIdentity(usize),
}

/// Checks an operator user name: `[A-Za-z0-9._-]{1,64}`, and not `.` or `..` (which are
/// path segments with a meaning in URIs).
pub fn validate_user(user: &str) -> Result<(), IdentityError> {
    let bad = |reason| {
        Err(IdentityError::User {
            user: user.to_owned(),
            reason,
        })
    };
    if user.is_empty() {
        return bad("must not be empty");
    }
    if user.len() > MAX_USER_LEN {
        return bad("must be at most 64 characters");
    }
    if !user
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    if user == "." || user == ".." {
        return bad("must not be '.' or '..'");
    }
    Ok(())
}

/// A caller's identity, as named in its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A node: `spiffe://fengqiao/node/CODE`.
    Node {
        /// The node's division code.
        code: NodeCode,
    },
    /// A person at a node: `spiffe://fengqiao/op/CODE/ROLE/USER`.
    Operator {
        /// The node the operator works at.
        code: NodeCode,
        /// Their role there.
        role: Role,
        /// Their user name (`[A-Za-z0-9._-]{1,64}`).
        user: String,
    },
}

impl Identity {
    /// A node identity.
    pub fn node(code: NodeCode) -> Identity {
        Identity::Node { code }
    }

    /// An operator identity, with the user name validated.
    pub fn operator(code: NodeCode, role: Role, user: &str) -> Result<Identity, IdentityError> {
        validate_user(user)?;
        Ok(Identity::Operator {
            code,
            role,
            user: user.to_owned(),
        })
    }

    /// The identity URI (`spiffe://fengqiao/...`).
    pub fn uri(&self) -> String {
        match self {
            Identity::Node { code } => format!("{SPIFFE_PREFIX}node/{code}"),
            Identity::Operator { code, role, user } => {
                format!("{SPIFFE_PREFIX}op/{code}/{role}/{user}")
            }
        }
    }

    /// Parses an identity URI. The form is exact: no trailing slash, query, fragment,
    /// percent-encoding or case variation.
    pub fn parse_uri(s: &str) -> Result<Identity, IdentityError> {
        let Some(path) = s.strip_prefix(SPIFFE_PREFIX) else {
            return Err(IdentityError::NotFengqiao { uri: s.to_owned() });
        };
        let malformed = |reason| IdentityError::Malformed {
            uri: s.to_owned(),
            reason,
        };
        let code = |c: &str| {
            NodeCode::parse(c).map_err(|source| IdentityError::Code {
                uri: s.to_owned(),
                source,
            })
        };
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["node", c] => Ok(Identity::Node { code: code(c)? }),
            ["node", ..] => Err(malformed("a node identity is spiffe://fengqiao/node/CODE")),
            ["op", c, role, user] => {
                let code = code(c)?;
                let role = role.parse::<Role>()?;
                Identity::operator(code, role, user)
            }
            ["op", ..] => Err(malformed(
                "an operator identity is spiffe://fengqiao/op/CODE/ROLE/USER",
            )),
            _ => Err(malformed("the path must start with node/ or op/")),
        }
    }

    /// The identity in a DER certificate: its single `spiffe://fengqiao/` URI SAN.
    ///
    /// This does not verify the certificate; call it on certificates the TLS layer has
    /// already verified against the CA.
    pub fn from_cert_der(der: &[u8]) -> Result<Identity, IdentityError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| IdentityError::Certificate(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| IdentityError::Certificate(e.to_string()))?;
        let uris: Vec<&str> = san
            .iter()
            .flat_map(|ext| ext.value.general_names.iter())
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::URI(uri) => Some(*uri),
                _ => None,
            })
            // Case-insensitive here so that a look-alike URI is rejected rather than ignored.
            .filter(|uri| {
                uri.get(..SPIFFE_PREFIX.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(SPIFFE_PREFIX))
            })
            .collect();
        match uris.as_slice() {
            [] => Err(IdentityError::NoIdentity),
            [uri] => Identity::parse_uri(uri),
            more => Err(IdentityError::AmbiguousIdentity(more.len())),
        }
    }

    /// The node this identity belongs to.
    pub fn code(&self) -> &NodeCode {
        match self {
            Identity::Node { code } | Identity::Operator { code, .. } => code,
        }
    }

    /// The operator's role, `None` for a node.
    pub fn role(&self) -> Option<Role> {
        match self {
            Identity::Node { .. } => None,
            Identity::Operator { role, .. } => Some(*role),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

impl FromStr for Identity {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Identity::parse_uri(s)
    }
}

/// An operator call was refused. Maps to gRPC `PERMISSION_DENIED`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzError {
    /// The caller is a node, not a person; operator actions need an operator certificate.
    #[error("permission denied: {identity} is a node, not an operator")]
    NotOperator {
        /// The caller's identity.
        identity: Identity,
    },
    /// The operator belongs to another node.
    #[error("permission denied: operator of node {caller} cannot act on node {node}")]
    WrongNode {
        /// The node in the operator's certificate.
        caller: NodeCode,
        /// The node being acted on.
        node: NodeCode,
    },
    /// The operator's role does not allow the action.
    #[error("permission denied: role {role} ({}) may not {action}", role.label_zh())]
    RoleNotAllowed {
        /// The operator's role.
        role: Role,
        /// The refused action.
        action: Action,
    },
}

impl From<AuthzError> for tonic::Status {
    fn from(e: AuthzError) -> tonic::Status {
        crate::error::Error::PermissionDenied(e.to_string()).into()
    }
}

/// For operator calls: `Ok(())` only if `identity` is an operator of exactly `node` and its
/// role allows `action`; otherwise says why not.
pub fn authorize(identity: &Identity, node: &NodeCode, action: Action) -> Result<(), AuthzError> {
    match identity {
        Identity::Node { .. } => Err(AuthzError::NotOperator {
            identity: identity.clone(),
        }),
        Identity::Operator { code, .. } if code != node => Err(AuthzError::WrongNode {
            caller: code.clone(),
            node: node.clone(),
        }),
        Identity::Operator { role, .. } if !allowed(*role, action) => {
            Err(AuthzError::RoleNotAllowed {
                role: *role,
                action,
            })
        }
        Identity::Operator { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn code(s: &str) -> NodeCode {
        NodeCode::parse(s).unwrap()
    }

    fn op(c: &str, role: Role, user: &str) -> Identity {
        Identity::operator(code(c), role, user).unwrap()
    }

    #[test]
    fn uri_round_trip() {
        let ids = [
            Identity::node(code("610116")),
            Identity::node(code("61")),
            op("610116001002", Role::Intake, "wang.li_01-a"),
            op("6101", Role::Admin, &"x".repeat(64)),
        ];
        for id in ids {
            let uri = id.uri();
            assert!(uri.starts_with("spiffe://fengqiao/"));
            assert_eq!(Identity::parse_uri(&uri), Ok(id.clone()), "{uri}");
            assert_eq!(uri.parse::<Identity>(), Ok(id.clone()));
            assert_eq!(id.to_string(), uri);
        }
        assert_eq!(
            Identity::node(code("610116")).uri(),
            "spiffe://fengqiao/node/610116"
        );
        assert_eq!(
            op("610116", Role::Mediator, "zhang").uri(),
            "spiffe://fengqiao/op/610116/mediator/zhang"
        );
    }

    #[test]
    fn rejects_malformed_uris() {
        let bad = [
            "",
            "spiffe://fengqiao",
            "spiffe://fengqiao/",
            "spiffe://other/node/610116",
            "SPIFFE://fengqiao/node/610116",
            "spiffe://Fengqiao/node/610116",
            "https://fengqiao/node/610116",
            "spiffe://fengqiao/node/",
            "spiffe://fengqiao/node/610116/",
            "spiffe://fengqiao/node/6101160",
            "spiffe://fengqiao/node/61011a",
            "spiffe://fengqiao/node/610116?x=1",
            "spiffe://fengqiao/node/610116#f",
            "spiffe://fengqiao//node/610116",
            "spiffe://fengqiao/Node/610116",
            "spiffe://fengqiao/op/610116/mediator",
            "spiffe://fengqiao/op/610116/mediator/",
            "spiffe://fengqiao/op/610116/mediator/zhang/",
            "spiffe://fengqiao/op/610116/mediator/zhang/x",
            "spiffe://fengqiao/op/610116/Mediator/zhang",
            "spiffe://fengqiao/op/610116/root/zhang",
            "spiffe://fengqiao/op/610116/mediator/zh%61ng",
            "spiffe://fengqiao/op/610116/mediator/zh ang",
            "spiffe://fengqiao/op/610116/mediator/张",
            "spiffe://fengqiao/op/610116/mediator/..",
            "spiffe://fengqiao/op/610116/mediator/.",
            "spiffe://fengqiao/user/610116",
            " spiffe://fengqiao/node/610116",
        ];
        for uri in bad {
            assert!(Identity::parse_uri(uri).is_err(), "accepted {uri:?}");
        }
        let long = format!("spiffe://fengqiao/op/610116/mediator/{}", "x".repeat(65));
        assert!(matches!(
            Identity::parse_uri(&long),
            Err(IdentityError::User { .. })
        ));
        let err = Identity::parse_uri("spiffe://fengqiao/node/6101160").unwrap_err();
        assert!(err.to_string().contains("got 7"), "{err}");
        let err = Identity::parse_uri("spiffe://fengqiao/op/610116/root/zhang").unwrap_err();
        assert!(err.to_string().contains("unknown role \"root\""), "{err}");
    }

    #[test]
    fn roles() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert_eq!(Role::Intake.label_zh(), "窗口受理");
        assert_eq!(Role::Admin.label_zh(), "系统管理员");
        assert!("Director".parse::<Role>().is_err());
        assert!("".parse::<Role>().is_err());
    }

    /// The expected table, written out row by row as in the module documentation:
    /// columns intake, mediator, director, auditor, admin.
    const TABLE: [(Action, [bool; 5]); 23] = [
        (ReadCase, [true, true, true, true, true]),
        (ReadPersonalData, [true, true, true, false, false]),
        (RegisterCase, [true, false, true, false, false]),
        (AcceptCase, [true, false, true, false, false]),
        (RejectCase, [false, false, true, false, true]),
        (AssignCase, [true, false, true, false, false]),
        (RecordMediation, [false, true, true, false, false]),
        (ResolveCase, [false, true, true, false, false]),
        (RecordFollowUp, [true, true, true, false, false]),
        (EscalateCase, [false, false, true, false, true]),
        (TransferCase, [false, false, true, false, true]),
        (SuperviseCase, [false, false, true, false, true]),
        (ChangeRisk, [false, false, true, false, false]),
        (ExtendDeadline, [false, false, true, false, false]),
        (ReadLinks, [true, false, true, true, true]),
        (ReadStats, [true, true, true, true, true]),
        (ReadAlerts, [true, true, true, true, true]),
        (ExportReport, [false, false, true, true, true]),
        (PlanCase, [false, true, true, false, false]),
        (ManageUsers, [false, false, false, false, true]),
        (ReadAccessLog, [false, false, false, true, false]),
        (ImportCases, [false, false, true, false, false]),
        (Backup, [false, false, false, false, true]),
    ];

    #[test]
    fn permission_table_exhaustive() {
        let columns = [
            Role::Intake,
            Role::Mediator,
            Role::Director,
            Role::Auditor,
            Role::Admin,
        ];
        assert_eq!(
            TABLE.map(|(a, _)| a),
            Action::ALL,
            "table covers every action"
        );
        for (action, row) in TABLE {
            for (role, expected) in columns.into_iter().zip(row) {
                assert_eq!(allowed(role, action), expected, "{role} {action}");
            }
        }
    }

    #[test]
    fn permission_invariants() {
        // The director does all the center's work; accounts and backups are the admin's alone
        // (等保: separate system administration from the business), and so is the log of who
        // viewed personal data, which only the auditor reads.
        for action in Action::ALL {
            assert_eq!(
                allowed(Role::Director, action),
                !matches!(action, ManageUsers | ReadAccessLog | Backup),
                "director and {action}"
            );
        }
        for role in Role::ALL {
            assert_eq!(allowed(role, ManageUsers), role == Role::Admin, "{role}");
            assert_eq!(allowed(role, Backup), role == Role::Admin, "{role}");
            assert_eq!(
                allowed(role, ReadAccessLog),
                role == Role::Auditor,
                "{role}"
            );
        }
        for role in Role::ALL {
            assert!(
                allowed(role, ReadCase) && allowed(role, ReadStats),
                "{role}"
            );
        }
        for action in [RejectCase, EscalateCase, TransferCase] {
            let who: Vec<Role> = Role::ALL
                .into_iter()
                .filter(|r| allowed(*r, action))
                .collect();
            assert_eq!(who, vec![Role::Director, Role::Admin], "{action}");
        }
        for role in [Role::Auditor, Role::Admin] {
            assert!(!allowed(role, ReadPersonalData), "{role}");
        }
        let auditor_writes = Action::ALL.into_iter().filter(|a| {
            allowed(Role::Auditor, *a)
                && !matches!(
                    a,
                    ReadCase | ReadLinks | ReadStats | ReadAlerts | ExportReport | ReadAccessLog
                )
        });
        assert_eq!(auditor_writes.count(), 0);
    }

    #[test]
    fn authorize_checks_node_then_role() {
        let here = code("610116");
        let intake = op("610116", Role::Intake, "li");
        assert_eq!(authorize(&intake, &here, RegisterCase), Ok(()));
        assert_eq!(
            authorize(&intake, &here, EscalateCase),
            Err(AuthzError::RoleNotAllowed {
                role: Role::Intake,
                action: EscalateCase
            })
        );
        // An operator of a child or parent node is still another node.
        for other in ["610116001", "6101", "610117"] {
            let err = authorize(&op(other, Role::Director, "boss"), &here, ReadCase).unwrap_err();
            assert!(matches!(err, AuthzError::WrongNode { .. }), "{other}");
            assert!(err.to_string().contains(other), "{err}");
        }
        let node = Identity::node(here.clone());
        let err = authorize(&node, &here, ReadCase).unwrap_err();
        assert!(matches!(err, AuthzError::NotOperator { .. }));
        let status = tonic::Status::from(err);
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(status.message().contains("not an operator"));

        let msg = authorize(&op("610116", Role::Auditor, "a"), &here, ReadPersonalData)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("auditor") && msg.contains("read_personal_data"),
            "{msg}"
        );
    }

    /// A self-signed certificate with the given URI SANs (plus a DNS name).
    fn cert_with_uris(uris: &[&str]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        for uri in uris {
            params
                .subject_alt_names
                .push(rcgen::SanType::URI(uri.to_string().try_into().unwrap()));
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn identity_from_certificates() {
        let node = cert_with_uris(&["spiffe://fengqiao/node/610116"]);
        assert_eq!(
            Identity::from_cert_der(&node),
            Ok(Identity::node(code("610116")))
        );
        // URIs of other schemes or trust domains are ignored.
        let mixed = cert_with_uris(&[
            "https://example.org/",
            "spiffe://other/node/61",
            "spiffe://fengqiao/op/61/auditor/zhao",
        ]);
        assert_eq!(
            Identity::from_cert_der(&mixed),
            Ok(op("61", Role::Auditor, "zhao"))
        );

        assert_eq!(
            Identity::from_cert_der(&cert_with_uris(&[])),
            Err(IdentityError::NoIdentity)
        );
        assert_eq!(
            Identity::from_cert_der(&cert_with_uris(&["spiffe://other/node/61"])),
            Err(IdentityError::NoIdentity)
        );
        let two = cert_with_uris(&[
            "spiffe://fengqiao/node/61",
            "spiffe://fengqiao/op/61/director/boss",
        ]);
        assert_eq!(
            Identity::from_cert_der(&two),
            Err(IdentityError::AmbiguousIdentity(2))
        );
        // A look-alike in another case is not ignored but rejected.
        let look_alike = cert_with_uris(&["SPIFFE://FENGQIAO/node/61"]);
        assert!(matches!(
            Identity::from_cert_der(&look_alike),
            Err(IdentityError::NotFengqiao { .. })
        ));
        let malformed = cert_with_uris(&["spiffe://fengqiao/node/610"]);
        assert!(matches!(
            Identity::from_cert_der(&malformed),
            Err(IdentityError::Code { .. })
        ));
        assert!(matches!(
            Identity::from_cert_der(b"not a certificate"),
            Err(IdentityError::Certificate(_))
        ));
        assert!(matches!(
            Identity::from_cert_der(&[]),
            Err(IdentityError::Certificate(_))
        ));
    }

    #[test]
    fn user_names() {
        for ok in ["a", "A-z_0.9", "wang.li", &"a".repeat(64), "..."] {
            assert_eq!(validate_user(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "a@b", "名", &"a".repeat(65)] {
            assert!(validate_user(bad).is_err(), "{bad:?}");
        }
    }
}
