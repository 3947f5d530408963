//! Cookies, the signed-in caller of a request, and the anti-forgery check of every post.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::Web;
use super::forms::Fields;
use crate::app::console::Caller;
use crate::text::Lang;

/// The session cookie.
pub const SESSION_COOKIE: &str = "fq_session";
/// The anti-forgery cookie of the sign-in form (before there is a session).
pub const PRE_COOKIE: &str = "fq_pre";
/// The language cookie ("en" for English; Chinese otherwise).
pub const LANG_COOKIE: &str = "fq_lang";

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, Secure, SameSite=Strict, for the whole console; `max_age`
/// in seconds (`None`: until the browser closes; `Some(0)`: removes it).
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> String {
    let age = max_age.map_or(String::new(), |s| format!("; Max-Age={s}"));
    format!("{name}={value}; Path=/; HttpOnly; Secure; SameSite=Strict{age}")
}

/// The language of the request (the `fq_lang` cookie).
pub fn lang(headers: &HeaderMap) -> Lang {
    match cookie(headers, LANG_COOKIE) {
        Some("en") => Lang::En,
        _ => Lang::Zh,
    }
}

/// The signed-in person of a request. A request without a live session is sent to the
/// sign-in page; one whose password must change, to the password page.
#[derive(Clone)]
pub struct Signed {
    pub caller: Caller,
    pub lang: Lang,
}

impl FromRequestParts<Web> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        let lang = lang(&parts.headers);
        let token = cookie(&parts.headers, SESSION_COOKIE).unwrap_or("");
        let caller = match web.app.session(token).await {
            Ok(Some(caller)) => caller,
            Ok(None) => return Err(Redirect::to("/login").into_response()),
            Err(e) => return Err(super::pages::failure(lang, &e)),
        };
        let path = parts.uri.path();
        if caller.session.must_change && path != "/password" && path != "/logout" {
            return Err(Redirect::to("/password").into_response());
        }
        if caller.session.must_enroll
            && !caller.session.must_change
            && path != "/totp"
            && path != "/logout"
        {
            return Err(Redirect::to("/totp").into_response());
        }
        Ok(Signed { caller, lang })
    }
}

/// The refusal of a post whose `csrf` field is not the session's token (403, nothing done),
/// or `None` for a post that carries it.
pub fn forged(signed: &Signed, fields: &Fields) -> Option<Response> {
    if same(fields.get("csrf"), &signed.caller.session.csrf) {
        None
    } else {
        tracing::warn!(caller = %signed.caller.who.uri(), "console post without its anti-forgery token refused");
        Some(forbidden(signed.lang))
    }
}

/// The answer to a forged or stale form.
pub fn forbidden(lang: Lang) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        lang.t(
            "表单已失效或来源不明，未做任何更改。请返回页面刷新后重试。",
            "The form has expired or did not come from this console; nothing was changed. Go back, reload and try again.",
        )
        .to_owned(),
    )
        .into_response()
}

/// Constant-time comparison of two tokens.
pub fn same(a: &str, b: &str) -> bool {
    !a.is_empty()
        && a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; fq_session=abc; fq_lang=en".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(lang(&h), Lang::En);
        assert_eq!(cookie(&h, "none"), None);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("", ""));
        assert!(!same("ab", "abc"));
        assert!(set_cookie("x", "y", None).contains("HttpOnly; Secure; SameSite=Strict"));
    }
}
