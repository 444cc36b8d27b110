//! etcdserverpb.KV: reads served from a local view (after ReadIndex unless serializable), writes proposed.
use std::sync::Arc;

use prost::Message as _;
use tonic::{Request, Response, Status};

use super::header::{fill, status};
use crate::etcdserver::{apply, validate, ApplyResponse, EtcdError, EtcdServer};
use crate::pb::etcdserverpb::kv_server::Kv;
use crate::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, InternalRaftRequest, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};

pub struct KvService {
    pub server: Arc<EtcdServer>,
}

impl KvService {
    async fn propose(&self, req: InternalRaftRequest) -> Result<ApplyResponse, Status> {
        self.server.propose(req).await.map_err(status)
    }

    async fn read_barrier(&self, serializable: bool) -> Result<(), Status> {
        if !serializable {
            self.server.linearizable_read_notify().await.map_err(status)?;
        }
        Ok(())
    }
}

fn unexpected() -> Status {
    status(EtcdError::Internal("unexpected apply response".into()))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let r = req.into_inner();
        validate::check_range(&r).map_err(status)?;
        self.read_barrier(r.serializable).await?;
        let view = self.server.store.read().map_err(|e| status(e.into()))?;
        let mut resp = apply::range(&view, &r).map_err(status)?;
        drop(view);
        fill(&self.server, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let r = req.into_inner();
        validate::check_put(&r).map_err(status)?;
        self.server.check_space(r.encoded_len()).await.map_err(status)?;
        match self.propose(InternalRaftRequest { put: Some(r), ..Default::default() }).await? {
            ApplyResponse::Put(mut resp) => {
                fill(&self.server, &mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    async fn delete_range(&self, req: Request<DeleteRangeRequest>) -> Result<Response<DeleteRangeResponse>, Status> {
        let r = req.into_inner();
        validate::check_delete(&r).map_err(status)?;
        self.server.check_corrupt().map_err(status)?;
        match self.propose(InternalRaftRequest { delete_range: Some(r), ..Default::default() }).await? {
            ApplyResponse::DeleteRange(mut resp) => {
                fill(&self.server, &mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let r = req.into_inner();
        validate::check_txn(&r, self.server.cfg.max_txn_ops).map_err(status)?;
        validate::check_intervals(&r.success).map_err(status)?;
        validate::check_intervals(&r.failure).map_err(status)?;
        validate::check_ignore_puts(&r).map_err(status)?;
        let mut resp = if validate::is_txn_readonly(&r) {
            self.read_barrier(validate::is_txn_serializable(&r)).await?;
            let view = self.server.store.read().map_err(|e| status(e.into()))?;
            apply::txn_read(&view, &r).map_err(status)?
        } else {
            self.server.check_corrupt().map_err(status)?;
            if validate::txn_has_put(&r) {
                self.server.check_space(r.encoded_len()).await.map_err(status)?;
            }
            match self.propose(InternalRaftRequest { txn: Some(r), ..Default::default() }).await? {
                ApplyResponse::Txn(resp) => resp,
                _ => return Err(unexpected()),
            }
        };
        fill(&self.server, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn compact(&self, req: Request<CompactionRequest>) -> Result<Response<CompactionResponse>, Status> {
        let r = req.into_inner();
        let (rev, physical) = (r.revision, r.physical);
        self.server.check_corrupt().map_err(status)?;
        match self.propose(InternalRaftRequest { compaction: Some(r), ..Default::default() }).await? {
            ApplyResponse::Compaction(mut resp) => {
                if physical {
                    // etcd answers a physical compaction once the backend rows are gone.
                    self.server.store.compactor.wait_finished(rev).await;
                }
                fill(&self.server, &mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }
}
