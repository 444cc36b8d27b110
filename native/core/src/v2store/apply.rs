//! A v2 request as raft carries it (etcd's `etcdserverpb.Request`), and how a member applies it to the
//! store (etcd's applierV2store). The method picks the operation; for PUT, prevExist/prevValue/prevIndex
//! pick among set, create, update and compare-and-swap. The auth API's writes travel as methods of their
//! own (`V2AUTH_PUT`, `V2AUTH_DELETE`), which the keys API never proposes.
use super::event::Event;
use super::store::{Store, Ttl};
use super::V2Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Put,
    Post,
    Delete,
    /// A quorum read (`quorum=true`): goes through raft so it sees every write before it.
    QGet,
    /// Expire the keys whose TTL passed by `time` (the leader proposes one every 500 ms).
    Sync,
    /// Write a v2 auth resource (`path` is under etcd's `/2`, `val` its JSON; see [`super::perms`]).
    PermsPut,
    /// Delete a v2 auth resource.
    PermsDelete,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V2Request {
    pub method: Method,
    pub path: String,
    pub val: String,
    pub dir: bool,
    pub prev_value: String,
    pub prev_index: u64,
    pub prev_exist: Option<bool>,
    /// Unix nanoseconds; 0 is no TTL.
    pub expiration: i64,
    pub recursive: bool,
    pub sorted: bool,
    /// Unix nanoseconds, for SYNC.
    pub time: i64,
    pub refresh: bool,
}

impl V2Request {
    pub fn new(method: Method, path: &str) -> V2Request {
        V2Request {
            method,
            path: path.to_string(),
            val: String::new(),
            dir: false,
            prev_value: String::new(),
            prev_index: 0,
            prev_exist: None,
            expiration: 0,
            recursive: false,
            sorted: false,
            time: 0,
            refresh: false,
        }
    }

    fn ttl(&self) -> Ttl {
        Ttl { expire: (self.expiration != 0).then_some(self.expiration), refresh: self.refresh }
    }
}

/// Applies `r`; `now` renders TTLs. SYNC answers with the last expire event, if any.
pub fn apply(store: &mut Store, r: &V2Request, now: i64) -> Result<Option<Event>, V2Error> {
    let ttl = r.ttl();
    let cas = r.prev_index > 0 || !r.prev_value.is_empty();
    let e = match r.method {
        Method::Put => match r.prev_exist {
            Some(true) if !cas => store.update(&r.path, &r.val, ttl, now),
            Some(true) => store.compare_and_swap(&r.path, &r.prev_value, r.prev_index, &r.val, ttl, now),
            Some(false) => store.create(&r.path, r.dir, &r.val, false, ttl, now),
            None if cas => store.compare_and_swap(&r.path, &r.prev_value, r.prev_index, &r.val, ttl, now),
            None => store.set(&r.path, r.dir, &r.val, ttl, now),
        },
        Method::Post => store.create(&r.path, r.dir, &r.val, true, ttl, now),
        Method::Delete if cas => store.compare_and_delete(&r.path, &r.prev_value, r.prev_index, now),
        Method::Delete => store.delete(&r.path, r.dir, r.recursive, now),
        Method::QGet => store.get(&r.path, r.recursive, now),
        Method::Sync => return Ok(store.delete_expired(r.time, now).pop()),
        Method::PermsPut | Method::PermsDelete => {
            let value = (r.method == Method::PermsPut).then_some(r.val.as_str());
            let prev_value = (!r.prev_value.is_empty()).then_some(r.prev_value.as_str());
            return store.write_perm(&r.path, value, r.prev_exist != Some(false), prev_value).map(|_| None);
        }
    };
    e.map(Some)
}
