//! The citizens' channel (群众端): a citizen applies online without an account, follows the
//! case with the lookup code (查询码) handed out at registration, and rates the result — the
//! same operations for the node's mobile pages and for the systems that submit through the
//! Open311 API with a key (the 12348 hotline, a mini-program's backend, a court's referrals).
//!
//! What the citizen is shown is built here, from the case's fields and the kinds of its
//! events, never from the staff's own words: the timeline has the public events only
//! (received, accepted or rejected with the reason and guidance, dispatched to which unit,
//! mediation sessions held, resolved with the outcome, closed, moved), names and numbers are
//! masked, and staff notes, the plan and the progress table are not shown at all.
//!
//! A lookup names a case id and its lookup code; a wrong code is answered exactly as an
//! unknown case ([`Error::NotFound`] without the id). How often lookups and submissions may
//! be tried is the web adapter's (`crate::web::public`), per client address and per case.

use super::App;
use crate::domain::apikeys::ApiKey;
use crate::domain::calendar::china_datetime;
use crate::domain::machine::{CLOSE_SATISFACTION_MIN, yuan};
use crate::domain::validate::SATISFACTION_MAX;
use crate::domain::{
    Case, CaseStatus, Category, Channel, Command, Deadline, DeadlineKind, DomainError, Event,
    EventKind, NewCase, Party, PartyRole, RiskLevel, Timestamp, mask, validate,
};
use crate::error::Error;

/// Longest comment of a rating.
pub const COMMENT_MAX_CHARS: usize = 500;
/// Longest address (where the dispute is) given with an application.
pub const ADDRESS_MAX_CHARS: usize = 200;

/// Who submits an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitter {
    /// A citizen on the node's own pages (channel 网上申请).
    Online,
    /// A system with an API key (the key's channel).
    Key(ApiKey),
}

impl Submitter {
    pub fn channel(&self) -> Channel {
        match self {
            Submitter::Online => Channel::Online,
            Submitter::Key(k) => k.channel,
        }
    }

    /// The actor its events record.
    fn actor(&self, node: &str) -> String {
        match self {
            Submitter::Online => format!("public:{node}/online"),
            Submitter::Key(k) => format!("apikey:{node}/{}", k.name),
        }
    }
}

/// What a citizen fills in (申请调解).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Application {
    /// 姓名 of the applicant.
    pub name: String,
    /// 电话.
    pub phone: String,
    /// 身份证号 (may be empty).
    pub id_number: String,
    pub category: Option<Category>,
    /// 事项简述: one line.
    pub summary: String,
    /// 详细情况 (may be empty).
    pub description: String,
    /// Where the dispute is (may be empty); kept with the description.
    pub address: String,
    /// 被申请人 (may be empty), and their phone.
    pub respondent_name: String,
    pub respondent_phone: String,
    /// 涉及金额, fen.
    pub amount_fen: i64,
    /// The applicant agreed to the privacy notice (required on the node's pages; a system with
    /// a key collects the agreement itself).
    pub consent: bool,
}

/// What the applicant takes away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub case_id: String,
    pub lookup_code: String,
    pub created_at: Timestamp,
    /// Answer (accept or not) due by.
    pub review_due_at: Timestamp,
    /// The application had been received before (the same form sent again).
    pub repeated: bool,
}

/// One line of the public timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicEvent {
    pub at: Timestamp,
    /// The center where it happened (division code).
    pub node: String,
    pub title: &'static str,
    pub text: String,
}

/// A case as its applicant may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub case_id: String,
    pub status: CaseStatus,
    /// Plain words for the status.
    pub status_text: &'static str,
    /// Still being worked on somewhere (Open311 `open`); false once closed, rejected, or
    /// resolved and rated — and for a case moved on, whose progress is at its new center.
    pub open: bool,
    /// Why and where to go, when rejected or not resolved (the staff's guidance, masked).
    pub note: String,
    pub category: Category,
    pub channel: Channel,
    /// The summary with the parties' names and numbers masked.
    pub summary: String,
    /// The applicant's name, masked.
    pub applicant: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub timeline: Vec<PublicEvent>,
    /// The deadline running now.
    pub deadline: Option<Deadline>,
    /// May be rated now (resolved or not resolved, awaiting 回访).
    pub rateable: bool,
    /// The center the case moved to (its progress continues there, with the same code).
    pub moved_to: Option<String>,
    /// The center's name (its code when unnamed).
    pub agency: String,
}

/// A citizen's rating (评价) of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rating {
    /// 1–5.
    pub stars: u8,
    pub comment: String,
}

/// Plain words for a status, as a citizen reads them.
pub fn status_text(status: CaseStatus) -> &'static str {
    match status {
        CaseStatus::Registered => "已收到申请，正在审核是否受理",
        CaseStatus::Accepted => "已受理，等待办理",
        CaseStatus::InMediation => "正在调解",
        CaseStatus::Resolved => "已化解，欢迎评价",
        CaseStatus::Unresolved => "调解未成，请按建议办理，欢迎评价",
        CaseStatus::Rejected => "不予受理",
        CaseStatus::Closed => "已办结",
        CaseStatus::Transferred => "已移交其他综治中心办理",
    }
}

/// A lookup code as typed (any case, spaces, with or without dashes) in its canonical form,
/// or `None` when it cannot be one.
pub fn normalize_code(code: &str) -> Option<String> {
    let raw: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if raw.len() != super::cases::LOOKUP_LEN
        || !raw
            .bytes()
            .all(|b| super::cases::LOOKUP_ALPHABET.contains(&b))
    {
        return None;
    }
    let mut out = String::with_capacity(raw.len() + 2);
    for (i, c) in raw.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(c);
    }
    Some(out)
}

/// The answer to every lookup that does not name a case and its code.
fn not_found() -> Error {
    Error::NotFound(String::new())
}

fn check_line(field: &'static str, s: &str, max: usize) -> Result<(), DomainError> {
    if s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            format!("one line of at most {max} characters"),
        ));
    }
    Ok(())
}

impl Application {
    /// The registration it asks for, checked as a form is (`validate::validate_intake`).
    fn new_case(&self, channel: Channel, idempotency_key: String) -> Result<NewCase, Error> {
        let category = self
            .category
            .ok_or_else(|| DomainError::invalid("category", "is required"))?;
        if self.phone.trim().is_empty() {
            return Err(DomainError::invalid("parties[0].phone", "is required").into());
        }
        check_line("address", self.address.trim(), ADDRESS_MAX_CHARS)?;
        let mut parties = vec![Party {
            role: PartyRole::Applicant,
            name: self.name.trim().to_owned(),
            phone: self.phone.trim().to_owned(),
            id_number: self.id_number.trim().to_ascii_uppercase(),
        }];
        if !self.respondent_name.trim().is_empty() || !self.respondent_phone.trim().is_empty() {
            parties.push(Party {
                role: PartyRole::Respondent,
                name: self.respondent_name.trim().to_owned(),
                phone: self.respondent_phone.trim().to_owned(),
                id_number: String::new(),
            });
        }
        let address = self.address.trim();
        let description = match (address.is_empty(), self.description.trim()) {
            (true, d) => d.to_owned(),
            (false, "") => format!("纠纷地点：{address}"),
            (false, d) => format!("纠纷地点：{address}\n{d}"),
        };
        let new = NewCase {
            idempotency_key,
            category,
            channel,
            summary: self.summary.trim().to_owned(),
            description,
            parties,
            amount_fen: self.amount_fen,
            risk: RiskLevel::Blue,
            grid_id: String::new(),
        };
        validate::validate_intake(&new)?;
        Ok(new)
    }
}

impl App {
    /// Registers an application from the citizens' channel: channel ONLINE (or the key's),
    /// status 未审核 with the review deadline running. `idempotency` names the submission
    /// (the form's one-time id, or a hash of an API request): sent again, it answers with the
    /// same case and changes nothing. No repeat-visit check here: a citizen is never shown
    /// another case.
    pub async fn submit_application(
        &self,
        by: &Submitter,
        form: &Application,
        idempotency: &str,
    ) -> Result<Receipt, Error> {
        if matches!(by, Submitter::Online) && !form.consent {
            return Err(
                DomainError::invalid("consent", "the privacy notice must be agreed to").into(),
            );
        }
        let new = form.new_case(by.channel(), format!("public:{idempotency}"))?;
        let (case, created) = self
            .register_by(by.actor(self.state.code.as_str()), new)
            .await?;
        Ok(Receipt {
            case_id: case.id,
            lookup_code: case.lookup_code,
            created_at: case.created_at,
            review_due_at: case.review_due_at,
            repeated: !created,
        })
    }

    /// The case `case_id` whose lookup code is `code`, owned here or moved on from here.
    fn case_for_citizen(&self, case_id: &str, code: &str) -> Result<Case, Error> {
        let code = normalize_code(code).ok_or_else(not_found)?;
        let case_id = case_id.trim();
        match self.state.store.case_by_lookup_code(&code)? {
            Some(case) if case.id == case_id => Ok(case),
            _ => Err(not_found()),
        }
    }

    /// The progress of case `case_id` for whoever holds its lookup code.
    pub fn track(&self, case_id: &str, code: &str) -> Result<Progress, Error> {
        let case = self.case_for_citizen(case_id, code)?;
        let history = self.state.store.history(&case.id)?;
        Ok(self.progress(&case, &history))
    }

    /// The applicant's rating after resolution: the follow-up (回访) through the citizens'
    /// channel. A rating below [`CLOSE_SATISFACTION_MIN`] reopens the case as a dissatisfied
    /// 回访 does (the same command); a case not awaiting its follow-up refuses it, so one
    /// rating acts once.
    pub async fn rate(
        &self,
        case_id: &str,
        code: &str,
        rating: &Rating,
    ) -> Result<Progress, Error> {
        let case = self.case_for_citizen(case_id, code)?;
        if !(1..=SATISFACTION_MAX).contains(&rating.stars) {
            return Err(DomainError::invalid("satisfaction", "1 to 5 stars").into());
        }
        let comment = rating.comment.trim();
        if comment.chars().count() > COMMENT_MAX_CHARS || comment.contains('\0') {
            return Err(DomainError::invalid(
                "notes",
                format!("at most {COMMENT_MAX_CHARS} characters"),
            )
            .into());
        }
        let notes = if comment.is_empty() {
            "群众网上评价".to_owned()
        } else {
            format!("群众网上评价：{comment}")
        };
        let actor = format!("public:{}/applicant", self.state.code);
        let cmd = Command::FollowUp {
            satisfaction: rating.stars,
            notes,
        };
        let case = self.command_by(actor, &case.id, cmd).await?;
        tracing::info!(case_id = %case.id, stars = rating.stars, "rated by the applicant");
        let history = self.state.store.history(&case.id)?;
        Ok(self.progress(&case, &history))
    }

    /// The center's name as citizens read it ("CODE综治中心" when the node has none).
    pub fn center_name(&self) -> String {
        if self.state.name.is_empty() {
            format!("{}综治中心", self.state.code)
        } else {
            self.state.name.clone()
        }
    }

    fn progress(&self, case: &Case, history: &[Event]) -> Progress {
        let applicant = case
            .parties
            .iter()
            .find(|p| p.role == PartyRole::Applicant)
            .map(|p| mask::mask_name(&p.name))
            .unwrap_or_default();
        let note = match case.status {
            CaseStatus::Rejected => format!(
                "不予受理的理由：{}。建议：{}",
                mask::redact(&case.reason, &case.parties),
                mask::redact(&case.guidance, &case.parties)
            ),
            CaseStatus::Unresolved => {
                format!("建议：{}", mask::redact(&case.guidance, &case.parties))
            }
            CaseStatus::Transferred => {
                "本案已移交其他综治中心办理，请凭同一受理编号和查询码到该中心查询进度。".to_owned()
            }
            _ => String::new(),
        };
        let rateable = matches!(case.status, CaseStatus::Resolved | CaseStatus::Unresolved);
        Progress {
            case_id: case.id.clone(),
            status: case.status,
            status_text: status_text(case.status),
            open: !case.status.is_final(),
            note,
            category: case.category,
            channel: case.channel,
            summary: mask::redact(&case.summary, &case.parties),
            applicant,
            created_at: case.created_at,
            updated_at: case.updated_at,
            timeline: public_timeline(case, history),
            deadline: case.deadline(),
            rateable,
            moved_to: case.moved_to.clone(),
            agency: self.center_name(),
        }
    }
}

/// What a deadline means to the applicant.
pub fn deadline_text(d: &Deadline) -> String {
    let when = china_datetime(d.due_at);
    match d.kind {
        DeadlineKind::Review => format!("{when}前答复是否受理"),
        DeadlineKind::Resolve => format!("办理期限：{when}"),
        DeadlineKind::FollowUp => format!("回访评价期限：{when}"),
    }
}

/// The public events of a history: what happened, in words for the applicant, built from
/// the event kinds and the case's fields (never the staff's notes).
pub fn public_timeline(case: &Case, history: &[Event]) -> Vec<PublicEvent> {
    let mut out = Vec::new();
    let mut sessions = 0;
    let redact = |s: &str| mask::redact(s, &case.parties);
    for e in history {
        let (title, text) = match e.kind {
            EventKind::Registered => (
                "收到申请",
                format!(
                    "已登记（{}，{}）",
                    case.category.label_zh(),
                    case.channel.label_zh()
                ),
            ),
            EventKind::Accepted => ("予以受理", "审核通过，予以受理，正在安排办理".to_owned()),
            EventKind::Rejected => (
                "不予受理",
                format!(
                    "理由：{}；建议：{}",
                    redact(&case.reason),
                    redact(&case.guidance)
                ),
            ),
            EventKind::Assigned => match crate::domain::machine::assigned_handler(&e.detail) {
                Some(h) => ("派单办理", format!("已交由{h}办理")),
                None => ("派单办理", "已派单办理".to_owned()),
            },
            EventKind::Mediation => {
                sessions += 1;
                ("组织调解", format!("第{sessions}次调解"))
            }
            EventKind::Resolved => {
                let mut t = "达成调解协议".to_owned();
                if case.settled_amount_fen > 0 {
                    t.push_str(&format!("，履行金额{}元", yuan(case.settled_amount_fen)));
                }
                if !case.agreement.trim().is_empty() {
                    t.push_str(&format!("。协议：{}", redact(&case.agreement)));
                }
                ("化解成功", t)
            }
            EventKind::Unresolved => ("调解未成", format!("建议：{}", redact(&case.guidance))),
            EventKind::FollowUpClosed => ("办结", "回访满意，案件办结".to_owned()),
            EventKind::Reopened => ("重新办理", "回访不满意，重新办理".to_owned()),
            EventKind::DeadlineExtended => ("延长期限", "办理期限已延长".to_owned()),
            EventKind::Escalated => ("提级办理", "提交上级综治中心办理".to_owned()),
            EventKind::TransferredOut => (
                "移交办理",
                match &case.moved_to {
                    Some(to) if case.status == CaseStatus::Transferred => {
                        format!("移交{to}办理")
                    }
                    _ => "移交其他中心办理".to_owned(),
                },
            ),
            EventKind::Received => ("接收办理", format!("{}接收本案", e.node)),
            EventKind::Returned => ("移交退回", "移交未成，继续由原中心办理".to_owned()),
            EventKind::RiskChanged
            | EventKind::SupervisionOpened
            | EventKind::SupervisionClosed
            | EventKind::PlanUpdated
            | EventKind::Progress
            | EventKind::Relayed
            | EventKind::SupervisionRequested
            | EventKind::SupervisionOrdered
            | EventKind::OrderNotExecuted => continue,
        };
        out.push(PublicEvent {
            at: e.at,
            node: e.node.clone(),
            title,
            text,
        });
    }
    out
}

/// Whether a rating closes the case (satisfied) or reopens it.
pub fn rating_closes(stars: u8) -> bool {
    stars >= CLOSE_SATISFACTION_MIN
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::code::NodeCode;
    use crate::domain::{Confirmation, MediationMethod, MediationResult, MediationType, Policy};
    use crate::service::NodeState;

    /// 2024-05-01 08:00 in China.
    const T0: Timestamp = Timestamp(1_714_521_600_000);
    const VILLAGE: &str = "610116001001";
    const STAFF: &str = "spiffe://fengqiao/op/610116001001/director/wang";

    fn app(dir: &std::path::Path) -> App {
        let clock = Arc::new(ManualClock::new(T0));
        let state = NodeState::for_tests(dir, VILLAGE, clock, Policy::default(), None);
        App::new(Arc::new(NodeState {
            name: "东街村综治中心".into(),
            ..state
        }))
    }

    fn form() -> Application {
        Application {
            name: "张三".into(),
            phone: "13812345678".into(),
            id_number: "610102199001011231".into(),
            category: Some(Category::Labor),
            summary: "张三被拖欠工资".into(),
            respondent_name: "某建筑公司".into(),
            consent: true,
            ..Application::default()
        }
    }

    async fn staff(app: &App, id: &str, cmd: Command) {
        app.command_by(STAFF.into(), id, cmd).await.unwrap();
    }

    /// Accepted, mediated (with a staff note) and resolved.
    async fn resolved(app: &App, id: &str) {
        let review = Command::Review {
            accept: true,
            reason: String::new(),
            guidance: String::new(),
        };
        staff(app, id, review).await;
        let mediation = Command::RecordMediation {
            method: MediationMethod::Phone,
            mediation_type: MediationType::Peoples,
            mediator: "李调解".into(),
            notes: "内部：申请人情绪激动".into(),
            result: MediationResult::Agreed,
        };
        staff(app, id, mediation).await;
        let resolve = Command::Resolve {
            resolved: true,
            agreement: "十日内付清".into(),
            settled_amount_fen: 800_000,
            confirmation: Confirmation::None,
        };
        staff(app, id, resolve).await;
    }

    #[tokio::test]
    async fn an_application_is_registered_once_and_followed_with_its_code_only() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let no_consent = Application {
            consent: false,
            ..form()
        };
        let e = app
            .submit_application(&Submitter::Online, &no_consent, "f1")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("consent"), "{e}");
        let bad_id = Application {
            id_number: "610102199001011234".into(),
            ..form()
        };
        assert!(
            app.submit_application(&Submitter::Online, &bad_id, "f1")
                .await
                .is_err()
        );
        assert_eq!(
            app.state
                .store
                .case_id_by_idempotency_key("public:f1")
                .unwrap(),
            None,
            "nothing written"
        );

        let r = app
            .submit_application(&Submitter::Online, &form(), "f1")
            .await
            .unwrap();
        assert!(!r.repeated);
        let again = app
            .submit_application(&Submitter::Online, &form(), "f1")
            .await
            .unwrap();
        assert_eq!(
            (again.case_id.as_str(), again.repeated),
            (r.case_id.as_str(), true)
        );
        let case = app.state.store.get_case(&r.case_id).unwrap().unwrap();
        assert_eq!(case.channel, Channel::Online);
        assert_eq!(case.status, CaseStatus::Registered);
        assert_eq!(case.parties.len(), 2, "the respondent is a party");

        // The code as typed on a phone: lower case, no dashes.
        let typed = r.lookup_code.replace('-', "").to_lowercase();
        let p = app.track(&r.case_id, &typed).unwrap();
        assert_eq!(p.status, CaseStatus::Registered);
        assert_eq!(p.applicant, mask::mask_name("张三"));
        assert!(!p.summary.contains("张三"), "{}", p.summary);
        assert_eq!(p.timeline.len(), 1);
        assert_eq!(p.agency, "东街村综治中心");
        // A wrong code and an unknown case: the same answer.
        let wrong = app.track(&r.case_id, "ABCD-EFGH-JKMN").unwrap_err();
        let unknown = app
            .track("610116001001-20240501-000099", "ABCD-EFGH-JKMN")
            .unwrap_err();
        assert_eq!(wrong.to_string(), unknown.to_string());
        assert!(app.track(&r.case_id, "not a code").is_err());
    }

    #[tokio::test]
    async fn a_poor_rating_reopens_once_and_staff_notes_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let r = app
            .submit_application(&Submitter::Online, &form(), "f2")
            .await
            .unwrap();
        resolved(&app, &r.case_id).await;
        let p = app.track(&r.case_id, &r.lookup_code).unwrap();
        assert!(p.rateable);
        let words: String = p.timeline.iter().map(|e| e.text.clone()).collect();
        assert!(
            words.contains("第1次调解") && words.contains("8000.00"),
            "{words}"
        );
        assert!(!words.contains("情绪激动"), "a staff note shown: {words}");

        let poor = Rating {
            stars: 2,
            comment: "只付了一半".into(),
        };
        let p = app.rate(&r.case_id, &r.lookup_code, &poor).await.unwrap();
        assert_eq!(p.status, CaseStatus::InMediation);
        assert!(!p.rateable);
        let case = app.state.store.get_case(&r.case_id).unwrap().unwrap();
        assert_eq!(case.reopen_count, 1);
        // Sent again: refused, nothing changes.
        let e = app
            .rate(&r.case_id, &r.lookup_code, &poor)
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::Domain(DomainError::IllegalTransition { .. })),
            "{e}"
        );
        assert_eq!(
            app.state
                .store
                .get_case(&r.case_id)
                .unwrap()
                .unwrap()
                .reopen_count,
            1
        );
        // A wrong code rates nothing.
        assert!(matches!(
            app.rate(&r.case_id, "ABCD-EFGH-JKMN", &poor).await,
            Err(Error::NotFound(_))
        ));

        // Resolved again and rated well: closed.
        let resolve = Command::Resolve {
            resolved: true,
            agreement: "余款付清".into(),
            settled_amount_fen: 800_000,
            confirmation: Confirmation::None,
        };
        staff(&app, &r.case_id, resolve).await;
        let good = Rating {
            stars: 5,
            comment: String::new(),
        };
        let p = app.rate(&r.case_id, &r.lookup_code, &good).await.unwrap();
        assert_eq!(p.status, CaseStatus::Closed);
        assert!(!p.open);
        let last = app.state.store.history(&r.case_id).unwrap();
        assert!(last.last().unwrap().actor.starts_with("public:"));
    }

    #[tokio::test]
    async fn a_key_submits_by_its_channel_in_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let admin = crate::identity::Identity::operator(
            NodeCode::parse(VILLAGE).unwrap(),
            crate::identity::Role::Admin,
            "it",
        )
        .unwrap();
        let made = app
            .add_api_key(&admin, "court-ref", Channel::CourtReferral)
            .await
            .unwrap();
        let key = app.check_api_key(&made.secret).unwrap().unwrap();
        let r = app
            .submit_application(
                &Submitter::Key(key),
                &Application {
                    consent: false,
                    ..form()
                },
                "k1",
            )
            .await
            .unwrap();
        let case = app.state.store.get_case(&r.case_id).unwrap().unwrap();
        assert_eq!(case.channel, Channel::CourtReferral);
        let first = &app.state.store.history(&r.case_id).unwrap()[0];
        assert_eq!(first.actor, format!("apikey:{VILLAGE}/court-ref"));

        // The last hex digit changed (to another one, whatever it was).
        let (head, last) = made.secret.split_at(made.secret.len() - 1);
        let tampered = format!("{head}{}", if last == "0" { "1" } else { "0" });
        assert_eq!(
            app.check_api_key(&tampered).unwrap().map(|_| ()),
            Err(crate::app::apikeys::KeyRefused::Unknown)
        );
        app.revoke_api_key(&admin, "court-ref").await.unwrap();
        assert_eq!(
            app.check_api_key(&made.secret).unwrap().map(|_| ()),
            Err(crate::app::apikeys::KeyRefused::Revoked)
        );
        let director = crate::identity::Identity::operator(
            NodeCode::parse(VILLAGE).unwrap(),
            crate::identity::Role::Director,
            "wang",
        )
        .unwrap();
        assert!(
            app.list_api_keys(&director).is_err(),
            "keys are the admin's"
        );
    }

    #[test]
    fn codes_normalize_and_statuses_read_plainly() {
        assert_eq!(
            normalize_code(" abcd efgh jkmn ").as_deref(),
            Some("ABCD-EFGH-JKMN")
        );
        assert_eq!(
            normalize_code("ABCD-EFGH-JKM0"),
            None,
            "0 is not in the alphabet"
        );
        assert_eq!(normalize_code("ABCD"), None);
        for s in CaseStatus::ALL.iter() {
            assert!(!status_text(*s).is_empty());
        }
    }
}
