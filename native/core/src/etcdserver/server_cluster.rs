//! The cluster side of [`EtcdServer`]: membership changes (proposed with etcd's safety checks, applied
//! alike on every member), leader transfer, and the lease calls a follower forwards to the leader (whose
//! lessor keeps the clocks).
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prost::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::errors::EtcdError;
use super::membership::{ConfChangeContext, ConfOp, Member};
use super::server::{ApplyResponse, ApplyResult, Core, EtcdServer};
use crate::pb::etcdserverpb::{
    ClusterMemberAttrSetRequest, LeaseKeepAliveRequest, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::rafthttp::PeerHttpError;
use crate::raftnode::logger::zap_log;

/// etcd's HealthInterval: a peer counts as connected once its stream has been up this long.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// A learner may be promoted once its log matches 90% of the leader's (etcd's readyPercent).
const LEARNER_READY_PERCENT: f64 = 0.9;
/// How often a forwarded call or a leader transfer looks again.
const RETRY: Duration = Duration::from_millis(50);

fn valid_peer_url(u: &str) -> bool {
    let Some((scheme, rest)) = u.split_once("://") else {
        return false;
    };
    let host_port = rest.split('/').next().unwrap_or("");
    matches!(scheme, "http" | "https" | "unix" | "unixs")
        && host_port.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
}

impl EtcdServer {
    /// A membership change, checked the same way on every member (etcd's applyConfChange). A refused change
    /// leaves raft's configuration as it was and answers its proposer with the reason.
    pub(crate) fn apply_conf_change(
        &self,
        core: &mut Core,
        batch: &mut crate::mvcc::WriteBatch<'_>,
        cc: &ConfChange,
    ) -> Result<ApplyResult, String> {
        let Some(ctx) = ConfChangeContext::decode(&cc.context) else {
            let cs = core.node.apply_conf_change(cc).map_err(|err| err.to_string())?;
            core.node.mut_store().wl().set_conf_state(cs);
            return Ok(Ok(ApplyResponse::Members(self.cluster.members())));
        };
        if let Err(e) = self.cluster.validate(&ctx) {
            return Ok(Err(e));
        }
        self.cluster.apply(batch.ops(), &ctx);
        if ctx.op != ConfOp::Update {
            let cs = core.node.apply_conf_change(cc).map_err(|err| err.to_string())?;
            core.node.mut_store().wl().set_conf_state(cs);
        }
        let id = ctx.member.id;
        if let Some(t) = self.transport.get() {
            match ctx.op {
                ConfOp::Remove => t.remove_peer(id),
                _ => {
                    if let Some(m) = self.cluster.member(id) {
                        t.set_peer(id, m.peer_urls);
                    }
                }
            }
        }
        let verb = match ctx.op {
            ConfOp::Add => "added member",
            ConfOp::Remove => "removed member",
            ConfOp::Update => "updated member",
            ConfOp::Promote => "promote member",
        };
        zap_log(
            "info",
            "membership/cluster.go",
            verb,
            &[
                ("cluster-id", format!("{:x}", self.cluster_id())),
                ("local-member-id", format!("{:x}", self.member_id())),
                ("member-id", format!("{id:x}")),
                ("member-peer-urls", format!("{:?}", ctx.member.peer_urls)),
            ],
        );
        if ctx.op == ConfOp::Remove && id == self.member_id() {
            self.mark_removed();
        }
        Ok(Ok(ApplyResponse::Members(self.cluster.members())))
    }

    pub(crate) fn apply_member_attrs(
        &self,
        batch: &mut crate::mvcc::WriteBatch<'_>,
        a: &ClusterMemberAttrSetRequest,
    ) -> Result<(), String> {
        let attrs = a.member_attributes.clone().unwrap_or_default();
        let known = self.cluster.set_attributes(batch.ops(), a.member_id, &attrs.name, &attrs.client_urls);
        if known && a.member_id == self.member_id() && !self.published.swap(true, Ordering::AcqRel) {
            zap_log(
                "info",
                "etcdserver/server.go",
                "published local member to cluster through raft",
                &[
                    ("local-member-id", format!("{:x}", self.member_id())),
                    (
                        "local-member-attributes",
                        format!("{{Name:{} ClientURLs:[{}]}}", attrs.name, attrs.client_urls.join(" ")),
                    ),
                    ("cluster-id", format!("{:x}", self.cluster_id())),
                ],
            );
        }
        Ok(())
    }

    fn strict(&self) -> bool {
        true // etcd's --strict-reconfig-check defaults to true
    }

    /// Proposes a membership change and waits for it to apply; answers the members after it.
    async fn propose_conf(&self, mut cc: ConfChange) -> Result<Vec<Member>, EtcdError> {
        if self.is_stopped() {
            return Err(EtcdError::Stopped);
        }
        cc.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(cc.id, tx);
        let id = cc.id;
        self.conf_proposals.lock().push(cc);
        self.notifier.notify();
        match tokio::time::timeout(self.request_timeout(), rx).await {
            Ok(Ok(Ok(ApplyResponse::Members(m)))) => Ok(m),
            Ok(Ok(Ok(_))) => Err(EtcdError::Internal("unexpected apply response".into())),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(EtcdError::Stopped),
            Err(_) => {
                self.waiters.lock().remove(&id);
                Err(EtcdError::Timeout)
            }
        }
    }

    fn conf_change(kind: ConfChangeType, op: ConfOp, member: Member) -> ConfChange {
        ConfChangeContext { op, member }.conf_change(kind)
    }

    /// Voting members whose stream from this member has been up since `HEALTH_INTERVAL` ago (self included).
    fn connected_voters(&self) -> (usize, usize) {
        let since = Instant::now().checked_sub(HEALTH_INTERVAL);
        let voters: Vec<Member> = self.cluster.members().into_iter().filter(|m| !m.is_learner).collect();
        let t = self.transport.get();
        let up = voters
            .iter()
            .filter(|m| {
                m.id == self.member_id()
                    || t.and_then(|t| t.active_since(m.id)).is_some_and(|a| since.is_some_and(|s| a <= s))
            })
            .count();
        (up, voters.len())
    }

    /// MemberAdd: a new member (voter or learner) with `peer_urls`; returns it and the members after it.
    pub async fn add_member(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> Result<(Member, Vec<Member>), EtcdError> {
        if peer_urls.is_empty() || !peer_urls.iter().all(|u| valid_peer_url(u)) {
            return Err(EtcdError::MemberBadUrls);
        }
        if self.strict() && !is_learner {
            if !self.cluster.ready_to_add_voter() {
                return Err(EtcdError::NotEnoughStartedMembers);
            }
            let (up, all) = self.connected_voters();
            if up < all {
                return Err(EtcdError::Unhealthy);
            }
        }
        // etcd's NewMember: a hash of the peer URLs and the time.
        let mut h = Sha256::new();
        let mut sorted = peer_urls.clone();
        sorted.sort();
        h.update(sorted.join("").as_bytes());
        h.update(format!("{:?}", std::time::SystemTime::now()).as_bytes());
        let id = u64::from_be_bytes(h.finalize()[..8].try_into().unwrap());
        let member = Member { id, peer_urls, is_learner, ..Default::default() };
        let kind = if is_learner { ConfChangeType::AddLearnerNode } else { ConfChangeType::AddNode };
        let members = self.propose_conf(Self::conf_change(kind, ConfOp::Add, member.clone())).await?;
        Ok((member, members))
    }

    /// MemberRemove, refused when it would leave the cluster without a quorum of started, connected voters.
    pub async fn remove_member(&self, id: u64) -> Result<Vec<Member>, EtcdError> {
        let member = match self.cluster.member(id) {
            Some(m) => m,
            None if self.cluster.is_removed(id) => return Err(EtcdError::MemberRemoved),
            None => return Err(EtcdError::MemberNotFound),
        };
        if self.strict() && !member.is_learner {
            if !self.cluster.ready_to_remove_voter(id) {
                return Err(EtcdError::NotEnoughStartedMembers);
            }
            // A member that is down is safe to remove: it is not part of the active quorum.
            let down = id != self.member_id() && self.transport.get().is_none_or(|t| t.active_since(id).is_none());
            let (up, all) = self.connected_voters();
            if !down && up.saturating_sub(1) < 1 + (all - 1) / 2 {
                return Err(EtcdError::Unhealthy);
            }
        }
        let kind = ConfChangeType::RemoveNode;
        self.propose_conf(Self::conf_change(kind, ConfOp::Remove, member)).await
    }

    /// MemberUpdate: new peer URLs for a member.
    pub async fn update_member(&self, id: u64, peer_urls: Vec<String>) -> Result<Vec<Member>, EtcdError> {
        if peer_urls.is_empty() || !peer_urls.iter().all(|u| valid_peer_url(u)) {
            return Err(EtcdError::MemberBadUrls);
        }
        let Some(current) = self.cluster.member(id) else {
            return Err(EtcdError::MemberNotFound);
        };
        let member = Member { peer_urls, ..current };
        let kind = if member.is_learner { ConfChangeType::AddLearnerNode } else { ConfChangeType::AddNode };
        self.propose_conf(Self::conf_change(kind, ConfOp::Update, member)).await
    }

    /// MemberPromote. Only the leader knows how far a learner has caught up, so a follower asks the leader.
    pub async fn promote_member(&self, id: u64) -> Result<Vec<Member>, EtcdError> {
        let deadline = Instant::now() + self.request_timeout();
        loop {
            if self.is_leader() {
                return self.promote_as_leader(id).await;
            }
            if let Some(url) = self.leader_peer_url() {
                match self.post_peer(&url, &format!("/members/promote/{id:x}"), Vec::new()).await {
                    Ok(_) => return Ok(self.cluster.members()),
                    Err(PeerHttpError::Etcd(EtcdError::NotLeader | EtcdError::NoLeader)) => {}
                    Err(PeerHttpError::Etcd(e)) => return Err(e),
                    Err(PeerHttpError::Unreachable(_)) => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(if self.leader() == 0 { EtcdError::NoLeader } else { EtcdError::Timeout });
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn promote_as_leader(&self, id: u64) -> Result<Vec<Member>, EtcdError> {
        let member = self.cluster.member(id).ok_or(EtcdError::MemberNotFound)?;
        if !member.is_learner {
            return Err(EtcdError::MemberNotLearner);
        }
        if self.strict() && !self.cluster.ready_to_promote() {
            return Err(EtcdError::NotEnoughStartedMembers);
        }
        {
            let core = self.core.lock();
            let prs = core.node.raft.prs();
            let leader_match = prs.get(self.member_id()).map_or(0, |p| p.matched);
            let learner_match = prs.get(id).ok_or(EtcdError::MemberNotFound)?.matched;
            if (learner_match as f64) < (leader_match as f64) * LEARNER_READY_PERCENT {
                return Err(EtcdError::LearnerNotReady);
            }
        }
        self.propose_conf(Self::conf_change(ConfChangeType::AddNode, ConfOp::Promote, member)).await
    }

    /// MoveLeader: the leader hands leadership to `target` and waits for it to take over.
    pub async fn move_leader(&self, target: u64) -> Result<(), EtcdError> {
        if !self.is_leader() {
            return Err(EtcdError::NotLeader);
        }
        if target == self.member_id() {
            return Ok(());
        }
        match self.cluster.member(target) {
            Some(m) if !m.is_learner => {}
            _ => return Err(EtcdError::BadLeaderTransferee),
        }
        zap_transfer(self.member_id(), target);
        *self.transfer.lock() = Some(target);
        self.notifier.notify();
        let deadline = Instant::now() + self.request_timeout();
        while self.leader() != target {
            if Instant::now() >= deadline {
                return Err(EtcdError::LeaderTransferTimeout);
            }
            tokio::time::sleep(RETRY / 5).await;
        }
        Ok(())
    }

    /// etcd's TransferLeadership before a graceful stop: a leader hands over to the voter whose log goes
    /// furthest, so the cluster does not wait out an election timeout. Returns the transferee, if any.
    pub fn begin_leadership_transfer(&self) -> Option<u64> {
        if !self.is_leader() {
            return None;
        }
        let me = self.member_id();
        let (voters, _) = self.cluster.conf_ids();
        let target = {
            let core = self.core.lock();
            let prs = core.node.raft.prs();
            voters.iter().filter(|id| **id != me).filter_map(|id| prs.get(*id).map(|p| (p.matched, *id))).max()?.1
        };
        zap_transfer(me, target);
        *self.transfer.lock() = Some(target);
        self.notifier.notify();
        Some(target)
    }

    /// The leader's peer URL, when a leader is known and it is not this member.
    fn leader_peer_url(&self) -> Option<String> {
        let leader = self.leader();
        if leader == 0 || leader == self.member_id() {
            return None;
        }
        let urls = self
            .cluster
            .member(leader)
            .map(|m| m.peer_urls)
            .or_else(|| self.transport.get().and_then(|t| t.peer_urls(leader)))?;
        urls.into_iter().next()
    }

    /// Whether this member still leads once a ReadIndex round has gone through at its term (etcd's
    /// ensureLeadership). A leader that was paused or cut off answers the requests queued meanwhile before its
    /// raft loop learns that another member was elected; its lessor's clock is stale then, and a renewal or a
    /// time-to-live answered from it lies (etcd #15247, #12528: a lease kept alive through a deposed leader
    /// was revoked by the new one).
    ///
    /// The only voter needs no round: nobody else can have been elected. (The round goes through the Ready
    /// loop, so on a cluster of several it wakes Python once per batch of keep-alives, as a linearizable read.)
    pub async fn ensure_leadership(&self) -> bool {
        if !self.is_leader() {
            return false;
        }
        if self.cluster.conf_ids().0.len() <= 1 {
            return true;
        }
        let term = self.term();
        self.linearizable_read_notify().await.is_ok() && self.is_leader() && self.term() == term
    }

    /// Ok when this member's lessor may answer: it is primary and [`Self::ensure_leadership`] confirms that
    /// this member still leads. Both local lease paths (a client's request here, a follower's forwarded one)
    /// pass through it.
    async fn primary_lessor(&self) -> Result<(), EtcdError> {
        if self.store.lessor.is_primary() && self.ensure_leadership().await {
            Ok(())
        } else {
            Err(EtcdError::NotLeader)
        }
    }

    /// Renews a lease on this member, which must be the leader.
    pub async fn lease_renew_local(&self, id: i64) -> Result<i64, EtcdError> {
        self.primary_lessor().await?;
        self.store.lessor.renew(id).ok_or(EtcdError::LeaseNotFound)
    }

    /// LeaseTimeToLive on this member, which must be the leader (a follower's lessor has no clock).
    pub async fn lease_time_to_live_local(
        &self,
        req: &LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, EtcdError> {
        self.primary_lessor().await?;
        Ok(match self.store.lessor.time_to_live(req.id) {
            Some((ttl, granted_ttl, keys)) => LeaseTimeToLiveResponse {
                header: None,
                id: req.id,
                ttl,
                granted_ttl,
                keys: if req.keys { keys } else { Vec::new() },
            },
            None => LeaseTimeToLiveResponse { header: None, id: req.id, ttl: -1, ..Default::default() },
        })
    }

    /// A keep-alive: renewed here on the leader, forwarded to the leader from a follower.
    pub async fn lease_renew(&self, id: i64) -> Result<i64, EtcdError> {
        self.on_leader(
            || self.lease_renew_local(id),
            "/leases",
            || LeaseKeepAliveRequest { id }.encode_to_vec(),
            |b| {
                b.as_ref()
                    .try_into()
                    .map(i64::from_be_bytes)
                    .map_err(|_| EtcdError::Internal("bad lease answer".into()))
            },
        )
        .await
    }

    /// LeaseTimeToLive, answered by the leader.
    pub async fn lease_time_to_live(&self, req: &LeaseTimeToLiveRequest) -> Result<LeaseTimeToLiveResponse, EtcdError> {
        self.on_leader(
            || self.lease_time_to_live_local(req),
            "/leases/internal",
            || req.encode_to_vec(),
            |b| LeaseTimeToLiveResponse::decode(b).map_err(|e| EtcdError::Internal(e.to_string())),
        )
        .await
    }

    /// POSTs to a peer's port through the transport's dialer.
    async fn post_peer(&self, url: &str, path: &str, body: Vec<u8>) -> Result<bytes::Bytes, PeerHttpError> {
        match self.transport.get() {
            Some(t) => t.dialer.post(url, path, body).await,
            None => Err(PeerHttpError::Unreachable("the peer transport is not running".into())),
        }
    }

    /// Runs `local` if this member leads, else POSTs `body()` to the leader's `path` and decodes the answer,
    /// retrying through leader changes until the request timeout.
    async fn on_leader<T, F: std::future::Future<Output = Result<T, EtcdError>>>(
        &self,
        local: impl Fn() -> F,
        path: &str,
        body: impl Fn() -> Vec<u8>,
        decode: impl Fn(bytes::Bytes) -> Result<T, EtcdError>,
    ) -> Result<T, EtcdError> {
        let deadline = Instant::now() + self.request_timeout();
        loop {
            if self.is_leader() {
                match local().await {
                    Err(EtcdError::NotLeader) => {}
                    r => return r,
                }
            } else if let Some(url) = self.leader_peer_url() {
                match self.post_peer(&url, path, body()).await {
                    Ok(b) => return decode(b),
                    Err(PeerHttpError::Etcd(EtcdError::NotLeader | EtcdError::NoLeader)) => {}
                    Err(PeerHttpError::Etcd(e)) => return Err(e),
                    Err(PeerHttpError::Unreachable(_)) => {}
                }
            }
            if Instant::now() >= deadline || self.is_stopped() {
                return Err(if self.leader() == 0 { EtcdError::NoLeader } else { EtcdError::Timeout });
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}

fn zap_transfer(from: u64, to: u64) {
    crate::raftnode::logger::zap_log(
        "info",
        "etcdserver/server.go",
        "leadership transfer starting",
        &[("local-member-id", format!("{from:x}")), ("transferee", format!("{to:x}"))],
    );
}
