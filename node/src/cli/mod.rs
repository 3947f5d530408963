//! `fqctl`, the operator CLI: PKI commands and one subcommand per RPC.
//!
//! Exit codes scripts can rely on: 0 success; 1 the server refused the request or failed (the
//! gRPC code is printed); 2 bad usage or local input (flags, profile, files); 3 cannot reach
//! the node (connect or TLS failure).

pub mod pki_cmd;
pub mod profile;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: the request was refused or failed on the server.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code: bad usage or local input.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the node could not be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

#[derive(Parser)]
#[command(name = "fqctl", version, about = "枫桥 fengqiao 运维命令行 (operator CLI)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// 证书 (certificates): a dev CA, node and operator certificates.
    #[command(subcommand)]
    Pki(pki_cmd::PkiCommand),
}

/// Runs fqctl with the process arguments.
pub async fn run() -> ExitCode {
    crate::tls::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Pki(cmd) => pki_cmd::run(cmd),
    }
}
