//! `fqctl backup --out FILE` (an admin operator certificate): a consistent backup of the
//! node's store, streamed to FILE (written to `FILE.partial`, checked, then renamed);
//! `fqctl backup verify FILE`: checks a backup file whole, without a node.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use fengqiao_proto::v1 as pb;
use pb::backup_service_client::BackupServiceClient;

use super::render::fmt_time;
use super::{Cli, EXIT_REFUSED, Failure, Lang, connect};
use crate::storage::backup::{self, BackupSummary};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    /// Where to write the backup (an existing file is replaced only once the new one is
    /// complete and checked).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
}

#[derive(Subcommand)]
pub enum BackupCommand {
    /// 校验备份: check a backup file whole (layout, checksum) and say what it holds.
    Verify { file: PathBuf },
}

fn describe(path: &Path, s: &BackupSummary, lang: Lang, json: bool) -> String {
    let created = prost_types::Timestamp {
        seconds: s.header.created_at_ms.div_euclid(1000),
        nanos: 0,
    };
    if json {
        let v = serde_json::json!({
            "file": path.display().to_string(),
            "node": s.header.node,
            "store_format": s.header.store_format,
            "created_at_ms": s.header.created_at_ms,
            "records": s.records,
            "bytes": s.bytes,
            "sha256": s.sha256,
        });
        return format!("{v}\n");
    }
    format!(
        "{}: {}\n  {} {}  {} {}  {} {}\n  {} {}  {} {}\n  sha256 {}\n",
        lang.t("备份文件", "backup"),
        path.display(),
        lang.t("节点", "node"),
        s.header.node,
        lang.t("存储格式", "store format"),
        s.header.store_format,
        lang.t("备份时间", "taken"),
        fmt_time(&Some(created)),
        lang.t("记录", "records"),
        s.records,
        lang.t("字节", "bytes"),
        s.bytes,
        s.sha256,
    )
}

pub async fn run(cli: &Cli, args: &BackupArgs) -> Result<String, Failure> {
    if let Some(BackupCommand::Verify { file }) = &args.command {
        let lang = cli.lang.unwrap_or(Lang::Zh);
        return match backup::verify(file) {
            Ok(s) => Ok(format!(
                "{}{}",
                describe(file, &s, lang, cli.json),
                if cli.json {
                    ""
                } else {
                    lang.t("校验通过\n", "verified\n")
                }
            )),
            Err(e) => Err(Failure {
                code: EXIT_REFUSED,
                message: format!("{}: {e}", lang.t("备份文件有误", "bad backup")),
            }),
        };
    }
    let Some(out) = &args.out else {
        return Err(Failure::usage("--out FILE, or `verify FILE`"));
    };
    let target = connect::resolve(cli)?;
    let lang = target.lang;
    let mut c = BackupServiceClient::new(connect::channel(&target).await?)
        .max_decoding_message_size(crate::service::backup::CHUNK_BYTES + 1024);
    let mut partial = out.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut stream = c.backup(pb::BackupRequest {}).await?.into_inner();
    let cannot =
        |e: std::io::Error| Failure::usage(format!("cannot write {}: {e}", partial.display()));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&partial).map_err(cannot)?);
    let received = async {
        while let Some(chunk) = stream.message().await? {
            file.write_all(&chunk.data).map_err(cannot)?;
        }
        file.flush().map_err(cannot)?;
        file.get_ref().sync_all().map_err(cannot)?;
        Ok::<(), Failure>(())
    }
    .await;
    if let Err(e) = received {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let summary = match backup::verify(&partial) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(Failure {
                code: EXIT_REFUSED,
                message: format!("the backup received does not check: {e}"),
            });
        }
    };
    std::fs::rename(&partial, out)
        .map_err(|e| Failure::usage(format!("cannot rename to {}: {e}", out.display())))?;
    Ok(describe(out, &summary, lang, cli.json))
}
