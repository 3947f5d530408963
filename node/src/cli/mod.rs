//! `fqctl`, the operator CLI: PKI commands and one subcommand per RPC.
//!
//! Connection settings come from a profile file ([`profile`]) so they need not be repeated:
//! `--profile FILE`, else `$FQCTL_PROFILE`; `--endpoint`, `--ca`, `--cert` and `--key` override
//! single fields. Output is a readable table with Chinese labels by default, English with
//! `--lang en`, and JSON with `--json` (proto enum names, stable for scripts).
//!
//! Exit codes scripts can rely on: 0 success; 1 the server refused the request (the gRPC code
//! is printed, e.g. `INVALID_ARGUMENT`, `PERMISSION_DENIED`, `FAILED_PRECONDITION`); 2 bad usage
//! or local input (flags, profile, files); 3 the node could not be reached (connect, TLS,
//! UNAVAILABLE).

pub mod apikey_cmd;
pub mod backup_cmd;
pub mod case_cmd;
pub mod connect;
pub mod links_cmd;
pub mod oversight_cmd;
pub mod pki_cmd;
pub mod profile;
pub mod render;
pub mod stats_cmd;
pub mod stats_render;
pub mod user_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: the request was refused or failed on the server.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code: bad usage or local input.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the node could not be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

pub use crate::text::Lang;

#[derive(Parser)]
#[command(
    name = "fqctl",
    version,
    about = "枫桥 fengqiao 运维命令行 (operator CLI)"
)]
pub struct Cli {
    /// Profile file with endpoint and certificates (or set FQCTL_PROFILE).
    #[arg(long, global = true, env = "FQCTL_PROFILE", value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Operator API URL, https:// only (overrides the profile).
    #[arg(long, global = true)]
    pub endpoint: Option<String>,
    /// CA certificate PEM (overrides the profile).
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
    /// Operator certificate PEM (overrides the profile).
    #[arg(long, global = true)]
    pub cert: Option<PathBuf>,
    /// Operator key PEM (overrides the profile).
    #[arg(long, global = true)]
    pub key: Option<PathBuf>,
    /// Language of labels: zh (default) or en.
    #[arg(long, global = true, value_enum)]
    pub lang: Option<Lang>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// 证书 (certificates): a dev CA, node and operator certificates.
    #[command(subcommand)]
    Pki(pki_cmd::PkiCommand),
    /// 案件 (cases): register, review, assign, mediate, resolve, follow up, list, history,
    /// risk, extend, plan, progress.
    #[command(subcommand)]
    Case(case_cmd::CaseCommand),
    /// 预警 (alerts): this node's alerts, newest first.
    Alerts,
    /// 报告 (report): the node's report for a period, as text or CSV.
    Report(oversight_cmd::ReportArgs),
    /// 统计 (figures): the subtree's aggregates, by period, category, month, child ...
    Stats(stats_cmd::StatsArgs),
    /// 健康检查: ask the node whether it serves.
    Health,
    /// 链路: this node's links to its parent and children (queues, state, last heard).
    Links,
    /// 查阅记录: who viewed personal data here, newest first (auditor certificate).
    Audit(oversight_cmd::AuditArgs),
    /// 账号: the node's console accounts (admin certificate).
    #[command(subcommand)]
    User(user_cmd::UserCommand),
    /// 接口密钥: keys of the Open311 API for the 12348 hotline, mini-programs, courts (admin
    /// certificate).
    #[command(subcommand)]
    Apikey(apikey_cmd::ApiKeyCommand),
    /// 备份: a consistent backup of the node's store to a file (admin certificate); `backup
    /// verify FILE` checks one.
    Backup(backup_cmd::BackupArgs),
}

/// A failure of one fqctl invocation, with its exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(m: impl std::fmt::Display) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: m.to_string(),
        }
    }
    pub fn unreachable(m: impl std::fmt::Display) -> Failure {
        Failure {
            code: EXIT_UNREACHABLE,
            message: m.to_string(),
        }
    }
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Failure {
        let code = if s.code() == tonic::Code::Unavailable {
            EXIT_UNREACHABLE
        } else {
            EXIT_REFUSED
        };
        Failure {
            code,
            message: format!("{}: {}", render::code_name(s.code()), s.message()),
        }
    }
}

/// Runs fqctl with the process arguments.
pub async fn run() -> ExitCode {
    crate::tls::install_crypto_provider();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Pki(cmd) => return pki_cmd::run(cmd),
        Command::Case(cmd) => case_cmd::run(&cli, cmd).await,
        Command::Alerts => oversight_cmd::alerts(&cli).await,
        Command::Report(args) => oversight_cmd::report(&cli, args).await,
        Command::Stats(args) => stats_cmd::run(&cli, args).await,
        Command::Health => case_cmd::health(&cli).await,
        Command::Links => links_cmd::run(&cli).await,
        Command::User(cmd) => user_cmd::run(&cli, cmd).await,
        Command::Apikey(cmd) => apikey_cmd::run(&cli, cmd).await,
        Command::Backup(args) => backup_cmd::run(&cli, args).await,
        Command::Audit(args) => oversight_cmd::audit(&cli, args).await,
    };
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("fqctl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
