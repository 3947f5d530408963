//! Wiring of one node: opens storage, runs the rules' sweep once, binds the operator and
//! federation listeners with mutual TLS (accepted under the caps of [`crate::listener`]),
//! serves (sweeping every `rules.sweep_every`) until told to stop, then drains and syncs
//! storage.
//!
//! gRPC health (`grpc.health.v1`, on both listeners) says SERVING for the whole server ("")
//! and for the case, statistics and exchange services while the store takes writes; once the
//! store refuses writes (a failed fsync, see `storage::commit`) all of them turn NOT_SERVING
//! for good, and the node logs it once, loudly: only a restart (reopening the store) helps.
//!
//! [`start`] is the testable entry point (mini-redis style): it binds first, so callers that
//! asked for port 0 learn the real addresses from [`RunningNode::addrs`], and it returns a
//! handle whose [`RunningNode::shutdown`] stops the node gracefully.

use std::net::SocketAddr;
use std::sync::Arc;

use fengqiao_proto::v1::api_key_service_server::ApiKeyServiceServer;
use fengqiao_proto::v1::backup_service_server::BackupServiceServer;
use fengqiao_proto::v1::case_service_server::CaseServiceServer;
use fengqiao_proto::v1::federation_service_server::FederationServiceServer;
use fengqiao_proto::v1::stats_exchange_server::StatsExchangeServer;
use fengqiao_proto::v1::stats_service_server::StatsServiceServer;
use fengqiao_proto::v1::user_service_server::UserServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::clock::SharedClock;
use crate::config::NodeConfig;
use crate::federation::{self, Federation, failpoint};
use crate::identity::Identity;
use crate::listener::{self, Limits};
use crate::live_tls::{LiveTls, RevocationLayer, TlsSetup};
use crate::service::NodeState;
use crate::service::case::CaseApi;
use crate::service::exchange::ExchangeApi;
use crate::service::stats::StatsApi;
use crate::service::users::{ApiKeyApi, UserApi};
use crate::stats::node::StatsNode;
use crate::storage::{PersonKey, Store, StoreOptions};
use crate::tls;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open storage in {dir}: {source}")]
    Storage {
        dir: String,
        source: crate::storage::StorageError,
    },
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("server task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The certificate does not name this node.
    #[error(
        "tls.cert is the certificate of {found}, but this node is {expected}: a node may only present its own identity"
    )]
    WrongIdentity { expected: String, found: String },
    #[error("parent is set, but node {0} is a province and has no parent tier")]
    NoParentTier(String),
    /// `early_warning.person_key_file` is set but cannot be read.
    #[error("early_warning.person_key_file: {0}")]
    PersonKey(String),
}

/// The addresses a node actually listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addrs {
    pub listen: SocketAddr,
    pub federation_listen: SocketAddr,
    /// The web console's address, if the node serves one (`web_listen`).
    pub web: Option<SocketAddr>,
    /// The citizens' channel's address, if the node serves one (`public_listen`).
    pub public: Option<SocketAddr>,
    /// The Prometheus metrics' address, if the node serves them (`metrics_listen`).
    pub metrics: Option<SocketAddr>,
}

/// A started node.
pub struct RunningNode {
    pub addrs: Addrs,
    pub state: Arc<NodeState>,
    /// The node's TLS material: `reload_logged` on SIGHUP.
    pub tls: Arc<LiveTls>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<(), tonic::transport::Error>>>,
    /// Background work that uses storage (the federation's link workers and silence check,
    /// the sweep, the statistics sender); stopped before storage.
    background: Vec<JoinHandle<()>>,
}

impl RunningNode {
    /// The machine-readable line `fqnode` prints once it serves; tests wait for it.
    pub fn ready_line(&self) -> String {
        let mut line = format!(
            "fengqiao-ready code={} listen={} federation_listen={}",
            self.state.code, self.addrs.listen, self.addrs.federation_listen
        );
        if let Some(web) = self.addrs.web {
            line.push_str(&format!(" web={web}"));
        }
        if let Some(public) = self.addrs.public {
            line.push_str(&format!(" public={public}"));
        }
        if let Some(metrics) = self.addrs.metrics {
            line.push_str(&format!(" metrics={metrics}"));
        }
        line
    }

    /// Tells systemd the node serves (or stops), when it runs under a `Type=notify` unit:
    /// `state` ("READY=1", "STOPPING=1") goes to the datagram socket named by `NOTIFY_SOCKET`
    /// (a path, or `@name` in the abstract namespace). Without the variable nothing happens;
    /// a failure is logged, never fatal.
    pub fn notify_systemd(state: &str) {
        let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
            return;
        };
        if let Err(e) = sd_notify(&path, state) {
            tracing::warn!(error = %e, "cannot notify systemd ({state})");
        }
    }

    /// Stops accepting, lets in-flight RPCs finish, then drains and syncs storage.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.shutdown.send(true);
        let mut first_err = None;
        for t in self.background {
            if let Err(e) = t.await {
                first_err = first_err.or(Some(ServerError::Join(e)));
            }
        }
        for t in self.tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => first_err = first_err.or(Some(ServerError::Transport(e))),
                Err(e) => first_err = first_err.or(Some(ServerError::Join(e))),
            }
        }
        // Nothing hears from a peer any more: the links' last words, exactly.
        self.state.federation.save_links().await;
        self.state.store.shutdown().await;
        first_err.map_or(Ok(()), Err)
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { what, addr, source })
}

/// The services whose health follows the store's ability to write ("" is the whole server).
const WRITE_HEALTH: [&str; 4] = [
    "",
    <CaseServiceServer<CaseApi> as tonic::server::NamedService>::NAME,
    <StatsServiceServer<StatsApi> as tonic::server::NamedService>::NAME,
    <StatsExchangeServer<ExchangeApi> as tonic::server::NamedService>::NAME,
];

/// Turns health NOT_SERVING once the store refuses writes; returns then, or on shutdown.
async fn follow_store_health(
    health: HealthReporter,
    mut refusing: watch::Receiver<Option<String>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let reason = tokio::select! {
        r = refusing.wait_for(Option::is_some) => match r {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => return,
        },
        _ = shutdown.wait_for(|stop| *stop) => return,
    };
    for service in WRITE_HEALTH {
        health
            .set_service_status(service, ServingStatus::NotServing)
            .await;
    }
    tracing::error!(
        reason = %reason,
        "STORE REFUSES WRITES: health is now NOT_SERVING; restart the node after checking the disk (存储已拒绝写入，健康检查为 NOT_SERVING；请检查磁盘后重启节点)"
    );
}

/// The health service that says whether the store is whole: SERVING until a read finds a
/// damaged record (skipped, alerted: see `storage`), NOT_SERVING from then on. The node keeps
/// serving either way; this is the detail `fqctl health` shows.
pub const INTEGRITY_HEALTH: &str = "fengqiao.v1.Integrity";

/// Keeps [`INTEGRITY_HEALTH`] in step with the store's damaged records, until shutdown.
async fn follow_integrity(
    health: HealthReporter,
    store: Store,
    mut shutdown: watch::Receiver<bool>,
) {
    health
        .set_service_status(INTEGRITY_HEALTH, ServingStatus::Serving)
        .await;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
        }
        if !store.damaged_records().is_empty() {
            health
                .set_service_status(INTEGRITY_HEALTH, ServingStatus::NotServing)
                .await;
            return;
        }
    }
}

async fn shutdown_signal(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            break;
        }
    }
}

/// Opens storage, applies the rules once (see `crate::sweep`), binds both listeners and starts
/// serving. The node's time is `clock` (`fqnode` passes the system clock shifted by
/// `clock_offset`).
pub async fn start(cfg: NodeConfig, clock: SharedClock) -> Result<RunningNode, ServerError> {
    tls::install_crypto_provider();
    let limits = Limits {
        max_connections: cfg.max_connections,
        max_handshakes: cfg.max_handshakes,
        handshake_timeout: tls::HANDSHAKE_TIMEOUT,
    };
    let parent = match &cfg.parent {
        Some(_) => Some(
            cfg.code
                .parent()
                .ok_or_else(|| ServerError::NoParentTier(cfg.code.to_string()))?,
        ),
        None => None,
    };
    let person_key = match &cfg.person_key_file {
        Some(path) => Some(PersonKey::read(path).map_err(ServerError::PersonKey)?),
        None => None,
    };
    let store = Store::open(
        &cfg.data_dir,
        &StoreOptions {
            node: cfg.code.clone(),
            cache_capacity_bytes: cfg.cache_capacity_bytes,
            opened_at: clock.now(),
            uplink: parent.clone(),
            person_key,
        },
    )
    .map_err(|source| ServerError::Storage {
        dir: cfg.data_dir.display().to_string(),
        source,
    })?;
    let metrics = Arc::new(crate::metrics::Metrics::new(cfg.code.as_str()));
    {
        let metrics = metrics.clone();
        store.observe_commits(move |batch, took| metrics.observe_commit(batch, took));
    }
    let own = tls::local_identity(&cfg.tls)?;
    if own != Identity::node(cfg.code.clone()) {
        return Err(ServerError::WrongIdentity {
            expected: Identity::node(cfg.code.clone()).uri(),
            found: own.uri(),
        });
    }
    // Certificates, key, CA and CRL, live: re-read on SIGHUP and when the files change.
    let live = LiveTls::load(TlsSetup {
        files: cfg.tls.clone(),
        crl: cfg.tls_crl.clone(),
        received_crl: cfg.data_dir.join("crl-from-parent.pem"),
        web: cfg.web_listen.is_some(),
        public: cfg.public_listen.map(|_| cfg.public.tls.clone()),
        parent: parent.clone(),
    })?;
    // Built before any listener, so a bad parent URL stops the start.
    let parent_channel = match (&cfg.parent, live.client_source()) {
        (Some(url), Some(client)) => Some(federation::connect::parent_channel_with(url, client)?),
        _ => None,
    };
    let fed = Arc::new(
        Federation::new(
            cfg.code.clone(),
            parent,
            cfg.federation.clone(),
            store.clone(),
            clock.clone(),
            cfg.deadlines.clone(),
            cfg.max_message_bytes,
        )
        .with_policy(cfg.policy.clone()),
    );
    let _ = fed.tls.set(live.clone());
    {
        // Every certificate or CRL change put in force goes into the audit log.
        let (store, clock, actor) = (store.clone(), clock.clone(), own.uri());
        let runtime = tokio::runtime::Handle::current();
        live.on_reload(move |what| {
            let (store, access) = (
                store.clone(),
                crate::domain::audit::Access {
                    at: clock.now(),
                    actor: actor.clone(),
                    case_id: String::new(),
                    what,
                },
            );
            runtime.spawn(async move {
                if let Err(e) = store.record_access(access).await {
                    tracing::error!(error = %e, "cannot record the certificate change in the audit log");
                }
            });
        });
    }
    // The parent link counts as expected from this node's first start with it.
    fed.save_links().await;
    let stats = Arc::new(StatsNode::new(
        cfg.code.clone(),
        store.clone(),
        clock.clone(),
        cfg.stats.clone(),
    ));
    let state = Arc::new(NodeState {
        code: cfg.code.clone(),
        store,
        clock,
        deadlines: cfg.deadlines.clone(),
        federation: fed.clone(),
        policy: cfg.policy.clone(),
        sweep_every: cfg.sweep_every,
        report_cadence: cfg.report_cadence,
        reports_dir: cfg.reports_dir.clone(),
        stats: stats.clone(),
        name: cfg.name.clone(),
        web: cfg.web.clone(),
        backup_dir: cfg.data_dir.join("backup-tmp"),
        backing_up: Default::default(),
    });
    if failpoint::any() {
        tracing::warn!(
            env = failpoint::ENV,
            "crash points are set (a test hook): this node will abort at them"
        );
    }
    // Before serving: whatever is overdue at this node's "now" is handled when it answers.
    // A failing rule or an unwritable reports folder is reported, not a failed start (which
    // would make systemd restart the node in a loop): the periodic sweep tries again.
    match crate::sweep::run_once(&state, state.clock.now()).await {
        Ok(first) if first != crate::sweep::SweepReport::default() => {
            tracing::info!(sweep = ?first, "rules applied at start");
        }
        Ok(_) => {}
        Err(e) => tracing::error!(
            error = %e,
            every = ?state.sweep_every,
            "the rules could not all be applied at start (规则未能全部执行); serving, and trying again at every sweep"
        ),
    }

    let api_listener = bind("listen", cfg.listen).await?;
    let fed_listener = bind("federation_listen", cfg.federation_listen).await?;
    let web_listener = match cfg.web_listen {
        Some(addr) => Some((bind("web_listen", addr).await?, addr)),
        None => None,
    };
    let web = match &web_listener {
        Some((l, addr)) => Some(l.local_addr().map_err(|source| ServerError::Bind {
            what: "web_listen",
            addr: *addr,
            source,
        })?),
        None => None,
    };
    let public_listener = match cfg.public_listen {
        Some(addr) => Some((bind("public_listen", addr).await?, addr)),
        None => None,
    };
    let public = match &public_listener {
        Some((l, addr)) => Some(l.local_addr().map_err(|source| ServerError::Bind {
            what: "public_listen",
            addr: *addr,
            source,
        })?),
        None => None,
    };
    let metrics_listener = match cfg.metrics_listen {
        Some(addr) => Some(bind("metrics_listen", addr).await?),
        None => None,
    };
    let metrics_addr = match (&metrics_listener, cfg.metrics_listen) {
        (Some(l), Some(addr)) => Some(l.local_addr().map_err(|source| ServerError::Bind {
            what: "metrics_listen",
            addr,
            source,
        })?),
        _ => None,
    };
    let addrs = Addrs {
        web,
        public,
        metrics: metrics_addr,
        listen: api_listener
            .local_addr()
            .map_err(|source| ServerError::Bind {
                what: "listen",
                addr: cfg.listen,
                source,
            })?,
        federation_listen: fed_listener
            .local_addr()
            .map_err(|source| ServerError::Bind {
                what: "federation_listen",
                addr: cfg.federation_listen,
                source,
            })?,
    };

    let (health, health_svc) = tonic_health::server::health_reporter();
    health.set_serving::<CaseServiceServer<CaseApi>>().await;
    health.set_serving::<StatsServiceServer<StatsApi>>().await;
    health
        .set_serving::<StatsExchangeServer<ExchangeApi>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(fengqiao_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(fengqiao_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let case_svc = CaseServiceServer::new(CaseApi::new(state.clone()))
        .max_decoding_message_size(cfg.max_message_bytes)
        .max_encoding_message_size(cfg.max_message_bytes.saturating_mul(8));
    let stats_svc = StatsServiceServer::new(StatsApi::new(state.clone()))
        .max_decoding_message_size(cfg.max_message_bytes)
        .max_encoding_message_size(cfg.max_message_bytes.saturating_mul(8));
    let user_svc = UserServiceServer::new(UserApi::new(state.clone()))
        .max_decoding_message_size(cfg.max_message_bytes)
        .max_encoding_message_size(cfg.max_message_bytes.saturating_mul(8));
    let api_key_svc = ApiKeyServiceServer::new(ApiKeyApi::new(state.clone()))
        .max_decoding_message_size(cfg.max_message_bytes)
        .max_encoding_message_size(cfg.max_message_bytes.saturating_mul(8));
    let backup_svc =
        BackupServiceServer::new(crate::service::backup::BackupApi::new(state.clone()))
            .max_decoding_message_size(cfg.max_message_bytes)
            .max_encoding_message_size(crate::service::backup::CHUNK_BYTES + 1024);
    let exchange_svc = StatsExchangeServer::new(ExchangeApi::new(state.clone()))
        .max_decoding_message_size(cfg.max_message_bytes)
        .max_encoding_message_size(cfg.max_message_bytes);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let api = Server::builder()
        .max_concurrent_streams(Some(cfg.max_concurrent_streams))
        .timeout(cfg.request_timeout)
        .layer(crate::metrics::RpcLayer(metrics.clone()))
        .layer(crate::shed::ShedLayer(crate::shed::Shed::new(
            cfg.max_inflight,
            cfg.max_inflight_per_caller,
        )))
        .layer(RevocationLayer(live.clone()))
        .add_service(health_svc.clone())
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(case_svc)
        .add_service(stats_svc)
        .add_service(user_svc)
        .add_service(api_key_svc)
        .add_service(backup_svc)
        .serve_with_incoming_shutdown(
            listener::incoming(
                "listen",
                api_listener,
                live.server_source(),
                limits,
                shutdown_rx.clone(),
            ),
            shutdown_signal(shutdown_rx.clone()),
        );
    // The node-to-node API, over the same mutual TLS: the links children open, the
    // statistics they push, and health checks.
    let fed_svc = FederationServiceServer::new(federation::service::FederationApi::new(
        fed.clone(),
        shutdown_rx.clone(),
    ))
    .max_decoding_message_size(cfg.max_message_bytes.saturating_mul(4))
    .max_encoding_message_size(cfg.max_message_bytes.saturating_mul(4));
    let federation_server = Server::builder()
        .max_concurrent_streams(Some(cfg.max_concurrent_streams))
        .timeout(cfg.request_timeout)
        .layer(crate::metrics::RpcLayer(metrics.clone()))
        .layer(crate::shed::ShedLayer(crate::shed::Shed::new(
            cfg.max_inflight,
            cfg.max_inflight_per_caller,
        )))
        .layer(RevocationLayer(live.clone()))
        .add_service(health_svc)
        .add_service(fed_svc)
        .add_service(exchange_svc)
        .serve_with_incoming_shutdown(
            listener::incoming(
                "federation_listen",
                fed_listener,
                live.server_source(),
                limits,
                shutdown_rx.clone(),
            ),
            shutdown_signal(shutdown_rx.clone()),
        );
    let tasks = vec![tokio::spawn(api), tokio::spawn(federation_server)];
    let mut background = vec![
        tokio::spawn(follow_integrity(
            health.clone(),
            state.store.clone(),
            shutdown_rx.clone(),
        )),
        tokio::spawn(follow_store_health(
            health,
            state.store.refusing_writes(),
            shutdown_rx.clone(),
        )),
        federation::spawn_silence_check(fed.clone(), shutdown_rx.clone()),
        crate::sweep::spawn(state.clone(), shutdown_rx.clone()),
    ];
    // The web console reads and writes the store: stopped with the background work.
    background.push(crate::live_tls::spawn_watch(
        live.clone(),
        shutdown_rx.clone(),
    ));
    if let (Some((listener, _)), Some(tls)) = (web_listener, live.web_source()) {
        background.push(crate::web::spawn(
            crate::app::App::new(state.clone()),
            listener,
            tls,
            limits,
            shutdown_rx.clone(),
        ));
    }
    // The citizens' channel, likewise; its own connection cap (many phones).
    if let (Some((listener, _)), Some(tls)) = (public_listener, live.public_source()) {
        background.extend(crate::web::public::spawn(
            crate::app::App::new(state.clone()),
            cfg.public.clone(),
            listener,
            tls,
            Limits {
                max_connections: cfg.public.max_connections,
                ..limits
            },
            shutdown_rx.clone(),
        ));
    }
    if let Some(listener) = metrics_listener {
        background.push(crate::metrics::spawn(
            metrics,
            state.clone(),
            cfg.tls.clone(),
            listener,
            shutdown_rx.clone(),
        ));
    }
    if let Some(channel) = parent_channel {
        background.push(crate::stats::push::spawn(
            stats,
            channel.clone(),
            shutdown_rx.clone(),
        ));
        background.extend(federation::link::spawn(
            fed.clone(),
            channel,
            shutdown_rx.clone(),
        ));
    }
    tracing::info!(code = %cfg.code, listen = %addrs.listen, federation_listen = %addrs.federation_listen, web = ?addrs.web, public = ?addrs.public, metrics = ?addrs.metrics, "node serving");
    Ok(RunningNode {
        addrs,
        tls: live,
        state,
        shutdown: shutdown_tx,
        tasks,
        background,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_server::Health;
    use tonic_health::server::HealthService;

    async fn status(svc: &HealthService, service: &str) -> i32 {
        svc.check(tonic::Request::new(HealthCheckRequest {
            service: service.into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .status
    }

    #[tokio::test]
    async fn health_turns_not_serving_when_the_store_refuses_writes() {
        let (health, _svc) = tonic_health::server::health_reporter();
        health.set_serving::<CaseServiceServer<CaseApi>>().await;
        let svc = HealthService::from_health_reporter(health.clone());
        let (refuse, refusing) = watch::channel(None);
        let (_stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(follow_store_health(health, refusing, shutdown));
        for service in ["", WRITE_HEALTH[1]] {
            assert_eq!(status(&svc, service).await, ServingStatus::Serving as i32);
        }
        refuse.send_replace(Some("fsync failed".to_string()));
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
        for service in WRITE_HEALTH {
            assert_eq!(
                status(&svc, service).await,
                ServingStatus::NotServing as i32,
                "{service:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn integrity_health_turns_not_serving_on_a_damaged_record() {
        let dir = tempfile::tempdir().unwrap();
        let clock = std::sync::Arc::new(crate::clock::ManualClock::new(crate::domain::Timestamp(
            1_714_521_600_000,
        )));
        let state = NodeState::for_tests(
            dir.path(),
            "610116001001",
            clock,
            crate::domain::Policy::default(),
            None,
        );
        let (health, _svc) = tonic_health::server::health_reporter();
        let svc = HealthService::from_health_reporter(health.clone());
        let (_stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(follow_integrity(health, state.store.clone(), shutdown));
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
        assert_eq!(
            status(&svc, INTEGRITY_HEALTH).await,
            ServingStatus::Serving as i32
        );
        // A case, damaged, met by a listing.
        let new = crate::domain::NewCase {
            idempotency_key: "k".into(),
            category: crate::domain::Category::Labor,
            channel: crate::domain::Channel::WalkIn,
            summary: "讨薪".into(),
            description: String::new(),
            parties: Vec::new(),
            amount_fen: 0,
            risk: crate::domain::RiskLevel::Blue,
            grid_id: String::new(),
        };
        let deadlines = crate::domain::Deadlines::default();
        let now = crate::domain::Timestamp(1_714_521_600_000);
        let reg = state
            .store
            .register("k".into(), "20240501".into(), move |seq| {
                let ctx = crate::domain::Ctx {
                    now,
                    node: "610116001001",
                    actor: "x",
                    deadlines: &deadlines,
                };
                let id = crate::domain::machine::case_id("610116001001", "20240501", seq);
                crate::domain::machine::register(&ctx, &new, id, "CODE".into())
            })
            .await
            .unwrap();
        state.store.damage_case_for_tests(&reg.case.id);
        let listed = state
            .store
            .list_cases(&crate::storage::CaseQuery::default())
            .unwrap();
        assert!(listed.cases.is_empty());
        tokio::time::timeout(std::time::Duration::from_secs(30), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            status(&svc, INTEGRITY_HEALTH).await,
            ServingStatus::NotServing as i32
        );
    }

    #[tokio::test]
    async fn health_follower_stops_with_the_node() {
        let (health, _svc) = tonic_health::server::health_reporter();
        let svc = HealthService::from_health_reporter(health.clone());
        let (_refuse, refusing) = watch::channel(None);
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(follow_store_health(health, refusing, shutdown));
        stop.send_replace(true);
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status(&svc, "").await, ServingStatus::Serving as i32);
    }
}

#[cfg(target_os = "linux")]
fn sd_notify(path: &str, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        None => SocketAddr::from_pathname(path)?,
    };
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn sd_notify(_path: &str, _state: &str) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod notify_tests {
    #[test]
    fn readiness_reaches_the_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        super::sd_notify(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
