//! The peer transport: raft messages between members, and the peer port's HTTP endpoints (etcd's rafthttp).
//!
//! Every member listens on its `--listen-peer-urls`. A connection's first four bytes choose its protocol:
//!
//! - `RAFT` opens a one-way message stream. The dialer sends a handshake — `RAFT`, the cluster id, its own
//!   member id and the member id it meant to reach, each a big-endian u64 — and the listener answers one
//!   byte: [`ACCEPT`], or a refusal ([`REJECT_CLUSTER`] for a peer of another cluster, [`REJECT_TO`] for a
//!   message meant for another member, [`REJECT_REMOVED`] for a member removed from the cluster). Then the
//!   dialer writes frames (a big-endian u32 length and an encoded `raftpb.Message`) for as long as the
//!   connection lives. Each member dials each peer once, so a pair of members talks over two streams.
//! - Anything else is HTTP/1.1: `GET /members` and `GET /version` (a member joining with
//!   `--initial-cluster-state existing` asks these), `POST /leases` and `POST /leases/internal` (followers
//!   forward lease keep-alives and time-to-live queries to the leader, where lease clocks run), and
//!   `POST /members/promote/<id>` (a promote asked of a follower runs on the leader, which knows how far the
//!   learner has caught up).
//!
//! Sending never blocks the raft loop: [`Transport::send`] queues each message on its peer's channel, and the
//! peer's task writes everything queued in one `write` (appends are pipelined; raft's in-flight limit bounds
//! them). A peer that cannot be reached drops what was queued and is reported unreachable, and raft resends.
//! A snapshot travels as one large frame whose success or failure is reported back to raft.
mod client;
mod listener;
mod peer;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use raft::eraftpb::Message;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};

pub use client::{Dialer, PeerHttpError};

use crate::etcdserver::EtcdServer;
use crate::transport::{ClientTls, ServerTls};

pub const MAGIC: &[u8; 4] = b"RAFT";
pub const ACCEPT: u8 = 0;
pub const REJECT_CLUSTER: u8 = 1;
pub const REJECT_TO: u8 = 2;
pub const REJECT_REMOVED: u8 = 3;

/// Bytes of raft messages one peer may have queued (about 64 one-MiB appends; more only for a single message,
/// such as a large snapshot, into an empty queue). A peer that does not read
/// (paused, or its network blackholed) would otherwise pile up up to `max_inflight_msgs` appends of up to
/// 1 MiB each; past this, messages are dropped and raft told the peer is unreachable (it probes again), as
/// etcd drops a message when a peer's stream buffer is full.
pub(crate) const MAX_QUEUED_BYTES: usize = 64 << 20;

/// What a message costs in the queue: its payloads, plus a little for the rest.
pub(crate) fn queued_size(m: &Message) -> usize {
    64 + m.get_entries().iter().map(|e| e.data.len() + e.context.len() + 32).sum::<usize>()
        + m.get_snapshot().get_data().len()
}

struct PeerHandle {
    urls: Arc<Mutex<Vec<String>>>,
    tx: mpsc::UnboundedSender<Message>,
    /// Bytes queued in `tx` ([`queued_size`]), at most [`MAX_QUEUED_BYTES`].
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// Whether the last message was dropped (the warning is logged once per run of drops).
    dropping: std::sync::atomic::AtomicBool,
    /// When the current stream to the peer was established (None while it is down).
    active_since: Arc<Mutex<Option<Instant>>>,
}

pub struct Transport {
    member_id: u64,
    cluster_id: u64,
    rt: Mutex<Option<Runtime>>,
    handle: tokio::runtime::Handle,
    peers: Mutex<HashMap<u64, PeerHandle>>,
    server: Weak<EtcdServer>,
    shutdown: watch::Sender<bool>,
    addrs: Vec<String>,
    /// Connections to peers (TLS for https peer URLs), for the streams and the forwarded requests.
    pub dialer: Arc<Dialer>,
}

impl Transport {
    /// Binds every `(host:port, TLS)` of `listen` now (a busy port fails the start) and serves them; `tls`
    /// is the peer port's TLS (needed when a listener has it), `dial` how peers are reached.
    pub fn start(
        server: &Arc<EtcdServer>,
        listen: &[(String, bool)],
        tls: Option<Arc<ServerTls>>,
        dial: ClientTls,
    ) -> Result<Arc<Transport>, String> {
        let mut secure = Vec::new();
        for (addr, is_tls) in listen {
            secure.push(match (is_tls, &tls) {
                (false, _) => None,
                (true, Some(t)) => Some(t.clone()),
                (true, None) => {
                    return Err(format!("cannot listen on TLS for {addr}: KeyFile and CertFile are not presented"))
                }
            });
        }
        let hosts: Vec<String> = listen.iter().map(|(a, _)| a.clone()).collect();
        let (listeners, addrs) = crate::v3rpc::bind_all(&hosts)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pyetcd-peer")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let (tx, rx) = watch::channel(false);
        let t = Arc::new(Transport {
            member_id: server.member_id(),
            cluster_id: server.cluster_id(),
            handle: rt.handle().clone(),
            rt: Mutex::new(Some(rt)),
            peers: Mutex::new(HashMap::new()),
            server: Arc::downgrade(server),
            shutdown: tx,
            addrs,
            dialer: Arc::new(Dialer::new(dial, server.cluster_id(), server.member_id())),
        });
        for (l, tls) in listeners.into_iter().zip(secure) {
            t.handle.spawn(listener::serve(l, Arc::downgrade(server), tls, rx.clone()));
        }
        Ok(t)
    }

    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// Adds a peer, or updates the URLs of a known one.
    pub fn set_peer(&self, id: u64, urls: Vec<String>) {
        if id == self.member_id {
            return;
        }
        let mut peers = self.peers.lock();
        if let Some(p) = peers.get(&id) {
            *p.urls.lock() = urls;
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let urls = Arc::new(Mutex::new(urls));
        let active_since = Arc::new(Mutex::new(None));
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let p = peer::Peer {
            id,
            from: self.member_id,
            cluster_id: self.cluster_id,
            urls: urls.clone(),
            active_since: active_since.clone(),
            server: self.server.clone(),
            dialer: self.dialer.clone(),
            queued: queued.clone(),
        };
        self.handle.spawn(p.run(rx, self.shutdown.subscribe()));
        peers.insert(id, PeerHandle { urls, tx, active_since, queued, dropping: Default::default() });
    }

    /// Forgets a removed member; its task ends with its channel.
    pub fn remove_peer(&self, id: u64) {
        self.peers.lock().remove(&id);
    }

    /// A peer's URLs (for forwarding to the leader).
    pub fn peer_urls(&self, id: u64) -> Option<Vec<String>> {
        self.peers.lock().get(&id).map(|p| p.urls.lock().clone())
    }

    /// When the stream to `id` came up, if it is up (etcd's `ActiveSince`).
    pub fn active_since(&self, id: u64) -> Option<Instant> {
        self.peers.lock().get(&id).and_then(|p| *p.active_since.lock())
    }

    /// Queues messages for their peers; messages for unknown peers are dropped (raft resends).
    /// A peer whose queue is full gets nothing more: the message is dropped and raft hears the peer is
    /// unreachable (a dropped snapshot is reported failed), so memory stays bounded ([`MAX_QUEUED_BYTES`]).
    pub fn send(&self, msgs: Vec<Message>) {
        use std::sync::atomic::Ordering::{AcqRel, Relaxed};
        let peers = self.peers.lock();
        for m in msgs {
            let Some(p) = peers.get(&m.to) else {
                continue;
            };
            let size = queued_size(&m);
            let queued = p.queued.load(Relaxed);
            // An empty queue takes any message, so a snapshot larger than the budget still goes out.
            if queued > 0 && queued + size > MAX_QUEUED_BYTES {
                if !p.dropping.swap(true, AcqRel) {
                    crate::raftnode::logger::zap_log(
                        "warn",
                        "rafthttp/peer.go",
                        "dropped internal Raft message since sending buffer is full (overloaded network)",
                        &[
                            ("message-type", format!("{:?}", m.get_msg_type())),
                            ("remote-peer-id", format!("{:x}", m.to)),
                        ],
                    );
                }
                if let Some(server) = self.server.upgrade() {
                    if m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
                        server.report_snapshot(m.to, false);
                    }
                    server.report_unreachable(m.to);
                }
                continue;
            }
            p.dropping.store(false, Relaxed);
            p.queued.fetch_add(size, AcqRel);
            let _ = p.tx.send(m);
        }
    }

    /// Stops listening and dialing.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
        self.peers.lock().clear();
        if let Some(rt) = self.rt.lock().take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
