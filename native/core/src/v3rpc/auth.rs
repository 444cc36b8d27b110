//! etcdserverpb.Auth: users, roles, permissions and tokens, each call through the server's admission chain
//! (`etcdserver::v3_server`); only Authenticate needs no caller.
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::header::{caller, filled, status};
use crate::etcdserver::{EtcdError, EtcdServer};
use crate::pb::etcdserverpb::auth_server::Auth;
use crate::pb::etcdserverpb::*;

pub struct AuthService {
    pub server: Arc<EtcdServer>,
}

type Answer<T> = Result<Response<T>, Status>;

impl AuthService {
    fn done<T>(&self, r: Result<(), EtcdError>, make: impl FnOnce(Option<ResponseHeader>) -> T) -> Answer<T> {
        r.map_err(status)?;
        Ok(Response::new(make(filled(&self.server))))
    }
}

macro_rules! caller_of {
    ($self:ident, $req:ident) => {
        caller(&$self.server, &$req)?
    };
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(&self, req: Request<AuthEnableRequest>) -> Answer<AuthEnableResponse> {
        let who = caller_of!(self, req);
        self.done(self.server.auth_enable(who.as_ref()).await, |header| AuthEnableResponse { header })
    }

    async fn auth_disable(&self, req: Request<AuthDisableRequest>) -> Answer<AuthDisableResponse> {
        let who = caller_of!(self, req);
        self.done(self.server.auth_disable(who.as_ref()).await, |header| AuthDisableResponse { header })
    }

    async fn authenticate(&self, req: Request<AuthenticateRequest>) -> Answer<AuthenticateResponse> {
        let token = self.server.authenticate(req.into_inner()).await.map_err(status)?;
        Ok(Response::new(AuthenticateResponse { header: filled(&self.server), token }))
    }

    async fn user_add(&self, req: Request<AuthUserAddRequest>) -> Answer<AuthUserAddResponse> {
        let who = caller_of!(self, req);
        self.done(self.server.user_add(who.as_ref(), req.into_inner()).await, |header| AuthUserAddResponse { header })
    }

    async fn user_get(&self, req: Request<AuthUserGetRequest>) -> Answer<AuthUserGetResponse> {
        let who = caller_of!(self, req);
        let roles = self.server.user_get(who.as_ref(), &req.get_ref().name).await.map_err(status)?;
        Ok(Response::new(AuthUserGetResponse { header: filled(&self.server), roles }))
    }

    async fn user_list(&self, req: Request<AuthUserListRequest>) -> Answer<AuthUserListResponse> {
        let who = caller_of!(self, req);
        let users = self.server.user_list(who.as_ref()).await.map_err(status)?;
        Ok(Response::new(AuthUserListResponse { header: filled(&self.server), users }))
    }

    async fn user_delete(&self, req: Request<AuthUserDeleteRequest>) -> Answer<AuthUserDeleteResponse> {
        let who = caller_of!(self, req);
        let r = self.server.user_delete(who.as_ref(), req.into_inner()).await;
        self.done(r, |header| AuthUserDeleteResponse { header })
    }

    async fn user_change_password(
        &self,
        req: Request<AuthUserChangePasswordRequest>,
    ) -> Answer<AuthUserChangePasswordResponse> {
        let who = caller_of!(self, req);
        let r = self.server.user_change_password(who.as_ref(), req.into_inner()).await;
        self.done(r, |header| AuthUserChangePasswordResponse { header })
    }

    async fn user_grant_role(&self, req: Request<AuthUserGrantRoleRequest>) -> Answer<AuthUserGrantRoleResponse> {
        let who = caller_of!(self, req);
        let r = self.server.user_grant_role(who.as_ref(), req.into_inner()).await;
        self.done(r, |header| AuthUserGrantRoleResponse { header })
    }

    async fn user_revoke_role(&self, req: Request<AuthUserRevokeRoleRequest>) -> Answer<AuthUserRevokeRoleResponse> {
        let who = caller_of!(self, req);
        let r = self.server.user_revoke_role(who.as_ref(), req.into_inner()).await;
        self.done(r, |header| AuthUserRevokeRoleResponse { header })
    }

    async fn role_add(&self, req: Request<AuthRoleAddRequest>) -> Answer<AuthRoleAddResponse> {
        let who = caller_of!(self, req);
        self.done(self.server.role_add(who.as_ref(), req.into_inner()).await, |header| AuthRoleAddResponse { header })
    }

    async fn role_get(&self, req: Request<AuthRoleGetRequest>) -> Answer<AuthRoleGetResponse> {
        let who = caller_of!(self, req);
        let perm = self.server.role_get(who.as_ref(), &req.get_ref().role).await.map_err(status)?;
        Ok(Response::new(AuthRoleGetResponse { header: filled(&self.server), perm }))
    }

    async fn role_list(&self, req: Request<AuthRoleListRequest>) -> Answer<AuthRoleListResponse> {
        let who = caller_of!(self, req);
        let roles = self.server.role_list(who.as_ref()).await.map_err(status)?;
        Ok(Response::new(AuthRoleListResponse { header: filled(&self.server), roles }))
    }

    async fn role_delete(&self, req: Request<AuthRoleDeleteRequest>) -> Answer<AuthRoleDeleteResponse> {
        let who = caller_of!(self, req);
        let r = self.server.role_delete(who.as_ref(), req.into_inner()).await;
        self.done(r, |header| AuthRoleDeleteResponse { header })
    }

    async fn role_grant_permission(
        &self,
        req: Request<AuthRoleGrantPermissionRequest>,
    ) -> Answer<AuthRoleGrantPermissionResponse> {
        let who = caller_of!(self, req);
        let r = self.server.role_grant_permission(who.as_ref(), req.into_inner()).await;
        self.done(r, |header| AuthRoleGrantPermissionResponse { header })
    }

    async fn role_revoke_permission(
        &self,
        req: Request<AuthRoleRevokePermissionRequest>,
    ) -> Answer<AuthRoleRevokePermissionResponse> {
        let who = caller_of!(self, req);
        let r = self.server.role_revoke_permission(who.as_ref(), req.into_inner()).await;
        self.done(r, |header| AuthRoleRevokePermissionResponse { header })
    }
}
