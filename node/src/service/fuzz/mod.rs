//! Fuzzing of the operator API: every request of `CaseService`, `UserService`,
//! `ApiKeyService`, `BackupService` and `StatsService`, from its bytes or built field by field,
//! through the real handlers (decoding, validation, the application layer, the store) of one
//! node run in process on a temporary store, called by every kind of caller with a real
//! certificate (see `peers`). `docs/fuzzing.md` says what runs when and how to run longer.
//!
//! For each input ([`Harness::check`]):
//!
//! * no panic, and no INTERNAL (or UNKNOWN, DATA_LOSS) answer: input, however wrong, is the
//!   caller's mistake, never the node's failure;
//! * a refused request wrote nothing: the store's records ([`crate::storage::Fingerprint`])
//!   are the same before and after. No exception is needed: every audit entry is written
//!   only once its operation has passed its checks (a denied call is logged, not stored);
//! * a caller without a certificate is UNAUTHENTICATED; a caller the permission table does
//!   not allow the action (an operator of another node, a node certificate, a role without
//!   it) is refused with PERMISSION_DENIED, or INVALID_ARGUMENT where the handler decodes
//!   before the application layer authorizes, and never accepted;
//! * an enum field holding a value the proto does not define is INVALID_ARGUMENT for a caller
//!   allowed the action, and never accepted;
//! * an accepted request did what it says, read back from the store ([`Rpc::accepted`]):
//!   a registration's fields as sent, a command's event once in the history, an order queued,
//!   an account or key as given, a backup that verifies; the answer is the stored state; it
//!   wrote only where it should (a read: nothing, or only its audit entry); and every message
//!   it queued for a neighbour passes the checks that neighbour makes on arrival.
//!
//! The property tests (`tests`, generators in `generate`) run under `cargo test`; the cargo-fuzz
//! target of `fuzz/` calls [`fuzz_one`] (feature `fuzzing`).

mod peers;
mod rpcs;

#[cfg(test)]
mod generate;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use tonic::{Code, Request, Status};

pub use peers::Caller;
pub use rpcs::RPCS;

use super::backup::BackupApi;
use super::case::CaseApi;
use super::stats::StatsApi;
use super::users::{ApiKeyApi, UserApi};
use super::{NodeState, SharedState};
use crate::app::App;
use crate::code::NodeCode;
use crate::domain::{
    Case, CaseStatus, Category, Channel, Command, Confirmation, MediationMethod, MediationResult,
    MediationType, NewCase, Party, PartyRole, Policy, RiskLevel, Timestamp,
};
use crate::identity::{Action, Role};
use crate::storage::Written;

/// The node under test: a township, so that it has a parent to escalate to and children to
/// order.
pub const NODE: &str = "610116001";
/// Its parent (a county).
pub const PARENT: &str = "610116";
/// A child it knows (a village).
pub const CHILD: &str = "610116001001";
/// The node's clock: 2024-05-01 08:00 in China.
pub const T0: Timestamp = Timestamp(1_714_521_600_000);

/// Names of the store's trees ([`Written::tree`]) that the checks name.
pub(crate) mod tree {
    pub const ACCESS: &str = "at_random_access";
    pub const META: &str = "meta";
    pub const CASES: &str = "caseid_case";
    pub const EVENTS: &str = "caseid_seq_event";
    pub const OUTBOX: &str = "peer_seq_outboxentry";
    pub const ORDERS: &str = "orderid_order";
    pub const USERS: &str = "username_user";
    pub const LOGINS: &str = "username_login";
    pub const API_KEYS: &str = "keyname_apikey";
}

/// What a request names that the generators cannot know: a case, an account or a key of the
/// store under test, put in by [`Rpc::aim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    None,
    Case,
    User,
    ApiKey,
}

/// One RPC of the operator API, as the harness calls and checks it.
pub trait Rpc {
    /// `Service.Method`, as in the proto.
    const NAME: &'static str;
    /// The request message's full proto name.
    const REQUEST: &'static str;
    /// What [`Rpc::aim`] puts in.
    const TARGET: Target = Target::None;
    type Req: prost::Message + Default + Clone + Debug + 'static;
    type Resp: Debug;

    /// Calls the handler in process.
    fn call(h: &Harness, req: Request<Self::Req>) -> Result<Self::Resp, Status>;

    /// The permission the request needs.
    fn action(req: &Self::Req) -> Action;

    /// Points the request at `target` (a case id, username or key name of the store).
    fn aim(_req: &mut Self::Req, _target: String) {}

    /// The case the request is about, if any: read before the call for [`Rpc::accepted`].
    fn case_id(_req: &Self::Req) -> Option<&str> {
        None
    }

    /// Whether an enum field holds a number the proto does not define.
    fn unknown_enum(_req: &Self::Req) -> bool {
        false
    }

    /// What an accepted request must have done.
    fn accepted(h: &Harness, seen: &Seen<'_, Self::Req, Self::Resp>) -> Result<(), String>;
}

/// An accepted request, for [`Rpc::accepted`].
pub struct Seen<'a, Q, A> {
    pub caller: Caller,
    pub req: &'a Q,
    pub resp: &'a A,
    /// The records it added, removed or changed.
    pub writes: &'a [Written],
    /// The case [`Rpc::case_id`] names, as stored before the call.
    pub before: Option<&'a Case>,
}

/// Who calls: a given caller, any of [`Caller::ALL`], or one the permission table allows
/// the request's action (so that half the requests get past the permission check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Is(Caller),
    Anyone(usize),
    Allowed(usize),
}

impl From<Caller> for Pick {
    fn from(c: Caller) -> Pick {
        Pick::Is(c)
    }
}

impl Pick {
    /// The caller for a request that needs `action`.
    pub fn caller(self, action: Action) -> Caller {
        let all = Caller::ALL;
        match self {
            Pick::Is(c) => c,
            Pick::Anyone(i) => all[i % all.len()],
            Pick::Allowed(i) => {
                let allowed: Vec<Caller> = all.into_iter().filter(|c| c.may(action)).collect();
                allowed
                    .get(i % allowed.len().max(1))
                    .copied()
                    .unwrap_or(all[i % all.len()])
            }
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Refused(Code),
}

impl Outcome {
    fn rank(self) -> i32 {
        match self {
            Outcome::Accepted => -1,
            Outcome::Refused(code) => code as i32,
        }
    }
}

impl PartialOrd for Outcome {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Outcome {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// Returns `Err(message)` from the enclosing function unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}
pub(crate) use ensure;

/// Refuses writes outside `trees`.
pub(crate) fn writes_only(writes: &[Written], trees: &[&str]) -> Result<(), String> {
    let stray: Vec<String> = writes
        .iter()
        .filter(|w| !trees.contains(&w.tree.as_str()))
        .map(ToString::to_string)
        .collect();
    ensure!(
        stray.is_empty(),
        "wrote outside {trees:?}: {}",
        stray.join(", ")
    );
    Ok(())
}

/// How many records of `tree` were added.
pub(crate) fn added(writes: &[Written], tree: &str) -> usize {
    writes
        .iter()
        .filter(|w| w.tree == tree && w.change == crate::storage::Change::Added)
        .count()
}

/// Cases of each working status the harness keeps (see [`Harness::stock`]).
const STOCK: usize = 2;

/// Things the store under test holds, for [`Rpc::aim`].
#[derive(Debug, Default)]
struct Targets {
    cases: Vec<String>,
    /// The cases [`Harness::stock`] keeps, and a case of the child: aimed at half the time.
    stocked: Vec<String>,
    users: Vec<String>,
    keys: Vec<String>,
}

/// One node in process on a temporary store, seeded with cases in every state, accounts and
/// keys, and the handlers of its operator API.
pub struct Harness {
    rt: tokio::runtime::Runtime,
    pub(crate) state: SharedState,
    pub(crate) app: App,
    pub(crate) case: CaseApi,
    pub(crate) users: UserApi,
    pub(crate) keys: ApiKeyApi,
    pub(crate) backup: BackupApi,
    pub(crate) stats: StatsApi,
    targets: RefCell<Targets>,
    /// The last link seq of each neighbour's outbox checked by
    /// [`Harness::queued_messages_are_receivable`].
    verified: RefCell<BTreeMap<NodeCode, u64>>,
    /// Cases made by [`Harness::make_case`] so far.
    made: std::cell::Cell<usize>,
    /// How each RPC's requests ended so far.
    tally: RefCell<BTreeMap<(&'static str, Outcome), usize>>,
    /// Last: the store must be dropped before its folder.
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.rt.block_on(self.state.store.shutdown());
    }
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

impl Harness {
    /// A node on a new temporary store, seeded.
    pub fn new() -> Harness {
        let connections = peers::connections();
        debug_assert!(!connections.is_empty());
        let dir = tempfile::tempdir().expect("a temporary folder");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let clock = Arc::new(crate::clock::ManualClock::new(T0));
        let state = Arc::new(NodeState::for_tests(
            dir.path(),
            NODE,
            clock,
            Policy::default(),
            None,
        ));
        let h = Harness {
            app: App::new(state.clone()),
            case: CaseApi::new(state.clone()),
            users: UserApi::new(state.clone()),
            keys: ApiKeyApi::new(state.clone()),
            backup: BackupApi::new(state.clone()),
            stats: StatsApi::new(state.clone()),
            state,
            rt,
            targets: RefCell::default(),
            made: Default::default(),
            verified: RefCell::default(),
            tally: RefCell::default(),
            _dir: dir,
        };
        h.rt.block_on(h.seed());
        h
    }

    /// Cases in every status (one closed, one rejected, one moved to the parent, and
    /// [`STOCK`] of each working status), two accounts (one disabled), two keys (one
    /// revoked), a view of personal data in the audit log, and a child heard from.
    async fn seed(&self) {
        let director = Caller::Here(Role::Director)
            .identity()
            .expect("an operator");
        let admin = Caller::Here(Role::Admin).identity().expect("an operator");
        let app = &self.app;
        let closed = self.make_case(CaseStatus::Closed).await;
        app.get(&director, &closed).await.expect("seed");
        self.make_case(CaseStatus::Rejected).await;
        let moved = self.make_case(CaseStatus::Accepted).await;
        app.transfer(&director, moved, PARENT, "上级办理".into())
            .await
            .expect("seed");
        self.stock().await;
        app.add_user(
            &admin,
            "clerk.li",
            Role::Intake,
            "李四",
            Some("zongzhi2026".into()),
        )
        .await
        .expect("seed");
        app.add_user(&admin, "old.wang", Role::Mediator, "王五", None)
            .await
            .expect("seed");
        app.set_user_enabled(&admin, "old.wang", false)
            .await
            .expect("seed");
        app.add_api_key(&admin, "hotline", Channel::Hotline12348)
            .await
            .expect("seed");
        app.add_api_key(&admin, "legacy", Channel::Online)
            .await
            .expect("seed");
        app.revoke_api_key(&admin, "legacy").await.expect("seed");
        let child = NodeCode::parse(CHILD).expect("a code");
        self.state.federation.links.heard(&child, T0, 0);
        let mut t = self.targets.borrow_mut();
        // Cases this node does not hold: below a child (an order goes there), in another
        // township (outside this node's area), and a malformed id.
        t.cases.extend([
            format!("{CHILD}-20240501-000001"),
            "610116002001-20240501-000001".into(),
            "not-a-case".into(),
        ]);
        t.users = vec!["clerk.li".into(), "old.wang".into(), "nobody".into()];
        t.keys = vec!["hotline".into(), "legacy".into(), "missing".into()];
    }

    /// Registers a case (as the director) and takes it to `status` (a working or a final
    /// one); it becomes a target.
    async fn make_case(&self, status: CaseStatus) -> String {
        let n = self.made.get();
        self.made.set(n + 1);
        let director = Caller::Here(Role::Director)
            .identity()
            .expect("an operator");
        let app = &self.app;
        let new = NewCase {
            idempotency_key: format!("made-{n}"),
            category: Category::ALL[n % Category::ALL.len()],
            channel: Channel::ALL[n % Channel::ALL.len()],
            summary: format!("案件{n}：拖欠工资"),
            description: "双方因工资发生纠纷，申请人电话13812345678。".into(),
            parties: vec![Party {
                role: PartyRole::Applicant,
                name: "张三".into(),
                phone: "13812345678".into(),
                id_number: "11010519491231002X".into(),
            }],
            amount_fen: 100_000 * (n % 7) as i64,
            // Blue and yellow: no supervision opened at registration.
            risk: [RiskLevel::Blue, RiskLevel::Yellow][n % 2],
            grid_id: "G-01".into(),
        };
        let id = app.register(&director, new).await.expect("seed").case.id;
        let accept = Command::Review {
            accept: true,
            reason: String::new(),
            guidance: String::new(),
        };
        let mediate = Command::RecordMediation {
            method: MediationMethod::Phone,
            mediation_type: MediationType::Peoples,
            mediator: "李调解".into(),
            notes: "双方同意再谈".into(),
            result: MediationResult::Continuing,
        };
        let resolve = |resolved: bool| Command::Resolve {
            resolved,
            agreement: "十日内付清".into(),
            settled_amount_fen: if resolved { 50_000 } else { 0 },
            confirmation: Confirmation::None,
        };
        let steps: Vec<Command> = match status {
            CaseStatus::Registered | CaseStatus::Transferred => vec![],
            CaseStatus::Accepted => vec![accept],
            CaseStatus::InMediation => vec![accept, mediate],
            CaseStatus::Resolved => vec![accept, resolve(true)],
            CaseStatus::Unresolved => vec![accept, resolve(false)],
            CaseStatus::Closed => vec![
                accept,
                resolve(true),
                Command::FollowUp {
                    satisfaction: 5,
                    notes: String::new(),
                },
            ],
            CaseStatus::Rejected => vec![Command::Review {
                accept: false,
                reason: "不属于受理范围".into(),
                guidance: "请向法院起诉".into(),
            }],
        };
        for cmd in steps {
            app.command(&director, &id, cmd).await.expect("seed");
        }
        self.remember(Target::Case, &id);
        id
    }

    /// Keeps [`STOCK`] cases of each working status: the requests consume them (a case is
    /// reviewed once, its deadline extended once).
    async fn stock(&self) {
        let mut stocked = vec![format!("{CHILD}-20240501-000001")];
        for status in [
            CaseStatus::Registered,
            CaseStatus::Accepted,
            CaseStatus::InMediation,
            CaseStatus::Resolved,
            CaseStatus::Unresolved,
        ] {
            let query = crate::storage::CaseQuery {
                status: Some(status),
                page_size: STOCK,
                ..Default::default()
            };
            let have: Vec<String> = self
                .state
                .store
                .list_cases(&query)
                .map(|page| page.cases.into_iter().map(|c| c.id).collect())
                .unwrap_or_default();
            for _ in have.len()..STOCK {
                stocked.push(self.make_case(status).await);
            }
            stocked.extend(have);
        }
        self.targets.borrow_mut().stocked = stocked;
    }

    /// Runs `f` on the harness's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A request carrying `caller`'s connection, as the node's listener would hand it over.
    pub fn request<T>(&self, caller: Caller, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        if let Some(c) = peers::connections().get(&caller) {
            req.extensions_mut().insert(c.clone());
        }
        req
    }

    /// The `pick`th target of `kind`.
    fn target(&self, kind: Target, pick: usize) -> Option<String> {
        let t = self.targets.borrow();
        let (list, pick) = match kind {
            Target::None => return None,
            Target::Case if pick % 2 == 0 && !t.stocked.is_empty() => (&t.stocked, pick / 2),
            Target::Case => (&t.cases, pick / 2),
            Target::User => (&t.users, pick),
            Target::ApiKey => (&t.keys, pick),
        };
        (!list.is_empty()).then(|| list[pick % list.len()].clone())
    }

    /// Remembers a case, account or key an accepted request made, as a target for the next.
    fn remember(&self, kind: Target, name: &str) {
        let mut t = self.targets.borrow_mut();
        let list = match kind {
            Target::None => return,
            Target::Case => &mut t.cases,

            Target::User => &mut t.users,
            Target::ApiKey => &mut t.keys,
        };
        if !list.iter().any(|x| x == name) {
            list.push(name.to_owned());
        }
    }

    /// How each RPC's requests ended so far: (RPC, outcome) → count.
    pub fn tally(&self) -> BTreeMap<(&'static str, Outcome), usize> {
        self.tally.borrow().clone()
    }

    /// Calls `R` with `req` (aimed at the `aim`th target, if any) as `caller`, and checks
    /// every invariant of the module documentation. `Err` says which one broke.
    pub fn check<R: Rpc>(
        &self,
        who: impl Into<Pick>,
        mut req: R::Req,
        aim: Option<usize>,
    ) -> Result<Outcome, String> {
        self.block_on(self.stock());
        if let Some(target) = aim.and_then(|pick| self.target(R::TARGET, pick)) {
            R::aim(&mut req, target);
        }
        let caller = who.into().caller(R::action(&req));
        let store = &self.state.store;
        let case_before = match R::case_id(&req) {
            Some(id) => store
                .get_case(id)
                .map_err(|e| format!("reading {id}: {e}"))?,
            None => None,
        };
        let before = store.fingerprint();
        let result = R::call(self, self.request(caller, req.clone()));
        let writes = before.changes(&store.fingerprint());
        let outcome = match &result {
            Ok(_) => Outcome::Accepted,
            Err(s) => Outcome::Refused(s.code()),
        };
        *self
            .tally
            .borrow_mut()
            .entry((R::NAME, outcome))
            .or_default() += 1;
        let context = || format!("{} as {caller:?}: {req:?}", R::NAME);
        let action = R::action(&req);
        match result {
            Err(status) => {
                let code = status.code();
                let wrote: Vec<String> = writes.iter().map(ToString::to_string).collect();
                ensure!(
                    wrote.is_empty(),
                    "{} refused ({status:?}) but wrote {}",
                    context(),
                    wrote.join(", ")
                );
                ensure!(
                    !matches!(
                        code,
                        Code::Internal | Code::Unknown | Code::DataLoss | Code::Unimplemented
                    ),
                    "{} failed inside the node: {status:?}",
                    context()
                );
                if caller == Caller::Anonymous {
                    ensure!(
                        code == Code::Unauthenticated,
                        "{} without a certificate: {status:?}",
                        context()
                    );
                } else if !caller.may(action) {
                    ensure!(
                        matches!(code, Code::PermissionDenied | Code::InvalidArgument),
                        "{} not allowed {action} but refused otherwise: {status:?}",
                        context()
                    );
                } else if R::unknown_enum(&req) {
                    ensure!(
                        code == Code::InvalidArgument,
                        "{} with an unknown enum value: {status:?}",
                        context()
                    );
                }
                Ok(outcome)
            }
            Ok(resp) => {
                ensure!(
                    caller.may(action),
                    "{} accepted from a caller not allowed {action}: {resp:?}",
                    context()
                );
                ensure!(
                    !R::unknown_enum(&req),
                    "{} accepted an unknown enum value: {resp:?}",
                    context()
                );
                let seen = Seen {
                    caller,
                    req: &req,
                    resp: &resp,
                    writes: &writes,
                    before: case_before.as_ref(),
                };
                R::accepted(self, &seen)
                    .map_err(|e| format!("{}: {e}; answered {resp:?}", context()))?;
                if added(&writes, tree::OUTBOX) > 0 {
                    self.queued_messages_are_receivable()
                        .map_err(|e| format!("{}: {e}", context()))?;
                }
                // What it made is a target for the requests that follow.
                for w in writes
                    .iter()
                    .filter(|w| w.change == crate::storage::Change::Added)
                {
                    match w.tree.as_str() {
                        tree::CASES => self.remember(Target::Case, &w.key),
                        tree::USERS => self.remember(Target::User, &w.key),
                        tree::API_KEYS => self.remember(Target::ApiKey, &w.key),
                        _ => {}
                    }
                }
                Ok(outcome)
            }
        }
    }

    /// Every message queued for a neighbour since the last call passes the checks the
    /// neighbour makes of what it receives (`federation::wire`): what the node accepted to
    /// send can be carried out, not refused on arrival.
    fn queued_messages_are_receivable(&self) -> Result<(), String> {
        let fed = &self.state.federation;
        for peer in [PARENT, CHILD] {
            let peer = NodeCode::parse(peer).expect("a code");
            let after = self.verified.borrow().get(&peer).copied().unwrap_or(0);
            let queued = self
                .state
                .store
                .outbox_after(&peer, after, usize::MAX, usize::MAX)
                .map_err(|e| format!("reading the outbox: {e}"))?;
            for (seq, entry) in &queued {
                let envelope = crate::federation::wire::queued_envelope(*seq, entry);
                match crate::federation::wire::received_from_proto(
                    envelope,
                    fed.batch_bytes.saturating_mul(4),
                ) {
                    Ok((_, _, crate::protocol::message::Received::Message(_))) => {}
                    other => {
                        return Err(format!(
                            "queued for {peer} a message it would refuse ({other:?}): {:?}",
                            entry.message
                        ));
                    }
                }
                self.verified.borrow_mut().insert(peer.clone(), *seq);
            }
        }
        Ok(())
    }

    /// [`Harness::check`] of whatever `bytes` decode to as `R`'s request (`None`: they do not
    /// decode, and nothing is called).
    pub fn check_bytes<R: Rpc>(
        &self,
        who: Pick,
        aim: Option<usize>,
        bytes: &[u8],
    ) -> Result<Option<Outcome>, String> {
        match <R::Req as prost::Message>::decode(bytes) {
            Ok(req) => self.check::<R>(who, req, aim).map(Some),
            Err(_) => Ok(None),
        }
    }
}

/// One input of the cargo-fuzz target: byte 0 picks the RPC ([`RPCS`]), byte 1 the caller
/// ([`Pick`]: even, anyone; odd, one allowed the action),
/// byte 2 the target (a case, account or key of the store; 0: none), the rest is the request's
/// encoding. Panics when an invariant breaks. One harness per thread, kept across inputs.
pub fn fuzz_one(data: &[u8]) {
    thread_local! {
        static HARNESS: Harness = Harness::new();
    }
    let [rpc, caller, aim, bytes @ ..] = data else {
        return;
    };
    let (name, check) = RPCS[usize::from(*rpc) % RPCS.len()];
    let who = match usize::from(*caller) {
        c if c % 2 == 0 => Pick::Anyone(c / 2),
        c => Pick::Allowed(c / 2),
    };
    let aim = (*aim > 0).then_some(usize::from(*aim));
    HARNESS.with(|h| {
        if let Err(e) = check(h, who, aim, bytes) {
            panic!("{name}: {e}");
        }
    });
}
