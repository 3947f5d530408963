//! `fqbench console`: latency of the web console's pages at a node holding many cases.
//!
//! Starts a real `fqnode` with `web_listen`, fills it through the operator API (RegisterCase,
//! `--concurrency` in flight; every tenth case accepted, one case given 50 events), adds a
//! console account, signs in over HTTPS like a browser (cookie, anti-forgery token), then asks
//! each page `--samples` times, one request at a time on one kept-alive connection, and prints
//! p50/p99/max of each against the static stylesheet (the baseline: the same TLS, HTTP and
//! routing, no store): 工作台, a filtered 案件 page, a search by phone, a case page with 50
//! events, 统计.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use fengqiao_node::identity::Role;
use fengqiao_node::tls;
use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::node::BenchNode;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One kept-alive HTTPS connection speaking HTTP/1.1, with a session cookie.
pub(crate) struct Http {
    stream: BufReader<TlsStream<TcpStream>>,
    cookies: Vec<(String, String)>,
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl Http {
    pub(crate) async fn connect(addr: &str, ca: &std::path::Path) -> Result<Http, BoxError> {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(ca)?;
        for cert in rustls_pemfile_certs(&pem)? {
            roots.add(cert)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?;
        let stream = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        Ok(Http {
            stream: BufReader::new(stream),
            cookies: Vec::new(),
        })
    }

    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<Answer, BoxError> {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\n");
        if method == "POST" {
            head.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        head.push_str(body);
        self.stream.get_mut().write_all(head.as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            self.stream.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse()?;
            } else if k.eq_ignore_ascii_case("set-cookie") {
                if let Some((kv, _)) = v.split_once(';')
                    && let Some((name, value)) = kv.split_once('=')
                {
                    self.cookies.retain(|(n, _)| n != name);
                    if !value.is_empty() {
                        self.cookies.push((name.to_owned(), value.to_owned()));
                    }
                }
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                return Err("chunked answers are not read by this client".into());
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// The certificates of a PEM file (the dev CA).
fn rustls_pemfile_certs(
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, BoxError> {
    use rustls::pki_types::pem::PemObject;
    Ok(rustls::pki_types::CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>()?)
}

pub(crate) fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Registration `n`: its own applicant phone and ID number, a category and risk that vary.
fn request(n: usize) -> pb::RegisterCaseRequest {
    let categories = [1, 2, 3, 4, 5, 10];
    pb::RegisterCaseRequest {
        idempotency_key: format!("bench-console-{n}"),
        category: categories[n % categories.len()],
        channel: 1 + (n % 4) as i32,
        summary: format!("讨薪：拖欠工资第{n}号"),
        description: String::new(),
        parties: vec![
            pb::Party {
                role: pb::PartyRole::Applicant as i32,
                name: "张三".into(),
                phone: format!("139{:08}", n),
                id_number: String::new(),
            },
            pb::Party {
                role: pb::PartyRole::Respondent as i32,
                name: format!("某公司{}", n % 500),
                phone: String::new(),
                id_number: String::new(),
            },
        ],
        amount_fen: 100 * (n as i64 % 10_000),
        risk: 1 + (n % 4) as i32,
        grid_id: String::new(),
    }
}

pub async fn run(
    fqnode: PathBuf,
    cases: usize,
    samples: usize,
    concurrency: usize,
) -> Result<(), BoxError> {
    let node = BenchNode::start(
        &fqnode,
        "610116001001",
        "web_listen = \"127.0.0.1:0\"",
        "[storage]\ncache_capacity_mb = 64",
    )?;
    let (listen, web) = (node.addr("listen")?, node.addr("web")?);
    let channel = tls::connect(
        &format!("https://{listen}"),
        &node.operator(Role::Director, "bench")?,
    )
    .await?;

    // Fill the node.
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let next = next.clone();
        let mut c = CaseServiceClient::new(channel.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= cases {
                    return Ok::<(), tonic::Status>(());
                }
                let id = c.register_case(request(n)).await?.into_inner().id;
                if n % 10 == 0 {
                    c.review_case(pb::ReviewCaseRequest {
                        case_id: id,
                        accept: true,
                        reason: String::new(),
                        guidance: String::new(),
                    })
                    .await?;
                }
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    println!(
        "fqbench console: {cases} cases registered in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut c = CaseServiceClient::new(channel.clone());
    let long = c
        .register_case(pb::RegisterCaseRequest {
            idempotency_key: "bench-console-long".into(),
            ..request(cases + 1)
        })
        .await?
        .into_inner()
        .id;
    for i in 0..49 {
        c.add_case_progress(pb::AddCaseProgressRequest {
            case_id: long.clone(),
            text: format!("第{i}次电话沟通，双方意见接近"),
        })
        .await?;
    }
    let mut users = pb::user_service_client::UserServiceClient::new(
        tls::connect(
            &format!("https://{listen}"),
            &node.operator(Role::Admin, "bench")?,
        )
        .await?,
    );
    users
        .add_user(pb::AddUserRequest {
            username: "bench".into(),
            role: "director".into(),
            name: "压测".into(),
            password: "fengqiao2026".into(),
        })
        .await?;

    // Sign in like a browser.
    let mut http = Http::connect(&web, &node.ca()).await?;
    let login = http.request("GET", "/login", "").await?;
    let csrf = login
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .ok_or("no anti-forgery token on the sign-in page")?
        .to_owned();
    let signed = http
        .request(
            "POST",
            "/login",
            &format!("csrf={csrf}&username=bench&password=fengqiao2026&totp="),
        )
        .await?;
    if signed.status != 303 {
        return Err(format!("sign-in answered {}", signed.status).into());
    }

    let phone = "13900004242";
    let pages = [
        ("static (baseline)", "/static/app.css".to_string()),
        ("工作台", "/".to_string()),
        ("案件 filtered", "/cases?status=1&risk=4".to_string()),
        ("search by phone", format!("/cases?q={phone}")),
        ("case, 50 events", format!("/cases/{long}")),
        ("统计", "/stats".to_string()),
    ];
    println!(
        "{samples} requests per page, one at a time on one connection, after {} warm-up",
        samples / 10
    );
    let mut baseline = 0.0;
    for (name, path) in &pages {
        for _ in 0..samples / 10 {
            http.request("GET", path, "").await?;
        }
        let mut lat = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t = Instant::now();
            let a = http.request("GET", path, "").await?;
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
            if a.status != 200 {
                return Err(format!("{path} answered {}", a.status).into());
            }
        }
        lat.sort_by(f64::total_cmp);
        let p50 = pct(&lat, 0.5);
        if baseline == 0.0 {
            baseline = p50.max(0.001);
        }
        println!(
            "{name:<18} p50 {p50:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   p50 ratio to static {:>6.1}",
            pct(&lat, 0.99),
            pct(&lat, 1.0),
            p50 / baseline
        );
    }
    Ok(())
}
