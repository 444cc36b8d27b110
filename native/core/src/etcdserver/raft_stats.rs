//! What `/v2/stats/self` and `/v2/stats/leader` report (etcd's etcdserver/api/v2stats): when this member
//! started, whom it follows and since when, how many append requests it sent and received, and, on the
//! leader, per follower how many appends succeeded or failed.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use parking_lot::Mutex;
use raft::eraftpb::{Message, MessageType};

#[derive(Clone, Copy, Default)]
pub struct FollowerCounts {
    pub success: u64,
    pub fail: u64,
}

pub struct RaftStats {
    pub start_time: SystemTime,
    pub send_append: AtomicU64,
    pub recv_append: AtomicU64,
    /// The leader this member last saw, and since when.
    pub leader_since: Mutex<(u64, SystemTime)>,
    /// On the leader: append responses per follower.
    pub followers: Mutex<BTreeMap<u64, FollowerCounts>>,
    /// Leaders seen (etcd_server_leader_changes_seen_total).
    pub leader_changes: AtomicU64,
    /// Proposals that timed out or were cut off by a stop (etcd_server_proposals_failed_total).
    pub proposals_failed: AtomicU64,
}

impl Default for RaftStats {
    fn default() -> Self {
        let now = SystemTime::now();
        RaftStats {
            start_time: now,
            send_append: AtomicU64::new(0),
            recv_append: AtomicU64::new(0),
            leader_since: Mutex::new((0, now)),
            followers: Mutex::new(BTreeMap::new()),
            leader_changes: AtomicU64::new(0),
            proposals_failed: AtomicU64::new(0),
        }
    }
}

impl RaftStats {
    pub fn sent(&self, msgs: &[Message]) {
        let n = msgs.iter().filter(|m| m.get_msg_type() == MessageType::MsgAppend).count();
        self.send_append.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn received(&self, m: &Message) {
        match m.get_msg_type() {
            MessageType::MsgAppend => {
                self.recv_append.fetch_add(1, Ordering::Relaxed);
            }
            MessageType::MsgAppendResponse => {
                let mut f = self.followers.lock();
                let c = f.entry(m.from).or_default();
                if m.reject {
                    c.fail += 1;
                } else {
                    c.success += 1;
                }
            }
            _ => {}
        }
    }

    pub fn leader_changed(&self, leader: u64) {
        let mut l = self.leader_since.lock();
        if l.0 != leader {
            *l = (leader, SystemTime::now());
            if leader != 0 {
                self.leader_changes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
