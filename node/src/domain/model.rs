//! The case record and its vocabulary, independent of protobuf and of storage.
//!
//! Everything here is plain data with serde derives so the storage layer can persist it; the
//! rules that change it live in [`super::machine`]. Enum discriminants are stable and are used
//! as index keys by storage: never renumber them, only append.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn millis(self) -> i64 {
        self.0
    }
    /// `self + d`, saturating.
    pub fn plus(self, d: std::time::Duration) -> Timestamp {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }
}

macro_rules! stable_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $n:literal => $zh:literal, $en:literal;)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $v = $n,)+ }

        impl $name {
            /// Every value, in discriminant order.
            pub const ALL: &'static [$name] = &[$($name::$v,)+];
            /// Stable one-byte code (used in index keys).
            pub const fn code(self) -> u8 { self as u8 }
            pub fn from_code(c: u8) -> Option<Self> {
                match c { $($n => Some($name::$v),)+ _ => None }
            }
            /// Label shown to staff at a center.
            pub const fn label_zh(self) -> &'static str { match self { $($name::$v => $zh,)+ } }
            /// English label (`--lang en`).
            pub const fn label_en(self) -> &'static str { match self { $($name::$v => $en,)+ } }
        }
    };
}
pub(crate) use stable_enum;

stable_enum!(
    /// 案件状态.
    CaseStatus {
        Registered = 1 => "未审核", "registered";
        Accepted = 2 => "待办理", "accepted";
        InMediation = 3 => "调解中", "in mediation";
        Resolved = 4 => "已化解", "resolved";
        Unresolved = 5 => "调解不成", "unresolved";
        Rejected = 6 => "已拒绝", "rejected";
        Closed = 7 => "已办结", "closed";
        Transferred = 8 => "已移交", "transferred";
    }
);

impl CaseStatus {
    /// Still needs work at this node (counts as "open").
    pub const fn is_open(self) -> bool {
        matches!(
            self,
            CaseStatus::Registered | CaseStatus::Accepted | CaseStatus::InMediation
        )
    }

    /// Takes no more commands at this node: rejected, closed, or moved away.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            CaseStatus::Rejected | CaseStatus::Closed | CaseStatus::Transferred
        )
    }
}

stable_enum!(
    /// 纠纷类别.
    Category {
        Labor = 1 => "劳动争议", "labor";
        PropertyManagement = 2 => "物业纠纷", "property management";
        LandContract = 3 => "土地承包", "land contract";
        MarriageFamily = 4 => "婚姻家庭", "marriage & family";
        Neighbor = 5 => "邻里纠纷", "neighbor";
        Medical = 6 => "医疗纠纷", "medical";
        Traffic = 7 => "交通事故", "traffic";
        Finance = 8 => "金融借贷", "finance";
        ConstructionDemolition = 9 => "征地拆迁", "construction & demolition";
        Lease = 10 => "租赁纠纷", "lease";
        Consumer = 11 => "消费纠纷", "consumer";
        Other = 12 => "其他", "other";
    }
);

stable_enum!(
    /// 受理渠道.
    Channel {
        WalkIn = 1 => "窗口来访", "walk-in";
        Hotline12348 = 2 => "12348热线", "12348 hotline";
        Online = 3 => "网上申请", "online";
        GridReport = 4 => "网格上报", "grid report";
        CourtReferral = 5 => "法院委派", "court referral";
        Petition = 6 => "信访转办", "petition";
        DepartmentTransfer = 7 => "部门移交", "department transfer";
    }
);

stable_enum!(
    /// 四色风险: red is followed by the county, orange by the township, yellow by the center
    /// director, blue by the mediator.
    RiskLevel {
        Blue = 1 => "蓝", "blue";
        Yellow = 2 => "黄", "yellow";
        Orange = 3 => "橙", "orange";
        Red = 4 => "红", "red";
    }
);

impl RiskLevel {
    /// One colour up (blue → yellow → orange → red); red stays red.
    pub fn raised(self) -> RiskLevel {
        match self {
            RiskLevel::Blue => RiskLevel::Yellow,
            RiskLevel::Yellow => RiskLevel::Orange,
            RiskLevel::Orange | RiskLevel::Red => RiskLevel::Red,
        }
    }
}

stable_enum!(
    PartyRole {
        Applicant = 1 => "申请人", "applicant";
        Respondent = 2 => "被申请人", "respondent";
        Other = 3 => "其他", "other";
    }
);

stable_enum!(
    MediationMethod {
        Phone = 1 => "电话", "phone";
        FaceToFace = 2 => "面对面", "face to face";
        Video = 3 => "远程视频", "video";
    }
);

stable_enum!(
    MediationType {
        Peoples = 1 => "人民调解", "people's";
        Administrative = 2 => "行政调解", "administrative";
        Judicial = 3 => "司法调解", "judicial";
        Industry = 4 => "行业性专业性调解", "industry";
    }
);

stable_enum!(
    MediationResult {
        Agreed = 1 => "达成协议", "agreed";
        NotAgreed = 2 => "未达成", "not agreed";
        Continuing = 3 => "继续调解", "continuing";
    }
);

stable_enum!(
    Confirmation {
        None = 1 => "无", "none";
        Judicial = 2 => "司法确认", "judicial confirmation";
        Notarized = 3 => "赋强公证", "notarized";
    }
);

/// A party to the dispute. Holds personal data: never log it unmasked (see [`super::mask`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub role: PartyRole,
    pub name: String,
    pub phone: String,
    pub id_number: String,
}

/// A dispute case as owned (or, when `status == Transferred`, remembered) by one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// `CODE-YYYYMMDD-NNNNNN`.
    pub id: String,
    pub lookup_code: String,
    pub status: CaseStatus,
    pub owner_node: String,
    pub origin_node: String,
    /// Ownership epoch (fencing token); starts at 1 and increases on every move.
    pub epoch: u64,
    pub moved_to: Option<String>,
    pub category: Category,
    pub channel: Channel,
    pub risk: RiskLevel,
    pub summary: String,
    pub description: String,
    pub parties: Vec<Party>,
    pub amount_fen: i64,
    pub grid_id: String,
    pub handler: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub review_due_at: Timestamp,
    pub resolve_due_at: Option<Timestamp>,
    pub settled_amount_fen: i64,
    pub reopen_count: u32,
    pub reason: String,
    pub guidance: String,
    pub agreement: String,
    pub confirmation: Option<Confirmation>,
    pub satisfaction: Option<u8>,
    pub mediation_type: Option<MediationType>,
    pub mediation_sessions: u32,
    pub resolved_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    /// Number of events in the history; the next event gets `history_len + 1`.
    pub history_len: u64,
    /// Ancestor nodes following this case (提级督办), nearest first. The owner keeps each of
    /// them in sync with a read-only copy; it is changed only through the state machine
    /// (escalation with mode SUPERVISE, a supervision order, a risk/deadline rule) and by
    /// the node that installs a moved case, which re-applies the colour rule and keeps only
    /// its own ancestors (`rules::reconcile_owner`).
    pub supervising_nodes: Vec<String>,
    /// When the running resolution deadline started: acceptance, or the latest reopen. The
    /// share of time used ([`Case::deadline`]) is measured from here.
    pub resolve_started_at: Option<Timestamp>,
    /// 回访 due: set when mediation ends (resolved or unresolved), cleared by a reopen.
    pub follow_up_due_at: Option<Timestamp>,
    /// The resolution deadline has been extended; it may be extended once per case.
    pub deadline_extended: bool,
    /// The entries of `supervising_nodes` that the rules opened, and why (see
    /// [`super::rules`]). An entry naming a node that is no longer supervising is stale and
    /// ignored; supervision opened by other means (escalation) is not listed here and the
    /// rules never close it (only a move out of its node's subtree ends it).
    pub rule_supervision: Vec<RuleSupervision>,
    /// "六个一" (Zizhou): lead leader, mediation organisation, liaison unit, plan, progress
    /// table and legal briefing.
    pub plan: CasePlan,
}

stable_enum!(
    /// Which deadline is running.
    DeadlineKind {
        Review = 1 => "审核期限", "review deadline";
        Resolve = 2 => "办理期限", "resolution deadline";
        FollowUp = 3 => "回访期限", "follow-up deadline";
    }
);

/// The deadline currently running on a case: what it is, when it started and when it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub kind: DeadlineKind,
    pub started_at: Timestamp,
    pub due_at: Timestamp,
}

impl Case {
    /// The deadline currently running, if any: review while unreviewed (from registration),
    /// resolution while accepted or in mediation (from acceptance or the latest reopen), and
    /// follow-up (回访) while resolved or unresolved (from the end of mediation).
    pub fn deadline(&self) -> Option<Deadline> {
        let (kind, started_at, due_at) = match self.status {
            CaseStatus::Registered => (DeadlineKind::Review, self.created_at, self.review_due_at),
            CaseStatus::Accepted | CaseStatus::InMediation => (
                DeadlineKind::Resolve,
                self.resolve_started_at.unwrap_or(self.created_at),
                self.resolve_due_at?,
            ),
            CaseStatus::Resolved | CaseStatus::Unresolved => (
                DeadlineKind::FollowUp,
                self.resolved_at.unwrap_or(self.updated_at),
                self.follow_up_due_at?,
            ),
            _ => return None,
        };
        Some(Deadline {
            kind,
            started_at,
            due_at,
        })
    }

    /// The due time of the running deadline. Storage indexes cases by it for overdue listings
    /// and the deadline rules.
    pub fn open_deadline(&self) -> Option<Timestamp> {
        self.deadline().map(|d| d.due_at)
    }

    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.open_deadline().is_some_and(|d| d < now)
    }
}

stable_enum!(
    /// Why a rule opened supervision by an ancestor.
    SupervisionCause {
        Risk = 1 => "风险等级", "risk level";
        Overdue = 2 => "逾期", "overdue";
        Reopened = 3 => "回访不满意", "reopened";
    }
);

/// One supervision opened by a rule: `node` follows the case because of `cause`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSupervision {
    pub node: String,
    pub cause: SupervisionCause,
}

/// "六个一": one lead leader, one mediation organisation, one liaison unit, one plan, one
/// progress table and one legal-policy briefing per dispute. Empty strings are "not yet set".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CasePlan {
    /// 包案领导: the leader who owns the case.
    pub lead_leader: String,
    /// 调解组织.
    pub mediation_org: String,
    /// 联系单位: the liaison unit.
    pub liaison_unit: String,
    /// 化解方案: the plan.
    pub plan: String,
    /// 法律政策宣讲: the legal-policy briefing given to the parties.
    pub legal_briefing: String,
    /// 进展表: entries in the order they were added.
    pub progress: Vec<ProgressEntry>,
}

/// One line of the progress table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressEntry {
    pub at: Timestamp,
    /// Caller identity URI.
    pub actor: String,
    pub text: String,
}

stable_enum!(
    /// What an event in a case's history records.
    EventKind {
        Registered = 1 => "登记受理", "registered";
        Accepted = 2 => "审核通过", "accepted";
        Rejected = 3 => "不予受理", "rejected";
        Assigned = 4 => "派单", "assigned";
        Mediation = 5 => "调解记录", "mediation";
        Resolved = 6 => "化解成功", "resolved";
        Unresolved = 7 => "调解不成", "unresolved";
        FollowUpClosed = 8 => "回访办结", "follow-up closed";
        Reopened = 9 => "回访不满意重新办理", "reopened";
        RiskChanged = 10 => "风险等级调整", "risk changed";
        SupervisionOpened = 11 => "开启督办", "supervision opened";
        SupervisionClosed = 12 => "解除督办", "supervision closed";
        DeadlineExtended = 13 => "延长办理期限", "deadline extended";
        PlanUpdated = 14 => "六个一更新", "plan updated";
        Progress = 15 => "办理进展", "progress";
        // Federation events are numbered from 20.
        /// 提级办理: handed to the parent, which takes the case over.
        Escalated = 20 => "提级办理", "escalated";
        /// 移交/交办/流转: ownership handed to another node.
        TransferredOut = 21 => "移交", "transferred out";
        /// A node between the old and the new owner passed the case on.
        Relayed = 22 => "转送", "relayed";
        /// The new owner received the case.
        Received = 23 => "接收", "received";
        /// A transfer was refused and ownership came back.
        Returned = 24 => "移交退回", "returned";
        /// 提级督办: the parent was asked to supervise.
        SupervisionRequested = 25 => "提级督办", "supervision requested";
        /// 督办: an ancestor's supervision order.
        SupervisionOrdered = 26 => "督办", "supervision order";
        /// An ancestor's order could not be carried out (the reason is in the detail).
        OrderNotExecuted = 27 => "指令未执行", "order not executed";
    }
);

impl EventKind {
    /// Machine name used on the wire (`CaseEvent.kind`).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Registered => "registered",
            EventKind::Accepted => "accepted",
            EventKind::Rejected => "rejected",
            EventKind::Assigned => "assigned",
            EventKind::Mediation => "mediation",
            EventKind::Resolved => "resolved",
            EventKind::Unresolved => "unresolved",
            EventKind::FollowUpClosed => "follow_up_closed",
            EventKind::Reopened => "reopened",
            EventKind::RiskChanged => "risk_changed",
            EventKind::SupervisionOpened => "supervision_opened",
            EventKind::SupervisionClosed => "supervision_closed",
            EventKind::DeadlineExtended => "deadline_extended",
            EventKind::PlanUpdated => "plan_updated",
            EventKind::Progress => "progress",
            EventKind::Escalated => "escalated",
            EventKind::TransferredOut => "transferred_out",
            EventKind::Relayed => "relayed",
            EventKind::Received => "received",
            EventKind::Returned => "returned",
            EventKind::SupervisionRequested => "supervision_requested",
            EventKind::SupervisionOrdered => "supervision_order",
            EventKind::OrderNotExecuted => "order_not_executed",
        }
    }

    /// The kind with this wire name ([`EventKind::as_str`]), if any.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.iter().copied().find(|k| k.as_str() == name)
    }
}

/// One entry of a case's append-only history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// 1-based position in the history.
    pub seq: u64,
    pub at: Timestamp,
    /// Node where it happened.
    pub node: String,
    /// Caller identity URI.
    pub actor: String,
    pub kind: EventKind,
    pub from_status: Option<CaseStatus>,
    pub to_status: CaseStatus,
    /// Readable detail; personal data masked.
    pub detail: String,
}
