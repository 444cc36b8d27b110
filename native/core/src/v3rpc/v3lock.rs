//! v3lockpb.Lock: a distributed mutex on a key prefix, owned through a lease (etcd's v3lock over clientv3's
//! concurrency.Mutex). The lock is held by the contender with the lowest create revision under `name/`.
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::concurrency::{self as cc, prefix};
use super::header::fill;
use crate::etcdserver::EtcdServer;
use crate::pb::v3lockpb::lock_server::Lock;
use crate::pb::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};

pub struct LockService {
    pub server: Arc<EtcdServer>,
}

/// Deletes a contender key left behind when the client gives up (the RPC future is dropped mid-wait).
struct Abandon {
    server: cc::Client,
    key: Option<Vec<u8>>,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        // Outside a runtime (the edge already gone) there is nothing to delete through.
        let (Some(key), Ok(rt)) = (self.key.take(), tokio::runtime::Handle::try_current()) else { return };
        let server = self.server.clone();
        rt.spawn(async move {
            let _ = cc::delete(&server, &key).await;
        });
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let c = cc::Client::of(&self.server, &req)?;
        let r = req.into_inner();
        let s = &c;
        let pfx = prefix(&r.name);
        let (resp, key, _lease) = cc::claim(s, &r.name, r.lease, b"", vec![cc::op_get(cc::first_owner(&pfx))]).await?;
        let mut header = resp.header;
        let my_rev = if resp.succeeded {
            header.map_or(0, |h| h.revision)
        } else {
            cc::txn_range_kv(&resp, 0).map_or(0, |kv| kv.create_revision)
        };
        let mut guard = Abandon { server: s.clone(), key: Some(key.clone()) };
        let owner = cc::txn_range_kv(&resp, 1).map_or(0, |kv| kv.create_revision);
        if owner != my_rev {
            cc::wait_deletes(s, &pfx, my_rev - 1).await.map_err(cc::unknown)?;
            header = None;
        }
        guard.key = None;
        fill(s, &mut header);
        Ok(Response::new(LockResponse { header, key }))
    }

    async fn unlock(&self, req: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        let c = cc::Client::of(&self.server, &req)?;
        let r = req.into_inner();
        cc::delete(&c, &r.key).await.map_err(cc::unknown)?;
        let mut header = None;
        fill(&self.server, &mut header);
        Ok(Response::new(UnlockResponse { header }))
    }
}
