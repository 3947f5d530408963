//! Posted forms: the fields as sent (a key may repeat), read by name.

use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};

use crate::domain::DomainError;

/// The fields of an `application/x-www-form-urlencoded` body, in order.
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name` ("" if absent).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed.
    pub fn text(&self, name: &str) -> String {
        self.get(name).trim().to_owned()
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// An amount in yuan ("4400", "4,400.50") as fen; empty is 0.
    pub fn yuan(&self, name: &'static str) -> Result<i64, DomainError> {
        parse_yuan(name, self.get(name))
    }
}

/// "4,400.50" (yuan) → 440050 (fen); at most two decimals; empty is 0.
pub fn parse_yuan(field: &'static str, s: &str) -> Result<i64, DomainError> {
    let s: String = s
        .trim()
        .chars()
        .filter(|c| *c != ',' && *c != '，')
        .collect();
    if s.is_empty() {
        return Ok(0);
    }
    let bad = || DomainError::invalid(field, "an amount in yuan, like 4400 or 4400.50");
    let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
    if whole.is_empty()
        || whole.len() > 12
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let yuan: i64 = whole.parse().map_err(|_| bad())?;
    let cents: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    yuan.checked_mul(100)
        .and_then(|f| f.checked_add(cents))
        .ok_or_else(bad)
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Form(fields) = axum::Form::<Vec<(String, String)>>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Fields(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_become_fen() {
        assert_eq!(parse_yuan("a", "4400").unwrap(), 440_000);
        assert_eq!(parse_yuan("a", "4,400.5").unwrap(), 440_050);
        assert_eq!(parse_yuan("a", " 0.07 ").unwrap(), 7);
        assert_eq!(parse_yuan("a", "").unwrap(), 0);
        for bad in ["-1", "1.234", "abc", ".5", "1e5", "9999999999999"] {
            assert!(parse_yuan("a", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repeated_fields_are_kept() {
        let f = Fields(vec![
            ("name".into(), "张三".into()),
            ("name".into(), "李四".into()),
        ]);
        assert_eq!(f.get("name"), "张三");
        assert_eq!(f.all("name"), ["张三", "李四"]);
        assert_eq!(f.get("none"), "");
    }
}
