//! End to end in a real browser: the staff web console of real `fqnode` processes, driven in
//! headless Chromium over WebDriver, as the people at a center use it — by the labels on the
//! screen. Sign-in, the one-time password, lockout and its audit; intake through the form to
//! closing through the case page; search by phone; the repeat-visit hint; roles that see no
//! button they may not press, and forged or token-less posts refused with nothing changed;
//! an auditor's pages without a clear phone or ID number; a red village case at the county's
//! console as a supervised copy; a chart whose numbers equal GetAggregates.

mod support;

use std::time::Duration;

use fengqiao_proto::v1 as pb;
use support::browser::Browser;
use support::*;

const VILLAGE: &str = "610116001001";
const COUNTY: &str = "610116";
const TOWNSHIP: &str = "610116001";
const PASSWORD: &str = "zongzhi2026";

fn web_node(pki: &Pki, root: &std::path::Path, code: &str, parent: Option<String>) -> NodeProc {
    NodeProc::start_with(
        pki,
        root,
        code,
        &NodeOpts {
            web: true,
            parent,
            ..NodeOpts::default()
        },
    )
}

fn base(node: &NodeProc) -> String {
    format!("https://{}", node.web.expect("the node serves a console"))
}

/// Adds console account `username` with `role` and the test password (admin certificate).
fn add_user(pki: &Pki, node: &NodeProc, username: &str, role: &str, name: &str) {
    let args = [
        "user",
        "add",
        username,
        "--role",
        role,
        "--name",
        name,
        "--password-stdin",
    ];
    let (code, _, err) = fqctl_as_stdin(pki, node, "admin", &args, PASSWORD);
    assert_eq!(code, 0, "user add {username}: {err}");
}

async fn cases_at(pki: &Pki, node: &NodeProc) -> Vec<pb::Case> {
    let mut c = operator_client(pki, node, &node.code, "director", "check").await;
    list_all(&mut c, pb::ListCasesRequest::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_one_time_password_lockout_and_audit() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = web_node(&pki, root.path(), VILLAGE, None);
    let url = base(&node);

    // An account with a one-time password, as county IT hands it over.
    let (code, out, err) = fqctl_as(
        &pki,
        &node,
        "admin",
        &[
            "--json", "user", "add", "li.ming", "--role", "intake", "--name", "李明",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let added: serde_json::Value = serde_json::from_str(&out).unwrap();
    let one_time = added["one_time_password"].as_str().unwrap().to_owned();

    let b = Browser::start(1366, 768).await;
    // Nothing without signing in.
    b.goto(&format!("{url}/cases")).await;
    assert_eq!(b.path().await, "/login");
    b.sign_in(&url, "li.ming", &one_time).await;
    // The one-time password must be changed first.
    b.wait_text("一次性密码").await;
    assert_eq!(b.path().await, "/password");
    b.goto(&format!("{url}/cases")).await;
    assert_eq!(
        b.path().await,
        "/password",
        "nothing else before the change"
    );
    b.fill("当前密码", &one_time).await;
    b.fill("新密码（至少10位，含字母和数字）", PASSWORD).await;
    b.fill("再次输入新密码", PASSWORD).await;
    b.press("保存").await;
    b.wait_path("/").await;
    for label in ["工作台", "登记", "案件", "预警", "统计", "链路"] {
        b.follow(label).await;
        b.wait_text(label).await;
        assert!(
            b.unlabelled_controls().await.is_empty(),
            "controls without a Chinese label on {label}: {:?}",
            b.unlabelled_controls().await
        );
    }
    b.press("退出").await;
    // The sign-out's navigation ends at the sign-in page before anything else is loaded.
    b.wait_path("/login").await;
    b.wait_text("用户名").await;

    // Five wrong passwords lock the account; the right one is then refused too.
    for _ in 0..5 {
        b.sign_in(&url, "li.ming", "wrong-password-1").await;
        b.wait_text("用户名或密码错误").await;
    }
    b.sign_in(&url, "li.ming", PASSWORD).await;
    b.wait_text("账号已锁定").await;
    // County IT sees it locked, and unlocks it.
    let (code, out, err) = fqctl_as(&pki, &node, "admin", &["--json", "user", "list"]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let li = listed
        .as_array()
        .and_then(|a| a.iter().find(|u| u["username"] == "li.ming"))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(li["locked"], true, "{out}");
    let (code, _, err) = fqctl_as(&pki, &node, "admin", &["user", "enable", "li.ming"]);
    assert_eq!(code, 0, "{err}");
    b.sign_in(&url, "li.ming", PASSWORD).await;
    b.wait_path("/").await;
    b.close().await;

    // Every step is in the audit log.
    let (code, out, err) = fqctl_as(
        &pki,
        &node,
        "auditor",
        &["--json", "audit", "--limit", "100"],
    );
    assert_eq!(code, 0, "{err}");
    for what in [
        "Login",
        "LoginFailed",
        "Lockout",
        "LoginRefused locked",
        "Logout",
        "ChangePassword",
        "EnableUser li.ming",
    ] {
        assert!(
            out.contains(&format!("\"{what}\"")),
            "no {what} in the audit log: {out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_to_closing_through_the_pages() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = web_node(&pki, root.path(), VILLAGE, None);
    let url = base(&node);
    add_user(&pki, &node, "clerk", "intake", "李窗口");
    add_user(&pki, &node, "mediator", "mediator", "张调解");

    let b = Browser::start(1366, 768).await;
    b.sign_in(&url, "clerk", PASSWORD).await;
    b.wait_path("/").await;
    b.follow("登记").await;
    b.choose("类别", "劳动争议").await;
    b.choose("受理渠道", "窗口来访").await;
    b.choose("风险等级", "黄").await;
    b.fill("摘要", "讨薪：拖欠工资三个月").await;
    b.fill("标的额（元）", "4400").await;
    // A wrong check digit is caught before anything is saved, and nothing typed is lost.
    let names = b.all("input[name=party_name]").await;
    names[0].send_keys("张三").await.unwrap();
    b.all("input[name=party_phone]").await[0]
        .send_keys("13812345678")
        .await
        .unwrap();
    b.all("input[name=party_id]").await[0]
        .send_keys("610102199001011234")
        .await
        .unwrap();
    names[1].send_keys("某建筑公司").await.unwrap();
    b.press("保存登记").await;
    b.wait_text("身份证号").await;
    b.wait_text("GB 11643").await;
    assert!(cases_at(&pki, &node).await.is_empty(), "nothing saved");
    let summary = b.labelled("摘要").await.prop("value").await.unwrap();
    assert_eq!(summary.as_deref(), Some("讨薪：拖欠工资三个月"));
    // A party added and removed again.
    b.press("添加当事人").await;
    b.wait_count("input[name=party_name]", 3).await;
    b.all("button[name=remove]").await[2].click().await.unwrap();
    b.wait_count("input[name=party_name]", 2).await;
    let id_box = b.all("input[name=party_id]").await.remove(0);
    id_box.clear().await.unwrap();
    id_box.send_keys("610102199001011231").await.unwrap();
    b.press("保存登记").await;
    let page = b.wait_text("已登记").await;
    assert!(page.contains("查询码"), "{page}");
    let id = b
        .path()
        .await
        .trim_start_matches("/cases/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let cases = cases_at(&pki, &node).await;
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].id, id);
    assert_eq!(cases[0].amount_fen, 440_000, "yuan stored as fen");

    // 受理, then 派单 to the mediator (the clerk may do both).
    assert!(
        !b.has_button("保存调解记录").await,
        "an intake clerk records no mediation"
    );
    b.press("受理").await;
    b.wait_path(&format!("/cases/{id}?done=accept")).await;
    b.fill("承办部门或调解员", "张调解").await;
    b.press("派单").await;
    b.wait_path(&format!("/cases/{id}?done=assign")).await;

    // Search by the applicant's phone, as typed with spaces.
    b.follow("案件").await;
    b.fill(
        "搜索（案件编号、查询码、电话、身份证号、姓名或摘要）",
        "138 1234 5678",
    )
    .await;
    b.press("查询").await;
    b.wait_text("按电话查找：1 件").await;
    let link = b.find(&format!("a[href='/cases/{id}']")).await;
    assert_eq!(link.text().await.unwrap(), id);

    // The list as a 台账, in CSV and in Excel: masked, the case in it.
    let csv = b
        .client
        .execute(
            "const r = await fetch('/cases.csv'); return [r.status, await r.text()];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(csv[0], 200);
    let csv = csv[1].as_str().unwrap();
    assert!(csv.contains("序号,案件编号,"), "{csv}");
    assert!(csv.contains(&id) && csv.contains("138****5678"), "{csv}");
    assert!(!csv.contains("13812345678"), "masked: {csv}");
    let xlsx = b
        .client
        .execute(
            "const r = await fetch('/cases.xlsx'); const b = new Uint8Array(await r.arrayBuffer()); \
             return [r.status, r.headers.get('content-type'), b.length, b[0], b[1]];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(xlsx[0], 200);
    assert!(
        xlsx[1].as_str().unwrap().contains("spreadsheetml"),
        "{xlsx:?}"
    );
    assert!(xlsx[2].as_u64().unwrap() > 1000);
    assert_eq!(
        (xlsx[3].as_u64(), xlsx[4].as_u64()),
        (Some(80), Some(75)),
        "PK: a zip"
    );

    // The same phone again at the window: the repeat-visit hint comes before saving.
    b.follow("登记").await;
    b.fill("摘要", "再次来访：工资仍未支付").await;
    b.all("input[name=party_name]").await[0]
        .send_keys("张三")
        .await
        .unwrap();
    b.all("input[name=party_phone]").await[0]
        .send_keys("13812345678")
        .await
        .unwrap();
    b.press("保存登记").await;
    b.wait_text("重复来访提示").await;
    assert_eq!(
        cases_at(&pki, &node).await.len(),
        1,
        "not saved before the hint"
    );
    b.labelled("已核实重复来访，仍然登记")
        .await
        .click()
        .await
        .unwrap();
    b.press("保存登记").await;
    b.wait_text("已登记").await;
    assert_eq!(cases_at(&pki, &node).await.len(), 2);
    b.press("退出").await;
    // The sign-out's navigation ends at the sign-in page before anything else is loaded.
    b.wait_path("/login").await;

    // The mediator finds the case dispatched to them and carries it to the end.
    b.sign_in(&url, "mediator", PASSWORD).await;
    b.wait_text("派给我的").await;
    b.find(&format!("#mine a[href='/cases/{id}']"))
        .await
        .click()
        .await
        .unwrap();
    b.wait_text("调解记录").await;
    b.fill("调解员", "张调解").await;
    b.fill("调解情况", "双方到场，达成分期支付意向").await;
    b.choose("调解结果", "达成协议").await;
    b.press("保存调解记录").await;
    b.wait_path(&format!("/cases/{id}?done=mediation")).await;
    b.fill("协议内容或引导意见", "公司于十日内支付4400元").await;
    b.fill("履行金额（元）", "4400").await;
    b.choose("确认方式", "司法确认").await;
    b.press("登记结果").await;
    b.wait_path(&format!("/cases/{id}?done=resolve")).await;
    b.choose("满意度（1–5）", "5").await;
    b.fill("回访记录", "当事人满意").await;
    b.press("保存回访").await;
    b.wait_path(&format!("/cases/{id}?done=follow-up")).await;
    let page = b.wait_text("已办结").await;
    for step in [
        "登记受理",
        "审核通过",
        "派单",
        "调解记录",
        "化解成功",
        "回访办结",
    ] {
        assert!(page.contains(step), "timeline lacks {step}: {page}");
    }
    let closed = get(
        &mut operator_client(&pki, &node, VILLAGE, "director", "check").await,
        &id,
    )
    .await;
    assert_eq!(closed.status, pb::CaseStatus::Closed as i32);
    assert_eq!(closed.settled_amount_fen, 440_000);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_forged_posts_and_an_auditors_masked_pages() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = web_node(&pki, root.path(), VILLAGE, None);
    let url = base(&node);
    add_user(&pki, &node, "director", "director", "王主任");
    add_user(&pki, &node, "auditor", "auditor", "赵审计");
    let mut c = operator_client(&pki, &node, VILLAGE, "director", "setup").await;
    let mut req = register_request("console-roles-1");
    req.parties[0].id_number = "610102199001011231".into();
    req.summary = "讨薪，联系电话13812345678".into();
    let id = c.register_case(req).await.unwrap().into_inner().id;

    let b = Browser::start(1366, 768).await;
    // The auditor sees the case, masked, with no action; a forged accept is refused.
    b.sign_in(&url, "auditor", PASSWORD).await;
    b.wait_path("/").await;
    b.goto(&format!("{url}/cases/{id}")).await;
    b.wait_text("未审核").await;
    assert!(!b.has_button("受理").await, "an auditor has no 受理");
    assert!(!b.has_button("不予受理").await);
    for path in ["/", "/cases", &format!("/cases/{id}"), "/cases?status=1"] {
        b.goto(&format!("{url}{path}")).await;
        let html = b.source().await;
        for clear in ["13812345678", "610102199001011231", "02988886666"] {
            assert!(!html.contains(clear), "{clear} in clear on {path}");
        }
    }
    b.goto(&format!("{url}/cases/{id}")).await;
    let forged = b
        .client
        .execute(
            r#"const csrf = document.querySelector('input[name=csrf]').value;
               const r = await fetch(arguments[0], {method: 'POST',
                 headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                 body: 'csrf=' + csrf + '&reason=x'});
               return r.status;"#,
            vec![serde_json::json!(format!("/cases/{id}/accept"))],
        )
        .await
        .unwrap();
    assert_eq!(
        forged,
        serde_json::json!(403),
        "a role without the permission"
    );
    assert_eq!(
        get(&mut c, &id).await.status,
        pb::CaseStatus::Registered as i32,
        "nothing changed"
    );
    b.press("退出").await;
    // The sign-out's navigation ends at the sign-in page before anything else is loaded.
    b.wait_path("/login").await;

    // The director's form without its token is refused, with nothing changed.
    b.sign_in(&url, "director", PASSWORD).await;
    b.wait_path("/").await;
    b.goto(&format!("{url}/cases/{id}")).await;
    b.wait_text("受理意见").await;
    b.client
        .execute(
            "document.querySelectorAll('form.act input[name=csrf]').forEach(e => e.remove());",
            vec![],
        )
        .await
        .unwrap();
    b.press("受理").await;
    b.wait_text("表单已失效").await;
    assert_eq!(
        get(&mut c, &id).await.status,
        pb::CaseStatus::Registered as i32
    );
    // With it, the director accepts; the view of personal data is audited.
    b.goto(&format!("{url}/cases/{id}")).await;
    let page = b.wait_text("受理意见").await;
    assert!(page.contains("13812345678"), "the director sees the phone");
    assert!(
        b.unlabelled_controls().await.is_empty(),
        "controls without a Chinese label on the case page: {:?}",
        b.unlabelled_controls().await
    );
    b.press("受理").await;
    b.wait_path(&format!("/cases/{id}?done=accept")).await;
    assert_eq!(
        get(&mut c, &id).await.status,
        pb::CaseStatus::Accepted as i32
    );
    b.close().await;
    let (code, out, err) = fqctl_as(&pki, &node, "auditor", &["--json", "audit", "--case", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("director/director"),
        "console view audited: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_red_village_case_at_the_county_console_and_its_figures() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let county = web_node(&pki, root.path(), COUNTY, None);
    let township = web_node(&pki, root.path(), TOWNSHIP, Some(county.federation_url()));
    let village = web_node(&pki, root.path(), VILLAGE, Some(township.federation_url()));
    linked(&pki, &county, COUNTY, TOWNSHIP).await;
    linked(&pki, &township, TOWNSHIP, VILLAGE).await;
    add_user(&pki, &county, "leader", "director", "刘书记");
    add_user(&pki, &village, "director", "director", "王主任");

    // Cases at the village: one red (the county follows it), two others.
    let mut c = operator_client(&pki, &village, VILLAGE, "director", "setup").await;
    let red = request(
        "console-red",
        pb::RiskLevel::Red,
        "610102199001011231",
        "某建筑公司",
    );
    let red_id = c.register_case(red).await.unwrap().into_inner().id;
    let mut other = request(
        "console-2",
        pb::RiskLevel::Blue,
        "610102199002021236",
        "某物业公司",
    );
    other.category = pb::Category::PropertyManagement as i32;
    c.register_case(other).await.unwrap();
    c.register_case(request(
        "console-3",
        pb::RiskLevel::Yellow,
        "610102199003031237",
        "某餐馆",
    ))
    .await
    .unwrap();

    let b = Browser::start(1366, 768).await;
    b.sign_in(&base(&county), "leader", PASSWORD).await;
    b.wait_path("/").await;
    // The supervised copy arrives (the federation is asynchronous).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        b.goto(&format!("{}/cases?supervised=1", base(&county)))
            .await;
        if !b
            .all(&format!("a[href='/cases/{red_id}']"))
            .await
            .is_empty()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no supervised copy at the county"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    b.find(&format!("a[href='/cases/{red_id}']"))
        .await
        .click()
        .await
        .unwrap();
    let page = b.wait_text("督办副本").await;
    assert!(page.contains(VILLAGE), "{page}");
    assert!(!page.contains("13812345678"), "a copy is masked");
    assert!(b.has_button("下达督办").await, "the county may order");
    assert!(!b.has_button("受理").await, "a copy is read-only");
    // 督办 from the county's console reaches the village's case.
    b.fill("督办意见", "请三日内约谈双方并报告进展").await;
    b.press("下达督办").await;
    b.wait_path(&format!("/cases/{red_id}?done=supervise"))
        .await;
    eventually(
        "the order in the village's history",
        Duration::from_secs(60),
        || {
            let mut c = c.clone();
            let id = red_id.clone();
            async move {
                let h = c
                    .get_case_history(pb::GetCaseRequest { case_id: id })
                    .await
                    .ok()?
                    .into_inner();
                h.events
                    .iter()
                    .any(|e| e.kind == "supervision_order" && e.detail.contains("约谈"))
                    .then_some(())
            }
        },
    )
    .await;

    // 统计: the county's chart by category, equal to GetAggregates.
    let stats = {
        let (cert, key) = pki.operator(COUNTY, "director", "figures");
        pb::stats_service_client::StatsServiceClient::new(
            channel(county.listen, &pki.ca(), Some((&cert, &key)))
                .await
                .expect("channel"),
        )
    };
    let want = eventually(
        "figures of the village at the county",
        Duration::from_secs(60),
        || {
            let mut stats = stats.clone();
            async move {
                let a = stats
                    .get_aggregates(pb::GetAggregatesRequest {
                        scope_node: String::new(),
                        from: None,
                        to: None,
                        group_by: vec![pb::GroupBy::Category as i32],
                    })
                    .await
                    .ok()?
                    .into_inner();
                (a.totals.as_ref()?.received == 3).then_some(a)
            }
        },
    )
    .await;
    b.follow("统计").await;
    b.wait_text("按类别").await;
    let rows = b.all("table[data-group=category] tbody tr").await;
    let mut shown = Vec::new();
    for row in rows {
        let cells = row.find_all(fantoccini::Locator::Css("td")).await.unwrap();
        let label = cells[0].text().await.unwrap();
        let received: u64 = cells[1].text().await.unwrap().parse().unwrap();
        shown.push((label, received));
    }
    let group = &want.groups[0];
    assert_eq!(shown.len(), group.rows.len(), "{shown:?}");
    for row in &group.rows {
        let category = match row.key {
            Some(pb::group_row::Key::Category(c)) => c,
            ref other => panic!("unexpected row {other:?}"),
        };
        let label = match pb::Category::try_from(category) {
            Ok(pb::Category::Labor) => "劳动争议",
            Ok(pb::Category::PropertyManagement) => "物业纠纷",
            other => panic!("unexpected {other:?}"),
        };
        let received = row.figures.as_ref().unwrap().received;
        assert!(
            shown.contains(&(label.to_owned(), received)),
            "{label} {received} not in {shown:?}"
        );
    }
    b.press("退出").await;
    // The sign-out's navigation ends at the sign-in page before anything else is loaded.
    b.wait_path("/login").await;

    // At the village, the red case is in the queue of cases followed from above, and the
    // director hands another case up to the township (提级办理) from its page.
    let vurl = base(&village);
    b.sign_in(&vurl, "director", PASSWORD).await;
    b.wait_text("上级督办").await;
    b.find(&format!("#from-above a[href='/cases/{red_id}']"))
        .await;
    let other_id = list_all(&mut c, pb::ListCasesRequest::default())
        .await
        .into_iter()
        .map(|x| x.id)
        .find(|x| *x != red_id)
        .unwrap();
    b.goto(&format!("{vurl}/cases/{other_id}")).await;
    b.choose("方式", "提级办理（上级接办）").await;
    b.fill("提级理由", "涉及多个村，需乡镇统筹").await;
    b.press("提级").await;
    b.wait_path(&format!("/cases/{other_id}?done=escalate"))
        .await;
    b.wait_text("已移交").await;
    let mut t = operator_client(&pki, &township, TOWNSHIP, "director", "check").await;
    eventually(
        "the township to own the case",
        Duration::from_secs(60),
        || {
            let mut t = t.clone();
            let id = other_id.clone();
            async move {
                let got = t
                    .get_case(pb::GetCaseRequest { case_id: id })
                    .await
                    .ok()?
                    .into_inner();
                (got.owner_node == TOWNSHIP && got.status != pb::CaseStatus::Transferred as i32)
                    .then_some(())
            }
        },
    )
    .await;
    let _ = &mut t;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_second_factor_is_set_up_then_asked_at_every_sign_in() {
    init();
    let pki = Pki::new();
    let root = tempfile::tempdir().unwrap();
    let node = NodeProc::start_with(
        &pki,
        root.path(),
        VILLAGE,
        &NodeOpts {
            web: true,
            extra: format!("{FAST_LINKS}[web]\nrequire_totp = true\n"),
            ..NodeOpts::default()
        },
    );
    let url = base(&node);
    add_user(&pki, &node, "clerk", "intake", "李窗口");
    let code_now = |secret: &str| {
        let bytes = totp_rs::Secret::Encoded(secret.to_owned())
            .to_bytes()
            .unwrap();
        let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        totp.generate(now)
    };

    let b = Browser::start(1366, 768).await;
    b.sign_in(&url, "clerk", PASSWORD).await;
    b.wait_text("本中心要求双因素登录").await;
    assert_eq!(b.path().await, "/totp");
    b.goto(&format!("{url}/cases")).await;
    assert_eq!(
        b.path().await,
        "/totp",
        "nothing else before the second factor"
    );
    let secret = b.find("#totp-secret").await.text().await.unwrap();
    b.fill("动态口令", "000000").await;
    b.press("启用").await;
    b.wait_text("动态口令").await;
    b.wait_text("does not match").await;
    let secret_again = b.find("#totp-secret").await.text().await.unwrap();
    assert_eq!(secret, secret_again, "the same secret is offered again");
    b.fill("动态口令", &code_now(&secret)).await;
    b.press("启用").await;
    b.wait_path("/").await;
    b.press("退出").await;
    // The sign-out's navigation ends at the sign-in page before anything else is loaded.
    b.wait_path("/login").await;

    // From now on the password alone is not enough.
    b.sign_in(&url, "clerk", PASSWORD).await;
    b.wait_text("用户名或密码错误").await;
    b.goto(&format!("{url}/login")).await;
    b.fill("用户名", "clerk").await;
    b.fill("密码", PASSWORD).await;
    b.fill("动态口令（已启用的账号填写）", &code_now(&secret))
        .await;
    b.press("登录").await;
    b.wait_path("/").await;
    b.close().await;
    let (code, out, err) = fqctl_as(&pki, &node, "auditor", &["--json", "audit"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"EnrollTotp\""), "{out}");
}
