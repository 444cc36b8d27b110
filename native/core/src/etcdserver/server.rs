//! [`EtcdServer`]: the proposal queue, the waiters, and the per-batch Ready loop.
//!
//! Lock order (a lock is only taken while holding those above it):
//! 1. `core`: the Ready loop's raft node and WAL, held for a whole batch;
//! 2. the store's write `buffer` (a snapshot restore holds it through the whole swap);
//! 3. the store's watch groups (`WatchableStore`), which read the store under them (notify, sync, watch);
//! 4. the store's `state` (index, revision);
//! 5. the leaf queues (`proposals`, `held`, `leader_only`, `waiters`, `reads`, `inbox`, `reports`,
//!    `conf_proposals`, `transfer`, `last_publish`): nothing else is taken while one is held.
//!
//! Fail-stop: an error from [`EtcdServer::process_ready`] or [`EtcdServer::tick`], or a panic in them, ends
//! the member ([`EtcdServer::fail`]: nothing more is acknowledged, proposed, sent or written).
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfState, Message};
use raft::{RawNode, SnapshotStatus, StateRole, Storage};
use tokio::sync::oneshot;

use super::alarm::Alarms;
use super::errors::EtcdError;
use super::membership::{Member, RaftCluster};
use super::notify::Notifier;
use crate::mvcc::kvstore::BatchLimits;
use crate::mvcc::KvStore;
use crate::pb::etcdserverpb::{
    AlarmResponse, ClusterMemberAttrSetRequest, CompactionResponse, DeleteRangeResponse, InternalRaftRequest,
    LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, MemberAttributes, PutResponse, TxnResponse,
};
use crate::rafthttp::Transport;
use crate::raftnode::logger::{zap_log, ZapDrain};
use crate::raftnode::{self, Bootstrap, RaftStorage};
use crate::wal::{Wal, WalOptions};

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub name: String,
    pub wal_dir: PathBuf,
    /// The backend directory (etcd's member/snap/db).
    pub backend_dir: PathBuf,
    pub member_id: u64,
    pub cluster_id: u64,
    /// The members this member starts with (from --initial-cluster, or from the cluster it joins). With
    /// `new_cluster` they become the log's first entries; otherwise they only tell the transport whom to
    /// reach until the membership arrives through raft.
    pub initial_members: Vec<Member>,
    /// --initial-cluster-state new.
    pub new_cluster: bool,
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    pub snapshot_count: u64,
    pub snapshot_catchup_entries: u64,
    pub pre_vote: bool,
    pub wal_fsync: bool,
    /// --experimental-watch-progress-notify-interval, in milliseconds (etcd's default is 10 minutes).
    pub watch_progress_notify_ms: u64,
    /// --quota-backend-bytes as it applies (0 = no quota).
    pub quota_bytes: u64,
    /// --backend-batch-interval in milliseconds and --backend-batch-limit (0: etcd's defaults).
    pub backend_batch_interval_ms: u64,
    pub backend_batch_limit: usize,
    /// This member's advertised client URLs (published through raft).
    pub client_urls: Vec<String>,
    /// --enable-v2: serve the v2 HTTP API on the client port.
    pub enable_v2: bool,
    /// --auth-token (`simple`, or `jwt,...`), --auth-token-ttl (seconds) and --bcrypt-cost.
    pub auth_token: String,
    pub auth_token_ttl_s: u64,
    pub bcrypt_cost: u32,
    /// --max-concurrent-streams: HTTP/2 streams per client connection.
    pub max_concurrent_streams: u32,
}

#[derive(Debug)]
pub enum ApplyResponse {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    Alarm(AlarmResponse),
    /// A membership change: the members after it.
    Members(Vec<Member>),
    /// An auth management request: the token for Authenticate, empty for the others.
    Auth(String),
    /// A v2 store request: its event (none for an expiry sweep) or the store's error.
    V2(Result<Option<crate::v2store::Event>, crate::v2store::V2Error>),
    Empty,
}

pub(crate) type ApplyResult = Result<ApplyResponse, EtcdError>;
pub(crate) type ReadWaiter = oneshot::Sender<Result<(), EtcdError>>;

/// What the transport tells raft about peers.
pub(crate) enum Report {
    Unreachable(u64),
    Snapshot(u64, bool),
}

/// A ReadIndex request is asked again after this long without an answer (etcd's readIndexRetryTime): raft
/// drops one that reaches no leader, or a leader that has not committed in its term yet.
const READ_INDEX_RETRY: Duration = Duration::from_millis(500);
/// A member publishes its attributes again after this long without seeing them applied.
const PUBLISH_RETRY: Duration = Duration::from_secs(2);

/// State only the driver touches (under `core`).
pub(crate) struct Core {
    pub(crate) node: RawNode<RaftStorage>,
    pub(crate) wal: Wal,
    read_seq: u64,
    /// ReadIndex requests sent to raft, by context, waiting for their ReadState (with when they were asked).
    pending_reads: HashMap<u64, (Instant, Vec<ReadWaiter>)>,
    /// Confirmed read indexes waiting for the applied index to reach them.
    confirmed_reads: Vec<(u64, Vec<ReadWaiter>)>,
    pub(crate) snapshot_index: u64,
    /// The only voter, not yet leader: campaign once the bootstrap configuration is applied.
    solo_campaign: bool,
}

impl Core {
    /// Fails the linearizable reads raft has not confirmed yet, and those waiting to be applied.
    fn abandon_reads(&mut self) {
        let pending = self.pending_reads.drain().map(|(_, (_, ws))| ws);
        for w in pending.chain(self.confirmed_reads.drain(..).map(|(_, ws)| ws)).flatten() {
            let _ = w.send(Err(EtcdError::Stopped));
        }
    }
}

pub struct EtcdServer {
    pub cfg: ServerConfig,
    pub store: Arc<KvStore>,
    pub alarms: Alarms,
    /// Users, roles and permissions, as applied; every request's permission check.
    pub auth: crate::auth::AuthStore,
    /// Backend bytes in use after the last batch (the quota check reads it).
    pub(crate) db_in_use: AtomicU64,
    /// Encoded requests waiting for the next batch, with their ids.
    pub(crate) proposals: Mutex<Vec<(u64, Vec<u8>)>>,
    /// Requests only a leader may propose, dropped otherwise: revokes of expired leases (a deposed leader's
    /// revokes must not reach the new leader: etcd #12528) and v2 expiry sweeps.
    pub(crate) leader_only: Mutex<Vec<Vec<u8>>>,
    /// Proposals raft dropped for want of a leader, asked again each batch while their waiter waits.
    held: Mutex<Vec<(u64, Vec<u8>)>>,
    pub(crate) waiters: Mutex<HashMap<u64, oneshot::Sender<ApplyResult>>>,
    pub(crate) reads: Mutex<Vec<ReadWaiter>>,
    pub(crate) notifier: Notifier,
    pub(crate) core: Mutex<Core>,
    pub(crate) next_id: AtomicU64,
    term: AtomicU64,
    leader: AtomicU64,
    pub(crate) applied: Arc<AtomicU64>,
    committed: AtomicU64,
    pub(crate) stopped: AtomicBool,
    /// The membership, as applied.
    pub cluster: RaftCluster,
    pub(crate) transport: OnceLock<Arc<Transport>>,
    /// Raft messages from peers, stepped at the next batch.
    inbox: Mutex<Vec<Message>>,
    reports: Mutex<Vec<Report>>,
    pub(crate) conf_proposals: Mutex<Vec<ConfChange>>,
    /// A leader transfer asked by MoveLeader.
    pub(crate) transfer: Mutex<Option<u64>>,
    /// This member was removed from the cluster: the driver stops it.
    removed: AtomicBool,
    pub(crate) published: AtomicBool,
    last_publish: Mutex<Option<Instant>>,
    /// The v2 keys store, as applied.
    pub v2: Mutex<crate::v2store::Store>,
    pub(crate) last_v2_sync: Mutex<Option<Instant>>,
    pub raft_stats: super::raft_stats::RaftStats,
}

impl EtcdServer {
    /// Opens (or creates) the member's WAL and backend and builds its raft node. A restart keeps the ids in
    /// the WAL and re-applies the entries after the backend's consistent index.
    pub fn open(mut cfg: ServerConfig) -> Result<EtcdServer, String> {
        crate::failpoint::init();
        let opts = WalOptions { fsync: cfg.wal_fsync, ..WalOptions::default() };
        let boot = if cfg.new_cluster { Bootstrap::NewCluster(&cfg.initial_members) } else { Bootstrap::Join };
        let rs = raftnode::open_or_bootstrap(&cfg.wal_dir, cfg.member_id, cfg.cluster_id, boot, opts)?;
        cfg.member_id = rs.member_id;
        cfg.cluster_id = rs.cluster_id;
        let mut store = KvStore::open(&cfg.backend_dir).map_err(|e| e.to_string())?;
        store.batch = BatchLimits::from_flags(cfg.backend_batch_interval_ms, cfg.backend_batch_limit);
        let store = Arc::new(store);
        store.lessor.set_min_ttl_from_election(cfg.election_ms);
        store.watchable.max_response_bytes.store(cfg.max_request_bytes, Ordering::Relaxed);
        let snapshot_index = rs.storage.first_index().map_err(|e| e.to_string())?.saturating_sub(1);
        super::snapshot::finish_snapshot_install(&store, &cfg.backend_dir, snapshot_index)?;
        let applied = store.consistent_index();
        if applied < snapshot_index {
            // The WAL no longer holds the entries between the two. The one way this came about (issue 21, bug
            // 1, before its fix) left only entries that changed nothing there: the backend committed whenever
            // an entry wrote, and a snapshot forced a commit first. So go on from the snapshot, and say so.
            zap_log(
                "warn",
                "etcdserver/server.go",
                "backend consistent index is behind the WAL snapshot; starting from the snapshot index",
                &[("consistent-index", applied.to_string()), ("snapshot-index", snapshot_index.to_string())],
            );
        }
        let last_index = rs.storage.last_index().map_err(|e| e.to_string())?;
        if applied > last_index {
            return Err(format!(
                "backend applied index {applied} is past the last WAL index {last_index}: the WAL is not this data dir's"
            ));
        }
        let cluster = RaftCluster::load(store.backend()).map_err(|e| e.to_string())?;
        {
            let mut w = rs.storage.wl();
            // Entries the backend holds were committed, and so was everything up to a snapshot; the HardState
            // that said so may not have reached the WAL (a snapshot's record is written before the Ready's
            // HardState: a crash between the two leaves the WAL's commit index below its own snapshot).
            let committed = applied.max(snapshot_index);
            if w.hard_state().commit < committed {
                w.mut_hard_state().commit = committed;
            }
            // The backend's membership is raft's configuration as of the applied index (the WAL's snapshot
            // record may be older).
            if !cluster.is_empty() {
                let (voters, learners) = cluster.conf_ids();
                w.set_conf_state(ConfState::from((voters, learners)));
            }
        }
        let applied_shared = Arc::new(AtomicU64::new(applied));
        let mut storage = RaftStorage::new(rs.storage);
        storage.set_snapshot_source(store.clone(), applied_shared.clone());
        let election_tick = (cfg.election_ms / cfg.heartbeat_ms.max(1)).max(2) as usize;
        let rcfg = raft::Config {
            id: cfg.member_id,
            election_tick,
            heartbeat_tick: 1,
            applied: applied.max(snapshot_index),
            check_quorum: true,
            pre_vote: cfg.pre_vote,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 512,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Fuse(ZapDrain { member_id: cfg.member_id }), slog::o!());
        let mut node = RawNode::new(&rcfg, storage, &logger).map_err(|e| e.to_string())?;
        let voters = node.raft.prs().conf().voters().ids().iter().collect::<Vec<_>>();
        let solo = voters == [cfg.member_id];
        if solo && node.raft.raft_log.applied >= node.raft.raft_log.committed {
            // A cluster of one needs no election timeout to pass: campaign now (etcd advances ticks instead).
            // A new member's bootstrap configuration is committed but not applied yet (raft would refuse):
            // process_ready campaigns right after that apply.
            node.campaign().map_err(|e| e.to_string())?;
        }
        let solo_campaign = solo && node.raft.state != StateRole::Leader;
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
        // etcd's request id generator: member-id prefix, then time, then a counter.
        let next_id = ((cfg.member_id & 0xffff) << 48) | (((now_ms as u64) & 0xff_ffff_ffff) << 8);
        let core = Core {
            node,
            wal: rs.wal,
            read_seq: 0,
            pending_reads: HashMap::new(),
            confirmed_reads: Vec::new(),
            solo_campaign,
            snapshot_index,
        };
        let alarms = Alarms::load(&store).map_err(|e| e.to_string())?;
        let tokens =
            crate::auth::TokenProvider::new(&cfg.auth_token, Duration::from_secs(cfg.auth_token_ttl_s.max(1)))?;
        let auth = crate::auth::AuthStore::new(tokens, cfg.bcrypt_cost);
        auth.load(store.backend()).map_err(|e| e.to_string())?;
        let v2 = super::v2::load_store(store.backend())?;
        let db_in_use = AtomicU64::new(store.backend().size_in_use());
        let server = EtcdServer {
            cfg,
            store,
            alarms,
            auth,
            db_in_use,
            proposals: Mutex::new(Vec::new()),
            held: Mutex::new(Vec::new()),
            leader_only: Mutex::new(Vec::new()),
            waiters: Mutex::new(HashMap::new()),
            reads: Mutex::new(Vec::new()),
            notifier: Notifier::new().map_err(|e| e.to_string())?,
            core: Mutex::new(core),
            next_id: AtomicU64::new(next_id),
            term: AtomicU64::new(0),
            leader: AtomicU64::new(0),
            applied: applied_shared,
            committed: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            cluster,
            transport: OnceLock::new(),
            inbox: Mutex::new(Vec::new()),
            reports: Mutex::new(Vec::new()),
            conf_proposals: Mutex::new(Vec::new()),
            transfer: Mutex::new(None),
            removed: AtomicBool::new(false),
            published: AtomicBool::new(false),
            last_publish: Mutex::new(None),
            v2: Mutex::new(v2),
            last_v2_sync: Mutex::new(None),
            raft_stats: Default::default(),
        };
        Ok(server)
    }

    /// Starts the peer transport on `listen` and introduces it to every member known so far.
    pub fn serve_peers(
        self: &Arc<Self>,
        listen: &[(String, bool)],
        tls: Option<Arc<crate::transport::ServerTls>>,
        dial: crate::transport::ClientTls,
    ) -> Result<Vec<String>, String> {
        let t = Transport::start(self, listen, tls, dial)?;
        let addrs = t.addrs().to_vec();
        if self.transport.set(t).is_err() {
            return Err("the peer transport is already running".into());
        }
        self.refresh_peers();
        Ok(addrs)
    }

    /// Whether `id` may send this member raft messages: a member as applied, or one it started with.
    pub fn is_known_member(&self, id: u64) -> bool {
        self.cluster.member(id).is_some() || self.cfg.initial_members.iter().any(|m| m.id == id)
    }

    /// Tells the transport every member's peer URLs (the initial ones first, the applied membership over them).
    pub(crate) fn refresh_peers(&self) {
        let Some(t) = self.transport.get() else {
            return;
        };
        for m in &self.cfg.initial_members {
            if !self.cluster.is_removed(m.id) {
                t.set_peer(m.id, m.peer_urls.clone());
            }
        }
        for m in self.cluster.members() {
            t.set_peer(m.id, m.peer_urls);
        }
    }

    /// Messages from a peer (the transport calls this once per read).
    pub fn receive(&self, msgs: Vec<Message>) {
        self.inbox.lock().extend(msgs);
        self.notifier.notify();
    }

    pub fn report_unreachable(&self, id: u64) {
        self.reports.lock().push(Report::Unreachable(id));
        self.notifier.notify();
    }

    pub fn report_snapshot(&self, id: u64, ok: bool) {
        self.reports.lock().push(Report::Snapshot(id, ok));
        self.notifier.notify();
    }

    /// A peer refused us as removed from the cluster.
    pub fn mark_removed(&self) {
        if !self.removed.swap(true, Ordering::AcqRel) {
            zap_log(
                "warn",
                "etcdserver/server.go",
                "the local member has been permanently removed from the cluster",
                &[("local-member-id", format!("{:x}", self.member_id()))],
            );
        }
        self.notifier.notify();
    }

    /// Whether this member was removed from the cluster (the driver stops it).
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// Whether this member's attributes were applied through raft (etcd serves clients only after that).
    pub fn is_published(&self) -> bool {
        self.published.load(Ordering::Acquire)
    }

    /// Whether this member is a learner.
    pub fn is_learner(&self) -> bool {
        self.cluster.is_learner(self.member_id())
    }

    pub fn notify_fd(&self) -> i32 {
        self.notifier.fd()
    }

    pub fn member_id(&self) -> u64 {
        self.cfg.member_id
    }

    pub fn cluster_id(&self) -> u64 {
        self.cfg.cluster_id
    }

    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }

    pub fn leader(&self) -> u64 {
        self.leader.load(Ordering::Acquire)
    }

    pub fn applied_index(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    pub fn committed_index(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Backend bytes in use after the last applied batch.
    pub fn db_size_in_use(&self) -> u64 {
        self.db_in_use.load(Ordering::Acquire)
    }

    /// One raft tick (the driver calls it every heartbeat interval). The leader's lessor is polled here for
    /// expired leases, whose revokes are queued for the batch that follows. A failed backend commit is fatal
    /// (etcd's batch_tx.go: "failed to commit tx").
    pub fn tick(&self) -> Result<(), String> {
        if self.stopped.load(Ordering::Acquire) {
            return Err("the server is stopped".into());
        }
        self.core.lock().node.tick();
        self.store.commit_if_due().map_err(|e| format!("failed to commit tx: {e}"))?;
        self.maybe_sync_v2();
        for id in self.store.lessor.expired() {
            self.queue_leader_only(InternalRaftRequest {
                lease_revoke: Some(LeaseRevokeRequest { id }),
                ..Default::default()
            });
        }
        Ok(())
    }

    /// One batch: step what peers sent, propose what is queued, then handle every Ready until raft has
    /// nothing left. Returns the number of entries applied. Errors are fatal to the member (disk failures).
    pub fn process_ready(&self) -> Result<usize, String> {
        if self.stopped.load(Ordering::Acquire) {
            return Err("the server is stopped".into());
        }
        let mut core = self.core.lock();
        self.notifier.drain();
        for m in std::mem::take(&mut *self.inbox.lock()) {
            self.raft_stats.received(&m);
            // Messages from members raft does not know (yet) are refused by raft; nothing to do about them.
            let _ = core.node.step(m);
        }
        for r in std::mem::take(&mut *self.reports.lock()) {
            match r {
                Report::Unreachable(id) => core.node.report_unreachable(id),
                Report::Snapshot(id, ok) => {
                    core.node.report_snapshot(id, if ok { SnapshotStatus::Finish } else { SnapshotStatus::Failure })
                }
            }
        }
        if let Some(target) = self.transfer.lock().take() {
            core.node.transfer_leader(target);
        }
        self.propose_queued(&mut core);
        self.maybe_publish(&mut core);
        self.request_reads(&mut core);
        let mut applied = 0;
        while core.node.has_ready() {
            applied += self.handle_ready(&mut core)?;
        }
        self.release_reads(&mut core);
        Ok(applied)
    }

    /// Proposes the queued requests and conf changes. Raft drops proposals while no leader is known; those
    /// whose waiter still waits are held and proposed again at the next batch.
    fn propose_queued(&self, core: &mut Core) {
        let mut props = std::mem::take(&mut *self.held.lock());
        props.append(&mut self.proposals.lock());
        let revokes = std::mem::take(&mut *self.leader_only.lock());
        if core.node.raft.state == StateRole::Leader {
            for data in revokes {
                let _ = core.node.propose(vec![], data);
            }
        }
        let mut held = Vec::new();
        for (id, data) in props {
            if core.node.propose(vec![], data.clone()).is_err() && self.waiters.lock().contains_key(&id) {
                held.push((id, data));
            }
        }
        for cc in std::mem::take(&mut *self.conf_proposals.lock()) {
            if let Err(e) = core.node.propose_conf_change(vec![], cc.clone()) {
                if let Some(w) = self.waiters.lock().remove(&cc.id) {
                    let err = if self.leader() == 0 { EtcdError::NoLeader } else { EtcdError::Internal(e.to_string()) };
                    let _ = w.send(Err(err));
                }
            }
        }
        *self.held.lock() = held;
    }

    /// etcd's publish: once a leader is known, the member's name and client URLs go through raft, so every
    /// member lists them (an added member is "unstarted" until then).
    fn maybe_publish(&self, core: &mut Core) {
        if self.published.load(Ordering::Acquire) || self.leader() == 0 || self.is_removed() {
            return;
        }
        let mut last = self.last_publish.lock();
        if last.is_some_and(|t| t.elapsed() < PUBLISH_RETRY) {
            return;
        }
        *last = Some(Instant::now());
        let req = InternalRaftRequest {
            cluster_member_attr_set: Some(ClusterMemberAttrSetRequest {
                member_id: self.member_id(),
                member_attributes: Some(MemberAttributes {
                    name: self.cfg.name.clone(),
                    client_urls: self.cfg.client_urls.clone(),
                }),
            }),
            ..Default::default()
        };
        let _ = core.node.propose(vec![], self.stamp_internal(req).1);
    }

    /// Sends new ReadIndex requests, and asks again for those raft left unanswered too long.
    fn request_reads(&self, core: &mut Core) {
        let reads = std::mem::take(&mut *self.reads.lock());
        if !reads.is_empty() {
            core.read_seq += 1;
            let ctx = core.read_seq;
            core.pending_reads.insert(ctx, (Instant::now(), reads));
            core.node.read_index(ctx.to_be_bytes().to_vec());
        }
        let now = Instant::now();
        let stale: Vec<u64> = core
            .pending_reads
            .iter()
            .filter(|(_, (t, _))| now.duration_since(*t) >= READ_INDEX_RETRY)
            .map(|(ctx, _)| *ctx)
            .collect();
        for ctx in stale {
            if let Some((t, _)) = core.pending_reads.get_mut(&ctx) {
                *t = now;
            }
            core.node.read_index(ctx.to_be_bytes().to_vec());
        }
    }

    fn send(&self, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        let point = if self.is_leader() { "raft-before-leader-send" } else { "raft-before-follower-send" };
        crate::failpoint::failpoint(point);
        self.raft_stats.sent(&msgs);
        if let Some(t) = self.transport.get() {
            t.send(msgs);
        }
    }

    fn handle_ready(&self, core: &mut Core) -> Result<usize, String> {
        let mut rd = core.node.ready();
        if let Some(ss) = rd.ss() {
            let was_leader = self.is_leader();
            self.leader.store(ss.leader_id, Ordering::Release);
            self.raft_stats.leader_changed(ss.leader_id);
            match (was_leader, ss.raft_state == StateRole::Leader) {
                (false, true) => self.store.lessor.promote(),
                (true, false) => self.store.lessor.demote(),
                _ => {}
            }
            if ss.raft_state != StateRole::Leader && ss.raft_state != StateRole::Follower {
                self.leader.store(0, Ordering::Release);
            }
        }
        // A leader's messages may go out before its own entries are persisted (raft's thesis, 10.2.1).
        self.send(rd.take_messages());
        if !rd.snapshot().is_empty() {
            self.install_snapshot(core, rd.snapshot().clone())?;
        }
        let mut applied = self.apply_entries(core, rd.take_committed_entries())?;
        for rs in rd.take_read_states() {
            let ctx = u64::from_be_bytes(rs.request_ctx.as_slice().try_into().unwrap_or([0; 8]));
            if let Some((_, ws)) = core.pending_reads.remove(&ctx) {
                core.confirmed_reads.push((rs.index, ws));
            }
        }
        if !rd.entries().is_empty() || rd.hs().is_some() {
            let hs = rd.hs().map(|hs| hs.write_to_bytes().expect("encode HardState"));
            let ents: Vec<(u64, Vec<u8>)> =
                rd.entries().iter().map(|e| (e.index, e.write_to_bytes().expect("encode Entry"))).collect();
            let refs: Vec<(u64, &[u8])> = ents.iter().map(|(i, b)| (*i, b.as_slice())).collect();
            crate::failpoint::failpoint("raft-before-save");
            core.wal.save(hs.as_deref(), &refs).map_err(|e| e.to_string())?;
            crate::failpoint::failpoint("raft-after-save");
            let store = core.node.mut_store();
            let mut w = store.wl();
            w.append(rd.entries()).map_err(|e| e.to_string())?;
            if let Some(hs) = rd.hs() {
                w.set_hardstate(hs.clone());
            }
        }
        if let Some(hs) = rd.hs() {
            self.term.store(hs.term, Ordering::Release);
            self.committed.store(hs.commit, Ordering::Release);
        }
        // Votes and append responses promise what is now on disk: they go out only after the WAL sync.
        self.send(rd.take_persisted_messages());
        let mut light = core.node.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.committed.store(commit, Ordering::Release);
            core.node.mut_store().wl().mut_hard_state().commit = commit;
        }
        self.send(light.take_messages());
        applied += self.apply_entries(core, light.take_committed_entries())?;
        core.node.advance_apply();
        let raft = &core.node.raft;
        if core.solo_campaign && raft.raft_log.applied >= raft.raft_log.committed {
            core.solo_campaign = false;
            if core.node.raft.state != StateRole::Leader {
                core.node.campaign().map_err(|e| e.to_string())?;
                self.notifier.notify();
            }
        }
        self.maybe_snapshot(core)?;
        Ok(applied)
    }

    fn release_reads(&self, core: &mut Core) {
        let applied = self.applied_index();
        core.confirmed_reads.retain_mut(|(index, ws)| {
            if *index <= applied {
                for w in ws.drain(..) {
                    let _ = w.send(Ok(()));
                }
                false
            } else {
                true
            }
        });
    }

    /// Fails every waiter and refuses new requests; the driver stops calling process_ready after this.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.abandon_requests();
        let mut core = self.core.lock();
        core.abandon_reads();
        let _ = core.wal.sync();
        let _ = self.store.force_commit();
        self.store.compactor.stop();
        let _ = self.store.backend().sync();
    }

    /// Fails every request waiting for an answer and stops the peer transport (both kinds of stop).
    fn abandon_requests(&self) {
        for (_, w) in self.waiters.lock().drain() {
            let _ = w.send(Err(EtcdError::Stopped));
        }
        for w in self.reads.lock().drain(..) {
            let _ = w.send(Err(EtcdError::Stopped));
        }
        if let Some(t) = self.transport.get() {
            t.stop();
        }
    }

    /// Fail-stop after a fatal error (a panic or an I/O error on the durability path): every waiter fails,
    /// nothing more is acknowledged, proposed or sent, and nothing more reaches the disk (unlike [`stop`],
    /// which syncs); the restart recovers from the WAL. Safe to call from any thread, and twice.
    ///
    /// [`stop`]: EtcdServer::stop
    pub fn fail(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) && self.store.is_failed() {
            return;
        }
        self.store.fail();
        self.abandon_requests();
        // The Ready loop may be the one that failed, mid-batch: take its reads only if the lock is free soon.
        if let Some(mut core) = self.core.try_lock_for(Duration::from_millis(200)) {
            core.abandon_reads();
        }
    }

    /// Proposals waiting to be applied (etcd_server_proposals_pending).
    pub fn pending_proposals(&self) -> usize {
        self.waiters.lock().len()
    }

    pub fn is_leader(&self) -> bool {
        self.leader() == self.cfg.member_id
    }
}
