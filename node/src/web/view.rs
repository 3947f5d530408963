//! What the templates show: the page frame, and cases, events and figures as strings already
//! formatted (and masked) for one reader. The templates only place them.

use crate::app::Shown;
use crate::app::console::Caller;
use crate::domain::calendar::china_datetime;
use crate::domain::{Case, Event, Party, RiskLevel, Timestamp, mask};
use crate::text::{Lang, fmt_fen};

/// The frame of every page: who is signed in, where, the language, the active menu entry.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub en: bool,
    pub center: String,
    pub user: String,
    pub role: String,
    pub csrf: String,
    pub active: &'static str,
    pub signed_in: bool,
}

impl Chrome {
    pub fn new(lang: Lang, node: &str, name: &str, active: &'static str) -> Chrome {
        Chrome {
            en: lang == Lang::En,
            center: if name.is_empty() {
                format!("{node} {}", lang.t("综治中心", "center"))
            } else {
                name.to_owned()
            },
            user: String::new(),
            role: String::new(),
            csrf: String::new(),
            active,
            signed_in: false,
        }
    }

    pub fn signed(
        lang: Lang,
        node: &str,
        name: &str,
        caller: &Caller,
        active: &'static str,
    ) -> Chrome {
        let role = caller.session.role;
        Chrome {
            user: if caller.name.is_empty() {
                caller.session.username.clone()
            } else {
                caller.name.clone()
            },
            role: lang.t(role.label_zh(), role.as_str()).to_owned(),
            csrf: caller.session.csrf.clone(),
            signed_in: true,
            ..Chrome::new(lang, node, name, active)
        }
    }

    pub fn lang(&self) -> Lang {
        if self.en { Lang::En } else { Lang::Zh }
    }

    /// The label in the page's language.
    pub fn t<'a>(&self, zh: &'a str, en: &'a str) -> &'a str {
        self.lang().t(zh, en)
    }
}

/// "2026-12-05 14:30" (China time).
pub fn when(t: Timestamp) -> String {
    china_datetime(t)
}

pub fn when_opt(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".into(), when)
}

/// The CSS class of a risk colour.
pub fn risk_class(r: RiskLevel) -> &'static str {
    match r {
        RiskLevel::Blue => "blue",
        RiskLevel::Yellow => "yellow",
        RiskLevel::Orange => "orange",
        RiskLevel::Red => "red",
    }
}

/// "2 天 3 小时" until `due` (or "逾期 …" past it).
pub fn countdown(lang: Lang, now: Timestamp, due: Timestamp) -> String {
    let ms = due.0 - now.0;
    let mins = ms.unsigned_abs() / 60_000;
    let (d, h, m) = (mins / 1440, (mins % 1440) / 60, mins % 60);
    let span = match lang {
        Lang::Zh if d > 0 => format!("{d} 天 {h} 小时"),
        Lang::Zh if h > 0 => format!("{h} 小时 {m} 分"),
        Lang::Zh => format!("{m} 分"),
        Lang::En if d > 0 => format!("{d} d {h} h"),
        Lang::En if h > 0 => format!("{h} h {m} min"),
        Lang::En => format!("{m} min"),
    };
    if ms < 0 {
        format!("{}{span}", lang.t("逾期 ", "overdue by "))
    } else {
        format!("{}{span}", lang.t("剩余 ", "left: "))
    }
}

/// One line of a case listing.
#[derive(Debug, Clone)]
pub struct CaseRow {
    pub id: String,
    pub status: String,
    pub risk: String,
    pub risk_class: &'static str,
    pub category: String,
    pub summary: String,
    pub parties: String,
    pub created: String,
    pub due: String,
    pub overdue: bool,
    pub handler: String,
}

impl CaseRow {
    /// A row of a case already masked for the listing.
    pub fn of(c: &Case, lang: Lang, now: Timestamp) -> CaseRow {
        let due = c.open_deadline();
        CaseRow {
            id: c.id.clone(),
            status: lang.t(c.status.label_zh(), c.status.label_en()).into(),
            risk: lang.t(c.risk.label_zh(), c.risk.label_en()).into(),
            risk_class: risk_class(c.risk),
            category: lang.t(c.category.label_zh(), c.category.label_en()).into(),
            summary: c.summary.clone(),
            parties: c
                .parties
                .iter()
                .map(|p| p.name.clone())
                .collect::<Vec<_>>()
                .join("、"),
            created: when(c.created_at),
            due: due.map_or_else(|| "-".into(), |d| countdown(lang, now, d)),
            overdue: due.is_some_and(|d| d < now),
            handler: c.handler.clone().unwrap_or_default(),
        }
    }
}

/// A party as the reader may see it.
#[derive(Debug, Clone)]
pub struct PartyRow {
    pub role: String,
    pub name: String,
    pub phone: String,
    pub id_number: String,
}

impl PartyRow {
    fn of(p: &Party, lang: Lang) -> PartyRow {
        PartyRow {
            role: lang.t(p.role.label_zh(), p.role.label_en()).into(),
            name: p.name.clone(),
            phone: p.phone.clone(),
            id_number: p.id_number.clone(),
        }
    }
}

/// One event of a case's timeline.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub at: String,
    pub node: String,
    pub actor: String,
    pub kind: String,
    pub status: String,
    pub detail: String,
}

impl EventRow {
    pub fn of(e: &Event, lang: Lang, parties: &[Party], reveal: bool) -> EventRow {
        EventRow {
            at: when(e.at),
            node: e.node.clone(),
            actor: short_actor(&e.actor),
            kind: lang.t(e.kind.label_zh(), e.kind.label_en()).into(),
            status: lang
                .t(e.to_status.label_zh(), e.to_status.label_en())
                .into(),
            detail: if reveal {
                e.detail.clone()
            } else {
                mask::redact(&e.detail, parties)
            },
        }
    }
}

/// "director/boss" of `spiffe://fengqiao/op/CODE/director/boss`; a node's code for a node.
pub fn short_actor(uri: &str) -> String {
    if let Some(rest) = uri.strip_prefix("spiffe://fengqiao/op/") {
        let mut parts = rest.splitn(2, '/');
        let _code = parts.next();
        return parts.next().unwrap_or(rest).to_owned();
    }
    if let Some(code) = uri.strip_prefix("spiffe://fengqiao/node/") {
        return code.to_owned();
    }
    uri.to_owned()
}

/// A case as its page shows it.
#[derive(Debug, Clone)]
pub struct CaseView {
    pub id: String,
    pub lookup_code: String,
    pub status: String,
    pub risk: String,
    pub risk_class: &'static str,
    pub category: String,
    pub channel: String,
    pub summary: String,
    pub description: String,
    pub amount: String,
    pub settled: String,
    pub grid_id: String,
    pub handler: String,
    pub owner: String,
    pub origin: String,
    pub moved_to: String,
    pub created: String,
    pub updated: String,
    pub deadline: String,
    pub deadline_kind: String,
    pub overdue: bool,
    pub reason: String,
    pub guidance: String,
    pub agreement: String,
    pub satisfaction: String,
    pub supervising: String,
    pub parties: Vec<PartyRow>,
    pub revealed: bool,
    pub lead_leader: String,
    pub mediation_org: String,
    pub liaison_unit: String,
    pub plan: String,
    pub legal_briefing: String,
    pub progress: Vec<(String, String, String)>,
}

impl CaseView {
    pub fn of(shown: &Shown, lang: Lang, now: Timestamp) -> CaseView {
        let c = if shown.reveal {
            shown.case.clone()
        } else {
            mask::masked(&shown.case)
        };
        let deadline = c.deadline();
        let t = |zh: &'static str, en: &'static str| lang.t(zh, en).to_owned();
        CaseView {
            id: c.id.clone(),
            lookup_code: c.lookup_code.clone(),
            status: t(c.status.label_zh(), c.status.label_en()),
            risk: t(c.risk.label_zh(), c.risk.label_en()),
            risk_class: risk_class(c.risk),
            category: t(c.category.label_zh(), c.category.label_en()),
            channel: t(c.channel.label_zh(), c.channel.label_en()),
            summary: c.summary.clone(),
            description: c.description.clone(),
            amount: fmt_fen(c.amount_fen),
            settled: fmt_fen(c.settled_amount_fen),
            grid_id: c.grid_id.clone(),
            handler: c.handler.clone().unwrap_or_default(),
            owner: c.owner_node.clone(),
            origin: c.origin_node.clone(),
            moved_to: c.moved_to.clone().unwrap_or_default(),
            created: when(c.created_at),
            updated: when(c.updated_at),
            deadline: deadline.map_or_else(
                || "-".into(),
                |d| format!("{}（{}）", when(d.due_at), countdown(lang, now, d.due_at)),
            ),
            deadline_kind: deadline
                .map_or_else(String::new, |d| t(d.kind.label_zh(), d.kind.label_en())),
            overdue: c.is_overdue(now),
            reason: c.reason.clone(),
            guidance: c.guidance.clone(),
            agreement: c.agreement.clone(),
            satisfaction: c
                .satisfaction
                .map_or_else(String::new, |s| format!("{s}/5")),
            supervising: c.supervising_nodes.join("、"),
            parties: c.parties.iter().map(|p| PartyRow::of(p, lang)).collect(),
            revealed: shown.reveal,
            lead_leader: c.plan.lead_leader.clone(),
            mediation_org: c.plan.mediation_org.clone(),
            liaison_unit: c.plan.liaison_unit.clone(),
            plan: c.plan.plan.clone(),
            legal_briefing: c.plan.legal_briefing.clone(),
            progress: c
                .plan
                .progress
                .iter()
                .map(|p| (when(p.at), short_actor(&p.actor), p.text.clone()))
                .collect(),
        }
    }
}

/// A choice of a `<select>`: value, label, selected.
#[derive(Debug, Clone)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// The choices of a stable enum, with `selected` chosen (by code).
macro_rules! choices {
    ($t:ty, $lang:expr, $selected:expr) => {
        <$t>::ALL
            .iter()
            .map(|v| $crate::web::view::Choice {
                value: v.code().to_string(),
                label: $lang.t(v.label_zh(), v.label_en()).to_owned(),
                selected: $selected == Some(*v),
            })
            .collect::<Vec<_>>()
    };
}
pub(crate) use choices;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdowns_read_in_both_languages() {
        let now = Timestamp(0);
        assert_eq!(
            countdown(Lang::Zh, now, Timestamp(2 * 86_400_000 + 3_600_000)),
            "剩余 2 天 1 小时"
        );
        assert_eq!(
            countdown(Lang::Zh, now, Timestamp(-90 * 60_000)),
            "逾期 1 小时 30 分"
        );
        assert_eq!(
            countdown(Lang::En, now, Timestamp(5 * 60_000)),
            "left: 5 min"
        );
    }

    #[test]
    fn actors_are_shortened() {
        assert_eq!(
            short_actor("spiffe://fengqiao/op/610116/director/boss"),
            "director/boss"
        );
        assert_eq!(short_actor("spiffe://fengqiao/node/610116"), "610116");
        assert_eq!(short_actor("console:610116/li"), "console:610116/li");
    }
}
