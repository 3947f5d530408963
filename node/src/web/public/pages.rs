//! The citizens' pages: 申请调解 (the application form and its receipt), 查询进度 (lookup
//! with the case id and code, the progress and the rating form), and the mobile stylesheet.
//! Chinese only; no script.

use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::super::forms::{Fields, parse_yuan};
use super::super::session::{cookie, same, set_cookie};
use super::Public;
use super::captcha::Challenge;
use crate::app::public::{self, Application, Progress, Rating, Submitter};
use crate::domain::calendar::china_datetime;
use crate::domain::{Category, DomainError};
use crate::error::Error;

/// The anti-forgery cookie of the public forms (double submit: no session here).
pub const CSRF_COOKIE: &str = "fq_pcsrf";

const CSS: &str = include_str!("../../../static/public.css");

pub fn routes() -> Router<Public> {
    Router::new()
        .route("/", get(home))
        .route("/apply", get(apply_page).post(apply))
        .route("/query", get(query_page).post(query))
        .route("/rate", axum::routing::post(rate))
        .route("/static/public.css", get(css))
        .fallback(not_found_page)
}

fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a public page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "page rendering failed").into_response()
        }
    }
}

impl Public {
    fn agency(&self) -> String {
        self.app.center_name()
    }
}

/// The anti-forgery token of this browser: the cookie's, or a new one to set.
fn csrf_token(headers: &HeaderMap) -> (String, Option<String>) {
    match cookie(headers, CSRF_COOKIE) {
        Some(t) if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (t.to_owned(), None)
        }
        _ => {
            let t = crate::app::console::random_token();
            let set = set_cookie(CSRF_COOKIE, &t, Some(12 * 3600));
            (t, Some(set))
        }
    }
}

fn with_cookie(mut res: Response, set: Option<String>) -> Response {
    if let Some(v) = set.and_then(|v| HeaderValue::from_str(&v).ok()) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[derive(Template)]
#[template(path = "public/message.html")]
struct MessagePage {
    agency: String,
    title: String,
    message: String,
    back: String,
}

fn message(p: &Public, status: StatusCode, title: &str, text: &str, back: &str) -> Response {
    let page = MessagePage {
        agency: p.agency(),
        title: title.into(),
        message: text.into(),
        back: back.into(),
    };
    (status, render(&page)).into_response()
}

/// A post whose anti-forgery token is not this browser's cookie: refused, nothing done.
fn forged(p: &Public, headers: &HeaderMap, fields: &Fields) -> Option<Response> {
    let expected = cookie(headers, CSRF_COOKIE).unwrap_or("");
    if !expected.is_empty() && same(fields.get("csrf"), expected) {
        return None;
    }
    Some(message(
        p,
        StatusCode::FORBIDDEN,
        "页面已过期",
        "页面已过期或来源不明，请返回后重新填写提交。",
        "/",
    ))
}

/// HTTP 429 with Retry-After: too many tries from here or for this case.
fn too_many(p: &Public, wait: Duration, back: &str) -> Response {
    let secs = wait.as_secs().max(1);
    let mut res = message(
        p,
        StatusCode::TOO_MANY_REQUESTS,
        "操作过于频繁",
        &format!("操作过于频繁，请稍后再试（约{secs}秒后）。"),
        back,
    );
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// The HTTP status of an error on these pages.
fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Domain(DomainError::InvalidArgument { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Domain(_) => StatusCode::CONFLICT,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A field of the application form as the citizen knows it.
fn field_label(field: &str) -> &'static str {
    match field {
        "parties[0].name" => "姓名",
        "parties[0].phone" => "电话",
        "parties[0].id_number" => "身份证号",
        "parties[1].name" => "被申请人",
        "parties[1].phone" => "被申请人电话",
        "category" => "类别",
        "summary" => "事项简述",
        "description" => "详细情况",
        "address" => "纠纷地点",
        "amount_fen" | "amount" => "涉及金额",
        "consent" => "个人信息处理告知",
        "captcha" => "验证码",
        "satisfaction" | "stars" => "满意程度",
        "notes" | "comment" => "评价意见",
        _ => "填写内容",
    }
}

/// What went wrong, in words for a citizen.
pub fn explain(e: &Error) -> String {
    match e {
        Error::Domain(DomainError::InvalidArgument { field, message }) => {
            let label = field_label(field);
            let why = if field.ends_with("id_number") {
                "身份证号不正确（应为18位，最后一位校验码须相符），请核对"
            } else if field.ends_with("phone") {
                "请填写11位手机号，或带区号的固定电话"
            } else if *field == "consent" {
                "请阅读并勾选同意个人信息处理告知"
            } else if message.contains("required") || message.contains("empty") {
                "必须填写"
            } else {
                "格式或长度不符合要求，请检查"
            };
            format!("{label}：{why}。")
        }
        Error::Domain(DomainError::IllegalTransition { .. }) => {
            "本案当前不在可评价的阶段（可能已经评价过），请刷新查看最新进度。".into()
        }
        Error::NotFound(_) => "未找到：受理编号或查询码不正确，请核对后再试。".into(),
        Error::Domain(_) => "未能办理，请稍后再试或到中心窗口咨询。".into(),
        _ => "系统暂时无法办理，请稍后再试或到中心窗口咨询。".into(),
    }
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
}

async fn not_found_page(State(p): State<Public>) -> Response {
    message(
        &p,
        StatusCode::NOT_FOUND,
        "页面不存在",
        "您要找的页面不存在。",
        "/",
    )
}

#[derive(Template)]
#[template(path = "public/home.html")]
struct HomePage {
    agency: String,
    review: String,
}

/// "3天", "12小时", "90分钟".
fn span_zh(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86_400 && s % 86_400 == 0 {
        format!("{}天", s / 86_400)
    } else if s >= 3600 && s % 3600 == 0 {
        format!("{}小时", s / 3600)
    } else {
        format!("{}分钟", s.div_ceil(60).max(1))
    }
}

async fn home(State(p): State<Public>) -> Response {
    render(&HomePage {
        agency: p.agency(),
        review: span_zh(p.app.state.deadlines.review),
    })
}

/// The application form's values as typed.
#[derive(Debug, Clone, Default)]
struct Values {
    name: String,
    phone: String,
    id_number: String,
    category: String,
    summary: String,
    description: String,
    address: String,
    amount: String,
    respondent_name: String,
    respondent_phone: String,
    consent: bool,
}

impl Values {
    fn from_fields(f: &Fields) -> Values {
        Values {
            name: f.text("name"),
            phone: f.text("phone"),
            id_number: f.text("id_number"),
            category: f.text("category"),
            summary: f.text("summary"),
            description: f.get("description").trim().to_owned(),
            address: f.text("address"),
            amount: f.text("amount"),
            respondent_name: f.text("respondent_name"),
            respondent_phone: f.text("respondent_phone"),
            consent: f.get("consent") == "yes",
        }
    }

    fn application(&self) -> Result<Application, Error> {
        let category = match self
            .category
            .parse::<u8>()
            .ok()
            .and_then(Category::from_code)
        {
            Some(c) => Some(c),
            None if self.category.is_empty() => {
                return Err(DomainError::invalid("category", "is required").into());
            }
            None => return Err(DomainError::invalid("category", "unknown").into()),
        };
        Ok(Application {
            name: self.name.clone(),
            phone: self.phone.clone(),
            id_number: self.id_number.clone(),
            category,
            summary: self.summary.clone(),
            description: self.description.clone(),
            address: self.address.clone(),
            respondent_name: self.respondent_name.clone(),
            respondent_phone: self.respondent_phone.clone(),
            amount_fen: parse_yuan("amount", &self.amount)?,
            consent: self.consent,
        })
    }
}

struct CategoryChoice {
    value: u8,
    label: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "public/apply.html")]
struct ApplyPage {
    agency: String,
    csrf: String,
    form_id: String,
    v: Values,
    categories: Vec<CategoryChoice>,
    captcha: Option<Challenge>,
    error: String,
}

/// The form with `v` filled in (nothing a citizen typed is lost) and a fresh captcha.
fn apply_form(
    p: &Public,
    csrf: String,
    form_id: String,
    v: Values,
    error: String,
    status: StatusCode,
) -> Response {
    let captcha = if p.cfg.captcha {
        match p.captchas.issue(p.app.now()) {
            Some(c) => Some(c),
            None => {
                return message(
                    p,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "暂时无法申请",
                    "验证码生成失败，请稍后再试。",
                    "/",
                );
            }
        }
    } else {
        None
    };
    let categories = Category::ALL
        .iter()
        .map(|c| CategoryChoice {
            value: c.code(),
            label: c.label_zh(),
            selected: v.category == c.code().to_string(),
        })
        .collect();
    let page = ApplyPage {
        agency: p.agency(),
        csrf,
        form_id,
        v,
        categories,
        captcha,
        error,
    };
    (status, render(&page)).into_response()
}

async fn apply_page(State(p): State<Public>, headers: HeaderMap) -> Response {
    let (csrf, set) = csrf_token(&headers);
    let form_id = crate::app::console::random_token();
    with_cookie(
        apply_form(
            &p,
            csrf,
            form_id,
            Values::default(),
            String::new(),
            StatusCode::OK,
        ),
        set,
    )
}

#[derive(Template)]
#[template(path = "public/receipt.html")]
struct ReceiptPage {
    agency: String,
    case_id: String,
    lookup_code: String,
    created: String,
    review_due: String,
    repeated: bool,
}

async fn apply(
    State(p): State<Public>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    fields: Fields,
) -> Response {
    if let Some(r) = forged(&p, &headers, &fields) {
        return r;
    }
    let csrf = fields.text("csrf");
    let v = Values::from_fields(&fields);
    let form_id = fields.text("form_id");
    let again = |v: Values, error: String, status: StatusCode| {
        apply_form(&p, csrf.clone(), form_id.clone(), v, error, status)
    };
    if form_id.len() != 64 || !form_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return message(
            &p,
            StatusCode::BAD_REQUEST,
            "页面已过期",
            "请重新打开申请页面填写。",
            "/apply",
        );
    }
    if p.cfg.captcha
        && !p
            .captchas
            .check(fields.get("captcha_id"), fields.get("captcha"), p.app.now())
    {
        return again(
            v,
            "验证码：输入不正确或已过期，请看新图片重新输入。".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let application = match v.application() {
        Ok(a) => a,
        Err(e) => return again(v, explain(&e), status_of(&e)),
    };
    // Counted only for a form that could be saved: a citizen correcting a typo is not
    // "frequent".
    if let Err(wait) = p.limits.submission_from(super::client_ip(&ext)) {
        return too_many(&p, wait, "/apply");
    }
    match p
        .app
        .submit_application(&Submitter::Online, &application, &format!("web:{form_id}"))
        .await
    {
        Ok(r) => render(&ReceiptPage {
            agency: p.agency(),
            case_id: r.case_id,
            lookup_code: r.lookup_code,
            created: china_datetime(r.created_at),
            review_due: china_datetime(r.review_due_at),
            repeated: r.repeated,
        }),
        Err(e) => {
            tracing::info!(error = %e, "public application refused");
            again(v, explain(&e), status_of(&e))
        }
    }
}

#[derive(Template)]
#[template(path = "public/query.html")]
struct QueryPage {
    agency: String,
    csrf: String,
    case_id: String,
    error: String,
}

async fn query_page(State(p): State<Public>, headers: HeaderMap) -> Response {
    let (csrf, set) = csrf_token(&headers);
    with_cookie(
        render(&QueryPage {
            agency: p.agency(),
            csrf,
            case_id: String::new(),
            error: String::new(),
        }),
        set,
    )
}

struct TimelineRow {
    at: String,
    title: &'static str,
    text: String,
}

#[derive(Template)]
#[template(path = "public/progress.html")]
struct ProgressPage {
    agency: String,
    csrf: String,
    code: String,
    p: Progress,
    deadline: Option<String>,
    events: Vec<TimelineRow>,
    stars: Vec<(u8, &'static str)>,
    flash: String,
}

fn progress_page(pb: &Public, csrf: String, code: String, p: Progress, flash: &str) -> Response {
    let events = p
        .timeline
        .iter()
        .map(|e| TimelineRow {
            at: china_datetime(e.at),
            title: e.title,
            text: e.text.clone(),
        })
        .collect();
    let deadline = p.deadline.as_ref().map(public::deadline_text);
    render(&ProgressPage {
        agency: pb.agency(),
        csrf,
        code,
        deadline,
        events,
        stars: vec![
            (5, "很满意"),
            (4, "满意"),
            (3, "基本满意"),
            (2, "不满意"),
            (1, "很不满意"),
        ],
        flash: flash.into(),
        p,
    })
}

/// The case id, code and anti-forgery token of a post that names a case (lookup, rating),
/// once its token is checked and the lookup counted against the limits of its address and
/// its case.
fn lookup_post(
    p: &Public,
    headers: &HeaderMap,
    ext: &axum::http::Extensions,
    fields: &Fields,
) -> Result<(String, String, String), Box<Response>> {
    if let Some(r) = forged(p, headers, fields) {
        return Err(Box::new(r));
    }
    let case_id = fields.text("case_id");
    if let Err(wait) = p.limits.lookup(super::client_ip(ext), &case_id) {
        return Err(Box::new(too_many(p, wait, "/query")));
    }
    Ok((case_id, fields.text("code"), fields.text("csrf")))
}

async fn query(
    State(p): State<Public>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    fields: Fields,
) -> Response {
    let (case_id, code, csrf) = match lookup_post(&p, &headers, &ext, &fields) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let (c, k) = (case_id.clone(), code.clone());
    match p.app.read(move |app| app.track(&c, &k)).await {
        Ok(progress) => progress_page(&p, csrf, code, progress, ""),
        Err(e) => {
            let page = QueryPage {
                agency: p.agency(),
                csrf,
                case_id,
                error: explain(&e),
            };
            (status_of(&e), render(&page)).into_response()
        }
    }
}

async fn rate(
    State(p): State<Public>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    fields: Fields,
) -> Response {
    let (case_id, code, csrf) = match lookup_post(&p, &headers, &ext, &fields) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let rating = Rating {
        stars: fields.get("stars").trim().parse().unwrap_or(0),
        comment: fields.get("comment").to_owned(),
    };
    match p.app.rate(&case_id, &code, &rating).await {
        Ok(progress) => {
            let flash = if public::rating_closes(rating.stars) {
                "感谢您的评价，本案已办结。"
            } else {
                "感谢您的评价。您对结果不满意，本案已重新办理，请留意办理进度。"
            };
            progress_page(&p, csrf, code, progress, flash)
        }
        Err(e) => message(&p, status_of(&e), "未能评价", &explain(&e), "/query"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_in_chinese() {
        assert_eq!(span_zh(Duration::from_secs(3 * 86_400)), "3天");
        assert_eq!(span_zh(Duration::from_secs(12 * 3600)), "12小时");
        assert_eq!(span_zh(Duration::from_secs(90)), "2分钟");
    }

    #[test]
    fn errors_name_the_field_in_chinese() {
        let e: Error = DomainError::invalid("parties[0].id_number", "check character").into();
        assert!(explain(&e).starts_with("身份证号："), "{}", explain(&e));
        let e: Error = DomainError::invalid("parties[0].phone", "not a mobile").into();
        assert!(explain(&e).contains("11位手机号"));
        assert!(explain(&Error::NotFound(String::new())).contains("查询码不正确"));
    }
}
