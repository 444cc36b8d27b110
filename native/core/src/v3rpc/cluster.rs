//! etcdserverpb.Cluster: the membership as applied through raft, and changes to it as raft conf changes
//! (see `etcdserver::membership` and `etcdserver::server_cluster`).
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::header::{caller, fill_ids, status};
use crate::etcdserver::membership::Member;
use crate::etcdserver::EtcdServer;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::{
    Member as PbMember, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest,
    MemberUpdateResponse, ResponseHeader,
};

pub struct ClusterService {
    pub server: Arc<EtcdServer>,
}

fn pb(members: &[Member]) -> Vec<PbMember> {
    members.iter().map(Member::to_pb).collect()
}

impl ClusterService {
    /// Membership changes need the root role once auth is on.
    fn admin<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let who = caller(&self.server, req)?;
        self.server.require_admin(who.as_ref()).map_err(status)
    }

    fn header(&self) -> Option<ResponseHeader> {
        let mut h = None;
        fill_ids(&self.server, &mut h);
        h
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, req: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        self.admin(&req)?;
        let r = req.into_inner();
        let (m, members) = self.server.add_member(r.peer_ur_ls, r.is_learner).await.map_err(status)?;
        Ok(Response::new(MemberAddResponse { header: self.header(), member: Some(m.to_pb()), members: pb(&members) }))
    }

    async fn member_remove(&self, req: Request<MemberRemoveRequest>) -> Result<Response<MemberRemoveResponse>, Status> {
        self.admin(&req)?;
        let members = self.server.remove_member(req.into_inner().id).await.map_err(status)?;
        Ok(Response::new(MemberRemoveResponse { header: self.header(), members: pb(&members) }))
    }

    async fn member_update(&self, req: Request<MemberUpdateRequest>) -> Result<Response<MemberUpdateResponse>, Status> {
        self.admin(&req)?;
        let r = req.into_inner();
        let members = self.server.update_member(r.id, r.peer_ur_ls).await.map_err(status)?;
        Ok(Response::new(MemberUpdateResponse { header: self.header(), members: pb(&members) }))
    }

    async fn member_list(&self, req: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        let who = caller(&self.server, &req)?;
        self.server.require_user(who.as_ref()).map_err(status)?;
        Ok(Response::new(MemberListResponse { header: self.header(), members: pb(&self.server.cluster.members()) }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.admin(&req)?;
        let members = self.server.promote_member(req.into_inner().id).await.map_err(status)?;
        Ok(Response::new(MemberPromoteResponse { header: self.header(), members: pb(&members) }))
    }
}
