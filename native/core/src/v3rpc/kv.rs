//! etcdserverpb.KV: each call resolves its caller and goes through the server's admission chain.
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::header::{caller, fill, status};
use crate::etcdserver::EtcdServer;
use crate::pb::etcdserverpb::kv_server::Kv;
use crate::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};

pub struct KvService {
    pub server: Arc<EtcdServer>,
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let who = caller(&self.server, &req)?;
        let mut resp = self.server.range(who.as_ref(), req.get_ref()).await.map_err(status)?;
        fill(&self.server, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let who = caller(&self.server, &req)?;
        let mut resp = self.server.put(who.as_ref(), req.into_inner()).await.map_err(status)?;
        fill(&self.server, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn delete_range(&self, req: Request<DeleteRangeRequest>) -> Result<Response<DeleteRangeResponse>, Status> {
        let who = caller(&self.server, &req)?;
        let mut resp = self.server.delete_range(who.as_ref(), req.into_inner()).await.map_err(status)?;
        fill(&self.server, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let who = caller(&self.server, &req)?;
        let mut resp = self.server.txn(who.as_ref(), req.into_inner()).await.map_err(status)?;
        fill(&self.server, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn compact(&self, req: Request<CompactionRequest>) -> Result<Response<CompactionResponse>, Status> {
        let who = caller(&self.server, &req)?;
        let mut resp = self.server.compact(who.as_ref(), req.into_inner()).await.map_err(status)?;
        fill(&self.server, &mut resp.header);
        Ok(Response::new(resp))
    }
}
