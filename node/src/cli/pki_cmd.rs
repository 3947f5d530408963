//! `fqctl pki`: writes a dev CA and node/operator certificates (see certs/README.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::EXIT_USAGE;
use crate::code::NodeCode;
use crate::identity::Role;
use crate::pki;

#[derive(Subcommand)]
pub enum PkiCommand {
    /// Create a dev CA: DIR/ca.pem and DIR/ca.key (kept if both exist), and the federation's
    /// person key DIR/person.key (0600, kept if it exists; see early_warning.person_key_file).
    Init {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue DIR/node-CODE.pem/.key, valid for localhost, 127.0.0.1 and each --host.
    Node {
        /// Division code of the node (2/4/6/9/12 digits).
        code: String,
        #[arg(long)]
        dir: PathBuf,
        /// Extra DNS name or IP address the node is reached at (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
    /// Issue DIR/op-CODE-ROLE-USER.pem/.key for a person at node CODE.
    Operator {
        code: String,
        /// intake | mediator | director | auditor | admin
        role: String,
        /// Login name: letters, digits, '.', '_' or '-' (1–64).
        user: String,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Revoke a certificate: add it to DIR/crl.pem (made if missing), signed by the CA, with
    /// the next CRL number. Give the certificate's file, or --serial. Nodes whose tls.crl names
    /// the file re-read it (SIGHUP, or within seconds as it changes) and pass it down to their
    /// children.
    Revoke {
        /// The certificate to revoke (PEM).
        #[arg(required_unless_present = "serial", conflicts_with = "serial")]
        cert_file: Option<PathBuf>,
        /// Its serial number, in hex (as `openssl x509 -serial` prints it).
        #[arg(long)]
        serial: Option<String>,
        #[arg(long)]
        dir: PathBuf,
    },
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("fqctl pki: {msg}");
    ExitCode::from(EXIT_USAGE)
}

pub fn run(cmd: &PkiCommand) -> ExitCode {
    match cmd {
        PkiCommand::Init { dir } => match pki::init_ca(dir) {
            Ok(p) => {
                println!("{}", p.display());
                // The federation's person key (early_warning.person_key_file) lives beside it.
                match pki::init_person_key(dir) {
                    Ok(k) => {
                        println!("{}", k.display());
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                }
            }
            Err(e) => fail(e),
        },
        PkiCommand::Node { code, dir, hosts } => {
            let code = match NodeCode::parse(code) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            match pki::issue_node(dir, &code, hosts) {
                Ok(p) => {
                    println!("{}\n{}", p.cert.display(), p.key.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        PkiCommand::Revoke {
            cert_file,
            serial,
            dir,
        } => {
            let serial = match (cert_file, serial) {
                (Some(file), _) => match pki::serial_of_file(file) {
                    Ok(s) => s,
                    Err(e) => return fail(e),
                },
                (None, Some(hex)) => match pki::parse_serial(hex) {
                    Some(s) => s,
                    None => return fail(format!("--serial {hex:?}: not a hex serial number")),
                },
                (None, None) => return fail("give the certificate's file or --serial"),
            };
            match pki::revoke(dir, &serial, time::OffsetDateTime::now_utc()) {
                Ok(r) => {
                    let hex: String = serial.iter().map(|b| format!("{b:02x}")).collect();
                    println!(
                        "{}\nserial {hex} {}; CRL number {}, {} revoked",
                        r.crl.display(),
                        if r.added {
                            "revoked"
                        } else {
                            "was revoked already"
                        },
                        r.number,
                        r.revoked
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        PkiCommand::Operator {
            code,
            role,
            user,
            dir,
        } => {
            let code = match NodeCode::parse(code) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let role: Role = match role.parse() {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            match pki::issue_operator(dir, &code, role, user) {
                Ok(p) => {
                    println!("{}\n{}", p.cert.display(), p.key.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
    }
}
