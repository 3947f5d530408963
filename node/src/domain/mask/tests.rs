use super::*;
use crate::domain::{CaseStatus, PartyRole};

#[test]
fn phone_keeps_first_three_and_last_four() {
    assert_eq!(mask_phone("13812345678"), "138****5678");
    assert_eq!(mask_phone("+8613812345678"), "+86*******5678");
    assert_eq!(mask_phone("029-8888 6666"), "029******6666");
    // Eight characters: the shortest with anything left to hide between the ends.
    assert_eq!(mask_phone("12345678"), "123*5678");
}

#[test]
fn short_phones_keep_only_the_last_two() {
    assert_eq!(mask_phone("1234567"), "*****67");
    assert_eq!(mask_phone("12348"), "***48");
    assert_eq!(mask_phone("123"), "*23");
    assert_eq!(mask_phone("12"), "**");
    assert_eq!(mask_phone("1"), "*");
    assert_eq!(mask_phone(""), "");
}

#[test]
fn id_number_keeps_first_four_and_last_four() {
    assert_eq!(mask_id_number("610102199001011234"), "6101**********1234");
    assert_eq!(mask_id_number("61010219900101123X"), "6101**********123X");
    assert_eq!(mask_id_number("610102900101123"), "6101*******1123");
    assert_eq!(mask_id_number("123456789"), "1234*6789");
    assert_eq!(mask_id_number("12345678"), "******78");
    assert_eq!(mask_id_number(""), "");
}

#[test]
fn name_keeps_the_first_character() {
    assert_eq!(mask_name("张三"), "张*");
    assert_eq!(mask_name("欧阳娜娜"), "欧***");
    assert_eq!(mask_name("买买提·艾力"), "买*****");
    assert_eq!(mask_name("Li Lei"), "L*****");
    assert_eq!(mask_name("张"), "*");
    assert_eq!(mask_name(""), "");
}

#[test]
fn multi_byte_characters_are_never_cut() {
    // Full-width digits (3 bytes each) and a 4-byte emoji: a byte slice would panic here.
    assert_eq!(mask_phone("１３８１２３４５６７８"), "１３８****５６７８");
    assert_eq!(mask_name("😀ab"), "😀**");
    assert_eq!(mask_id_number("甲乙丙丁戊己庚辛壬"), "甲乙丙丁*己庚辛壬");
    assert_eq!(mask_phone("电话号码"), "**号码");
}

#[test]
fn masking_is_idempotent_and_keeps_the_length() {
    let samples = [
        "13812345678",
        "+86 138 1234 5678",
        "12348",
        "1",
        "",
        "张三",
        "欧阳娜娜",
        "😀ab",
    ];
    for s in samples {
        for f in [mask_phone, mask_id_number, mask_name] {
            let once = f(s);
            assert_eq!(f(&once), once, "{s:?}");
            assert_eq!(once.chars().count(), s.chars().count(), "{s:?}");
        }
    }
}

fn zhang() -> Party {
    Party {
        role: PartyRole::Applicant,
        name: "张三".into(),
        phone: "13812345678".into(),
        id_number: "610102199001011234".into(),
    }
}

#[test]
fn party_and_case() {
    let p = zhang();
    let m = mask_party(&p);
    assert_eq!(m.role, PartyRole::Applicant);
    assert_eq!(m.name, "张*");
    assert_eq!(m.phone, "138****5678");
    assert_eq!(m.id_number, "6101**********1234");

    let lisi = Party {
        role: PartyRole::Respondent,
        name: "李四".into(),
        phone: String::new(),
        id_number: String::new(),
    };
    let case = crate::domain::machine::tests::sample_case(vec![p, lisi]);
    let masked = mask_case(&case);
    assert_eq!(masked.parties[0], m);
    assert_eq!(masked.parties[1].name, "李*");
    assert_eq!(masked.parties[1].phone, "");
    assert_eq!(masked.status, CaseStatus::Registered);
    assert_eq!(
        Case {
            parties: case.parties.clone(),
            ..masked
        },
        case
    );
}

#[test]
fn redact_masks_the_parties_wherever_quoted() {
    let text =
        "张三（610102199001011234，电话13812345678）称被申请人欠薪4400元；张三要求年底前付清。";
    let got = redact(text, &[zhang()]);
    assert_eq!(
        got,
        "张*（6101**********1234，电话138****5678）称被申请人欠薪4400元；张*要求年底前付清。"
    );
}

#[test]
fn redact_parties_keeps_other_numbers() {
    let text = "610116001不接收移交案件：张三（13812345678）请到610116002";
    assert_eq!(
        redact_parties(text, &[zhang()]),
        "610116001不接收移交案件：张*（138****5678）请到610116002"
    );
}

#[test]
fn redact_masks_long_digit_runs_of_strangers() {
    // Not a party of the case, yet plainly a phone and an id number.
    let got = redact(
        "请联系13900001111或身份证61010219900101123X本人，案号1234",
        &[],
    );
    assert_eq!(
        got,
        "请联系139****1111或身份证6101**********123X本人，案号1234"
    );
    // Six digits stay (sums, years), seven go.
    assert_eq!(redact("150000元", &[]), "150000元");
    assert_eq!(redact("8888666", &[]), "*****66");
}

#[test]
fn redact_prefers_the_longest_value_and_skips_blanks() {
    let mut a = zhang();
    a.name = "张三丰".into();
    let mut b = zhang();
    b.name = "张三".into();
    b.phone = String::new();
    b.id_number = " ".into();
    assert_eq!(redact("张三丰与张三", &[b.clone(), a]), "张**与张*");
    // A blank value must not be "found" between every two characters.
    assert_eq!(redact("无当事人信息", &[b]), "无当事人信息");
    assert_eq!(redact("", &[zhang()]), "");
}

#[test]
fn free_text_is_masked_everywhere_for_who_may_not_see_personal_data() {
    use crate::domain::ProgressEntry;
    let mut c =
        crate::domain::machine::tests::sample_case(crate::domain::machine::tests::parties());
    let name = c.parties[0].name.clone();
    let phone = c.parties[0].phone.clone();
    c.summary = format!("{name}讨薪");
    c.plan.plan = format!("请{name}（{phone}）周三到中心");
    c.plan.legal_briefing = "已告知其弟（电话13900001111）劳动法有关规定".into();
    c.plan.progress = vec![ProgressEntry {
        at: c.created_at,
        actor: "a".into(),
        text: "身份证610102199001011234复印件已收".into(),
    }];
    let shown = mask_free_text(&c);
    let all = format!(
        "{} {} {} {}",
        shown.summary, shown.plan.plan, shown.plan.legal_briefing, shown.plan.progress[0].text
    );
    for personal in [
        name.as_str(),
        phone.as_str(),
        "13900001111",
        "610102199001011234",
    ] {
        assert!(!all.contains(personal), "{personal} in {all}");
    }
    assert!(shown.summary.ends_with("讨薪"), "{}", shown.summary);
    assert_eq!(
        shown.parties, c.parties,
        "the parties themselves are masked elsewhere"
    );
}
