//! `fqnode dev`: a whole local federation in one process, for a newcomer's first run and for
//! demonstrations: city 6101, county 610116 (Chang'an district), township 610116001 and villages
//! 610116001001 and 610116001002, each a real node (own sled database, own certificate, mutual
//! TLS on loopback), linked as in production: each node's `parent` is its parent's federation
//! address, so escalations travel upward and assignments downward at once (`fqctl links` shows
//! each link's health).
//!
//! Everything lives under one folder (default `.fengqiao-dev/`): `pki/` (a dev CA, node
//! certificates, one director and one admin certificate per node), `nodes/CODE.toml` (each
//! node's config, the same format `fqnode --config` reads), `data/CODE/` (storage),
//! `profiles/CODE.toml` (the fqctl profile of that node's director) and
//! `profiles/admin-CODE.toml` (its admin's, for `fqctl user`). Files that exist are reused, so data survives
//! restarts; delete the folder to start afresh.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::cli::profile::Profile;
use crate::clock::{SharedClock, SystemClock};
use crate::code::NodeCode;
use crate::config::{self, NodeConfig};
use crate::identity::Role;
use crate::pki;
use crate::server::{self, RunningNode};

/// The dev federation, parents before children.
pub const DEV_NODES: [&str; 5] = [
    "6101",
    "610116",
    "610116001",
    "610116001001",
    "610116001002",
];

/// Operator user name of the dev certificates.
pub const DEV_USER: &str = "dev";

/// Password of the dev console accounts (never use it elsewhere).
pub const DEV_PASSWORD: &str = "fengqiao2026";

/// The console accounts every dev node gets: username, role, name.
pub const DEV_ACCOUNTS: [(&str, Role, &str); 4] = [
    ("director", Role::Director, "王主任"),
    ("clerk", Role::Intake, "李窗口"),
    ("mediator", Role::Mediator, "张调解"),
    ("auditor", Role::Auditor, "赵审计"),
];

#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Folder for PKI, configs, data and profiles.
    pub dir: PathBuf,
    /// First port; node i listens on base+2i (operator) and base+2i+1 (federation), and
    /// serves its web console on base+10+i and its citizens' pages on base+20+i. 0 lets the
    /// system pick free ports.
    pub base_port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("dev PKI: {0}")]
    Pki(#[from] pki::PkiError),
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("{0}")]
    Server(#[from] server::ServerError),
    #[error("{0}")]
    Profile(#[from] crate::cli::profile::ProfileError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Code(#[from] crate::code::CodeError),
    #[error("dev console accounts: {0}")]
    Account(String),
}

/// A running dev federation.
pub struct DevFederation {
    pub nodes: Vec<(RunningNode, PathBuf)>,
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DevError {
    let path = path.display().to_string();
    move |source| DevError::Io { what, path, source }
}

fn port(base: u16, offset: u16) -> u16 {
    if base == 0 {
        0
    } else {
        base.saturating_add(offset)
    }
}

/// Prepares the folder and starts the five nodes.
pub async fn start(opts: &DevOptions) -> Result<DevFederation, DevError> {
    let dir = std::path::absolute(&opts.dir).map_err(io_err("cannot resolve", &opts.dir))?;
    let pki_dir = dir.join("pki");
    std::fs::create_dir_all(&pki_dir).map_err(io_err("cannot create", &pki_dir))?;
    pki::init_ca(&pki_dir)?;
    let person_key = pki::init_person_key(&pki_dir)?;
    let clock: SharedClock = std::sync::Arc::new(SystemClock::default());
    let mut nodes: Vec<(RunningNode, PathBuf)> = Vec::new();
    for (i, code_str) in DEV_NODES.iter().enumerate() {
        let code = NodeCode::parse(code_str)?;
        let node_cert = pki_dir.join(format!("node-{code}.pem"));
        if !node_cert.exists() {
            pki::issue_node(&pki_dir, &code, &[])?;
        }
        let op_cert = pki_dir.join(format!("op-{code}-director-{DEV_USER}.pem"));
        if !op_cert.exists() {
            pki::issue_operator(&pki_dir, &code, Role::Director, DEV_USER)?;
        }
        // County IT's certificate, for the console accounts (`fqctl user`).
        let admin_cert = pki_dir.join(format!("op-{code}-admin-{DEV_USER}.pem"));
        if !admin_cert.exists() {
            pki::issue_operator(&pki_dir, &code, Role::Admin, DEV_USER)?;
        }
        let parent_url = code.parent().and_then(|p| {
            nodes
                .iter()
                .find(|(n, _)| n.state.code == p)
                .map(|(n, _)| format!("https://{}", n.addrs.federation_listen))
        });
        let offset = u16::try_from(i * 2).unwrap_or(0);
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, port(opts.base_port, offset)));
        let federation = SocketAddr::from((Ipv4Addr::LOCALHOST, port(opts.base_port, offset + 1)));
        let web_offset = u16::try_from(10 + i).unwrap_or(0);
        let web = SocketAddr::from((Ipv4Addr::LOCALHOST, port(opts.base_port, web_offset)));
        let public_offset = u16::try_from(20 + i).unwrap_or(0);
        let public = SocketAddr::from((Ipv4Addr::LOCALHOST, port(opts.base_port, public_offset)));
        let metrics_offset = u16::try_from(30 + i).unwrap_or(0);
        let metrics = SocketAddr::from((Ipv4Addr::LOCALHOST, port(opts.base_port, metrics_offset)));
        let node_file = dir.join("nodes").join(format!("{code}.toml"));
        let body = format!(
            "# Written by `fqnode dev`; run this node alone with `fqnode --config {file}`.\n\
             code = \"{code}\"\nlisten = \"{listen}\"\nfederation_listen = \"{federation}\"\nweb_listen = \"{web}\"\npublic_listen = \"{public}\"\nmetrics_listen = \"{metrics}\"\n\
             parent = \"{parent}\"\ndata_dir = \"{data}\"\n\n[tls]\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n\n[early_warning]\nperson_key_file = \"{person_key}\"\n",
            person_key = person_key.display(),
            file = node_file.display(),
            parent = parent_url.unwrap_or_default(),
            data = dir.join("data").join(code.as_str()).display(),
            ca = pki_dir.join("ca.pem").display(),
            cert = node_cert.display(),
            key = pki_dir.join(format!("node-{code}.key")).display(),
        );
        std::fs::create_dir_all(dir.join("nodes")).map_err(io_err("cannot create", &dir))?;
        std::fs::write(&node_file, body).map_err(io_err("cannot write", &node_file))?;
        let cfg: NodeConfig = config::load(&node_file)?;
        let running = server::start(cfg, clock.clone()).await?;
        add_dev_accounts(&running, &code).await?;
        let profile_path = dir.join("profiles").join(format!("{code}.toml"));
        Profile {
            endpoint: format!("https://{}", running.addrs.listen),
            ca: pki_dir.join("ca.pem"),
            cert: op_cert.clone(),
            key: op_cert.with_extension("key"),
            lang: None,
        }
        .save(&profile_path)?;
        Profile {
            endpoint: format!("https://{}", running.addrs.listen),
            ca: pki_dir.join("ca.pem"),
            cert: admin_cert.clone(),
            key: admin_cert.with_extension("key"),
            lang: None,
        }
        .save(&dir.join("profiles").join(format!("admin-{code}.toml")))?;
        nodes.push((running, profile_path));
    }
    Ok(DevFederation { nodes })
}

/// Creates the dev console accounts ([`DEV_ACCOUNTS`]) a node does not have yet.
async fn add_dev_accounts(running: &RunningNode, code: &NodeCode) -> Result<(), DevError> {
    let app = crate::app::App::new(running.state.clone());
    let admin = crate::identity::Identity::operator(code.clone(), Role::Admin, DEV_USER)
        .map_err(|e| DevError::Account(e.to_string()))?;
    for (username, role, name) in DEV_ACCOUNTS {
        let exists = running
            .state
            .store
            .user(username)
            .map_err(|e| DevError::Account(e.to_string()))?
            .is_some();
        if !exists {
            app.add_user(&admin, username, role, name, Some(DEV_PASSWORD.to_owned()))
                .await
                .map_err(|e| DevError::Account(e.to_string()))?;
        }
    }
    Ok(())
}

impl DevFederation {
    /// The table printed on start: one line per node, in Chinese with English beside it.
    pub fn describe(&self) -> String {
        let mut s = String::from(
            "枫桥 fengqiao — 本地联调 (dev federation, linked), Ctrl-C 停止 (to stop)\n",
        );
        for (n, profile) in &self.nodes {
            let code = &n.state.code;
            s.push_str(&format!(
                "  {tier} {code:<13} 业务接口 operator https://{l:<21}  联邦接口 federation https://{f:<21}  fqctl --profile {p}\n",
                tier = crate::cli::render::pad(code.tier().label_zh(), 4),
                l = n.addrs.listen,
                f = n.addrs.federation_listen,
                p = profile.display(),
            ));
        }
        s.push_str("\n  工作台 web console (浏览器打开 open in a browser; dev 证书 certificate: accept the warning):\n");
        for (n, _) in &self.nodes {
            if let Some(web) = n.addrs.web {
                s.push_str(&format!(
                    "    {tier} {code:<13} https://{web}/\n",
                    tier = crate::cli::render::pad(n.state.code.tier().label_zh(), 4),
                    code = n.state.code,
                ));
            }
        }
        let logins: Vec<String> = DEV_ACCOUNTS
            .iter()
            .map(|(u, role, _)| format!("{u}（{}）", role.label_zh()))
            .collect();
        s.push_str(&format!(
            "  登录 sign in: {} · 密码 password {DEV_PASSWORD}\n",
            logins.join(" ")
        ));
        s.push_str("\n  监控指标 Prometheus metrics (plain HTTP, loopback):\n");
        for (n, _) in &self.nodes {
            if let Some(metrics) = n.addrs.metrics {
                s.push_str(&format!(
                    "    {tier} {code:<13} http://{metrics}/metrics\n",
                    tier = crate::cli::render::pad(n.state.code.tier().label_zh(), 4),
                    code = n.state.code,
                ));
            }
        }
        s.push_str("\n  群众端 citizens' pages (申请调解 apply, 查询进度 look up; Open311 under /open311/v2/):\n");
        for (n, _) in &self.nodes {
            if let Some(public) = n.addrs.public {
                s.push_str(&format!(
                    "    {tier} {code:<13} https://{public}/\n",
                    tier = crate::cli::render::pad(n.state.code.tier().label_zh(), 4),
                    code = n.state.code,
                ));
            }
        }
        s
    }

    pub async fn shutdown(self) -> Result<(), DevError> {
        // Children first, so no node outlives the parent it links to.
        for (n, _) in self.nodes.into_iter().rev() {
            n.shutdown().await?;
        }
        Ok(())
    }
}
