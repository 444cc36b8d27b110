//! Data-driven tests of the v2 store: every `testdata/v2store/*.txt` file is a script (see
//! [`crate::datadriven`]) run on a new store whose clock starts at 2027-01-15T08:00:00Z.
//!
//! ```text
//! set key=K [value=V] [dir=true] [ttl=S] [refresh=true]     create key=K [value=V] [dir=true] [unique=true] [ttl=S]
//! update key=K [value=V] [ttl=S] [refresh=true]            cas key=K [prev-value=V] [prev-index=N] [value=V] [ttl=S]
//! delete key=K [dir=true] [recursive=true]                 cad key=K [prev-value=V] [prev-index=N]
//! get key=K [recursive=true]                               put|post|del|qget key=K ... (through apply, as raft does)
//! tick secs=S          advance the clock                   expire             SYNC at the current time
//! watch name=W key=K [recursive=true] [stream=true] [since=N]                  events name=W
//! stats                index                               fill key=K count=N    (N sets, value 1..N, quiet)
//! reload               rebuild the store from its records (as a restart does) and check it equals the live one
//! ```
//!
//! After every command the harness persists what changed into a map standing for the backend's records.
//!
//! A write prints its event's JSON and `[etcd_index]`, or `error <status>: <JSON>`. `ttl=S` is an expiry S
//! seconds from now, as the HTTP side computes it. `events` prints what watcher W received since the last
//! `events`, then `(closed)` if its channel ended. Values are `\xNN`-escaped (`\x20` is a space).
use std::collections::{BTreeMap, HashMap};

use super::apply::{apply, Method, V2Request};
use super::persist::{load, take_records};
use super::store::{Store, Ttl};
use super::watcher_hub::Watcher;
use super::{Event, V2Error};
use crate::datadriven::{run_dir, Args, Script};

const START: i64 = 1_800_000_000 * 1_000_000_000;
const SEC: i64 = 1_000_000_000;

#[test]
fn v2store_testdata() {
    run_dir("v2store", Harness::new);
}

struct Harness {
    store: Store,
    now: i64,
    watchers: HashMap<String, Watcher>,
    /// The records a backend would hold.
    disk: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Harness {
    fn new() -> Harness {
        Harness { store: Store::new(), now: START, watchers: HashMap::new(), disk: BTreeMap::new() }
    }

    fn ttl(&self, a: &mut Args) -> Ttl {
        let expire = a.opt_int("ttl").map(|s| self.now + s * SEC);
        Ttl { expire, refresh: a.flag("refresh", false) }
    }

    fn request(&self, method: Method, a: &mut Args) -> V2Request {
        let mut r = V2Request::new(method, &a.string("key"));
        r.val = value(a, "value");
        r.dir = a.flag("dir", false);
        r.prev_value = value(a, "prev-value");
        r.prev_index = a.opt_int("prev-index").unwrap_or(0) as u64;
        r.prev_exist = a.take("prev-exist").map(|v| v == "true");
        r.expiration = a.opt_int("ttl").map_or(0, |s| self.now + s * SEC);
        r.recursive = a.flag("recursive", false);
        r.refresh = a.flag("refresh", false);
        r.time = self.now;
        r
    }
}

fn value(a: &mut Args, name: &str) -> String {
    String::from_utf8(a.opt_bytes(name)).expect("utf-8 value")
}

fn show(r: Result<Event, V2Error>) -> String {
    match r {
        Ok(e) => format!("{} [{}]", e.to_json(), e.etcd_index),
        Err(e) => format!("error {}: {}", e.status(), e.to_json()),
    }
}

impl Harness {
    fn persist(&mut self) {
        for (key, record) in take_records(&mut self.store) {
            match record {
                Some(r) => self.disk.insert(key, r),
                None => self.disk.remove(&key),
            };
        }
    }

    fn reload(&mut self) {
        let records = self.disk.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let loaded = load(records, self.store.index()).expect("load");
        assert_eq!(loaded.state(), self.store.state(), "the reloaded store differs from the live one");
        self.store = loaded;
        self.watchers.clear();
    }
}

impl Script for Harness {
    fn run(&mut self, a: &mut Args) -> Option<String> {
        let out = self.command(a);
        self.persist();
        out
    }
}

impl Harness {
    fn command(&mut self, a: &mut Args) -> Option<String> {
        let now = self.now;
        Some(match a.cmd.as_str() {
            "set" => {
                let (key, val, dir) = (a.string("key"), value(a, "value"), a.flag("dir", false));
                let ttl = self.ttl(a);
                show(self.store.set(&key, dir, &val, ttl, now))
            }
            "create" => {
                let (key, val, dir, unique) =
                    (a.string("key"), value(a, "value"), a.flag("dir", false), a.flag("unique", false));
                let ttl = self.ttl(a);
                show(self.store.create(&key, dir, &val, unique, ttl, now))
            }
            "update" => {
                let (key, val) = (a.string("key"), value(a, "value"));
                let ttl = self.ttl(a);
                show(self.store.update(&key, &val, ttl, now))
            }
            "cas" => {
                let (key, pv, pi) = (a.string("key"), value(a, "prev-value"), a.opt_int("prev-index").unwrap_or(0));
                let val = value(a, "value");
                let ttl = self.ttl(a);
                show(self.store.compare_and_swap(&key, &pv, pi as u64, &val, ttl, now))
            }
            "delete" => {
                let (key, dir, rec) = (a.string("key"), a.flag("dir", false), a.flag("recursive", false));
                show(self.store.delete(&key, dir, rec, now))
            }
            "cad" => {
                let (key, pv, pi) = (a.string("key"), value(a, "prev-value"), a.opt_int("prev-index").unwrap_or(0));
                show(self.store.compare_and_delete(&key, &pv, pi as u64, now))
            }
            "get" => {
                let (key, rec) = (a.string("key"), a.flag("recursive", false));
                show(self.store.get(&key, rec, now))
            }
            "put" | "post" | "del" | "qget" => {
                let method = match a.cmd.as_str() {
                    "put" => Method::Put,
                    "post" => Method::Post,
                    "del" => Method::Delete,
                    _ => Method::QGet,
                };
                let r = self.request(method, a);
                show(apply(&mut self.store, &r, now).map(|e| e.expect("a write answers with an event")))
            }
            "fill" => {
                let key = a.string("key");
                for i in 1..=a.int("count") {
                    self.store.set(&key, false, &i.to_string(), Ttl::default(), now).expect("set");
                }
                return None;
            }
            "tick" => {
                self.now += a.int("secs") * SEC;
                return None;
            }
            "expire" => {
                let r = V2Request { time: now, ..V2Request::new(Method::Sync, "/") };
                let _ = apply(&mut self.store, &r, now);
                return None;
            }
            "watch" => {
                let (name, key) = (a.string("name"), a.string("key"));
                let (rec, stream) = (a.flag("recursive", false), a.flag("stream", false));
                let since = a.opt_int("since").unwrap_or(0) as u64;
                match self.store.watch(&key, rec, stream, since) {
                    Ok(w) => {
                        self.watchers.insert(name, w);
                        return None;
                    }
                    Err(e) => format!("error {}: {}", e.status(), e.to_json()),
                }
            }
            "events" => {
                let w = self.watchers.get_mut(&a.string("name")).expect("no such watcher");
                let mut out = Vec::new();
                loop {
                    match w.rx.try_recv() {
                        Ok(e) => out.push(format!("{} [{}]", e.to_json(), e.etcd_index)),
                        Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                        Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                            out.push("(closed)".to_string());
                            break;
                        }
                    }
                }
                if out.is_empty() {
                    "(none)".to_string()
                } else {
                    out.join("\n")
                }
            }
            "stats" => self.store.stats.to_json(self.store.hub.count()),
            "reload" => {
                self.reload();
                return None;
            }
            "index" => self.store.index().to_string(),
            other => panic!("unknown command {other:?}"),
        })
    }
}
