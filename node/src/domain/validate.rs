//! Input limits, checked before anything is written.
//!
//! The `pub const`s below are the documented limits of the API: the proto comments, the CLI
//! help and the tests all refer to them. Lengths are counted in characters (`char`s), not bytes,
//! because most text here is Chinese (three bytes a character in UTF-8).
//!
//! Every error is a [`DomainError::InvalidArgument`] whose `field` is the proto field name
//! (`"summary"`, `"parties[2].phone"`, ...), so a client can point at the offending input.
//! Validation never changes a value: what passes is stored exactly as given.
//!
//! Text rules shared by all fields:
//! * "required" means non-blank: at least one character that is not whitespace (full-width
//!   space U+3000 counts as whitespace);
//! * single-line fields (summary, names, handler, mediator, grid id) contain no control
//!   characters; multi-line fields (description, notes, agreement, reason, guidance) allow line
//!   breaks and tabs but no other control characters.

use super::{Command, DomainError, NewCase, Party, PlanUpdate, Timestamp};

/// Summary (案由): required, at most this many characters.
pub const SUMMARY_MAX_CHARS: usize = 200;
/// Description (纠纷详情): optional, at most this many characters.
pub const DESCRIPTION_MAX_CHARS: usize = 5000;
/// At most this many parties (当事人) on one case; none is allowed (e.g. a grid report).
pub const PARTIES_MAX: usize = 20;
/// A party's name: required, at most this many characters.
pub const PARTY_NAME_MAX_CHARS: usize = 64;
/// A phone number, when given, has at least this many characters...
pub const PHONE_MIN_CHARS: usize = 5;
/// ...and at most this many: digits, with an optional leading `+`, and `-` or spaces between
/// digits. It must hold at least [`PHONE_MIN_CHARS`] digits (so `12348` is a valid number).
pub const PHONE_MAX_CHARS: usize = 20;
/// A resident identity card number (身份证号), when given, is 17 digits and a check character
/// (a digit or `X`)... Only the format is checked, not the checksum.
pub const ID_NUMBER_CHARS: usize = 18;
/// ...or a first-generation card number of 15 digits.
pub const ID_NUMBER_LEGACY_CHARS: usize = 15;
/// Amounts (涉及金额, 履行金额) are integer fen in `0..=AMOUNT_MAX_FEN` (100 billion yuan).
pub const AMOUNT_MAX_FEN: i64 = 10_000_000_000_000;
/// Grid id (网格编号): optional, at most this many characters.
pub const GRID_ID_MAX_CHARS: usize = 64;
/// Idempotency key: 1 to this many printable ASCII characters, spaces excluded.
pub const IDEMPOTENCY_KEY_MAX_CHARS: usize = 128;
/// The department or mediator a case is dispatched to: required, at most this many characters.
pub const HANDLER_MAX_CHARS: usize = 64;
/// The mediator of a session: required, at most this many characters.
pub const MEDIATOR_MAX_CHARS: usize = 64;
/// Free text attached to a command (notes, agreement, reason, guidance): at most this many
/// characters; required where the command says so.
pub const TEXT_MAX_CHARS: usize = 2000;
/// One progress entry (进展): required, at most this many characters. The progress table holds
/// at most [`super::machine::PROGRESS_MAX`] entries, so it stays within
/// [`CASE_MAX_BYTES`].
pub const PROGRESS_TEXT_MAX_CHARS: usize = 500;
/// Largest size of one case — its record and whole history, encoded as they travel between
/// nodes — that a change made here (an operator's command, a rule) may produce: 768 KiB. A
/// change that would pass it is refused (FAILED_PRECONDITION, nothing written); moves are
/// not, so a full case can still be escalated or transferred, and each adds one or two
/// events. The federation's message budget (1 MiB, `federation::message::MESSAGE_BUDGET`)
/// leaves room above this for those events and the envelope, so a case transfer always
/// fits what a parent accepts. Plan updates record which fields changed, not their text
/// (the case holds the current text), so a long-running case fills this slowly: thousands
/// of events of ordinary size.
pub const CASE_MAX_BYTES: usize = 768 * 1024;
/// A "六个一" name (lead leader, mediation organisation, liaison unit): at most this many
/// characters, one line.
pub const PLAN_NAME_MAX_CHARS: usize = 64;
/// Follow-up satisfaction (回访满意度) is a score from this...
pub const SATISFACTION_MIN: u8 = 1;
/// ...to this.
pub const SATISFACTION_MAX: u8 = 5;

type Result<T = ()> = std::result::Result<T, DomainError>;

/// Checks a registration request against every limit above.
pub fn validate_new_case(n: &NewCase) -> Result {
    let NewCase {
        idempotency_key,
        category: _,
        channel: _,
        summary,
        description,
        parties,
        amount_fen,
        risk: _,
        grid_id,
    } = n;
    idempotency(idempotency_key)?;
    required_line("summary", summary, SUMMARY_MAX_CHARS)?;
    optional_text("description", description, DESCRIPTION_MAX_CHARS)?;
    if parties.len() > PARTIES_MAX {
        return Err(DomainError::invalid(
            "parties",
            format!("at most {PARTIES_MAX} parties, got {}", parties.len()),
        ));
    }
    for (i, p) in parties.iter().enumerate() {
        party(i, p)?;
    }
    amount("amount_fen", *amount_fen)?;
    optional_line("grid_id", grid_id, GRID_ID_MAX_CHARS)
}

/// The stricter checks of a form filled in for a person at a window or online (the console's
/// 登记, the citizens' channel), on top of [`validate_new_case`]: an 18-character ID number
/// must carry its GB 11643 check character, and a phone must be a mainland mobile number (11
/// digits from 13 to 19) or a fixed line with its area code (0 and 9 to 11 more digits).
/// The operator API keeps the format checks only (legacy records carry what they carry).
pub fn validate_intake(n: &NewCase) -> Result {
    validate_new_case(n)?;
    for (i, p) in n.parties.iter().enumerate() {
        if !p.id_number.is_empty() && !id_check_digit_ok(&p.id_number) {
            return Err(DomainError::invalid(
                PARTY_ID_FIELDS[i],
                "the check character does not match (GB 11643): please check the number",
            ));
        }
        if !p.phone.is_empty() && !phone_plausible(&p.phone) {
            return Err(DomainError::invalid(
                PARTY_PHONE_FIELDS[i],
                "not a mobile number (11 digits from 13 to 19) or a fixed line with its area code",
            ));
        }
    }
    Ok(())
}

/// Whether an ID number's check character is right: for 18 characters, GB 11643's ISO 7064
/// MOD 11-2; a 15-digit first-generation number has none (true).
pub fn id_check_digit_ok(id: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let id = id.trim().to_ascii_uppercase();
    let b = id.as_bytes();
    if b.len() == ID_NUMBER_LEGACY_CHARS {
        return b.iter().all(u8::is_ascii_digit);
    }
    if b.len() != ID_NUMBER_CHARS || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK[(sum % 11) as usize] == b[17]
}

/// Whether a phone number looks like a mainland mobile or a fixed line with area code.
pub fn phone_plausible(phone: &str) -> bool {
    let digits = super::rules::normalize_phone(phone);
    let mobile = digits.len() == 11
        && digits.starts_with('1')
        && matches!(digits.as_bytes()[1], b'3'..=b'9');
    let fixed = digits.starts_with('0') && (10..=12).contains(&digits.len());
    mobile || fixed
}

/// Checks the arguments of a command, independently of the case it is applied to. `now` is
/// needed because a dispatch deadline must lie in the future.
pub fn validate_command(cmd: &Command, now: Timestamp) -> Result {
    match cmd {
        Command::Review {
            accept,
            reason,
            guidance,
        } => {
            if *accept {
                optional_text("reason", reason, TEXT_MAX_CHARS)?;
                optional_text("guidance", guidance, TEXT_MAX_CHARS)
            } else {
                required_text("reason", reason, TEXT_MAX_CHARS)?;
                required_text("guidance", guidance, TEXT_MAX_CHARS)
            }
        }
        Command::Assign { handler, due_at } => {
            required_line("handler", handler, HANDLER_MAX_CHARS)?;
            match due_at {
                Some(d) if *d <= now => {
                    Err(DomainError::invalid("due_at", "must be in the future"))
                }
                _ => Ok(()),
            }
        }
        Command::RecordMediation {
            method: _,
            mediation_type: _,
            mediator,
            notes,
            result: _,
        } => {
            required_line("mediator", mediator, MEDIATOR_MAX_CHARS)?;
            optional_text("notes", notes, TEXT_MAX_CHARS)
        }
        Command::Resolve {
            resolved,
            agreement,
            settled_amount_fen,
            confirmation: _,
        } => {
            required_text("agreement", agreement, TEXT_MAX_CHARS)?;
            if *resolved {
                amount("settled_amount_fen", *settled_amount_fen)
            } else if *settled_amount_fen != 0 {
                Err(DomainError::invalid(
                    "settled_amount_fen",
                    "must be 0 when the mediation did not succeed",
                ))
            } else {
                Ok(())
            }
        }
        Command::FollowUp {
            satisfaction,
            notes,
        } => {
            if !(SATISFACTION_MIN..=SATISFACTION_MAX).contains(satisfaction) {
                return Err(DomainError::invalid(
                    "satisfaction",
                    format!("must be {SATISFACTION_MIN}–{SATISFACTION_MAX}, got {satisfaction}"),
                ));
            }
            optional_text("notes", notes, TEXT_MAX_CHARS)
        }
        Command::ChangeRisk { risk: _, reason } | Command::RaiseRisk { reason } => {
            required_text("reason", reason, TEXT_MAX_CHARS)
        }
        Command::ExtendDeadline { until, reason } => {
            required_text("reason", reason, TEXT_MAX_CHARS)?;
            if *until <= now {
                return Err(DomainError::invalid("until", "must be in the future"));
            }
            Ok(())
        }
        Command::UpdatePlan(update) => plan_update(update),
        Command::AddProgress { text } => required_text("text", text, PROGRESS_TEXT_MAX_CHARS),
        Command::SuperviseOverdue { after: _ } => Ok(()),
    }
}

fn plan_update(u: &PlanUpdate) -> Result {
    let PlanUpdate {
        lead_leader,
        mediation_org,
        liaison_unit,
        plan,
        legal_briefing,
    } = u;
    for (field, value) in [
        ("lead_leader", lead_leader),
        ("mediation_org", mediation_org),
        ("liaison_unit", liaison_unit),
    ] {
        if let Some(v) = value {
            optional_line(field, v, PLAN_NAME_MAX_CHARS)?;
        }
    }
    for (field, value) in [("plan", plan), ("legal_briefing", legal_briefing)] {
        if let Some(v) = value {
            optional_text(field, v, TEXT_MAX_CHARS)?;
        }
    }
    if [
        lead_leader,
        mediation_org,
        liaison_unit,
        plan,
        legal_briefing,
    ]
    .iter()
    .all(|v| v.is_none())
    {
        return Err(DomainError::invalid(
            "plan",
            "give at least one field to set",
        ));
    }
    Ok(())
}

/// Proto field names of indexed party fields, as `&'static str` for [`DomainError`]. Only
/// indices below [`PARTIES_MAX`] are ever looked up: longer lists are refused first.
macro_rules! party_fields {
    ($($i:literal)+) => {
        const PARTY_NAME_FIELDS: [&str; PARTIES_MAX] = [$(concat!("parties[", $i, "].name"),)+];
        const PARTY_PHONE_FIELDS: [&str; PARTIES_MAX] = [$(concat!("parties[", $i, "].phone"),)+];
        const PARTY_ID_FIELDS: [&str; PARTIES_MAX] = [$(concat!("parties[", $i, "].id_number"),)+];
    };
}
party_fields!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19);

fn party(i: usize, p: &Party) -> Result {
    let Party {
        role: _,
        name,
        phone: ph,
        id_number,
    } = p;
    required_line(PARTY_NAME_FIELDS[i], name, PARTY_NAME_MAX_CHARS)?;
    phone(PARTY_PHONE_FIELDS[i], ph)?;
    id(PARTY_ID_FIELDS[i], id_number)
}

fn idempotency(key: &str) -> Result {
    const F: &str = "idempotency_key";
    if key.is_empty() {
        return Err(DomainError::invalid(F, "is required"));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DomainError::invalid(
            F,
            "only printable ASCII without spaces is allowed",
        ));
    }
    // ASCII from here on: bytes are characters.
    if key.len() > IDEMPOTENCY_KEY_MAX_CHARS {
        return Err(DomainError::invalid(
            F,
            format!(
                "at most {IDEMPOTENCY_KEY_MAX_CHARS} characters, got {}",
                key.len()
            ),
        ));
    }
    Ok(())
}

fn phone(field: &'static str, s: &str) -> Result {
    if s.is_empty() {
        return Ok(());
    }
    let n = s.chars().count();
    if !(PHONE_MIN_CHARS..=PHONE_MAX_CHARS).contains(&n) {
        return Err(DomainError::invalid(
            field,
            format!("must be {PHONE_MIN_CHARS}–{PHONE_MAX_CHARS} characters, got {n}"),
        ));
    }
    let body = s.strip_prefix('+').unwrap_or(s);
    let well_formed = body.starts_with(|c: char| c.is_ascii_digit())
        && body.ends_with(|c: char| c.is_ascii_digit())
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == ' ');
    if !well_formed {
        return Err(DomainError::invalid(
            field,
            "only digits, an optional leading '+', and '-' or spaces between digits",
        ));
    }
    if body.chars().filter(char::is_ascii_digit).count() < PHONE_MIN_CHARS {
        return Err(DomainError::invalid(
            field,
            format!("at least {PHONE_MIN_CHARS} digits"),
        ));
    }
    Ok(())
}

fn id(field: &'static str, s: &str) -> Result {
    let b = s.as_bytes();
    let ok = match b.len() {
        0 => true,
        ID_NUMBER_LEGACY_CHARS => b.iter().all(u8::is_ascii_digit),
        ID_NUMBER_CHARS => {
            b[..17].iter().all(u8::is_ascii_digit) && matches!(b[17], b'0'..=b'9' | b'X' | b'x')
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            "must be 18 characters (17 digits and a digit or X) or 15 digits",
        ))
    }
}

fn amount(field: &'static str, fen: i64) -> Result {
    if (0..=AMOUNT_MAX_FEN).contains(&fen) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!("must be 0–{AMOUNT_MAX_FEN} fen, got {fen}"),
        ))
    }
}

pub(crate) fn required_line(field: &'static str, s: &str, max: usize) -> Result {
    not_blank(field, s)?;
    optional_line(field, s, max)
}

fn optional_line(field: &'static str, s: &str, max: usize) -> Result {
    max_chars(field, s, max)?;
    if s.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

pub(crate) fn required_text(field: &'static str, s: &str, max: usize) -> Result {
    not_blank(field, s)?;
    optional_text(field, s, max)
}

fn optional_text(field: &'static str, s: &str, max: usize) -> Result {
    max_chars(field, s, max)?;
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters other than line breaks and tabs",
        ));
    }
    Ok(())
}

fn not_blank(field: &'static str, s: &str) -> Result {
    if s.trim().is_empty() {
        Err(DomainError::invalid(field, "is required"))
    } else {
        Ok(())
    }
}

fn max_chars(field: &'static str, s: &str, max: usize) -> Result {
    // A string of at most `max` bytes has at most `max` chars: skip the count in the common case.
    if s.len() <= max {
        return Ok(());
    }
    let n = s.chars().count();
    if n > max {
        return Err(DomainError::invalid(
            field,
            format!("at most {max} characters, got {n}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
