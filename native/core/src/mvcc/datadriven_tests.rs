//! Data-driven tests of the revision index: every `testdata/key_index/*.txt` file is a script.
//!
//! A file is a sequence of blocks separated by blank lines; `#` lines between blocks are comments. A block
//! is one or more command lines, a `----` line, then the expected output (never blank lines). Each file
//! starts with an empty [`TreeIndex`] that its blocks share. Run with `REWRITE=1` to replace every
//! expected output with the actual one (then review the diff).
//!
//! Keys and ends take `\xNN` escapes (`end=\x00` is the "from key" end); revisions are `main.sub` or
//! `main`. Commands:
//!
//! ```text
//! put key=K rev=R                 tombstone key=K rev=R        restore key=K created=R modified=R ver=N
//! get key=K at=N                  range key=K [end=E] at=N [limit=N]     since key=K [end=E] rev=N
//! keep rev=N                      compact rev=N                dump
//! reset                           save name=S                  load name=S
//! ```
//!
//! Writes print nothing unless they fail; a block whose commands print nothing shows `ok`. Beyond the
//! printed output, the harness checks invariants the text cannot show: `range` compares `revisions`
//! (with and without limit), `range` and `count_revisions`; `keep` must not change the index; `compact`
//! must return what `keep` predicted, and the compacted index must equal one rebuilt from the rows the
//! backend would still hold (the kept revisions plus everything newer), as a restart would rebuild it.
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use super::index::TreeIndex;
use super::key_index::escape_key;
use super::revision::Revision;
use crate::datadriven::{run_dir, unescape, Args, Script};

#[test]
fn key_index_testdata() {
    run_dir("key_index", Harness::default);
}

/// One write the index has seen, as the backend row it stands for; compaction deletes rows as the backend
/// would, and the rows left must rebuild the compacted index.
#[derive(Clone)]
struct Row {
    key: Vec<u8>,
    rev: Revision,
    tombstone: bool,
    created: Revision,
    ver: i64,
}

#[derive(Default)]
struct Harness {
    index: TreeIndex,
    rows: Vec<Row>,
    saved: HashMap<String, (TreeIndex, Vec<Row>)>,
}

impl Script for Harness {
    fn run(&mut self, a: &mut Args) -> Option<String> {
        match a.cmd.as_str() {
            "put" => {
                let key = a.bytes("key");
                let rev = rev(a, "rev");
                self.index.put(&key, rev);
                self.record(key, rev, false);
                None
            }
            "tombstone" => {
                let key = a.bytes("key");
                let rev = rev(a, "rev");
                match self.index.tombstone(&key, rev) {
                    Ok(()) => {
                        self.record(key, rev, true);
                        None
                    }
                    Err(e) => Some(format!("error: {e}")),
                }
            }
            "restore" => {
                let key = a.bytes("key");
                let (created, modified, ver) = (rev(a, "created"), rev(a, "modified"), a.int("ver"));
                self.index.restore(&key, created, modified, ver);
                self.record(key, modified, false);
                None
            }
            "get" => Some(match self.index.get(&a.bytes("key"), a.int("at")) {
                Ok((m, c, v)) => format!("rev={m} created={c} ver={v}"),
                Err(e) => format!("error: {e}"),
            }),
            "range" => Some(self.range(a)),
            "since" => {
                let revs = self.index.range_since(&a.bytes("key"), &a.opt_bytes("end"), a.int("rev"));
                Some(if revs.is_empty() { "(none)".to_string() } else { join_revs(&revs) })
            }
            "keep" => {
                let before = self.index.clone();
                let keep = self.index.keep(a.int("rev"));
                assert_eq!(before, self.index, "keep changed the index");
                Some(format!("keep: {}", sorted_revs(&keep)))
            }
            "compact" => Some(self.compact(a.int("rev"))),
            "dump" => Some(self.dump()),
            "reset" => {
                self.index = TreeIndex::new();
                self.rows.clear();
                None
            }
            "save" => {
                self.saved.insert(a.string("name"), (self.index.clone(), self.rows.clone()));
                None
            }
            "load" => {
                let name = a.string("name");
                let (index, rows) = self.saved.get(&name).unwrap_or_else(|| panic!("nothing saved as {name}"));
                self.index = index.clone();
                self.rows = rows.clone();
                None
            }
            other => panic!("unknown command {other:?}"),
        }
    }
}

impl Harness {
    fn record(&mut self, key: Vec<u8>, rev: Revision, tombstone: bool) {
        // A put's created revision and version are what a read right after it reports.
        let (created, ver) = match self.index.get(&key, rev.main) {
            Ok((_, c, v)) if !tombstone => (c, v),
            _ => (Revision::default(), 0),
        };
        self.rows.push(Row { key, rev, tombstone, created, ver });
    }

    fn range(&self, a: &mut Args) -> String {
        let (key, end, at) = (a.bytes("key"), a.opt_bytes("end"), a.int("at"));
        let limit = a.opt_int("limit").unwrap_or(0) as usize;
        let (revs, count) = self.index.revisions(&key, &end, at, limit);
        let (all_keys, all_revs) = self.index.range(&key, &end, at);
        let (unlimited, unlimited_count) = self.index.revisions(&key, &end, at, 0);
        assert_eq!(unlimited, all_revs, "revisions(limit 0) disagrees with range");
        assert_eq!(count, all_keys.len(), "revisions count disagrees with range");
        assert_eq!(unlimited_count, count, "count depends on the limit");
        assert_eq!(self.index.count_revisions(&key, &end, at), count, "count_revisions disagrees");
        let shown = if limit == 0 { count } else { limit.min(count) };
        assert_eq!(revs, all_revs[..shown], "limited revisions are not a prefix of the full ones");
        let mut out = String::new();
        for (k, r) in all_keys.iter().zip(&revs) {
            let _ = writeln!(out, "{} {r}", escape_key(k));
        }
        let _ = write!(out, "count={count}");
        out
    }

    fn compact(&mut self, rev: i64) -> String {
        let predicted = self.index.keep(rev);
        let kept = self.index.compact(rev);
        assert_eq!(predicted, kept, "keep({rev}) before compaction predicted a different set");
        assert_eq!(self.index.keep(rev), kept, "keep({rev}) after compaction differs");

        // The backend deletes every row <= rev that is not kept; a restart then replays what is left, in
        // revision order.
        self.rows.retain(|r| r.rev.main > rev || kept.contains(&r.rev));
        self.rows.sort_by_key(|r| r.rev);
        let mut rebuilt = TreeIndex::new();
        for r in &self.rows {
            if r.tombstone {
                rebuilt.restore_tombstone(&r.key, r.rev);
            } else {
                rebuilt.restore(&r.key, r.created, r.rev, r.ver);
            }
        }
        assert_eq!(rebuilt, self.index, "compact({rev}): index differs from one rebuilt from the kept rows");

        format!("keep: {}\n{}", sorted_revs(&kept), self.dump())
    }

    fn dump(&self) -> String {
        if self.index.is_empty() {
            return "(empty index)".to_string();
        }
        self.index.iter().map(|(k, ki)| format!("{} {ki}", escape_key(k))).collect::<Vec<_>>().join("\n")
    }
}

fn join_revs(revs: &[Revision]) -> String {
    revs.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(" ")
}

fn sorted_revs(set: &HashSet<Revision>) -> String {
    if set.is_empty() {
        return "(none)".to_string();
    }
    let mut revs: Vec<Revision> = set.iter().copied().collect();
    revs.sort();
    join_revs(&revs)
}

/// `main.sub` or `main`.
fn rev(a: &mut Args, name: &str) -> Revision {
    let v = a.string(name);
    let (main, sub) = v.split_once('.').unwrap_or((&v, "0"));
    match (main.parse(), sub.parse()) {
        (Ok(main), Ok(sub)) => Revision::new(main, sub),
        _ => panic!("{:?}: {name}={v} is not a revision (main.sub)", a.line),
    }
}

#[test]
fn escape_round_trip() {
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(unescape(&escape_key(&all)), all);
    assert_eq!(unescape("foo\\x00\\xff"), b"foo\x00\xff");
}
