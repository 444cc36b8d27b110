//! v2 watches (etcd's watcherHub and EventHistory): watchers by key, and the last [`HISTORY`] events so a
//! watch with a past `waitIndex` is answered from history.
//!
//! An event at `/a/b` is offered to the watchers of `/`, `/a` and `/a/b`: a watcher takes it when it
//! watches that exact key, or is recursive (unless the key is hidden from it: a `_` component below the
//! watched key), or when the event deleted a dir above the watched key. A one-shot watcher is removed
//! once it took an event; a stream watcher stays. A watcher that falls [`WATCHER_BUFFER`] events behind
//! is dropped (its channel closes), as etcd drops it rather than block the store.
use std::collections::{HashMap, VecDeque};

use tokio::sync::mpsc;

use super::error::{V2Error, EVENT_INDEX_CLEARED};
use super::event::{Action, Event};
use super::path::is_hidden;

/// Events kept for `waitIndex` (etcd keeps 1,000).
pub const HISTORY: usize = 1000;
/// Events a watcher may have waiting before it is dropped (etcd's eventChan capacity).
pub const WATCHER_BUFFER: usize = 100;

/// What the HTTP side holds: events arrive on `rx`; it ends when the watcher is dropped. `key` and `id`
/// name it for [`WatcherHub::remove`] when the client goes away first.
pub struct Watcher {
    pub key: String,
    pub id: u64,
    pub rx: mpsc::Receiver<Event>,
    /// The store index when the watch began.
    pub start_index: u64,
}

struct Entry {
    id: u64,
    recursive: bool,
    stream: bool,
    since_index: u64,
    tx: mpsc::Sender<Event>,
}

#[derive(Default)]
pub struct WatcherHub {
    watchers: HashMap<String, Vec<Entry>>,
    history: VecDeque<Event>,
    next_id: u64,
}

impl WatcherHub {
    /// Watches `key` from `since_index`. An event already in history is queued at once (and the watcher is
    /// not registered); an index older than the history is etcd's 401 error.
    pub fn watch(
        &mut self,
        key: &str,
        recursive: bool,
        stream: bool,
        since_index: u64,
        store_index: u64,
    ) -> Result<Watcher, V2Error> {
        let found = self.scan(key, recursive, since_index).map_err(|mut e| {
            e.index = store_index;
            e
        })?;
        let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
        self.next_id += 1;
        let id = self.next_id;
        if let Some(mut ev) = found {
            ev.etcd_index = store_index;
            let _ = tx.try_send(ev);
        } else {
            let entry = Entry { id, recursive, stream, since_index, tx };
            self.watchers.entry(key.to_string()).or_default().push(entry);
        }
        Ok(Watcher { key: key.to_string(), id, rx, start_index: store_index })
    }

    /// Forgets a watcher whose client went away.
    pub fn remove(&mut self, key: &str, id: u64) {
        if let Some(list) = self.watchers.get_mut(key) {
            list.retain(|w| w.id != id);
            if list.is_empty() {
                self.watchers.remove(key);
            }
        }
    }

    /// Watchers registered and still listened to (etcd's `watchers` store stat).
    pub fn count(&self) -> usize {
        self.watchers.values().flatten().filter(|w| !w.tx.is_closed()).count()
    }

    /// Records `e` and offers it to the watchers of its key and of every dir above it.
    pub fn notify(&mut self, e: &Event) {
        self.add(e.clone());
        let key = &e.node.key;
        self.notify_watchers(e, "/", false);
        let mut end = 0;
        while let Some(i) = key[end + 1..].find('/').map(|i| i + end + 1) {
            self.notify_watchers(e, &key[..i], false);
            end = i;
        }
        if key.len() > 1 {
            self.notify_watchers(e, key, false);
        }
    }

    /// Records an event without offering it (a TTL refresh).
    pub fn add(&mut self, e: Event) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(e);
    }

    /// Offers `e` to the watchers of exactly `path`; `deleted` marks a node removed under a deleted dir.
    pub fn notify_watchers(&mut self, e: &Event, path: &str, deleted: bool) {
        let Some(list) = self.watchers.get_mut(path) else {
            return;
        };
        let original = e.node.key == path;
        list.retain(|w| {
            let wants = (w.recursive || original || deleted) && e.index() >= w.since_index;
            let hidden = !original && is_hidden(path, &e.node.key);
            if !wants || hidden {
                return !w.tx.is_closed();
            }
            // A full buffer drops the watcher (its channel closes) rather than block the store.
            let sent = w.tx.try_send(e.clone()).is_ok();
            sent && w.stream
        });
        if list.is_empty() {
            self.watchers.remove(path);
        }
    }

    /// The first event at or after `index` that a watcher of `key` wants, if history has it.
    fn scan(&self, key: &str, recursive: bool, index: u64) -> Result<Option<Event>, V2Error> {
        let Some(first) = self.history.front() else {
            return Ok(None);
        };
        let start = first.index();
        if index < start {
            let cause = format!("the requested history has been cleared [{start}/{index}]");
            return Err(V2Error::new(EVENT_INDEX_CLEARED, cause, 0));
        }
        let from = self.history.partition_point(|e| e.index() < index);
        let prefix = if key.ends_with('/') { key.to_string() } else { format!("{key}/") };
        for e in self.history.range(from..) {
            if e.refresh {
                continue;
            }
            let mut ok = e.node.key == key || (recursive && e.node.key.starts_with(&prefix));
            if matches!(e.action, Action::Delete | Action::Expire) {
                // etcd compares the deleted dir's key as a plain string prefix of the watched key.
                ok |= e.prev_node.as_ref().is_some_and(|p| p.dir && key.starts_with(&p.key));
            }
            if ok {
                return Ok(Some(e.clone()));
            }
        }
        Ok(None)
    }
}
