//! Generators of operator requests, field by field: mostly plausible values (so that requests
//! get past validation and reach the application layer and the store), mixed with what a
//! careless or hostile client sends: empty, blank, control characters, any Unicode, Chinese,
//! lengths on both sides of every limit and far beyond, enum numbers the proto does not
//! define, missing and out-of-range timestamps, extreme numbers.

use fengqiao_proto::v1 as pb;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use prost_types::Timestamp;

use super::{CHILD, NODE, PARENT, Pick, T0};
use crate::domain::validate::AMOUNT_MAX_FEN;
use crate::identity::Role;

const DAY: i64 = 86_400;

/// A string of exactly `n` characters (`n` on both sides of the limits of `validate`).
fn of_length(n: usize) -> String {
    "调解".chars().cycle().take(n).collect()
}

/// Any text a client may send.
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => Just(String::new()),
        4 => "[a-z0-9 ._-]{1,16}",
        4 => "[\u{4e00}-\u{9fa5}]{1,24}",
        2 => ".{0,40}",
        2 => vec(any::<char>(), 0..40).prop_map(String::from_iter),
        1 => select(vec![" ", "\u{3000}", "\t\r\n", "\0", "\u{202e}abc", "a\nb", "\u{feff}"])
            .prop_map(String::from),
        2 => select(vec![
            1, 2, 5, 15, 18, 20, 21, 63, 64, 65, 128, 129, 199, 200, 201, 499, 500, 501, 1999,
            2000, 2001, 4999, 5000, 5001, 100_000,
        ])
        .prop_map(of_length),
    ]
    .boxed()
}

/// One line of plain Chinese, mostly; any text sometimes.
pub fn line() -> BoxedStrategy<String> {
    prop_oneof![
        6 => "[\u{4e00}-\u{9fa5}]{1,12}",
        1 => text(),
    ]
    .boxed()
}

/// Optional free text: mostly empty or a line.
fn note() -> BoxedStrategy<String> {
    prop_oneof![3 => Just(String::new()), 3 => line(), 1 => text()].boxed()
}

/// A number for an enum whose values are `1..=max`: mostly one of them, sometimes 0
/// (UNSPECIFIED), sometimes a number the proto does not define.
pub fn enum_of(max: i32) -> BoxedStrategy<i32> {
    prop_oneof![
        20 => 1..=max,
        1 => Just(0),
        1 => prop_oneof![max + 1..max + 100, Just(i32::MAX), Just(i32::MIN), i32::MIN..0],
    ]
    .boxed()
}

/// A timestamp: none, near the node's clock (mostly ahead of it), or anything at all.
pub fn timestamp() -> BoxedStrategy<Option<Timestamp>> {
    let t0 = T0.millis() / 1000;
    prop_oneof![
        2 => Just(None),
        5 => (-3 * DAY..90 * DAY, 0..1_000_000_000i32)
            .prop_map(move |(s, nanos)| Some(Timestamp { seconds: t0 + s, nanos })),
        1 => (any::<i64>(), any::<i32>())
            .prop_map(|(seconds, nanos)| Some(Timestamp { seconds, nanos })),
        1 => (
            select(vec![i64::MAX, i64::MIN, i64::MAX / 1000, i64::MIN / 1000, 0, -1, 253_402_300_800]),
            select(vec![0, 999_999_999, 1_000_000_000, -1, i32::MAX]),
        )
            .prop_map(|(seconds, nanos)| Some(Timestamp { seconds, nanos })),
    ]
    .boxed()
}

/// An amount in fen.
fn amount() -> BoxedStrategy<i64> {
    prop_oneof![
        2 => Just(0i64),
        4 => 0..10_000_000i64,
        1 => any::<i64>(),
        1 => select(vec![AMOUNT_MAX_FEN, AMOUNT_MAX_FEN + 1, -1, i64::MIN, i64::MAX]),
    ]
    .boxed()
}

/// Who calls: half the time one the permission table allows the request's action, else
/// anyone (with or without a certificate, of this node or another, operator or node).
pub fn caller() -> BoxedStrategy<Pick> {
    prop_oneof![
        1 => any::<usize>().prop_map(Pick::Allowed),
        1 => any::<usize>().prop_map(Pick::Anyone),
    ]
    .boxed()
}

/// Which of the store's cases, accounts or keys the request names (none: as generated).
pub fn aim() -> BoxedStrategy<Option<usize>> {
    prop_oneof![5 => any::<usize>().prop_map(Some), 1 => Just(None)].boxed()
}

/// A request's encoding, mangled: bytes flipped, cut short, or padded with garbage.
pub fn mangled<M: prost::Message + std::fmt::Debug + 'static>(
    msg: BoxedStrategy<M>,
) -> BoxedStrategy<Vec<u8>> {
    (
        msg,
        vec((any::<usize>(), any::<u8>()), 0..4),
        any::<Option<usize>>(),
        vec(any::<u8>(), 0..8),
    )
        .prop_map(|(m, flips, cut, tail)| {
            let mut bytes = m.encode_to_vec();
            if !bytes.is_empty() {
                for (i, b) in flips {
                    let n = bytes.len();
                    bytes[i % n] ^= b;
                }
            }
            if let Some(c) = cut {
                bytes.truncate(c % (bytes.len() + 1));
            }
            bytes.extend(tail);
            bytes
        })
        .boxed()
}

/// Bytes a request may arrive as: anything, or a mangled encoding of `msg`.
pub fn bytes<M: prost::Message + std::fmt::Debug + 'static>(
    msg: BoxedStrategy<M>,
) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![1 => vec(any::<u8>(), 0..256), 2 => mangled(msg)].boxed()
}

fn party() -> BoxedStrategy<pb::Party> {
    (
        enum_of(3),
        prop_oneof![4 => select(vec!["张三", "李四", "欧阳娜娜", "某建筑公司", "Zhang San"]).prop_map(String::from), 1 => text()],
        prop_oneof![
            4 => select(vec!["", "13812345678", "010-12345678", "12348", "+86 138 1234 5678", "138", "1381234567x"]).prop_map(String::from),
            1 => text(),
        ],
        prop_oneof![
            4 => select(vec!["", "11010519491231002X", "610102199001011231", "110105491231002", "123", "11010519491231002x"]).prop_map(String::from),
            1 => text(),
        ],
    )
        .prop_map(|(role, name, phone, id_number)| pb::Party {
            role,
            name,
            phone,
            id_number,
        })
        .boxed()
}

pub fn register_case() -> BoxedStrategy<pb::RegisterCaseRequest> {
    (
        prop_oneof![
            6 => "[A-Za-z0-9_-]{1,24}",
            1 => (0..9).prop_map(|i| format!("seed-{i}")),
            1 => text(),
        ],
        (enum_of(12), enum_of(7), enum_of(4)),
        prop_oneof![4 => line(), 1 => text()],
        note(),
        prop_oneof![8 => vec(party(), 0..4), 1 => vec(party(), 19..23)],
        amount(),
        prop_oneof![3 => Just(String::new()), 1 => "G-[0-9]{2}", 1 => text()],
    )
        .prop_map(
            |(
                idempotency_key,
                (category, channel, risk),
                summary,
                description,
                parties,
                amount_fen,
                grid_id,
            )| {
                pb::RegisterCaseRequest {
                    idempotency_key,
                    category,
                    channel,
                    summary,
                    description,
                    parties,
                    amount_fen,
                    risk,
                    grid_id,
                }
            },
        )
        .boxed()
}

/// A case id as generated (the harness aims most requests at the store's cases instead).
fn case_id() -> BoxedStrategy<String> {
    prop_oneof![
        2 => Just(format!("{CHILD}-20240501-000002")),
        1 => Just(format!("{NODE}-20240501-000001")),
        2 => text(),
        // Below the child as far as the id's prefix says, whatever follows.
        2 => text().prop_map(|t| format!("{CHILD}-{t}")),
    ]
    .boxed()
}

pub fn get_case() -> BoxedStrategy<pb::GetCaseRequest> {
    case_id()
        .prop_map(|case_id| pb::GetCaseRequest { case_id })
        .boxed()
}

pub fn list_cases() -> BoxedStrategy<pb::ListCasesRequest> {
    (
        prop_oneof![2 => Just(0), 1 => enum_of(8)],
        prop_oneof![2 => Just(0), 1 => enum_of(4)],
        prop_oneof![2 => Just(0), 1 => enum_of(12)],
        any::<bool>(),
        prop_oneof![3 => 0..10u32, 1 => select(vec![500, 501, u32::MAX])],
        prop_oneof![4 => Just(String::new()), 1 => text()],
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(status, risk, category, overdue_only, page_size, page_token, supervised)| {
                pb::ListCasesRequest {
                    status,
                    risk,
                    category,
                    overdue_only,
                    page_size,
                    page_token,
                    supervised,
                }
            },
        )
        .boxed()
}

pub fn review_case() -> BoxedStrategy<pb::ReviewCaseRequest> {
    (case_id(), prop::bool::weighted(0.7), note(), note())
        .prop_map(
            |(case_id, accept, reason, guidance)| pb::ReviewCaseRequest {
                case_id,
                accept,
                reason,
                guidance,
            },
        )
        .boxed()
}

pub fn assign_case() -> BoxedStrategy<pb::AssignCaseRequest> {
    (case_id(), line(), timestamp())
        .prop_map(|(case_id, handler, due_at)| pb::AssignCaseRequest {
            case_id,
            handler,
            due_at,
        })
        .boxed()
}

pub fn record_mediation() -> BoxedStrategy<pb::RecordMediationRequest> {
    (
        case_id(),
        enum_of(3),
        enum_of(4),
        line(),
        note(),
        enum_of(3),
    )
        .prop_map(
            |(case_id, method, mediation_type, mediator, notes, result)| {
                pb::RecordMediationRequest {
                    case_id,
                    method,
                    mediation_type,
                    mediator,
                    notes,
                    result,
                }
            },
        )
        .boxed()
}

pub fn resolve_case() -> BoxedStrategy<pb::ResolveCaseRequest> {
    (
        case_id(),
        any::<bool>(),
        line(),
        prop_oneof![1 => Just(0), 1 => amount()],
        enum_of(3),
    )
        .prop_map(
            |(case_id, resolved, agreement, settled_amount_fen, confirmation)| {
                pb::ResolveCaseRequest {
                    case_id,
                    resolved,
                    agreement,
                    settled_amount_fen,
                    confirmation,
                }
            },
        )
        .boxed()
}

pub fn record_follow_up() -> BoxedStrategy<pb::RecordFollowUpRequest> {
    (
        case_id(),
        prop_oneof![5 => 1..=5u32, 1 => any::<u32>(), 1 => Just(0u32)],
        note(),
    )
        .prop_map(|(case_id, satisfaction, notes)| pb::RecordFollowUpRequest {
            case_id,
            satisfaction,
            notes,
        })
        .boxed()
}

pub fn escalate_case() -> BoxedStrategy<pb::EscalateCaseRequest> {
    (case_id(), enum_of(2), line())
        .prop_map(|(case_id, mode, reason)| pb::EscalateCaseRequest {
            case_id,
            mode,
            reason,
        })
        .boxed()
}

/// A division code as a request names one.
fn node_code() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(vec![PARENT, CHILD, NODE, "610116002", "610116002001", "610000", "610116001002", "6101160010010"])
            .prop_map(String::from),
        1 => text(),
    ]
    .boxed()
}

pub fn transfer_case() -> BoxedStrategy<pb::TransferCaseRequest> {
    (case_id(), node_code(), line())
        .prop_map(|(case_id, to_node, reason)| pb::TransferCaseRequest {
            case_id,
            to_node,
            reason,
        })
        .boxed()
}

pub fn supervise_case() -> BoxedStrategy<pb::SuperviseCaseRequest> {
    (case_id(), line(), timestamp())
        .prop_map(|(case_id, instruction, due_at)| pb::SuperviseCaseRequest {
            case_id,
            instruction,
            due_at,
        })
        .boxed()
}

pub fn get_links() -> BoxedStrategy<pb::GetLinksRequest> {
    Just(pb::GetLinksRequest {}).boxed()
}

pub fn change_risk() -> BoxedStrategy<pb::ChangeRiskRequest> {
    (case_id(), enum_of(4), line())
        .prop_map(|(case_id, risk, reason)| pb::ChangeRiskRequest {
            case_id,
            risk,
            reason,
        })
        .boxed()
}

pub fn extend_deadline() -> BoxedStrategy<pb::ExtendDeadlineRequest> {
    // The harness's cases were accepted at its clock: their deadline may move into
    // (T0 + 30 days, T0 + 60 days].
    let resolve = 30 * DAY;
    let t0 = T0.millis() / 1000;
    let window = (1..=resolve + 1).prop_map(move |s| {
        Some(Timestamp {
            seconds: t0 + resolve + s,
            nanos: 0,
        })
    });
    (
        case_id(),
        prop_oneof![1 => timestamp(), 1 => window],
        line(),
    )
        .prop_map(|(case_id, until, reason)| pb::ExtendDeadlineRequest {
            case_id,
            until,
            reason,
        })
        .boxed()
}

pub fn list_alerts() -> BoxedStrategy<pb::ListAlertsRequest> {
    Just(pb::ListAlertsRequest {}).boxed()
}

pub fn export_report() -> BoxedStrategy<pb::ExportReportRequest> {
    prop_oneof![
        3 => select(vec![
            "", "day", "week", "month", "2024-04-01..2024-04-30", "2024-04-30", "2024-05-02",
            "2024-04-30..2024-04-01", "1900-01-01..2100-12-31", "2024-02-30", "year",
        ])
        .prop_map(String::from),
        1 => text(),
    ]
    .prop_map(|period| pb::ExportReportRequest { period })
    .boxed()
}

fn optional_text() -> BoxedStrategy<Option<String>> {
    prop_oneof![2 => Just(None), 2 => line().prop_map(Some), 1 => text().prop_map(Some)].boxed()
}

pub fn update_case_plan() -> BoxedStrategy<pb::UpdateCasePlanRequest> {
    (
        case_id(),
        optional_text(),
        optional_text(),
        optional_text(),
        optional_text(),
        optional_text(),
    )
        .prop_map(
            |(case_id, lead_leader, mediation_org, liaison_unit, plan, legal_briefing)| {
                pb::UpdateCasePlanRequest {
                    case_id,
                    lead_leader,
                    mediation_org,
                    liaison_unit,
                    plan,
                    legal_briefing,
                }
            },
        )
        .boxed()
}

pub fn add_case_progress() -> BoxedStrategy<pb::AddCaseProgressRequest> {
    (case_id(), line())
        .prop_map(|(case_id, text)| pb::AddCaseProgressRequest { case_id, text })
        .boxed()
}

pub fn list_audit_events() -> BoxedStrategy<pb::ListAuditEventsRequest> {
    (
        prop_oneof![3 => 0..20u32, 1 => select(vec![1000, 1001, u32::MAX])],
        timestamp(),
        prop_oneof![
            3 => select(vec!["", "fuzz", "director/fuzz", "spiffe://fengqiao/op/610116001/director/fuzz"]).prop_map(String::from),
            1 => text(),
        ],
        prop_oneof![3 => Just(String::new()), 1 => case_id()],
    )
        .prop_map(|(limit, since, actor, case_id)| pb::ListAuditEventsRequest {
            limit,
            since,
            actor,
            case_id,
        })
        .boxed()
}

pub fn export_cases() -> BoxedStrategy<pb::ExportCasesRequest> {
    (
        enum_of(2),
        (
            prop_oneof![2 => Just(0), 1 => enum_of(8)],
            prop_oneof![2 => Just(0), 1 => enum_of(4)],
            prop_oneof![2 => Just(0), 1 => enum_of(12)],
        ),
        (any::<bool>(), prop::bool::weighted(0.2)),
        prop_oneof![
            3 => Just(String::new()),
            1 => select(vec!["张三", "13812345678", "11010519491231002X", "种子"]).prop_map(String::from),
            1 => text(),
        ],
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(format, (status, risk, category), (overdue_only, supervised), query, (english, unmasked))| {
                pb::ExportCasesRequest {
                    format,
                    status,
                    risk,
                    category,
                    overdue_only,
                    supervised,
                    query,
                    english,
                    unmasked,
                }
            },
        )
        .boxed()
}

/// One cell of the import template's column `col`: a plausible value, or any text.
fn import_cell(col: usize) -> BoxedStrategy<String> {
    let good: Vec<&'static str> = match col {
        0 => vec![
            "2024-03-05",
            "2023-12-31",
            "2024年3月5日",
            "20240305",
            "2099-01-01",
            "1989-01-01",
        ],
        1 => vec!["劳动争议", "物业纠纷", "邻里纠纷", "其他", "不存在"],
        2 => vec!["窗口来访", "12348热线", "网上申请", "信访转办"],
        3 => vec!["讨薪：拖欠工资三个月", "邻里漏水", ""],
        4 => vec!["张三", "李四", ""],
        5 => vec!["13812345678", "010-12345678", "", "138"],
        6 => vec![
            "11010519491231002X",
            "110105491231002",
            "",
            "11010519491231002Y",
        ],
        7 => vec!["4400", "4,400.50", "0", "-1", "1e20", ""],
        _ => vec!["已办结", "未审核", "调解中", "已化解", "进行中"],
    };
    prop_oneof![6 => select(good).prop_map(String::from), 1 => text()].boxed()
}

/// A `.csv` in the import template: its header row (sometimes a column short), then rows.
fn import_csv() -> BoxedStrategy<Vec<u8>> {
    let row = (0..crate::domain::import::TEMPLATE_HEADERS.len())
        .map(import_cell)
        .collect::<Vec<_>>();
    (prop::bool::weighted(0.9), vec(row, 0..6))
        .prop_map(|(whole, rows)| {
            let headers = crate::domain::import::TEMPLATE_HEADERS;
            let header: Vec<String> = headers
                .iter()
                .take(if whole {
                    headers.len()
                } else {
                    headers.len() - 1
                })
                .map(|h| (*h).to_owned())
                .collect();
            let mut csv = crate::report::ledger::csv_line(&header);
            for r in rows {
                csv.push_str(&crate::report::ledger::csv_line(&r));
            }
            csv.into_bytes()
        })
        .boxed()
}

pub fn import_cases() -> BoxedStrategy<pb::ImportCasesRequest> {
    let template = crate::report::ledger::import_template().expect("the import template");
    prop_oneof![
        6 => import_csv().prop_map(|c| ("legacy.csv".to_owned(), c)),
        1 => Just(("template.xlsx".to_owned(), template)),
        1 => (
            prop_oneof![select(vec!["a.csv", "a.xlsx", "a.txt", "a", ".csv"]).prop_map(String::from), text()],
            vec(any::<u8>(), 0..512),
        ),
    ]
    .prop_map(|(file_name, content)| pb::ImportCasesRequest { file_name, content })
    .boxed()
}

fn username() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-z][a-z0-9._-]{2,20}",
        1 => select(vec!["clerk.li", "old.wang"]).prop_map(String::from),
        1 => text(),
    ]
    .boxed()
}

fn password() -> BoxedStrategy<String> {
    prop_oneof![
        2 => Just(String::new()),
        2 => "[a-z]{6,10}[0-9]{2}",
        1 => text(),
    ]
    .boxed()
}

pub fn add_user() -> BoxedStrategy<pb::AddUserRequest> {
    (
        username(),
        prop_oneof![
            5 => select(Role::ALL.map(Role::as_str).to_vec()).prop_map(String::from),
            1 => select(vec!["", "root", "Admin", " intake"]).prop_map(String::from),
            1 => text(),
        ],
        prop_oneof![3 => line(), 1 => text()],
        password(),
    )
        .prop_map(|(username, role, name, password)| pb::AddUserRequest {
            username,
            role,
            name,
            password,
        })
        .boxed()
}

pub fn list_users() -> BoxedStrategy<pb::ListUsersRequest> {
    Just(pb::ListUsersRequest {}).boxed()
}

pub fn set_user_enabled() -> BoxedStrategy<pb::SetUserEnabledRequest> {
    (username(), any::<bool>())
        .prop_map(|(username, enabled)| pb::SetUserEnabledRequest { username, enabled })
        .boxed()
}

pub fn reset_password() -> BoxedStrategy<pb::ResetPasswordRequest> {
    (username(), password())
        .prop_map(|(username, password)| pb::ResetPasswordRequest { username, password })
        .boxed()
}

fn key_name() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-z][a-z0-9_-]{2,20}",
        1 => select(vec!["hotline", "legacy"]).prop_map(String::from),
        1 => text(),
    ]
    .boxed()
}

pub fn add_api_key() -> BoxedStrategy<pb::AddApiKeyRequest> {
    (key_name(), prop_oneof![1 => Just(0), 4 => enum_of(7)])
        .prop_map(|(name, channel)| pb::AddApiKeyRequest { name, channel })
        .boxed()
}

pub fn list_api_keys() -> BoxedStrategy<pb::ListApiKeysRequest> {
    Just(pb::ListApiKeysRequest {}).boxed()
}

pub fn revoke_api_key() -> BoxedStrategy<pb::RevokeApiKeyRequest> {
    key_name()
        .prop_map(|name| pb::RevokeApiKeyRequest { name })
        .boxed()
}

pub fn backup() -> BoxedStrategy<pb::BackupRequest> {
    Just(pb::BackupRequest {}).boxed()
}

pub fn get_aggregates() -> BoxedStrategy<pb::GetAggregatesRequest> {
    (
        prop_oneof![2 => Just(String::new()), 3 => node_code()],
        timestamp(),
        timestamp(),
        vec(enum_of(6), 0..4),
    )
        .prop_map(
            |(scope_node, from, to, group_by)| pb::GetAggregatesRequest {
                scope_node,
                from,
                to,
                group_by,
            },
        )
        .boxed()
}
