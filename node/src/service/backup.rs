//! `fengqiao.v1.BackupService`: an adapter over `crate::app::backup` that streams the backup
//! file in chunks.

use std::pin::Pin;

use fengqiao_proto::v1 as pb;
use tokio::io::AsyncReadExt;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::SharedState;
use crate::app::App;
use crate::tls::peer_identity;

/// Bytes per streamed chunk.
pub const CHUNK_BYTES: usize = 1 << 20;

pub struct BackupApi {
    app: App,
}

impl BackupApi {
    pub fn new(state: SharedState) -> Self {
        BackupApi {
            app: App::new(state),
        }
    }
}

type Chunks = Pin<Box<dyn Stream<Item = Result<pb::BackupChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::backup_service_server::BackupService for BackupApi {
    type BackupStream = Chunks;

    #[tracing::instrument(name = "Backup", skip_all, fields(caller))]
    async fn backup(
        &self,
        req: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        let who = peer_identity(&req)?;
        tracing::Span::current().record("caller", who.uri().as_str());
        let pb::BackupRequest {} = req.into_inner();
        let file = self.app.backup(&who).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            // `file` lives until the last chunk is sent (or the caller went away), then the
            // temporary file is removed.
            let mut f = match tokio::fs::File::open(&file.path).await {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx
                        .send(Err(Status::internal(format!("backup file: {e}"))))
                        .await;
                    return;
                }
            };
            loop {
                let mut buf = vec![0u8; CHUNK_BYTES];
                let n = match f.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::internal(format!("reading the backup: {e}"))))
                            .await;
                        break;
                    }
                };
                buf.truncate(n);
                if tx.send(Ok(pb::BackupChunk { data: buf })).await.is_err() {
                    tracing::warn!("the backup's caller went away before the end");
                    break;
                }
            }
            drop(file);
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
