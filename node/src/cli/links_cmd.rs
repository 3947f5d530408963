//! `fqctl links`: the health of this node's links (GetLinks), as a table with Chinese labels
//! (English with `--lang en`) or JSON.

use fengqiao_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use serde_json::{Value, json};

use super::render::{fmt_time, table};
use super::{Cli, Failure, Lang, connect};

fn role(v: i32, lang: Lang) -> &'static str {
    match pb::LinkRole::try_from(v) {
        Ok(pb::LinkRole::Parent) => lang.t("上级", "parent"),
        Ok(pb::LinkRole::Child) => lang.t("下级", "child"),
        _ => "-",
    }
}

fn state(v: i32, lang: Lang) -> &'static str {
    match pb::LinkState::try_from(v) {
        Ok(pb::LinkState::Connected) => lang.t("已连接", "connected"),
        Ok(pb::LinkState::BackingOff) => lang.t("重试中", "backing off"),
        Ok(pb::LinkState::NeverConnected) => lang.t("从未连接", "never connected"),
        Ok(pb::LinkState::Blocked) => lang.t("投递受阻", "blocked"),
        _ => "-",
    }
}

fn name<E: TryFrom<i32>>(v: i32, f: impl Fn(E) -> &'static str) -> &'static str {
    E::try_from(v).map(f).unwrap_or("")
}

pub fn links_table(l: &pb::Links, lang: Lang) -> String {
    let header = [
        lang.t("对端", "peer"),
        lang.t("方向", "role"),
        lang.t("状态", "state"),
        lang.t("待发", "queued out"),
        lang.t("待收", "queued in"),
        lang.t("最早未送达", "oldest undelivered"),
        lang.t("最后联系", "last heard"),
        lang.t("告警", "alert"),
        lang.t("故障起始", "failing since"),
        lang.t("拒收(收/发)", "refused (in/out)"),
        lang.t("重新同步", "resyncs"),
        lang.t("最近错误", "last error"),
    ];
    let rows: Vec<Vec<String>> = l
        .links
        .iter()
        .map(|k| {
            vec![
                k.peer.clone(),
                role(k.role, lang).to_string(),
                state(k.state, lang).to_string(),
                k.queue_out.to_string(),
                k.queue_in.to_string(),
                fmt_time(&k.oldest_undelivered_at),
                fmt_time(&k.last_heard),
                if k.silent {
                    lang.t("链路静默", "SILENT").to_string()
                } else {
                    String::new()
                },
                fmt_time(&k.failing_since),
                format!("{}/{}", k.refused_in, k.refused_out),
                if k.resyncs == 0 {
                    String::new()
                } else {
                    format!("{} ({})", k.resyncs, fmt_time(&k.last_resync))
                },
                k.last_error.clone(),
            ]
        })
        .collect();
    format!(
        "{}: {}\n{}",
        lang.t("本中心", "node"),
        l.node,
        table(&header, &rows)
    )
}

pub fn links_json(l: &pb::Links) -> Value {
    // Times as RFC 3339, like every other --json output of fqctl.
    let ts = super::render::rfc3339;
    json!({
        "node": l.node,
        "links": l.links.iter().map(|k| json!({
            "peer": k.peer,
            "role": name(k.role, |r: pb::LinkRole| r.as_str_name()),
            "state": name(k.state, |s: pb::LinkState| s.as_str_name()),
            "queue_out": k.queue_out,
            "queue_in": k.queue_in,
            "oldest_undelivered_at": ts(&k.oldest_undelivered_at),
            "last_heard": ts(&k.last_heard),
            "silent": k.silent,
            "last_error": k.last_error,
            "failing_since": ts(&k.failing_since),
            "refused_in": k.refused_in,
            "refused_out": k.refused_out,
            "resyncs": k.resyncs,
            "last_resync": ts(&k.last_resync),
        })).collect::<Vec<_>>(),
    })
}

pub async fn run(cli: &Cli) -> Result<String, Failure> {
    let target = connect::resolve(cli)?;
    let ch = connect::channel(&target).await?;
    let l = CaseServiceClient::new(ch)
        .get_links(pb::GetLinksRequest {})
        .await?
        .into_inner();
    if cli.json {
        return Ok(format!("{}\n", links_json(&l)));
    }
    Ok(links_table(&l, target.lang))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_show_in_chinese_and_flag_silence() {
        let l = pb::Links {
            node: "610116001001".into(),
            links: vec![pb::Link {
                peer: "610116001".into(),
                role: pb::LinkRole::Parent as i32,
                state: pb::LinkState::BackingOff as i32,
                queue_out: 3,
                queue_in: 0,
                oldest_undelivered_at: Some(prost_types::Timestamp {
                    seconds: 1_796_083_200,
                    nanos: 0,
                }),
                last_heard: None,
                silent: true,
                last_error: "UNAVAILABLE: connection refused".into(),
                ..Default::default()
            }],
        };
        let t = links_table(&l, Lang::Zh);
        for word in [
            "对端",
            "方向",
            "待发",
            "最早未送达",
            "上级",
            "重试中",
            "链路静默",
            "2026-12-01 08:00",
        ] {
            assert!(t.contains(word), "{word} in\n{t}");
        }
        assert!(links_table(&l, Lang::En).contains("backing off"));
        let j = links_json(&l);
        assert_eq!(j["links"][0]["state"], "LINK_STATE_BACKING_OFF");
        assert_eq!(j["links"][0]["silent"], true);
        let oldest = j["links"][0]["oldest_undelivered_at"]
            .as_str()
            .unwrap_or_default();
        assert!(
            oldest.starts_with("2026-12-01T00:00:00"),
            "RFC 3339: {oldest}"
        );
        assert!(j["links"][0]["last_heard"].is_null());
    }
}
