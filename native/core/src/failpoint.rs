//! Failpoints at durability boundaries, for the crash and robustness tests (etcd's gofail, in miniature).
//!
//! Armed from the environment when the process starts, `PYETCD_FAILPOINTS="wal-after-fsync=panic,
//! backend-before-commit=sleep(50)"`, or while it runs through a small HTTP endpoint that
//! `PYETCD_FAILPOINTS_HTTP=127.0.0.1:22381` starts (gofail's GOFAIL_HTTP): `PUT /<name>` with the term as the
//! body arms one, `DELETE /<name>` disarms it, `GET /` lists the armed ones as `name=term` lines.
//!
//! A term is an action, optionally with the hit it starts at: `panic` (unwind; fail-stop turns it into the
//! end of the process), `exit` (abort at once, as a kill -9 would, without flushing anything), `sleep(ms)`,
//! and `panic@3` (the first two hits pass, the third and every later one fire). An unarmed failpoint costs one
//! relaxed atomic load, so they stay compiled into release builds.
//!
//! The names in use, by boundary:
//! - WAL: `wal-before-fsync`, `wal-after-fsync`; `wal-skip-fsync` (a test-only broken server: while armed
//!   with any action, the WAL's fsync is skipped and nothing else happens);
//! - raft: `raft-before-save`, `raft-after-save` (around persisting a Ready), `raft-before-leader-send`,
//!   `raft-before-follower-send` (messages about to leave a leader or a follower);
//! - apply: `apply-before-commit` (entries applied, batch not handed to the backend yet);
//! - backend: `backend-before-commit`, `backend-after-commit`;
//! - snapshots: `snapshot-before-save` (raft snapshot marker), `snapshot-before-apply`,
//!   `snapshot-after-apply` (a leader's snapshot replacing the backend);
//! - compaction: `compaction-before-commit`, `compaction-after-commit` (each purge transaction).
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::RwLock;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    Panic,
    Exit,
    Sleep(u64),
}

#[derive(Debug)]
struct Term {
    action: Action,
    /// The first hit that fires (1-based).
    from_hit: u64,
    hits: AtomicU64,
    spec: String,
}

fn parse_term(spec: &str) -> Option<Term> {
    let spec = spec.trim();
    let (action, from_hit) = match spec.rsplit_once('@') {
        Some((a, n)) => (a.trim(), n.trim().parse::<u64>().ok()?.max(1)),
        None => (spec, 1),
    };
    let action = match action {
        "panic" => Action::Panic,
        "exit" => Action::Exit,
        a => Action::Sleep(a.strip_prefix("sleep(")?.strip_suffix(')')?.parse().ok()?),
    };
    Some(Term { action, from_hit, hits: AtomicU64::new(0), spec: spec.to_string() })
}

fn parse(spec: &str) -> HashMap<String, Term> {
    let mut out = HashMap::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, term)) = item.split_once('=') else {
            continue;
        };
        if let Some(t) = parse_term(term) {
            out.insert(name.trim().to_string(), t);
        }
    }
    out
}

/// Whether any failpoint is armed: the one load an unarmed failpoint costs.
static ANY_ARMED: AtomicBool = AtomicBool::new(false);

fn armed() -> &'static RwLock<HashMap<String, Term>> {
    static ARMED: OnceLock<RwLock<HashMap<String, Term>>> = OnceLock::new();
    ARMED.get_or_init(|| {
        let points = parse(&std::env::var("PYETCD_FAILPOINTS").unwrap_or_default());
        ANY_ARMED.store(!points.is_empty(), Ordering::Release);
        if let Ok(addr) = std::env::var("PYETCD_FAILPOINTS_HTTP") {
            if let Err(e) = serve_http(&addr) {
                eprintln!("pyetcd_fast: failpoints endpoint {addr}: {e}");
            }
        }
        RwLock::new(points)
    })
}

/// Reads the environment and starts the HTTP endpoint it asks for; failpoints fire only after this (the
/// server calls it as it opens).
pub fn init() {
    armed();
}

/// Arms `name` with `term`; false if the term does not parse.
pub fn arm(name: &str, term: &str) -> bool {
    let Some(t) = parse_term(term) else {
        return false;
    };
    let mut points = armed().write();
    points.insert(name.to_string(), t);
    ANY_ARMED.store(true, Ordering::Release);
    true
}

/// Disarms `name`; whether it was armed.
pub fn disarm(name: &str) -> bool {
    let mut points = armed().write();
    let was = points.remove(name).is_some();
    ANY_ARMED.store(!points.is_empty(), Ordering::Release);
    was
}

/// Whether `name` is armed (for failpoints that change behaviour rather than act, like `wal-skip-fsync`).
pub fn is_armed(name: &str) -> bool {
    ANY_ARMED.load(Ordering::Relaxed) && armed().read().contains_key(name)
}

/// Runs the action armed for `name`, if any.
pub fn failpoint(name: &str) {
    if !ANY_ARMED.load(Ordering::Relaxed) {
        return;
    }
    let action = {
        let points = armed().read();
        let Some(t) = points.get(name) else {
            return;
        };
        if t.hits.fetch_add(1, Ordering::Relaxed) + 1 < t.from_hit {
            return;
        }
        t.action.clone()
    };
    match action {
        Action::Panic => panic!("failpoint {name}"),
        Action::Exit => {
            eprintln!("failpoint {name}: exiting");
            std::process::abort();
        }
        Action::Sleep(ms) => std::thread::sleep(Duration::from_millis(ms)),
    }
}

/// The `name=term` lines of what is armed, sorted.
fn list() -> String {
    let points = armed().read();
    let mut lines: Vec<String> = points.iter().map(|(n, t)| format!("{n}={}\n", t.spec)).collect();
    lines.sort();
    lines.concat()
}

/// gofail's HTTP endpoint, in a thread of its own: one request per connection, bodies of a few bytes.
fn serve_http(addr: &str) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(addr)?;
    std::thread::Builder::new().name("failpoints-http".into()).spawn(move || {
        for conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = handle(conn);
        }
    })?;
    Ok(())
}

fn handle(conn: std::net::TcpStream) -> std::io::Result<()> {
    const MAX_LINE: u64 = 4096;
    let mut reader = BufReader::new(conn.try_clone()?.take(64 * 1024));
    let mut line = String::new();
    reader.by_ref().take(MAX_LINE).read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.by_ref().take(MAX_LINE).read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0).min(MAX_LINE as usize);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let name = path.trim_start_matches('/');
    let (status, text) = match method {
        "GET" => ("200 OK", list()),
        "PUT" if arm(name, &String::from_utf8_lossy(&body)) => ("204 No Content", String::new()),
        "PUT" => ("400 Bad Request", "failpoint: bad term\n".to_string()),
        "DELETE" if disarm(name) => ("204 No Content", String::new()),
        "DELETE" => ("404 Not Found", "failpoint: not armed\n".to_string()),
        _ => ("405 Method Not Allowed", String::new()),
    };
    let mut conn = conn;
    write!(conn, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_terms() {
        let p = parse("a=panic, b=sleep(20),c=exit,bad,d=sleep(x),e=panic@3");
        assert_eq!(p.get("a").map(|t| (&t.action, t.from_hit)), Some((&Action::Panic, 1)));
        assert_eq!(p.get("b").map(|t| &t.action), Some(&Action::Sleep(20)));
        assert_eq!(p.get("c").map(|t| &t.action), Some(&Action::Exit));
        assert_eq!(p.get("e").map(|t| (&t.action, t.from_hit)), Some((&Action::Panic, 3)));
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn fires_from_the_nth_hit_and_disarms() {
        assert!(arm("test-nth", "panic@3"));
        assert!(is_armed("test-nth"));
        failpoint("test-nth");
        failpoint("test-nth");
        assert!(std::panic::catch_unwind(|| failpoint("test-nth")).is_err());
        assert!(list().contains("test-nth=panic@3\n"));
        assert!(disarm("test-nth"));
        failpoint("test-nth");
        assert!(!arm("test-nth", "nonsense"));
    }
}
