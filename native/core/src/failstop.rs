//! Fail-stop: a failure on the durability path ends the process, and the restart recovers from the WAL.
//!
//! etcd's rule: a panic in any goroutine, or `lg.Fatal` on a failed fsync or backend commit, ends the
//! process; nothing half-applied keeps serving. Rust panics unwind instead, and parking_lot's locks do not
//! poison, so a member that panicked mid-batch would go on with half a batch applied. The server process
//! installs [`install_panic_hook`]: every panic, on any thread, is logged as etcd's zap "panic" line and the
//! process exits at once with status 2 (Go's status for a panic), before unwinding runs anything. An embedded
//! member (a library user's process) leaves the hook out: the Ready loop's caller sees the panic and stops the
//! member with [`crate::etcdserver::EtcdServer::fail`].
use std::sync::atomic::{AtomicBool, Ordering};

use crate::raftnode::logger::zap_ts;

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Makes every panic end the process (status 2) after one log line. Idempotent.
pub fn install_panic_hook() {
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let caller = info.location().map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        let line = format!(
            "{{\"level\":\"panic\",\"ts\":\"{}\",\"caller\":{},\"msg\":{},\"thread\":{}}}\n",
            zap_ts(),
            serde_json::to_string(&caller).unwrap_or_default(),
            serde_json::to_string(&msg).unwrap_or_default(),
            serde_json::to_string(&thread).unwrap_or_default(),
        );
        // SAFETY: write(2) and _exit(2) are async-signal-safe; nothing else runs between the log and the end.
        unsafe {
            libc::write(2, line.as_ptr().cast(), line.len());
            libc::_exit(2);
        }
    }));
}
