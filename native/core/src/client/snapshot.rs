//! `Maintenance.Snapshot` into a file, streamed: each chunk is written as it arrives (memory bounded by one
//! chunk), to `<path>.part`, fsynced and renamed into place only once the whole backend arrived, so `path`
//! is either absent or complete (etcdctl's `snapshot save` does the same).
use std::io::Write;

use tonic::Status;

use super::Client;
use crate::pb::etcdserverpb::{SnapshotRequest, SnapshotResponse};

const PATH: &str = "/etcdserverpb.Maintenance/Snapshot";

/// Saves the connected member's backend to `path`; the number of bytes written.
pub async fn save(client: &Client, path: &str) -> Result<u64, Status> {
    let part = format!("{path}.part");
    let r = save_to(client, path, &part).await;
    if r.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    r
}

async fn save_to(client: &Client, path: &str, part: &str) -> Result<u64, Status> {
    let io = |e: std::io::Error| Status::internal(format!("{path}: {e}"));
    let mut file = std::fs::File::create(part).map_err(io)?;
    let conn = client.conn().await?;
    let mut stream = conn.open_stream(PATH).await.map_err(Status::from)?;
    stream.send_last(&SnapshotRequest {}).map_err(Status::from)?;
    let mut written = 0u64;
    while let Some(r) = stream.recv::<SnapshotResponse>().await.map_err(Status::from)? {
        tokio::task::block_in_place(|| file.write_all(&r.blob)).map_err(io)?;
        written += r.blob.len() as u64;
    }
    tokio::task::block_in_place(|| file.sync_all()).map_err(io)?;
    drop(file);
    std::fs::rename(part, path).map_err(io)?;
    Ok(written)
}
