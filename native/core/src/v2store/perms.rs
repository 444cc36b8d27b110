//! The v2 auth resources (etcd keeps them in its v2 store under `/2`, beside the keys under `/1`): JSON
//! values at `/enabled`, `/users/<name>` and `/roles/<name>`. They share the store index, so each write
//! bumps `X-Etcd-Index` exactly as it does on etcd, and are persisted one record per resource.
//!
//! The first write ever makes etcd's `/2`, `/2/users/` and `/2/roles/` dirs and `/2/enabled=false` (its
//! ensureAuthDirectories: four index bumps); a put with `prev_exist` false fails with 105 if the resource
//! exists, one with `prev_exist` true (and a delete) with 100 if it does not.
use std::collections::BTreeMap;

use super::error::{KEY_NOT_FOUND, NODE_EXIST, TEST_FAILED};
use super::store::Store;
use super::V2Error;

/// The resource that marks the auth dirs as made (etcd writes it last), `true` while auth is on.
pub const ENABLED: &str = "/enabled";
/// The root user's resource.
pub const ROOT_USER: &str = "/users/root";
/// The meta-bucket prefix of resource records (`v2perms` then the resource path).
pub const PREFIX: &[u8] = b"v2perms";

#[derive(Default)]
pub struct Perms {
    values: BTreeMap<String, String>,
    /// Resources written or removed since the last [`Store::take_perm_records`].
    changed: Vec<String>,
}

impl Perms {
    /// Rebuilds the resources from their records.
    pub fn load(records: Vec<(Vec<u8>, Vec<u8>)>) -> Perms {
        let values = records
            .into_iter()
            .map(|(k, v)| {
                let res = String::from_utf8_lossy(&k[PREFIX.len()..]).into_owned();
                (res, String::from_utf8_lossy(&v).into_owned())
            })
            .collect();
        Perms { values, changed: Vec::new() }
    }
}

impl Store {
    /// The value of a resource (`/users/alice`), if written.
    pub fn perm(&self, res: &str) -> Option<&str> {
        self.perms.values.get(res).map(String::as_str)
    }

    /// The names under a resource dir (`/users/`), sorted.
    pub fn perm_names(&self, dir: &str) -> Vec<String> {
        let range = self.perms.values.range::<str, _>((std::ops::Bound::Excluded(dir), std::ops::Bound::Unbounded));
        range.take_while(|(k, _)| k.starts_with(dir)).map(|(k, _)| k[dir.len()..].to_string()).collect()
    }

    /// Writes (`Some`) or deletes (`None`) a resource, after making the auth dirs if this is the first write.
    /// With `prev_value`, only if the resource still holds it (101 otherwise): an update merged from what
    /// the proposer read is not applied over a change made since.
    ///
    /// Two rules hold here, where every member applies them in the same order, so concurrent requests
    /// cannot break them (etcd checks them only in the handler): auth is never on without a root user,
    /// and the root user is never deleted while auth is on (both 101, cause the resource).
    pub fn write_perm(
        &mut self,
        res: &str,
        value: Option<&str>,
        prev_exist: bool,
        prev_value: Option<&str>,
    ) -> Result<(), V2Error> {
        if !self.perms.values.contains_key(ENABLED) {
            self.index += 3; // the /2, /2/users/ and /2/roles/ dirs
            self.set_perm(ENABLED, Some("false"));
        }
        let current = self.perms.values.get(res).map(String::as_str);
        let failed = |code, s: &Store| Err(V2Error::new(code, format!("/2{res}"), s.index));
        if current.is_some() && !prev_exist {
            return failed(NODE_EXIST, self);
        }
        if current.is_none() && (prev_exist || value.is_none()) {
            return failed(KEY_NOT_FOUND, self);
        }
        let enabled = self.perm(ENABLED) == Some("true");
        let root_exists = self.perms.values.contains_key(ROOT_USER);
        let breaks_rule = (res == ROOT_USER && value.is_none() && enabled)
            || (res == ENABLED && value == Some("true") && !root_exists);
        if breaks_rule || prev_value.is_some_and(|p| current != Some(p)) {
            return failed(TEST_FAILED, self);
        }
        self.set_perm(res, value);
        Ok(())
    }

    fn set_perm(&mut self, res: &str, value: Option<&str>) {
        match value {
            Some(v) => self.perms.values.insert(res.to_string(), v.to_string()),
            None => self.perms.values.remove(res),
        };
        self.perms.changed.push(res.to_string());
        self.index += 1;
    }

    /// The backend writes for the resources changed since the last call: `(key, Some(value))` or
    /// `(key, None)` for a removed one.
    pub fn take_perm_records(&mut self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut changed = std::mem::take(&mut self.perms.changed);
        changed.sort_unstable();
        changed.dedup();
        changed
            .into_iter()
            .map(|res| {
                let value = self.perms.values.get(&res).map(|v| v.as_bytes().to_vec());
                ([PREFIX, res.as_bytes()].concat(), value)
            })
            .collect()
    }

    /// Puts back resources loaded with [`Perms::load`] (after a restart or a snapshot).
    pub fn set_perms(&mut self, perms: Perms) {
        self.perms = perms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_write_makes_the_dirs_and_bumps_the_index_like_etcd() {
        let mut s = Store::new();
        s.write_perm("/users/root", Some("{}"), false, None).expect("create");
        // Three dirs, /2/enabled, then the user.
        assert_eq!((s.index(), s.perm(ENABLED)), (5, Some("false")));
        let e = s.write_perm("/users/root", Some("{}"), false, None).expect_err("exists");
        assert_eq!((e.code, e.cause.as_str(), e.index, s.index()), (NODE_EXIST, "/2/users/root", 5, 5));
        let e = s.write_perm("/users/bob", Some("{}"), true, None).expect_err("missing");
        assert_eq!((e.code, e.cause.as_str()), (KEY_NOT_FOUND, "/2/users/bob"));
        assert_eq!(s.write_perm("/users/bob", None, true, None).expect_err("missing").code, KEY_NOT_FOUND);
        s.write_perm("/users/bob", Some("{}"), false, None).expect("create");
        s.write_perm("/roles/r", Some("{}"), false, None).expect("create");
        assert_eq!(s.perm_names("/users/"), ["bob", "root"]);
        s.write_perm("/users/bob", None, true, None).expect("delete");
        assert_eq!((s.perm_names("/users/"), s.index()), (vec!["root".to_string()], 8));
        let records = s.take_perm_records();
        let keys: Vec<&[u8]> = records.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [&b"v2perms/enabled"[..], b"v2perms/roles/r", b"v2perms/users/bob", b"v2perms/users/root"]);
        assert!(records[2].1.is_none());
        let back = Perms::load(records.into_iter().filter_map(|(k, v)| Some((k, v?))).collect());
        let mut t = Store::new();
        t.set_perms(back);
        assert_eq!((t.perm_names("/users/"), t.perm("/roles/r")), (vec!["root".to_string()], Some("{}")));
    }

    #[test]
    fn rules_and_compare_and_swap_hold_at_apply() {
        let mut s = Store::new();
        let code = |r: Result<(), V2Error>| r.expect_err("refused").code;
        assert_eq!(code(s.write_perm(ENABLED, Some("true"), true, None)), TEST_FAILED, "no root user yet");
        s.write_perm(ROOT_USER, Some("a"), false, None).expect("create");
        assert_eq!(code(s.write_perm(ROOT_USER, Some("c"), true, Some("b"))), TEST_FAILED, "changed since read");
        s.write_perm(ROOT_USER, Some("c"), true, Some("a")).expect("unchanged since read");
        s.write_perm(ENABLED, Some("true"), true, None).expect("enable");
        let before = s.index();
        assert_eq!(code(s.write_perm(ROOT_USER, None, true, None)), TEST_FAILED, "root stays while enabled");
        assert_eq!((s.index(), s.perm(ROOT_USER)), (before, Some("c")));
        s.write_perm(ENABLED, Some("false"), true, None).expect("disable");
        s.write_perm(ROOT_USER, None, true, None).expect("delete root once auth is off");
    }
}
