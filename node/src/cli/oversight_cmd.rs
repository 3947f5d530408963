//! `fqctl case risk|extend|plan|progress`, `fqctl alerts` and `fqctl report`: risk, deadlines,
//! the "六个一" record, early-warning alerts and cadence reports.

use std::path::PathBuf;

use clap::Args;
use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use tonic::transport::Channel;

use super::render::{self, fmt_time, parse_enum, table};
use super::{Cli, Failure, Lang, connect};
use crate::report::render as report_render;

#[derive(Args)]
pub struct RiskArgs {
    pub case_id: String,
    /// blue | yellow | orange | red
    #[arg(long)]
    pub risk: String,
    /// Why the colour changes (recorded in the history).
    #[arg(long)]
    pub reason: String,
}

#[derive(Args)]
pub struct ExtendArgs {
    pub case_id: String,
    /// The new resolution deadline: a China date or date-time ("2026-12-31",
    /// "2026-12-31 17:00") or a duration from now ("10d").
    #[arg(long)]
    pub until: String,
    /// Why the deadline is extended (required; allowed once per case).
    #[arg(long)]
    pub reason: String,
}

#[derive(Args)]
pub struct PlanArgs {
    pub case_id: String,
    /// 包案领导 (lead leader); "" clears.
    #[arg(long)]
    pub leader: Option<String>,
    /// 调解组织 (mediation organisation).
    #[arg(long)]
    pub org: Option<String>,
    /// 联系单位 (liaison unit).
    #[arg(long)]
    pub liaison: Option<String>,
    /// 化解方案 (plan).
    #[arg(long)]
    pub plan: Option<String>,
    /// 法律政策宣讲 (legal-policy briefing).
    #[arg(long)]
    pub briefing: Option<String>,
}

#[derive(Args)]
pub struct ReportArgs {
    /// "day", "week", "month" ending now, a date "2026-11-01" or a range
    /// "2026-11-01..2026-11-30"; default: the node's cadence.
    #[arg(long, default_value = "")]
    pub period: String,
    /// Print the CSV instead of the text summary.
    #[arg(long)]
    pub csv: bool,
    /// Write to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub async fn risk(c: &mut CaseServiceClient<Channel>, a: &RiskArgs) -> Result<pb::Case, Failure> {
    let req = pb::ChangeRiskRequest {
        case_id: a.case_id.clone(),
        risk: parse_enum::<pb::RiskLevel>("RISK_LEVEL", &a.risk, "risk")? as i32,
        reason: a.reason.clone(),
    };
    Ok(c.change_risk(req).await?.into_inner())
}

pub async fn extend(
    c: &mut CaseServiceClient<Channel>,
    a: &ExtendArgs,
) -> Result<pb::Case, Failure> {
    let req = pb::ExtendDeadlineRequest {
        case_id: a.case_id.clone(),
        until: Some(super::case_cmd::parse_due(&a.until, "--until")?),
        reason: a.reason.clone(),
    };
    Ok(c.extend_deadline(req).await?.into_inner())
}

pub async fn plan(c: &mut CaseServiceClient<Channel>, a: &PlanArgs) -> Result<pb::Case, Failure> {
    let req = pb::UpdateCasePlanRequest {
        case_id: a.case_id.clone(),
        lead_leader: a.leader.clone(),
        mediation_org: a.org.clone(),
        liaison_unit: a.liaison.clone(),
        plan: a.plan.clone(),
        legal_briefing: a.briefing.clone(),
    };
    if req.lead_leader.is_none()
        && req.mediation_org.is_none()
        && req.liaison_unit.is_none()
        && req.plan.is_none()
        && req.legal_briefing.is_none()
    {
        return Err(Failure::usage(
            "give at least one of --leader, --org, --liaison, --plan, --briefing",
        ));
    }
    Ok(c.update_case_plan(req).await?.into_inner())
}

pub async fn progress(
    c: &mut CaseServiceClient<Channel>,
    case_id: &str,
    text: &str,
) -> Result<pb::Case, Failure> {
    let req = pb::AddCaseProgressRequest {
        case_id: case_id.to_owned(),
        text: text.to_owned(),
    };
    Ok(c.add_case_progress(req).await?.into_inner())
}

async fn client(cli: &Cli) -> Result<(CaseServiceClient<Channel>, Lang), Failure> {
    let target = connect::resolve(cli)?;
    let ch = connect::channel(&target).await?;
    Ok((CaseServiceClient::new(ch), target.lang))
}

/// `fqctl alerts`: the node's alerts, newest first.
pub async fn alerts(cli: &Cli) -> Result<String, Failure> {
    let (mut c, lang) = client(cli).await?;
    let list = c.list_alerts(pb::ListAlertsRequest {}).await?.into_inner();
    if cli.json {
        return Ok(format!("{}\n", alerts_json(&list)));
    }
    Ok(alert_table(&list, lang))
}

#[derive(Args)]
pub struct AuditArgs {
    /// Only since: a China date or date-time ("2026-12-01", "2026-12-01 08:00") or a
    /// duration back from now ("7d").
    #[arg(long)]
    pub since: Option<String>,
    /// Only this actor: an identity URI or its end ("director/boss", "boss").
    #[arg(long, default_value = "")]
    pub actor: String,
    /// Only this case.
    #[arg(long = "case", default_value = "")]
    pub case_id: String,
    /// Most entries (default 100, at most 1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

/// `fqctl audit`: who viewed personal data at this node, newest first (auditor certificate).
pub async fn audit(cli: &Cli, a: &AuditArgs) -> Result<String, Failure> {
    let since = a
        .since
        .as_deref()
        .map(|s| super::case_cmd::parse_time(s, "--since", super::case_cmd::Direction::Back))
        .transpose()?;
    let (mut c, lang) = client(cli).await?;
    let events = c
        .list_audit_events(pb::ListAuditEventsRequest {
            limit: a.limit,
            since,
            actor: a.actor.clone(),
            case_id: a.case_id.clone(),
        })
        .await?
        .into_inner()
        .events;
    if cli.json {
        let all: Vec<_> = events
            .iter()
            .map(|e| {
                serde_json::json!({
                    "at": render::rfc3339(&e.at),
                    "actor": e.actor,
                    "case_id": e.case_id,
                    "what": e.what,
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::Value::Array(all)));
    }
    let header = [
        lang.t("时间", "at"),
        lang.t("查阅人", "who"),
        lang.t("案件编号", "case"),
        lang.t("操作", "what"),
    ];
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                fmt_time(&e.at),
                e.actor.clone(),
                e.case_id.clone(),
                e.what.clone(),
            ]
        })
        .collect();
    Ok(table(&header, &rows))
}

/// `fqctl report`: the node's report for a period, as text (in the chosen language) or CSV.
pub async fn report(cli: &Cli, a: &ReportArgs) -> Result<String, Failure> {
    let (mut c, lang) = client(cli).await?;
    let r = c
        .export_report(pb::ExportReportRequest {
            period: a.period.clone(),
        })
        .await?
        .into_inner();
    let body = if cli.json {
        format!(
            "{}\n",
            serde_json::json!({
                "node": r.node,
                "period": r.period,
                "from": render::rfc3339(&r.from),
                "to": render::rfc3339(&r.to),
                "csv": r.csv,
                "text": r.text,
            })
        )
    } else if a.csv {
        r.csv
    } else if lang == Lang::En {
        // The node writes Chinese; the CSV holds the same report, rendered here in English.
        let data = report_render::from_csv(&r.csv)
            .map_err(|e| Failure::usage(format!("the node's report CSV is unreadable: {e}")))?;
        report_render::to_text(&data, Lang::En)
    } else {
        r.text
    };
    match &a.out {
        None => Ok(body),
        Some(path) => {
            std::fs::write(path, body)
                .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
            Ok(format!(
                "{} {}\n",
                lang.t("报告已写入", "report written to"),
                path.display()
            ))
        }
    }
}

/// The label of an alert kind (its machine name when unknown to this build).
fn kind_label(kind: &str, lang: Lang) -> String {
    use crate::domain::alert::AlertKind;
    AlertKind::ALL
        .iter()
        .find(|k| k.as_str() == kind)
        .map_or_else(
            || kind.to_owned(),
            |k| lang.t(k.label_zh(), k.label_en()).to_owned(),
        )
}

pub fn alert_table(list: &pb::Alerts, lang: Lang) -> String {
    let header = [
        lang.t("时间", "raised"),
        lang.t("类型", "kind"),
        lang.t("中心", "node"),
        lang.t("案件", "cases"),
        lang.t("内容", "message"),
    ];
    let rows: Vec<Vec<String>> = list
        .alerts
        .iter()
        .map(|a| {
            vec![
                fmt_time(&a.raised_at),
                kind_label(&a.kind, lang),
                a.node.clone(),
                a.case_ids.join(" "),
                a.message.clone(),
            ]
        })
        .collect();
    let mut out = table(&header, &rows);
    out.push_str(&match lang {
        Lang::Zh => format!("共 {} 条\n", list.alerts.len()),
        Lang::En => format!("{} alert(s)\n", list.alerts.len()),
    });
    out
}

pub fn alerts_json(list: &pb::Alerts) -> serde_json::Value {
    serde_json::json!({
        "alerts": list.alerts.iter().map(|a| serde_json::json!({
            "kind": a.kind,
            "case_ids": a.case_ids,
            "node": a.node,
            "raised_at": render::rfc3339(&a.raised_at),
            "message": a.message,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_render_in_both_languages() {
        let list = pb::Alerts {
            alerts: vec![pb::Alert {
                kind: "repeat_person".into(),
                case_ids: vec!["a".into(), "b".into()],
                node: "610116001001".into(),
                raised_at: Some(prost_types::Timestamp {
                    seconds: 1_796_083_200,
                    nanos: 0,
                }),
                message: "重复来访预警".into(),
            }],
        };
        let zh = alert_table(&list, Lang::Zh);
        assert!(
            zh.contains("重复来访") && zh.contains("a b") && zh.contains("共 1 条"),
            "{zh}"
        );
        let en = alert_table(&list, Lang::En);
        assert!(
            en.contains("repeat person") && en.contains("1 alert(s)"),
            "{en}"
        );
        assert_eq!(kind_label("link_silent", Lang::Zh), "link_silent");
        let json = alerts_json(&list);
        assert_eq!(json["alerts"][0]["raised_at"], "2026-12-01T00:00:00Z");
    }
}
