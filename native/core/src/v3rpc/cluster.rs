//! etcdserverpb.Cluster: MemberList answers with this member. Membership changes are the clustering work
//! (raft conf changes); until then they are refused with etcd's errors for a change that cannot be made.
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::header::{fill_ids, status};
use crate::etcdserver::{EtcdError, EtcdServer};
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};

pub struct ClusterService {
    pub server: Arc<EtcdServer>,
}

impl ClusterService {
    fn me(&self) -> Member {
        let c = &self.server.cfg;
        Member {
            id: self.server.member_id(),
            name: c.name.clone(),
            peer_ur_ls: c.peer_urls.clone(),
            client_ur_ls: c.client_urls.clone(),
            is_learner: false,
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, _req: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        Err(status(EtcdError::Internal("membership changes are not supported by this member yet".into())))
    }

    async fn member_remove(&self, req: Request<MemberRemoveRequest>) -> Result<Response<MemberRemoveResponse>, Status> {
        if req.into_inner().id != self.server.member_id() {
            return Err(status(EtcdError::MemberNotFound));
        }
        Err(status(EtcdError::Internal("membership changes are not supported by this member yet".into())))
    }

    async fn member_update(&self, req: Request<MemberUpdateRequest>) -> Result<Response<MemberUpdateResponse>, Status> {
        if req.into_inner().id != self.server.member_id() {
            return Err(status(EtcdError::MemberNotFound));
        }
        Err(status(EtcdError::Internal("membership changes are not supported by this member yet".into())))
    }

    async fn member_list(&self, _req: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        let mut header = None;
        fill_ids(&self.server, &mut header);
        Ok(Response::new(MemberListResponse { header, members: vec![self.me()] }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        if req.into_inner().id != self.server.member_id() {
            return Err(status(EtcdError::MemberNotFound));
        }
        Err(status(EtcdError::MemberNotLearner))
    }
}
