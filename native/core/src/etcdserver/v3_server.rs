//! The typed request API every edge calls (etcd's `v3_server.go`): gRPC, the JSON gateway, v3lock and
//! v3election. Each method is one admission chain — validate → corrupt alarm → quota → auth → propose and
//! wait (or read after a ReadIndex) — so no edge builds an `InternalRaftRequest`, and auth has exactly this
//! home. `who` is the caller as [`AuthStore::caller`](crate::auth::AuthStore::caller) resolved it from the
//! request's token or client certificate (None while auth is off).
use std::sync::atomic::Ordering;

use prost::Message as _;

use super::{apply, validate, ApplyResponse, EtcdError, EtcdServer};
use crate::auth::{AuthInfo, TokenProvider};
use crate::pb::authpb::{permission::Type as PermType, Permission};
use crate::pb::etcdserverpb::alarm_request::AlarmAction;
use crate::pb::etcdserverpb::*;

/// How a write is admitted: refused while CORRUPT is raised, and/or checked against the space quota with
/// this many bytes of growth.
#[derive(Clone, Copy)]
struct Admit {
    corrupt: bool,
    growth: Option<usize>,
}

const WRITE: Admit = Admit { corrupt: true, growth: None };
const ADMIN: Admit = Admit { corrupt: false, growth: None };

fn unexpected() -> EtcdError {
    EtcdError::Internal("unexpected apply response".into())
}

impl EtcdServer {
    /// The chain for a replicated request: alarms, quota, auth (checked here and again at apply), propose.
    async fn raft_request(
        &self,
        who: Option<&AuthInfo>,
        req: InternalRaftRequest,
        admit: Admit,
    ) -> Result<ApplyResponse, EtcdError> {
        if admit.corrupt {
            self.check_corrupt()?;
        }
        if let Some(cost) = admit.growth {
            self.check_space(cost).await?;
        }
        self.auth.check_request(who, &req, &|id| self.store.lessor.keys(id).unwrap_or_default())?;
        self.propose_as(who, req).await
    }

    /// The quota check before a request that may grow the store (etcd's quota and capped applier): refused
    /// while NOSPACE is raised; a request that would pass the quota raises NOSPACE through raft first.
    async fn check_space(&self, cost: usize) -> Result<(), EtcdError> {
        self.check_corrupt()?;
        if self.alarms.has(AlarmType::Nospace) {
            return Err(EtcdError::NoSpace);
        }
        let quota = self.cfg.quota_bytes;
        if quota == 0 || self.db_in_use.load(Ordering::Acquire) + (cost as u64) < quota {
            return Ok(());
        }
        let raise = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: self.member_id(),
            alarm: AlarmType::Nospace as i32,
        };
        self.propose(InternalRaftRequest { alarm: Some(raise), ..Default::default() }).await?;
        Err(EtcdError::NoSpace)
    }

    /// While CORRUPT is raised every write is refused (etcd's corrupt applier); reads go on.
    fn check_corrupt(&self) -> Result<(), EtcdError> {
        if self.alarms.has(AlarmType::Corrupt) {
            return Err(EtcdError::Corrupt);
        }
        Ok(())
    }

    /// A read: after a ReadIndex unless serializable, then the auth check (etcd checks after the barrier).
    async fn read_barrier(&self, serializable: bool) -> Result<(), EtcdError> {
        if !serializable {
            self.linearizable_read_notify().await?;
        }
        Ok(())
    }

    /// etcd's requireAuthInfo: with auth on, any authenticated user.
    pub fn require_user(&self, who: Option<&AuthInfo>) -> Result<(), EtcdError> {
        if self.auth.is_enabled() && who.is_none_or(|w| w.username.is_empty()) {
            return Err(EtcdError::UserEmpty);
        }
        Ok(())
    }

    // -- KV --------------------------------------------------------------------------------------------------

    pub async fn range(&self, who: Option<&AuthInfo>, r: &RangeRequest) -> Result<RangeResponse, EtcdError> {
        validate::check_range(r)?;
        self.read_barrier(r.serializable).await?;
        self.auth.check_op(who, &r.key, &r.range_end, PermType::Read)?;
        let view = self.store.read()?;
        apply::range(&view, r)
    }

    pub async fn put(&self, who: Option<&AuthInfo>, r: PutRequest) -> Result<PutResponse, EtcdError> {
        validate::check_put(&r)?;
        let admit = Admit { corrupt: true, growth: Some(r.encoded_len()) };
        match self.raft_request(who, InternalRaftRequest { put: Some(r), ..Default::default() }, admit).await? {
            ApplyResponse::Put(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    pub async fn delete_range(
        &self,
        who: Option<&AuthInfo>,
        r: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, EtcdError> {
        validate::check_delete(&r)?;
        match self.raft_request(who, InternalRaftRequest { delete_range: Some(r), ..Default::default() }, WRITE).await?
        {
            ApplyResponse::DeleteRange(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    pub async fn txn(&self, who: Option<&AuthInfo>, r: TxnRequest) -> Result<TxnResponse, EtcdError> {
        validate::check_txn(&r, self.cfg.max_txn_ops)?;
        validate::check_intervals(&r.success)?;
        validate::check_intervals(&r.failure)?;
        validate::check_ignore_puts(&r)?;
        if validate::is_txn_readonly(&r) {
            self.read_barrier(validate::is_txn_serializable(&r)).await?;
            self.auth.check_txn(who, &r, &|id| self.store.lessor.keys(id).unwrap_or_default())?;
            let view = self.store.read()?;
            return apply::txn_read(&view, &r);
        }
        let growth = validate::txn_has_put(&r).then(|| r.encoded_len());
        let admit = Admit { corrupt: true, growth };
        match self.raft_request(who, InternalRaftRequest { txn: Some(r), ..Default::default() }, admit).await? {
            ApplyResponse::Txn(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    /// Compaction: the root role (GHSA-q8m4-xhhv-38mg); a physical one answers once the rows are gone.
    pub async fn compact(&self, who: Option<&AuthInfo>, r: CompactionRequest) -> Result<CompactionResponse, EtcdError> {
        let (rev, physical) = (r.revision, r.physical);
        match self.raft_request(who, InternalRaftRequest { compaction: Some(r), ..Default::default() }, WRITE).await? {
            ApplyResponse::Compaction(resp) => {
                if physical {
                    self.store.compactor.wait_finished(rev).await;
                }
                Ok(resp)
            }
            _ => Err(unexpected()),
        }
    }

    // -- leases ----------------------------------------------------------------------------------------------

    pub async fn lease_grant(
        &self,
        who: Option<&AuthInfo>,
        mut r: LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, EtcdError> {
        self.require_user(who)?;
        if r.id == 0 {
            r.id = self.new_lease_id();
        }
        let admit = Admit { corrupt: true, growth: Some(64) };
        match self.raft_request(who, InternalRaftRequest { lease_grant: Some(r), ..Default::default() }, admit).await? {
            ApplyResponse::LeaseGrant(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    /// LeaseRevoke: write permission on every key attached (revoking deletes them).
    pub async fn lease_revoke(
        &self,
        who: Option<&AuthInfo>,
        r: LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, EtcdError> {
        self.require_user(who)?;
        match self.raft_request(who, InternalRaftRequest { lease_revoke: Some(r), ..Default::default() }, WRITE).await?
        {
            ApplyResponse::LeaseRevoke(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    /// A keep-alive: write permission on every key attached (GHSA-q8m4-xhhv-38mg's checkLeaseRenew).
    pub async fn lease_keep_alive(&self, who: Option<&AuthInfo>, id: i64) -> Result<i64, EtcdError> {
        self.require_user(who)?;
        self.auth.check_lease_keys(who, id, &|id| self.store.lessor.keys(id).unwrap_or_default())?;
        self.lease_renew(id).await
    }

    /// LeaseTimeToLive; with `keys`, read permission on each attached key (GHSA-3p4g-rcw5-8298).
    pub async fn lease_ttl(
        &self,
        who: Option<&AuthInfo>,
        r: &LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, EtcdError> {
        self.require_user(who)?;
        if r.keys {
            for k in self.store.lessor.keys(r.id).unwrap_or_default() {
                self.auth.check_op(who, &k, &[], PermType::Read)?;
            }
        }
        self.lease_time_to_live(r).await
    }

    /// LeaseLeases: read permission on every key of every lease, unless root.
    pub fn lease_leases(&self, who: Option<&AuthInfo>) -> Result<Vec<i64>, EtcdError> {
        self.require_user(who)?;
        let leases = self.store.lessor.leases();
        if self.auth.is_enabled() && self.auth.check_admin(who).is_err() {
            for id in &leases {
                for k in self.store.lessor.keys(*id).unwrap_or_default() {
                    self.auth.check_op(who, &k, &[], PermType::Read)?;
                }
            }
        }
        Ok(leases)
    }

    // -- maintenance and cluster -----------------------------------------------------------------------------

    /// Alarm: listing needs a user; raising or clearing, the root role.
    pub async fn alarm(&self, who: Option<&AuthInfo>, r: AlarmRequest) -> Result<AlarmResponse, EtcdError> {
        if r.action == alarm_request::AlarmAction::Get as i32 {
            self.require_user(who)?;
            return Ok(AlarmResponse { header: None, alarms: self.alarms.get(r.alarm) });
        }
        match self.raft_request(who, InternalRaftRequest { alarm: Some(r), ..Default::default() }, ADMIN).await? {
            ApplyResponse::Alarm(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    /// Status, Defragment, Snapshot, Hash, HashKV, MoveLeader and membership changes: the root role.
    pub fn require_admin(&self, who: Option<&AuthInfo>) -> Result<(), EtcdError> {
        self.auth.check_admin(who)
    }

    // -- auth ------------------------------------------------------------------------------------------------

    async fn auth_request(&self, who: Option<&AuthInfo>, req: InternalRaftRequest) -> Result<String, EtcdError> {
        match self.raft_request(who, req, ADMIN).await? {
            ApplyResponse::Auth(token) => Ok(token),
            _ => Err(unexpected()),
        }
    }

    pub async fn auth_enable(&self, who: Option<&AuthInfo>) -> Result<(), EtcdError> {
        let req = InternalRaftRequest { auth_enable: Some(AuthEnableRequest {}), ..Default::default() };
        self.auth_request(who, req).await.map(drop)
    }

    pub async fn auth_disable(&self, who: Option<&AuthInfo>) -> Result<(), EtcdError> {
        let req = InternalRaftRequest { auth_disable: Some(AuthDisableRequest {}), ..Default::default() };
        self.auth_request(who, req).await.map(drop)
    }

    /// Authenticate: the password is checked here (bcrypt, off the async workers), then the token is made
    /// through raft so every member knows it.
    pub async fn authenticate(&self, r: AuthenticateRequest) -> Result<String, EtcdError> {
        // The password is checked against one auth revision; if users changed before the token was made
        // (a password change, say), check again, as etcd does.
        loop {
            let checked = tokio::task::block_in_place(|| self.auth.check_password(&r.name, &r.password))?;
            let internal = InternalAuthenticateRequest {
                name: r.name.clone(),
                password: String::new(),
                simple_token: TokenProvider::prefix(),
            };
            let req = InternalRaftRequest { authenticate: Some(internal), ..Default::default() };
            let token = match self.propose(req).await? {
                ApplyResponse::Auth(token) => token,
                _ => return Err(unexpected()),
            };
            if self.auth.revision() == checked {
                return Ok(token);
            }
        }
    }

    pub async fn user_add(&self, who: Option<&AuthInfo>, mut r: AuthUserAddRequest) -> Result<(), EtcdError> {
        self.auth.check_admin(who)?;
        if r.name.is_empty() {
            return Err(EtcdError::UserEmpty);
        }
        if !r.options.as_ref().is_some_and(|o| o.no_password) && r.hashed_password.is_empty() {
            let pw = std::mem::take(&mut r.password);
            r.hashed_password = tokio::task::block_in_place(|| self.auth.hash_password(&pw))?;
        }
        r.password.clear();
        self.auth_request(who, InternalRaftRequest { auth_user_add: Some(r), ..Default::default() }).await.map(drop)
    }

    pub async fn user_change_password(
        &self,
        who: Option<&AuthInfo>,
        mut r: AuthUserChangePasswordRequest,
    ) -> Result<(), EtcdError> {
        self.auth.check_admin(who)?;
        if r.hashed_password.is_empty() {
            let pw = std::mem::take(&mut r.password);
            r.hashed_password = tokio::task::block_in_place(|| self.auth.hash_password(&pw))?;
        }
        r.password.clear();
        let req = InternalRaftRequest { auth_user_change_password: Some(r), ..Default::default() };
        self.auth_request(who, req).await.map(drop)
    }

    pub async fn user_delete(&self, who: Option<&AuthInfo>, r: AuthUserDeleteRequest) -> Result<(), EtcdError> {
        self.auth_request(who, InternalRaftRequest { auth_user_delete: Some(r), ..Default::default() }).await.map(drop)
    }

    pub async fn user_grant_role(&self, who: Option<&AuthInfo>, r: AuthUserGrantRoleRequest) -> Result<(), EtcdError> {
        let req = InternalRaftRequest { auth_user_grant_role: Some(r), ..Default::default() };
        self.auth_request(who, req).await.map(drop)
    }

    pub async fn user_revoke_role(
        &self,
        who: Option<&AuthInfo>,
        r: AuthUserRevokeRoleRequest,
    ) -> Result<(), EtcdError> {
        let req = InternalRaftRequest { auth_user_revoke_role: Some(r), ..Default::default() };
        self.auth_request(who, req).await.map(drop)
    }

    pub async fn role_add(&self, who: Option<&AuthInfo>, r: AuthRoleAddRequest) -> Result<(), EtcdError> {
        self.auth_request(who, InternalRaftRequest { auth_role_add: Some(r), ..Default::default() }).await.map(drop)
    }

    pub async fn role_delete(&self, who: Option<&AuthInfo>, r: AuthRoleDeleteRequest) -> Result<(), EtcdError> {
        self.auth_request(who, InternalRaftRequest { auth_role_delete: Some(r), ..Default::default() }).await.map(drop)
    }

    pub async fn role_grant_permission(
        &self,
        who: Option<&AuthInfo>,
        r: AuthRoleGrantPermissionRequest,
    ) -> Result<(), EtcdError> {
        let req = InternalRaftRequest { auth_role_grant_permission: Some(r), ..Default::default() };
        self.auth_request(who, req).await.map(drop)
    }

    pub async fn role_revoke_permission(
        &self,
        who: Option<&AuthInfo>,
        r: AuthRoleRevokePermissionRequest,
    ) -> Result<(), EtcdError> {
        let req = InternalRaftRequest { auth_role_revoke_permission: Some(r), ..Default::default() };
        self.auth_request(who, req).await.map(drop)
    }

    /// UserGet, UserList, RoleGet, RoleList: served from this member's applied state after a ReadIndex.
    pub async fn user_get(&self, who: Option<&AuthInfo>, name: &str) -> Result<Vec<String>, EtcdError> {
        self.read_barrier(false).await?;
        self.auth.user_get(who, name)
    }

    pub async fn user_list(&self, who: Option<&AuthInfo>) -> Result<Vec<String>, EtcdError> {
        self.read_barrier(false).await?;
        self.auth.user_list(who)
    }

    pub async fn role_get(&self, who: Option<&AuthInfo>, role: &str) -> Result<Vec<Permission>, EtcdError> {
        self.read_barrier(false).await?;
        self.auth.role_get(who, role)
    }

    pub async fn role_list(&self, who: Option<&AuthInfo>) -> Result<Vec<String>, EtcdError> {
        self.read_barrier(false).await?;
        self.auth.role_list(who)
    }
}
