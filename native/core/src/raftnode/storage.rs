//! Opening a member's raft state: a new WAL with the initial membership, or the existing WAL replayed.
use std::path::Path;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::{ConfChangeType, ConfState, Entry, EntryType, HardState, Snapshot};
use raft::storage::{MemStorage, MemStorageCore};
use raft::{GetEntriesContext, RaftState as RaftInitState, Storage};

use crate::etcdserver::membership::{ConfChangeContext, ConfOp, Member};
use crate::mvcc::KvStore;
use crate::wal::{Wal, WalOptions, WalSnapshot};

/// The raft log in memory (entries since the last snapshot, as the WAL holds them), plus what a snapshot
/// for a follower that fell behind is made of: the backend at the applied index, dumped when raft asks.
#[derive(Clone)]
pub struct RaftStorage {
    pub mem: MemStorage,
    source: Option<(Arc<KvStore>, Arc<AtomicU64>)>,
}

impl RaftStorage {
    pub fn new(mem: MemStorage) -> RaftStorage {
        RaftStorage { mem, source: None }
    }

    /// Snapshots are `store`'s backend at the index `applied` holds.
    pub fn set_snapshot_source(&mut self, store: Arc<KvStore>, applied: Arc<AtomicU64>) {
        self.source = Some((store, applied));
    }

    pub fn wl(&self) -> std::sync::RwLockWriteGuard<'_, MemStorageCore> {
        self.mem.wl()
    }
}

impl Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftInitState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    /// The backend as of the applied index, with that index's term and the membership raft has applied.
    /// Raft asks from inside the Ready loop, between batches: once the buffered writes are committed, the
    /// backend holds exactly `applied`.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let Some((store, applied)) = &self.source else {
            return self.mem.snapshot(request_index, to);
        };
        let index = applied.load(Ordering::Acquire);
        let term = self.mem.term(index)?;
        let fail = |e: String| raft::Error::Store(raft::StorageError::Other(e.into()));
        let backend = store.committed_backend().map_err(|e| fail(e.to_string()))?;
        let data = backend.dump().map_err(|e| fail(e.to_string()))?;
        let mut snap = Snapshot { data: data.into(), ..Default::default() };
        let md = snap.mut_metadata();
        md.index = index;
        md.term = term;
        md.set_conf_state(self.mem.initial_state()?.conf_state);
        crate::raftnode::logger::zap_log(
            "info",
            "etcdserver/snapshot_merge.go",
            "sending database snapshot",
            &[
                ("remote-peer-id", format!("{to:x}")),
                ("snapshot-index", index.to_string()),
                ("bytes", snap.data.len().to_string()),
            ],
        );
        Ok(snap)
    }
}

/// How a member's raft state begins when its WAL does not exist yet.
pub enum Bootstrap<'a> {
    /// A member of a new cluster: the initial members become the log's first entries, as etcd writes them.
    NewCluster(&'a [Member]),
    /// A member joining a running cluster: an empty log, filled by the leader.
    Join,
}

/// What a member restarts from.
pub struct RaftState {
    pub storage: MemStorage,
    pub wal: Wal,
    pub member_id: u64,
    pub cluster_id: u64,
}

/// WAL metadata: who this member is, fixed at creation (etcd's walpb.Metadata NodeID/ClusterID).
fn encode_metadata(member_id: u64, cluster_id: u64) -> Vec<u8> {
    let mut b = member_id.to_be_bytes().to_vec();
    b.extend_from_slice(&cluster_id.to_be_bytes());
    b
}

fn decode_metadata(b: &[u8]) -> Result<(u64, u64), String> {
    if b.len() != 16 {
        return Err(format!("wal: bad metadata length {}", b.len()));
    }
    Ok((u64::from_be_bytes(b[..8].try_into().unwrap()), u64::from_be_bytes(b[8..].try_into().unwrap())))
}

pub fn encode_conf_state(cs: &ConfState) -> Vec<u8> {
    cs.write_to_bytes().expect("encode ConfState")
}

/// Opens `wal_dir`, or creates it for a new member as `boot` says.
/// The ids in an existing WAL win over the ones passed in: a restart keeps its identity.
pub fn open_or_bootstrap(
    wal_dir: &Path,
    member_id: u64,
    cluster_id: u64,
    boot: Bootstrap<'_>,
    opts: WalOptions,
) -> Result<RaftState, String> {
    if Wal::exists(wal_dir) {
        let (wal, rr) = Wal::open(wal_dir, opts).map_err(|e| e.to_string())?;
        let (member_id, cluster_id) = decode_metadata(&rr.metadata)?;
        let storage = MemStorage::new();
        let cs = ConfState::parse_from_bytes(&rr.conf_state).map_err(|e| format!("wal: conf state: {e}"))?;
        {
            let mut w = storage.wl();
            if rr.snapshot.index > 0 {
                let mut snap = Snapshot::default();
                let md = snap.mut_metadata();
                md.index = rr.snapshot.index;
                md.term = rr.snapshot.term;
                md.set_conf_state(cs);
                w.apply_snapshot(snap).map_err(|e| e.to_string())?;
            } else {
                w.set_conf_state(cs);
            }
            let mut ents = Vec::with_capacity(rr.entries.len());
            for (_, data) in &rr.entries {
                ents.push(Entry::parse_from_bytes(data).map_err(|e| format!("wal: entry: {e}"))?);
            }
            w.append(&ents).map_err(|e| e.to_string())?;
            if let Some(hs) = &rr.hard_state {
                w.set_hardstate(HardState::parse_from_bytes(hs).map_err(|e| format!("wal: hard state: {e}"))?);
            }
        }
        return Ok(RaftState { storage, wal, member_id, cluster_id });
    }
    let mut wal = Wal::create(wal_dir, &encode_metadata(member_id, cluster_id), opts).map_err(|e| e.to_string())?;
    let members = match boot {
        Bootstrap::NewCluster(m) => m.to_vec(),
        Bootstrap::Join => Vec::new(),
    };
    let voters: Vec<u64> = members.iter().map(|m| m.id).collect();
    let cs = ConfState::from((voters, vec![]));
    wal.save_snapshot(WalSnapshot { index: 0, term: 0 }, &encode_conf_state(&cs)).map_err(|e| e.to_string())?;
    let storage = MemStorage::new_with_conf_state(cs);
    if members.is_empty() {
        return Ok(RaftState { storage, wal, member_id, cluster_id });
    }
    // etcd's StartNode: one committed ConfChangeAddNode per initial member at term 1, so a member added later
    // learns the initial membership from the log itself. The first election then lands on term 2, and
    // `raft_term` in answers equals etcd's.
    let mut sorted = members;
    sorted.sort_by_key(|m| m.id);
    let mut ents = Vec::new();
    for (i, m) in sorted.into_iter().enumerate() {
        let cc = ConfChangeContext { op: ConfOp::Add, member: m }.conf_change(ConfChangeType::AddNode);
        let mut e = Entry::default();
        e.set_entry_type(EntryType::EntryConfChange);
        e.term = 1;
        e.index = i as u64 + 1;
        e.data = cc.write_to_bytes().expect("encode ConfChange").into();
        ents.push(e);
    }
    let hs = HardState { term: 1, commit: ents.len() as u64, ..Default::default() };
    let encoded: Vec<(u64, Vec<u8>)> =
        ents.iter().map(|e| (e.index, e.write_to_bytes().expect("encode Entry"))).collect();
    let refs: Vec<(u64, &[u8])> = encoded.iter().map(|(i, b)| (*i, b.as_slice())).collect();
    wal.save(Some(&hs.write_to_bytes().expect("encode HardState")), &refs).map_err(|e| e.to_string())?;
    {
        let mut w = storage.wl();
        w.append(&ents).map_err(|e| e.to_string())?;
        w.set_hardstate(hs);
    }
    Ok(RaftState { storage, wal, member_id, cluster_id })
}
