//! `fqbench public`: the citizens' channel under load.
//!
//! Starts a real `fqnode` with `public_listen` (no captcha, rate limits raised out of the way),
//! makes an API key, then with `--concurrency` kept-alive HTTPS connections, each one request
//! at a time:
//!
//! 1. baseline: `GET /static/public.css` (the same TLS, HTTP and routing, no store);
//! 2. `POST /open311/v2/requests.json`: each a durable registration (group commit + fsync);
//! 3. `GET /open311/v2/requests/{id}.json`: lookups of the submitted cases;
//!
//! printing requests/s and p50/p99 of each and their ratio to the baseline; then opens
//! `--idle` TLS connections that send nothing and reports the node's resident memory before
//! and with them open (read from /proc: Linux only). The bench and the node each need an
//! open-files limit above `--idle` (`ulimit -n`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fengqiao_node::identity::Role;
use fengqiao_node::tls;
use fengqiao_proto::v1 as pb;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::console::{Http, pct};
use super::node::BenchNode;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Resident memory of process `pid` in KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// `requests` requests over `concurrency` connections; `make(worker, i)` is (method, path,
/// body). Returns requests/s and the sorted latencies (ms).
async fn phase<F>(
    addr: &str,
    ca: &std::path::Path,
    concurrency: usize,
    requests: usize,
    make: F,
) -> Result<(f64, Vec<f64>, Vec<String>), BoxError>
where
    F: Fn(usize) -> (&'static str, String, String) + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (make, next) = (make.clone(), next.clone());
        let mut http = Http::connect(addr, ca).await?;
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut bodies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    return Ok::<_, BoxError>((lat, bodies));
                }
                let (method, path, body) = make(i);
                let t = Instant::now();
                let a = http.request(method, &path, &body).await?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                if a.status != 200 {
                    return Err(format!("{method} {path} answered {}: {}", a.status, a.body).into());
                }
                if method == "POST" {
                    bodies.push(a.body);
                }
            }
        }));
    }
    let mut lat = Vec::new();
    let mut bodies = Vec::new();
    for w in workers {
        let (l, b) = w.await??;
        lat.extend(l);
        bodies.extend(b);
    }
    let rate = requests as f64 / started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok((rate, lat, bodies))
}

fn report(name: &str, rate: f64, lat: &[f64], baseline: f64) {
    println!(
        "{name:<22} {rate:>8.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   rate ratio to static {:>5.2}",
        pct(lat, 0.5),
        pct(lat, 0.99),
        rate / baseline
    );
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn run(
    fqnode: PathBuf,
    requests: usize,
    idle: usize,
    concurrency: usize,
) -> Result<(), BoxError> {
    let node = BenchNode::start(
        &fqnode,
        "610116001001",
        "public_listen = \"127.0.0.1:0\"",
        "[early_warning]\nrepeat_person_cases = 0\nrespondent_open_cases = 0\n\
         [public]\ncaptcha = false\nlookups_per_minute = 10000\ncase_lookups_per_hour = 10000\n\
         submissions_per_hour = 10000\napi_submissions_per_minute = 100000\nmax_connections = 16384",
    )?;
    let pid = node.pid();
    let (listen, public) = (node.addr("listen")?, node.addr("public")?);
    let ca = node.ca();
    let files = node.operator(Role::Admin, "bench")?;
    let mut keys = pb::api_key_service_client::ApiKeyServiceClient::new(
        tls::connect(&format!("https://{listen}"), &files).await?,
    );
    let key = keys
        .add_api_key(pb::AddApiKeyRequest {
            name: "bench".into(),
            channel: pb::Channel::Hotline12348 as i32,
        })
        .await?
        .into_inner()
        .key;
    println!(
        "fqbench public: {requests} requests per phase over {concurrency} kept-alive HTTPS connections"
    );

    let (base_rate, lat, _) = phase(&public, &ca, concurrency, requests, |_| {
        ("GET", "/static/public.css".into(), String::new())
    })
    .await?;
    report("static (baseline)", base_rate, &lat, base_rate);

    let key_param = url_encode(&key);
    let (rate, lat, bodies) = phase(&public, &ca, concurrency, requests, move |i| {
        let body = format!(
            "api_key={key_param}&service_code=labor&last_name=%E5%BC%A0&first_name=%E4%B8%89\
             &phone=139{i:08}&description={}",
            url_encode(&format!("拖欠工资第{i}号"))
        );
        ("POST", "/open311/v2/requests.json".into(), body)
    })
    .await?;
    report("POST requests.json", rate, &lat, base_rate);

    let ids: Vec<String> = bodies
        .iter()
        .filter_map(|b| {
            b.split("\"service_request_id\":\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .map(str::to_owned)
        })
        .collect();
    if ids.len() != requests {
        return Err(format!("{} ids from {requests} submissions", ids.len()).into());
    }
    let ids = Arc::new(ids);
    let (rate, lat, _) = phase(&public, &ca, concurrency, requests, move |i| {
        (
            "GET",
            format!("/open311/v2/requests/{}.json", ids[i % ids.len()]),
            String::new(),
        )
    })
    .await?;
    report("GET requests/{id}", rate, &lat, base_rate);

    // Idle connections: handshaken, then silent.
    let before = rss_kib(pid);
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&std::fs::read(&ca)?) {
            roots.add(cert?)?;
        }
    }
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut openers = Vec::new();
    for _ in 0..32 {
        let (client, next, public) = (client.clone(), next.clone(), public.clone());
        openers.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < idle {
                let tcp = TcpStream::connect(&public).await?;
                let name = rustls::pki_types::ServerName::try_from("localhost")?;
                held.push(
                    TlsConnector::from(client.clone())
                        .connect(name, tcp)
                        .await?,
                );
            }
            Ok::<_, BoxError>(held)
        }));
    }
    let mut held = Vec::new();
    for o in openers {
        held.extend(o.await??);
    }
    let opened_in = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with = rss_kib(pid);
    println!(
        "{} idle TLS connections opened in {:.1} s: node RSS {:.1} MiB before, {:.1} MiB with them ({:.1} KiB per connection)",
        held.len(),
        opened_in.as_secs_f64(),
        before as f64 / 1024.0,
        with as f64 / 1024.0,
        (with.saturating_sub(before)) as f64 / held.len().max(1) as f64
    );
    // Still served while they are open.
    let (rate, lat, _) = phase(&public, &ca, concurrency, requests / 10, |_| {
        ("GET", "/static/public.css".into(), String::new())
    })
    .await?;
    report("static, idle conns open", rate, &lat, base_rate);
    drop(held);
    Ok(())
}
