//! The v2 store (etcd's v2store): a tree of files and dirs under one index that every write bumps, with
//! TTLs and watches. Pure state: times come in as arguments (unix nanoseconds), so every member applying
//! the same requests reaches the same tree.
//!
//! Worked example (indices start at 0 on a new store):
//!
//! ```text
//! set /a/b=1          -> index 1: /a created implicitly (createdIndex 1), /a/b set     action "set"
//! create /a/b=2       -> 105 Key already exists (/a/b) [1]                             index stays 1
//! cas /a/b 1 -> 3     -> index 2: compareAndSwap, prevNode value 1, createdIndex 1
//! create /q (unique)  -> index 3: /q/00000000000000000003                              action "create"
//! delete /a           -> 102 Not a file (/a) [3]; with dir: 108 Directory not empty; with recursive:
//!                        index 4, action "delete", watchers of /a/b get it too
//! set /t=x expire=T   -> index 5; delete_expired(T) -> index 6, action "expire"
//! ```
use std::collections::BTreeSet;

use super::error::*;
use super::event::{Action, Event};
use super::node::{Compare, Kind, Node};
use super::path::{clean, components, join};
use super::stats::Stats;
use super::watcher_hub::{Watcher, WatcherHub};

/// Expiry times before 2000-01-01 mean "permanent" (etcd's minExpireTime: a zero time that went through
/// JSON).
const MIN_EXPIRE: i64 = 946_684_800_000_000_000;

/// A TTL option set: the absolute expiry (`None`: permanent) and whether this is a refresh (the value is
/// kept and watchers are not told).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ttl {
    pub expire: Option<i64>,
    pub refresh: bool,
}

pub struct Store {
    root: Node,
    pub(super) index: u64,
    /// (expiry, path) of every node with a TTL, soonest first.
    ttls: BTreeSet<(i64, String)>,
    pub hub: WatcherHub,
    pub stats: Stats,
    /// Paths whose node was written or removed since [`Store::take_changed`] (see [`super::persist`]).
    changed: Vec<String>,
    /// The v2 auth resources (etcd's `/2` subtree, beside the keys), see [`super::perms`].
    pub(super) perms: super::perms::Perms,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Store {
        Store::restore(Node::dir(0, None), 0)
    }

    /// The store index (`X-Etcd-Index`).
    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn get(&mut self, path: &str, recursive: bool, now: i64) -> Result<Event, V2Error> {
        let path = clean(path);
        let r = self.lookup(&path).map(|n| {
            let mut e = Event::new(Action::Get, &path, n.modified_index, n.created_index);
            e.node = n.repr(&path, true, recursive, now);
            e
        });
        self.stats.count(&r, |s| &mut s.gets);
        let mut e = r?;
        e.etcd_index = self.index;
        Ok(e)
    }

    /// Sets a file (or makes a dir) at `path`, creating dirs above it; replaces a file, never a dir.
    pub fn set(&mut self, path: &str, dir: bool, value: &str, ttl: Ttl, now: i64) -> Result<Event, V2Error> {
        let path = clean(path);
        let r = self.set_inner(&path, dir, value, ttl, now);
        self.stats.count(&r, |s| &mut s.sets);
        r
    }

    fn set_inner(&mut self, path: &str, dir: bool, value: &str, ttl: Ttl, now: i64) -> Result<Event, V2Error> {
        // A refresh needs the node (its value is kept); a plain set replaces whatever file is there.
        let (prev, value) = match self.lookup(path) {
            Ok(n) if ttl.refresh => (Some(n.repr(path, false, false, now)), n.value().to_string()),
            Ok(n) => (Some(n.repr(path, false, false, now)), value.to_string()),
            Err(e) if e.code == KEY_NOT_FOUND && !ttl.refresh => (None, value.to_string()),
            Err(e) => return Err(e),
        };
        let mut e = self.create_node(path, dir, &value, false, true, ttl.expire, Action::Set, now)?;
        e.etcd_index = self.index;
        e.prev_node = prev;
        self.publish(e.clone(), ttl.refresh);
        Ok(e)
    }

    /// Creates `path` (or, when `unique`, a child of it named by the new index); fails if it exists.
    pub fn create(
        &mut self,
        path: &str,
        dir: bool,
        value: &str,
        unique: bool,
        ttl: Ttl,
        now: i64,
    ) -> Result<Event, V2Error> {
        let r = self.create_node(path, dir, value, unique, false, ttl.expire, Action::Create, now);
        self.stats.count(&r, |s| &mut s.creates);
        let mut e = r?;
        e.etcd_index = self.index;
        self.hub.notify(&e);
        Ok(e)
    }

    /// Updates an existing node: a file's value, or a dir's TTL (a dir takes no value).
    pub fn update(&mut self, path: &str, value: &str, ttl: Ttl, now: i64) -> Result<Event, V2Error> {
        let path = clean(path);
        let r = self.update_inner(&path, value, ttl, now);
        self.stats.count(&r, |s| &mut s.updates);
        r
    }

    fn update_inner(&mut self, path: &str, value: &str, ttl: Ttl, now: i64) -> Result<Event, V2Error> {
        self.writable(path)?;
        let next = self.index + 1;
        let n = self.lookup(path)?;
        if n.is_dir() && !value.is_empty() {
            return Err(V2Error::new(NOT_FILE, path, self.index));
        }
        let mut e = change_event(Action::Update, path, n, next, now);
        let old_expire = n.expire;
        let n = self.lookup_mut(path).expect("looked up");
        if let Kind::File(v) = &mut n.kind {
            if !ttl.refresh {
                *v = value.to_string();
            }
            n.modified_index = next;
            e.node.value = Some(v.clone());
        } else {
            // etcd's node.Write refuses a dir, so a dir's modifiedIndex stays.
            e.node.dir = true;
        }
        n.expire = ttl.expire;
        (e.node.expiration, e.node.ttl) = n.expiration_and_ttl(now);
        self.rewritten(path, old_expire, ttl, next, &e);
        Ok(e)
    }

    /// Swaps a file's value if `prev_value` and `prev_index` (each when given) match.
    pub fn compare_and_swap(
        &mut self,
        path: &str,
        prev_value: &str,
        prev_index: u64,
        value: &str,
        ttl: Ttl,
        now: i64,
    ) -> Result<Event, V2Error> {
        let path = clean(path);
        let r = self.cas_inner(&path, prev_value, prev_index, value, ttl, now);
        self.stats.count(&r, |s| &mut s.compare_and_swaps);
        r
    }

    fn cas_inner(
        &mut self,
        path: &str,
        prev_value: &str,
        prev_index: u64,
        value: &str,
        ttl: Ttl,
        now: i64,
    ) -> Result<Event, V2Error> {
        self.writable(path)?;
        let n = self.compared_file(path, prev_value, prev_index)?;
        let next = self.index + 1;
        let mut e = change_event(Action::CompareAndSwap, path, n, next, now);
        let old_expire = n.expire;
        let n = self.lookup_mut(path).expect("looked up");
        let value = if ttl.refresh { n.value().to_string() } else { value.to_string() };
        n.kind = Kind::File(value.clone());
        n.modified_index = next;
        n.expire = ttl.expire;
        e.node.value = Some(value);
        (e.node.expiration, e.node.ttl) = n.expiration_and_ttl(now);
        self.rewritten(path, old_expire, ttl, next, &e);
        Ok(e)
    }

    /// Deletes a file; a dir needs `dir` (empty) or `recursive` (with everything under it).
    pub fn delete(&mut self, path: &str, dir: bool, recursive: bool, now: i64) -> Result<Event, V2Error> {
        let path = clean(path);
        let r = self.delete_inner(&path, dir || recursive, recursive, now);
        self.stats.count(&r, |s| &mut s.deletes);
        r
    }

    fn delete_inner(&mut self, path: &str, dir: bool, recursive: bool, now: i64) -> Result<Event, V2Error> {
        self.writable(path)?;
        let n = self.lookup(path)?;
        if n.is_dir() {
            if !dir {
                return Err(V2Error::new(NOT_FILE, path, self.index));
            }
            if !recursive && n.children().is_some_and(|c| !c.is_empty()) {
                return Err(V2Error::new(DIR_NOT_EMPTY, path, self.index));
            }
        }
        let next = self.index + 1;
        let mut e = change_event(Action::Delete, path, n, next, now);
        e.node.dir = n.is_dir();
        self.remove_subtree(path, &e);
        self.index = next;
        self.hub.notify(&e);
        Ok(e)
    }

    /// Deletes a file if `prev_value` and `prev_index` (each when given) match.
    pub fn compare_and_delete(
        &mut self,
        path: &str,
        prev_value: &str,
        prev_index: u64,
        now: i64,
    ) -> Result<Event, V2Error> {
        let path = clean(path);
        let r = self.cad_inner(&path, prev_value, prev_index, now);
        self.stats.count(&r, |s| &mut s.compare_and_deletes);
        r
    }

    fn cad_inner(&mut self, path: &str, prev_value: &str, prev_index: u64, now: i64) -> Result<Event, V2Error> {
        let n = self.compared_file(path, prev_value, prev_index)?;
        let next = self.index + 1;
        let e = change_event(Action::CompareAndDelete, path, n, next, now);
        self.index = next;
        // etcd tells the key's watchers before it removes the node.
        self.hub.notify(&e);
        self.remove_subtree(path, &e);
        Ok(e)
    }

    /// Removes every node whose expiry is at or before `cutoff`, one `expire` event (and index) each.
    pub fn delete_expired(&mut self, cutoff: i64, now: i64) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some((at, path)) = self.ttls.first().cloned() {
            if at > cutoff {
                break;
            }
            self.ttls.remove(&(at, path.clone()));
            let n = self.lookup(&path).expect("a node in the TTL index exists");
            let next = self.index + 1;
            let mut e = change_event(Action::Expire, &path, n, next, now);
            e.node.dir = n.is_dir();
            self.index = next;
            self.remove_subtree(&path, &e);
            self.stats.expires += 1;
            self.hub.notify(&e);
            out.push(e);
        }
        out
    }

    /// Watches `path` from `since_index` (0: the next change).
    pub fn watch(&mut self, path: &str, recursive: bool, stream: bool, since_index: u64) -> Result<Watcher, V2Error> {
        let since = if since_index == 0 { self.index + 1 } else { since_index };
        self.hub.watch(&clean(path), recursive, stream, since, self.index)
    }

    // --- helpers ---------------------------------------------------------------------------------------

    /// The tree and the TTL index, for tests that compare a reloaded store with the live one.
    #[cfg(test)]
    pub(crate) fn state(&self) -> (&Node, &BTreeSet<(i64, String)>) {
        (&self.root, &self.ttls)
    }

    fn writable(&self, path: &str) -> Result<(), V2Error> {
        if path == "/" {
            return Err(V2Error::new(ROOT_RONLY, "/", self.index));
        }
        Ok(())
    }

    /// The node at a clean path; a file on the way is 104 Not a directory (the file's path), a missing
    /// component 100 Key not found (the path up to it).
    fn lookup(&self, path: &str) -> Result<&Node, V2Error> {
        let mut cur = &self.root;
        let mut at = String::from("/");
        for name in components(path) {
            let Some(children) = cur.children() else {
                return Err(V2Error::new(NOT_DIR, at, self.index));
            };
            at = join(&at, name);
            cur = children.get(name).ok_or_else(|| V2Error::new(KEY_NOT_FOUND, at.clone(), self.index))?;
        }
        Ok(cur)
    }

    fn lookup_mut(&mut self, path: &str) -> Option<&mut Node> {
        let mut cur = &mut self.root;
        for name in components(path) {
            cur = cur.children_mut()?.get_mut(name)?;
        }
        Some(cur)
    }

    /// etcd's internalCreate: walks to the parent making dirs (with the next index), then adds the node.
    #[allow(clippy::too_many_arguments)]
    fn create_node(
        &mut self,
        path: &str,
        dir: bool,
        value: &str,
        unique: bool,
        replace: bool,
        expire: Option<i64>,
        action: Action,
        now: i64,
    ) -> Result<Event, V2Error> {
        let (cur, next) = (self.index, self.index + 1);
        let path = if unique { clean(&format!("{path}/{next:020}")) } else { clean(path) };
        self.writable(&path)?;
        let expire = expire.filter(|&t| t >= MIN_EXPIRE);
        let (parent_path, name) = path.rsplit_once('/').expect("a clean path other than / has a parent");
        let parent = match self.make_dirs(parent_path, next) {
            Ok(p) => p,
            Err(mut e) => {
                self.stats.sets.1 += 1; // etcd counts a failed walk as a failed set, whatever the action
                e.index = cur;
                return Err(e);
            }
        };
        let mut e = Event::new(action, &path, next, next);
        let children = parent.children_mut().expect("make_dirs returns a dir");
        let mut old_expire = None;
        if let Some(old) = children.get(name) {
            if !replace {
                return Err(V2Error::new(NODE_EXIST, path, cur));
            }
            if old.is_dir() {
                return Err(V2Error::new(NOT_FILE, path, cur));
            }
            e.prev_node = Some(old.repr(&path, false, false, now));
            old_expire = old.expire;
        }
        let node = if dir { Node::dir(next, expire) } else { Node::file(value.to_string(), next, expire) };
        if dir {
            e.node.dir = true;
        } else {
            e.node.value = Some(value.to_string());
        }
        (e.node.expiration, e.node.ttl) = node.expiration_and_ttl(now);
        children.insert(name.to_string(), node);
        self.retime(&path, old_expire, expire);
        self.changed.push(path.clone());
        self.index = next;
        Ok(e)
    }

    /// etcd's checkDir walk: each missing component becomes a permanent dir created at `index`; a file in
    /// the way is 104 Not a directory.
    fn make_dirs(&mut self, parent: &str, index: u64) -> Result<&mut Node, V2Error> {
        let cur_index = self.index;
        let changed = &mut self.changed;
        let mut cur = &mut self.root;
        let mut at = String::from("/");
        for name in components(parent) {
            at = join(&at, name);
            let children = cur.children_mut().expect("walk stays on dirs");
            let child = children.entry(name.to_string()).or_insert_with(|| {
                changed.push(at.clone());
                Node::dir(index, None)
            });
            if !child.is_dir() {
                return Err(V2Error::new(NOT_DIR, at, cur_index));
            }
            cur = child;
        }
        Ok(cur)
    }

    /// The file at `path` if `prev_value` and `prev_index` (each when given) match it: etcd's checks before a
    /// compare-and-swap or compare-and-delete (a dir is 102, a mismatch 101 with the mismatch as cause).
    fn compared_file(&self, path: &str, prev_value: &str, prev_index: u64) -> Result<&Node, V2Error> {
        let n = self.lookup(path)?;
        if n.is_dir() {
            return Err(V2Error::new(NOT_FILE, path, self.index));
        }
        if let Some(cause) = compare_fail_cause(n, prev_value, prev_index) {
            return Err(V2Error::new(TEST_FAILED, cause, self.index));
        }
        Ok(n)
    }

    /// The end of an update or compare-and-swap of the node at `path` at index `next`: its TTL moves, it is
    /// persisted, the index advances, and `e` is published (a refresh only goes to the history).
    fn rewritten(&mut self, path: &str, old_expire: Option<i64>, ttl: Ttl, next: u64, e: &Event) {
        self.retime(path, old_expire, ttl.expire);
        self.changed.push(path.to_string());
        self.index = next;
        self.publish(e.clone(), ttl.refresh);
    }

    /// Moves `path` in the TTL index from `old` to `new`.
    fn retime(&mut self, path: &str, old: Option<i64>, new: Option<i64>) {
        if let Some(t) = old {
            self.ttls.remove(&(t, path.to_string()));
        }
        if let Some(t) = new {
            self.ttls.insert((t, path.to_string()));
        }
    }

    /// Detaches the subtree at `path`, drops its TTLs and tells the watchers of each removed path (children
    /// first, then the node itself) that `e` deleted it.
    fn remove_subtree(&mut self, path: &str, e: &Event) {
        let (parent, name) = path.rsplit_once('/').expect("never the root");
        let parent = if parent.is_empty() { "/" } else { parent };
        let removed = self
            .lookup_mut(parent)
            .and_then(|p| p.children_mut())
            .and_then(|c| c.remove(name))
            .expect("the node exists");
        let mut expiring = Vec::new();
        removed.expiring(path, &mut expiring);
        for t in expiring {
            self.ttls.remove(&t);
        }
        let mut paths = Vec::new();
        removed.paths_bottom_up(path, &mut paths);
        for p in &paths {
            self.hub.notify_watchers(e, p, true);
        }
        self.changed.extend(paths);
    }

    /// Notifies the watchers of a change, or only records a refresh (etcd does not wake watchers for one).
    fn publish(&mut self, mut e: Event, refresh: bool) {
        if refresh {
            e.refresh = true;
            self.hub.add(e);
        } else {
            self.hub.notify(&e);
        }
    }

    /// The paths written or removed since the last call, each once; the caller persists each path's node
    /// (or its absence) as the tree holds it now.
    pub(super) fn take_changed(&mut self) -> Vec<String> {
        let mut paths = std::mem::take(&mut self.changed);
        paths.sort_unstable();
        paths.dedup();
        paths
    }

    /// The node at a clean path, if any.
    pub fn node(&self, path: &str) -> Option<&Node> {
        self.lookup(path).ok()
    }

    /// Whether any node has a TTL (the leader proposes expiry sweeps only then, as etcd does).
    pub fn has_ttl_keys(&self) -> bool {
        !self.ttls.is_empty()
    }

    /// Rebuilds a store from a saved root and index (watchers and history start empty, as after etcd's
    /// restart).
    pub fn restore(root: Node, index: u64) -> Store {
        let mut expiring = Vec::new();
        root.expiring("/", &mut expiring);
        let ttls = expiring.into_iter().collect();
        Store {
            root,
            index,
            ttls,
            hub: WatcherHub::default(),
            stats: Stats::default(),
            changed: Vec::new(),
            perms: Default::default(),
        }
    }
}

/// The event of a change at index `next` to the node `n` at `path`: its created index, the store index it
/// leaves behind, and the node as it was.
fn change_event(action: Action, path: &str, n: &Node, next: u64, now: i64) -> Event {
    let mut e = Event::new(action, path, next, n.created_index);
    e.etcd_index = next;
    e.prev_node = Some(n.repr(path, false, false, now));
    e
}

/// etcd's getCompareFailCause, or `None` when both conditions hold.
fn compare_fail_cause(n: &Node, prev_value: &str, prev_index: u64) -> Option<String> {
    match n.compare(prev_value, prev_index) {
        Compare::Match => None,
        Compare::IndexNotMatch => Some(format!("[{prev_index} != {}]", n.modified_index)),
        Compare::ValueNotMatch => Some(format!("[{prev_value} != {}]", n.value())),
        Compare::NotMatch => Some(format!("[{prev_value} != {}] [{prev_index} != {}]", n.value(), n.modified_index)),
    }
}
