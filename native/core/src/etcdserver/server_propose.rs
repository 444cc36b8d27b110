//! Proposing (etcd's raftRequest): a request gets an id and its user, goes on the queue the Ready loop
//! proposes from, and its caller waits for the apply result under that id; the server's own requests
//! (expired leases, auto-compaction) are queued with no one waiting. Linearizable reads wait here too.
use std::sync::atomic::Ordering;
use std::time::Duration;

use prost::Message as _;
use tokio::sync::oneshot;

use super::errors::EtcdError;
use super::server::{ApplyResult, EtcdServer};
use crate::auth::AuthInfo;
use crate::pb::etcdserverpb::{CompactionRequest, InternalRaftRequest, RequestHeader};

impl EtcdServer {
    /// etcd's request timeout: 5 s plus two election timeouts.
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(5000 + 2 * self.cfg.election_ms)
    }

    /// Gives `req` a fresh id from the request id generator and the user it runs as, and encodes it for the
    /// log.
    fn stamp(&self, mut req: InternalRaftRequest, who: Option<&AuthInfo>) -> (u64, Vec<u8>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (username, auth_revision) = who.map_or((String::new(), 0), |w| (w.username.clone(), w.revision));
        req.header = Some(RequestHeader { id, username, auth_revision });
        (id, req.encode_to_vec())
    }

    /// [`Self::stamp`] for the server's own requests: they run as root at apply (etcd's WithRoot).
    pub(crate) fn stamp_internal(&self, req: InternalRaftRequest) -> (u64, Vec<u8>) {
        self.stamp(req, Some(&AuthInfo::internal()))
    }

    /// Proposes a request the server makes itself (as root) and waits for it to be applied.
    pub(crate) async fn propose(&self, req: InternalRaftRequest) -> ApplyResult {
        self.propose_as(Some(&AuthInfo::internal()), req).await
    }

    /// Proposes `req` on behalf of `who` (its header names the user, and apply checks its permissions again)
    /// and waits for it to be applied. Only the admission chain (`v3_server`) calls this for clients.
    pub(crate) async fn propose_as(&self, who: Option<&AuthInfo>, req: InternalRaftRequest) -> ApplyResult {
        if self.stopped.load(Ordering::Acquire) {
            return Err(EtcdError::Stopped);
        }
        if self.is_learner() {
            return Err(EtcdError::NotSupportedForLearner);
        }
        let (id, data) = self.stamp(req, who);
        if data.len() > self.cfg.max_request_bytes {
            return Err(EtcdError::RequestTooLarge);
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(id, tx);
        self.proposals.lock().push((id, data));
        self.notifier.notify();
        let r = match tokio::time::timeout(self.request_timeout(), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(EtcdError::Stopped),
            Err(_) => {
                self.waiters.lock().remove(&id);
                Err(EtcdError::Timeout)
            }
        };
        if matches!(r, Err(EtcdError::Stopped | EtcdError::Timeout)) {
            // etcd_server_proposals_failed_total: proposals that were never applied for this caller.
            self.raft_stats.proposals_failed.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// Waits until this member has applied everything committed when the call began (ReadIndex).
    pub async fn linearizable_read_notify(&self) -> Result<(), EtcdError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(EtcdError::Stopped);
        }
        if self.is_learner() {
            return Err(EtcdError::NotSupportedForLearner);
        }
        let (tx, rx) = oneshot::channel();
        self.reads.lock().push(tx);
        self.notifier.notify();
        match tokio::time::timeout(self.request_timeout(), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(EtcdError::Stopped),
            Err(_) => Err(EtcdError::Timeout),
        }
    }

    /// Queues a request that only a leader proposes, with no one waiting for its answer.
    pub(crate) fn queue_leader_only(&self, req: InternalRaftRequest) {
        self.leader_only.lock().push(self.stamp_internal(req).1);
        self.notifier.notify();
    }

    /// Queues a compaction to `rev` with no one waiting for its answer (the auto-compactor's request).
    pub fn queue_compaction(&self, rev: i64) {
        let req = InternalRaftRequest {
            compaction: Some(CompactionRequest { revision: rev, physical: false }),
            ..Default::default()
        };
        self.proposals.lock().push(self.stamp_internal(req));
        self.notifier.notify();
    }

    /// A fresh id from the request id generator, masked positive (etcd's choice of a lease id).
    pub fn new_lease_id(&self) -> i64 {
        loop {
            let id = (self.next_id.fetch_add(1, Ordering::Relaxed) & (i64::MAX as u64)) as i64;
            if id != 0 && !self.store.lessor.exists(id) {
                return id;
            }
        }
    }
}
