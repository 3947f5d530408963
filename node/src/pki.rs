//! A small development PKI: one CA per directory that signs node and operator certificates.
//!
//! Layout of a PKI directory:
//!
//! | file                          | what                                             |
//! |-------------------------------|--------------------------------------------------|
//! | `ca.pem`, `ca.key`            | the CA certificate and its key                   |
//! | `node-CODE.pem`, `.key`       | a node: server and client of its parent          |
//! | `op-CODE-ROLE-USER.pem`, `.key` | an operator (client only)                      |
//!
//! Keys are ECDSA P-256 in PKCS#8 PEM, written with mode 0600 on unix. Every leaf carries
//! exactly one identity URI SAN (see [`crate::identity`]); node certificates also carry DNS/IP
//! SANs for `localhost`, `127.0.0.1`, `::1` and the hosts given, so clients can verify the
//! server name they connect to. The CA has path length 0: it signs leaves only.
//!
//! Files are written to a temporary name and renamed, so a reader never sees half a file.
//! Issuing again overwrites the previous certificate and key for that identity.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::code::NodeCode;
use crate::identity::{Identity, IdentityError, Role};

/// Default lifetime of a leaf certificate (the CA/Browser Forum's old 825-day limit).
pub const LEAF_DAYS: i64 = 825;
/// Default lifetime of the CA certificate.
pub const CA_DAYS: i64 = 3650;

/// The validity period of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From one hour ago (to tolerate clock skew) until `days` days from now.
    pub fn days(days: i64) -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }

    /// The CA's default: one hour ago until ten years from now.
    pub fn ca() -> Validity {
        Validity::days(CA_DAYS)
    }
}

impl Default for Validity {
    /// A leaf's default: one hour ago until 825 days from now.
    fn default() -> Self {
        Validity::days(LEAF_DAYS)
    }
}

/// What [`init_ca`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaInit {
    /// A new CA was generated; holds the path of `ca.pem`.
    Created(PathBuf),
    /// `ca.pem` and `ca.key` already existed and were kept; holds the path of `ca.pem`.
    Existing(PathBuf),
}

impl CaInit {
    /// Path of the CA certificate (`ca.pem`).
    pub fn path(&self) -> &Path {
        match self {
            CaInit::Created(p) | CaInit::Existing(p) => p,
        }
    }

    /// Whether a new CA was generated.
    pub fn created(&self) -> bool {
        matches!(self, CaInit::Created(_))
    }
}

/// A `CaInit` stands for the path of `ca.pem`, so callers that only want the path can use it
/// as one (`init_ca(dir)?.display()`).
impl std::ops::Deref for CaInit {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.path()
    }
}

impl AsRef<Path> for CaInit {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

/// Where an issued certificate and its key were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedPaths {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PKCS#8 PEM, mode 0600 on unix).
    pub key: PathBuf,
}

/// A PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Only one of `ca.pem` and `ca.key` exists.
    #[error(
        "{} exists but {} does not: restore the missing file or remove the other before creating a new CA",
        present.display(),
        missing.display()
    )]
    IncompleteCa {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// There is no CA to sign with.
    #[error("no CA in {}: initialise one first (ca.pem and ca.key)", dir.display())]
    NoCa {
        /// The PKI directory.
        dir: PathBuf,
    },
    /// A CA file is not usable.
    #[error("{}: {reason}", path.display())]
    BadCa {
        /// The file at fault.
        path: PathBuf,
        /// Why it is unusable.
        reason: String,
    },
    /// A host name for a node certificate is not a valid DNS name or IP address.
    #[error("invalid host {host:?} for a node certificate: {reason}")]
    BadHost {
        /// The host as given.
        host: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The validity period is empty.
    #[error("certificate validity must end after it starts ({not_before} .. {not_after})")]
    BadValidity {
        /// Requested start.
        not_before: OffsetDateTime,
        /// Requested end.
        not_after: OffsetDateTime,
    },
    /// An invalid operator identity (user name).
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Key generation or signing failed.
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// What was being generated.
        what: String,
        /// The underlying error.
        source: rcgen::Error,
    },
}

/// Path of the CA certificate in `dir`.
pub fn ca_cert_path(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}

/// Path of the CA key in `dir`.
pub fn ca_key_path(dir: &Path) -> PathBuf {
    dir.join("ca.key")
}

/// Where [`issue_node`] writes the certificate of node `code`.
pub fn node_paths(dir: &Path, code: &NodeCode) -> IssuedPaths {
    paths(dir, &format!("node-{code}"))
}

/// Where [`issue_operator`] writes the certificate of an operator.
pub fn operator_paths(dir: &Path, code: &NodeCode, role: Role, user: &str) -> IssuedPaths {
    paths(dir, &format!("op-{code}-{role}-{user}"))
}

fn paths(dir: &Path, stem: &str) -> IssuedPaths {
    IssuedPaths {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}.key")),
    }
}

/// The federation's person key file in `dir`: `person.key`.
pub fn person_key_path(dir: &Path) -> PathBuf {
    dir.join("person.key")
}

/// Creates the federation's person key (`person.key`, 0600: 32 random bytes as hex, see
/// `early_warning.person_key_file`) in `dir` unless one exists, which is kept (it must be the
/// same file at every node). Returns its path.
pub fn init_person_key(dir: &Path) -> Result<PathBuf, PkiError> {
    let path = person_key_path(dir);
    if path.exists() {
        crate::storage::PersonKey::read(&path).map_err(|e| PkiError::Io {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        return Ok(path);
    }
    fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let key = crate::storage::PersonKey::generate();
    write_file(&path, key.to_hex().as_bytes(), true)?;
    Ok(path)
}

/// Creates a CA in `dir` (created if missing): `ca.pem` and `ca.key`, valid for ten years.
///
/// Idempotent: if both files exist they are kept and [`CaInit::Existing`] is returned. If only
/// one exists, this is an error: silently replacing half a CA would orphan every certificate
/// it signed.
pub fn init_ca(dir: &Path) -> Result<CaInit, PkiError> {
    init_ca_with(dir, Validity::ca())
}

/// [`init_ca`] with an explicit validity period.
pub fn init_ca_with(dir: &Path, validity: Validity) -> Result<CaInit, PkiError> {
    let cert_path = ca_cert_path(dir);
    let key_path = ca_key_path(dir);
    match load_ca(dir) {
        // Both files exist and are usable: keep them.
        Ok(_) => return Ok(CaInit::Existing(cert_path)),
        Err(PkiError::NoCa { .. }) => {}
        // Half a CA, or an unusable one: never overwrite it silently.
        Err(e) => return Err(e),
    }
    check_validity(&validity)?;
    fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_owned(),
        source,
    })?;

    let key = generate_key("the CA key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "fengqiao");
    // A per-CA suffix (from the key) tells CAs apart, in listings and in verification errors.
    let id: String = params
        .key_identifier(&key)
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("fengqiao CA {id}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    let cert = params
        .self_signed(&key)
        .map_err(|source| PkiError::Generate {
            what: "the CA certificate".into(),
            source,
        })?;

    // Key first: if writing the certificate then fails, the leftover key is reported as an
    // incomplete CA on the next run instead of a certificate without its key.
    write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_file(&cert_path, cert.pem().as_bytes(), false)?;
    Ok(CaInit::Created(cert_path))
}

/// Issues a node certificate signed by the CA in `dir`: `node-CODE.pem` and `node-CODE.key`.
///
/// SANs: `spiffe://fengqiao/node/CODE`, `localhost`, `127.0.0.1`, `::1` and each of `hosts`
/// (an IP SAN if it parses as an IP address, with or without `[]`, else a DNS SAN).
/// Extended key usage: server and client authentication (a node is a client of its parent).
pub fn issue_node(dir: &Path, code: &NodeCode, hosts: &[String]) -> Result<IssuedPaths, PkiError> {
    issue_node_with(dir, code, hosts, Validity::default())
}

/// [`issue_node`] with an explicit validity period.
pub fn issue_node_with(
    dir: &Path,
    code: &NodeCode,
    hosts: &[String],
    validity: Validity,
) -> Result<IssuedPaths, PkiError> {
    let identity = Identity::node(code.clone());
    let mut sans = vec![uri_san(&identity)?];
    let defaults = ["localhost", "127.0.0.1", "::1"].map(String::from);
    for host in defaults.iter().chain(hosts) {
        let san = host_san(host)?;
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    let leaf = Leaf {
        common_name: format!("fengqiao node {code}"),
        sans,
        ekus: vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        validity,
    };
    issue(dir, &leaf, node_paths(dir, code))
}

/// Issues an operator (client) certificate signed by the CA in `dir`:
/// `op-CODE-ROLE-USER.pem` and `.key`, with SAN `spiffe://fengqiao/op/CODE/ROLE/USER`.
pub fn issue_operator(
    dir: &Path,
    code: &NodeCode,
    role: Role,
    user: &str,
) -> Result<IssuedPaths, PkiError> {
    issue_operator_with(dir, code, role, user, Validity::default())
}

/// [`issue_operator`] with an explicit validity period.
pub fn issue_operator_with(
    dir: &Path,
    code: &NodeCode,
    role: Role,
    user: &str,
    validity: Validity,
) -> Result<IssuedPaths, PkiError> {
    let identity = Identity::operator(code.clone(), role, user)?;
    let leaf = Leaf {
        common_name: format!("{user} ({role}@{code})"),
        sans: vec![uri_san(&identity)?],
        ekus: vec![ExtendedKeyUsagePurpose::ClientAuth],
        validity,
    };
    issue(dir, &leaf, operator_paths(dir, code, role, user))
}

struct Leaf {
    common_name: String,
    sans: Vec<SanType>,
    ekus: Vec<ExtendedKeyUsagePurpose>,
    validity: Validity,
}

fn issue(dir: &Path, leaf: &Leaf, out: IssuedPaths) -> Result<IssuedPaths, PkiError> {
    check_validity(&leaf.validity)?;
    let issuer = load_ca(dir)?;
    let key = generate_key(&leaf.common_name)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "fengqiao");
    params
        .distinguished_name
        .push(DnType::CommonName, leaf.common_name.as_str());
    params.subject_alt_names = leaf.sans.clone();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = leaf.ekus.clone();
    params.use_authority_key_identifier_extension = true;
    params.not_before = leaf.validity.not_before;
    params.not_after = leaf.validity.not_after;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|source| PkiError::Generate {
            what: format!("the certificate of {}", leaf.common_name),
            source,
        })?;
    write_file(&out.key, key.serialize_pem().as_bytes(), true)?;
    write_file(&out.cert, cert.pem().as_bytes(), false)?;
    Ok(out)
}

/// The certificate revocation list of a PKI directory (`DIR/crl.pem`), as `tls.crl` names it.
pub fn crl_path(dir: &Path) -> PathBuf {
    dir.join("crl.pem")
}

/// What [`revoke`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// `DIR/crl.pem`.
    pub crl: PathBuf,
    /// The new CRL's number (one more than the last).
    pub number: u64,
    /// Certificates the CRL revokes, this one included.
    pub revoked: usize,
    /// False when the serial was revoked already (a new CRL is written all the same).
    pub added: bool,
}

/// The serial of the (first) certificate of a PEM file, as its DER bytes.
pub fn serial_of_file(path: &Path) -> Result<Vec<u8>, PkiError> {
    let pem = fs::read(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })?;
    let der: rustls::pki_types::CertificateDer<'static> =
        rustls::pki_types::pem::PemObject::from_pem_slice(&pem).map_err(|e| PkiError::BadCa {
            path: path.to_owned(),
            reason: format!("no PEM certificate: {e}"),
        })?;
    crate::live_tls::serial_of(&der).ok_or_else(|| PkiError::BadCa {
        path: path.to_owned(),
        reason: "not an X.509 certificate".into(),
    })
}

/// Parses a serial written in hex (`0a:1b:...`, `0A1B...`, with or without `0x`).
pub fn parse_serial(hex: &str) -> Option<Vec<u8>> {
    let digits: String = hex
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != ':' && *c != ' ')
        .collect();
    if digits.is_empty() || digits.len() > 40 || digits.len() % 2 != 0 {
        return None;
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).ok())
        .collect()
}

/// Adds `serial` to the CA's revocation list `DIR/crl.pem` (made if missing), signed by the
/// CA in `dir`, with a CRL number one above the last, valid for a year (nodes use the newest
/// they hold even past that). The entries of the existing list are kept; a list not signed by
/// this CA is refused, never overwritten.
pub fn revoke(dir: &Path, serial: &[u8], now: OffsetDateTime) -> Result<Revocation, PkiError> {
    use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
    let issuer = load_ca(dir)?;
    let path = crl_path(dir);
    let mut entries: Vec<(Vec<u8>, OffsetDateTime)> = Vec::new();
    let mut number = 0u64;
    if exists(&path)? {
        let bytes = fs::read(&path).map_err(|source| PkiError::Io {
            path: path.clone(),
            source,
        })?;
        let ca_pem = fs::read(ca_cert_path(dir)).map_err(|source| PkiError::Io {
            path: ca_cert_path(dir),
            source,
        })?;
        let cas: Vec<rustls::pki_types::CertificateDer<'static>> =
            rustls::pki_types::pem::PemObject::pem_slice_iter(&ca_pem)
                .filter_map(Result::ok)
                .collect();
        let crl = crate::live_tls::check_crl(&bytes, &cas, &path).map_err(|e| PkiError::BadCa {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        number = crl.number;
        let (_, parsed) = x509_parser::parse_x509_crl(&crl.der).map_err(|e| PkiError::BadCa {
            path: path.clone(),
            reason: format!("not a CRL: {e}"),
        })?;
        for r in parsed.iter_revoked_certificates() {
            entries.push((r.raw_serial().to_vec(), r.revocation_date.to_datetime()));
        }
    }
    let added = !entries.iter().any(|(s, _)| s == serial);
    if added {
        entries.push((serial.to_vec(), now));
    }
    let number = number + 1;
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + time::Duration::days(365),
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: entries
            .iter()
            .map(|(s, at)| RevokedCertParams {
                serial_number: SerialNumber::from_slice(s),
                revocation_time: *at,
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params
        .signed_by(&issuer)
        .map_err(|source| PkiError::Generate {
            what: "the revocation list".into(),
            source,
        })?;
    let pem = crl.pem().map_err(|source| PkiError::Generate {
        what: "the revocation list".into(),
        source,
    })?;
    write_file(&path, pem.as_bytes(), false)?;
    Ok(Revocation {
        crl: path,
        number,
        revoked: entries.len(),
        added,
    })
}

/// Loads the CA of `dir` as an issuer, checking that it is a CA and that key and
/// certificate belong together.
fn load_ca(dir: &Path) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let cert_path = ca_cert_path(dir);
    let key_path = ca_key_path(dir);
    match (exists(&cert_path)?, exists(&key_path)?) {
        (true, true) => {}
        (false, false) => {
            return Err(PkiError::NoCa {
                dir: dir.to_owned(),
            });
        }
        (true, false) => {
            return Err(PkiError::IncompleteCa {
                present: cert_path,
                missing: key_path,
            });
        }
        (false, true) => {
            return Err(PkiError::IncompleteCa {
                present: key_path,
                missing: cert_path,
            });
        }
    }
    let cert_pem = read_string(&cert_path)?;
    let key_pem = read_string(&key_path)?;
    let bad = |path: &Path, reason: String| PkiError::BadCa {
        path: path.to_owned(),
        reason,
    };
    let key = KeyPair::from_pem(&key_pem)
        .map_err(|e| bad(&key_path, format!("not a usable private key: {e}")))?;

    let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| bad(&cert_path, format!("no PEM certificate: {e}")))?;
    let der: rustls::pki_types::CertificateDer<'static> = der;
    let (_, x509) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| bad(&cert_path, format!("not an X.509 certificate: {e}")))?;
    let is_ca = x509
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(bad(&cert_path, "not a CA certificate".into()));
    }
    if x509.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(bad(
            &key_path,
            format!("key does not match {}", cert_path.display()),
        ));
    }
    Issuer::from_ca_cert_der(&der, key)
        .map_err(|e| bad(&cert_path, format!("cannot use as issuer: {e}")))
}

fn generate_key(what: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate().map_err(|source| PkiError::Generate {
        what: format!("a key for {what}"),
        source,
    })
}

fn uri_san(identity: &Identity) -> Result<SanType, PkiError> {
    let uri = identity.uri();
    match uri.clone().try_into() {
        Ok(ia5) => Ok(SanType::URI(ia5)),
        Err(source) => Err(PkiError::Generate {
            what: format!("the SAN {uri}"),
            source,
        }),
    }
}

fn host_san(host: &str) -> Result<SanType, PkiError> {
    let bad = |reason: &str| PkiError::BadHost {
        host: host.to_owned(),
        reason: reason.to_owned(),
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if host.is_empty() {
        return Err(bad("empty"));
    }
    if host.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    // A DNS name: labels of letters, digits and '-', not starting or ending with '-';
    // a leading "*." wildcard is allowed.
    let name = host.strip_prefix("*.").unwrap_or(host);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each DNS label must be 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad(
                "a DNS name may contain only ASCII letters, digits, '-' and '.' (use punycode for other scripts)",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a DNS label must not start or end with '-'"));
        }
    }
    let ia5 = host
        .to_owned()
        .try_into()
        .map_err(|e: rcgen::Error| bad(&e.to_string()))?;
    Ok(SanType::DnsName(ia5))
}

fn check_validity(v: &Validity) -> Result<(), PkiError> {
    if v.not_after <= v.not_before {
        return Err(PkiError::BadValidity {
            not_before: v.not_before,
            not_after: v.not_after,
        });
    }
    Ok(())
}

fn exists(path: &Path) -> Result<bool, PkiError> {
    path.try_exists().map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn read_string(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes `contents` to `path` through a temporary file in the same directory and a rename.
/// Private files get mode 0600 on unix from the moment they are created.
fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), PkiError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| PkiError::Io { path, source }
    };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        file_name.unwrap_or_default(),
        std::process::id()
    ));
    // A stale temporary file could carry other permissions; start afresh.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&tmp)(e)),
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let result = options.open(&tmp).and_then(|mut f| {
        f.write_all(contents)?;
        f.sync_all()
    });
    if let Err(e) = result.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path)(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn revocation_lists_grow_signed_by_the_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        init_ca(&dir).unwrap();
        let code = NodeCode::parse("610116").unwrap();
        let a = issue_operator(&dir, &code, Role::Intake, "a").unwrap();
        let b = issue_operator(&dir, &code, Role::Intake, "b").unwrap();
        let sa = serial_of_file(&a.cert).unwrap();
        let sb = serial_of_file(&b.cert).unwrap();
        let now = OffsetDateTime::now_utc();
        let first = revoke(&dir, &sa, now).unwrap();
        assert_eq!((first.number, first.revoked, first.added), (1, 1, true));
        let again = revoke(&dir, &sa, now).unwrap();
        assert_eq!((again.number, again.revoked, again.added), (2, 1, false));
        let both = revoke(&dir, &sb, now).unwrap();
        assert_eq!((both.number, both.revoked), (3, 2));
        let cas: Vec<rustls::pki_types::CertificateDer<'static>> =
            rustls::pki_types::pem::PemObject::pem_slice_iter(
                &fs::read(ca_cert_path(&dir)).unwrap(),
            )
            .map(Result::unwrap)
            .collect();
        let crl =
            crate::live_tls::check_crl(&fs::read(crl_path(&dir)).unwrap(), &cas, &dir).unwrap();
        assert_eq!(crl.number, 3);
        assert!(crl.revoked.contains(&sa) && crl.revoked.contains(&sb));
        // Another CA's list is refused, and is never overwritten by a revocation here.
        let other = tmp.path().join("other");
        init_ca(&other).unwrap();
        fs::copy(crl_path(&dir), crl_path(&other)).unwrap();
        assert!(revoke(&other, &sa, now).is_err());
        let other_cas: Vec<rustls::pki_types::CertificateDer<'static>> =
            rustls::pki_types::pem::PemObject::pem_slice_iter(
                &fs::read(ca_cert_path(&other)).unwrap(),
            )
            .map(Result::unwrap)
            .collect();
        assert!(
            crate::live_tls::check_crl(&fs::read(crl_path(&dir)).unwrap(), &other_cas, &dir)
                .is_err()
        );
        assert_eq!(parse_serial("0a:1B"), Some(vec![0x0a, 0x1b]));
        assert_eq!(parse_serial("xyz"), None);
    }

    use super::*;
    use x509_parser::extensions::GeneralName;

    fn code(s: &str) -> NodeCode {
        NodeCode::parse(s).unwrap()
    }

    fn read_der(path: &Path) -> Vec<u8> {
        let pem = fs::read(path).unwrap();
        let der: rustls::pki_types::CertificateDer<'static> =
            rustls::pki_types::pem::PemObject::from_pem_slice(&pem).unwrap();
        der.to_vec()
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_person_key_is_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = init_person_key(dir.path()).unwrap();
        assert_eq!(path, dir.path().join("person.key"));
        assert_eq!(mode(&path), 0o600);
        let first = fs::read(&path).unwrap();
        crate::storage::PersonKey::read(&path).unwrap();
        init_person_key(dir.path()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), first, "kept");
        fs::write(&path, "not a key").unwrap();
        assert!(init_person_key(dir.path()).is_err());
    }

    #[test]
    fn init_ca_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let first = init_ca(&pki).unwrap();
        assert!(first.created());
        assert_eq!(first.path(), pki.join("ca.pem"));
        assert_eq!(
            first.display().to_string(),
            pki.join("ca.pem").display().to_string()
        );
        let cert = fs::read(pki.join("ca.pem")).unwrap();
        let key = fs::read(pki.join("ca.key")).unwrap();
        assert!(String::from_utf8_lossy(&cert).starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(String::from_utf8_lossy(&key).contains("PRIVATE KEY"));
        #[cfg(unix)]
        assert_eq!(mode(&pki.join("ca.key")), 0o600);

        let second = init_ca(&pki).unwrap();
        assert_eq!(second, CaInit::Existing(pki.join("ca.pem")));
        assert_eq!(fs::read(pki.join("ca.pem")).unwrap(), cert, "kept");
        assert_eq!(fs::read(pki.join("ca.key")).unwrap(), key, "kept");

        let der = read_der(&pki.join("ca.pem"));
        let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(x509.basic_constraints().unwrap().unwrap().value.ca);
        let years = (x509.validity().not_after.timestamp()
            - x509.validity().not_before.timestamp())
            / 86400
            / 365;
        assert_eq!(years, 10);
        // No temporary files left behind.
        let mut names: Vec<String> = fs::read_dir(&pki)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["ca.key", "ca.pem"]);
    }

    #[test]
    fn half_a_ca_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        fs::remove_file(dir.path().join("ca.key")).unwrap();
        let err = init_ca(dir.path()).unwrap_err();
        assert!(matches!(err, PkiError::IncompleteCa { .. }), "{err}");
        assert!(err.to_string().contains("ca.key"), "{err}");
        let err = issue_node(dir.path(), &code("610116"), &[]).unwrap_err();
        assert!(matches!(err, PkiError::IncompleteCa { .. }), "{err}");
        assert!(err.to_string().contains("ca.key"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        fs::remove_file(dir.path().join("ca.pem")).unwrap();
        assert!(matches!(
            init_ca(dir.path()),
            Err(PkiError::IncompleteCa { .. })
        ));
    }

    #[test]
    fn issuing_needs_a_ca() {
        let dir = tempfile::tempdir().unwrap();
        let err = issue_operator(dir.path(), &code("610116"), Role::Intake, "li").unwrap_err();
        assert!(matches!(err, PkiError::NoCa { .. }), "{err}");
    }

    #[test]
    fn mismatched_ca_key_is_detected() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        init_ca(a.path()).unwrap();
        init_ca(b.path()).unwrap();
        let subject = |dir: &Path| {
            let der = read_der(&dir.join("ca.pem"));
            let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
            x509.subject().to_string()
        };
        assert_ne!(subject(a.path()), subject(b.path()), "CAs are told apart");
        assert!(subject(a.path()).contains("fengqiao CA "));
        fs::copy(b.path().join("ca.key"), a.path().join("ca.key")).unwrap();
        let err = issue_node(a.path(), &code("610116"), &[]).unwrap_err();
        assert!(
            matches!(&err, PkiError::BadCa { path, .. } if path.ends_with("ca.key")),
            "{err}"
        );
        assert!(matches!(init_ca(a.path()), Err(PkiError::BadCa { .. })));
    }

    #[test]
    fn node_certificate() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        let hosts = [
            "node1.example.org".to_string(),
            "10.0.0.7".to_string(),
            "[fd00::1]".to_string(),
            "localhost".to_string(),
        ];
        let out = issue_node(dir.path(), &code("610116"), &hosts).unwrap();
        assert_eq!(out.cert, dir.path().join("node-610116.pem"));
        assert_eq!(out.key, dir.path().join("node-610116.key"));
        #[cfg(unix)]
        {
            assert_eq!(mode(&out.key), 0o600);
            assert_eq!(mode(&out.cert), 0o644);
        }
        let der = read_der(&out.cert);
        assert_eq!(
            Identity::from_cert_der(&der),
            Ok(Identity::node(code("610116")))
        );
        let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = x509.subject_alternative_name().unwrap().unwrap();
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        let mut uris = Vec::new();
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(ip) => ips.push(ip.len()),
                GeneralName::URI(u) => uris.push(u.to_string()),
                other => panic!("unexpected SAN {other:?}"),
            }
        }
        assert_eq!(dns, ["localhost", "node1.example.org"], "localhost once");
        assert_eq!(ips, [4, 16, 4, 16], "127.0.0.1, ::1, 10.0.0.7, fd00::1");
        assert_eq!(uris, ["spiffe://fengqiao/node/610116"]);
        let eku = x509.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!x509.is_ca());
        let days = (x509.validity().not_after.timestamp()
            - OffsetDateTime::now_utc().unix_timestamp())
            / 86400;
        assert!((824..=825).contains(&days), "{days}");
    }

    #[test]
    fn bad_hosts_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        for host in ["", "a b", "-x.org", "x..org", "名字.cn", "x.org/", "a:b"] {
            let err = issue_node(dir.path(), &code("61"), &[host.to_string()]).unwrap_err();
            assert!(matches!(err, PkiError::BadHost { .. }), "{host:?}: {err}");
        }
    }

    #[test]
    fn operator_certificate() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        let out =
            issue_operator(dir.path(), &code("610116001"), Role::Mediator, "wang.li").unwrap();
        assert_eq!(
            out.cert,
            dir.path().join("op-610116001-mediator-wang.li.pem")
        );
        assert_eq!(
            out.key,
            dir.path().join("op-610116001-mediator-wang.li.key")
        );
        #[cfg(unix)]
        assert_eq!(mode(&out.key), 0o600);
        let der = read_der(&out.cert);
        let expected = Identity::operator(code("610116001"), Role::Mediator, "wang.li").unwrap();
        assert_eq!(Identity::from_cert_der(&der), Ok(expected));
        let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
        let eku = x509.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);

        let err = issue_operator(dir.path(), &code("61"), Role::Admin, "../x").unwrap_err();
        assert!(matches!(err, PkiError::Identity(_)), "{err}");
        assert!(!dir.path().join("op-61-admin-../x.pem").exists());
    }

    #[test]
    fn explicit_validity() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        let now = OffsetDateTime::now_utc();
        let expired = Validity {
            not_before: now - Duration::days(10),
            not_after: now - Duration::days(1),
        };
        let out = issue_operator_with(dir.path(), &code("610116"), Role::Auditor, "old", expired)
            .unwrap();
        let der = read_der(&out.cert);
        let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(!x509.validity().is_valid());

        let empty = Validity {
            not_before: now,
            not_after: now,
        };
        assert!(matches!(
            issue_node_with(dir.path(), &code("61"), &[], empty),
            Err(PkiError::BadValidity { .. })
        ));
    }

    #[test]
    fn reissue_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        let a = issue_node(dir.path(), &code("6101"), &[]).unwrap();
        let first = fs::read(&a.key).unwrap();
        let b = issue_node(dir.path(), &code("6101"), &[]).unwrap();
        assert_eq!(a, b);
        assert_ne!(fs::read(&b.key).unwrap(), first);
        #[cfg(unix)]
        assert_eq!(mode(&b.key), 0o600);
    }
}
