//! Applying committed entries (etcd's applyEntries and applyEntryNormal): one backend batch per Ready, each
//! entry dispatched to the v3 applier ([`super::apply`]), the membership, or the v2 store; then the batch
//! commits with the applied index, watchers hear the events, and the proposers' waiters get their results.
use std::sync::atomic::Ordering;

use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType};

use super::apply;
use super::errors::EtcdError;
use super::server::{ApplyResponse, ApplyResult, Core, EtcdServer};
use crate::mvcc::watcher::events_of;
use crate::pb::etcdserverpb::{AlarmResponse, InternalRaftRequest};
use crate::pb::mvccpb::Event;

impl EtcdServer {
    /// Applies committed entries in one backend batch, then completes their waiters.
    pub(crate) fn apply_entries(&self, core: &mut Core, entries: Vec<Entry>) -> Result<usize, String> {
        let Some(last) = entries.last() else {
            return Ok(0);
        };
        let last_index = last.index;
        let mut results = Vec::new();
        let mut events = Vec::new();
        let mut batch = self.store.write_batch();
        for e in &entries {
            match e.get_entry_type() {
                EntryType::EntryNormal => {
                    if e.data.is_empty() {
                        continue; // a new leader's empty entry
                    }
                    let req = InternalRaftRequest::decode(e.data.as_ref())
                        .map_err(|err| format!("entry {}: {err}", e.index))?;
                    let id = req.header.as_ref().map_or(0, |h| h.id);
                    if let Some(a) = &req.cluster_member_attr_set {
                        self.apply_member_attrs(&mut batch, a)?;
                        results.push((id, Ok(ApplyResponse::Empty)));
                        continue;
                    }
                    if let Some(r) = &req.v2 {
                        results.push((id, Ok(ApplyResponse::V2(self.apply_v2(&mut batch, r)))));
                        continue;
                    }
                    results.push((id, self.apply_request(&mut batch, &req, e.index, &mut events)));
                }
                EntryType::EntryConfChange => {
                    let cc = ConfChange::parse_from_bytes(&e.data).map_err(|err| err.to_string())?;
                    let r = self.apply_conf_change(core, &mut batch, &cc)?;
                    results.push((cc.id, r));
                }
                EntryType::EntryConfChangeV2 => {
                    let cc = ConfChangeV2::parse_from_bytes(&e.data).map_err(|err| err.to_string())?;
                    let cs = core.node.apply_conf_change(&cc).map_err(|err| err.to_string())?;
                    core.node.mut_store().wl().set_conf_state(cs);
                }
            }
        }
        crate::failpoint::failpoint("apply-before-commit");
        batch.commit(last_index).map_err(|e| e.to_string())?;
        self.applied.store(last_index, Ordering::Release);
        self.db_in_use.store(self.store.backend().size_in_use(), Ordering::Release);
        self.store.watchable.notify(&self.store, &events);
        let mut waiters = self.waiters.lock();
        for (id, r) in results {
            if let Some(w) = waiters.remove(&id) {
                let _ = w.send(r);
            }
        }
        Ok(entries.len())
    }
}

impl EtcdServer {
    /// One v3 request of entry `index`: auth management goes to the auth store; anything else is checked
    /// against the permissions of the user its header names (as of apply: a grant revoked since the edge's
    /// check, or a stale auth revision, refuses it here on every member alike), then applied.
    fn apply_request(
        &self,
        batch: &mut crate::mvcc::WriteBatch,
        req: &InternalRaftRequest,
        index: u64,
        events: &mut Vec<(i64, Vec<Event>)>,
    ) -> ApplyResult {
        let mut txn = batch.txn();
        let r = if let Some(r) = self.auth.apply(&mut txn, req, index) {
            r.map(ApplyResponse::Auth)
        } else if let Err(e) = self.check_applied_auth(req) {
            Err(e)
        } else if let Some(p) = &req.put {
            apply::put_request(&mut txn, p).map(ApplyResponse::Put)
        } else if let Some(d) = &req.delete_range {
            apply::delete_range(&mut txn, d).map(ApplyResponse::DeleteRange)
        } else if let Some(t) = &req.txn {
            apply::txn_write(&mut txn, t).map(ApplyResponse::Txn)
        } else if let Some(c) = &req.compaction {
            apply::compact(&mut txn, c).map(ApplyResponse::Compaction)
        } else if let Some(l) = &req.lease_grant {
            apply::lease_grant(&mut txn, l).map(ApplyResponse::LeaseGrant)
        } else if let Some(l) = &req.lease_revoke {
            apply::lease_revoke(&mut txn, l).map(ApplyResponse::LeaseRevoke)
        } else if let Some(a) = &req.alarm {
            self.alarms
                .apply(&mut txn, a)
                .map(|alarms| ApplyResponse::Alarm(AlarmResponse { header: None, alarms }))
                .map_err(EtcdError::from)
        } else {
            Err(EtcdError::Internal("unknown request in raft entry".into()))
        };
        let rev = crate::mvcc::TxnRead::rev(&txn);
        let changes = txn.end();
        if !changes.is_empty() {
            events.push((rev, events_of(changes)));
        }
        r
    }

    /// The permission check at apply, against the user the header names (the server's own requests run as
    /// root; a client request admitted while auth was off names none, and is refused if auth is on now).
    fn check_applied_auth(&self, req: &InternalRaftRequest) -> Result<(), EtcdError> {
        let who = req
            .header
            .as_ref()
            .map(|h| crate::auth::AuthInfo { username: h.username.clone(), revision: h.auth_revision });
        self.auth.check_request(who.as_ref(), req, &|id| self.store.lessor.keys(id).unwrap_or_default())
    }
}
