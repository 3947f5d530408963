use super::*;
use crate::domain::{Category, Channel, Confirmation, MediationMethod, MediationResult};
use crate::domain::{MediationType, PartyRole, RiskLevel};

const NOW: Timestamp = Timestamp(1_714_521_600_000);

fn party() -> Party {
    Party {
        role: PartyRole::Applicant,
        name: "张三".into(),
        phone: "13812345678".into(),
        id_number: "610102199001011234".into(),
    }
}

fn new_case() -> NewCase {
    NewCase {
        idempotency_key: "0f8e2c9a-6a4d-4f7e-9d1b-3c2a1b0e9f8d".into(),
        category: Category::Labor,
        channel: Channel::WalkIn,
        summary: "拖欠工资".into(),
        description: "申请人在工地务工三个月，工资未结清。".into(),
        parties: vec![party(), party(), party()],
        amount_fen: 440_000,
        risk: RiskLevel::Blue,
        grid_id: "610116001-03".into(),
    }
}

/// The field named by an error, `None` for success.
fn field<T>(r: std::result::Result<T, DomainError>) -> Option<&'static str> {
    match r {
        Ok(_) => None,
        Err(DomainError::InvalidArgument { field, .. }) => Some(field),
        Err(e) => panic!("unexpected {e:?}"),
    }
}

fn check_new(f: impl FnOnce(&mut NewCase)) -> Option<&'static str> {
    let mut n = new_case();
    f(&mut n);
    field(validate_new_case(&n))
}

fn check_cmd(cmd: Command) -> Option<&'static str> {
    field(validate_command(&cmd, NOW))
}

/// `n` characters of Chinese text: three bytes each, so byte counts would be wrong.
fn zh(n: usize) -> String {
    "调".repeat(n)
}

#[test]
fn a_plain_registration_passes() {
    assert_eq!(check_new(|_| {}), None);
    assert_eq!(
        check_new(|n| {
            n.description.clear();
            n.parties.clear();
            n.grid_id.clear();
            n.amount_fen = 0;
        }),
        None
    );
}

#[test]
fn summary_is_required_and_counted_in_characters() {
    assert_eq!(check_new(|n| n.summary = zh(SUMMARY_MAX_CHARS - 1)), None);
    assert_eq!(check_new(|n| n.summary = zh(SUMMARY_MAX_CHARS)), None);
    assert_eq!(
        check_new(|n| n.summary = zh(SUMMARY_MAX_CHARS + 1)),
        Some("summary")
    );
    assert_eq!(
        check_new(|n| n.summary = "a".repeat(SUMMARY_MAX_CHARS + 1)),
        Some("summary")
    );
    assert_eq!(check_new(|n| n.summary = String::new()), Some("summary"));
    assert_eq!(check_new(|n| n.summary = " \t ".into()), Some("summary"));
    assert_eq!(
        check_new(|n| n.summary = "\u{3000}".into()),
        Some("summary")
    );
    assert_eq!(
        check_new(|n| n.summary = "欠薪\n纠纷".into()),
        Some("summary")
    );
}

#[test]
fn description_is_optional_and_limited() {
    assert_eq!(
        check_new(|n| n.description = zh(DESCRIPTION_MAX_CHARS - 1)),
        None
    );
    assert_eq!(
        check_new(|n| n.description = zh(DESCRIPTION_MAX_CHARS)),
        None
    );
    assert_eq!(
        check_new(|n| n.description = zh(DESCRIPTION_MAX_CHARS + 1)),
        Some("description")
    );
    assert_eq!(
        check_new(|n| n.description = "第一段\r\n\t第二段".into()),
        None
    );
    assert_eq!(
        check_new(|n| n.description = "响铃\u{7}".into()),
        Some("description")
    );
}

#[test]
fn party_count() {
    assert_eq!(
        check_new(|n| n.parties = vec![party(); PARTIES_MAX - 1]),
        None
    );
    assert_eq!(check_new(|n| n.parties = vec![party(); PARTIES_MAX]), None);
    assert_eq!(
        check_new(|n| n.parties = vec![party(); PARTIES_MAX + 1]),
        Some("parties")
    );
}

#[test]
fn party_fields_are_named_with_their_index() {
    assert_eq!(
        check_new(|n| n.parties[2].phone = "abc".into()),
        Some("parties[2].phone")
    );
    assert_eq!(
        check_new(|n| n.parties[0].name = String::new()),
        Some("parties[0].name")
    );
    assert_eq!(
        check_new(|n| n.parties[1].id_number = "1".into()),
        Some("parties[1].id_number")
    );
    assert_eq!(
        check_new(|n| {
            n.parties = vec![party(); PARTIES_MAX];
            n.parties[PARTIES_MAX - 1].name = " ".into();
        }),
        Some("parties[19].name")
    );
}

#[test]
fn party_name() {
    let name = |s: String| check_new(|n| n.parties[0].name = s);
    assert_eq!(name(zh(PARTY_NAME_MAX_CHARS - 1)), None);
    assert_eq!(name(zh(PARTY_NAME_MAX_CHARS)), None);
    assert_eq!(name(zh(PARTY_NAME_MAX_CHARS + 1)), Some("parties[0].name"));
    assert_eq!(name("欧阳娜娜".into()), None);
    assert_eq!(name("买买提·艾力".into()), None);
    assert_eq!(name("\u{3000}".into()), Some("parties[0].name"));
}

#[test]
fn phone_format() {
    let phone = |s: &str| check_new(|n| n.parties[0].phone = s.into());
    let bad = Some("parties[0].phone");
    assert_eq!(phone(""), None);
    assert_eq!(phone("1234"), bad);
    assert_eq!(phone("12348"), None);
    assert_eq!(phone("13812345678"), None);
    assert_eq!(phone("+86 138-1234-5678"), None);
    assert_eq!(phone("029-88886666"), None);
    assert_eq!(phone(&"1".repeat(PHONE_MAX_CHARS - 1)), None);
    assert_eq!(phone(&"1".repeat(PHONE_MAX_CHARS)), None);
    assert_eq!(phone(&"1".repeat(PHONE_MAX_CHARS + 1)), bad);
    assert_eq!(phone("+"), bad);
    for s in [
        "138a2345678",
        "++8613812345678",
        "-13812345",
        "13812345-",
        " 13812345",
        "1-2-3-4",
        "１３８１２３４５６７８",
        "138.1234.5678",
    ] {
        assert_eq!(phone(s), bad, "{s:?}");
    }
}

#[test]
fn id_number_format() {
    let id = |s: &str| check_new(|n| n.parties[0].id_number = s.into());
    let bad = Some("parties[0].id_number");
    assert_eq!(id(""), None);
    assert_eq!(id("610102199001011234"), None);
    assert_eq!(id("61010219900101123X"), None);
    assert_eq!(id("61010219900101123x"), None);
    assert_eq!(id("610102900101123"), None);
    // Only the format is checked: a wrong check digit passes.
    assert_eq!(id("000000000000000000"), None);
    for s in [
        "6101021990010112",
        "61010219900101123",
        "6101021990010112345",
        "6101021990010X1234",
        "X10102199001011234",
        "61010219900101123Y",
        "61010290010112X",
        "６１０１０２１９９００１０１１２３４",
    ] {
        assert_eq!(id(s), bad, "{s:?}");
    }
}

#[test]
fn amount() {
    assert_eq!(check_new(|n| n.amount_fen = -1), Some("amount_fen"));
    assert_eq!(check_new(|n| n.amount_fen = 0), None);
    assert_eq!(check_new(|n| n.amount_fen = AMOUNT_MAX_FEN - 1), None);
    assert_eq!(check_new(|n| n.amount_fen = AMOUNT_MAX_FEN), None);
    assert_eq!(
        check_new(|n| n.amount_fen = AMOUNT_MAX_FEN + 1),
        Some("amount_fen")
    );
    assert_eq!(check_new(|n| n.amount_fen = i64::MIN), Some("amount_fen"));
}

#[test]
fn grid_id() {
    assert_eq!(check_new(|n| n.grid_id = zh(GRID_ID_MAX_CHARS - 1)), None);
    assert_eq!(check_new(|n| n.grid_id = zh(GRID_ID_MAX_CHARS)), None);
    assert_eq!(
        check_new(|n| n.grid_id = zh(GRID_ID_MAX_CHARS + 1)),
        Some("grid_id")
    );
}

#[test]
fn idempotency_key() {
    let key = |s: String| check_new(|n| n.idempotency_key = s);
    let bad = Some("idempotency_key");
    assert_eq!(key(String::new()), bad);
    assert_eq!(key("k".into()), None);
    assert_eq!(key("k".repeat(IDEMPOTENCY_KEY_MAX_CHARS - 1)), None);
    assert_eq!(key("k".repeat(IDEMPOTENCY_KEY_MAX_CHARS)), None);
    assert_eq!(key("k".repeat(IDEMPOTENCY_KEY_MAX_CHARS + 1)), bad);
    assert_eq!(key("~!@#$%^&*()_+{}|:<>?".into()), None);
    for s in ["a b", "a\tb", "键", "key\n", "é"] {
        assert_eq!(key(s.into()), bad, "{s:?}");
    }
}

#[test]
fn errors_name_the_field_and_explain() {
    let e = validate_new_case(&NewCase {
        summary: zh(201),
        ..new_case()
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid summary: at most 200 characters, got 201"
    );
    let mut n = new_case();
    n.parties[2].phone = "12".into();
    let e = validate_new_case(&n).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid parties[2].phone: must be 5–20 characters, got 2"
    );
}

fn review(accept: bool, reason: &str, guidance: &str) -> Command {
    Command::Review {
        accept,
        reason: reason.into(),
        guidance: guidance.into(),
    }
}

#[test]
fn review_reject_needs_reason_and_guidance() {
    assert_eq!(check_cmd(review(true, "", "")), None);
    assert_eq!(
        check_cmd(review(false, "不属于本辖区", "请到户籍地街道综治中心申请")),
        None
    );
    assert_eq!(
        check_cmd(review(false, "", "请到户籍地街道综治中心申请")),
        Some("reason")
    );
    assert_eq!(
        check_cmd(review(false, "不属于本辖区", " ")),
        Some("guidance")
    );
    let long = zh(TEXT_MAX_CHARS + 1);
    assert_eq!(
        check_cmd(review(false, &zh(TEXT_MAX_CHARS), &zh(TEXT_MAX_CHARS))),
        None
    );
    assert_eq!(check_cmd(review(false, &long, "去法院")), Some("reason"));
    assert_eq!(check_cmd(review(false, "x", &long)), Some("guidance"));
    // Accepting needs neither, but what is given still has its limit.
    assert_eq!(check_cmd(review(true, &long, "")), Some("reason"));
}

fn assign(handler: &str, due_at: Option<Timestamp>) -> Command {
    Command::Assign {
        handler: handler.into(),
        due_at,
    }
}

#[test]
fn assign_handler_and_deadline() {
    assert_eq!(check_cmd(assign("区人社局", None)), None);
    assert_eq!(check_cmd(assign(&zh(HANDLER_MAX_CHARS), None)), None);
    assert_eq!(
        check_cmd(assign(&zh(HANDLER_MAX_CHARS + 1), None)),
        Some("handler")
    );
    assert_eq!(check_cmd(assign("", None)), Some("handler"));
    assert_eq!(
        check_cmd(assign("区人社局", Some(Timestamp(NOW.0 + 1)))),
        None
    );
    assert_eq!(check_cmd(assign("区人社局", Some(NOW))), Some("due_at"));
    assert_eq!(
        check_cmd(assign("区人社局", Some(Timestamp(NOW.0 - 1)))),
        Some("due_at")
    );
}

fn mediation(mediator: &str, notes: &str) -> Command {
    Command::RecordMediation {
        method: MediationMethod::Phone,
        mediation_type: MediationType::Peoples,
        mediator: mediator.into(),
        notes: notes.into(),
        result: MediationResult::Continuing,
    }
}

#[test]
fn mediation_mediator_and_notes() {
    assert_eq!(check_cmd(mediation("王调解员", "")), None);
    assert_eq!(
        check_cmd(mediation(&zh(MEDIATOR_MAX_CHARS), &zh(TEXT_MAX_CHARS))),
        None
    );
    assert_eq!(
        check_cmd(mediation(&zh(MEDIATOR_MAX_CHARS + 1), "")),
        Some("mediator")
    );
    assert_eq!(check_cmd(mediation(" ", "")), Some("mediator"));
    assert_eq!(
        check_cmd(mediation("王调解员", &zh(TEXT_MAX_CHARS - 1))),
        None
    );
    assert_eq!(
        check_cmd(mediation("王调解员", &zh(TEXT_MAX_CHARS + 1))),
        Some("notes")
    );
    assert_eq!(
        check_cmd(mediation("王调解员", "双方\n同意\u{0}")),
        Some("notes")
    );
}

fn resolve(resolved: bool, agreement: &str, settled_amount_fen: i64) -> Command {
    Command::Resolve {
        resolved,
        agreement: agreement.into(),
        settled_amount_fen,
        confirmation: Confirmation::Judicial,
    }
}

#[test]
fn resolve_agreement_and_amount() {
    assert_eq!(check_cmd(resolve(true, "一次性支付欠薪", 440_000)), None);
    assert_eq!(check_cmd(resolve(true, "一次性支付欠薪", 0)), None);
    assert_eq!(
        check_cmd(resolve(true, "一次性支付欠薪", AMOUNT_MAX_FEN)),
        None
    );
    assert_eq!(
        check_cmd(resolve(true, "x", AMOUNT_MAX_FEN + 1)),
        Some("settled_amount_fen")
    );
    assert_eq!(
        check_cmd(resolve(true, "x", -1)),
        Some("settled_amount_fen")
    );
    assert_eq!(check_cmd(resolve(true, "", 1)), Some("agreement"));
    assert_eq!(check_cmd(resolve(true, &zh(TEXT_MAX_CHARS), 1)), None);
    assert_eq!(
        check_cmd(resolve(true, &zh(TEXT_MAX_CHARS + 1), 1)),
        Some("agreement")
    );
    // Not resolved: the agreement field carries the guidance, and nothing was settled.
    assert_eq!(
        check_cmd(resolve(false, "可向劳动人事争议仲裁委员会申请仲裁", 0)),
        None
    );
    assert_eq!(check_cmd(resolve(false, "", 0)), Some("agreement"));
    assert_eq!(
        check_cmd(resolve(false, "去仲裁", 100)),
        Some("settled_amount_fen")
    );
}

#[test]
fn follow_up_satisfaction_and_notes() {
    let follow = |satisfaction: u8, notes: &str| {
        check_cmd(Command::FollowUp {
            satisfaction,
            notes: notes.into(),
        })
    };
    assert_eq!(follow(0, ""), Some("satisfaction"));
    for s in SATISFACTION_MIN..=SATISFACTION_MAX {
        assert_eq!(follow(s, ""), None);
    }
    assert_eq!(follow(6, ""), Some("satisfaction"));
    assert_eq!(follow(u8::MAX, ""), Some("satisfaction"));
    assert_eq!(follow(4, &zh(TEXT_MAX_CHARS)), None);
    assert_eq!(follow(4, &zh(TEXT_MAX_CHARS + 1)), Some("notes"));
}

#[test]
fn id_check_digits_follow_gb_11643() {
    // A number whose check character is X, and the same digits with a wrong one.
    assert!(id_check_digit_ok("11010519491231002X"));
    assert!(id_check_digit_ok("11010519491231002x"));
    assert!(!id_check_digit_ok("110105194912310021"));
    assert!(id_check_digit_ok("610102199001011231"));
    assert!(!id_check_digit_ok("610102199001011234"));
    assert!(
        id_check_digit_ok("610102900101123"),
        "15 digits carry no check"
    );
    assert!(!id_check_digit_ok("61010219900101123A"));
}

#[test]
fn phones_are_mobiles_or_fixed_lines() {
    for ok in [
        "13812345678",
        "+86 138-1234-5678",
        "029-88886666",
        "0298888666",
    ] {
        assert!(phone_plausible(ok), "{ok}");
    }
    for bad in ["12345678901", "12348", "1381234567", "88886666"] {
        assert!(!phone_plausible(bad), "{bad}");
    }
}
