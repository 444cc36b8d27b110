//! The v2 auth store on a member (etcd's v2auth.store): users and roles as JSON resources in the v2 store,
//! read locally (or after a ReadIndex where etcd reads with a quorum GET) and written through raft as
//! `V2AUTH_PUT`/`V2AUTH_DELETE` requests, one per resource, with etcd's prevExist conditions (and, for a
//! merged update, the value it was merged from). The rules (merges, access) are [`crate::v2auth`]'s; this
//! file only reads, hashes and proposes.
use serde::Serialize;

use super::server::{ApplyResponse, EtcdServer};
use super::v2::{PERMS_DELETE, PERMS_PUT};
use crate::pb::etcdserverpb::{InternalRaftRequest, Request};
use crate::v2auth::{self as v2a, auth_err, AuthError, Failure, Role, User};
use crate::v2store::error::{KEY_NOT_FOUND, NODE_EXIST, RAFT_INTERNAL, TEST_FAILED};
use crate::v2store::V2Error;

type Result<T> = std::result::Result<T, Failure>;

/// An info line as etcd's v2auth logs it.
fn log(msg: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(&str, String)> = fields.iter().map(|&(k, v)| (k, v.to_string())).collect();
    crate::raftnode::logger::zap_log("info", "v2auth/auth.go", msg, &fields);
}

fn parse_user(name: &str, json: Option<&str>) -> Result<User> {
    let json = json.ok_or_else(|| auth_err(404, format!("User {name} does not exist.")))?;
    let u: User = serde_json::from_str(json).map_err(internal)?;
    Ok(v2a::attach_root_role(u))
}

fn parse_role(name: &str, json: Option<&str>) -> Result<Role> {
    let json = json.ok_or_else(|| auth_err(404, format!("Role {name} does not exist.")))?;
    serde_json::from_str(json).map_err(internal)
}

fn internal(msg: impl ToString) -> Failure {
    Failure::Store(V2Error::new(RAFT_INTERNAL, msg.to_string(), 0))
}

impl EtcdServer {
    /// Whether v2 auth is on (`/2/enabled` is `true`).
    pub fn v2auth_enabled(&self) -> bool {
        self.v2.lock().perm(crate::v2store::perms::ENABLED) == Some("true")
    }

    /// Everything committed before the call is applied here (etcd reads these with a quorum GET).
    async fn v2auth_barrier(&self) -> Result<()> {
        self.linearizable_read_notify().await.map_err(internal)
    }

    /// A user as stored, `root` with the root role.
    pub fn v2auth_user(&self, name: &str) -> Result<User> {
        let json = self.v2.lock().perm(&format!("/users/{name}")).map(str::to_string);
        parse_user(name, json.as_deref())
    }

    /// A role as stored (`root` is virtual).
    pub fn v2auth_role(&self, name: &str) -> Result<Role> {
        if name == v2a::ROOT_ROLE {
            return Ok(v2a::root_role());
        }
        let json = self.v2.lock().perm(&format!("/roles/{name}")).map(str::to_string);
        parse_role(name, json.as_deref())
    }

    /// The user names, sorted.
    pub fn v2auth_users(&self) -> Vec<String> {
        self.v2.lock().perm_names("/users/")
    }

    /// The role names with `root`, sorted.
    pub fn v2auth_roles(&self) -> Vec<String> {
        let mut names = self.v2.lock().perm_names("/roles/");
        names.push(v2a::ROOT_ROLE.into());
        names.sort();
        names
    }

    /// Proposes one resource write; `prev_value` makes it a compare-and-swap (see `Store::write_perm`).
    async fn v2auth_propose(&self, method: &str, res: String, val: String, prev: (bool, Option<String>)) -> Result<()> {
        let (prev_exist, prev_value) = (Some(prev.0), prev.1.unwrap_or_default());
        let r = Request { method: method.into(), path: res, val, prev_exist, prev_value, ..Default::default() };
        match self.propose(InternalRaftRequest { v2: Some(r), ..Default::default() }).await {
            Ok(ApplyResponse::V2(Ok(_))) => Ok(()),
            Ok(ApplyResponse::V2(Err(e))) => Err(Failure::Store(e)),
            Ok(_) => Err(internal("unexpected apply result")),
            Err(e) => Err(internal(e)),
        }
    }

    async fn v2auth_put(&self, res: String, value: &impl Serialize, prev: (bool, Option<String>)) -> Result<()> {
        let json = serde_json::to_string(value).map_err(internal)?;
        self.v2auth_propose(PERMS_PUT, res, json, prev).await
    }

    /// Reads a resource after a ReadIndex, merges a change into it and writes it back if it is still what was
    /// read (etcd writes the merge over whatever is there, so of two concurrent grants one could vanish).
    async fn v2auth_read_merge_write<T: Serialize>(
        &self,
        res: String,
        merge: impl Fn(Option<&str>) -> Result<T>,
    ) -> Result<T> {
        let mut tries = 0;
        loop {
            self.v2auth_barrier().await?;
            let current = self.v2.lock().perm(&res).map(str::to_string);
            let merged = merge(current.as_deref())?;
            match self.v2auth_put(res.clone(), &merged, (true, current)).await {
                Err(Failure::Store(e)) if e.code == TEST_FAILED && tries < 100 => tries += 1,
                r => return r.map(|_| merged),
            }
        }
    }

    /// bcrypt at etcd v2's cost, off the async workers.
    async fn v2auth_hash(password: String) -> Result<String> {
        let hashed = tokio::task::spawn_blocking(move || bcrypt::hash(password, v2a::BCRYPT_COST));
        hashed.await.map_err(internal)?.map_err(internal)
    }

    /// Whether `password` is `user`'s (remembered matches skip bcrypt).
    pub async fn v2auth_check_password(user: &User, password: &str) -> bool {
        if let Some(ok) = v2a::verified(&user.password, password) {
            return ok;
        }
        let (hash, password) = (user.password.clone(), password.to_string());
        tokio::task::spawn_blocking(move || v2a::verify(&hash, &password)).await.unwrap_or(false)
    }

    /// etcd's CreateUser: `root` gets the root role; an empty password is 400, an existing user 409.
    pub async fn v2auth_create_user(&self, mut u: User) -> Result<User> {
        if u.user == "root" {
            u = v2a::attach_root_role(u);
        }
        if u.password.is_empty() {
            return Err(auth_err(400, format!("Cannot create user {} with an empty password", u.user)).into());
        }
        u.password = Self::v2auth_hash(std::mem::take(&mut u.password)).await?;
        match self.v2auth_put(format!("/users/{}", u.user), &u, (false, None)).await {
            Err(Failure::Store(e)) if e.code == NODE_EXIST => {
                Err(auth_err(409, format!("User {} already exists.", u.user)).into())
            }
            Err(e) => Err(e),
            Ok(()) => {
                log("created a user", &[("user-name", &u.user)]);
                Ok(u)
            }
        }
    }

    /// etcd's CreateOrUpdateUser: an update if the user exists (by a quorum read), else a create.
    pub async fn v2auth_create_or_update_user(&self, u: User) -> Result<(User, bool)> {
        self.v2auth_barrier().await?;
        if self.v2auth_user(&u.user).is_ok() {
            return Ok((self.v2auth_update_user(u).await?, false));
        }
        Ok((self.v2auth_create_user(u).await?, true))
    }

    /// etcd's UpdateUser: merges a password, grants and revokes into the stored user.
    pub async fn v2auth_update_user(&self, u: User) -> Result<User> {
        let hash = match u.password.is_empty() {
            true => None,
            false => Some(Self::v2auth_hash(u.password.clone()).await?),
        };
        let merged = self
            .v2auth_read_merge_write(format!("/users/{}", u.user), |json| {
                // etcd maps a missing user to "doesn't exist.", but its getUser already said "does not exist.".
                let old = parse_user(&u.user, json)?;
                let merged = v2a::merge_user(&old, &u, hash.clone())?;
                if merged == old {
                    return Err(auth_err(400, "User not updated. Use grant/revoke/password to update the user.").into());
                }
                Ok(merged)
            })
            .await?;
        log("updated a user", &[("user-name", &u.user)]);
        Ok(merged)
    }

    /// etcd's DeleteUser: not root while auth is on.
    pub async fn v2auth_delete_user(&self, name: &str) -> Result<()> {
        if self.v2auth_enabled() && name == "root" {
            return Err(auth_err(403, "Cannot delete root user while auth is enabled.").into());
        }
        match self.v2auth_propose(PERMS_DELETE, format!("/users/{name}"), String::new(), (true, None)).await {
            Err(Failure::Store(e)) if e.code == KEY_NOT_FOUND => {
                Err(auth_err(404, format!("User {name} does not exist")).into())
            }
            // Auth was enabled after the check above: the store keeps root.
            Err(Failure::Store(e)) if e.code == TEST_FAILED => {
                Err(auth_err(403, "Cannot delete root user while auth is enabled.").into())
            }
            r => r.inspect(|_| log("deleted a user", &[("user-name", name)])),
        }
    }

    fn not_root(name: &str) -> std::result::Result<(), AuthError> {
        match name == v2a::ROOT_ROLE {
            true => Err(auth_err(403, format!("Cannot modify role {name}: is root role."))),
            false => Ok(()),
        }
    }

    /// etcd's CreateRole.
    pub async fn v2auth_create_role(&self, r: &Role) -> Result<()> {
        Self::not_root(&r.role)?;
        match self.v2auth_put(format!("/roles/{}", r.role), r, (false, None)).await {
            Err(Failure::Store(e)) if e.code == NODE_EXIST => {
                Err(auth_err(409, format!("Role {} already exists.", r.role)).into())
            }
            res => res.inspect(|_| log("created a new role", &[("role-name", &r.role)])),
        }
    }

    /// etcd's DeleteRole.
    pub async fn v2auth_delete_role(&self, name: &str) -> Result<()> {
        Self::not_root(name)?;
        match self.v2auth_propose(PERMS_DELETE, format!("/roles/{name}"), String::new(), (true, None)).await {
            Err(Failure::Store(e)) if e.code == KEY_NOT_FOUND => {
                Err(auth_err(404, format!("Role {name} doesn't exist.")).into())
            }
            r => r.inspect(|_| log("delete a new role", &[("role-name", name)])),
        }
    }

    /// etcd's UpdateRole: merges grants and revokes into the stored role.
    pub async fn v2auth_update_role(&self, r: &Role) -> Result<Role> {
        Self::not_root(&r.role)?;
        let merged = self
            .v2auth_read_merge_write(format!("/roles/{}", r.role), |json| {
                let old = parse_role(&r.role, json)?;
                let merged = v2a::merge_role(&old, r)?;
                if merged == old {
                    return Err(auth_err(400, "Role not updated. Use grant/revoke to update the role.").into());
                }
                Ok(merged)
            })
            .await?;
        log("updated a new role", &[("role-name", &r.role)]);
        Ok(merged)
    }

    /// etcd's EnableAuth: needs a root user; makes the guest role if there is none.
    pub async fn v2auth_enable(&self) -> Result<()> {
        if self.v2auth_enabled() {
            return Err(auth_err(409, "already enabled").into());
        }
        self.v2auth_barrier().await?;
        if self.v2auth_user("root").is_err() {
            return Err(auth_err(409, "No root user available, please create one").into());
        }
        if self.v2auth_role(v2a::GUEST_ROLE).is_err() {
            log("no guest role access found; creating default", &[("role-name", v2a::GUEST_ROLE)]);
            self.v2auth_create_role(&v2a::guest_role()).await?;
        }
        match self.v2auth_put(crate::v2store::perms::ENABLED.into(), &true, (true, None)).await {
            // root was deleted after the check above: the store does not enable auth without it.
            Err(Failure::Store(e)) if e.code == TEST_FAILED => {
                return Err(auth_err(409, "No root user available, please create one").into())
            }
            r => r?,
        }
        log("enabled auth", &[]);
        Ok(())
    }

    /// etcd's DisableAuth.
    pub async fn v2auth_disable(&self) -> Result<()> {
        if !self.v2auth_enabled() {
            return Err(auth_err(409, "already disabled").into());
        }
        self.v2auth_put(crate::v2store::perms::ENABLED.into(), &false, (true, None)).await?;
        log("disabled auth", &[]);
        Ok(())
    }
}
