//! The console's pages: each handler reads the request, calls the application layer as the
//! signed-in person, and renders a template. No rule lives here.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::Web;
use super::forms::{Fields, parse_yuan};
use super::session::{
    self, LANG_COOKIE, PRE_COOKIE, SESSION_COOKIE, Signed, cookie, forged, set_cookie,
};
use super::view::{CaseRow, CaseView, Choice, Chrome, EventRow, choices, when};
use crate::app::Shown;
use crate::app::cases::{Intake, Listing};
use crate::app::console::SignIn;
use crate::app::console_views::{Actions, LedgerFormat};
use crate::app::moves::{Escalation, Known};
use crate::app::search::Searched;
use crate::domain::calendar::{china_midnight, china_month, parse_china_date};
use crate::domain::{
    CaseStatus, Category, Channel, Command, Confirmation, DomainError, MediationMethod,
    MediationResult, MediationType, NewCase, Party, PartyRole, PlanUpdate, RiskLevel, Timestamp,
};
use crate::error::Error;
use crate::identity::{Action, Identity};
use crate::report::ledger;
use crate::stats::figures::{Cell, Dim, Figures};
use crate::stats::query::{GroupBy, Period, RowKey};
use crate::text::Lang;

/// Rows of each 工作台 queue.
const HOME_ROWS: usize = 20;
/// Rows of a 案件 page.
const PAGE_ROWS: usize = 50;

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/password", get(password_page).post(change_password))
        .route("/lang", get(switch_lang))
        .route("/totp", get(totp_page).post(enroll_totp))
        .route("/", get(home))
        .route("/intake", get(intake_page).post(intake))
        .route("/cases", get(cases))
        .route("/cases.csv", get(cases_csv))
        .route("/cases.xlsx", get(cases_xlsx))
        .route("/cases/{id}", get(case_page))
        .route("/cases/{id}/print", get(case_print))
        .route("/cases/{id}/{action}", post(case_action))
        .route("/alerts", get(alerts))
        .route("/links", get(links))
        .route("/stats", get(stats))
        .route("/stats.csv", get(stats_csv))
        .route("/reports", get(reports))
        .route("/reports/{name}", get(report_file))
}

// ---------------------------------------------------------------------------------------
// Rendering and errors

pub(super) fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "page rendering failed").into_response()
        }
    }
}

/// The HTTP status of an error.
fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Domain(DomainError::InvalidArgument { .. }) => StatusCode::BAD_REQUEST,
        Error::Domain(DomainError::Forbidden(_)) | Error::PermissionDenied(_) => {
            StatusCode::FORBIDDEN
        }
        Error::Domain(_) => StatusCode::CONFLICT,
        Error::NotFound(_) | Error::NoAccount(_) | Error::NoFigures(_) => StatusCode::NOT_FOUND,
        Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Error::Folded { .. } => StatusCode::CONFLICT,
        Error::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::Storage(_) | Error::Internal(_) | Error::Task(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// What a person reads about an error: a headline in their language and the detail.
pub fn explain(lang: Lang, e: &Error) -> String {
    let head = match e {
        Error::Domain(DomainError::InvalidArgument { field, .. }) => {
            return format!(
                "{}{}：{}",
                lang.t("请检查", "Please check "),
                field_label(lang, field),
                e
            );
        }
        Error::Domain(DomainError::IllegalTransition { .. }) => lang.t(
            "当前状态下不能这样办理",
            "Not possible in the case's status",
        ),
        Error::Domain(_) => lang.t("未能办理", "Refused"),
        Error::PermissionDenied(_) => lang.t("无此权限", "Not permitted"),
        Error::NotFound(_) => lang.t("未找到该案件", "No such case"),
        Error::Overloaded(_) => lang.t("系统繁忙，请稍后再试", "Busy; try again shortly"),
        Error::Storage(_) | Error::Internal(_) | Error::Task(_) => lang.t(
            "系统暂时无法保存，请稍后重试或联系管理员",
            "The node cannot do this now; try again or call the administrator",
        ),
        _ => lang.t("未能办理", "Refused"),
    };
    format!("{head}：{e}")
}

/// The form label of an API field name.
fn field_label(lang: Lang, field: &str) -> String {
    let base = field.split('.').next_back().unwrap_or(field);
    let index = field
        .split_once('[')
        .and_then(|(_, r)| r.split_once(']'))
        .and_then(|(n, _)| n.parse::<usize>().ok());
    let label = match base {
        "summary" => lang.t("摘要", "summary"),
        "description" => lang.t("纠纷详情", "description"),
        "name" => lang.t("姓名", "name"),
        "phone" => lang.t("电话", "phone"),
        "id_number" => lang.t("身份证号", "ID number"),
        "amount_fen" | "amount" => lang.t("标的额", "amount"),
        "settled_amount_fen" | "settled" => lang.t("履行金额", "settled amount"),
        "grid_id" => lang.t("网格编号", "grid"),
        "handler" => lang.t("承办部门或调解员", "handler"),
        "mediator" => lang.t("调解员", "mediator"),
        "reason" => lang.t("理由", "reason"),
        "guidance" => lang.t("引导意见", "guidance"),
        "agreement" => lang.t("协议内容", "agreement"),
        "notes" => lang.t("记录", "notes"),
        "text" => lang.t("办理进展", "progress"),
        "due_at" | "due" | "until" => lang.t("期限", "date"),
        "password" => lang.t("密码", "password"),
        "q" => lang.t("搜索内容", "search text"),
        "totp_code" => lang.t("动态口令", "code"),
        "totp_secret" => lang.t("密钥", "secret"),
        other => other,
    }
    .to_owned();
    match index {
        Some(i) => format!("{}{}{label}", lang.t("第", "party "), lang_party(lang, i)),
        None => label,
    }
}

fn lang_party(lang: Lang, i: usize) -> String {
    match lang {
        Lang::Zh => format!("{}位当事人的", i + 1),
        Lang::En => format!("{} ", i + 1),
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    c: Chrome,
    title: String,
    message: String,
    back: String,
}

/// An error page outside a signed-in page (the session could not be read).
pub fn failure(lang: Lang, e: &Error) -> Response {
    let page = MessagePage {
        c: Chrome::new(lang, "", "", ""),
        title: lang.t("出错了", "Error").into(),
        message: explain(lang, e),
        back: "/".into(),
    };
    (status_of(e), render(&page)).into_response()
}

impl Web {
    pub(super) fn chrome(&self, s: &Signed, active: &'static str) -> Chrome {
        Chrome::signed(
            s.lang,
            self.app.state.code.as_str(),
            &self.app.state.name,
            &s.caller,
            active,
        )
    }

    /// Runs a page's store reads `f` off the async workers (a read may wait for the disk),
    /// so that a slow page never holds up other requests.
    async fn off<T, F>(&self, s: &Signed, f: F) -> Result<T, Error>
    where
        F: FnOnce(&Web, &Signed) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let (web, s) = (self.clone(), s.clone());
        tokio::task::spawn_blocking(move || f(&web, &s)).await?
    }

    /// An error page for a signed-in person.
    pub(super) fn error(&self, s: &Signed, e: &Error, back: &str) -> Response {
        let page = MessagePage {
            c: self.chrome(s, ""),
            title: s.lang.t("未能办理", "Not done").into(),
            message: explain(s.lang, e),
            back: back.into(),
        };
        (status_of(e), render(&page)).into_response()
    }
}

fn who(s: &Signed) -> &Identity {
    &s.caller.who
}

// ---------------------------------------------------------------------------------------
// Signing in and out

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    error: String,
    csrf: String,
    username: String,
}

fn login_form(
    web: &Web,
    lang: Lang,
    error: String,
    username: String,
    status: StatusCode,
) -> Response {
    let token = crate::app::console::random_token();
    let page = LoginPage {
        c: Chrome::new(
            lang,
            web.app.state.code.as_str(),
            &web.app.state.name,
            "login",
        ),
        error,
        csrf: token.clone(),
        username,
    };
    (
        status,
        [(
            header::SET_COOKIE,
            set_cookie(PRE_COOKIE, &token, Some(3600)),
        )],
        render(&page),
    )
        .into_response()
}

async fn login_page(State(web): State<Web>, headers: HeaderMap) -> Response {
    let lang = session::lang(&headers);
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Ok(Some(_)) = web.app.session(token).await
    {
        return Redirect::to("/").into_response();
    }
    login_form(&web, lang, String::new(), String::new(), StatusCode::OK)
}

async fn login(State(web): State<Web>, headers: HeaderMap, fields: Fields) -> Response {
    let lang = session::lang(&headers);
    let pre = cookie(&headers, PRE_COOKIE).unwrap_or("");
    if !session::same(fields.get("csrf"), pre) {
        return session::forbidden(lang);
    }
    let username = fields.text("username");
    match web
        .app
        .sign_in(&username, fields.get("password"), fields.get("totp"))
        .await
    {
        Ok(SignIn::Opened { token, session }) => {
            let to = if session.must_change { "/password" } else { "/" };
            (
                AppendHeaders([
                    (header::SET_COOKIE, set_cookie(SESSION_COOKIE, &token, None)),
                    (header::SET_COOKIE, set_cookie(PRE_COOKIE, "", Some(0))),
                ]),
                Redirect::to(to),
            )
                .into_response()
        }
        Ok(SignIn::Wrong) => login_form(
            &web,
            lang,
            lang.t("用户名或密码错误。", "Wrong username or password.").into(),
            username,
            StatusCode::UNAUTHORIZED,
        ),
        Ok(SignIn::Locked) => login_form(
            &web,
            lang,
            lang.t(
                "连续登录失败次数过多，账号已锁定，请联系系统管理员解锁。",
                "Too many failed sign-ins: the account is locked. Ask your administrator to unlock it.",
            )
            .into(),
            username,
            StatusCode::FORBIDDEN,
        ),
        Err(e) => failure(lang, &e),
    }
}

async fn logout(State(web): State<Web>, s: Signed, fields: Fields) -> Response {
    if let Some(r) = forged(&s, &fields) {
        return r;
    }
    if let Err(e) = web.app.sign_out(&s.caller).await {
        return web.error(&s, &e, "/");
    }
    (
        [(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", Some(0)))],
        Redirect::to("/login"),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    c: Chrome,
    error: String,
    forced: bool,
    done: bool,
}

async fn password_page(State(web): State<Web>, s: Signed) -> Response {
    render(&PasswordPage {
        c: web.chrome(&s, ""),
        error: String::new(),
        forced: s.caller.session.must_change,
        done: false,
    })
}

async fn change_password(State(web): State<Web>, s: Signed, fields: Fields) -> Response {
    if let Some(r) = forged(&s, &fields) {
        return r;
    }
    let page = |error: String, done: bool| PasswordPage {
        c: web.chrome(&s, ""),
        error,
        forced: s.caller.session.must_change && !done,
        done,
    };
    if fields.get("new") != fields.get("again") {
        let msg = s
            .lang
            .t("两次输入的新密码不一致。", "The new passwords differ.");
        return (StatusCode::BAD_REQUEST, render(&page(msg.into(), false))).into_response();
    }
    match web
        .app
        .change_password(&s.caller, fields.get("current"), fields.get("new"))
        .await
    {
        Ok(()) if s.caller.session.must_change => Redirect::to("/").into_response(),
        Ok(()) => render(&page(String::new(), true)),
        Err(e) => (status_of(&e), render(&page(explain(s.lang, &e), false))).into_response(),
    }
}

#[derive(Template)]
#[template(path = "totp.html")]
struct TotpPage {
    c: Chrome,
    error: String,
    enabled: bool,
    required: bool,
    secret: String,
    uri: String,
}

fn totp_form(web: &Web, s: &Signed, error: String, secret: Option<String>) -> TotpPage {
    let enabled = web.app.has_totp(&s.caller).unwrap_or(false);
    let (fresh, _) = crate::app::console::new_totp_secret(
        web.app.state.code.as_str(),
        &s.caller.session.username,
    );
    let secret = secret.unwrap_or(fresh);
    let uri = format!(
        "otpauth://totp/fengqiao:{}-{}?secret={secret}&issuer=fengqiao&algorithm=SHA1&digits=6&period=30",
        web.app.state.code, s.caller.session.username
    );
    TotpPage {
        c: web.chrome(s, ""),
        error,
        enabled,
        required: s.caller.session.must_enroll,
        secret,
        uri,
    }
}

async fn totp_page(State(web): State<Web>, s: Signed) -> Response {
    render(&totp_form(&web, &s, String::new(), None))
}

async fn enroll_totp(State(web): State<Web>, s: Signed, fields: Fields) -> Response {
    if let Some(r) = forged(&s, &fields) {
        return r;
    }
    match web
        .app
        .enroll_totp(&s.caller, fields.get("secret"), fields.get("code"))
        .await
    {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => {
            let page = totp_form(&web, &s, explain(s.lang, &e), Some(fields.text("secret")));
            (status_of(&e), render(&page)).into_response()
        }
    }
}

#[derive(serde::Deserialize)]
struct LangQuery {
    to: String,
}

async fn switch_lang(Query(q): Query<LangQuery>) -> Response {
    let value = if q.to == "en" { "en" } else { "zh" };
    (
        [(
            header::SET_COOKIE,
            set_cookie(LANG_COOKIE, value, Some(365 * 86_400)),
        )],
        Redirect::to("/"),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// 工作台

/// A list of cases with its heading.
pub struct Section {
    pub key: &'static str,
    pub title: String,
    pub hint: String,
    pub rows: Vec<CaseRow>,
    /// How many: the rows shown, "+" when there are more.
    pub count: String,
    /// Where to see them all (empty: all are shown).
    pub more: String,
    pub alarm: bool,
}

impl Section {
    fn plain(rows: Vec<CaseRow>) -> Section {
        Section {
            key: "list",
            title: String::new(),
            hint: String::new(),
            count: rows.len().to_string(),
            rows,
            more: String::new(),
            alarm: false,
        }
    }
}

/// An alert as listed.
pub struct AlertRow {
    pub at: String,
    pub kind: String,
    pub case_id: String,
    pub detail: String,
    pub class: &'static str,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    c: Chrome,
    sections: Vec<Section>,
    alerts: Vec<AlertRow>,
}

fn alert_rows(
    web: &Web,
    s: &Signed,
    since: Option<Timestamp>,
    limit: usize,
) -> Result<Vec<AlertRow>, Error> {
    let alerts = web.app.newest_alerts(who(s), limit)?;
    Ok(alerts
        .iter()
        .filter(|a| since.is_none_or(|t| a.raised_at >= t))
        .map(|a| AlertRow {
            at: when(a.raised_at),
            kind: s.lang.t(a.kind.label_zh(), a.kind.label_en()).into(),
            case_id: a.case_ids.first().cloned().unwrap_or_default(),
            detail: a.message.clone(),
            class: match a.kind.as_str() {
                "security" | "undelivered" | "link_silent" => "dead",
                _ => "",
            },
        })
        .collect())
}

async fn home(State(web): State<Web>, s: Signed) -> Response {
    match web.off(&s, home_sections).await {
        Ok((sections, alerts)) => render(&HomePage {
            c: web.chrome(&s, "home"),
            sections,
            alerts,
        }),
        Err(e) => web.error(&s, &e, "/"),
    }
}

fn home_sections(web: &Web, s: &Signed) -> Result<(Vec<Section>, Vec<AlertRow>), Error> {
    let app = &web.app;
    let lang = s.lang;
    let now = app.now();
    let me = who(s);
    let list = |status: Option<CaseStatus>, risk: Option<RiskLevel>, overdue: bool, size: usize| {
        app.list(
            me,
            Listing {
                status,
                risk,
                overdue_only: overdue,
                page_size: size,
                newest_first: true,
                ..Listing::default()
            },
        )
    };
    let rows = |cases: &[crate::domain::Case]| -> Vec<CaseRow> {
        cases.iter().map(|c| CaseRow::of(c, lang, now)).collect()
    };
    // A queue: its first rows, newest first; "20+" when there are more than it shows.
    let section = |key: &'static str,
                   zh: &'static str,
                   en: &'static str,
                   hint: String,
                   mut cases: Vec<crate::domain::Case>,
                   more: bool,
                   link: &str,
                   alarm: bool| {
        let more = more || cases.len() > HOME_ROWS;
        cases.truncate(HOME_ROWS);
        Section {
            key,
            title: lang.t(zh, en).into(),
            hint,
            count: format!("{}{}", cases.len(), if more { "+" } else { "" }),
            rows: rows(&cases),
            more: if more { link.to_owned() } else { String::new() },
            alarm: alarm && !cases.is_empty(),
        }
    };
    let newest_first = |v: &mut Vec<crate::domain::Case>| {
        v.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    };
    let mut sections = Vec::new();
    let page = list(Some(CaseStatus::Registered), None, false, HOME_ROWS)?;
    let more = page.next_page_token.is_some();
    sections.push(section(
        "unreviewed",
        "未审核",
        "Awaiting review",
        lang.t("3 日内审核", "review within 3 days").into(),
        page.cases,
        more,
        "/cases?status=1",
        false,
    ));
    let page = list(None, None, true, HOME_ROWS)?;
    let more = page.next_page_token.is_some();
    sections.push(section(
        "overdue",
        "逾期",
        "Overdue",
        String::new(),
        page.cases,
        more,
        "/cases?overdue=1",
        true,
    ));
    // Red, orange and yellow open cases: one index range each (risk × open status).
    let mut hot = Vec::new();
    let mut more = false;
    for risk in [RiskLevel::Red, RiskLevel::Orange, RiskLevel::Yellow] {
        let mut of_risk = Vec::new();
        for status in [
            CaseStatus::Registered,
            CaseStatus::Accepted,
            CaseStatus::InMediation,
        ] {
            let page = list(Some(status), Some(risk), false, HOME_ROWS)?;
            more |= page.next_page_token.is_some();
            of_risk.extend(page.cases);
        }
        newest_first(&mut of_risk);
        hot.extend(of_risk);
    }
    sections.push(section(
        "risk",
        "红橙黄风险",
        "Red, orange, yellow",
        lang.t("未办结，红色在前", "open, red first").into(),
        hot,
        more,
        "/cases?risk=4",
        false,
    ));
    // Dispatched to me: the handler named as this account's name or username.
    let names = [s.caller.name.as_str(), s.caller.session.username.as_str()];
    let (mine, more) = app.dispatched_to(me, &names, HOME_ROWS)?;
    sections.push(section(
        "mine",
        "派给我的",
        "Dispatched to me",
        String::new(),
        mine,
        more,
        "",
        false,
    ));
    let mut follow = Vec::new();
    let mut more = false;
    for status in [CaseStatus::Resolved, CaseStatus::Unresolved] {
        let page = list(Some(status), None, false, HOME_ROWS)?;
        more |= page.next_page_token.is_some();
        follow.extend(page.cases);
    }
    follow.sort_by_key(|c| c.follow_up_due_at);
    sections.push(section(
        "follow-up",
        "待回访",
        "Follow-ups due",
        String::new(),
        follow,
        more,
        "/cases?status=4",
        false,
    ));
    // Cases here that an ancestor supervises: orders and deadlines come from above.
    let (from_above, more) = app.supervised_from_above(me, HOME_ROWS)?;
    sections.push(section(
        "from-above",
        "上级督办",
        "Supervised from above",
        lang.t("本中心案件，上级督办", "cases here, followed from above")
            .into(),
        from_above,
        more,
        "",
        false,
    ));
    let supervised = app.list(
        me,
        Listing {
            supervised: true,
            page_size: HOME_ROWS,
            newest_first: true,
            ..Listing::default()
        },
    )?;
    let more = supervised.next_page_token.is_some();
    sections.push(section(
        "supervised",
        "督办",
        "Supervised",
        lang.t("下级案件，本级督办", "cases below, followed here")
            .into(),
        supervised.cases,
        more,
        "/cases?supervised=1",
        false,
    ));
    let week_ago = Timestamp(now.0 - 7 * 86_400_000);
    let alerts = alert_rows(web, s, Some(week_ago), HOME_ROWS)?;
    Ok((sections, alerts))
}

// ---------------------------------------------------------------------------------------
// 登记

/// One party row of the intake form.
pub struct PartyInput {
    pub roles: Vec<Choice>,
    pub name: String,
    pub phone: String,
    pub id_number: String,
}

#[derive(Template)]
#[template(path = "intake.html")]
struct IntakePage {
    c: Chrome,
    error: String,
    key: String,
    categories: Vec<Choice>,
    channels: Vec<Choice>,
    risks: Vec<Choice>,
    amount: String,
    grid_id: String,
    summary: String,
    description: String,
    parties: Vec<PartyInput>,
    s: Section,
}

fn party_input(lang: Lang, role: PartyRole, name: &str, phone: &str, id: &str) -> PartyInput {
    PartyInput {
        roles: choices!(PartyRole, lang, Some(role)),
        name: name.into(),
        phone: phone.into(),
        id_number: id.into(),
    }
}

async fn intake_page(State(web): State<Web>, s: Signed) -> Response {
    let lang = s.lang;
    if let Err(e) = web.app.authorize(who(&s), Action::RegisterCase) {
        return web.error(&s, &e, "/");
    }
    render(&IntakePage {
        c: web.chrome(&s, "intake"),
        error: String::new(),
        key: crate::app::console::random_token(),
        categories: choices!(Category, lang, Some(Category::Labor)),
        channels: choices!(Channel, lang, Some(Channel::WalkIn)),
        risks: choices!(RiskLevel, lang, Some(RiskLevel::Blue)),
        amount: String::new(),
        grid_id: String::new(),
        summary: String::new(),
        description: String::new(),
        parties: vec![
            party_input(lang, PartyRole::Applicant, "", "", ""),
            party_input(lang, PartyRole::Respondent, "", "", ""),
        ],
        s: Section::plain(Vec::new()),
    })
}

/// An enum value of a form field (its stable code).
fn pick<T: Copy>(
    all: &[T],
    code: impl Fn(T) -> u8,
    field: &'static str,
    s: &str,
) -> Result<T, DomainError> {
    s.trim()
        .parse::<u8>()
        .ok()
        .and_then(|n| all.iter().copied().find(|v| code(*v) == n))
        .ok_or_else(|| DomainError::invalid(field, "choose one of the listed values"))
}

async fn intake(State(web): State<Web>, s: Signed, fields: Fields) -> Response {
    if let Some(r) = forged(&s, &fields) {
        return r;
    }
    let lang = s.lang;
    let now = web.app.now();
    // The parties as typed, rows without any value dropped.
    let roles = fields.all("party_role");
    let names = fields.all("party_name");
    let phones = fields.all("party_phone");
    let ids = fields.all("party_id");
    let mut typed: Vec<(PartyRole, String, String, String)> = (0..names.len())
        .map(|i| {
            let role = pick(
                PartyRole::ALL,
                PartyRole::code,
                "party_role",
                roles.get(i).copied().unwrap_or("1"),
            )
            .unwrap_or(PartyRole::Other);
            let at = |v: &Vec<&str>| v.get(i).map_or(String::new(), |x| x.trim().to_owned());
            (role, at(&names), at(&phones), at(&ids))
        })
        .collect();
    let remove: Option<usize> = fields.get("remove").parse().ok();
    if let Some(i) = remove
        && i < typed.len()
    {
        typed.remove(i);
    }
    if fields.has("add") && typed.len() < crate::domain::validate::PARTIES_MAX {
        typed.push((
            PartyRole::Other,
            String::new(),
            String::new(),
            String::new(),
        ));
    }
    let category = pick(
        Category::ALL,
        Category::code,
        "category",
        fields.get("category"),
    );
    let channel = pick(
        Channel::ALL,
        Channel::code,
        "channel",
        fields.get("channel"),
    );
    let risk = pick(RiskLevel::ALL, RiskLevel::code, "risk", fields.get("risk"));
    let form = |error: String, repeats: Vec<CaseRow>| IntakePage {
        c: web.chrome(&s, "intake"),
        error,
        key: {
            let k = fields.text("key");
            if k.is_empty() {
                crate::app::console::random_token()
            } else {
                k
            }
        },
        categories: choices!(Category, lang, category.clone().ok()),
        channels: choices!(Channel, lang, channel.clone().ok()),
        risks: choices!(RiskLevel, lang, risk.clone().ok()),
        amount: fields.text("amount"),
        grid_id: fields.text("grid_id"),
        summary: fields.text("summary"),
        description: fields.get("description").to_owned(),
        parties: if typed.is_empty() {
            vec![party_input(lang, PartyRole::Applicant, "", "", "")]
        } else {
            typed
                .iter()
                .map(|(r, n, p, i)| party_input(lang, *r, n, p, i))
                .collect()
        },
        s: Section::plain(repeats),
    };
    if remove.is_some() || fields.has("add") {
        return render(&form(String::new(), Vec::new()));
    }
    let new = (|| -> Result<NewCase, DomainError> {
        Ok(NewCase {
            idempotency_key: format!("console-{}", fields.text("key")),
            category: category.clone()?,
            channel: channel.clone()?,
            summary: fields.text("summary"),
            description: fields.get("description").trim_end().to_owned(),
            parties: typed
                .iter()
                .filter(|(_, n, p, i)| !(n.is_empty() && p.is_empty() && i.is_empty()))
                .map(|(role, name, phone, id)| Party {
                    role: *role,
                    name: name.clone(),
                    phone: phone.clone(),
                    id_number: id.to_ascii_uppercase(),
                })
                .collect(),
            amount_fen: fields.yuan("amount")?,
            risk: risk.clone()?,
            grid_id: fields.text("grid_id"),
        })
    })();
    let new = match new {
        Ok(n) => n,
        Err(e) => {
            let e = Error::from(e);
            return (status_of(&e), render(&form(explain(lang, &e), Vec::new()))).into_response();
        }
    };
    // 重复来访 comes back before saving, unless the clerk has seen it and goes on.
    match web
        .app
        .register_form(who(&s), new, fields.has("repeat_ok"))
        .await
    {
        Ok(Intake::Registered(shown)) => {
            Redirect::to(&format!("/cases/{}?done=registered", shown.case.id)).into_response()
        }
        Ok(Intake::RepeatVisits(found)) => {
            let rows = found.iter().map(|c| CaseRow::of(c, lang, now)).collect();
            render(&form(String::new(), rows))
        }
        Err(e) => (status_of(&e), render(&form(explain(lang, &e), Vec::new()))).into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// 案件

#[derive(serde::Deserialize, Default, Clone)]
struct CasesQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    risk: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    overdue: String,
    #[serde(default)]
    supervised: String,
    #[serde(default)]
    page: String,
    /// An export with personal data in full (含个人信息): "1".
    #[serde(default)]
    full: String,
}

impl CasesQuery {
    fn listing(&self, page_size: usize) -> Result<Listing, DomainError> {
        fn opt(s: &str) -> Option<&str> {
            (!s.trim().is_empty()).then_some(s)
        }
        Ok(Listing {
            status: opt(&self.status)
                .map(|v| pick(CaseStatus::ALL, CaseStatus::code, "status", v))
                .transpose()?,
            risk: opt(&self.risk)
                .map(|v| pick(RiskLevel::ALL, RiskLevel::code, "risk", v))
                .transpose()?,
            category: opt(&self.category)
                .map(|v| pick(Category::ALL, Category::code, "category", v))
                .transpose()?,
            overdue_only: self.overdue == "1",
            supervised: self.supervised == "1",
            page_size,
            page_token: opt(&self.page).map(str::to_owned),
            newest_first: true,
        })
    }

    /// The query string of these filters (without the page), for links.
    fn filters(&self) -> String {
        let mut out = Vec::new();
        for (k, v) in [
            ("q", &self.q),
            ("status", &self.status),
            ("risk", &self.risk),
            ("category", &self.category),
            ("overdue", &self.overdue),
            ("supervised", &self.supervised),
        ] {
            if !v.is_empty() {
                out.push(format!("{k}={}", url_escape(v)));
            }
        }
        out.join("&")
    }
}

/// Percent-encoding of a query value.
fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Template)]
#[template(path = "cases.html")]
struct CasesPage {
    c: Chrome,
    q: String,
    searched: String,
    error: String,
    statuses: Vec<Choice>,
    risks: Vec<Choice>,
    categories: Vec<Choice>,
    overdue: bool,
    supervised: bool,
    s: Section,
    next: String,
    filters: String,
    /// The role may export with personal data in full.
    full_export: bool,
}

/// What a listing or a search found (masked).
struct Found {
    cases: Vec<crate::domain::Case>,
    /// What the search text was taken for (a search).
    kind: Option<Searched>,
    next: Option<String>,
}

fn find(web: &Web, s: &Signed, q: &CasesQuery, page_size: usize) -> Result<Found, Error> {
    if !q.q.trim().is_empty() {
        let (kind, cases) = web.app.search(who(s), &q.q)?;
        return Ok(Found {
            cases,
            kind: Some(kind),
            next: None,
        });
    }
    let page = web.app.list(who(s), q.listing(page_size)?)?;
    Ok(Found {
        cases: page.cases,
        kind: None,
        next: page.next_page_token,
    })
}

async fn cases(State(web): State<Web>, s: Signed, Query(q): Query<CasesQuery>) -> Response {
    let lang = s.lang;
    let now = web.app.now();
    let listing = q.listing(PAGE_ROWS).unwrap_or_default();
    let query = q.clone();
    let found = web.off(&s, move |w, s| find(w, s, &query, PAGE_ROWS)).await;
    let (found, kind, next, error) = match found {
        Ok(f) => (f.cases, f.kind, f.next, String::new()),
        Err(e) => (Vec::new(), None, None, explain(lang, &e)),
    };
    let filters = q.filters();
    let page = CasesPage {
        c: web.chrome(&s, "cases"),
        q: q.q.clone(),
        searched: kind.map_or(String::new(), |k| lang.t(k.label_zh(), k.label_en()).into()),
        error,
        statuses: choices!(CaseStatus, lang, listing.status),
        risks: choices!(RiskLevel, lang, listing.risk),
        categories: choices!(Category, lang, listing.category),
        overdue: listing.overdue_only,
        supervised: listing.supervised,
        s: Section::plain(found.iter().map(|c| CaseRow::of(c, lang, now)).collect()),
        next: next.map_or(String::new(), |t| {
            format!("/cases?{filters}&page={}", url_escape(&t))
        }),
        filters,
        full_export: crate::app::App::reveals_personal(who(&s)) && !listing.supervised,
    };
    render(&page)
}

fn download(name: &str, kind: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn csv_response(name: &str, body: String) -> Response {
    download(name, "text/csv; charset=utf-8", body.into_bytes())
}

async fn export(web: &Web, s: &Signed, q: &CasesQuery, xlsx: bool) -> Response {
    let listing = match q.listing(crate::app::cases::MAX_PAGE_SIZE) {
        Ok(l) => l,
        Err(e) => return web.error(s, &e.into(), "/cases"),
    };
    let format = if xlsx {
        LedgerFormat::Xlsx
    } else {
        LedgerFormat::Csv
    };
    match web
        .app
        .export_ledger(who(s), listing, &q.q, format, s.lang, q.full == "1")
        .await
    {
        Ok(l) => download(&l.file_name, l.content_type, l.content),
        Err(e) => web.error(s, &e, "/cases"),
    }
}

async fn cases_csv(State(web): State<Web>, s: Signed, Query(q): Query<CasesQuery>) -> Response {
    export(&web, &s, &q, false).await
}

async fn cases_xlsx(State(web): State<Web>, s: Signed, Query(q): Query<CasesQuery>) -> Response {
    export(&web, &s, &q, true).await
}

// ---------------------------------------------------------------------------------------
// The case page

#[derive(Template)]
#[template(path = "case.html")]
struct CasePage {
    c: Chrome,
    v: CaseView,
    events: Vec<EventRow>,
    a: Actions,
    copy: bool,
    error: String,
    done: String,
    targets: Vec<Choice>,
    risks: Vec<Choice>,
    methods: Vec<Choice>,
    mediation_types: Vec<Choice>,
    mediation_results: Vec<Choice>,
    confirmations: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "print.html")]
struct PrintPage {
    c: Chrome,
    v: CaseView,
    events: Vec<EventRow>,
    printed: String,
}

#[derive(serde::Deserialize, Default)]
struct CaseQuery {
    #[serde(default)]
    done: String,
}

fn done_text(lang: Lang, done: &str) -> String {
    match done {
        "registered" => lang.t(
            "已登记。请将查询码告知当事人。",
            "Registered. Give the lookup code to the applicant.",
        ),
        "" => "",
        _ => lang.t("已保存。", "Saved."),
    }
    .into()
}

/// The page of case `id`, with an error or a confirmation.
async fn case_view(
    web: &Web,
    s: &Signed,
    id: &str,
    error: String,
    done: String,
    status: StatusCode,
) -> Response {
    let lang = s.lang;
    let now = web.app.now();
    let shown = match web.app.get(who(s), id).await {
        Ok(shown) => shown,
        Err(e) => return web.error(s, &e, "/cases"),
    };
    let (history, actions) = {
        let id = id.to_owned();
        match web
            .off(s, move |w, s| {
                let history = w.app.history(who(s), &id)?;
                Ok((history, w.app.actions(who(s), &id).unwrap_or_default()))
            })
            .await
        {
            Ok(h) => h,
            Err(e) => return web.error(s, &e, "/cases"),
        }
    };
    let copy = shown.case.owner_node != web.app.state.code.as_str()
        && shown.case.status != CaseStatus::Transferred;
    let targets = if actions.transfer {
        web.app
            .transfer_targets(who(s), id)
            .unwrap_or_default()
            .into_iter()
            .map(|code| Choice {
                label: code.to_string(),
                value: code.to_string(),
                selected: false,
            })
            .collect()
    } else {
        Vec::new()
    };
    let page = CasePage {
        c: web.chrome(s, "cases"),
        v: CaseView::of(&shown, lang, now),
        events: events_of(&shown, &history, lang),
        a: actions,
        copy,
        error,
        done,
        targets,
        risks: choices!(RiskLevel, lang, Some(shown.case.risk)),
        methods: choices!(MediationMethod, lang, None::<MediationMethod>),
        mediation_types: choices!(MediationType, lang, None::<MediationType>),
        mediation_results: choices!(MediationResult, lang, None::<MediationResult>),
        confirmations: choices!(Confirmation, lang, None::<Confirmation>),
    };
    (status, render(&page)).into_response()
}

fn events_of(shown: &Shown, history: &[crate::domain::Event], lang: Lang) -> Vec<EventRow> {
    history
        .iter()
        .map(|e| EventRow::of(e, lang, &shown.case.parties, shown.reveal))
        .collect()
}

async fn case_page(
    State(web): State<Web>,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<CaseQuery>,
) -> Response {
    let done = done_text(s.lang, &q.done);
    case_view(&web, &s, &id, String::new(), done, StatusCode::OK).await
}

async fn case_print(State(web): State<Web>, s: Signed, Path(id): Path<String>) -> Response {
    let shown = match web.app.get(who(&s), &id).await {
        Ok(shown) => shown,
        Err(e) => return web.error(&s, &e, "/cases"),
    };
    let history = {
        let id = id.clone();
        match web.off(&s, move |w, s| w.app.history(who(s), &id)).await {
            Ok(h) => h,
            Err(e) => return web.error(&s, &e, "/cases"),
        }
    };
    let now = web.app.now();
    render(&PrintPage {
        c: web.chrome(&s, "cases"),
        v: CaseView::of(&shown, s.lang, now),
        events: events_of(&shown, &history, s.lang),
        printed: when(now),
    })
}

/// The end of a day given as `YYYY-MM-DD` (China time), or `None` when empty.
fn end_of_day(field: &'static str, s: &str) -> Result<Option<Timestamp>, DomainError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    let (y, m, d) =
        parse_china_date(s).ok_or_else(|| DomainError::invalid(field, "a date like 2026-12-31"))?;
    Ok(Some(Timestamp(china_midnight(y, m, d).0 + 86_400_000 - 1)))
}

/// What a posted case form asks for.
enum Act {
    Command(Command),
    Escalate(Escalation, String),
    Transfer(String, String),
    Supervise(String, Option<Timestamp>),
}

fn act_of(action: &str, f: &Fields) -> Result<Act, DomainError> {
    Ok(Act::Command(match action {
        "accept" => Command::Review {
            accept: true,
            reason: f.text("reason"),
            guidance: String::new(),
        },
        "reject" => Command::Review {
            accept: false,
            reason: f.text("reason"),
            guidance: f.text("guidance"),
        },
        "assign" => Command::Assign {
            handler: f.text("handler"),
            due_at: end_of_day("due_at", f.get("due"))?,
        },
        "mediation" => Command::RecordMediation {
            method: pick(
                MediationMethod::ALL,
                MediationMethod::code,
                "method",
                f.get("method"),
            )?,
            mediation_type: pick(
                MediationType::ALL,
                MediationType::code,
                "mediation_type",
                f.get("mediation_type"),
            )?,
            mediator: f.text("mediator"),
            notes: f.text("notes"),
            result: pick(
                MediationResult::ALL,
                MediationResult::code,
                "result",
                f.get("result"),
            )?,
        },
        "resolve" => Command::Resolve {
            resolved: f.get("resolved") == "1",
            agreement: f.text("agreement"),
            settled_amount_fen: parse_yuan("settled_amount_fen", f.get("settled"))?,
            confirmation: pick(
                Confirmation::ALL,
                Confirmation::code,
                "confirmation",
                f.get("confirmation"),
            )?,
        },
        "follow-up" => Command::FollowUp {
            satisfaction: f
                .get("satisfaction")
                .parse()
                .map_err(|_| DomainError::invalid("satisfaction", "1 to 5"))?,
            notes: f.text("notes"),
        },
        "risk" => Command::ChangeRisk {
            risk: pick(RiskLevel::ALL, RiskLevel::code, "risk", f.get("risk"))?,
            reason: f.text("reason"),
        },
        "extend" => Command::ExtendDeadline {
            until: end_of_day("until", f.get("until"))?
                .ok_or_else(|| DomainError::invalid("until", "is required"))?,
            reason: f.text("reason"),
        },
        "plan" => Command::UpdatePlan(PlanUpdate {
            lead_leader: Some(f.text("lead_leader")),
            mediation_org: Some(f.text("mediation_org")),
            liaison_unit: Some(f.text("liaison_unit")),
            plan: Some(f.get("plan").trim_end().to_owned()),
            legal_briefing: Some(f.get("legal_briefing").trim_end().to_owned()),
        }),
        "progress" => Command::AddProgress {
            text: f.text("text"),
        },
        "escalate" => {
            let mode = match f.get("mode") {
                "take-over" => Escalation::TakeOver,
                "supervise" => Escalation::Supervise,
                _ => return Err(DomainError::invalid("mode", "take-over or supervise")),
            };
            return Ok(Act::Escalate(mode, f.text("reason")));
        }
        "transfer" => return Ok(Act::Transfer(f.text("to"), f.text("reason"))),
        "supervise" => {
            return Ok(Act::Supervise(
                f.text("instruction"),
                end_of_day("due_at", f.get("due"))?,
            ));
        }
        _ => return Err(DomainError::invalid("action", "unknown action")),
    }))
}

async fn case_action(
    State(web): State<Web>,
    s: Signed,
    Path((id, action)): Path<(String, String)>,
    fields: Fields,
) -> Response {
    if let Some(r) = forged(&s, &fields) {
        return r;
    }
    let act = match act_of(&action, &fields) {
        Ok(a) => a,
        Err(e) => {
            let e = Error::from(e);
            return case_view(
                &web,
                &s,
                &id,
                explain(s.lang, &e),
                String::new(),
                status_of(&e),
            )
            .await;
        }
    };
    let result: Result<(), Error> = match act {
        Act::Command(cmd) => web.app.command(who(&s), &id, cmd).await.map(drop),
        Act::Escalate(mode, reason) => web
            .app
            .escalate(who(&s), id.clone(), mode, reason)
            .await
            .map(drop),
        Act::Transfer(to, reason) => web
            .app
            .transfer(who(&s), id.clone(), &to, reason)
            .await
            .map(|_: Known| ()),
        Act::Supervise(instruction, due) => web
            .app
            .supervise(who(&s), id.clone(), instruction, due)
            .await
            .map(drop),
    };
    match result {
        Ok(()) => Redirect::to(&format!("/cases/{id}?done={action}")).into_response(),
        Err(e) => {
            case_view(
                &web,
                &s,
                &id,
                explain(s.lang, &e),
                String::new(),
                status_of(&e),
            )
            .await
        }
    }
}

// ---------------------------------------------------------------------------------------
// 预警, 链路, 报表

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    c: Chrome,
    alerts: Vec<AlertRow>,
}

async fn alerts(State(web): State<Web>, s: Signed) -> Response {
    let rows = web
        .off(&s, |w, s| {
            alert_rows(w, s, None, crate::app::cases::MAX_ALERTS)
        })
        .await;
    match rows {
        Ok(alerts) => render(&AlertsPage {
            c: web.chrome(&s, "alerts"),
            alerts,
        }),
        Err(e) => web.error(&s, &e, "/"),
    }
}

/// A link as listed.
pub struct LinkRow {
    pub peer: String,
    pub role: String,
    pub state: String,
    pub queue_out: u64,
    pub queue_in: u64,
    pub oldest: String,
    pub last_heard: String,
    pub refused: String,
    pub resyncs: u64,
    pub error: String,
    pub dead: bool,
}

#[derive(Template)]
#[template(path = "links.html")]
struct LinksPage {
    c: Chrome,
    links: Vec<LinkRow>,
}

async fn links(State(web): State<Web>, s: Signed) -> Response {
    use crate::federation::links::{Role as LinkRole, State as LinkState};
    let lang = s.lang;
    let views = match web.off(&s, |w, s| w.app.links(who(s))).await {
        Ok(v) => v,
        Err(e) => return web.error(&s, &e, "/"),
    };
    let links = views
        .iter()
        .map(|l| LinkRow {
            peer: l.peer.to_string(),
            role: match l.role {
                LinkRole::Parent => lang.t("上级", "parent"),
                LinkRole::Child => lang.t("下级", "child"),
            }
            .into(),
            state: match l.state {
                LinkState::Connected => lang.t("正常", "connected"),
                LinkState::BackingOff => lang.t("中断重试中", "backing off"),
                LinkState::NeverConnected => lang.t("从未连通", "never connected"),
                LinkState::Blocked => lang.t("被拒绝", "blocked"),
            }
            .into(),
            queue_out: l.queue_out,
            queue_in: l.queue_in,
            oldest: super::view::when_opt(l.oldest_undelivered),
            last_heard: super::view::when_opt(l.last_heard),
            refused: format!("{}/{}", l.refused_in, l.refused_out),
            resyncs: l.resyncs,
            error: l.last_error.clone(),
            dead: l.silent
                || matches!(
                    l.state,
                    LinkState::BackingOff | LinkState::NeverConnected | LinkState::Blocked
                ),
        })
        .collect();
    render(&LinksPage {
        c: web.chrome(&s, "links"),
        links,
    })
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ReportsPage {
    c: Chrome,
    files: Vec<(String, u64)>,
}

async fn reports(State(web): State<Web>, s: Signed) -> Response {
    match web.off(&s, |w, s| w.app.report_files(who(s))).await {
        Ok(files) => render(&ReportsPage {
            c: web.chrome(&s, "reports"),
            files,
        }),
        Err(e) => web.error(&s, &e, "/"),
    }
}

async fn report_file(State(web): State<Web>, s: Signed, Path(name): Path<String>) -> Response {
    match web.app.report_file(who(&s), &name).await {
        Ok(bytes) => {
            let kind = if name.ends_with(".csv") {
                "text/csv; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            };
            (
                [
                    (header::CONTENT_TYPE, kind.to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => web.error(&s, &e, "/reports"),
    }
}

// ---------------------------------------------------------------------------------------
// 统计

#[derive(serde::Deserialize, Default, Clone)]
struct StatsQuery {
    #[serde(default)]
    scope: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    group: String,
}

/// A bar of a chart.
pub struct Bar {
    pub label: String,
    pub value: String,
    pub y: u32,
    pub width: u32,
}

/// A row of a chart's table; `link` drills down (a child).
pub struct TableRow {
    pub cells: Vec<String>,
    pub link: String,
}

pub struct Chart {
    pub key: &'static str,
    pub title: String,
    pub height: u32,
    pub bars: Vec<Bar>,
    pub header: Vec<String>,
    pub rows: Vec<TableRow>,
}

#[derive(Template)]
#[template(path = "stats.html")]
struct StatsPage {
    c: Chrome,
    scope: String,
    parent_scope: String,
    from: String,
    to: String,
    error: String,
    kpis: Vec<(String, String)>,
    charts: Vec<Chart>,
}

/// "2026-03" → the first millisecond of that month (China time).
fn month_start(field: &'static str, s: &str) -> Result<Option<Timestamp>, DomainError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    parse_china_date(&format!("{s}-01"))
        .map(|(y, m, _)| Some(china_midnight(y, m, 1)))
        .ok_or_else(|| DomainError::invalid(field, "a month like 2026-03"))
}

/// The month after `YYYYMM`'s start.
fn next_month(t: Timestamp) -> Timestamp {
    let m = china_month(t);
    let (y, m) = (i64::from(m / 100), m % 100);
    if m == 12 {
        china_midnight(y + 1, 1, 1)
    } else {
        china_midnight(y, m + 1, 1)
    }
}

fn overdue(f: &Figures) -> u64 {
    f.overdue_review + f.overdue_resolve + f.overdue_follow_up
}

fn satisfaction(f: &Figures) -> String {
    if f.satisfaction_count == 0 {
        "-".into()
    } else {
        format!(
            "{:.1}",
            f.satisfaction_total as f64 / f.satisfaction_count as f64
        )
    }
}

fn cell_label(lang: Lang, cell: &Cell) -> String {
    let v = cell.value;
    match cell.dim {
        Dim::Category => Category::from_code(v).map(|x| lang.t(x.label_zh(), x.label_en())),
        Dim::Channel => Channel::from_code(v).map(|x| lang.t(x.label_zh(), x.label_en())),
        Dim::Risk => RiskLevel::from_code(v).map(|x| lang.t(x.label_zh(), x.label_en())),
        Dim::MediationType => {
            MediationType::from_code(v).map(|x| lang.t(x.label_zh(), x.label_en()))
        }
    }
    .unwrap_or(lang.t("未记录", "none"))
    .to_owned()
}

/// The groups the console shows, with their keys.
const GROUPS: [(&str, GroupBy); 5] = [
    ("month", GroupBy::Month),
    ("category", GroupBy::Dim(Dim::Category)),
    ("channel", GroupBy::Dim(Dim::Channel)),
    ("risk", GroupBy::Dim(Dim::Risk)),
    ("child", GroupBy::Child),
];

struct StatsData {
    scope: String,
    parent_scope: String,
    from: String,
    to: String,
    kpis: Vec<(String, String)>,
    charts: Vec<Chart>,
}

fn stats_data(web: &Web, s: &Signed, q: &StatsQuery) -> Result<StatsData, Error> {
    let lang = s.lang;
    let now = web.app.now();
    let me = web.app.state.code.clone();
    let scope = if q.scope.trim().is_empty() || q.scope == me.as_str() {
        None
    } else {
        Some(
            crate::code::NodeCode::parse(q.scope.trim())
                .map_err(|e| DomainError::invalid("scope", e.to_string()))?,
        )
    };
    // Default period: this year up to this month.
    let this_month = china_month(now);
    let default_from = format!("{:04}-01", this_month / 100);
    let default_to = format!("{:04}-{:02}", this_month / 100, this_month % 100);
    let from_s = if q.from.trim().is_empty() {
        default_from
    } else {
        q.from.trim().to_owned()
    };
    let to_s = if q.to.trim().is_empty() {
        default_to
    } else {
        q.to.trim().to_owned()
    };
    let from = month_start("from", &from_s)?;
    let to = month_start("to", &to_s)?.map(next_month);
    let period = Period::new(from, to)?;
    let groups: Vec<GroupBy> = GROUPS.iter().map(|(_, g)| *g).collect();
    let answer = web.app.aggregates(who(s), scope.clone(), period, &groups)?;
    let t = answer.totals;
    let village_share = {
        let resolved: u64 = t.resolved_by_tier().iter().map(|(_, n)| n).sum();
        if resolved == 0 {
            "-".to_owned()
        } else {
            format!(
                "{:.0}%",
                t.resolved_village as f64 * 100.0 / resolved as f64
            )
        }
    };
    let kpis = vec![
        (
            lang.t("收案", "Received").to_owned(),
            t.received.to_string(),
        ),
        (
            lang.t("受理", "Accepted").to_owned(),
            t.accepted.to_string(),
        ),
        (
            lang.t("化解成功", "Resolved").to_owned(),
            t.resolved.to_string(),
        ),
        (lang.t("办结", "Closed").to_owned(), t.closed.to_string()),
        (lang.t("在办", "Open").to_owned(), t.open.to_string()),
        (
            lang.t("逾期", "Overdue").to_owned(),
            overdue(&t).to_string(),
        ),
        (
            lang.t("满意度", "Satisfaction").to_owned(),
            satisfaction(&t),
        ),
        (
            lang.t("村级化解占比（小事不出村）", "Resolved at village level")
                .to_owned(),
            village_share,
        ),
    ];
    let header: Vec<String> = [
        ("", ""),
        ("收案", "Received"),
        ("受理", "Accepted"),
        ("化解成功", "Resolved"),
        ("调解不成", "Unresolved"),
        ("办结", "Closed"),
        ("在办", "Open"),
        ("逾期", "Overdue"),
        ("满意度", "Satisfaction"),
    ]
    .iter()
    .map(|(zh, en)| lang.t(zh, en).to_owned())
    .collect();
    let scope_code = answer.scope.to_string();
    let mut charts = Vec::new();
    for (group, (key, _)) in answer.groups.iter().zip(GROUPS.iter()) {
        let title = match *key {
            "month" => lang.t("月度趋势（收案）", "By month (received)"),
            "category" => lang.t("按类别（收案）", "By category (received)"),
            "channel" => lang.t("按受理渠道（收案）", "By channel (received)"),
            "risk" => lang.t("按风险等级（收案）", "By risk (received)"),
            _ => lang.t(
                "按下级单位（收案，点击下钻）",
                "By unit below (received; click to drill down)",
            ),
        };
        let mut rows = Vec::new();
        let mut values = Vec::new();
        for (row_key, f) in &group.rows {
            let (label, link) = match row_key {
                RowKey::Month(b) => (format!("{:04}-{:02}", b / 100, b % 100), String::new()),
                RowKey::Cell(cell) => (cell_label(lang, cell), String::new()),
                RowKey::Node(code) if code.as_str() == scope_code => (
                    format!("{code} {}", lang.t("（本级）", "(own)")),
                    String::new(),
                ),
                RowKey::Node(code) => (
                    code.to_string(),
                    format!("/stats?scope={code}&from={from_s}&to={to_s}"),
                ),
            };
            values.push((label.clone(), f.received));
            rows.push(TableRow {
                cells: vec![
                    label,
                    f.received.to_string(),
                    f.accepted.to_string(),
                    f.resolved.to_string(),
                    f.unresolved.to_string(),
                    f.closed.to_string(),
                    f.open.to_string(),
                    overdue(f).to_string(),
                    satisfaction(f),
                ],
                link,
            });
        }
        if *key == "child" && rows.is_empty() {
            continue;
        }
        charts.push(chart(key, title.to_owned(), values, header.clone(), rows));
    }
    // Resolved by the tier of the node that holds them: 小事不出村, 大事不出镇.
    let tiers: Vec<(String, u64)> = t
        .resolved_by_tier()
        .iter()
        .filter(|(tier, _)| *tier >= me.tier())
        .map(|(tier, n)| (lang.t(tier.label_zh(), tier.label_en()).to_owned(), *n))
        .collect();
    let tier_rows = tiers
        .iter()
        .map(|(label, n)| TableRow {
            cells: vec![label.clone(), n.to_string()],
            link: String::new(),
        })
        .collect();
    charts.push(chart(
        "tier",
        lang.t("各层级化解（化解成功）", "Resolved by tier")
            .to_owned(),
        tiers,
        vec![
            lang.t("层级", "Tier").to_owned(),
            lang.t("化解成功", "Resolved").to_owned(),
        ],
        tier_rows,
    ));
    let parent_scope = scope
        .as_ref()
        .and_then(|c| c.parent())
        .filter(|p| p.as_str().len() >= me.as_str().len())
        .map_or(String::new(), |p| p.to_string());
    Ok(StatsData {
        scope: scope_code,
        parent_scope,
        from: from_s,
        to: to_s,
        kpis,
        charts,
    })
}

fn chart(
    key: &'static str,
    title: String,
    values: Vec<(String, u64)>,
    header: Vec<String>,
    rows: Vec<TableRow>,
) -> Chart {
    let max = values.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let bars: Vec<Bar> = values
        .into_iter()
        .enumerate()
        .map(|(i, (label, v))| Bar {
            label,
            value: v.to_string(),
            y: 4 + 24 * i as u32,
            width: (v.saturating_mul(400) / max) as u32,
        })
        .collect();
    Chart {
        key,
        title,
        height: 8 + 24 * bars.len().max(1) as u32,
        bars,
        header,
        rows,
    }
}

async fn stats(State(web): State<Web>, s: Signed, Query(q): Query<StatsQuery>) -> Response {
    let query = q.clone();
    match web.off(&s, move |w, s| stats_data(w, s, &query)).await {
        Ok(d) => render(&StatsPage {
            c: web.chrome(&s, "stats"),
            scope: d.scope,
            parent_scope: d.parent_scope,
            from: d.from,
            to: d.to,
            error: String::new(),
            kpis: d.kpis,
            charts: d.charts,
        }),
        Err(e) => {
            let status = status_of(&e);
            let page = StatsPage {
                c: web.chrome(&s, "stats"),
                scope: q.scope.clone(),
                parent_scope: String::new(),
                from: q.from.clone(),
                to: q.to.clone(),
                error: explain(s.lang, &e),
                kpis: Vec::new(),
                charts: Vec::new(),
            };
            (status, render(&page)).into_response()
        }
    }
}

async fn stats_csv(State(web): State<Web>, s: Signed, Query(q): Query<StatsQuery>) -> Response {
    let query = q.clone();
    let d = match web.off(&s, move |w, s| stats_data(w, s, &query)).await {
        Ok(d) => d,
        Err(e) => return web.error(&s, &e, "/stats"),
    };
    let Some(chart) = d.charts.iter().find(|c| c.key == q.group) else {
        return web.error(
            &s,
            &DomainError::invalid("group", "one of the page's charts").into(),
            "/stats",
        );
    };
    let mut body = String::from("\u{feff}");
    body.push_str(&ledger::csv_line(&[format!(
        "{} {} {}–{}",
        chart.title, d.scope, d.from, d.to
    )]));
    body.push_str(&ledger::csv_line(&chart.header));
    for row in &chart.rows {
        body.push_str(&ledger::csv_line(&row.cells));
    }
    csv_response(&format!("stats-{}-{}.csv", d.scope, chart.key), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_end_at_the_end_of_the_day() {
        let t = end_of_day("due", "2026-12-31").unwrap().unwrap();
        assert_eq!(when(t), "2026-12-31 23:59");
        assert!(end_of_day("due", "").unwrap().is_none());
        assert!(end_of_day("due", "2026-02-30").is_err());
        assert_eq!(
            month_start("from", "2026-03").unwrap().map(when).unwrap(),
            "2026-03-01 00:00"
        );
    }

    #[test]
    fn api_fields_read_as_form_labels() {
        assert_eq!(
            field_label(Lang::Zh, "parties[1].id_number"),
            "第2位当事人的身份证号"
        );
        assert_eq!(field_label(Lang::Zh, "summary"), "摘要");
    }
}
