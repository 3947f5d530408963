//! Prometheus metrics at `metrics_listen` (`/metrics`, the text format; off unless set, and
//! plain HTTP: bind it to loopback or a management network only).
//!
//! Names start with `fengqiao_`, in base units (seconds), counters end in `_total`. Labels
//! carry RPC names, gRPC codes, division codes, states and kinds — never a case id or any
//! personal data. What is counted as it happens:
//!
//! * `fengqiao_rpc_requests_total{rpc,code}` and `fengqiao_rpc_duration_seconds{rpc}`: every
//!   call on the operator and federation listeners (the time to the response head; the code
//!   from its `grpc-status`, OK when the head has none). Unknown paths count as `rpc="other"`,
//!   so a caller cannot grow the label set.
//! * `fengqiao_storage_commit_duration_seconds` and `fengqiao_storage_commit_batch_size`:
//!   each group commit made durable (from its first transaction to the end of its fsync).
//!
//! What is read at each scrape (off the async workers), so it is as fresh as the scrape:
//!
//! * per link (the parent, and every child: villages behind NAT cannot be scraped, their
//!   parent says how they are heard): `fengqiao_link_up`, `fengqiao_link_silent`,
//!   `fengqiao_link_queue_messages`, `fengqiao_link_oldest_undelivered_age_seconds`,
//!   `fengqiao_link_last_heard_timestamp_seconds` (labels `peer`, `role`);
//! * `fengqiao_cases{state}` (open, unreviewed, awaiting follow-up, overdue by deadline as of
//!   the last sweep) and `fengqiao_open_cases{risk}`, of the node's subtree, from its stored
//!   statistics entry (one read, no case decoded);
//! * `fengqiao_alerts_last_day{kind}`: alerts raised in the past 24 hours;
//! * `fengqiao_certificate_expiry_timestamp_seconds{cert}` of the node's certificate and CA;
//! * `fengqiao_damaged_records`: stored records found damaged and skipped since the start;
//! * `fengqiao_build_info{version,node}` = 1.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::{self, Request, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::domain::Timestamp;
use crate::service::NodeState;
use crate::tls::TlsFiles;

/// Scrapes served at once; more wait for a free slot.
pub const MAX_SCRAPES: usize = 8;
/// How long one scrape connection may take.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcCode {
    rpc: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rpc {
    rpc: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Peer {
    peer: String,
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CaseState {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Risk {
    risk: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Cert {
    cert: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn rpc_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    known_rpcs: HashSet<String>,
    rpc_requests: Family<RpcCode, Counter>,
    rpc_duration: HistogramFamily<Rpc>,
    commit_duration: Histogram,
    commit_batch: Histogram,
    link_up: Family<Peer, Gauge>,
    link_silent: Family<Peer, Gauge>,
    link_queue: Family<Peer, Gauge>,
    link_oldest_age: Family<Peer, FloatGauge>,
    link_last_heard: Family<Peer, FloatGauge>,
    cases: Family<CaseState, Gauge>,
    open_by_risk: Family<Risk, Gauge>,
    alerts_day: Family<Kind, Gauge>,
    cert_expiry: Family<Cert, FloatGauge>,
    damaged: Gauge,
}

impl Metrics {
    pub fn new(node: &str) -> Metrics {
        let mut registry = Registry::default();
        let rpc_requests = Family::<RpcCode, Counter>::default();
        registry.register(
            "fengqiao_rpc_requests",
            "gRPC calls answered, by RPC and status code",
            rpc_requests.clone(),
        );
        let rpc_duration: HistogramFamily<Rpc> = Family::new_with_constructor(rpc_histogram);
        registry.register_with_unit(
            "fengqiao_rpc_duration",
            "Time to answer a gRPC call (to the response head)",
            Unit::Seconds,
            rpc_duration.clone(),
        );
        let commit_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register_with_unit(
            "fengqiao_storage_commit_duration",
            "Time of a group commit, from its first transaction to the end of its fsync",
            Unit::Seconds,
            commit_duration.clone(),
        );
        let commit_batch = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "fengqiao_storage_commit_batch_size",
            "Transactions made durable by one group commit",
            commit_batch.clone(),
        );
        let link_up = Family::<Peer, Gauge>::default();
        registry.register(
            "fengqiao_link_up",
            "1 if the link is connected (the parent answered, or the child was heard within the silence time)",
            link_up.clone(),
        );
        let link_silent = Family::<Peer, Gauge>::default();
        registry.register(
            "fengqiao_link_silent",
            "1 if nothing was heard from the peer within the silence time",
            link_silent.clone(),
        );
        let link_queue = Family::<Peer, Gauge>::default();
        registry.register(
            "fengqiao_link_queue_messages",
            "Messages waiting here for the peer",
            link_queue.clone(),
        );
        let link_oldest_age = Family::<Peer, FloatGauge>::default();
        registry.register_with_unit(
            "fengqiao_link_oldest_undelivered_age",
            "Age of the oldest message waiting for the peer (0 when none)",
            Unit::Seconds,
            link_oldest_age.clone(),
        );
        let link_last_heard = Family::<Peer, FloatGauge>::default();
        registry.register(
            "fengqiao_link_last_heard_timestamp_seconds",
            "When the peer was last heard (Unix time; absent if never)",
            link_last_heard.clone(),
        );
        let cases = Family::<CaseState, Gauge>::default();
        registry.register(
            "fengqiao_cases",
            "Cases of the node's subtree by state (open, unreviewed, awaiting_follow_up, overdue_review, overdue_resolve, overdue_follow_up)",
            cases.clone(),
        );
        let open_by_risk = Family::<Risk, Gauge>::default();
        registry.register(
            "fengqiao_open_cases",
            "Open cases of the node's subtree by four-colour risk",
            open_by_risk.clone(),
        );
        let alerts_day = Family::<Kind, Gauge>::default();
        registry.register(
            "fengqiao_alerts_last_day",
            "Alerts raised here in the past 24 hours, by kind",
            alerts_day.clone(),
        );
        let cert_expiry = Family::<Cert, FloatGauge>::default();
        registry.register(
            "fengqiao_certificate_expiry_timestamp_seconds",
            "When the node's certificate and its CA expire (Unix time)",
            cert_expiry.clone(),
        );
        let damaged = Gauge::default();
        registry.register(
            "fengqiao_damaged_records",
            "Stored records found damaged and skipped since the node started (see the damaged_record alerts)",
            damaged.clone(),
        );
        let info = Info::new(vec![
            ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
            ("node".to_string(), node.to_string()),
        ]);
        registry.register("fengqiao_build", "The build and the node", info);
        Metrics {
            registry,
            known_rpcs: known_rpcs(),
            rpc_requests,
            rpc_duration,
            commit_duration,
            commit_batch,
            link_up,
            link_silent,
            link_queue,
            link_oldest_age,
            link_last_heard,
            cases,
            open_by_risk,
            alerts_day,
            cert_expiry,
            damaged,
        }
    }

    /// Counts one answered call of `path` (`/package.Service/Method`).
    pub fn observe_rpc(&self, path: &str, code: &str, took: Duration) {
        let rpc = match path.strip_prefix('/') {
            Some(p) if self.known_rpcs.contains(p) => p.to_owned(),
            _ => "other".to_owned(),
        };
        self.rpc_requests
            .get_or_create(&RpcCode {
                rpc: rpc.clone(),
                code: code.to_owned(),
            })
            .inc();
        self.rpc_duration
            .get_or_create(&Rpc { rpc })
            .observe(took.as_secs_f64());
    }

    /// Counts one group commit.
    pub fn observe_commit(&self, batch: usize, took: Duration) {
        self.commit_duration.observe(took.as_secs_f64());
        self.commit_batch.observe(batch as f64);
    }

    /// Reads what is read at a scrape (blocking: storage reads) and renders the text format.
    pub fn render(&self, state: &NodeState, tls: &TlsFiles) -> String {
        if let Err(e) = self.refresh(state, tls) {
            tracing::warn!(error = %e, "metrics: some figures could not be read");
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics: encoding failed");
        }
        out
    }

    fn refresh(&self, state: &NodeState, tls: &TlsFiles) -> Result<(), crate::error::Error> {
        let now = state.clock.now();
        let secs = |t: Timestamp| t.millis() as f64 / 1000.0;
        // Certificates first: they are read from the files, whatever else fails.
        self.cert_expiry.clear();
        for (name, path) in [("node", &tls.cert), ("ca", &tls.ca)] {
            if let Some(t) = expiry(path) {
                self.cert_expiry
                    .get_or_create(&Cert { cert: name.into() })
                    .set(t);
            }
        }
        self.damaged
            .set(i64::try_from(state.store.damaged_records().len()).unwrap_or(i64::MAX));
        let links = state.federation.links.report(&state.store, now)?;
        for family in [&self.link_up, &self.link_silent, &self.link_queue] {
            family.clear();
        }
        self.link_oldest_age.clear();
        self.link_last_heard.clear();
        for l in links {
            let peer = Peer {
                peer: l.peer.to_string(),
                role: match l.role {
                    crate::federation::links::Role::Parent => "parent",
                    crate::federation::links::Role::Child => "child",
                }
                .into(),
            };
            let up = matches!(l.state, crate::federation::links::State::Connected);
            self.link_up.get_or_create(&peer).set(i64::from(up));
            self.link_silent
                .get_or_create(&peer)
                .set(i64::from(l.silent));
            self.link_queue
                .get_or_create(&peer)
                .set(i64::try_from(l.queue_out).unwrap_or(i64::MAX));
            let age = l
                .oldest_undelivered
                .map_or(0.0, |t| (now.millis() - t.millis()).max(0) as f64 / 1000.0);
            self.link_oldest_age.get_or_create(&peer).set(age);
            if let Some(t) = l.last_heard {
                self.link_last_heard.get_or_create(&peer).set(secs(t));
            }
        }
        // The subtree's current figures as stored (overdue as of the last sweep): one entry
        // read, whatever the node holds.
        use crate::stats::figures::{CURRENT, Dim};
        let cells = state
            .store
            .stats_entry(
                crate::stats::Kind::Subtree,
                &state.code,
                CURRENT,
                &[Dim::Risk],
            )?
            .map(|e| e.cells)
            .unwrap_or_default();
        let t = &cells.total;
        self.cases.clear();
        for (name, n) in [
            ("open", t.open),
            ("unreviewed", t.unreviewed),
            ("awaiting_follow_up", t.awaiting_follow_up),
            ("overdue_review", t.overdue_review),
            ("overdue_resolve", t.overdue_resolve),
            ("overdue_follow_up", t.overdue_follow_up),
        ] {
            self.cases
                .get_or_create(&CaseState { state: name.into() })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.open_by_risk.clear();
        for risk in crate::domain::RiskLevel::ALL {
            let n = cells
                .by
                .iter()
                .find(|(c, _)| c.dim == Dim::Risk && c.value == risk.code())
                .map_or(0, |(_, f)| f.open);
            self.open_by_risk
                .get_or_create(&Risk {
                    risk: risk.label_en().into(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let day_ago = Timestamp(now.millis() - 86_400_000);
        let alerts = state
            .store
            .alerts_between(day_ago, now.plus(Duration::from_millis(1)))?;
        self.alerts_day.clear();
        for kind in crate::domain::alert::AlertKind::ALL {
            let n = alerts.iter().filter(|a| a.kind == *kind).count();
            self.alerts_day
                .get_or_create(&Kind {
                    kind: kind.as_str().into(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        Ok(())
    }
}

/// When the first certificate of a PEM file expires (Unix seconds), if it can be read.
fn expiry(path: &std::path::Path) -> Option<f64> {
    let pem = std::fs::read(path).ok()?;
    let der = rustls::pki_types::pem::PemObject::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .next()
        .map(|c: rustls::pki_types::CertificateDer<'static>| c)?;
    let (_, x509) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some(x509.validity().not_after.timestamp() as f64)
}

/// Every RPC the node serves, as `package.Service/Method`: from the compiled descriptors of
/// fengqiao and gRPC health and reflection.
fn known_rpcs() -> HashSet<String> {
    let mut out = HashSet::new();
    for bytes in [
        fengqiao_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ] {
        let Ok(set) = prost_types::FileDescriptorSet::decode(bytes) else {
            continue;
        };
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let name = service.name.unwrap_or_default();
                for method in service.method {
                    out.insert(format!(
                        "{package}.{name}/{}",
                        method.name.unwrap_or_default()
                    ));
                }
            }
        }
    }
    for v in ["v1", "v1alpha"] {
        out.insert(format!(
            "grpc.reflection.{v}.ServerReflection/ServerReflectionInfo"
        ));
    }
    out
}

/// The tower layer that counts every call of a gRPC server.
#[derive(Clone)]
pub struct RpcLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for RpcLayer {
    type Service = RpcService<S>;
    fn layer(&self, inner: S) -> RpcService<S> {
        RpcService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> tower::Service<Request<B>> for RpcService<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let res = answer.await;
            let code = match &res {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or("OK", |c| crate::text::code_name(tonic::Code::from(c))),
                Err(_) => "UNAVAILABLE",
            };
            metrics.observe_rpc(&path, code, started.elapsed());
            res
        })
    }
}

/// Serves `GET /metrics` on `listener` (plain HTTP/1.1) until `shutdown` turns true.
pub fn spawn(
    metrics: Arc<Metrics>,
    state: Arc<NodeState>,
    tls: TlsFiles,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let slots = Arc::new(Semaphore::new(MAX_SCRAPES));
    let tls = Arc::new(tls);
    tokio::spawn(async move {
        loop {
            let (stream, _peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics_listen: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => return,
            };
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (metrics, state, tls) = (metrics.clone(), state.clone(), tls.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (metrics, state, tls) = (metrics.clone(), state.clone(), tls.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                answer(req, metrics, state, tls).await,
                            )
                        }
                    });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let _ = tokio::time::timeout(SCRAPE_TIMEOUT, conn).await;
                drop(permit);
            });
        }
    })
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    metrics: Arc<Metrics>,
    state: Arc<NodeState>,
    tls: Arc<TlsFiles>,
) -> Response<String> {
    let reply = |status: http::StatusCode, body: String| {
        let mut r = Response::new(body);
        *r.status_mut() = status;
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(http::StatusCode::NOT_FOUND, "see /metrics\n".into());
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return reply(http::StatusCode::METHOD_NOT_ALLOWED, String::new());
    }
    let text = tokio::task::spawn_blocking(move || metrics.render(&state, &tls)).await;
    match text {
        Ok(text) => {
            let mut r = reply(http::StatusCode::OK, text);
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        Err(e) => reply(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics failed: {e}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_paths_do_not_grow_the_labels() {
        let m = Metrics::new("610116001001");
        m.observe_rpc(
            "/fengqiao.v1.CaseService/RegisterCase",
            "OK",
            Duration::from_millis(3),
        );
        m.observe_rpc(
            "/x.Evil/Anything1",
            "UNIMPLEMENTED",
            Duration::from_millis(1),
        );
        m.observe_rpc(
            "/x.Evil/Anything2",
            "UNIMPLEMENTED",
            Duration::from_millis(1),
        );
        m.observe_commit(12, Duration::from_millis(2));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap();
        assert!(out.contains(
            "fengqiao_rpc_requests_total{rpc=\"fengqiao.v1.CaseService/RegisterCase\",code=\"OK\"} 1"
        ), "{out}");
        assert!(
            out.contains("fengqiao_rpc_requests_total{rpc=\"other\",code=\"UNIMPLEMENTED\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("fengqiao_storage_commit_batch_size_count 1"),
            "{out}"
        );
        assert!(out.contains("fengqiao_build_info{version="), "{out}");
        assert!(!out.contains("Evil"));
    }
}
