//! The image captcha of the application form (`public.captcha`): the node draws a few
//! characters (the `captcha` crate, PNG) and keeps the answer in memory under a random id
//! that the form carries; an answer is checked once, whatever it is, and expires after
//! [`TTL`]. At most [`MAX_PENDING`] are kept: when full, the expired ones go first, then the
//! oldest.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::Timestamp;

/// How long a captcha may be answered.
pub const TTL_MS: i64 = 10 * 60 * 1000;
/// Captchas waiting for an answer, at most.
pub const MAX_PENDING: usize = 20_000;

/// A captcha to show: its id (hidden in the form) and the PNG, base64 (an `img` data URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub id: String,
    pub png_base64: String,
}

#[derive(Default)]
pub struct Captchas {
    pending: Mutex<HashMap<String, (String, Timestamp)>>,
}

impl Captchas {
    /// A new captcha, answerable until `now` + [`TTL_MS`]; `None` if the image cannot be drawn.
    pub fn issue(&self, now: Timestamp) -> Option<Challenge> {
        let mut c = captcha::Captcha::new();
        c.add_chars(5)
            .apply_filter(captcha::filters::Noise::new(0.2))
            .apply_filter(captcha::filters::Wave::new(2.0, 12.0))
            .view(200, 70);
        let answer = c.chars_as_string();
        let png_base64 = c.as_base64()?;
        let id = crate::app::console::random_token();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() >= MAX_PENDING {
            pending.retain(|_, (_, at)| now.0 - at.0 <= TTL_MS);
            while pending.len() >= MAX_PENDING {
                let Some(oldest) = pending
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                pending.remove(&oldest);
            }
        }
        pending.insert(id.clone(), (answer, now));
        Some(Challenge { id, png_base64 })
    }

    /// Whether `answer` is that of captcha `id` (case and spaces aside). The captcha is used
    /// up either way.
    pub fn check(&self, id: &str, answer: &str, now: Timestamp) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let Some((expected, at)) = pending.remove(id) else {
            return false;
        };
        let given: String = answer.chars().filter(|c| !c.is_whitespace()).collect();
        now.0 - at.0 <= TTL_MS && given.eq_ignore_ascii_case(&expected)
    }

    /// The answer of captcha `id` (tests only).
    #[cfg(test)]
    fn answer(&self, id: &str) -> Option<String> {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.get(id).map(|(a, _)| a.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_counts_once_and_only_in_time() {
        let c = Captchas::default();
        let now = Timestamp(1_000_000);
        let ch = c.issue(now).expect("drawn");
        assert!(ch.png_base64.starts_with("iVBORw0KGgo"), "a PNG");
        let answer = c.answer(&ch.id).unwrap();
        assert!(!c.check(&ch.id, "wrong", now));
        assert!(
            !c.check(&ch.id, &answer, now),
            "used up by the wrong answer"
        );
        let ch = c.issue(now).unwrap();
        let answer = c.answer(&ch.id).unwrap();
        assert!(c.check(&ch.id, &format!(" {} ", answer.to_lowercase()), now));
        let ch = c.issue(now).unwrap();
        let answer = c.answer(&ch.id).unwrap();
        assert!(!c.check(&ch.id, &answer, Timestamp(now.0 + TTL_MS + 1)));
    }
}
