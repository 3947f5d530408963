//! Node configuration, layered with the `config` crate:
//!
//! 1. built-in defaults ([`DEFAULTS`]),
//! 2. the tier config chosen by the length of `code` (`tier-configs/<tier>.toml`, compiled in;
//!    `tier_config = "PATH"` in the node file uses an edited copy instead),
//! 3. the node's own TOML file (`fqnode --config FILE`),
//! 4. the environment: every key can be set as `FENGQIAO__KEY`, sections with `__`
//!    (`FENGQIAO__TLS__CERT`, `FENGQIAO__DEADLINES__REVIEW=90s`).
//!
//! Unknown keys are errors (a typo must not be silently ignored) and every invalid value stops
//! the start with a message naming the field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

use crate::code::{NodeCode, Tier};
use crate::domain::{Deadlines, Policy};
use crate::report::Cadence;
use crate::stats::StatsConfig;
use crate::tls::TlsFiles;

/// Built-in defaults, the lowest layer.
pub const DEFAULTS: &str = r#"
parent = ""
name = ""
web_listen = ""
public_listen = ""
metrics_listen = ""
tier_config = ""
clock_offset = "0s"

[storage]
cache_capacity_mb = 16

[deadlines]
review = "3d"
resolve = "30d"
follow_up = "7d"
escalate_overdue_after = "1d"

[early_warning]
repeat_person_cases = 3
repeat_person_window = "180d"
respondent_open_cases = 3
reopen_supervise = true
person_key_file = ""

[rules]
sweep_every = "30s"

[reports]
cadence = "month"
dir = ""

[limits]
max_message_bytes = 1048576
max_concurrent_streams = 256
request_timeout = "30s"
max_connections = 256
max_handshakes = 32
max_inflight = 1024
max_inflight_per_caller = 256

[stats]
retention_depth = 2
push_delay = "100ms"
heartbeat = "5s"
stale_after = "30s"
overdue_refresh = "60s"

[log]
format = "text"
level = "info"

[federation]
link_silence_alert = "2m"
pull_wait = "20s"
batch_max = 256
backoff_min = "100ms"
backoff_max = "30s"
refuse_transfers = ""
keep_delivered = "7d"

[web]
idle_timeout = "30m"
max_session = "12h"
lockout = "off"
require_totp = false

[public]
tls_cert = ""
tls_key = ""
captcha = true
lookups_per_minute = 10
case_lookups_per_hour = 20
submissions_per_hour = 10
api_submissions_per_minute = 600
max_connections = 4096
"#;

/// The compiled-in tier config for a tier.
pub fn builtin_tier_config(tier: Tier) -> &'static str {
    match tier {
        Tier::Province | Tier::City => include_str!("../../tier-configs/city.toml"),
        Tier::County => include_str!("../../tier-configs/county.toml"),
        Tier::Township => include_str!("../../tier-configs/township.toml"),
        Tier::Village => include_str!("../../tier-configs/village.toml"),
    }
}

/// The file format as written by people, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    code: String,
    name: String,
    listen: String,
    federation_listen: String,
    web_listen: String,
    public_listen: String,
    metrics_listen: String,
    parent: String,
    data_dir: PathBuf,
    /// Read in the first pass of [`load`]; kept here so it is a known key.
    #[allow(dead_code)]
    tier_config: String,
    clock_offset: String,
    tls: RawTls,
    storage: RawStorage,
    deadlines: RawDeadlines,
    early_warning: RawEarlyWarning,
    rules: RawRules,
    reports: RawReports,
    limits: RawLimits,
    stats: RawStats,
    log: RawLog,
    federation: RawFederation,
    web: RawWeb,
    public: RawPublic,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublic {
    tls_cert: PathBuf,
    tls_key: PathBuf,
    captcha: bool,
    lookups_per_minute: u32,
    case_lookups_per_hour: u32,
    submissions_per_hour: u32,
    api_submissions_per_minute: u32,
    max_connections: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    idle_timeout: String,
    max_session: String,
    lockout: String,
    require_totp: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFederation {
    link_silence_alert: String,
    pull_wait: String,
    batch_max: usize,
    backoff_min: String,
    backoff_max: String,
    refuse_transfers: String,
    keep_delivered: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    #[serde(default)]
    crl: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    cache_capacity_mb: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadlines {
    review: String,
    resolve: String,
    follow_up: String,
    escalate_overdue_after: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEarlyWarning {
    repeat_person_cases: u32,
    repeat_person_window: String,
    respondent_open_cases: u32,
    reopen_supervise: bool,
    person_key_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    sweep_every: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReports {
    cadence: String,
    dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_message_bytes: usize,
    max_concurrent_streams: u32,
    request_timeout: String,
    max_connections: usize,
    max_handshakes: usize,
    max_inflight: usize,
    max_inflight_per_caller: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStats {
    retention_depth: u8,
    push_delay: String,
    heartbeat: String,
    stale_after: String,
    overdue_refresh: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: String,
    level: String,
}

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `code`: the administrative division code of this node (2/4/6/9/12 digits); its length
    /// gives the tier, its prefix the parent.
    pub code: NodeCode,
    /// `name`: display name of the center, e.g. "长安区综治中心" (optional).
    pub name: String,
    /// `listen`: address of the operator API (CaseService, health, reflection).
    pub listen: SocketAddr,
    /// `federation_listen`: address of the node-to-node API.
    pub federation_listen: SocketAddr,
    /// `web_listen`: address of the staff web console (HTTPS with the node's certificate, no
    /// client certificate); absent or empty: no console.
    pub web_listen: Option<SocketAddr>,
    /// `[web]`: how console sessions and sign-ins behave.
    pub web: WebConfig,
    /// `public_listen`: address of the citizens' channel (群众端: the mobile pages and the
    /// Open311 API; HTTPS, by default with the node's certificate); absent or empty: none.
    pub public_listen: Option<SocketAddr>,
    /// `[public]`: the citizens' channel's certificate, captcha and rate limits.
    pub public: PublicConfig,
    /// `metrics_listen`: address of the Prometheus metrics (`/metrics`, plain HTTP: bind it
    /// to loopback or a management network); absent or empty: none.
    pub metrics_listen: Option<SocketAddr>,
    /// `parent`: the parent's federation URL (`https://host:port`); absent or empty at the top.
    pub parent: Option<String>,
    /// `data_dir`: where this node's sled database lives.
    pub data_dir: PathBuf,
    /// `[tls]` `ca`, `cert`, `key`: PEM files of the federation CA and this node's certificate.
    pub tls: TlsFiles,
    /// `[tls]` `crl`: a PEM certificate revocation list signed by the CA (`fqctl pki revoke`);
    /// absent or empty: none but what the parent sends. Re-read with the certificates.
    pub tls_crl: Option<PathBuf>,
    /// `[storage]` `cache_capacity_mb`: sled page-cache size in MiB (1–4096).
    pub cache_capacity_bytes: u64,
    /// `[deadlines]` `review`, `resolve`, `follow_up`: durations like "3d", "12h", "90s";
    /// `escalate_overdue_after`: a case overdue by more than this is supervised by the parent
    /// ("off" turns the rule off).
    pub deadlines: Deadlines,
    /// `[early_warning]` `repeat_person_cases` (0 = off), `repeat_person_window`,
    /// `respondent_open_cases` (0 = off), `reopen_supervise`: see [`Policy`].
    pub policy: Policy,
    /// `[early_warning]` `person_key_file`: the federation's person key (`person.key`, made by
    /// `fqctl pki init` next to the CA, the same file at every node of a federation). With it,
    /// the repeat-person count also runs over each node's subtree: ID numbers are hashed with
    /// it and the hashes (never the numbers) reported up the tree. Empty (the default): no
    /// subtree matching, every node counts its own cases only. Read when the node starts.
    pub person_key_file: Option<PathBuf>,
    /// `[rules]` `sweep_every`: how often the node applies its deadline rules, catches up on
    /// early warnings and writes due reports (1s–1d).
    pub sweep_every: Duration,
    /// `[reports]` `cadence`: scheduled reports, "day" (villages), "week" (townships), "month"
    /// (counties and cities) or "off".
    pub report_cadence: Option<Cadence>,
    /// `[reports]` `dir`: where scheduled reports are written; empty means `data_dir/reports`.
    pub reports_dir: PathBuf,
    /// `clock_offset`: shifts this node's clock forward (a duration, default "0s"). For drills
    /// and end-to-end tests only: restarting a node with a larger offset moves its "now"
    /// without waiting. `fqnode` refuses it unless `FENGQIAO_TEST_MODE=1`
    /// ([`check_test_settings`]).
    pub clock_offset: Duration,
    /// `[limits]` `max_message_bytes`: largest request accepted (1–64 MiB: at least the
    /// federation's message budget, `federation::message::MESSAGE_BUDGET`, so that every
    /// message a peer sends fits).
    pub max_message_bytes: usize,
    /// `[limits]` `max_concurrent_streams`: HTTP/2 streams per connection (1–10000).
    pub max_concurrent_streams: u32,
    /// `[limits]` `request_timeout`: longest time one RPC may take.
    pub request_timeout: Duration,
    /// `[limits]` `max_connections`: open connections per listener (1–[`MAX_CONNECTIONS`]),
    /// counted from accept to close, handshaking ones included (see `crate::listener`).
    pub max_connections: usize,
    /// `[limits]` `max_inflight`: calls being answered at once per listener (1–100000); one
    /// more is refused at once with RESOURCE_EXHAUSTED instead of queueing.
    pub max_inflight: usize,
    /// `[limits]` `max_inflight_per_caller`: calls being answered at once for one certificate
    /// (1–`max_inflight`), so that one caller cannot starve the others.
    pub max_inflight_per_caller: usize,
    /// `[limits]` `max_handshakes`: TLS handshakes in progress per listener
    /// (1–`max_connections`).
    pub max_handshakes: usize,
    /// `[stats]`: figures for higher tiers.
    /// * `retention_depth` (1–4): levels below this node whose figures are kept one by one;
    ///   deeper ones are folded into their ancestor at that depth;
    /// * `push_delay`: wait after a change before pushing figures to the parent;
    /// * `heartbeat`: push to the parent at least this often (shorter than `stale_after`);
    /// * `stale_after`: a child not heard from for this long is reported stale;
    /// * `overdue_refresh`: how often this node's overdue counts are recomputed for its parent.
    pub stats: StatsConfig,
    /// `[log]` `format`: "text" or "json".
    pub log_json: bool,
    /// `[log]` `level`: a tracing filter such as "info" or "fengqiao_node=debug,info";
    /// `RUST_LOG` overrides it.
    pub log_level: String,
    /// `[federation]`: how the links to the parent and from the children behave.
    pub federation: FederationConfig,
}

/// The `[web]` section: console sessions and sign-ins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// `idle_timeout`: a session unused this long ends (default 30m; 1m–1d).
    pub idle_timeout: Duration,
    /// `max_session`: a session ends this long after sign-in, used or not (default 12h;
    /// at least `idle_timeout`, at most 7d).
    pub max_session: Duration,
    /// `lockout`: how long an account stays locked after
    /// `domain::users::MAX_FAILED_LOGINS` failed sign-ins; "off" (the default): until an
    /// administrator unlocks it (`fqctl user enable`).
    pub lockout: Option<Duration>,
    /// `require_totp`: every account must sign in with a second factor (TOTP); one without
    /// it sets it up at its next sign-in (等保 level 3).
    pub require_totp: bool,
}

impl Default for WebConfig {
    fn default() -> WebConfig {
        WebConfig {
            idle_timeout: Duration::from_secs(30 * 60),
            max_session: Duration::from_secs(12 * 3600),
            lockout: None,
            require_totp: false,
        }
    }
}

fn web_config(raw: RawWeb) -> Result<WebConfig, ConfigError> {
    let idle_timeout = parse_duration("web.idle_timeout", &raw.idle_timeout)?;
    if !(Duration::from_secs(60)..=Duration::from_secs(86_400)).contains(&idle_timeout) {
        return Err(invalid("web.idle_timeout", "must be 1m–1d"));
    }
    let max_session = parse_duration("web.max_session", &raw.max_session)?;
    if !(idle_timeout..=Duration::from_secs(7 * 86_400)).contains(&max_session) {
        return Err(invalid(
            "web.max_session",
            "must be at least web.idle_timeout and at most 7d",
        ));
    }
    Ok(WebConfig {
        idle_timeout,
        max_session,
        lockout: parse_optional_duration("web.lockout", &raw.lockout)?,
        require_totp: raw.require_totp,
    })
}

/// The `[public]` section: the citizens' channel (`crate::web::public`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicConfig {
    /// `tls_cert`, `tls_key`: PEM certificate chain and key for `public_listen`, such as one
    /// from a public CA that citizens' phones trust; both empty (the default): the node's
    /// own certificate (`tls.cert`, `tls.key`). One without the other is an error.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `captcha`: an image captcha, made by the node, guards the application form (default
    /// true; tests turn it off).
    pub captcha: bool,
    /// `lookups_per_minute`: progress lookups (pages and Open311 reads) per client address per
    /// minute (1–10000; default 10). More get HTTP 429 with Retry-After.
    pub lookups_per_minute: u32,
    /// `case_lookups_per_hour`: lookups of one case id per hour, from any address (1–10000;
    /// default 20): guessing one case's code from many addresses is as slow as from one.
    pub case_lookups_per_hour: u32,
    /// `submissions_per_hour`: applications through the form per client address per hour
    /// (1–10000; default 10).
    pub submissions_per_hour: u32,
    /// `api_submissions_per_minute`: submissions per API key per minute (1–100000; default
    /// 600): a hotline's system sends all its citizens' requests from one address.
    pub api_submissions_per_minute: u32,
    /// `max_connections`: open connections on `public_listen` (1–[`MAX_CONNECTIONS`]; default
    /// 4096); the handshake cap and timeout are the node's (`[limits]`).
    pub max_connections: usize,
}

impl Default for PublicConfig {
    fn default() -> PublicConfig {
        PublicConfig {
            tls: None,
            captcha: true,
            lookups_per_minute: 10,
            case_lookups_per_hour: 20,
            submissions_per_hour: 10,
            api_submissions_per_minute: 600,
            max_connections: 4096,
        }
    }
}

fn public_config(raw: RawPublic) -> Result<PublicConfig, ConfigError> {
    let tls = match (
        raw.tls_cert.as_os_str().is_empty(),
        raw.tls_key.as_os_str().is_empty(),
    ) {
        (true, true) => None,
        (false, false) => Some((raw.tls_cert, raw.tls_key)),
        (false, true) => {
            return Err(invalid(
                "public.tls_key",
                "must be set with public.tls_cert",
            ));
        }
        (true, false) => {
            return Err(invalid(
                "public.tls_cert",
                "must be set with public.tls_key",
            ));
        }
    };
    for (field, v, max) in [
        ("public.lookups_per_minute", raw.lookups_per_minute, 10_000),
        (
            "public.case_lookups_per_hour",
            raw.case_lookups_per_hour,
            10_000,
        ),
        (
            "public.submissions_per_hour",
            raw.submissions_per_hour,
            10_000,
        ),
        (
            "public.api_submissions_per_minute",
            raw.api_submissions_per_minute,
            100_000,
        ),
    ] {
        if !(1..=max).contains(&v) {
            return Err(invalid(field, format!("must be 1–{max}")));
        }
    }
    if !(1..=MAX_CONNECTIONS).contains(&raw.max_connections) {
        return Err(invalid(
            "public.max_connections",
            format!("must be 1–{MAX_CONNECTIONS}"),
        ));
    }
    Ok(PublicConfig {
        tls,
        captcha: raw.captcha,
        lookups_per_minute: raw.lookups_per_minute,
        case_lookups_per_hour: raw.case_lookups_per_hour,
        submissions_per_hour: raw.submissions_per_hour,
        api_submissions_per_minute: raw.api_submissions_per_minute,
        max_connections: raw.max_connections,
    })
}

/// The `[federation]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederationConfig {
    /// `link_silence_alert`: a link with nothing heard for longer than this is logged as an
    /// alert and flagged `silent` by GetLinks (1s–7d). When each peer was last heard is stored
    /// whenever the stored time is more than a tenth of this old, so after a restart a link
    /// counts from its last word (to within that tenth), not from the start.
    pub link_silence_alert: Duration,
    /// `pull_wait`: longest a long poll for messages waits when none are queued; as a parent,
    /// the cap on what children ask for. Must be shorter than `limits.request_timeout`.
    pub pull_wait: Duration,
    /// `batch_max`: most messages sent in one call (1–10000); batches also stay near
    /// `limits.max_message_bytes` (a node accepts federation calls of four times that).
    pub batch_max: usize,
    /// `backoff_min`: first retry delay after a failed call to the parent (1ms–1m).
    pub backoff_min: Duration,
    /// `backoff_max`: the cap of the exponentially growing retry delay (at least
    /// `backoff_min`, at most 1h). Each delay is drawn with jitter between half and all of it.
    pub backoff_max: Duration,
    /// `refuse_transfers`: empty (the default) to receive cases; otherwise this node takes in
    /// no case from another node, and the text (1–200 characters, one line) is the reason
    /// every transfer or take-over addressed to it is refused with. For a center being merged
    /// or dissolved (撤并) while it hands its own cases over: a refused case goes back to the
    /// node that sent it, which owns it again with the reason in its history. Cases passing
    /// through on their way elsewhere are still relayed, and refusals of this node's own
    /// transfers still come back to it.
    pub refuse_transfers: Option<String>,
    /// `keep_delivered`: how long a node keeps the messages a neighbour acknowledged (0–90d).
    /// A neighbour that comes back replaced (an empty folder) or restored from an older copy
    /// of its folder reports a lower watermark, and gets again what was kept after it: the
    /// cases transferred down to a village since its copy, the messages of a child since its
    /// parent's copy. The sweep deletes older ones (0: all, at each sweep).
    pub keep_delivered: Duration,
}

/// Longest `federation.keep_delivered`.
pub const KEEP_DELIVERED_MAX: Duration = Duration::from_secs(90 * 86_400);

/// Largest `limits.max_connections`: each connection holds a file descriptor, and the
/// deploy unit's `LimitNOFILE=65536` must leave room for storage and outgoing links.
pub const MAX_CONNECTIONS: usize = 16_384;

/// Longest `federation.refuse_transfers` text, in characters.
pub const REFUSE_TRANSFERS_MAX_CHARS: usize = 200;

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            link_silence_alert: Duration::from_secs(120),
            pull_wait: Duration::from_secs(20),
            batch_max: 256,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            refuse_transfers: None,
            keep_delivered: Duration::from_secs(7 * 86_400),
        }
    }
}

fn federation_config(
    raw: RawFederation,
    request_timeout: Duration,
) -> Result<FederationConfig, ConfigError> {
    let RawFederation {
        link_silence_alert,
        pull_wait,
        batch_max,
        backoff_min,
        backoff_max,
        refuse_transfers,
        keep_delivered,
    } = raw;
    let refuse_transfers = refuse_transfers.trim();
    if refuse_transfers.chars().count() > REFUSE_TRANSFERS_MAX_CHARS
        || refuse_transfers.chars().any(char::is_control)
    {
        return Err(invalid(
            "federation.refuse_transfers",
            format!("must be one line of at most {REFUSE_TRANSFERS_MAX_CHARS} characters"),
        ));
    }
    let f = FederationConfig {
        link_silence_alert: parse_duration("federation.link_silence_alert", &link_silence_alert)?,
        pull_wait: parse_duration("federation.pull_wait", &pull_wait)?,
        batch_max,
        backoff_min: parse_duration("federation.backoff_min", &backoff_min)?,
        backoff_max: parse_duration("federation.backoff_max", &backoff_max)?,
        refuse_transfers: (!refuse_transfers.is_empty()).then(|| refuse_transfers.to_owned()),
        keep_delivered: match keep_delivered.trim() {
            "0" => Duration::ZERO,
            other => parse_duration("federation.keep_delivered", other)?,
        },
    };
    if f.keep_delivered > KEEP_DELIVERED_MAX {
        return Err(invalid("federation.keep_delivered", "must be 0–90d"));
    }
    if !(Duration::from_secs(1)..=Duration::from_secs(7 * 86_400)).contains(&f.link_silence_alert) {
        return Err(invalid("federation.link_silence_alert", "must be 1s–7d"));
    }
    if f.pull_wait >= request_timeout {
        return Err(invalid(
            "federation.pull_wait",
            "must be shorter than limits.request_timeout",
        ));
    }
    if !(1..=10_000).contains(&f.batch_max) {
        return Err(invalid("federation.batch_max", "must be 1–10000"));
    }
    if f.backoff_min > Duration::from_secs(60) {
        return Err(invalid("federation.backoff_min", "must be at most 1m"));
    }
    if f.backoff_max < f.backoff_min || f.backoff_max > Duration::from_secs(3600) {
        return Err(invalid(
            "federation.backoff_max",
            "must be at least backoff_min and at most 1h",
        ));
    }
    Ok(f)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration field `{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

fn invalid(field: &'static str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.to_string(),
    }
}

fn env_source() -> Environment {
    Environment::with_prefix("FENGQIAO")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
}

/// Loads the layered configuration of a node from `file` (plus the environment).
pub fn load(file: &Path) -> Result<NodeConfig, ConfigError> {
    let node_file = || File::from(file).format(FileFormat::Toml).required(true);
    // First pass: just enough to learn the code (and so the tier) and an optional tier file.
    let pre = Config::builder()
        .add_source(node_file())
        .add_source(env_source())
        .build()?;
    let code_str: String = pre
        .get_string("code")
        .map_err(|_| invalid("code", "missing: set the node's division code"))?;
    let code = NodeCode::parse(&code_str).map_err(|e| invalid("code", e))?;
    let tier_override = pre.get_string("tier_config").unwrap_or_default();
    let tier_toml = if tier_override.is_empty() {
        builtin_tier_config(code.tier()).to_string()
    } else {
        std::fs::read_to_string(&tier_override)
            .map_err(|e| invalid("tier_config", format!("cannot read {tier_override}: {e}")))?
    };
    let raw: RawConfig = Config::builder()
        .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
        .add_source(File::from_str(&tier_toml, FileFormat::Toml))
        .add_source(node_file())
        .add_source(env_source())
        .build()?
        .try_deserialize()?;
    validate(raw)
}

fn parse_duration(field: &'static str, s: &str) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        invalid(
            field,
            format!("{s:?} is not a duration like \"3d\", \"12h\" or \"90s\": {e}"),
        )
    })?;
    if d.is_zero() {
        return Err(invalid(field, "must be longer than zero"));
    }
    Ok(d)
}

/// The environment variable that allows the test-only settings (`clock_offset`, the crash
/// points of `crate::federation::failpoint`): `1` in end-to-end tests and drills, never on a
/// production node.
pub const TEST_MODE_ENV: &str = "FENGQIAO_TEST_MODE";

/// Refuses test-only settings outside a test or drill (see [`TEST_MODE_ENV`]): a production
/// node never runs with a shifted clock or a crash point by accident.
pub fn check_test_settings(cfg: &NodeConfig) -> Result<(), ConfigError> {
    let test_mode = std::env::var(TEST_MODE_ENV).is_ok_and(|v| v == "1");
    if test_mode {
        return Ok(());
    }
    if !cfg.clock_offset.is_zero() {
        return Err(invalid(
            "clock_offset",
            format!("is for drills and tests only; set {TEST_MODE_ENV}=1 to use it"),
        ));
    }
    if std::env::var(crate::federation::failpoint::ENV).is_ok_and(|v| !v.trim().is_empty()) {
        return Err(invalid(
            "FENGQIAO_FAILPOINTS",
            format!("crash points are for tests only; set {TEST_MODE_ENV}=1 to use them"),
        ));
    }
    Ok(())
}

/// A duration that may be zero (`clock_offset`).
fn parse_offset(field: &'static str, s: &str) -> Result<Duration, ConfigError> {
    match s.trim() {
        "0" | "" => Ok(Duration::ZERO),
        other => humantime::parse_duration(other)
            .map_err(|e| invalid(field, format!("{s:?} is not a duration like \"30d\": {e}"))),
    }
}

/// A duration, or "off" (`None`).
fn parse_optional_duration(field: &'static str, s: &str) -> Result<Option<Duration>, ConfigError> {
    match s.trim() {
        "off" => Ok(None),
        other => parse_duration(field, other).map(Some),
    }
}

fn parse_addr(field: &'static str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|e| {
        invalid(
            field,
            format!("{s:?} is not an address like 127.0.0.1:7400: {e}"),
        )
    })
}

fn validate_stats(raw: RawStats) -> Result<StatsConfig, ConfigError> {
    let RawStats {
        retention_depth,
        push_delay,
        heartbeat,
        stale_after,
        overdue_refresh,
    } = raw;
    if !(1..=4).contains(&retention_depth) {
        return Err(invalid("stats.retention_depth", "must be 1–4"));
    }
    let cfg = StatsConfig {
        retention_depth,
        push_delay: parse_duration("stats.push_delay", &push_delay)?,
        heartbeat: parse_duration("stats.heartbeat", &heartbeat)?,
        stale_after: parse_duration("stats.stale_after", &stale_after)?,
        overdue_refresh: parse_duration("stats.overdue_refresh", &overdue_refresh)?,
    };
    if cfg.push_delay > cfg.heartbeat {
        return Err(invalid(
            "stats.push_delay",
            "must not exceed stats.heartbeat",
        ));
    }
    if cfg.stale_after < cfg.heartbeat * 2 {
        return Err(invalid(
            "stats.stale_after",
            "must be at least twice stats.heartbeat, or a child would look stale between pushes",
        ));
    }
    Ok(cfg)
}

fn validate(raw: RawConfig) -> Result<NodeConfig, ConfigError> {
    let RawConfig {
        code,
        name,
        listen,
        federation_listen,
        web_listen,
        public_listen,
        metrics_listen,
        parent,
        data_dir,
        tier_config: _,
        clock_offset,
        tls,
        storage,
        deadlines,
        early_warning,
        rules,
        reports,
        limits,
        stats,
        log,
        federation: raw_federation,
        web,
        public,
    } = raw;
    let code = NodeCode::parse(&code).map_err(|e| invalid("code", e))?;
    let listen = parse_addr("listen", &listen)?;
    let federation_listen = parse_addr("federation_listen", &federation_listen)?;
    if listen == federation_listen && listen.port() != 0 {
        return Err(invalid("federation_listen", "must differ from `listen`"));
    }
    let web_listen = match web_listen.trim() {
        "" => None,
        addr => {
            let addr = parse_addr("web_listen", addr)?;
            if addr.port() != 0 && (addr == listen || addr == federation_listen) {
                return Err(invalid(
                    "web_listen",
                    "must differ from `listen` and `federation_listen`",
                ));
            }
            Some(addr)
        }
    };
    let web = web_config(web)?;
    let public_listen = match public_listen.trim() {
        "" => None,
        addr => {
            let addr = parse_addr("public_listen", addr)?;
            if addr.port() != 0
                && (addr == listen || addr == federation_listen || Some(addr) == web_listen)
            {
                return Err(invalid(
                    "public_listen",
                    "must differ from `listen`, `federation_listen` and `web_listen`",
                ));
            }
            Some(addr)
        }
    };
    let public = public_config(public)?;
    let metrics_listen = match metrics_listen.trim() {
        "" => None,
        addr => {
            let addr = parse_addr("metrics_listen", addr)?;
            if addr.port() != 0
                && [
                    Some(listen),
                    Some(federation_listen),
                    web_listen,
                    public_listen,
                ]
                .contains(&Some(addr))
            {
                return Err(invalid(
                    "metrics_listen",
                    "must differ from the node's other addresses",
                ));
            }
            if !addr.ip().is_loopback() {
                tracing::warn!(%addr, "metrics_listen is not a loopback address: the metrics are plain HTTP, keep them on a management network");
            }
            Some(addr)
        }
    };
    let parent = match parent.trim() {
        "" => None,
        url if url.starts_with("https://") => Some(url.to_string()),
        url => {
            return Err(invalid(
                "parent",
                format!("{url:?} must be an https:// URL (links are always mutual TLS)"),
            ));
        }
    };
    if data_dir.as_os_str().is_empty() {
        return Err(invalid("data_dir", "must be set"));
    }
    for (field, p) in [
        ("tls.ca", &tls.ca),
        ("tls.cert", &tls.cert),
        ("tls.key", &tls.key),
    ] {
        if p.as_os_str().is_empty() {
            return Err(invalid(field, "must be set"));
        }
    }
    if !(1..=4096).contains(&storage.cache_capacity_mb) {
        return Err(invalid("storage.cache_capacity_mb", "must be 1–4096"));
    }
    let deadlines = Deadlines {
        review: parse_duration("deadlines.review", &deadlines.review)?,
        resolve: parse_duration("deadlines.resolve", &deadlines.resolve)?,
        follow_up: parse_duration("deadlines.follow_up", &deadlines.follow_up)?,
        escalate_overdue_after: parse_optional_duration(
            "deadlines.escalate_overdue_after",
            &deadlines.escalate_overdue_after,
        )?,
    };
    let policy = Policy {
        repeat_person_cases: early_warning.repeat_person_cases,
        repeat_person_window: parse_duration(
            "early_warning.repeat_person_window",
            &early_warning.repeat_person_window,
        )?,
        respondent_open_cases: early_warning.respondent_open_cases,
        reopen_supervise: early_warning.reopen_supervise,
    };
    let person_key_file = Some(early_warning.person_key_file).filter(|p| !p.as_os_str().is_empty());
    let sweep_every = parse_duration("rules.sweep_every", &rules.sweep_every)?;
    if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&sweep_every) {
        return Err(invalid("rules.sweep_every", "must be 1s–1d"));
    }
    let report_cadence = match reports.cadence.trim() {
        "off" => None,
        other => Some(
            other
                .parse::<Cadence>()
                .map_err(|e| invalid("reports.cadence", e))?,
        ),
    };
    let reports_dir = if reports.dir.as_os_str().is_empty() {
        data_dir.join("reports")
    } else {
        reports.dir
    };
    let clock_offset = parse_offset("clock_offset", &clock_offset)?;
    if !(crate::protocol::message::MESSAGE_BUDGET..=64 << 20).contains(&limits.max_message_bytes) {
        return Err(invalid(
            "limits.max_message_bytes",
            "must be 1048576–67108864 (1–64 MiB)",
        ));
    }
    if !(1..=10_000).contains(&limits.max_concurrent_streams) {
        return Err(invalid("limits.max_concurrent_streams", "must be 1–10000"));
    }
    let request_timeout = parse_duration("limits.request_timeout", &limits.request_timeout)?;
    if !(1..=MAX_CONNECTIONS).contains(&limits.max_connections) {
        return Err(invalid(
            "limits.max_connections",
            format!("must be 1–{MAX_CONNECTIONS}"),
        ));
    }
    if !(1..=100_000).contains(&limits.max_inflight) {
        return Err(invalid("limits.max_inflight", "must be 1–100000"));
    }
    if !(1..=limits.max_inflight).contains(&limits.max_inflight_per_caller) {
        return Err(invalid(
            "limits.max_inflight_per_caller",
            "must be 1–limits.max_inflight",
        ));
    }
    if !(1..=limits.max_connections).contains(&limits.max_handshakes) {
        return Err(invalid(
            "limits.max_handshakes",
            "must be 1–limits.max_connections",
        ));
    }
    let stats = validate_stats(stats)?;
    let federation = federation_config(raw_federation, request_timeout)?;
    let log_json = match log.format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            return Err(invalid(
                "log.format",
                format!("{other:?}: use \"text\" or \"json\""),
            ));
        }
    };
    Ok(NodeConfig {
        code,
        name,
        listen,
        federation_listen,
        web_listen,
        web,
        public_listen,
        public,
        metrics_listen,
        parent,
        data_dir,
        tls_crl: (!tls.crl.as_os_str().is_empty()).then_some(tls.crl),
        tls: TlsFiles {
            ca: tls.ca,
            cert: tls.cert,
            key: tls.key,
        },
        cache_capacity_bytes: storage.cache_capacity_mb << 20,
        deadlines,
        policy,
        person_key_file,
        sweep_every,
        report_cadence,
        reports_dir,
        clock_offset,
        max_message_bytes: limits.max_message_bytes,
        max_concurrent_streams: limits.max_concurrent_streams,
        request_timeout,
        max_connections: limits.max_connections,
        max_handshakes: limits.max_handshakes,
        max_inflight: limits.max_inflight,
        max_inflight_per_caller: limits.max_inflight_per_caller,
        stats,
        log_json,
        log_level: log.level,
        federation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("node.toml");
        std::fs::write(&p, body).unwrap();
        p
    }

    const BASE: &str = r#"
code = "610116"
listen = "127.0.0.1:7400"
federation_listen = "127.0.0.1:7401"
data_dir = "data"
[tls]
ca = "ca.pem"
cert = "node.pem"
key = "node.key"
"#;

    /// Environment variables are process-wide: the test that sets some holds this lock, and
    /// every other load in these tests takes it too, so none sees another test's variables.
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn load(file: &Path) -> Result<NodeConfig, ConfigError> {
        let _env = ENV
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        super::load(file)
    }

    // Environment variables are process-wide, so every env-dependent assertion lives in this
    // one test, which holds `ENV` while they are set.
    #[test]
    fn layers_apply_in_order_and_env_wins() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            &format!("{BASE}\n[deadlines]\nresolve = \"20d\"\n"),
        );
        let c = load(&p).unwrap();
        assert_eq!(c.code.as_str(), "610116");
        assert_eq!(c.cache_capacity_bytes, 64 << 20, "county tier default");
        assert_eq!(
            c.deadlines.resolve,
            Duration::from_secs(20 * 86_400),
            "node file beats tier"
        );
        assert_eq!(c.deadlines.review, Duration::from_secs(3 * 86_400));
        assert!(c.parent.is_none());
        assert_eq!(c.stats, StatsConfig::default(), "built-in defaults");

        let env = ENV
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: no other test in this binary writes FENGQIAO__ variables, and every test
        // that reads them (through `load`) waits for `ENV`, held here.
        unsafe { std::env::set_var("FENGQIAO__DEADLINES__REVIEW", "90s") };
        unsafe { std::env::set_var("FENGQIAO__TLS__CERT", "other.pem") };
        let c = super::load(&p);
        unsafe { std::env::remove_var("FENGQIAO__DEADLINES__REVIEW") };
        unsafe { std::env::remove_var("FENGQIAO__TLS__CERT") };
        drop(env);
        let c = c.unwrap();
        assert_eq!(c.deadlines.review, Duration::from_secs(90));
        assert_eq!(c.tls.cert, PathBuf::from("other.pem"));
    }

    #[test]
    fn rule_sections_have_defaults_by_tier() {
        let dir = tempfile::tempdir().unwrap();
        let c = load(&write(dir.path(), BASE)).unwrap();
        assert_eq!(
            c.deadlines.escalate_overdue_after,
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(c.policy, Policy::default());
        assert_eq!(c.sweep_every, Duration::from_secs(30));
        assert_eq!(c.report_cadence, Some(Cadence::Month), "county: monthly");
        assert_eq!(c.reports_dir, PathBuf::from("data").join("reports"));
        assert_eq!(c.clock_offset, Duration::ZERO);
        assert_eq!(c.federation.refuse_transfers, None, "nodes receive cases");

        let village = BASE.replace("610116", "610116001001");
        let c = load(&write(dir.path(), &village)).unwrap();
        assert_eq!(c.report_cadence, Some(Cadence::Day), "village: daily");
        let township = BASE.replace("610116", "610116001");
        let c = load(&write(dir.path(), &township)).unwrap();
        assert_eq!(c.report_cadence, Some(Cadence::Week), "township: weekly");

        let body = format!(
            "clock_offset = \"40d\"\n{BASE}\n[deadlines]\nescalate_overdue_after = \"off\"\n\
             [early_warning]\nrepeat_person_cases = 0\nrepeat_person_window = \"30d\"\n\
             [reports]\ncadence = \"off\"\ndir = \"/srv/reports\"\n"
        );
        let c = load(&write(dir.path(), &body)).unwrap();
        assert_eq!(c.deadlines.escalate_overdue_after, None);
        assert_eq!(c.policy.repeat_person_cases, 0);
        assert_eq!(
            c.policy.repeat_person_window,
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(c.report_cadence, None);
        assert_eq!(c.reports_dir, PathBuf::from("/srv/reports"));
        assert_eq!(c.clock_offset, Duration::from_secs(40 * 86_400));

        let body = format!(
            "{BASE}\n[federation]\nrefuse_transfers = \" 本中心已撤并，请移交新设中心 \"\n"
        );
        let c = load(&write(dir.path(), &body)).unwrap();
        assert_eq!(
            c.federation.refuse_transfers.as_deref(),
            Some("本中心已撤并，请移交新设中心")
        );
    }

    #[test]
    fn tier_follows_code_length() {
        let dir = tempfile::tempdir().unwrap();
        let body = BASE.replace("610116", "610116001001");
        let c = load(&write(dir.path(), &body)).unwrap();
        assert_eq!(c.cache_capacity_bytes, 16 << 20, "village tier default");
    }

    fn err_of(body: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        load(&write(dir.path(), body)).unwrap_err().to_string()
    }

    #[test]
    fn invalid_values_name_their_field() {
        assert!(err_of(&BASE.replace("610116", "61011")).contains("code"));
        assert!(err_of(&BASE.replace("127.0.0.1:7400", "nowhere")).contains("listen"));
        assert!(
            err_of(&format!("{BASE}\n[deadlines]\nreview = \"soon\"\n"))
                .contains("deadlines.review")
        );
        assert!(err_of(&format!("parent = \"http://x:1\"\n{BASE}")).contains("parent"));
        assert!(
            err_of(&format!("{BASE}\n[storage]\ncache_capacity_mb = 0\n"))
                .contains("cache_capacity_mb")
        );
        assert!(err_of(&format!("{BASE}\n[log]\nformat = \"xml\"\n")).contains("log.format"));
        assert!(
            err_of(&format!("{BASE}\n[reports]\ncadence = \"hourly\"\n"))
                .contains("reports.cadence")
        );
        assert!(
            err_of(&format!("{BASE}\n[rules]\nsweep_every = \"2d\"\n"))
                .contains("rules.sweep_every")
        );
        assert!(
            err_of(&format!(
                "{BASE}\n[deadlines]\nescalate_overdue_after = \"never\"\n"
            ))
            .contains("deadlines.escalate_overdue_after")
        );
        assert!(err_of(&format!("clock_offset = \"soon\"\n{BASE}")).contains("clock_offset"));
        assert!(
            err_of(&format!("{BASE}\n[stats]\nretention_depth = 0\n"))
                .contains("stats.retention_depth")
        );
        assert!(
            err_of(&format!("{BASE}\n[stats]\nheartbeat = \"20s\"\n"))
                .contains("stats.stale_after")
        );
        assert!(err_of(&BASE.replace("data_dir = \"data\"", "")).contains("data_dir"));
        assert!(
            err_of(&format!("{BASE}\n[federation]\npull_wait = \"40s\"\n"))
                .contains("federation.pull_wait")
        );
        assert!(
            err_of(&format!("{BASE}\n[federation]\nbackoff_max = \"1ms\"\n"))
                .contains("federation.backoff_max")
        );
        assert!(
            err_of(&format!("{BASE}\n[federation]\nbatch_max = 0\n"))
                .contains("federation.batch_max")
        );
        assert!(
            err_of(&format!(
                "{BASE}\n[federation]\nrefuse_transfers = \"{}\"\n",
                "撤".repeat(201)
            ))
            .contains("federation.refuse_transfers")
        );
        assert!(
            err_of(&format!(
                "{BASE}\n[federation]\nrefuse_transfers = \"a\\nb\"\n"
            ))
            .contains("federation.refuse_transfers")
        );
    }

    #[test]
    fn connection_limits_are_checked() {
        let c = load(&write(tempfile::tempdir().unwrap().path(), BASE)).unwrap();
        assert_eq!((c.max_connections, c.max_handshakes), (256, 32), "defaults");
        assert!(
            2 * c.max_connections <= 1024 / 2,
            "both listeners together stay well under the usual 1,024 open files"
        );
        let limits = |conns: &str, shakes: &str| {
            format!("{BASE}\n[limits]\nmax_connections = {conns}\nmax_handshakes = {shakes}\n")
        };
        let dir = tempfile::tempdir().unwrap();
        let c = load(&write(dir.path(), &limits("10", "10"))).unwrap();
        assert_eq!((c.max_connections, c.max_handshakes), (10, 10));
        assert!(err_of(&limits("0", "1")).contains("limits.max_connections"));
        assert!(err_of(&limits("100000", "1")).contains("limits.max_connections"));
        assert!(err_of(&limits("10", "0")).contains("limits.max_handshakes"));
        assert!(err_of(&limits("10", "11")).contains("limits.max_handshakes"));
    }

    #[test]
    fn the_console_is_off_unless_web_listen_is_set() {
        let c = load(&write(tempfile::tempdir().unwrap().path(), BASE)).unwrap();
        assert_eq!(c.web_listen, None);
        assert_eq!(c.web, WebConfig::default());
        let with = |top: &str, web: &str| format!("{top}\n{BASE}\n[web]\n{web}\n");
        let dir = tempfile::tempdir().unwrap();
        let c = load(&write(
            dir.path(),
            &with(
                "web_listen = \"0.0.0.0:7443\"",
                "lockout = \"30m\"\nrequire_totp = true",
            ),
        ))
        .unwrap();
        assert_eq!(c.web_listen, Some("0.0.0.0:7443".parse().unwrap()));
        assert_eq!(c.web.lockout, Some(Duration::from_secs(1800)));
        assert!(c.web.require_totp);
        assert!(err_of(&with("web_listen = \"127.0.0.1:7400\"", "")).contains("web_listen"));
        assert!(err_of(&with("web_listen = \"nowhere\"", "")).contains("web_listen"));
        assert!(err_of(&with("", "idle_timeout = \"10s\"")).contains("web.idle_timeout"));
        assert!(
            err_of(&with("", "idle_timeout = \"2h\"\nmax_session = \"1h\""))
                .contains("web.max_session")
        );
    }

    #[test]
    fn the_public_side_is_off_unless_public_listen_is_set() {
        let c = load(&write(tempfile::tempdir().unwrap().path(), BASE)).unwrap();
        assert_eq!(c.public_listen, None);
        assert_eq!(c.public, PublicConfig::default());
        assert!(c.public.captcha, "a captcha unless turned off");
        let with = |top: &str, public: &str| format!("{top}\n{BASE}\n[public]\n{public}\n");
        let dir = tempfile::tempdir().unwrap();
        let c = load(&write(
            dir.path(),
            &with(
                "public_listen = \"0.0.0.0:443\"",
                "captcha = false\ntls_cert = \"pub.pem\"\ntls_key = \"pub.key\"\nlookups_per_minute = 3",
            ),
        ))
        .unwrap();
        assert_eq!(c.public_listen, Some("0.0.0.0:443".parse().unwrap()));
        assert!(!c.public.captcha);
        assert_eq!(c.public.lookups_per_minute, 3);
        assert_eq!(
            c.public.tls,
            Some((PathBuf::from("pub.pem"), PathBuf::from("pub.key")))
        );
        assert!(err_of(&with("public_listen = \"127.0.0.1:7400\"", "")).contains("public_listen"));
        assert!(err_of(&with("", "tls_cert = \"pub.pem\"")).contains("public.tls_key"));
        assert!(err_of(&with("", "lookups_per_minute = 0")).contains("public.lookups_per_minute"));
        assert!(err_of(&with("", "max_connections = 0")).contains("public.max_connections"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = err_of(&format!("colour = \"red\"\n{BASE}"));
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn builtin_tier_configs_parse() {
        for t in [
            Tier::Province,
            Tier::City,
            Tier::County,
            Tier::Township,
            Tier::Village,
        ] {
            let toml = builtin_tier_config(t);
            Config::builder()
                .add_source(File::from_str(toml, FileFormat::Toml))
                .build()
                .unwrap();
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

            /// Any value in any known key, or any extra line, is loaded or refused with a
            /// message: never a panic.
            #[test]
            fn any_config_is_loaded_or_refused(
                line in 0usize..16,
                value in prop_oneof![
                    ".{0,20}".prop_map(|v| format!("{v:?}")),
                    any::<i64>().prop_map(|n| n.to_string()),
                    Just("[1, 2]".to_owned()),
                    Just("{ a = 1 }".to_owned()),
                    Just("true".to_owned()),
                ],
                extra in prop_oneof![
                    Just(String::new()),
                    Just("[limits]\nmax_inflight = 0\n".to_owned()),
                    Just("[public]\ncaptcha = \"yes\"\n".to_owned()),
                    Just("[web]\nsession_idle = \"-1s\"\n".to_owned()),
                    Just("metrics_listen = \"127.0.0.1:7400\"\n".to_owned()),
                ],
            ) {
                let lines: Vec<String> = BASE
                    .lines()
                    .enumerate()
                    .map(|(i, l)| match l.split_once(" = ") {
                        Some((k, _)) if i == line => format!("{k} = {value}"),
                        _ => l.to_owned(),
                    })
                    .collect();
                let body = format!("{}\n{extra}", lines.join("\n"));
                let dir = tempfile::tempdir().unwrap();
                match load(&write(dir.path(), &body)) {
                    Ok(c) => prop_assert!(c.max_inflight_per_caller <= c.max_inflight),
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }
        }
    }
}
