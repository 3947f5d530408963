//! End to end: the citizens' channel (群众端) of a real `fqnode`, as a citizen uses it on a
//! phone (headless Chromium at 414×896) and as another system uses its Open311 API (the
//! independent Python client `georeport` from PyPI, and plain HTTP for the POST).
//!
//! Apply → receipt with the case id and 查询码 → the director accepts in the console → the
//! citizen sees 待办理; resolution → a poor rating reopens the case; rejection → the reason
//! and the guidance; a wrong code reveals nothing and answers as an unknown case; repeated
//! lookups are limited (频繁/稍后, HTTP 429 with Retry-After). API keys made, listed and
//! revoked with fqctl; a POST without a key refused; the public list empty.

mod support;

use std::path::Path;
use std::process::Command;

use fengqiao_proto::v1 as pb;
use support::browser::Browser;
use support::*;

const VILLAGE: &str = "610116001001";
const PASSWORD: &str = "zongzhi2026";
const NAME: &str = "东街村综治中心";

/// A node with the console and the citizens' channel (no captcha; small lookup limits).
fn public_node(pki: &Pki, root: &Path, limits: &str) -> NodeProc {
    NodeProc::start_with(
        pki,
        root,
        VILLAGE,
        &NodeOpts {
            web: true,
            public: true,
            extra: format!("{FAST_LINKS}\n[public]\ncaptcha = false\n{limits}\n"),
            env: vec![("FENGQIAO__NAME".into(), NAME.into())],
            ..NodeOpts::default()
        },
    )
}

fn base(node: &NodeProc) -> String {
    format!(
        "https://{}",
        node.public.expect("the node serves the public side")
    )
}

fn console(node: &NodeProc) -> String {
    format!("https://{}", node.web.expect("the node serves a console"))
}

fn add_director(pki: &Pki, node: &NodeProc) {
    let args = [
        "user",
        "add",
        "director",
        "--role",
        "director",
        "--password-stdin",
    ];
    let (code, _, err) = fqctl_as_stdin(pki, node, "admin", &args, PASSWORD);
    assert_eq!(code, 0, "user add: {err}");
}

/// Fills in and sends the application form (the browser is at `/apply`).
async fn apply(b: &Browser, name: &str, phone: &str, id_number: &str, summary: &str) {
    b.fill("姓名", name).await;
    b.fill("电话", phone).await;
    b.fill("身份证号", id_number).await;
    b.choose("类别", "劳动争议").await;
    b.fill("事项简述", summary).await;
    b.fill("被申请人", "某建筑公司").await;
    let consent = b.labelled("我已阅读并同意上述个人信息处理告知").await;
    if consent.prop("checked").await.unwrap().as_deref() != Some("true") {
        consent.click().await.unwrap();
    }
    b.press("提交").await;
}

/// The case id and lookup code a receipt shows.
async fn receipt(b: &Browser) -> (String, String) {
    let text = b.wait_text("查询码：").await;
    let after = |label: &str| -> String {
        text.split(label)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {label} in {text}"))
            .to_owned()
    };
    (after("受理编号："), after("查询码："))
}

/// Looks a case up on the query page.
async fn look_up(b: &Browser, url: &str, case_id: &str, code: &str) -> String {
    b.goto(&format!("{url}/query")).await;
    b.fill("受理编号", case_id).await;
    b.fill("查询码", code).await;
    b.press("查询").await;
    b.wait_text("查询其他案件").await
}

async fn look_up_refused(b: &Browser, url: &str, case_id: &str, code: &str) -> String {
    b.goto(&format!("{url}/query")).await;
    b.fill("受理编号", case_id).await;
    b.fill("查询码", code).await;
    b.press("查询").await;
    let p = b.find("p.error").await;
    p.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_follow_rate_and_be_refused_on_a_phone() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = public_node(&pki, root.path(), "lookups_per_minute = 25\n");
    add_director(&pki, &node);
    let url = base(&node);
    let b = Browser::start(414, 896).await;

    // The home page: a way to apply and a way to look up.
    b.goto(&format!("{url}/")).await;
    let home = b.wait_text("申请").await;
    assert!(home.contains(NAME), "{home}");
    let links = b.all("a.tile").await;
    let mut texts = Vec::new();
    for l in &links {
        texts.push(l.text().await.unwrap());
    }
    assert!(texts.iter().any(|t| t.contains("申请")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("查询")), "{texts:?}");
    b.follow("申请调解").await;
    b.wait_path("/apply").await;
    assert!(
        b.unlabelled_controls().await.is_empty(),
        "controls without a Chinese label: {:?}",
        b.unlabelled_controls().await
    );

    // A wrong check character is caught, nothing saved, nothing typed lost.
    apply(
        &b,
        "张三",
        "13812345678",
        "610102199001011234",
        "工地拖欠工资三个月",
    )
    .await;
    b.wait_text("身份证号：").await;
    assert_eq!(
        b.labelled("事项简述")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("工地拖欠工资三个月")
    );
    let mut c = operator_client(&pki, &node, VILLAGE, "director", "check").await;
    assert!(
        list_all(&mut c, pb::ListCasesRequest::default())
            .await
            .is_empty()
    );
    b.fill("身份证号", "610102199001011231").await;
    let consent = b.labelled("我已阅读并同意上述个人信息处理告知").await;
    if consent.prop("checked").await.unwrap().as_deref() != Some("true") {
        consent.click().await.unwrap();
    }
    let sent = b
        .client
        .execute(
            "return Array.from(new FormData(document.querySelector('form.stack')));",
            vec![],
        )
        .await
        .unwrap();
    b.press("提交").await;
    let (case_id, code) = receipt(&b).await;
    assert!(case_id.starts_with(VILLAGE), "{case_id}");
    // The same form sent again (a double tap, a resent page): the same case.
    b.client
        .execute(
            "const f = document.createElement('form'); f.method = 'post'; f.action = '/apply';
             for (const [k, v] of arguments[0]) {
               const i = document.createElement('input');
               i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
             }
             document.body.appendChild(f); f.submit();",
            vec![sent],
        )
        .await
        .unwrap();
    b.wait_text("申请已提交过").await;
    let (again, _) = receipt(&b).await;
    assert_eq!(again, case_id, "the same form names the same case");
    let cases = list_all(&mut c, pb::ListCasesRequest::default()).await;
    assert_eq!(cases.len(), 1, "one case for one application");
    let case = get(&mut c, &case_id).await;
    assert_eq!(case.channel, pb::Channel::Online as i32);
    assert_eq!(case.status, pb::CaseStatus::Registered as i32);
    assert_eq!(case.parties.len(), 2, "the respondent named");

    // Before review: received, the answer's deadline shown; nothing unmasked.
    let page = look_up(&b, &url, &case_id, &code).await;
    assert!(page.contains("未审核"), "{page}");
    assert!(page.contains("前答复是否受理"), "{page}");
    assert!(page.contains("张*"), "the applicant masked: {page}");
    for clear in ["张三", "13812345678", "610102199001011231"] {
        assert!(!page.contains(clear), "{clear} on the page: {page}");
    }

    // The director accepts it in the console; the citizen sees 待办理.
    let admin = console(&node);
    b.sign_in(&admin, "director", PASSWORD).await;
    b.wait_path("/").await;
    b.goto(&format!("{admin}/cases/{case_id}")).await;
    b.wait_text("受理意见").await;
    b.press("受理").await;
    b.wait_path(&format!("/cases/{case_id}?done=accept")).await;
    let page = look_up(&b, &url, &case_id, &code).await;
    assert!(page.contains("待办理"), "{page}");
    assert!(page.contains("予以受理"), "{page}");

    // Dispatched, mediated, resolved (through the API), then rated poorly: reopened.
    c.assign_case(pb::AssignCaseRequest {
        case_id: case_id.clone(),
        handler: "司法所".into(),
        due_at: None,
    })
    .await
    .unwrap();
    c.record_mediation(pb::RecordMediationRequest {
        case_id: case_id.clone(),
        method: pb::MediationMethod::FaceToFace as i32,
        mediation_type: pb::MediationType::Peoples as i32,
        mediator: "张调解".into(),
        notes: "内部记录：当事人情绪激动".into(),
        result: pb::MediationResult::Agreed as i32,
    })
    .await
    .unwrap();
    c.resolve_case(pb::ResolveCaseRequest {
        case_id: case_id.clone(),
        resolved: true,
        agreement: "公司于十日内付清工资".into(),
        settled_amount_fen: 1_200_000,
        confirmation: pb::Confirmation::None as i32,
    })
    .await
    .unwrap();
    let page = look_up(&b, &url, &case_id, &code).await;
    for shown in [
        "已交由司法所办理",
        "第1次调解",
        "化解成功",
        "12000.00",
        "评价办理结果",
    ] {
        assert!(page.contains(shown), "{shown} missing: {page}");
    }
    assert!(!page.contains("情绪激动"), "a staff note shown: {page}");
    assert!(
        b.unlabelled_controls().await.is_empty(),
        "{:?}",
        b.unlabelled_controls().await
    );
    b.find("label[for=stars2]").await.click().await.unwrap();
    b.fill("评价意见", "工资只付了一半").await;
    b.press("提交评价").await;
    let page = b.wait_text("感谢您的评价").await;
    assert!(page.contains("重新办理"), "{page}");
    assert!(page.contains("调解中"), "{page}");
    assert!(!page.contains("评价办理结果"), "rated once: {page}");
    let case = get(&mut c, &case_id).await;
    assert_eq!(case.status, pb::CaseStatus::InMediation as i32);
    assert_eq!(case.reopen_count, 1);
    let history = c
        .get_case_history(pb::GetCaseRequest {
            case_id: case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    // (The reopen also opens supervision by the parent: `early_warning.reopen_supervise`.)
    let reopened = history
        .iter()
        .find(|e| e.kind == "reopened")
        .expect("a reopened event");
    assert!(reopened.actor.starts_with("public:"), "{}", reopened.actor);

    // A wrong code answers exactly as an unknown case, and shows nothing of it.
    let wrong = look_up_refused(&b, &url, &case_id, "ABCD-EFGH-JKMN").await;
    let unknown = look_up_refused(
        &b,
        &url,
        &format!("{VILLAGE}-20200101-000009"),
        "ABCD-EFGH-JKMN",
    )
    .await;
    assert_eq!(wrong, unknown);
    assert!(wrong.contains("未找到"), "{wrong}");
    let page = b.text().await;
    assert!(!page.contains("工地拖欠工资"), "{page}");

    // A second application, rejected with a reason and guidance.
    b.goto(&format!("{url}/apply")).await;
    apply(&b, "李四", "13900001111", "", "邻居装修噪音扰民").await;
    let (second, second_code) = receipt(&b).await;
    c.review_case(pb::ReviewCaseRequest {
        case_id: second.clone(),
        accept: false,
        reason: "属于物业管理范围".into(),
        guidance: "请向小区物业服务中心反映，或拨打12345".into(),
    })
    .await
    .unwrap();
    let page = look_up(&b, &url, &second, &second_code).await;
    for shown in ["已拒绝", "属于物业管理范围", "请向小区物业服务中心反映"] {
        assert!(page.contains(shown), "{shown} missing: {page}");
    }

    // Repeated wrong lookups are limited: 频繁, 稍后.
    let mut limited = false;
    for i in 0..30 {
        b.goto(&format!("{url}/query")).await;
        b.fill("受理编号", &second).await;
        b.fill("查询码", "ZZZZ-ZZZZ-ZZZZ").await;
        b.press("查询").await;
        let p = b.find("p.error").await.text().await.unwrap();
        if p.contains("频繁") {
            assert!(p.contains("稍后"), "{p}");
            assert!(i > 0, "limited at once");
            limited = true;
            break;
        }
    }
    assert!(limited, "30 wrong lookups were never limited");
    b.close().await;
}

/// Runs the Open311 client script with `args`; its stdout (one JSON value).
fn open311(python: &Path, ca: &Path, args: &[&str]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/open311_client.py");
    let out = Command::new(python)
        .arg(&script)
        .args(args)
        .env("REQUESTS_CA_BUNDLE", ca)
        .output()
        .expect("run the Open311 client");
    assert!(
        out.status.success(),
        "open311_client {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open311_with_an_independent_client() {
    init();
    let python = support::python::with_packages();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = public_node(&pki, root.path(), "lookups_per_minute = 40\n");
    let root311 = format!("{}/open311/v2", base(&node));

    // A key for the 12348 hotline's system, made and listed by county IT.
    let (code, out, err) = fqctl_as(
        &pki,
        &node,
        "admin",
        &["apikey", "add", "hotline", "--channel", "hotline-12348"],
    );
    assert_eq!(code, 0, "{err}");
    let key = out.split_whitespace().last().unwrap().to_owned();
    assert!(key.starts_with("hotline."), "{out}");
    let (code, out, _) = fqctl_as(&pki, &node, "director", &["apikey", "list"]);
    assert_ne!(code, 0, "a director keeps no keys: {out}");
    let (code, out, err) = fqctl_as(&pki, &node, "admin", &["apikey", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("hotline") && out.contains("12348热线"),
        "{out}"
    );
    assert!(
        !out.contains(key.split('.').nth(1).unwrap()),
        "no secret in the list"
    );

    // The read side through georeport, the POST in plain HTTP (requests).
    let r = open311(&python, &pki.ca(), &["submit", &root311, &key, NAME]);
    let id = r["service_request_id"].as_str().unwrap().to_owned();
    let case_id = id.split('.').next().unwrap().to_owned();
    let mut c = operator_client(&pki, &node, VILLAGE, "director", "check").await;
    let case = get(&mut c, &case_id).await;
    assert_eq!(case.channel, pb::Channel::Hotline12348 as i32);
    assert_eq!(case.status, pb::CaseStatus::Registered as i32);
    assert_eq!(case.parties[0].name, "王五");
    assert_eq!(
        list_all(&mut c, pb::ListCasesRequest::default())
            .await
            .len(),
        1
    );

    // Rejected: closed, with the reason and guidance as status_notes.
    c.review_case(pb::ReviewCaseRequest {
        case_id: case_id.clone(),
        accept: false,
        reason: "已由法院立案".into(),
        guidance: "请关注法院通知".into(),
    })
    .await
    .unwrap();
    let r = open311(&python, &pki.ca(), &["status", &root311, &id]);
    assert_eq!(r["status"], "closed", "{r}");
    let notes = r["status_notes"].as_str().unwrap();
    assert!(
        notes.contains("已由法院立案") && notes.contains("请关注法院通知"),
        "{notes}"
    );

    // A revoked key is refused from then on.
    let (code, _, err) = fqctl_as(&pki, &node, "admin", &["apikey", "revoke", "hotline"]);
    assert_eq!(code, 0, "{err}");
    open311(&python, &pki.ca(), &["refused", &root311, &key]);

    // Lookups are limited: 429 with Retry-After.
    open311(&python, &pki.ca(), &["limited", &root311]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_captcha_guards_the_form() {
    init();
    let python = support::python::with_packages();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    // The default [public] section: the captcha on.
    let node = NodeProc::start_with(
        &pki,
        root.path(),
        VILLAGE,
        &NodeOpts {
            public: true,
            extra: format!("{FAST_LINKS}\n[public]\n"),
            ..NodeOpts::default()
        },
    );
    open311(&python, &pki.ca(), &["captcha", &base(&node)]);
    let mut c = operator_client(&pki, &node, VILLAGE, "director", "check").await;
    assert!(
        list_all(&mut c, pb::ListCasesRequest::default())
            .await
            .is_empty(),
        "nothing saved without the captcha's answer"
    );
}
