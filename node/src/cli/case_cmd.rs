//! `fqctl case ...`: one subcommand per CaseService RPC (risk, deadline and "六个一" ones in
//! `oversight_cmd`).

use clap::{Args, Subcommand};
use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;

use super::oversight_cmd::{self, ExtendArgs, PlanArgs, RiskArgs};
use super::render::{self, parse_enum};
use super::{Cli, Failure, connect};
use crate::clock::{Clock, SystemClock};
use crate::convert;

#[derive(Subcommand)]
pub enum CaseCommand {
    /// 登记: register a dispute.
    Register(RegisterArgs),
    /// 查看: one case (personal data in full only for roles allowed to see it).
    Get { case_id: String },
    /// 列表: cases, newest filters first; personal data masked.
    List(ListArgs),
    /// 导出台账: the listing (its filters) or a search as an Excel workbook or CSV file,
    /// masked unless --unmasked (roles that may see personal data), at most 10,000 rows;
    /// recorded in the audit log.
    Export(ExportArgs),
    /// 导入历史台账 (director): legacy records from an .xlsx or .csv laid out as the template
    /// (--template writes it): each row imported with its date and status or reported as
    /// 第N行：reason (exit status 1 when any row was refused); running it again adds nothing.
    Import(ImportArgs),
    /// 审核: accept (→ 待办理) or reject (→ 已拒绝, with reason and guidance).
    Review(ReviewArgs),
    /// 派单: dispatch to a department or mediator, optionally with a deadline.
    Assign {
        case_id: String,
        /// Department or mediator, e.g. "人社所".
        #[arg(long)]
        handler: String,
        /// Deadline: a duration from now ("7d", "36h") or a date/time in China time
        /// ("2026-12-01" or "2026-12-01 17:00").
        #[arg(long)]
        due: Option<String>,
    },
    /// 调解: record one mediation session.
    Mediate {
        case_id: String,
        /// phone | face-to-face | video
        #[arg(long)]
        method: String,
        /// peoples | administrative | judicial | industry
        #[arg(long = "type")]
        mediation_type: String,
        #[arg(long)]
        mediator: String,
        /// agreed | not-agreed | continuing
        #[arg(long)]
        result: String,
        #[arg(long, default_value = "")]
        notes: String,
    },
    /// 化解: resolved with an agreement, or unresolved with guidance.
    Resolve(ResolveArgs),
    /// 回访: satisfaction 1–5; 3 or more closes, 1–2 reopens.
    FollowUp {
        case_id: String,
        #[arg(long)]
        satisfaction: u32,
        #[arg(long, default_value = "")]
        notes: String,
    },
    /// 流转记录: the case's history.
    History { case_id: String },
    /// 提级: take-over (提级办理, the parent owns it) or supervise (提级督办, the parent follows).
    Escalate {
        case_id: String,
        /// take-over | supervise
        #[arg(long)]
        mode: String,
        #[arg(long)]
        reason: String,
    },
    /// 移交/交办/流转: move the case to another node (sideways moves: at the common ancestor).
    Transfer {
        case_id: String,
        /// Division code of the node that is to own the case.
        #[arg(long = "to")]
        to_node: String,
        #[arg(long)]
        reason: String,
    },
    /// 督办: an order on a case owned below this node.
    Supervise {
        case_id: String,
        #[arg(long)]
        instruction: String,
        /// Deadline of the order: "7d", "2026-12-01" or "2026-12-01 17:00" (China time).
        #[arg(long)]
        due: Option<String>,
    },
    /// 风险调整: change the four-colour risk, with a reason (director).
    Risk(RiskArgs),
    /// 延期: extend the resolution deadline once, with a reason (director).
    Extend(ExtendArgs),
    /// 六个一: set the lead leader, mediation organisation, liaison unit, plan, briefing.
    Plan(PlanArgs),
    /// 办理进展: add an entry to the progress table.
    Progress {
        case_id: String,
        #[arg(long)]
        text: String,
    },
}

#[derive(Args)]
pub struct RegisterArgs {
    /// labor | property-management | land-contract | marriage-family | neighbor | medical |
    /// traffic | finance | construction-demolition | lease | consumer | other
    #[arg(long)]
    pub category: String,
    /// walk-in | hotline-12348 | online | grid-report | court-referral | petition |
    /// department-transfer
    #[arg(long)]
    pub channel: String,
    /// blue | yellow | orange | red
    #[arg(long, default_value = "blue")]
    pub risk: String,
    #[arg(long)]
    pub summary: String,
    #[arg(long, default_value = "")]
    pub description: String,
    /// A party as "role,name,phone,id_number" (role: applicant | respondent | other); repeatable.
    #[arg(long = "party")]
    pub parties: Vec<String>,
    /// Amount involved in yuan (two decimals at most).
    #[arg(long, conflicts_with = "amount_fen")]
    pub amount_yuan: Option<String>,
    /// Amount involved in fen.
    #[arg(long)]
    pub amount_fen: Option<i64>,
    #[arg(long, default_value = "")]
    pub grid: String,
    /// Idempotency key; a retry with the same key returns the original case. Default: random.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

/// The filters of `case list` and `case export`.
#[derive(Args)]
pub struct Filters {
    /// registered | accepted | in-mediation | resolved | unresolved | rejected | closed | transferred
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub risk: Option<String>,
    #[arg(long)]
    pub category: Option<String>,
    /// Only cases past their running deadline (review, resolution or follow-up).
    #[arg(long)]
    pub overdue: bool,
    /// The read-only copies of cases this node supervises (督办) instead of its own cases.
    #[arg(long)]
    pub supervised: bool,
}

/// The proto values of the filters: status, risk, category.
fn filter_enums(f: &Filters) -> Result<(i32, i32, i32), Failure> {
    Ok((
        opt_enum::<pb::CaseStatus>("CASE_STATUS", &f.status, "status")?,
        opt_enum::<pb::RiskLevel>("RISK_LEVEL", &f.risk, "risk")?,
        opt_enum::<pb::Category>("CATEGORY", &f.category, "category")?,
    ))
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filters: Filters,
    #[arg(long, default_value_t = 50)]
    pub page_size: u32,
    #[arg(long, default_value = "")]
    pub page_token: String,
    /// Follow page tokens to the end.
    #[arg(long)]
    pub all: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("file").required(true).args(["xlsx", "csv"])))]
pub struct ExportArgs {
    /// Write an Excel workbook (.xlsx) here.
    #[arg(long)]
    pub xlsx: Option<std::path::PathBuf>,
    /// Write a CSV file (UTF-8 with BOM) here.
    #[arg(long)]
    pub csv: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub filters: Filters,
    /// The cases a search finds instead (case id, lookup code, phone, ID number, words).
    #[arg(long, default_value = "")]
    pub query: String,
    /// Names, phones and ID numbers in full (含个人信息): for roles that may see them;
    /// recorded as such in the audit log.
    #[arg(long)]
    pub unmasked: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["file", "template"])))]
pub struct ImportArgs {
    /// The .xlsx or .csv file to import (at most 10,000 rows).
    pub file: Option<std::path::PathBuf>,
    /// Write the import template (an .xlsx with the header row and an example) here instead.
    #[arg(long)]
    pub template: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct ReviewArgs {
    pub case_id: String,
    #[arg(long, conflicts_with = "reject", required_unless_present = "reject")]
    pub accept: bool,
    #[arg(long)]
    pub reject: bool,
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Where the citizen should go instead (required with --reject).
    #[arg(long, default_value = "")]
    pub guidance: String,
}

#[derive(Args)]
pub struct ResolveArgs {
    pub case_id: String,
    /// 调解不成: close the mediation without agreement (give --guidance).
    #[arg(long)]
    pub unresolved: bool,
    /// The agreement (调解协议) when resolved.
    #[arg(long, default_value = "")]
    pub agreement: String,
    /// Guidance toward litigation or arbitration when unresolved.
    #[arg(long, default_value = "")]
    pub guidance: String,
    /// Settled amount in yuan.
    #[arg(long)]
    pub settled_yuan: Option<String>,
    /// none | judicial | notarized
    #[arg(long, default_value = "none")]
    pub confirmation: String,
}

/// Parses "4400", "4400.5", "4400.50" yuan into fen, exactly (no floats).
pub fn yuan_to_fen(s: &str) -> Result<i64, Failure> {
    let bad = || Failure::usage(format!("amount {s:?}: give yuan like 4400 or 4400.50"));
    let s = s.trim().replace([',', '，'], "");
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let yuan: i64 = int.parse().map_err(|_| bad())?;
    let fen: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<2}").parse().map_err(|_| bad())?
    };
    yuan.checked_mul(100)
        .and_then(|v| v.checked_add(fen))
        .ok_or_else(bad)
}

fn parse_party(s: &str) -> Result<pb::Party, Failure> {
    let parts: Vec<&str> = s.splitn(4, ',').map(str::trim).collect();
    let [role, name, rest @ ..] = parts.as_slice() else {
        return Err(Failure::usage(format!(
            "--party {s:?}: give \"role,name,phone,id_number\""
        )));
    };
    Ok(pb::Party {
        role: parse_enum::<pb::PartyRole>("PARTY_ROLE", role, "party role")? as i32,
        name: (*name).to_string(),
        phone: rest.first().copied().unwrap_or("").to_string(),
        id_number: rest.get(1).copied().unwrap_or("").to_string(),
    })
}

/// Parses a deadline given as `flag`: a duration from now, or a China-time date / date-time
/// (a date alone means its last second).
pub(crate) fn parse_due(s: &str, flag: &str) -> Result<prost_types::Timestamp, Failure> {
    parse_time(s, flag, Direction::Ahead)
}

/// Which way a duration counts from now, and which end of a bare date is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// A deadline: "10d" from now; a date means its last minute.
    Ahead,
    /// A start: "7d" ago; a date means its midnight.
    Back,
}

/// A time given on the command line: a duration from now (see [`Direction`]), or a China date
/// or date-time ("2026-12-01", "2026-12-01 17:00").
pub(crate) fn parse_time(
    s: &str,
    flag: &str,
    way: Direction,
) -> Result<prost_types::Timestamp, Failure> {
    if let Ok(d) = humantime::parse_duration(s) {
        let now = SystemClock::default().now();
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let at = match way {
            Direction::Ahead => now.plus(d),
            Direction::Back => crate::domain::Timestamp(now.millis().saturating_sub(ms)),
        };
        return Ok(convert::ts_to_proto(at));
    }
    let fmt_dt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    let fmt_d = time::macros::format_description!("[year]-[month]-[day]");
    let local = time::PrimitiveDateTime::parse(s, fmt_dt)
        .or_else(|_| {
            time::Date::parse(s, fmt_d).map(|d| match way {
                Direction::Ahead => d.with_hms(23, 59, 59).unwrap_or(d.midnight()),
                Direction::Back => d.midnight(),
            })
        })
        .map_err(|_| {
            Failure::usage(format!(
                "{flag} {s:?}: give \"7d\", \"2026-12-01\" or \"2026-12-01 17:00\""
            ))
        })?;
    let t = local.assume_offset(time::macros::offset!(+8));
    Ok(prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: 0,
    })
}

fn random_key() -> String {
    use rand::Rng;
    let n: u128 = rand::rng().random();
    format!("fqctl-{n:032x}")
}

pub async fn health(cli: &Cli) -> Result<String, Failure> {
    let target = connect::resolve(cli)?;
    let ch = connect::channel(&target).await?;
    let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
    let r = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner();
    let serving =
        r.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    // The detail: whether a read found a damaged record (an older node has no such service).
    let whole = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: crate::server::INTEGRITY_HEALTH.into(),
        })
        .await
        .map(|r| {
            r.into_inner().status
                == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        })
        .unwrap_or(true);
    if cli.json {
        return Ok(format!(
            "{}\n",
            serde_json::json!({ "endpoint": target.endpoint, "serving": serving, "store_whole": whole })
        ));
    }
    let lang = target.lang;
    Ok(format!(
        "{} {}{}\n",
        target.endpoint,
        if serving {
            lang.t("正常服务", "serving")
        } else {
            lang.t("未就绪", "not serving")
        },
        if whole {
            ""
        } else {
            lang.t(
                "；发现损坏的存储记录，已跳过（见预警 damaged_record，从备份恢复）",
                "; damaged stored records were found and skipped (see the damaged_record alerts; restore from a backup)",
            )
        }
    ))
}

pub async fn run(cli: &Cli, cmd: &CaseCommand) -> Result<String, Failure> {
    let target = connect::resolve(cli)?;
    let lang = target.lang;
    if let CaseCommand::Import(ImportArgs {
        template: Some(path),
        ..
    }) = cmd
    {
        return write_template(path, lang);
    }
    // Decode everything local before touching the network: bad input never costs a round trip.
    let ch = connect::channel(&target).await?;
    let mut c = CaseServiceClient::new(ch);
    let case_out = |case: pb::Case| -> String {
        if cli.json {
            format!("{}\n", render::case_json(&case))
        } else {
            render::case_detail(&case, lang)
        }
    };
    match cmd {
        CaseCommand::Register(a) => {
            let amount_fen = match (&a.amount_yuan, a.amount_fen) {
                (Some(y), _) => yuan_to_fen(y)?,
                (None, Some(f)) => f,
                (None, None) => 0,
            };
            let req = pb::RegisterCaseRequest {
                idempotency_key: a.idempotency_key.clone().unwrap_or_else(random_key),
                category: parse_enum::<pb::Category>("CATEGORY", &a.category, "category")? as i32,
                channel: parse_enum::<pb::Channel>("CHANNEL", &a.channel, "channel")? as i32,
                summary: a.summary.clone(),
                description: a.description.clone(),
                parties: a
                    .parties
                    .iter()
                    .map(|p| parse_party(p))
                    .collect::<Result<_, _>>()?,
                amount_fen,
                risk: parse_enum::<pb::RiskLevel>("RISK_LEVEL", &a.risk, "risk")? as i32,
                grid_id: a.grid.clone(),
            };
            Ok(case_out(c.register_case(req).await?.into_inner()))
        }
        CaseCommand::Get { case_id } => Ok(case_out(
            c.get_case(pb::GetCaseRequest {
                case_id: case_id.clone(),
            })
            .await?
            .into_inner(),
        )),
        CaseCommand::List(a) => {
            let (status, risk, category) = filter_enums(&a.filters)?;
            let mut req = pb::ListCasesRequest {
                status,
                risk,
                category,
                overdue_only: a.filters.overdue,
                supervised: a.filters.supervised,
                page_size: a.page_size,
                page_token: a.page_token.clone(),
            };
            let mut cases = Vec::new();
            let next = loop {
                let page = c.list_cases(req.clone()).await?.into_inner();
                cases.extend(page.cases);
                if !a.all || page.next_page_token.is_empty() {
                    break page.next_page_token;
                }
                req.page_token = page.next_page_token;
            };
            if cli.json {
                let v = serde_json::json!({
                    "cases": cases.iter().map(render::case_json).collect::<Vec<_>>(),
                    "next_page_token": next,
                });
                return Ok(format!("{v}\n"));
            }
            Ok(render::case_table(&cases, &next, lang))
        }
        CaseCommand::Export(a) => {
            let (format, path) = match (&a.xlsx, &a.csv) {
                (Some(p), _) => (pb::ExportFormat::Xlsx, p),
                (None, Some(p)) => (pb::ExportFormat::Csv, p),
                (None, None) => return Err(Failure::usage("--xlsx FILE or --csv FILE")),
            };
            let (status, risk, category) = filter_enums(&a.filters)?;
            let req = pb::ExportCasesRequest {
                format: format as i32,
                status,
                risk,
                category,
                overdue_only: a.filters.overdue,
                supervised: a.filters.supervised,
                query: a.query.clone(),
                english: lang == crate::text::Lang::En,
                unmasked: a.unmasked,
            };
            let out = c.export_cases(req).await?.into_inner();
            std::fs::write(path, &out.content)
                .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
            if cli.json {
                let v = serde_json::json!({"file": path.display().to_string(), "rows": out.rows});
                return Ok(format!("{v}\n"));
            }
            Ok(format!(
                "{} {} {}: {}\n",
                lang.t("已导出", "exported"),
                out.rows,
                lang.t("件", "cases to"),
                path.display()
            ))
        }
        CaseCommand::Import(a) => import(&mut c, a, cli.json, lang).await,
        CaseCommand::Review(a) => {
            let req = pb::ReviewCaseRequest {
                case_id: a.case_id.clone(),
                accept: a.accept,
                reason: a.reason.clone(),
                guidance: a.guidance.clone(),
            };
            Ok(case_out(c.review_case(req).await?.into_inner()))
        }
        CaseCommand::Assign {
            case_id,
            handler,
            due,
        } => {
            let due_at = due.as_deref().map(|d| parse_due(d, "--due")).transpose()?;
            let req = pb::AssignCaseRequest {
                case_id: case_id.clone(),
                handler: handler.clone(),
                due_at,
            };
            Ok(case_out(c.assign_case(req).await?.into_inner()))
        }
        CaseCommand::Mediate {
            case_id,
            method,
            mediation_type,
            mediator,
            result,
            notes,
        } => {
            let req = pb::RecordMediationRequest {
                case_id: case_id.clone(),
                method: parse_enum::<pb::MediationMethod>("MEDIATION_METHOD", method, "method")?
                    as i32,
                mediation_type: parse_enum::<pb::MediationType>(
                    "MEDIATION_TYPE",
                    mediation_type,
                    "type",
                )? as i32,
                mediator: mediator.clone(),
                notes: notes.clone(),
                result: parse_enum::<pb::MediationResult>("MEDIATION_RESULT", result, "result")?
                    as i32,
            };
            Ok(case_out(c.record_mediation(req).await?.into_inner()))
        }
        CaseCommand::Resolve(a) => {
            let settled_amount_fen = a
                .settled_yuan
                .as_deref()
                .map(yuan_to_fen)
                .transpose()?
                .unwrap_or(0);
            let req = pb::ResolveCaseRequest {
                case_id: a.case_id.clone(),
                resolved: !a.unresolved,
                agreement: if a.unresolved {
                    a.guidance.clone()
                } else {
                    a.agreement.clone()
                },
                settled_amount_fen,
                confirmation: parse_enum::<pb::Confirmation>(
                    "CONFIRMATION",
                    &a.confirmation,
                    "confirmation",
                )? as i32,
            };
            Ok(case_out(c.resolve_case(req).await?.into_inner()))
        }
        CaseCommand::FollowUp {
            case_id,
            satisfaction,
            notes,
        } => {
            let req = pb::RecordFollowUpRequest {
                case_id: case_id.clone(),
                satisfaction: *satisfaction,
                notes: notes.clone(),
            };
            Ok(case_out(c.record_follow_up(req).await?.into_inner()))
        }
        CaseCommand::Escalate {
            case_id,
            mode,
            reason,
        } => {
            let mode = parse_enum::<pb::EscalationMode>("ESCALATION_MODE", mode, "mode")?;
            let req = pb::EscalateCaseRequest {
                case_id: case_id.clone(),
                mode: mode as i32,
                reason: reason.clone(),
            };
            Ok(case_out(c.escalate_case(req).await?.into_inner()))
        }
        CaseCommand::Transfer {
            case_id,
            to_node,
            reason,
        } => {
            let req = pb::TransferCaseRequest {
                case_id: case_id.clone(),
                to_node: to_node.clone(),
                reason: reason.clone(),
            };
            Ok(case_out(c.transfer_case(req).await?.into_inner()))
        }
        CaseCommand::Supervise {
            case_id,
            instruction,
            due,
        } => {
            let req = pb::SuperviseCaseRequest {
                case_id: case_id.clone(),
                instruction: instruction.clone(),
                due_at: due.as_deref().map(|d| parse_due(d, "due")).transpose()?,
            };
            Ok(case_out(c.supervise_case(req).await?.into_inner()))
        }
        CaseCommand::History { case_id } => {
            let h = c
                .get_case_history(pb::GetCaseRequest {
                    case_id: case_id.clone(),
                })
                .await?
                .into_inner();
            if cli.json {
                return Ok(format!("{}\n", render::history_json(&h)));
            }
            Ok(render::history_table(&h, lang))
        }
        CaseCommand::Risk(a) => Ok(case_out(oversight_cmd::risk(&mut c, a).await?)),
        CaseCommand::Extend(a) => Ok(case_out(oversight_cmd::extend(&mut c, a).await?)),
        CaseCommand::Plan(a) => Ok(case_out(oversight_cmd::plan(&mut c, a).await?)),
        CaseCommand::Progress { case_id, text } => Ok(case_out(
            oversight_cmd::progress(&mut c, case_id, text).await?,
        )),
    }
}

fn opt_enum<E: render::ProtoEnum>(
    prefix: &str,
    v: &Option<String>,
    what: &str,
) -> Result<i32, Failure> {
    match v {
        None => Ok(0),
        Some(s) => Ok(parse_enum::<E>(prefix, s, what)?.into()),
    }
}

/// `fqctl case import --template FILE`: the template, written here (no node needed).
fn write_template(path: &std::path::Path, lang: crate::text::Lang) -> Result<String, Failure> {
    let bytes = crate::report::ledger::import_template().map_err(Failure::usage)?;
    std::fs::write(path, bytes)
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
    Ok(format!(
        "{}: {}\n",
        lang.t("已写出导入模板", "import template written"),
        path.display()
    ))
}

/// `fqctl case import`: sends the file, prints what was imported and every refused row.
async fn import(
    c: &mut CaseServiceClient<tonic::transport::Channel>,
    a: &ImportArgs,
    json: bool,
    lang: crate::text::Lang,
) -> Result<String, Failure> {
    let Some(file) = &a.file else {
        return Err(Failure::usage("a FILE or --template FILE"));
    };
    let content = std::fs::read(file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = c
        .import_cases(pb::ImportCasesRequest { file_name, content })
        .await?
        .into_inner();
    let text = if json {
        let v = serde_json::json!({
            "imported": out.imported,
            "repeated": out.repeated,
            "rejected": out.rejected,
        });
        format!("{v}\n")
    } else {
        let mut t = format!(
            "{} {}，{} {}，{} {}\n",
            lang.t("已导入", "imported"),
            out.imported,
            lang.t("此前已导入", "already imported"),
            out.repeated,
            lang.t("未导入", "refused"),
            out.rejected.len()
        );
        for line in &out.rejected {
            t.push_str(line);
            t.push('\n');
        }
        t
    };
    if out.rejected.is_empty() {
        Ok(text)
    } else {
        Err(Failure {
            code: super::EXIT_REFUSED,
            message: text.trim_end().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_parses_exactly_into_fen() {
        assert_eq!(yuan_to_fen("4400").unwrap(), 440_000);
        assert_eq!(yuan_to_fen("4400.5").unwrap(), 440_050);
        assert_eq!(yuan_to_fen("0.07").unwrap(), 7);
        assert_eq!(yuan_to_fen("150,000").unwrap(), 15_000_000);
        for bad in ["", "-1", "1.234", "abc", "1e3", ".5"] {
            assert!(yuan_to_fen(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parties_parse_from_comma_lists() {
        let p = parse_party("applicant,张三,13812345678,610102199001011234").unwrap();
        assert_eq!(p.role, pb::PartyRole::Applicant as i32);
        assert_eq!(p.name, "张三");
        assert_eq!(p.id_number, "610102199001011234");
        let p = parse_party("respondent,某公司").unwrap();
        assert_eq!(p.phone, "");
        assert!(parse_party("boss,x").is_err());
        assert!(parse_party("applicant").is_err());
    }

    #[test]
    fn due_dates_are_china_time() {
        let t = parse_due("2026-12-01 08:00", "--due").unwrap();
        assert_eq!(t.seconds, 1_796_083_200); // 2026-12-01T00:00:00Z
        let e = parse_due("someday", "--until").unwrap_err();
        assert!(e.message.contains("--until"), "{}", e.message);
        assert!(parse_due("7d", "--due").is_ok());
    }
}
