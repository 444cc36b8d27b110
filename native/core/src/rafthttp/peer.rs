//! One peer's outbound stream: dial, handshake, then write whatever raft queued, batched per write.
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::client::{Dialer, PeerStream};
use super::{ACCEPT, MAGIC, REJECT_CLUSTER, REJECT_REMOVED};
use crate::etcdserver::EtcdServer;
use crate::raftnode::logger::zap_log;

/// How long a dial or handshake may take before the peer counts as unreachable.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between failed dials.
const REDIAL: Duration = Duration::from_millis(100);
/// A write batch is cut past this many bytes.
const MAX_BATCH: usize = 4 << 20;
/// A write that makes no progress for this long closes the stream (etcd's ConnWriteTimeout): a peer that
/// stopped reading must not hold the queue forever. The deadline is per chunk of [`WRITE_CHUNK`] bytes, so a
/// large batch or snapshot on a slow link that keeps moving is not cut.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_CHUNK: usize = 256 << 10;

pub(super) struct Peer {
    pub id: u64,
    pub from: u64,
    pub cluster_id: u64,
    pub urls: Arc<Mutex<Vec<String>>>,
    pub active_since: Arc<Mutex<Option<Instant>>>,
    pub server: Weak<EtcdServer>,
    pub dialer: Arc<Dialer>,
    /// Bytes queued for this peer (the transport adds, this task subtracts as it takes messages).
    pub queued: Arc<std::sync::atomic::AtomicUsize>,
}

/// `http://host:port` → `host:port`.
pub(super) fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

enum Dial {
    Up(PeerStream),
    Down,
    Refused(u8),
}

impl Peer {
    pub(super) async fn run(self, mut rx: mpsc::UnboundedReceiver<Message>, mut stop: watch::Receiver<bool>) {
        let mut url_i = 0usize;
        let mut was_down_logged = false;
        loop {
            if *stop.borrow() {
                return;
            }
            let urls = self.urls.lock().clone();
            if urls.is_empty() {
                tokio::time::sleep(REDIAL).await;
                continue;
            }
            let url = urls[url_i % urls.len()].clone();
            url_i += 1;
            let stream = match self.dial(&url).await {
                Dial::Up(s) => s,
                other => {
                    if let Dial::Refused(code) = other {
                        self.refused(code);
                    } else if !was_down_logged {
                        zap_log(
                            "warn",
                            "rafthttp/peer.go",
                            "peer became inactive (message send to peer failed)",
                            &[("peer-id", format!("{:x}", self.id))],
                        );
                        was_down_logged = true;
                    }
                    self.drop_queued(&mut rx);
                    tokio::select! {
                        _ = tokio::time::sleep(REDIAL) => {}
                        _ = stop.changed() => return,
                    }
                    continue;
                }
            };
            *self.active_since.lock() = Some(Instant::now());
            zap_log("info", "rafthttp/peer_status.go", "peer became active", &[("peer-id", format!("{:x}", self.id))]);
            was_down_logged = false;
            let mut buf = Vec::with_capacity(64 << 10);
            let (mut reader, mut stream) = tokio::io::split(stream);
            let mut probe = [0u8; 1];
            loop {
                let first = tokio::select! {
                    m = rx.recv() => match m { Some(m) => m, None => return },
                    _ = stop.changed() => return,
                    // The acceptor never writes after its answer: anything readable is its end closing (it died
                    // or restarted). Redial now, or the next message (a candidate's vote request, between two
                    // followers that seldom write to each other) would be written into a dead socket and lost.
                    _ = reader.read(&mut probe) => break,
                };
                buf.clear();
                let mut snapshots = 0;
                let mut next = Some(first);
                while let Some(m) = next {
                    self.queued.fetch_sub(super::queued_size(&m), std::sync::atomic::Ordering::AcqRel);
                    if m.get_msg_type() == MessageType::MsgSnapshot {
                        snapshots += 1;
                    }
                    let body = m.write_to_bytes().expect("encode raft message");
                    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
                    buf.extend_from_slice(&body);
                    next = if buf.len() < MAX_BATCH { rx.try_recv().ok() } else { None };
                }
                let mut ok = true;
                for chunk in buf.chunks(WRITE_CHUNK) {
                    if !matches!(tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(chunk)).await, Ok(Ok(()))) {
                        ok = false;
                        break;
                    }
                }
                if let Some(server) = self.server.upgrade() {
                    for _ in 0..snapshots {
                        server.report_snapshot(self.id, ok);
                    }
                    if !ok {
                        server.report_unreachable(self.id);
                    }
                }
                if !ok {
                    break;
                }
            }
            *self.active_since.lock() = None;
        }
    }

    async fn dial(&self, url: &str) -> Dial {
        let attempt = async {
            let mut s = self.dialer.connect(url).await.ok()?;
            let mut hs = Vec::with_capacity(28);
            hs.extend_from_slice(MAGIC);
            hs.extend_from_slice(&self.cluster_id.to_be_bytes());
            hs.extend_from_slice(&self.from.to_be_bytes());
            hs.extend_from_slice(&self.id.to_be_bytes());
            s.write_all(&hs).await.ok()?;
            let mut answer = [0u8; 1];
            s.read_exact(&mut answer).await.ok()?;
            Some((s, answer[0]))
        };
        match tokio::time::timeout(DIAL_TIMEOUT, attempt).await {
            Ok(Some((s, ACCEPT))) => Dial::Up(s),
            Ok(Some((_, code))) => Dial::Refused(code),
            _ => Dial::Down,
        }
    }

    fn refused(&self, code: u8) {
        let peer = ("remote-peer-id", format!("{:x}", self.id));
        match code {
            REJECT_CLUSTER => zap_log(
                "error",
                "rafthttp/stream.go",
                "request sent was ignored by remote peer due to cluster ID mismatch",
                &[peer, ("local-member-cluster-id", format!("{:x}", self.cluster_id))],
            ),
            REJECT_REMOVED => {
                if let Some(server) = self.server.upgrade() {
                    server.mark_removed();
                }
            }
            _ => zap_log("warn", "rafthttp/stream.go", "request sent was ignored by remote peer", &[peer]),
        }
    }

    fn drop_queued(&self, rx: &mut mpsc::UnboundedReceiver<Message>) {
        let mut dropped = false;
        while let Ok(m) = rx.try_recv() {
            dropped = true;
            self.queued.fetch_sub(super::queued_size(&m), std::sync::atomic::Ordering::AcqRel);
            if m.get_msg_type() == MessageType::MsgSnapshot {
                if let Some(server) = self.server.upgrade() {
                    server.report_snapshot(self.id, false);
                }
            }
        }
        if dropped {
            if let Some(server) = self.server.upgrade() {
                server.report_unreachable(self.id);
            }
        }
    }
}
