//! `fqnode`: one fengqiao node (`fqnode --config FILE`), or a local dev federation
//! (`fqnode dev`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use fengqiao_node::clock::SystemClock;
use fengqiao_node::{config, dev, server, telemetry, tls};

/// The store's writer thread allocates and frees many small buffers per write (sled's tree
/// nodes, encoded values) and tonic's workers free what it allocated: glibc's allocator spent
/// a third of the writer's time in malloc and free under load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fqnode",
    version,
    about = "枫桥 fengqiao: a 综治中心 node server"
)]
struct Cli {
    /// The node's TOML configuration (see tier-configs/ and the README).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run city 6101, county 610116, township 610116001 and villages 610116001001/002 on
    /// loopback, generating a dev PKI if missing.
    Dev {
        /// Folder for dev certificates, configs, data and fqctl profiles.
        #[arg(long, default_value = ".fengqiao-dev")]
        dir: PathBuf,
        /// First port (node i uses base+2i and base+2i+1); 0 picks free ports.
        #[arg(long, default_value_t = 7400)]
        base_port: u16,
    },
    /// Build a data folder from a backup (`fqctl backup --out FILE`), offline: the backup is
    /// checked whole first, and DIR must be new or empty. Start the node on it (`data_dir =
    /// DIR`): it issues no case id or message number twice and resynchronises its links.
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The new data folder.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits for SIGTERM or Ctrl-C; each SIGHUP meanwhile re-reads the node's certificates, key,
/// CA and CRL (the files are also watched).
async fn serve_until_stopped(tls: Arc<fengqiao_node::live_tls::LiveTls>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            let stop = wait_for_signal();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    Some(()) = hup.recv() => {
                        tracing::info!("SIGHUP: re-reading the certificates");
                        let tls = tls.clone();
                        let _ = tokio::task::spawn_blocking(move || tls.reload_logged()).await;
                    }
                }
            }
        }
    }
    let _ = tls;
    wait_for_signal().await;
}

#[tokio::main]
async fn main() -> ExitCode {
    // Exactly one rustls provider, chosen before anything can pick one implicitly.
    tls::install_crypto_provider();
    let cli = Cli::parse();
    match (cli.command, cli.config) {
        (Some(Command::Dev { dir, base_port }), _) => {
            telemetry::init(false, "info");
            let fed = match dev::start(&dev::DevOptions { dir, base_port }).await {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("fqnode dev: {e}");
                    return ExitCode::from(1);
                }
            };
            print!("{}", fed.describe());
            for (n, _) in &fed.nodes {
                println!("{}", n.ready_line());
            }
            wait_for_signal().await;
            if let Err(e) = fed.shutdown().await {
                eprintln!("fqnode dev: shutdown: {e}");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        (Some(Command::Restore { from, data_dir }), _) => {
            match fengqiao_node::storage::backup::restore(&from, &data_dir) {
                Ok(s) => {
                    println!(
                        "restored node {} (store format {}, {} records, sha256 {}) into {}\n\
                         start the node with data_dir = {:?}",
                        s.header.node,
                        s.header.store_format,
                        s.records,
                        s.sha256,
                        data_dir.display(),
                        data_dir.display().to_string(),
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("fqnode restore: {e}");
                    ExitCode::from(1)
                }
            }
        }
        (None, Some(path)) => {
            let cfg = match config::load(&path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("fqnode: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = config::check_test_settings(&cfg) {
                eprintln!("fqnode: {}: {e}", path.display());
                return ExitCode::from(2);
            }
            telemetry::init(cfg.log_json, &cfg.log_level);
            let offset_ms = i64::try_from(cfg.clock_offset.as_millis()).unwrap_or(i64::MAX);
            if offset_ms != 0 {
                tracing::warn!(
                    offset_ms,
                    "clock_offset is set: this node's time is shifted"
                );
            }
            if let Some(reason) = &cfg.federation.refuse_transfers {
                tracing::warn!(
                    %reason,
                    "federation.refuse_transfers is set: cases sent to this node go back"
                );
            }
            let clock = Arc::new(SystemClock { offset_ms });
            let node = match server::start(cfg, clock).await {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("fqnode: {e}");
                    return ExitCode::from(1);
                }
            };
            println!("{}", node.ready_line());
            server::RunningNode::notify_systemd("READY=1");
            serve_until_stopped(node.tls.clone()).await;
            server::RunningNode::notify_systemd("STOPPING=1");
            if let Err(e) = node.shutdown().await {
                eprintln!("fqnode: shutdown: {e}");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        (None, None) => {
            eprintln!(
                "fqnode: give --config FILE to run a node, or `fqnode dev` for a local federation"
            );
            ExitCode::from(2)
        }
    }
}
