//! The v2 API's auth (etcd 3.4's v2auth, separate from the v3 auth store): users with bcrypt passwords
//! and roles, roles with read/write key patterns, the virtual `root` role and the `guest` role that
//! requests without credentials get.
//!
//! Contract:
//!
//! 1. Pure: the types as etcd's JSON spells them, the merge of a grant/revoke into a user or role, and
//!    the access checks. Reading and writing the resources (in the v2 store, through raft) is the
//!    server's ([`crate::etcdserver::v2_auth`]); HTTP is [`crate::v2http::auth`].
//! 2. JSON keeps Go's nil-versus-empty: a list that was `null` stays `None`, one that went through a
//!    merge is `Some` (sorted), so "not updated" is decided as etcd's `reflect.DeepEqual` decides it.
//! 3. A pattern ending in `*` matches by string prefix, otherwise exactly; a recursive request needs a
//!    `*` pattern. `root` may do anything.
use serde::{Deserialize, Serialize};

pub const ROOT_ROLE: &str = "root";
pub const GUEST_ROLE: &str = "guest";
/// etcd's v2 auth hashes with bcrypt's default cost, whatever `--bcrypt-cost` says (that is v3's).
pub const BCRYPT_COST: u32 = 10;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    #[serde(default, deserialize_with = "null_default")]
    pub user: String,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
    pub password: String,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub grant: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub revoke: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    #[serde(default, deserialize_with = "null_default")]
    pub role: String,
    #[serde(default, deserialize_with = "null_default")]
    pub permissions: Permissions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Permissions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke: Option<Permissions>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    #[serde(default, deserialize_with = "null_default")]
    pub kv: RwPermission,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RwPermission {
    #[serde(default)]
    pub read: Option<Vec<String>>,
    #[serde(default)]
    pub write: Option<Vec<String>>,
}

/// Go's decoding of `null` into a string or struct field: the zero value.
fn null_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_empty(v: &Option<Vec<String>>) -> bool {
    v.as_ref().is_none_or(Vec::is_empty)
}

fn items(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

/// An auth API refusal: its HTTP status and message (`{"message":...}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthError {
    pub status: u16,
    pub message: String,
}

/// etcd's authErr: the message gets its `auth: ` prefix.
pub fn auth_err(status: u16, message: impl std::fmt::Display) -> AuthError {
    AuthError { status, message: format!("auth: {message}") }
}

impl Permissions {
    /// Whether neither list names a pattern (etcd's IsEmpty, also true for an absent grant or revoke).
    pub fn is_empty(p: &Option<Permissions>) -> bool {
        p.as_ref().is_none_or(|p| is_empty(&p.kv.read) && is_empty(&p.kv.write))
    }
}

/// The role every user named `root` has and that no one may change: read and write everything.
pub fn root_role() -> Role {
    let all = Some(vec!["/*".to_string()]);
    Role {
        role: ROOT_ROLE.into(),
        permissions: Permissions { kv: RwPermission { read: all.clone(), write: all } },
        ..Default::default()
    }
}

/// The role `auth enable` makes when there is none: the same access as root, for requests without
/// credentials (so enabling auth locks nothing until the guest role is narrowed).
pub fn guest_role() -> Role {
    Role { role: GUEST_ROLE.into(), ..root_role() }
}

/// A stored user as etcd's getUser returns it: `root` always has the root role.
pub fn attach_root_role(mut u: User) -> User {
    if u.user == "root" && !items(&u.roles).iter().any(|r| r == ROOT_ROLE) {
        u.roles.get_or_insert_with(Vec::new).push(ROOT_ROLE.into());
    }
    u
}

fn sorted(set: std::collections::BTreeSet<String>) -> Option<Vec<String>> {
    Some(set.into_iter().collect())
}

/// etcd's User.merge: `new`'s password (already hashed by the caller, if any) replaces the old one; its
/// grants are added (a duplicate is 409) and then its revokes removed (an ungranted one is 409).
pub fn merge_user(old: &User, new: &User, new_hash: Option<String>) -> Result<User, AuthError> {
    let mut roles: std::collections::BTreeSet<String> = items(&old.roles).iter().cloned().collect();
    for g in items(&new.grant) {
        if !roles.insert(g.clone()) {
            return Err(auth_err(409, format!("Granting duplicate role {g} for user {}", new.user)));
        }
    }
    for r in items(&new.revoke) {
        if !roles.remove(r) {
            return Err(auth_err(409, format!("Revoking ungranted role {r} for user {}", new.user)));
        }
    }
    Ok(User {
        user: old.user.clone(),
        password: new_hash.unwrap_or_else(|| old.password.clone()),
        roles: sorted(roles),
        ..Default::default()
    })
}

/// etcd's Role.merge: grants (a duplicate pattern is 409), then revokes (an ungranted one is ignored).
pub fn merge_role(old: &Role, new: &Role) -> Result<Role, AuthError> {
    let mut kv = old.permissions.kv.clone();
    if let Some(g) = &new.grant {
        kv.read = grant(&kv.read, &g.kv.read, "read")?;
        kv.write = grant(&kv.write, &g.kv.write, "write")?;
    }
    if let Some(r) = &new.revoke {
        kv.read = revoke(&kv.read, &r.kv.read);
        kv.write = revoke(&kv.write, &r.kv.write);
    }
    Ok(Role { role: old.role.clone(), permissions: Permissions { kv }, ..Default::default() })
}

fn grant(have: &Option<Vec<String>>, add: &Option<Vec<String>>, what: &str) -> Result<Option<Vec<String>>, AuthError> {
    let mut set: std::collections::BTreeSet<String> = items(have).iter().cloned().collect();
    for p in items(add) {
        if !set.insert(p.clone()) {
            return Err(auth_err(409, format!("Granting duplicate {what} permission {p}")));
        }
    }
    Ok(sorted(set))
}

fn revoke(have: &Option<Vec<String>>, drop: &Option<Vec<String>>) -> Option<Vec<String>> {
    let mut set: std::collections::BTreeSet<String> = items(have).iter().cloned().collect();
    for p in items(drop) {
        set.remove(p);
    }
    sorted(set)
}

impl Role {
    fn patterns(&self, write: bool) -> &[String] {
        items(if write { &self.permissions.kv.write } else { &self.permissions.kv.read })
    }

    /// Whether this role may read (or write) `key` alone.
    pub fn has_key_access(&self, key: &str, write: bool) -> bool {
        // An empty pattern matches nothing (checking one crashes etcd's handler, which refuses the request).
        self.role == ROOT_ROLE
            || self.patterns(write).iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix),
                None => !p.is_empty() && p == key,
            })
    }

    /// Whether this role may read (or write) `key` and everything under it.
    pub fn has_recursive_access(&self, key: &str, write: bool) -> bool {
        self.role == ROOT_ROLE
            || self.patterns(write).iter().any(|p| p.strip_suffix('*').is_some_and(|prefix| key.starts_with(prefix)))
    }
}

/// Why an auth API call failed: a refusal of its own, or the store's error (a raft failure, say).
#[derive(Debug)]
pub enum Failure {
    Auth(AuthError),
    Store(crate::v2store::V2Error),
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Failure {
        Failure::Auth(e)
    }
}

impl From<crate::v2store::V2Error> for Failure {
    fn from(e: crate::v2store::V2Error) -> Failure {
        Failure::Store(e)
    }
}

/// Passwords that matched a bcrypt hash, by hash: v2 clients send their password with every request, and
/// bcrypt costs ~50 ms of CPU each time. A password is kept only as an HMAC under a key made at start (never
/// in the clear, nor as a plain digest one could attack offline from a core dump) and compared in constant
/// time. The hash carries its salt, so a changed password has a new hash and never matches an old entry.
struct Verified {
    key: ring::hmac::Key,
    tags: parking_lot::Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

static VERIFIED: std::sync::OnceLock<Verified> = std::sync::OnceLock::new();
const VERIFIED_MAX: usize = 4096;

fn verified_cache() -> &'static Verified {
    VERIFIED.get_or_init(|| Verified {
        key: ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .expect("the system's random source"),
        tags: Default::default(),
    })
}

/// Whether `password` matched `hash` before (no bcrypt run): `None` when it has not been seen.
pub fn verified(hash: &str, password: &str) -> Option<bool> {
    let v = verified_cache();
    let tags = v.tags.lock();
    let tag = tags.get(hash)?;
    ring::hmac::verify(&v.key, password.as_bytes(), tag).is_ok().then_some(true)
}

/// bcrypt's check of `password` against `hash` (slow by design: run it off the async workers); a match is
/// remembered for [`verified`].
pub fn verify(hash: &str, password: &str) -> bool {
    let ok = bcrypt::verify(password, hash).unwrap_or(false);
    if ok {
        let v = verified_cache();
        let tag = ring::hmac::sign(&v.key, password.as_bytes()).as_ref().to_vec();
        let mut tags = v.tags.lock();
        if tags.len() >= VERIFIED_MAX {
            tags.clear();
        }
        tags.insert(hash.to_string(), tag);
    }
    ok
}

/// Decodes the first JSON value of a request body as Go's json.Decoder does (what follows it is not read).
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::Deserializer::from_slice(body).into_iter::<T>().next()?.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn json_keeps_gos_nil_and_empty() {
        let u: User = decode(br#"{"user":"u","password":"p","roles":null} trailing"#).expect("json");
        assert_eq!((u.roles, u.grant), (None, None));
        let r: Role = decode(br#"{"role":"r","permissions":{"kv":{"read":null,"write":null}}}"#).expect("json");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"role":"r","permissions":{"kv":{"read":null,"write":null}}}"#
        );
        let u = User { user: "u".into(), roles: Some(vec![]), ..Default::default() };
        assert_eq!(serde_json::to_string(&u).unwrap(), r#"{"user":"u","roles":[]}"#);
        assert!(decode::<User>(br#"{"user":5}"#).is_none() && decode::<User>(b"").is_none());
        let u: User = decode(br#"{"user":"u","password":null}"#).expect("Go takes null for a string");
        assert_eq!(u.password, "");
        let r: Role = decode(br#"{"role":"r","permissions":null}"#).expect("and for a struct");
        assert_eq!(r.permissions, Permissions::default());
    }

    #[test]
    fn merges_are_etcds() {
        let old = User { user: "u".into(), password: "h".into(), roles: None, ..Default::default() };
        let same = merge_user(&old, &User { user: "u".into(), ..Default::default() }, None).unwrap();
        assert_ne!(same, old, "a null role list becomes an empty one, as Go's set makes it");
        let new = User { user: "u".into(), grant: strs(&["b", "a"]), ..Default::default() };
        let m = merge_user(&old, &new, None).unwrap();
        assert_eq!((m.roles, m.password.as_str()), (strs(&["a", "b"]), "h"));
        let dup = merge_user(&User { roles: strs(&["a"]), ..old.clone() }, &new, None).unwrap_err();
        assert_eq!((dup.status, dup.message.as_str()), (409, "auth: Granting duplicate role a for user u"));
        let rev = User { user: "u".into(), revoke: strs(&["x"]), ..Default::default() };
        assert_eq!(merge_user(&old, &rev, None).unwrap_err().message, "auth: Revoking ungranted role x for user u");

        let role = Role { role: "r".into(), ..Default::default() };
        let g = Permissions { kv: RwPermission { read: strs(&["/a/*"]), write: None } };
        let m = merge_role(&role, &Role { role: "r".into(), grant: Some(g.clone()), ..Default::default() }).unwrap();
        assert_eq!((m.permissions.kv.read.clone(), m.permissions.kv.write.clone()), (strs(&["/a/*"]), Some(vec![])));
        let e = merge_role(&m, &Role { role: "r".into(), grant: Some(g.clone()), ..Default::default() }).unwrap_err();
        assert_eq!(e.message, "auth: Granting duplicate read permission /a/*");
        let r = merge_role(&m, &Role { role: "r".into(), revoke: Some(g), ..Default::default() }).unwrap();
        assert_eq!(r.permissions.kv.read, Some(vec![]));
    }

    #[test]
    fn a_remembered_password_is_checked_again_not_trusted() {
        let hash = bcrypt::hash("pw", 4).expect("hash");
        assert_eq!(verified(&hash, "pw"), None);
        assert!(verify(&hash, "pw") && !verify(&hash, "other"));
        assert_eq!((verified(&hash, "pw"), verified(&hash, "other")), (Some(true), None));
    }

    #[test]
    fn access_matches_by_prefix_or_exactly() {
        let r = Role {
            role: "r".into(),
            permissions: Permissions { kv: RwPermission { read: strs(&["/foo/*", "/bar"]), write: strs(&["/w"]) } },
            ..Default::default()
        };
        assert!(r.has_key_access("/foo/x", false) && !r.has_key_access("/foobar", false));
        assert!(r.has_key_access("/foo/", false) && r.has_key_access("/bar", false));
        assert!(!r.has_key_access("/bar/x", false) && !r.has_key_access("/bar", true) && r.has_key_access("/w", true));
        assert!(r.has_recursive_access("/foo/x", false) && !r.has_recursive_access("/bar", false));
        assert!(root_role().has_recursive_access("/anything", true));
        let empty = Role {
            role: "e".into(),
            permissions: Permissions { kv: RwPermission { read: strs(&[""]), write: None } },
            ..Default::default()
        };
        assert!(!empty.has_key_access("", false) && !empty.has_recursive_access("", false));
        let u = attach_root_role(User { user: "root".into(), ..Default::default() });
        assert_eq!(u.roles, strs(&["root"]));
    }
}
