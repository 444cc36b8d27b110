//! [`AuthStore`]: users, roles and the enabled flag, as applied from raft (etcd 3.4's auth store), and every
//! permission check made on a request.
//!
//! Persisted in the backend's meta bucket under `auth/` (`authEnabled`, `authRevision`), `authUsers/<name>`
//! and `authRoles/<name>`; a snapshot of the backend exports them as etcd's `auth`, `authUsers` and
//! `authRoles` buckets. The in-memory copy is what checks read; it changes only in apply (and on a snapshot
//! install), so every member answers the same.
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use prost::Message as _;

use super::perms::{same_range, Perms};
use super::token::TokenProvider;
use crate::etcdserver::EtcdError;
use crate::mvcc::backend::Backend;
use crate::mvcc::{MvccError, TxnWrite};
use crate::pb::authpb::{permission::Type as PermType, Permission, Role, User, UserAddOptions};
use crate::pb::etcdserverpb::request_op;
use crate::pb::etcdserverpb::{
    AuthRoleGrantPermissionRequest, AuthRoleRevokePermissionRequest, AuthUserAddRequest, AuthUserChangePasswordRequest,
    InternalRaftRequest, PutRequest, RequestOp, TxnRequest,
};

pub const ROOT_USER: &str = "root";
pub const ROOT_ROLE: &str = "root";
/// Meta-bucket keys; the snapshot export (`Backend::snapshot_bbolt`) turns the prefixes into bucket names.
const ENABLED_KEY: &[u8] = b"auth/authEnabled";
const REVISION_KEY: &[u8] = b"auth/authRevision";
const USER_PREFIX: &[u8] = b"authUsers/";
const ROLE_PREFIX: &[u8] = b"authRoles/";

/// Who a request comes from: a user and the auth revision its credentials were checked at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthInfo {
    pub username: String,
    pub revision: u64,
}

impl AuthInfo {
    /// The server's own requests (lease expiry, auto-compaction, alarms it raises, member attributes): root,
    /// at a revision that is never old. While auth is on, root exists and holds the root role.
    pub fn internal() -> AuthInfo {
        AuthInfo { username: ROOT_USER.to_string(), revision: u64::MAX }
    }
}

#[derive(Default)]
struct State {
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    /// Merged permissions per user, built on first use and dropped on any change.
    perms: HashMap<String, Arc<Perms>>,
}

pub struct AuthStore {
    enabled: AtomicBool,
    state: RwLock<State>,
    pub tokens: TokenProvider,
    bcrypt_cost: u32,
}

fn meta_err(e: impl std::fmt::Display) -> EtcdError {
    EtcdError::Internal(e.to_string())
}

fn has_root(u: &User) -> bool {
    u.roles.iter().any(|r| r == ROOT_ROLE)
}

impl AuthStore {
    pub fn new(tokens: TokenProvider, bcrypt_cost: u32) -> AuthStore {
        AuthStore { enabled: AtomicBool::new(false), state: RwLock::new(State::default()), tokens, bcrypt_cost }
    }

    /// Reads users, roles, the flag and the revision from `backend` (at start, and after a snapshot install).
    pub fn load(&self, backend: &Backend) -> Result<(), MvccError> {
        let bad = |e: prost::DecodeError| MvccError::Backend(format!("auth: {e}"));
        let mut st = State::default();
        for (_, v) in backend.meta_with_prefix(USER_PREFIX)? {
            let u = User::decode(v.as_slice()).map_err(bad)?;
            st.users.insert(String::from_utf8_lossy(&u.name).to_string(), u);
        }
        for (_, v) in backend.meta_with_prefix(ROLE_PREFIX)? {
            let r = Role::decode(v.as_slice()).map_err(bad)?;
            st.roles.insert(String::from_utf8_lossy(&r.name).to_string(), r);
        }
        st.revision = backend.get_meta(REVISION_KEY)?.and_then(|v| v.try_into().ok()).map_or(0, u64::from_be_bytes);
        let enabled = backend.get_meta(ENABLED_KEY)?.is_some_and(|v| v == [1]);
        *self.state.write() = st;
        if !enabled {
            self.tokens.clear();
        }
        self.enabled.store(enabled, Ordering::Release);
        Ok(())
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    pub fn revision(&self) -> u64 {
        self.state.read().revision
    }

    // -- credentials -----------------------------------------------------------------------------------------

    /// The caller of a request: its token's user, else (under `--client-cert-auth`) its certificate's CN;
    /// None while auth is off. A token that is not valid is an error (etcd's "invalid auth token").
    pub fn caller(&self, token: Option<&str>, cert_cn: Option<&str>) -> Result<Option<AuthInfo>, EtcdError> {
        if !self.is_enabled() {
            return Ok(None);
        }
        if let Some(t) = token.filter(|t| !t.is_empty()) {
            let info = self.tokens.info(t).ok_or(EtcdError::InvalidAuthToken)?;
            let revision = info.revision.unwrap_or_else(|| self.revision());
            return Ok(Some(AuthInfo { username: info.username, revision }));
        }
        Ok(cert_cn.map(|cn| AuthInfo { username: cn.to_string(), revision: self.revision() }))
    }

    /// Checks `name`'s password (bcrypt; slow by design, run it off the async workers); returns the auth
    /// revision it was checked at.
    pub fn check_password(&self, name: &str, password: &str) -> Result<u64, EtcdError> {
        if !self.is_enabled() {
            return Err(EtcdError::AuthNotEnabled);
        }
        let (hash, revision) = {
            let st = self.state.read();
            let u = st.users.get(name).ok_or(EtcdError::AuthFailed)?;
            if u.options.as_ref().is_some_and(|o| o.no_password) {
                return Err(EtcdError::AuthFailed);
            }
            (String::from_utf8_lossy(&u.password).to_string(), st.revision)
        };
        match bcrypt::verify(password, &hash) {
            Ok(true) => Ok(revision),
            _ => Err(EtcdError::AuthFailed),
        }
    }

    /// A bcrypt hash of `password` at `--bcrypt-cost` (made by the member that proposes, never replicated in
    /// the clear).
    pub fn hash_password(&self, password: &str) -> Result<String, EtcdError> {
        bcrypt::hash(password, self.bcrypt_cost).map_err(meta_err)
    }

    // -- checks ----------------------------------------------------------------------------------------------

    fn perms_of(&self, username: &str) -> Option<Arc<Perms>> {
        if let Some(p) = self.state.read().perms.get(username) {
            return Some(p.clone());
        }
        let mut st = self.state.write();
        let u = st.users.get(username)?;
        let p = Arc::new(Perms::merge(u.roles.iter().filter_map(|r| st.roles.get(r))));
        st.perms.insert(username.to_string(), p.clone());
        Some(p)
    }

    /// etcd's isOpPermitted: `[key, range_end)` as `want` for `who`.
    pub fn check_op(
        &self,
        who: Option<&AuthInfo>,
        key: &[u8],
        range_end: &[u8],
        want: PermType,
    ) -> Result<(), EtcdError> {
        if !self.is_enabled() {
            return Ok(());
        }
        let who = who.filter(|w| !w.username.is_empty() && w.revision != 0).ok_or(EtcdError::UserEmpty)?;
        {
            let st = self.state.read();
            if who.revision < st.revision {
                return Err(EtcdError::AuthOldRevision);
            }
            let u = st.users.get(&who.username).ok_or(EtcdError::PermissionDenied)?;
            if has_root(u) {
                return Ok(());
            }
        }
        match self.perms_of(&who.username) {
            Some(p) if p.allows(key, range_end, want) => Ok(()),
            _ => Err(EtcdError::PermissionDenied),
        }
    }

    /// etcd's IsAdminPermitted: the root role.
    pub fn check_admin(&self, who: Option<&AuthInfo>) -> Result<(), EtcdError> {
        if !self.is_enabled() {
            return Ok(());
        }
        let who = who.filter(|w| !w.username.is_empty()).ok_or(EtcdError::UserEmpty)?;
        let st = self.state.read();
        let u = st.users.get(&who.username).ok_or(EtcdError::UserNotFound)?;
        if has_root(u) {
            Ok(())
        } else {
            Err(EtcdError::PermissionDenied)
        }
    }

    /// The keys of every op and compare of `t`, both branches, nested txns included (GHSA-rfx7-8w68-q57q).
    pub fn check_txn(
        &self,
        who: Option<&AuthInfo>,
        t: &TxnRequest,
        lease_keys: &dyn Fn(i64) -> Vec<Vec<u8>>,
    ) -> Result<(), EtcdError> {
        for c in &t.compare {
            self.check_op(who, &c.key, &c.range_end, PermType::Read)?;
        }
        for op in t.success.iter().chain(&t.failure) {
            self.check_request_op(who, op, lease_keys)?;
        }
        Ok(())
    }

    fn check_request_op(
        &self,
        who: Option<&AuthInfo>,
        op: &RequestOp,
        lease_keys: &dyn Fn(i64) -> Vec<Vec<u8>>,
    ) -> Result<(), EtcdError> {
        match &op.request {
            Some(request_op::Request::RequestRange(r)) => self.check_op(who, &r.key, &r.range_end, PermType::Read),
            Some(request_op::Request::RequestPut(p)) => self.check_put(who, p, lease_keys),
            Some(request_op::Request::RequestDeleteRange(d)) => {
                self.check_op(who, &d.key, &d.range_end, PermType::Write)?;
                if d.prev_kv {
                    self.check_op(who, &d.key, &d.range_end, PermType::Read)?;
                }
                Ok(())
            }
            Some(request_op::Request::RequestTxn(t)) => self.check_txn(who, t, lease_keys),
            None => Ok(()),
        }
    }

    /// A put: write on its key, write on every key of its lease, read with prev_kv.
    fn check_put(
        &self,
        who: Option<&AuthInfo>,
        p: &PutRequest,
        lease_keys: &dyn Fn(i64) -> Vec<Vec<u8>>,
    ) -> Result<(), EtcdError> {
        self.check_op(who, &p.key, &[], PermType::Write)?;
        self.check_lease_keys(who, p.lease, lease_keys)?;
        if p.prev_kv {
            self.check_op(who, &p.key, &[], PermType::Read)?;
        }
        Ok(())
    }

    /// Writing every key attached to `lease` (revoking it deletes them; attaching a key to it lets the
    /// caller's revoke delete the others).
    pub fn check_lease_keys(
        &self,
        who: Option<&AuthInfo>,
        lease: i64,
        lease_keys: &dyn Fn(i64) -> Vec<Vec<u8>>,
    ) -> Result<(), EtcdError> {
        if lease == 0 || !self.is_enabled() {
            return Ok(());
        }
        for k in lease_keys(lease) {
            self.check_op(who, &k, &[], PermType::Write)?;
        }
        Ok(())
    }

    /// The check a replicated request passes, at the edge before proposing and again at apply against the
    /// user and revision its header carries: key permissions for KV writes and lease revokes, the root role
    /// for auth management, alarms and compaction. Requests the server makes itself carry no user and are
    /// not checked at apply.
    pub fn check_request(
        &self,
        who: Option<&AuthInfo>,
        req: &InternalRaftRequest,
        lease_keys: &dyn Fn(i64) -> Vec<Vec<u8>>,
    ) -> Result<(), EtcdError> {
        if !self.is_enabled() {
            return Ok(());
        }
        if let Some(p) = &req.put {
            return self.check_request_op(
                who,
                &RequestOp { request: Some(request_op::Request::RequestPut(p.clone())) },
                lease_keys,
            );
        }
        if let Some(d) = &req.delete_range {
            self.check_op(who, &d.key, &d.range_end, PermType::Write)?;
            if d.prev_kv {
                self.check_op(who, &d.key, &d.range_end, PermType::Read)?;
            }
            return Ok(());
        }
        if let Some(t) = &req.txn {
            return self.check_txn(who, t, lease_keys);
        }
        if let Some(r) = &req.lease_revoke {
            return self.check_lease_keys(who, r.id, lease_keys);
        }
        if req.auth_enable.is_some()
            || req.auth_disable.is_some()
            || req.auth_user_add.is_some()
            || req.auth_user_delete.is_some()
            || req.auth_user_change_password.is_some()
            || req.auth_user_grant_role.is_some()
            || req.auth_user_revoke_role.is_some()
            || req.auth_role_add.is_some()
            || req.auth_role_grant_permission.is_some()
            || req.auth_role_revoke_permission.is_some()
            || req.auth_role_delete.is_some()
            || req.compaction.is_some()
            || req.alarm.is_some()
        {
            return self.check_admin(who);
        }
        Ok(())
    }

    // -- reads (served locally) ------------------------------------------------------------------------------

    /// UserGet: root, or the user asking about itself.
    pub fn user_get(&self, who: Option<&AuthInfo>, name: &str) -> Result<Vec<String>, EtcdError> {
        if let Err(e) = self.check_admin(who) {
            if who.is_none_or(|w| w.username != name) {
                return Err(e);
            }
        }
        let st = self.state.read();
        Ok(st.users.get(name).ok_or(EtcdError::UserNotFound)?.roles.clone())
    }

    /// RoleGet: root, or a user that has the role.
    pub fn role_get(&self, who: Option<&AuthInfo>, role: &str) -> Result<Vec<Permission>, EtcdError> {
        if let Err(e) = self.check_admin(who) {
            let st = self.state.read();
            let has = who.and_then(|w| st.users.get(&w.username)).is_some_and(|u| u.roles.iter().any(|r| r == role));
            if !has {
                return Err(e);
            }
        }
        let st = self.state.read();
        Ok(st.roles.get(role).ok_or(EtcdError::RoleNotFound)?.key_permission.clone())
    }

    pub fn user_list(&self, who: Option<&AuthInfo>) -> Result<Vec<String>, EtcdError> {
        self.check_admin(who)?;
        Ok(self.state.read().users.keys().cloned().collect())
    }

    pub fn role_list(&self, who: Option<&AuthInfo>) -> Result<Vec<String>, EtcdError> {
        self.check_admin(who)?;
        Ok(self.state.read().roles.keys().cloned().collect())
    }

    // -- apply -----------------------------------------------------------------------------------------------

    /// Applies an auth request of `req` (None when it holds none); `index` is its raft index (simple tokens
    /// end with it). Returns the token for Authenticate, an empty string for the others.
    pub fn apply(
        &self,
        txn: &mut TxnWrite,
        req: &InternalRaftRequest,
        index: u64,
    ) -> Option<Result<String, EtcdError>> {
        let who = req
            .header
            .as_ref()
            .filter(|h| !h.username.is_empty())
            .map(|h| AuthInfo { username: h.username.clone(), revision: h.auth_revision });
        let r = if req.auth_enable.is_some() {
            self.check_admin(who.as_ref()).and_then(|_| self.enable(txn))
        } else if req.auth_disable.is_some() {
            self.check_admin(who.as_ref()).and_then(|_| self.disable(txn))
        } else if let Some(a) = &req.authenticate {
            self.authenticate(&a.name, &a.simple_token, index)
        } else if let Some(u) = &req.auth_user_add {
            self.check_admin(who.as_ref()).and_then(|_| self.user_add(txn, u))
        } else if let Some(u) = &req.auth_user_delete {
            self.check_admin(who.as_ref()).and_then(|_| self.user_delete(txn, &u.name))
        } else if let Some(u) = &req.auth_user_change_password {
            self.check_admin(who.as_ref()).and_then(|_| self.change_password(txn, u))
        } else if let Some(u) = &req.auth_user_grant_role {
            self.check_admin(who.as_ref()).and_then(|_| self.grant_role(txn, &u.user, &u.role))
        } else if let Some(u) = &req.auth_user_revoke_role {
            self.check_admin(who.as_ref()).and_then(|_| self.revoke_role(txn, &u.name, &u.role))
        } else if let Some(r) = &req.auth_role_add {
            self.check_admin(who.as_ref()).and_then(|_| self.role_add(txn, &r.name))
        } else if let Some(r) = &req.auth_role_delete {
            self.check_admin(who.as_ref()).and_then(|_| self.role_delete(txn, &r.role))
        } else if let Some(r) = &req.auth_role_grant_permission {
            self.check_admin(who.as_ref()).and_then(|_| self.grant_permission(txn, r))
        } else if let Some(r) = &req.auth_role_revoke_permission {
            self.check_admin(who.as_ref()).and_then(|_| self.revoke_permission(txn, r))
        } else {
            return None;
        };
        Some(r.map(|token| token.unwrap_or_default()))
    }

    fn commit_revision(&self, txn: &mut TxnWrite, st: &mut State) -> Result<(), EtcdError> {
        st.revision += 1;
        st.perms.clear();
        txn.put_meta(REVISION_KEY, &st.revision.to_be_bytes()).map_err(meta_err)
    }

    fn put_user(txn: &mut TxnWrite, u: &User) -> Result<(), EtcdError> {
        let mut key = USER_PREFIX.to_vec();
        key.extend_from_slice(&u.name);
        txn.put_meta(&key, &u.encode_to_vec()).map_err(meta_err)
    }

    fn put_role(txn: &mut TxnWrite, r: &Role) -> Result<(), EtcdError> {
        let mut key = ROLE_PREFIX.to_vec();
        key.extend_from_slice(&r.name);
        txn.put_meta(&key, &r.encode_to_vec()).map_err(meta_err)
    }

    fn enable(&self, txn: &mut TxnWrite) -> Result<Option<String>, EtcdError> {
        if self.is_enabled() {
            return Ok(None);
        }
        let st = self.state.read();
        let root = st.users.get(ROOT_USER).ok_or(EtcdError::RootUserNotExist)?;
        if !has_root(root) {
            return Err(EtcdError::RootRoleNotExist);
        }
        drop(st);
        txn.put_meta(ENABLED_KEY, &[1]).map_err(meta_err)?;
        self.enabled.store(true, Ordering::Release);
        self.state.write().perms.clear();
        Ok(None)
    }

    fn disable(&self, txn: &mut TxnWrite) -> Result<Option<String>, EtcdError> {
        if !self.is_enabled() {
            return Ok(None);
        }
        txn.put_meta(ENABLED_KEY, &[0]).map_err(meta_err)?;
        let mut st = self.state.write();
        self.commit_revision(txn, &mut st)?;
        self.enabled.store(false, Ordering::Release);
        self.tokens.clear();
        Ok(None)
    }

    fn authenticate(&self, name: &str, prefix: &str, index: u64) -> Result<Option<String>, EtcdError> {
        if !self.is_enabled() {
            return Err(EtcdError::AuthNotEnabled);
        }
        let st = self.state.read();
        let u = st.users.get(name).ok_or(EtcdError::AuthFailed)?;
        if u.options.as_ref().is_some_and(|o| o.no_password) {
            return Err(EtcdError::AuthFailed);
        }
        let revision = st.revision;
        drop(st);
        self.tokens.assign(name, revision, prefix, index).map(Some).map_err(EtcdError::Internal)
    }

    fn user_add(&self, txn: &mut TxnWrite, r: &AuthUserAddRequest) -> Result<Option<String>, EtcdError> {
        if r.name.is_empty() {
            return Err(EtcdError::UserEmpty);
        }
        let mut st = self.state.write();
        if st.users.contains_key(&r.name) {
            return Err(EtcdError::UserAlreadyExist);
        }
        let no_password = r.options.as_ref().is_some_and(|o| o.no_password);
        let u = User {
            name: r.name.as_bytes().to_vec(),
            // The proposer hashed it; a password never enters the log in the clear.
            password: if no_password { Vec::new() } else { r.hashed_password.as_bytes().to_vec() },
            roles: Vec::new(),
            options: Some(UserAddOptions { no_password }),
        };
        Self::put_user(txn, &u)?;
        st.users.insert(r.name.clone(), u);
        self.commit_revision(txn, &mut st)?;
        Ok(None)
    }

    fn user_delete(&self, txn: &mut TxnWrite, name: &str) -> Result<Option<String>, EtcdError> {
        if self.is_enabled() && name == ROOT_USER {
            return Err(EtcdError::InvalidAuthMgmt);
        }
        let mut st = self.state.write();
        if st.users.remove(name).is_none() {
            return Err(EtcdError::UserNotFound);
        }
        let mut key = USER_PREFIX.to_vec();
        key.extend_from_slice(name.as_bytes());
        txn.delete_meta(&key).map_err(meta_err)?;
        self.commit_revision(txn, &mut st)?;
        self.tokens.invalidate_user(name);
        Ok(None)
    }

    fn change_password(
        &self,
        txn: &mut TxnWrite,
        r: &AuthUserChangePasswordRequest,
    ) -> Result<Option<String>, EtcdError> {
        let mut st = self.state.write();
        let u = st.users.get_mut(&r.name).ok_or(EtcdError::UserNotFound)?;
        u.password = r.hashed_password.as_bytes().to_vec();
        let u = u.clone();
        Self::put_user(txn, &u)?;
        self.commit_revision(txn, &mut st)?;
        self.tokens.invalidate_user(&r.name);
        Ok(None)
    }

    fn grant_role(&self, txn: &mut TxnWrite, user: &str, role: &str) -> Result<Option<String>, EtcdError> {
        let mut st = self.state.write();
        if role != ROOT_ROLE && !st.roles.contains_key(role) {
            return Err(EtcdError::RoleNotFound);
        }
        let u = st.users.get_mut(user).ok_or(EtcdError::UserNotFound)?;
        let Err(at) = u.roles.binary_search_by(|r| r.as_str().cmp(role)) else {
            return Ok(None); // already granted: etcd ignores it
        };
        u.roles.insert(at, role.to_string());
        let u = u.clone();
        Self::put_user(txn, &u)?;
        self.commit_revision(txn, &mut st)?;
        Ok(None)
    }

    fn revoke_role(&self, txn: &mut TxnWrite, user: &str, role: &str) -> Result<Option<String>, EtcdError> {
        if self.is_enabled() && user == ROOT_USER && role == ROOT_ROLE {
            return Err(EtcdError::InvalidAuthMgmt);
        }
        let mut st = self.state.write();
        let u = st.users.get_mut(user).ok_or(EtcdError::UserNotFound)?;
        let at = u.roles.iter().position(|r| r == role).ok_or(EtcdError::RoleNotGranted)?;
        u.roles.remove(at);
        let u = u.clone();
        Self::put_user(txn, &u)?;
        self.commit_revision(txn, &mut st)?;
        Ok(None)
    }

    fn role_add(&self, txn: &mut TxnWrite, name: &str) -> Result<Option<String>, EtcdError> {
        if name.is_empty() {
            return Err(EtcdError::RoleEmpty);
        }
        let mut st = self.state.write();
        if st.roles.contains_key(name) {
            return Err(EtcdError::RoleAlreadyExist);
        }
        let r = Role { name: name.as_bytes().to_vec(), key_permission: Vec::new() };
        Self::put_role(txn, &r)?;
        st.roles.insert(name.to_string(), r);
        self.commit_revision(txn, &mut st)?;
        Ok(None)
    }

    fn role_delete(&self, txn: &mut TxnWrite, name: &str) -> Result<Option<String>, EtcdError> {
        if self.is_enabled() && name == ROOT_ROLE {
            return Err(EtcdError::InvalidAuthMgmt);
        }
        let mut st = self.state.write();
        if st.roles.remove(name).is_none() {
            return Err(EtcdError::RoleNotFound);
        }
        let mut key = ROLE_PREFIX.to_vec();
        key.extend_from_slice(name.as_bytes());
        txn.delete_meta(&key).map_err(meta_err)?;
        let holders: Vec<User> = st
            .users
            .values_mut()
            .filter_map(|u| {
                let at = u.roles.iter().position(|r| r == name)?;
                u.roles.remove(at);
                Some(u.clone())
            })
            .collect();
        for u in &holders {
            Self::put_user(txn, u)?;
        }
        self.commit_revision(txn, &mut st)?;
        Ok(None)
    }

    fn grant_permission(
        &self,
        txn: &mut TxnWrite,
        r: &AuthRoleGrantPermissionRequest,
    ) -> Result<Option<String>, EtcdError> {
        let perm = r.perm.clone().ok_or(EtcdError::PermissionNotGiven)?;
        let mut st = self.state.write();
        let role = st.roles.get_mut(&r.name).ok_or(EtcdError::RoleNotFound)?;
        let at = role.key_permission.partition_point(|p| p.key < perm.key);
        match role.key_permission.get_mut(at) {
            Some(p) if p.key == perm.key && p.range_end == perm.range_end => p.perm_type = perm.perm_type,
            _ => role.key_permission.insert(at, perm),
        }
        let role = role.clone();
        Self::put_role(txn, &role)?;
        self.commit_revision(txn, &mut st)?;
        Ok(None)
    }

    fn revoke_permission(
        &self,
        txn: &mut TxnWrite,
        r: &AuthRoleRevokePermissionRequest,
    ) -> Result<Option<String>, EtcdError> {
        let mut st = self.state.write();
        let role = st.roles.get_mut(&r.role).ok_or(EtcdError::RoleNotFound)?;
        let at = role
            .key_permission
            .iter()
            .position(|p| same_range(p, &r.key, &r.range_end))
            .ok_or(EtcdError::PermissionNotGranted)?;
        role.key_permission.remove(at);
        let role = role.clone();
        Self::put_role(txn, &role)?;
        self.commit_revision(txn, &mut st)?;
        Ok(None)
    }
}
