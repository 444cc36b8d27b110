//! Raft snapshots of the backend: taken every `--snapshot-count` applied entries (the raft log is
//! compacted behind them), and installed when the leader sends one to a member that fell behind its log.
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use raft::eraftpb::Snapshot;
use raft::Storage;

use super::server::{Core, EtcdServer};
use crate::mvcc::KvStore;
use crate::raftnode::{self, logger::zap_log};
use crate::wal::WalSnapshot;

impl EtcdServer {
    /// A snapshot from the leader replaces this member's state (it fell behind the leader's log). The order
    /// makes a crash at any point recoverable: the snapshot's backend is kept on disk, the WAL records the
    /// snapshot, the backend is replaced, then the kept copy goes; a restart finishes an interrupted swap
    /// ([`finish_snapshot_install`]).
    pub(crate) fn install_snapshot(&self, core: &mut Core, snap: Snapshot) -> Result<(), String> {
        let md = snap.get_metadata();
        let (index, term) = (md.index, md.term);
        let kept = snap_db_path(&self.cfg.backend_dir, index);
        write_synced(&kept, &snap.data).map_err(|e| format!("save snapshot db {}: {e}", kept.display()))?;
        core.wal
            .save_snapshot(WalSnapshot { index, term }, &raftnode::storage::encode_conf_state(md.get_conf_state()))
            .map_err(|e| e.to_string())?;
        crate::failpoint::failpoint("snapshot-before-apply");
        self.restore_backend(&snap.data)?;
        // The backend commits without syncing its meta page (NO_META_SYNC): sync it before the kept copy goes,
        // or a power loss could roll the backend back to before the snapshot with nothing left to redo it from.
        self.store.backend().sync().map_err(|e| format!("sync the restored backend: {e}"))?;
        crate::failpoint::failpoint("snapshot-after-apply");
        let _ = std::fs::remove_file(&kept);
        core.node.mut_store().wl().apply_snapshot(snap).map_err(|e| e.to_string())?;
        self.applied.store(index, Ordering::Release);
        core.snapshot_index = index;
        zap_log(
            "info",
            "etcdserver/server.go",
            "applied snapshot",
            &[("local-member-id", format!("{:x}", self.member_id())), ("snapshot-index", index.to_string())],
        );
        Ok(())
    }

    pub(crate) fn restore_backend(&self, dump: &[u8]) -> Result<(), String> {
        self.store.restore(dump).map_err(|e| e.to_string())?;
        self.cluster.reload(self.store.backend()).map_err(|e| e.to_string())?;
        self.alarms.reload(&self.store).map_err(|e| e.to_string())?;
        self.auth.load(self.store.backend()).map_err(|e| e.to_string())?;
        *self.v2.lock() = super::v2::load_store(self.store.backend())?;
        self.db_in_use.store(self.store.backend().size_in_use(), Ordering::Release);
        if self.cluster.member(self.member_id()).is_some_and(|m| m.is_started()) {
            self.published.store(true, Ordering::Release);
        }
        self.refresh_peers();
        Ok(())
    }

    /// Every `snapshot_count` applied entries: mark a snapshot in the WAL and drop the raft log behind it,
    /// keeping `snapshot_catchup_entries` for slow followers. The backend is committed and synced first: the
    /// entries the WAL forgets must be durable there.
    pub(crate) fn maybe_snapshot(&self, core: &mut Core) -> Result<(), String> {
        let applied = self.applied_index();
        if applied < core.snapshot_index + self.cfg.snapshot_count.max(1) {
            return Ok(());
        }
        self.store.committed_backend().map_err(|e| e.to_string())?.sync().map_err(|e| e.to_string())?;
        let store = core.node.mut_store();
        let term = store.term(applied).map_err(|e| e.to_string())?;
        let cs = store.initial_state().map_err(|e| e.to_string())?.conf_state;
        crate::failpoint::failpoint("snapshot-before-save");
        core.wal
            .save_snapshot(WalSnapshot { index: applied, term }, &raftnode::storage::encode_conf_state(&cs))
            .map_err(|e| e.to_string())?;
        let compact_to = applied.saturating_sub(self.cfg.snapshot_catchup_entries).max(1);
        let first = store.first_index().map_err(|e| e.to_string())?;
        let mut w = store.wl();
        if compact_to > first {
            w.compact(compact_to).map_err(|e| e.to_string())?;
        }
        drop(w);
        core.wal.release_lock_to(compact_to).map_err(|e| e.to_string())?;
        core.snapshot_index = applied;
        Ok(())
    }
}

/// Where a snapshot's backend is kept while it replaces the member's (etcd's `<index>.snap.db`).
fn snap_db_path(backend_dir: &Path, index: u64) -> PathBuf {
    backend_dir.with_file_name(format!("{index:016x}.snap.db"))
}

/// Writes `path` durably: its data, and its directory entry (a power loss must not lose the file the WAL's
/// snapshot record is about to promise).
fn write_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)?;
    f.sync_all()?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// A crash between recording a snapshot in the WAL and replacing the backend leaves the snapshot's backend
/// beside the old one: finish the swap before anything reads the store.
pub(crate) fn finish_snapshot_install(store: &KvStore, backend_dir: &Path, snapshot_index: u64) -> Result<(), String> {
    let kept = snap_db_path(backend_dir, snapshot_index);
    if snapshot_index > 0 && store.consistent_index() < snapshot_index && kept.exists() {
        let dump = std::fs::read(&kept).map_err(|e| format!("read {}: {e}", kept.display()))?;
        store.restore(&dump).map_err(|e| e.to_string())?;
        store.backend().sync().map_err(|e| format!("sync the restored backend: {e}"))?;
    }
    if let Some(dir) = backend_dir.parent() {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().ends_with(".snap.db") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}
