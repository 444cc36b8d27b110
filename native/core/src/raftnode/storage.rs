//! Opening a member's raft state: a new WAL with the initial membership, or the existing WAL replayed.
use std::path::Path;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;

use crate::wal::{Wal, WalOptions, WalSnapshot};

/// What a member restarts from.
pub struct RaftState {
    pub storage: MemStorage,
    pub wal: Wal,
    pub member_id: u64,
    pub cluster_id: u64,
    /// Whether the WAL was just created (a new member).
    pub fresh: bool,
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

/// Opens `wal_dir`, or creates it for a new member whose initial voters are `voters`.
/// The ids in an existing WAL win over the ones passed in: a restart keeps its identity.
pub fn open_or_bootstrap(
    wal_dir: &Path,
    member_id: u64,
    cluster_id: u64,
    voters: &[u64],
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
        return Ok(RaftState { storage, wal, member_id, cluster_id, fresh: false });
    }
    let mut wal = Wal::create(wal_dir, &encode_metadata(member_id, cluster_id), opts).map_err(|e| e.to_string())?;
    let cs = ConfState::from((voters.to_vec(), vec![]));
    wal.save_snapshot(WalSnapshot { index: 0, term: 0 }, &encode_conf_state(&cs)).map_err(|e| e.to_string())?;
    let storage = MemStorage::new_with_conf_state(cs);
    // etcd bootstraps a new member at term 1 (its initial membership entries are written there), so its first
    // election lands on term 2; starting from the same term keeps `raft_term` in answers equal to etcd's.
    storage.wl().mut_hard_state().term = 1;
    Ok(RaftState { storage, wal, member_id, cluster_id, fresh: true })
}
