//! etcdserverpb.Lease: grant and revoke go through raft; keep-alive and time-to-live are answered by the
//! leader's lessor (a follower forwards them, as in etcd 3.4); the list is the local lessor's.
use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::header::{caller, fill, filled, status, Credentials};
use crate::etcdserver::{EtcdError, EtcdServer};
use crate::pb::etcdserverpb::lease_server::Lease;
use crate::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};

pub struct LeaseService {
    pub server: Arc<EtcdServer>,
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

impl LeaseService {
    /// Renews each lease a keep-alive stream names, answering each with its new TTL; the gRPC stream and
    /// the gateway's JSON stream both come through here.
    pub(crate) fn keep_alive_requests(
        &self,
        creds: Credentials,
        mut inbound: impl Stream<Item = Result<LeaseKeepAliveRequest, Status>> + Send + Unpin + 'static,
    ) -> KeepAliveStream {
        let server = self.server.clone();
        let out = async_stream(move |tx| async move {
            while let Some(Ok(r)) = inbound.next().await {
                // Unknown or expired: TTL 0 and no error, which clients read as "lease not found".
                // Resolved for each renewal: a keep-alive stream outlives any one auth revision.
                let who = match creds.resolve(&server) {
                    Ok(w) => w,
                    Err(e) => {
                        let _ = tx.send(Err(status(e))).await;
                        break;
                    }
                };
                let resp = match server.lease_keep_alive(who.as_ref(), r.id).await {
                    Ok(ttl) => Ok(LeaseKeepAliveResponse { header: filled(&server), id: r.id, ttl }),
                    Err(EtcdError::LeaseNotFound) => {
                        Ok(LeaseKeepAliveResponse { header: filled(&server), id: r.id, ttl: 0 })
                    }
                    Err(e) => Err(status(e)),
                };
                let failed = resp.is_err();
                if tx.send(resp).await.is_err() || failed {
                    break;
                }
            }
        });
        Box::pin(out)
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(&self, req: Request<LeaseGrantRequest>) -> Result<Response<LeaseGrantResponse>, Status> {
        let who = caller(&self.server, &req)?;
        let mut resp = self.server.lease_grant(who.as_ref(), req.into_inner()).await.map_err(status)?;
        fill(&self.server, &mut resp.header);
        Ok(Response::new(resp))
    }

    async fn lease_revoke(&self, req: Request<LeaseRevokeRequest>) -> Result<Response<LeaseRevokeResponse>, Status> {
        let who = caller(&self.server, &req)?;
        let mut resp = self.server.lease_revoke(who.as_ref(), req.into_inner()).await.map_err(status)?;
        fill(&self.server, &mut resp.header);
        Ok(Response::new(resp))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let creds = Credentials::of(&req);
        Ok(Response::new(self.keep_alive_requests(creds, req.into_inner())))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let who = caller(&self.server, &req)?;
        let mut resp = self.server.lease_ttl(who.as_ref(), req.get_ref()).await.map_err(status)?;
        resp.header = filled(&self.server);
        Ok(Response::new(resp))
    }

    async fn lease_leases(&self, req: Request<LeaseLeasesRequest>) -> Result<Response<LeaseLeasesResponse>, Status> {
        let who = caller(&self.server, &req)?;
        let ids = self.server.lease_leases(who.as_ref()).map_err(status)?;
        let leases = ids.into_iter().map(|id| LeaseStatus { id }).collect();
        Ok(Response::new(LeaseLeasesResponse { header: filled(&self.server), leases }))
    }
}

/// A response stream fed by a task: `f` gets the sender and runs until the client goes away.
pub(super) fn async_stream<T, F, Fut>(f: F) -> tokio_stream::wrappers::ReceiverStream<T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
