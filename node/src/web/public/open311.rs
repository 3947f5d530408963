//! Open311 GeoReport v2 (JSON) under `/open311/v2/`, for systems that submit and follow
//! citizens' disputes: the 12348 hotline's system, a mini-program's backend, a court's
//! referral system.
//!
//! * `GET services.json`: one service per dispute category (`service_code` as
//!   [`service_code`]); `GET services/{code}.json`: the attributes a request may carry.
//! * `POST requests.json` (form-encoded): `api_key` (required: `fqctl apikey add`),
//!   `service_code`, `description`, `phone`; `last_name` (姓) and `first_name` (名),
//!   `address_string`, and `attribute[id_number]`, `attribute[summary]`,
//!   `attribute[respondent_name]`, `attribute[respondent_phone]`, `attribute[amount]` (yuan).
//!   Location (`lat`/`long`), `email`, `device_id`, `account_id` and `media_url` are not
//!   kept. The same request sent again names the same case. Answers
//!   `[{"service_request_id": ..., "service_notice": ...}]`.
//! * `GET requests/{id}.json` and `GET requests.json?service_request_id=a,b`: the requests
//!   named (at most [`MAX_IDS`] per call). The `service_request_id` is `CASEID.CODE`: the case
//!   id and its lookup code, which is what holding it proves, so `requests.json` without ids
//!   lists nothing. A wrong id answers as an unknown one.
//!
//! Errors are GeoReport's: a JSON list of `{"code", "description"}` with the HTTP status
//! (400 bad request, 403 no valid key, 404 not found, 429 too many, with Retry-After). Only
//! JSON is served (`.xml` is 400).

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::super::forms::{Fields, parse_yuan};
use super::Public;
use crate::app::apikeys::KeyRefused;
use crate::app::public::{Application, Progress, Submitter};
use crate::domain::{Category, DomainError, Timestamp};
use crate::error::Error;

/// Most ids one `requests.json` may name.
pub const MAX_IDS: usize = 20;

pub fn routes() -> Router<Public> {
    Router::new()
        .route("/open311/v2/services.json", get(services))
        .route("/open311/v2/services/{file}", get(service))
        .route("/open311/v2/requests.json", get(requests).post(submit))
        .route("/open311/v2/requests/{file}", get(request))
}

/// The stable `service_code` of a category.
pub fn service_code(c: Category) -> &'static str {
    match c {
        Category::Labor => "labor",
        Category::PropertyManagement => "property_management",
        Category::LandContract => "land_contract",
        Category::MarriageFamily => "marriage_family",
        Category::Neighbor => "neighbor",
        Category::Medical => "medical",
        Category::Traffic => "traffic",
        Category::Finance => "finance",
        Category::ConstructionDemolition => "construction_demolition",
        Category::Lease => "lease",
        Category::Consumer => "consumer",
        Category::Other => "other",
    }
}

fn category_of(code: &str) -> Option<Category> {
    Category::ALL
        .iter()
        .copied()
        .find(|c| service_code(*c) == code)
}

fn json_answer(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        v.to_string(),
    )
        .into_response()
}

/// A GeoReport error list.
fn error(status: StatusCode, description: &str) -> Response {
    json_answer(
        status,
        json!([{"code": status.as_u16(), "description": description}]),
    )
}

fn too_many(wait: Duration) -> Response {
    let mut res = error(
        StatusCode::TOO_MANY_REQUESTS,
        "请求过于频繁，请稍后再试 (too many requests: retry later)",
    );
    if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// RFC 3339 in China's time (+08:00).
fn datetime(t: Timestamp) -> String {
    use time::{OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};
    let offset = UtcOffset::from_hms(8, 0, 0).unwrap_or(UtcOffset::UTC);
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0) * 1_000_000)
        .map(|d| d.to_offset(offset))
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The answer to a file of another format than JSON.
fn not_json() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "only JSON is served: ask for .json",
    )
}

fn service_json(c: Category) -> Value {
    json!({
        "service_code": service_code(c),
        "service_name": c.label_zh(),
        "description": format!("{}调解申请（{}）", c.label_zh(), c.label_en()),
        "metadata": true,
        "type": "realtime",
        "keywords": c.label_en(),
        "group": "矛盾纠纷调解",
    })
}

async fn services() -> Response {
    let all: Vec<Value> = Category::ALL.iter().map(|c| service_json(*c)).collect();
    json_answer(StatusCode::OK, Value::Array(all))
}

async fn service(Path(file): Path<String>) -> Response {
    let Some(code) = file.strip_suffix(".json") else {
        return not_json();
    };
    let Some(c) = category_of(code) else {
        return error(StatusCode::NOT_FOUND, "no such service_code");
    };
    let attr = |code: &str, datatype: &str, order: u32, description: &str| {
        json!({
            "variable": true,
            "code": code,
            "datatype": datatype,
            "required": false,
            "datatype_description": "",
            "order": order,
            "description": description,
        })
    };
    json_answer(
        StatusCode::OK,
        json!({
            "service_code": service_code(c),
            "attributes": [
                attr("summary", "string", 1, "事项简述（一行，至多200字；不填则取描述的第一行）"),
                attr("id_number", "string", 2, "申请人身份证号（18位，校验码须相符）"),
                attr("respondent_name", "string", 3, "被申请人姓名或单位"),
                attr("respondent_phone", "string", 4, "被申请人电话"),
                attr("amount", "number", 5, "涉及金额（元）"),
            ],
        }),
    )
}

/// The id a request is known by: the case id and its lookup code.
fn request_id(case_id: &str, code: &str) -> String {
    format!("{case_id}.{}", code.replace('-', ""))
}

fn request_json(p: &Progress, id: &str) -> Value {
    let notes = if p.note.is_empty() {
        p.status_text.to_owned()
    } else {
        format!("{}。{}", p.status_text, p.note)
    };
    json!({
        "service_request_id": id,
        "status": if p.open { "open" } else { "closed" },
        "status_notes": notes,
        "service_name": p.category.label_zh(),
        "service_code": service_code(p.category),
        "description": p.summary,
        "agency_responsible": p.agency,
        "service_notice": "",
        "requested_datetime": datetime(p.created_at),
        "updated_datetime": datetime(p.updated_at),
        "expected_datetime": p.deadline.map(|d| datetime(d.due_at)),
        "address": "",
        "address_id": "",
        "zipcode": "",
        "media_url": "",
    })
}

/// The request `id` names, if its code is right.
async fn lookup(pb: &Public, id: &str) -> Result<Option<Value>, Error> {
    let Some((case_id, code)) = id.trim().split_once('.') else {
        return Ok(None);
    };
    // Off the async workers: the store's reads may wait for the disk.
    let (c, k) = (case_id.to_owned(), code.to_owned());
    match pb.app.read(move |app| app.track(&c, &k)).await {
        Ok(p) => Ok(Some(request_json(&p, &request_id(&p.case_id, code)))),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn request(
    State(pb): State<Public>,
    ext: axum::http::Extensions,
    Path(file): Path<String>,
) -> Response {
    let Some(id) = file.strip_suffix(".json") else {
        return not_json();
    };
    let case_id = id.split('.').next().unwrap_or_default();
    if let Err(wait) = pb.limits.lookup(super::client_ip(&ext), case_id) {
        return too_many(wait);
    }
    match lookup(&pb, id).await {
        Ok(Some(v)) => json_answer(StatusCode::OK, json!([v])),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such service_request_id"),
        Err(e) => failure(&e),
    }
}

#[derive(serde::Deserialize)]
struct ListQuery {
    #[serde(default)]
    service_request_id: String,
}

async fn requests(
    State(pb): State<Public>,
    ext: axum::http::Extensions,
    Query(q): Query<ListQuery>,
) -> Response {
    let ids: Vec<&str> = q
        .service_request_id
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    // Private disputes are never listed: without ids, nothing.
    if ids.is_empty() {
        return json_answer(StatusCode::OK, json!([]));
    }
    if ids.len() > MAX_IDS {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("at most {MAX_IDS} service_request_id per call"),
        );
    }
    if let Err(wait) = pb.limits.lookup_from(super::client_ip(&ext)) {
        return too_many(wait);
    }
    let mut out = Vec::new();
    for id in ids {
        if let Err(wait) = pb
            .limits
            .lookup_of(id.split('.').next().unwrap_or_default())
        {
            return too_many(wait);
        }
        match lookup(&pb, id).await {
            Ok(Some(v)) => out.push(v),
            Ok(None) => {}
            Err(e) => return failure(&e),
        }
    }
    json_answer(StatusCode::OK, Value::Array(out))
}

fn failure(e: &Error) -> Response {
    match e {
        Error::Domain(DomainError::InvalidArgument { .. }) => {
            error(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Error::NotFound(_) => error(StatusCode::NOT_FOUND, "no such service_request_id"),
        Error::Domain(_) => error(StatusCode::CONFLICT, &e.to_string()),
        _ => {
            tracing::warn!(error = %e, "Open311 request failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node cannot answer now",
            )
        }
    }
}

/// The idempotency name of a submission: its key and a hash of every field it sent.
fn submission_hash(key: &str, fields: &Fields) -> String {
    let mut sorted: Vec<&(String, String)> =
        fields.0.iter().filter(|(k, _)| k != "api_key").collect();
    sorted.sort();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(key.as_bytes());
    for (k, v) in sorted {
        for part in [k.as_bytes(), b"\0", v.as_bytes(), b"\0"] {
            ctx.update(part);
        }
    }
    let digest = ctx.finish();
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("open311:{key}:{hex}")
}

fn application(fields: &Fields) -> Result<Application, Error> {
    let code = fields.text("service_code");
    let category = category_of(&code)
        .ok_or_else(|| DomainError::invalid("service_code", "unknown: see services.json"))?;
    let description = fields.get("description").trim().to_owned();
    if description.is_empty() {
        return Err(DomainError::invalid("description", "is required").into());
    }
    let summary = match fields.text("attribute[summary]") {
        s if !s.is_empty() => s,
        _ => description
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(crate::domain::validate::SUMMARY_MAX_CHARS)
            .collect(),
    };
    let name = format!("{}{}", fields.text("last_name"), fields.text("first_name"));
    Ok(Application {
        name,
        phone: fields.text("phone"),
        id_number: fields.text("attribute[id_number]"),
        category: Some(category),
        summary,
        description,
        address: fields.text("address_string"),
        respondent_name: fields.text("attribute[respondent_name]"),
        respondent_phone: fields.text("attribute[respondent_phone]"),
        amount_fen: parse_yuan("amount", fields.get("attribute[amount]"))?,
        consent: true,
    })
}

async fn submit(State(pb): State<Public>, fields: Fields) -> Response {
    let key = match pb.app.check_api_key(fields.get("api_key")) {
        Ok(Ok(k)) => k,
        Ok(Err(why)) => {
            if why != KeyRefused::Malformed {
                tracing::warn!(?why, "Open311 submission with a refused key");
            }
            return error(StatusCode::FORBIDDEN, "a valid api_key is required");
        }
        Err(e) => return failure(&e),
    };
    if let Err(wait) = pb.limits.submission_with(&key.name) {
        return too_many(wait);
    }
    let form = match application(&fields) {
        Ok(f) => f,
        Err(e) => return failure(&e),
    };
    let idem = submission_hash(&key.name, &fields);
    match pb
        .app
        .submit_application(&Submitter::Key(key), &form, &idem)
        .await
    {
        Ok(r) => json_answer(
            StatusCode::OK,
            json!([{
                "service_request_id": request_id(&r.case_id, &r.lookup_code),
                "service_notice": format!(
                    "已登记，受理编号{}，查询码{}；{}前答复是否受理",
                    r.case_id,
                    r.lookup_code,
                    crate::domain::calendar::china_datetime(r.review_due_at)
                ),
                "account_id": null,
            }]),
        ),
        Err(e) => failure(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_name_each_category_once() {
        let mut seen = std::collections::BTreeSet::new();
        for c in Category::ALL {
            assert!(seen.insert(service_code(*c)));
            assert_eq!(category_of(service_code(*c)), Some(*c));
        }
        assert_eq!(category_of("labour"), None);
    }

    #[test]
    fn the_same_request_has_the_same_name_and_another_another() {
        let f = |v: &str| {
            Fields(vec![
                ("api_key".into(), v.into()),
                ("description".into(), "欠薪".into()),
                ("phone".into(), "13800138000".into()),
            ])
        };
        assert_eq!(submission_hash("k", &f("a")), submission_hash("k", &f("b")));
        assert_ne!(submission_hash("k", &f("a")), submission_hash("j", &f("a")));
        let mut other = f("a");
        other.0.push(("address_string".into(), "x".into()));
        assert_ne!(submission_hash("k", &f("a")), submission_hash("k", &other));
        assert!(submission_hash("k", &f("a")).len() <= 128);
    }

    #[test]
    fn times_are_china_time() {
        assert_eq!(datetime(Timestamp(0)), "1970-01-01T08:00:00+08:00");
    }
}
