//! Failpoints at durability boundaries, for the crash and robustness tests (etcd's gofail, in miniature).
//!
//! Armed from the environment when the process starts: `PYETCD_FAILPOINTS="wal-after-fsync=panic,
//! backend-before-commit=sleep(50)"`. Actions: `panic` (unwind), `exit` (abort the process at once, as a
//! kill -9 would, without flushing anything) and `sleep(ms)`. An unarmed failpoint costs one load of an
//! initialised `OnceLock` and a map lookup on an empty map, so they stay compiled into release builds.
//!
//! The names in use: `wal-before-fsync`, `wal-after-fsync`, `apply-before-commit`, `backend-before-commit`,
//! `backend-after-commit`, `snapshot-before-save`.
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    Panic,
    Exit,
    Sleep(u64),
}

fn parse(spec: &str) -> HashMap<String, Action> {
    let mut out = HashMap::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, action)) = item.split_once('=') else {
            continue;
        };
        let action = match action.trim() {
            "panic" => Action::Panic,
            "exit" => Action::Exit,
            a => match a.strip_prefix("sleep(").and_then(|s| s.strip_suffix(')')).and_then(|s| s.parse().ok()) {
                Some(ms) => Action::Sleep(ms),
                None => continue,
            },
        };
        out.insert(name.trim().to_string(), action);
    }
    out
}

fn armed() -> &'static HashMap<String, Action> {
    static ARMED: OnceLock<HashMap<String, Action>> = OnceLock::new();
    ARMED.get_or_init(|| parse(&std::env::var("PYETCD_FAILPOINTS").unwrap_or_default()))
}

/// Runs the action armed for `name`, if any.
pub fn failpoint(name: &str) {
    let points = armed();
    if points.is_empty() {
        return;
    }
    match points.get(name) {
        None => {}
        Some(Action::Panic) => panic!("failpoint {name}"),
        Some(Action::Exit) => {
            eprintln!("failpoint {name}: exiting");
            std::process::abort();
        }
        Some(Action::Sleep(ms)) => std::thread::sleep(Duration::from_millis(*ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_actions() {
        let p = parse("a=panic, b=sleep(20),c=exit,bad,d=sleep(x)");
        assert_eq!(p.get("a"), Some(&Action::Panic));
        assert_eq!(p.get("b"), Some(&Action::Sleep(20)));
        assert_eq!(p.get("c"), Some(&Action::Exit));
        assert_eq!(p.len(), 3);
    }
}
