//! `GET /metrics` on the client port: Prometheus text exposition with etcd's metric names, for the figures
//! this server keeps anyway (no per-request counters yet). `etcdctl check datascale` reads
//! `process_resident_memory_bytes` from here.
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::etcdserver::EtcdServer;

/// Resident and virtual bytes of this process, from /proc/self/statm (0 where it cannot be read).
fn process_memory() -> (u64, u64) {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let mut pages = statm.split_whitespace().map(|f| f.parse::<u64>().unwrap_or(0));
    let (virt, rss) = (pages.next().unwrap_or(0), pages.next().unwrap_or(0));
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    (rss * page, virt * page)
}

fn gauge(out: &mut String, name: &str, help: &str, v: u64) {
    sample(out, name, help, "gauge", v);
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    sample(out, name, help, "counter", v);
}

fn sample(out: &mut String, name: &str, help: &str, kind: &str, v: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
}

pub async fn metrics(State(s): State<Arc<EtcdServer>>) -> impl IntoResponse {
    let mut out = String::new();
    let (rss, virt) = process_memory();
    gauge(
        &mut out,
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        u64::from(s.leader() != 0),
    );
    gauge(
        &mut out,
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        u64::from(s.is_leader()),
    );
    gauge(
        &mut out,
        "etcd_server_is_learner",
        "Whether or not this member is a learner. 1 if is, 0 otherwise.",
        u64::from(s.is_learner()),
    );
    gauge(
        &mut out,
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
        s.committed_index(),
    );
    gauge(
        &mut out,
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied.",
        s.applied_index(),
    );
    gauge(
        &mut out,
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes.",
        s.store.backend().size(),
    );
    gauge(
        &mut out,
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes.",
        s.db_size_in_use(),
    );
    gauge(
        &mut out,
        "etcd_debugging_mvcc_watcher_total",
        "Total number of watchers.",
        s.store.watchable.watcher_count() as u64,
    );
    gauge(&mut out, "etcd_debugging_mvcc_keys_total", "Total number of keys.", s.store.key_count() as u64);
    counter(
        &mut out,
        "etcd_server_leader_changes_seen_total",
        "The number of leader changes seen.",
        s.raft_stats.leader_changes.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "etcd_server_proposals_failed_total",
        "The total number of failed proposals seen.",
        s.raft_stats.proposals_failed.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit.",
        s.pending_proposals() as u64,
    );
    crate::histogram::WAL_FSYNC.write(
        &mut out,
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL.",
    );
    crate::histogram::BACKEND_COMMIT.write(
        &mut out,
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
    );
    super::grpc_metrics::write(&mut out);
    gauge(&mut out, "process_resident_memory_bytes", "Resident memory size in bytes.", rss);
    gauge(&mut out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", virt);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out)
}
