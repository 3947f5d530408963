//! `fqctl apikey`: the keys of the node's Open311 API, with an admin operator certificate.
//!
//! `apikey add NAME [--channel CHANNEL]` prints the new key as the last word of its output
//! (shown once; only a hash is kept); `apikey list`; `apikey revoke NAME`. The channel (default
//! `online`) is the one every case submitted with the key records: `hotline-12348` for the
//! 12348 hotline's system, `court-referral` for a court's referral system, and so on.

use clap::Subcommand;
use fengqiao_proto::v1 as pb;
use pb::api_key_service_client::ApiKeyServiceClient;
use serde_json::{Value, json};

use super::render::{fmt_time, parse_enum, table};
use super::{Cli, Failure, Lang, connect};
use crate::domain::Channel;

#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// 新建接口密钥: a key for a system that submits cases (printed once, last word).
    Add {
        name: String,
        /// The channel its cases come by: online, hotline-12348, court-referral, grid-report,
        /// petition, department-transfer, walk-in.
        #[arg(long, default_value = "online")]
        channel: String,
    },
    /// 密钥列表.
    List,
    /// 吊销密钥: refused from now on.
    Revoke { name: String },
}

fn channel_label(v: i32, lang: Lang) -> String {
    match pb::Channel::try_from(v)
        .ok()
        .and_then(|c| Channel::try_from(c).ok())
    {
        Some(c) => lang.t(c.label_zh(), c.label_en()).to_owned(),
        None => String::new(),
    }
}

fn keys_table(keys: &[pb::ApiKey], lang: Lang) -> String {
    let header = [
        lang.t("名称", "name"),
        lang.t("受理渠道", "channel"),
        lang.t("状态", "state"),
        lang.t("创建时间", "created"),
        lang.t("创建人", "created by"),
        lang.t("吊销时间", "revoked"),
    ];
    let rows: Vec<_> = keys
        .iter()
        .map(|k| {
            vec![
                k.name.clone(),
                channel_label(k.channel, lang),
                if k.revoked_at.is_some() {
                    lang.t("已吊销", "revoked")
                } else {
                    lang.t("有效", "active")
                }
                .to_owned(),
                fmt_time(&k.created_at),
                k.created_by.clone(),
                fmt_time(&k.revoked_at),
            ]
        })
        .collect();
    table(&header, &rows)
}

fn key_json(k: &pb::ApiKey) -> Value {
    json!({
        "name": k.name,
        "channel": pb::Channel::try_from(k.channel).map(|c| c.as_str_name()).unwrap_or(""),
        "created_at": super::render::rfc3339(&k.created_at),
        "created_by": k.created_by,
        "revoked_at": super::render::rfc3339(&k.revoked_at),
    })
}

pub async fn run(cli: &Cli, cmd: &ApiKeyCommand) -> Result<String, Failure> {
    let target = connect::resolve(cli)?;
    let lang = target.lang;
    let mut c = ApiKeyServiceClient::new(connect::channel(&target).await?);
    match cmd {
        ApiKeyCommand::Add { name, channel } => {
            let channel = parse_enum::<pb::Channel>("CHANNEL", channel, "channel")?;
            let issued = c
                .add_api_key(pb::AddApiKeyRequest {
                    name: name.clone(),
                    channel: channel as i32,
                })
                .await?
                .into_inner();
            let key = issued.api_key.unwrap_or_default();
            if cli.json {
                return Ok(format!(
                    "{}\n",
                    json!({"api_key": key_json(&key), "key": issued.key})
                ));
            }
            Ok(format!(
                "{}{}: {}\n",
                keys_table(std::slice::from_ref(&key), lang),
                lang.t(
                    "接口密钥（仅显示一次，请交给对接系统的管理员）",
                    "API key (shown once: hand it to the system's operator)"
                ),
                issued.key
            ))
        }
        ApiKeyCommand::List => {
            let keys = c
                .list_api_keys(pb::ListApiKeysRequest {})
                .await?
                .into_inner()
                .api_keys;
            if cli.json {
                let all: Vec<_> = keys.iter().map(key_json).collect();
                return Ok(format!("{}\n", Value::Array(all)));
            }
            Ok(keys_table(&keys, lang))
        }
        ApiKeyCommand::Revoke { name } => {
            let key = c
                .revoke_api_key(pb::RevokeApiKeyRequest { name: name.clone() })
                .await?
                .into_inner();
            if cli.json {
                return Ok(format!("{}\n", key_json(&key)));
            }
            Ok(keys_table(std::slice::from_ref(&key), lang))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_show_in_chinese() {
        let k = pb::ApiKey {
            name: "hotline".into(),
            channel: pb::Channel::Hotline12348 as i32,
            revoked_at: Some(prost_types::Timestamp::default()),
            ..Default::default()
        };
        let t = keys_table(&[k], Lang::Zh);
        for word in ["名称", "受理渠道", "12348热线", "已吊销", "hotline"] {
            assert!(t.contains(word), "{word} in {t}");
        }
    }
}
