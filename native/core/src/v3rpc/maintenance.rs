//! etcdserverpb.Maintenance: Status, Hash, HashKV, Alarm, Snapshot, Defragment, MoveLeader.
use std::pin::Pin;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::header::{caller, filled, status};
use super::http::ETCD_SERVER_VERSION;
use super::lease::async_stream;
use crate::etcdserver::alarm::describe;
use crate::etcdserver::{EtcdError, EtcdServer};
use crate::pb::etcdserverpb::maintenance_server::Maintenance;
use crate::pb::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest, HashKvResponse, HashRequest,
    HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest,
    StatusResponse,
};

pub struct MaintenanceService {
    pub server: Arc<EtcdServer>,
}

/// Snapshot chunks, as etcd sends them.
const SNAPSHOT_CHUNK: usize = 32 * 1024;

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

impl MaintenanceService {
    /// Status, Defragment, Hash, HashKV, Snapshot and MoveLeader need the root role once auth is on (etcd
    /// 3.5's authMaintenanceServer, and GHSA-q8m4-xhhv-38mg for Status and MoveLeader).
    fn admin<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let who = caller(&self.server, req)?;
        self.server.require_admin(who.as_ref()).map_err(status)
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let who = caller(&self.server, &req)?;
        // etcd 3.4 answers Alarm, Defragment and MoveLeader with no header at all.
        Ok(Response::new(self.server.alarm(who.as_ref(), req.into_inner()).await.map_err(status)?))
    }

    async fn status(&self, req: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        self.admin(&req)?;
        let s = &self.server;
        let mut errors: Vec<String> = s.alarms.list().iter().map(describe).collect();
        if s.leader() == 0 {
            errors.insert(0, EtcdError::NoLeader.message());
        }
        Ok(Response::new(StatusResponse {
            header: filled(s),
            version: ETCD_SERVER_VERSION.to_string(),
            db_size: s.store.backend().size() as i64,
            leader: s.leader(),
            raft_index: s.committed_index(),
            raft_term: s.term(),
            raft_applied_index: s.applied_index(),
            errors,
            db_size_in_use: s.db_size_in_use() as i64,
            is_learner: s.is_learner(),
        }))
    }

    async fn defragment(&self, req: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        self.admin(&req)?;
        // LMDB reuses the pages compaction frees, so the space in use (what the quota counts) is already
        // reclaimed; what is left is syncing the environment. Shrinking the file itself is not done yet.
        let s = self.server.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            s.store.committed_backend().map_err(|e| e.to_string())?.sync().map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| status(EtcdError::Internal(e.to_string())))?;
        Ok(Response::new(DefragmentResponse { header: None }))
    }

    async fn hash(&self, req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.admin(&req)?;
        let backend = self.server.store.committed_backend().map_err(|e| status(e.into()))?;
        let hash = backend.hash_all().map_err(|e| status(EtcdError::Internal(e.to_string())))?;
        Ok(Response::new(HashResponse { header: filled(&self.server), hash }))
    }

    async fn hash_kv(&self, req: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        self.admin(&req)?;
        let r = req.into_inner();
        let (hash, compact_revision, cur) = self.server.store.hash_kv(r.revision).map_err(|e| status(e.into()))?;
        let mut header = filled(&self.server);
        if let Some(h) = header.as_mut() {
            h.revision = cur;
        }
        Ok(Response::new(HashKvResponse { header, hash, compact_revision }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(&self, req: Request<SnapshotRequest>) -> Result<Response<SnapshotStream>, Status> {
        self.admin(&req)?;
        let server = self.server.clone();
        let out = async_stream(move |tx| async move {
            // etcd 3.4's chunks carry no header, and remaining_bytes counts the database only (not the SHA).
            let res = tokio::task::spawn_blocking(move || -> Result<(), String> {
                let backend = server.store.committed_backend().map_err(|e| e.to_string())?;
                let db = backend.snapshot_bbolt().map_err(|e| e.to_string())?;
                let total = db.len() as u64;
                let mut sent = 0u64;
                let mut sha = Sha256::new();
                for chunk in db.chunks(SNAPSHOT_CHUNK) {
                    sha.update(chunk);
                    sent += chunk.len() as u64;
                    let resp = SnapshotResponse { header: None, remaining_bytes: total - sent, blob: chunk.to_vec() };
                    if tx.blocking_send(Ok(resp)).is_err() {
                        return Ok(());
                    }
                }
                // The stream ends with the SHA-256 of everything before it, as etcd's does.
                let digest = sha.finalize().to_vec();
                let _ = tx.blocking_send(Ok(SnapshotResponse { header: None, remaining_bytes: 0, blob: digest }));
                Ok(())
            })
            .await;
            if let Ok(Err(e)) = res {
                eprintln!("pyetcd_fast: snapshot: {e}");
            }
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn move_leader(&self, req: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        self.admin(&req)?;
        self.server.move_leader(req.into_inner().target_id).await.map_err(status)?;
        Ok(Response::new(MoveLeaderResponse { header: None }))
    }
}
