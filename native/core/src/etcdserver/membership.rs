//! The cluster's membership (etcd's `membership.RaftCluster`): who the members are, their peer and client
//! URLs, which are learners, and which ids were removed for good.
//!
//! Membership changes travel as raft conf changes whose context is a [`ConfChangeContext`] (JSON, the shape
//! of etcd's `membership.Member` plus the operation). Every member applies them in log order, checks them
//! with [`RaftCluster::validate`] (etcd's `ValidateConfigurationChange`, so a refused change is refused
//! everywhere alike) and records the result in the backend's `meta` bucket in the apply batch, so the
//! membership survives restarts and travels inside snapshots. A member's name and client URLs arrive later,
//! when it publishes them (`ClusterMemberAttrSetRequest`); until then it is "unstarted".
use std::collections::{BTreeMap, BTreeSet};

use parking_lot::RwLock;
use serde_json::{json, Value};

use super::errors::EtcdError;
use crate::mvcc::backend::{Backend, Ops, Result as BackendResult};
use crate::pb::etcdserverpb::Member as PbMember;

const MEMBER_PREFIX: &[u8] = b"members/";
const REMOVED_PREFIX: &[u8] = b"members_removed/";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

impl Member {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "peerURLs": self.peer_urls,
            "clientURLs": self.client_urls,
            "isLearner": self.is_learner,
        })
    }

    pub fn from_json(v: &Value) -> Option<Member> {
        let strs = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map_or_else(Vec::new, |a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        };
        Some(Member {
            id: v.get("id")?.as_u64()?,
            name: v.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
            peer_urls: strs("peerURLs"),
            client_urls: strs("clientURLs"),
            is_learner: v.get("isLearner").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    pub fn to_pb(&self) -> PbMember {
        PbMember {
            id: self.id,
            name: self.name.clone(),
            peer_ur_ls: self.peer_urls.clone(),
            client_ur_ls: self.client_urls.clone(),
            is_learner: self.is_learner,
        }
    }

    /// etcd's `IsStarted`: the member has published its name.
    pub fn is_started(&self) -> bool {
        !self.name.is_empty()
    }
}

/// What a membership conf change does; raft sees only add-voter, add-learner or remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfOp {
    Add,
    Remove,
    /// New peer URLs for an existing member (raft: a no-op re-add of its current role).
    Update,
    /// A learner becomes a voter.
    Promote,
}

impl ConfOp {
    fn as_str(self) -> &'static str {
        match self {
            ConfOp::Add => "add",
            ConfOp::Remove => "remove",
            ConfOp::Update => "update",
            ConfOp::Promote => "promote",
        }
    }
}

/// The context of a membership conf change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfChangeContext {
    pub op: ConfOp,
    pub member: Member,
}

impl ConfChangeContext {
    /// The raft conf change carrying this context: `kind` is what raft does (add voter or learner, remove).
    pub fn conf_change(self, kind: raft::eraftpb::ConfChangeType) -> raft::eraftpb::ConfChange {
        let mut cc = raft::eraftpb::ConfChange::default();
        cc.set_change_type(kind);
        cc.node_id = self.member.id;
        cc.context = self.encode().into();
        cc
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.member.to_json();
        v["op"] = json!(self.op.as_str());
        serde_json::to_vec(&v).expect("encode member")
    }

    pub fn decode(b: &[u8]) -> Option<ConfChangeContext> {
        let v: Value = serde_json::from_slice(b).ok()?;
        let op = match v.get("op").and_then(Value::as_str)? {
            "add" => ConfOp::Add,
            "remove" => ConfOp::Remove,
            "update" => ConfOp::Update,
            "promote" => ConfOp::Promote,
            _ => return None,
        };
        Some(ConfChangeContext { op, member: Member::from_json(&v)? })
    }
}

#[derive(Default)]
struct Inner {
    members: BTreeMap<u64, Member>,
    removed: BTreeSet<u64>,
}

#[derive(Default)]
pub struct RaftCluster {
    inner: RwLock<Inner>,
}

fn put_member(ops: &mut Ops, m: &Member) {
    ops.put_meta(&member_key(MEMBER_PREFIX, m.id), &serde_json::to_vec(&m.to_json()).expect("member json"));
}

fn member_key(prefix: &[u8], id: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(format!("{id:016x}").as_bytes());
    k
}

/// etcd allows one learner at a time (3.4; `--max-learners` in 3.6).
const MAX_LEARNERS: usize = 1;

impl RaftCluster {
    /// The membership the backend holds (empty for a member that has applied no conf change yet).
    pub fn load(backend: &Backend) -> BackendResult<RaftCluster> {
        let c = RaftCluster::default();
        c.reload(backend)?;
        Ok(c)
    }

    /// Replaces the in-memory membership with the backend's (after a snapshot is installed).
    pub fn reload(&self, backend: &Backend) -> BackendResult<()> {
        let mut inner = Inner::default();
        for (_, v) in backend.meta_with_prefix(MEMBER_PREFIX)? {
            if let Some(m) = serde_json::from_slice::<Value>(&v).ok().as_ref().and_then(Member::from_json) {
                inner.members.insert(m.id, m);
            }
        }
        for (k, _) in backend.meta_with_prefix(REMOVED_PREFIX)? {
            let hex = std::str::from_utf8(&k[REMOVED_PREFIX.len()..]).unwrap_or("");
            if let Ok(id) = u64::from_str_radix(hex, 16) {
                inner.removed.insert(id);
            }
        }
        *self.inner.write() = inner;
        Ok(())
    }

    pub fn members(&self) -> Vec<Member> {
        self.inner.read().members.values().cloned().collect()
    }

    pub fn member(&self, id: u64) -> Option<Member> {
        self.inner.read().members.get(&id).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.read().members.is_empty()
    }

    pub fn is_learner(&self, id: u64) -> bool {
        self.inner.read().members.get(&id).is_some_and(|m| m.is_learner)
    }

    pub fn is_removed(&self, id: u64) -> bool {
        self.inner.read().removed.contains(&id)
    }

    /// (voters, learners), for the raft ConfState.
    pub fn conf_ids(&self) -> (Vec<u64>, Vec<u64>) {
        let g = self.inner.read();
        let voters = g.members.values().filter(|m| !m.is_learner).map(|m| m.id).collect();
        let learners = g.members.values().filter(|m| m.is_learner).map(|m| m.id).collect();
        (voters, learners)
    }

    /// etcd's `ValidateConfigurationChange`, run by every member at apply time.
    pub fn validate(&self, cc: &ConfChangeContext) -> Result<(), EtcdError> {
        let g = self.inner.read();
        let id = cc.member.id;
        if g.removed.contains(&id) {
            return Err(EtcdError::MemberRemoved);
        }
        let url_taken = |skip: u64| {
            g.members.values().any(|m| m.id != skip && m.peer_urls.iter().any(|u| cc.member.peer_urls.contains(u)))
        };
        match cc.op {
            ConfOp::Add => {
                if g.members.contains_key(&id) {
                    return Err(EtcdError::MemberExists);
                }
                if url_taken(0) {
                    return Err(EtcdError::PeerUrlExists);
                }
                if cc.member.is_learner && g.members.values().filter(|m| m.is_learner).count() >= MAX_LEARNERS {
                    return Err(EtcdError::TooManyLearners);
                }
            }
            ConfOp::Remove => {
                if !g.members.contains_key(&id) {
                    return Err(EtcdError::MemberNotFound);
                }
            }
            ConfOp::Update => {
                if !g.members.contains_key(&id) {
                    return Err(EtcdError::MemberNotFound);
                }
                if url_taken(id) {
                    return Err(EtcdError::PeerUrlExists);
                }
            }
            ConfOp::Promote => match g.members.get(&id) {
                None => return Err(EtcdError::MemberNotFound),
                Some(m) if !m.is_learner => return Err(EtcdError::MemberNotLearner),
                Some(_) => {}
            },
        }
        Ok(())
    }

    /// Applies a validated change, in memory and in the apply batch's writes.
    pub fn apply(&self, ops: &mut Ops, cc: &ConfChangeContext) {
        let mut g = self.inner.write();
        let id = cc.member.id;
        match cc.op {
            ConfOp::Add => {
                let m = cc.member.clone();
                put_member(ops, &m);
                g.members.insert(id, m);
            }
            ConfOp::Remove => {
                ops.delete_meta(&member_key(MEMBER_PREFIX, id));
                ops.put_meta(&member_key(REMOVED_PREFIX, id), b"removed");
                g.members.remove(&id);
                g.removed.insert(id);
            }
            ConfOp::Update | ConfOp::Promote => {
                if let Some(m) = g.members.get_mut(&id) {
                    if cc.op == ConfOp::Update {
                        m.peer_urls = cc.member.peer_urls.clone();
                    } else {
                        m.is_learner = false;
                    }
                    put_member(ops, m);
                }
            }
        }
    }

    /// A member's published name and client URLs; ignored for a member no longer in the cluster.
    pub fn set_attributes(&self, ops: &mut Ops, id: u64, name: &str, client_urls: &[String]) -> bool {
        let mut g = self.inner.write();
        let Some(m) = g.members.get_mut(&id) else {
            return false;
        };
        m.name = name.to_string();
        m.client_urls = client_urls.to_vec();
        put_member(ops, m);
        true
    }

    /// (voters, started voters), `skip` left out.
    fn started_voters(&self, skip: u64) -> (usize, usize) {
        let g = self.inner.read();
        let voters = g.members.values().filter(|m| !m.is_learner && m.id != skip);
        voters.fold((0, 0), |(n, s), m| (n + 1, s + usize::from(m.is_started())))
    }

    /// etcd's `IsReadyToAddVotingMember`: with the new voter counted, a quorum of voters has started.
    pub fn ready_to_add_voter(&self) -> bool {
        let (n, started) = self.started_voters(0);
        // Adding a second member to a cluster of one (restoring a cluster) is always allowed.
        (started == 1 && n == 1) || started > n.div_ceil(2)
    }

    /// etcd's `IsReadyToRemoveVotingMember`: without `id`, a quorum of the remaining voters has started.
    pub fn ready_to_remove_voter(&self, id: u64) -> bool {
        let (n, started) = self.started_voters(id);
        started > n / 2
    }

    /// etcd's `IsReadyToPromoteMember`: the learner counted as a started voter, a quorum has started.
    pub fn ready_to_promote(&self) -> bool {
        let (n, started) = self.started_voters(0);
        started + 1 > n.div_ceil(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_round_trips() {
        let m = Member { id: 7, peer_urls: vec!["http://a:2380".into()], is_learner: true, ..Default::default() };
        let cc = ConfChangeContext { op: ConfOp::Promote, member: m };
        assert_eq!(ConfChangeContext::decode(&cc.encode()), Some(cc));
    }

    #[test]
    fn validate_follows_etcd() {
        let dir = tempfile::tempdir().unwrap();
        let be = Backend::open(dir.path()).unwrap();
        let c = RaftCluster::default();
        let m1 = Member { id: 1, name: "a".into(), peer_urls: vec!["http://a".into()], ..Default::default() };
        let add = |m: &Member| ConfChangeContext { op: ConfOp::Add, member: m.clone() };
        let mut ops = Ops::default();
        c.apply(&mut ops, &add(&m1));
        let dup_url = Member { id: 2, peer_urls: m1.peer_urls.clone(), ..Default::default() };
        assert_eq!(c.validate(&add(&dup_url)), Err(EtcdError::PeerUrlExists));
        assert_eq!(c.validate(&add(&m1)), Err(EtcdError::MemberExists));
        let l1 = Member { id: 3, peer_urls: vec!["http://b".into()], is_learner: true, ..Default::default() };
        c.apply(&mut ops, &add(&l1));
        let l2 = Member { id: 4, peer_urls: vec!["http://c".into()], is_learner: true, ..Default::default() };
        assert_eq!(c.validate(&add(&l2)), Err(EtcdError::TooManyLearners));
        let promote_voter = ConfChangeContext { op: ConfOp::Promote, member: m1.clone() };
        assert_eq!(c.validate(&promote_voter), Err(EtcdError::MemberNotLearner));
        c.apply(&mut ops, &ConfChangeContext { op: ConfOp::Remove, member: l1.clone() });
        assert_eq!(c.validate(&add(&l1)), Err(EtcdError::MemberRemoved));
        be.commit_ops(&ops, 1).unwrap();
        let again = RaftCluster::load(&be).unwrap();
        assert_eq!(again.members(), vec![m1]);
        assert!(again.is_removed(3));
        assert_eq!(again.conf_ids(), (vec![1], vec![]));
    }
}
