//! Masking of personal data (个人信息) for listings, logs and case history.
//!
//! A party's name, phone number and identity card number are personal data. They are stored in
//! full (the handling staff need to call the parties back), but everything that is shown to more
//! people than that — listings, logs, the history details — goes through this module:
//!
//! | value        | given                | shown                |
//! |--------------|----------------------|----------------------|
//! | phone        | `13812345678`        | `138****5678`        |
//! | id number    | `610102199001011234` | `6101**********1234` |
//! | name         | `欧阳娜娜`           | `欧***`              |
//!
//! Everything works on characters, never bytes, so a multi-byte character is never cut in half.
//! A value too short to keep both ends is masked more: all but its last two characters for
//! phone and id numbers, everything for a one-character name. Masking is idempotent: masking a
//! masked value gives it back unchanged. The number of characters is preserved.
//!
//! [`redact`] applies the same idea to free text that staff type (rejection reasons, mediation
//! notes), on a best-effort basis: the case's own parties are masked wherever they are quoted,
//! and so is any long run of digits, which is how phone and id numbers appear in prose.

use super::{Case, Party};

const MASK: char = '*';
/// Runs of at least this many digits in free text are taken for phone or id numbers (a
/// landline without area code has 7 digits).
const REDACT_MIN_DIGITS: usize = 7;

/// `13812345678` → `138****5678`: keeps the first 3 and last 4 characters.
pub fn mask_phone(phone: &str) -> String {
    keep_ends(phone, 3, 4)
}

/// `610102199001011234` → `6101**********1234`: keeps the first 4 and last 4 characters.
pub fn mask_id_number(id: &str) -> String {
    keep_ends(id, 4, 4)
}

/// `张三` → `张*`, `欧阳娜娜` → `欧***`: keeps the first character (a one-character name is
/// masked entirely, since its first character is all of it).
pub fn mask_name(name: &str) -> String {
    let n = name.chars().count();
    match name.chars().next() {
        None => String::new(),
        Some(_) if n == 1 => MASK.to_string(),
        Some(first) => std::iter::once(first)
            .chain(std::iter::repeat_n(MASK, n - 1))
            .collect(),
    }
}

/// The party with name, phone and id number masked; the role is kept.
pub fn mask_party(p: &Party) -> Party {
    Party {
        role: p.role,
        name: mask_name(&p.name),
        phone: mask_phone(&p.phone),
        id_number: mask_id_number(&p.id_number),
    }
}

/// Words that mark a respondent as an organisation (an employer, a property company, a shop)
/// rather than a person. Checked only on names of at least [`ORGANISATION_MIN_CHARS`].
const ORGANISATION_MARKERS: &[&str] = &[
    "公司",
    "集团",
    "有限",
    "厂",
    "店",
    "超市",
    "合作社",
    "项目部",
    "工地",
    "物业",
    "银行",
    "医院",
    "学校",
    "中心",
    "委员会",
    "协会",
];
const ORGANISATION_MIN_CHARS: usize = 4;

/// A respondent's name as shown in alerts and reports: an organisation's name in full (it is
/// what staff must act on: "某建筑公司" in a wage-arrears wave), a person's name masked.
/// Best effort by [`ORGANISATION_MARKERS`]; anything not recognised is treated as a person.
pub fn display_respondent(name: &str) -> String {
    let name = name.trim();
    let organisation = name.chars().count() >= ORGANISATION_MIN_CHARS
        && ORGANISATION_MARKERS.iter().any(|m| name.contains(m));
    if organisation {
        name.to_owned()
    } else {
        mask_name(name)
    }
}

/// A copy of the case with every party masked.
pub fn mask_case(c: &Case) -> Case {
    Case {
        parties: c.parties.iter().map(mask_party).collect(),
        ..c.clone()
    }
}

/// The case as a reader who may not see personal data sees it (a listing, a supervised copy):
/// the parties masked ([`mask_case`]) and their data masked in the free text
/// ([`mask_free_text`]).
pub fn masked(c: &Case) -> Case {
    mask_case(&mask_free_text(c))
}

/// A copy of the case whose free text — summary, description, reason, guidance, agreement,
/// the "六个一" plan and briefing, the progress entries — has personal data masked
/// ([`redact`], against the case's own parties); the parties themselves are left as they are.
pub fn mask_free_text(c: &Case) -> Case {
    let mut out = c.clone();
    let parties = &c.parties;
    for text in [
        &mut out.summary,
        &mut out.description,
        &mut out.reason,
        &mut out.guidance,
        &mut out.agreement,
        &mut out.plan.plan,
        &mut out.plan.legal_briefing,
    ] {
        *text = redact(text, parties);
    }
    for entry in &mut out.plan.progress {
        entry.text = redact(&entry.text, parties);
    }
    out
}

/// Free text with personal data masked: every occurrence of a party's id number, phone number
/// or name (longest values first), then every remaining run of [`REDACT_MIN_DIGITS`] or more
/// digits (with a trailing `X` when it has the shape of an id number).
///
/// Best effort: it cannot recognise a name it was not told about, and it also masks long
/// numbers that are not personal (a sum written as `1500000`). Keep amounts and dates in
/// structured fields, not in prose.
pub fn redact(text: &str, parties: &[Party]) -> String {
    redact_digit_runs(&redact_parties(text, parties))
}

/// Free text with the parties' id numbers, phone numbers and names masked (the first half of
/// [`redact`]), other numbers left as they are: for text a node wrote rather than a person,
/// such as the reason a node refused a transfer, where digit runs are division codes.
pub fn redact_parties(text: &str, parties: &[Party]) -> String {
    let mut values: Vec<(&str, String)> = Vec::new();
    for p in parties {
        values.push((p.id_number.as_str(), mask_id_number(&p.id_number)));
        values.push((p.phone.as_str(), mask_phone(&p.phone)));
        values.push((p.name.as_str(), mask_name(&p.name)));
    }
    // Longest first, so that a value containing another is replaced whole. Blank values are
    // skipped: replacing "" would insert a mask between every two characters.
    values.retain(|(v, _)| !v.trim().is_empty());
    values.sort_by_key(|(v, _)| std::cmp::Reverse(v.chars().count()));
    let mut out = text.to_owned();
    for (value, masked) in &values {
        if out.contains(value) {
            out = out.replace(value, masked);
        }
    }
    out
}

fn redact_digit_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        if i - start == 17 && matches!(chars.get(i), Some('X' | 'x')) {
            i += 1;
        }
        let run: String = chars[start..i].iter().collect();
        let n = i - start;
        if n < REDACT_MIN_DIGITS {
            out.push_str(&run);
        } else if n == 15 || n == 18 {
            out.push_str(&mask_id_number(&run));
        } else {
            out.push_str(&mask_phone(&run));
        }
    }
    out
}

/// Keeps the first `head` and last `tail` characters and masks the rest; a value of at most
/// `head + tail` characters keeps only its last two (and a value of at most two, nothing).
fn keep_ends(s: &str, head: usize, tail: usize) -> String {
    let n = s.chars().count();
    let (head, tail) = if n > head + tail {
        (head, tail)
    } else if n > 2 {
        (0, 2)
    } else {
        (0, 0)
    };
    s.chars()
        .enumerate()
        .map(|(i, c)| if i < head || i >= n - tail { c } else { MASK })
        .collect()
}

#[cfg(test)]
mod tests;
